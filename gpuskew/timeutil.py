"""UTC times: the one parser and the one formatter every module uses."""

from __future__ import annotations

import datetime as _dt

from gpuskew.errors import InvalidInput


def to_utc(t: _dt.datetime | str, source: str = "<time>") -> _dt.datetime:
    """A timezone-aware UTC datetime from a datetime (naive = UTC) or an ISO 8601 string
    (``Z`` allowed). A bad string raises :class:`InvalidInput` naming ``source``."""
    if isinstance(t, str):
        text = t.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            t = _dt.datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidInput(source, None, f"not an ISO 8601 timestamp: {t!r}") from exc
    if not isinstance(t, _dt.datetime):
        raise TypeError(f"expected a datetime or an ISO 8601 string, got {type(t).__name__}")
    return t.replace(tzinfo=_dt.timezone.utc) if t.tzinfo is None else t.astimezone(_dt.timezone.utc)


def iso_z(t: _dt.datetime | str) -> str:
    """ISO 8601 in UTC with a ``Z``: 2026-11-20T08:00:00Z (microseconds only when not zero)."""
    t = to_utc(t)
    text = t.strftime("%Y-%m-%dT%H:%M:%S")
    if t.microsecond:
        text += f".{t.microsecond:06d}"
    return text + "Z"
