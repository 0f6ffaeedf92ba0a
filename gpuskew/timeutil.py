"""UTC times: the one parser and the one formatter every module uses.

A date without a time means 08:00 UTC, the crypto venues' expiry and settlement time, everywhere:
instruments, limits and policy files, events and command-line options (``2026-12-25`` is
``2026-12-25T08:00:00Z``). A time without an offset is UTC.
"""

from __future__ import annotations

import datetime as _dt
import re

from gpuskew.errors import InvalidInput

#: the hour (UTC) a date without a time stands for
DATE_HOUR_UTC: int = 8

_DATE_ONLY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.timezone.utc)


def to_utc(t: _dt.datetime | _dt.date | str, source: str = "<time>") -> _dt.datetime:
    """A timezone-aware UTC datetime from a datetime (naive = UTC), a date (08:00 UTC) or an ISO
    8601 string (``Z`` allowed; a date alone means 08:00 UTC). A bad string raises
    :class:`InvalidInput` naming ``source``."""
    if isinstance(t, str):
        text = t.strip()
        if _DATE_ONLY.match(text):
            try:
                d = _dt.date.fromisoformat(text)
            except ValueError as exc:
                raise InvalidInput(source, None, f"not an ISO 8601 date: {t!r}") from exc
            return _dt.datetime(d.year, d.month, d.day, DATE_HOUR_UTC, tzinfo=_dt.timezone.utc)
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            t = _dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidInput(source, None, f"not an ISO 8601 timestamp: {t!r}") from exc
    if isinstance(t, _dt.date) and not isinstance(t, _dt.datetime):
        return _dt.datetime(t.year, t.month, t.day, DATE_HOUR_UTC, tzinfo=_dt.timezone.utc)
    if not isinstance(t, _dt.datetime):
        raise TypeError(f"expected a datetime, a date or an ISO 8601 string, got {type(t).__name__}")
    return t.replace(tzinfo=_dt.timezone.utc) if t.tzinfo is None else t.astimezone(_dt.timezone.utc)


def to_micros(t: _dt.datetime | _dt.date | str, source: str = "<time>") -> int:
    """Microseconds since the Unix epoch of :func:`to_utc` (exact integer arithmetic)."""
    return (to_utc(t, source) - _EPOCH) // _dt.timedelta(microseconds=1)


def from_micros(us: int) -> _dt.datetime:
    """The UTC datetime of ``us`` microseconds since the Unix epoch (inverse of :func:`to_micros`)."""
    return _EPOCH + _dt.timedelta(microseconds=int(us))


def iso_z(t: _dt.datetime | str) -> str:
    """ISO 8601 in UTC with a ``Z``: 2026-11-20T08:00:00Z (microseconds only when not zero)."""
    t = to_utc(t)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}"
    return text + "Z"


__all__ = ["DATE_HOUR_UTC", "to_utc", "to_micros", "from_micros", "iso_z"]
