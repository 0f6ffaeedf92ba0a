"""Canonical events: parse and validate one JSON object into a typed event.

One event per JSON object (JSON Lines in files, one object per message on a bus); ``ts`` is
ISO 8601 UTC. Unknown fields are kept (in ``Event.raw``, which the journal stores) and ignored.

===============  ======================================================================================
type             fields
===============  ======================================================================================
``fill``         ``ts``, ``trade_id`` (unique: a repeat is ignored and counted), ``instrument``,
                 ``quantity`` (contracts, signed: + buys), ``price`` (USD, > 0), optional ``fee``
                 (USD), optional ``tags`` (object of tag values, e.g. desk, book)
``index``        ``ts``, ``underlying``, ``spot`` (USD, > 0)
``mark``         ``ts``, ``instrument``, optional ``iv`` (annualised decimal, > 0), optional
                 ``forward`` (USD, > 0: the forward of an option or future expiry, or the mark of
                 a perpetual); at least one of them
``rate``         ``ts``, ``underlying``, optional ``rate`` (1/year), optional ``funding_rate``
                 (1/year, annualised), optional ``vol`` (annualised decimal, > 0); at least one
``instrument``   ``ts`` and the columns of an instruments row (a new listing): ``instrument``,
                 ``underlying``, ``kind``, ``settlement``, ``option_type``, ``strike``, ``expiry``,
                 ``contract_size``
===============  ======================================================================================

:func:`parse_line` / :func:`parse_event` raise :class:`EventRejected` with a short machine
``reason`` (the label of ``gpuskew_events_rejected_total``) and a human ``detail``; they never
raise anything else on bad input. NaN and infinities are refused everywhere (JSON's ``NaN`` and
``Infinity`` literals included), and so are magnitudes that could make a position's measures
overflow (reason ``nonfinite``: a fill's ``quantity`` or ``|quantity| x price``, a price, spot,
forward, iv, vol, strike or contract size beyond :data:`MAX_MAGNITUDE`): such an event is refused
before it is journaled, so it can never stop a publish, nor a restart that replays the journal.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Union

from gpuskew.timeutil import from_micros, iso_z, to_micros

#: event types, in the order the metrics list them
EVENT_TYPES: tuple[str, ...] = ("fill", "index", "mark", "rate", "instrument")

#: reasons an event is rejected while parsing (state-free checks)
PARSE_REASONS: tuple[str, ...] = ("invalid_json", "not_an_object", "unknown_type", "missing_field",
                                  "bad_timestamp", "bad_number", "bad_value", "bad_tags", "bad_instrument",
                                  "nonfinite")
#: largest magnitude accepted for a fill's quantity and ``|quantity| x price`` (USD), a price, spot,
#: forward, iv, vol, strike or contract size: far beyond any market, far below where a position's
#: measures (products of a quantity, a contract size and up to two prices) or a group's sum overflow
MAX_MAGNITUDE = 1e30
#: reasons an event is rejected or ignored when it is applied to the live state
APPLY_REASONS: tuple[str, ...] = ("unknown_instrument", "unknown_tag", "expired_instrument",
                                  "duplicate_trade_id", "stale", "duplicate_instrument")
#: of those, the ones that are not malformed input (counted, never dead-lettered)
IGNORED_REASONS: frozenset[str] = frozenset({"duplicate_trade_id", "stale"})


class EventRejected(Exception):
    """An event that cannot be used: ``reason`` (a label) and ``detail`` (one line for people)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(slots=True)
class Fill:
    """A trade: ``quantity`` contracts (+ buys) of ``instrument`` at ``price`` USD."""

    ts_us: int
    trade_id: str
    instrument: str
    quantity: float
    price: float
    fee: float | None
    tags: dict[str, str | None]
    raw: dict = field(repr=False, default_factory=dict)
    type = "fill"

    @property
    def key(self) -> str:
        return self.trade_id


@dataclass(slots=True)
class IndexTick:
    """Index price ``spot`` (USD) of ``underlying``."""

    ts_us: int
    underlying: str
    spot: float
    raw: dict = field(repr=False, default_factory=dict)
    type = "index"

    @property
    def key(self) -> tuple:
        return ("index", self.underlying)


@dataclass(slots=True)
class MarkTick:
    """Implied vol ``iv`` and/or ``forward`` (USD) of ``instrument``; None = unchanged."""

    ts_us: int
    instrument: str
    iv: float | None
    forward: float | None
    raw: dict = field(repr=False, default_factory=dict)
    type = "mark"

    @property
    def key(self) -> tuple:
        return ("mark", self.instrument)


@dataclass(slots=True)
class RateTick:
    """``rate``, ``funding_rate`` (1/year) and/or ``vol`` of ``underlying``; None = unchanged."""

    ts_us: int
    underlying: str
    rate: float | None
    funding_rate: float | None
    vol: float | None
    raw: dict = field(repr=False, default_factory=dict)
    type = "rate"

    @property
    def key(self) -> tuple:
        return ("rate", self.underlying)


@dataclass(slots=True)
class Listing:
    """A new instrument: ``row`` is one validated instruments row (``expiry`` a UTC datetime or None,
    ``expiry_us`` the same in µs since the epoch)."""

    ts_us: int
    row: dict
    raw: dict = field(repr=False, default_factory=dict)
    type = "instrument"

    @property
    def instrument(self) -> str:
        return self.row["instrument"]


Event = Union[Fill, IndexTick, MarkTick, RateTick, Listing]


# ---------------------------------------------------------------------------------------------
# field checks

def _reject_constant(name: str) -> float:
    raise EventRejected("bad_number", f"{name} is not a finite number")


def _opt_string(obj: dict, name: str, required: bool = False) -> str | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise EventRejected("missing_field", f"'{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise EventRejected("bad_value", f"'{name}' must be a string")
    text = str(value)
    if not text.strip():
        if required:
            raise EventRejected("missing_field", f"'{name}' is empty")
        return None
    return text


def _opt_number(obj: dict, name: str, required: bool = False, positive: bool = False,
                nonzero: bool = False, bounded: bool = False) -> float | None:
    value = obj.get(name)
    if value is None:
        if required:
            raise EventRejected("missing_field", f"'{name}' is required")
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise EventRejected("bad_number", f"'{name}' must be a number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise EventRejected("bad_number", f"'{name}' is not finite")
    if positive and x <= 0.0:
        raise EventRejected("bad_value", f"'{name}' must be > 0, got {x!r}")
    if nonzero and x == 0.0:
        raise EventRejected("bad_value", f"'{name}' must not be 0")
    if bounded:
        _check_magnitude(name, x)
    return x


def _check_magnitude(name: str, x: float) -> None:
    if not abs(x) <= MAX_MAGNITUDE:
        raise EventRejected("nonfinite", f"'{name}' is {x!r}: beyond {MAX_MAGNITUDE:g}, the measures of the "
                                         "position would overflow")


def _string(obj: dict, name: str) -> str:
    """A required string field."""
    value = _opt_string(obj, name, required=True)
    assert value is not None
    return value


def _number(obj: dict, name: str, positive: bool = False, nonzero: bool = False, bounded: bool = False) -> float:
    """A required finite number field."""
    value = _opt_number(obj, name, required=True, positive=positive, nonzero=nonzero, bounded=bounded)
    assert value is not None
    return value


def ts_to_us(value: Any) -> int:
    """Microseconds since the epoch of an ISO 8601 timestamp, parsed by :func:`gpuskew.timeutil.to_utc`
    (naive = UTC, ``Z`` allowed, a date alone = 08:00 UTC)."""
    from gpuskew.errors import InvalidInput

    if not isinstance(value, str):
        raise EventRejected("bad_timestamp", "'ts' must be an ISO 8601 string")
    try:
        return to_micros(value, source="ts")
    except (InvalidInput, ValueError, OverflowError):
        raise EventRejected("bad_timestamp", f"'ts' is not ISO 8601: {value[:40]!r}") from None


#: the UTC datetime of microseconds since the epoch (:func:`gpuskew.timeutil.from_micros`)
us_to_datetime = from_micros


def us_to_iso(us: int) -> str:
    """ISO 8601 UTC with a ``Z`` (microseconds only when not zero)."""
    return iso_z(from_micros(us))


def _tags(obj: dict) -> dict[str, str | None]:
    tags = obj.get("tags")
    if tags is None:
        return {}
    if not isinstance(tags, dict):
        raise EventRejected("bad_tags", "'tags' must be an object of tag values")
    out: dict[str, str | None] = {}
    for k, v in tags.items():
        if v is None:
            out[str(k)] = None
        elif isinstance(v, bool) or not isinstance(v, (str, int)):
            raise EventRejected("bad_tags", f"tag '{k}' must be a string")
        else:
            out[str(k)] = str(v)
    return out


# ---------------------------------------------------------------------------------------------
# parsing

def _listing(obj: dict, ts_us: int) -> Listing:
    """Validate an instruments row with the book's own rules (gpuskew.io.validate)."""
    import pyarrow as pa

    from gpuskew import schema
    from gpuskew.errors import InvalidInput
    from gpuskew.io.validate import validate_table

    row = {c.name: obj.get(c.name) for c in schema.INSTRUMENT_COLUMNS}
    if not isinstance(row["instrument"], str) or not row["instrument"].strip():
        raise EventRejected("missing_field", "'instrument' is required")
    for name in ("strike", "contract_size"):
        v = row[name]
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
            raise EventRejected("bad_number", f"'{name}' must be a number")
        if v is not None and not math.isfinite(float(v)):
            raise EventRejected("bad_number", f"'{name}' is not finite")
        if v is not None:
            _check_magnitude(name, float(v))
    for name in ("instrument", "underlying", "kind", "settlement", "option_type", "expiry"):
        if row[name] is not None and not isinstance(row[name], str):
            raise EventRejected("bad_instrument", f"'{name}' must be a string")
    table = pa.table({
        "instrument": pa.array([row["instrument"]], pa.string()),
        "underlying": pa.array([row["underlying"]], pa.string()),
        "kind": pa.array([row["kind"]], pa.string()),
        "settlement": pa.array([row["settlement"]], pa.string()),
        "option_type": pa.array([row["option_type"]], pa.string()),
        "strike": pa.array([None if row["strike"] is None else float(row["strike"])], pa.float64()),
        "expiry": pa.array([row["expiry"]], pa.string()),
        "contract_size": pa.array([None if row["contract_size"] is None else float(row["contract_size"])],
                                  pa.float64()),
    })
    try:
        valid = validate_table("instruments", table, "<instrument event>")
    except InvalidInput as exc:
        raise EventRejected("bad_instrument", f"{exc.column or ''}: {exc.rule}") from None
    out = valid.to_pylist()[0]
    out["expiry_us"] = valid.column("expiry").cast("int64").to_pylist()[0]  # µs since epoch, or None
    if out["kind"] != "option":
        out["option_type"] = None
        out["strike"] = None
    return Listing(ts_us, out)


def parse_event(obj: Any) -> Event:
    """A typed event from one decoded JSON object; raises :class:`EventRejected`."""
    if not isinstance(obj, dict):
        raise EventRejected("not_an_object", f"an event is a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if kind not in EVENT_TYPES:
        raise EventRejected("unknown_type", f"'type' must be one of {', '.join(EVENT_TYPES)}, got {kind!r}"[:200])
    if "ts" not in obj or obj["ts"] is None:
        raise EventRejected("missing_field", "'ts' is required")
    ts = ts_to_us(obj["ts"])
    if kind == "fill":
        trade_id, instrument = _string(obj, "trade_id"), _string(obj, "instrument")
        quantity = _number(obj, "quantity", nonzero=True, bounded=True)
        price = _number(obj, "price", positive=True, bounded=True)
        _check_magnitude("quantity x price", quantity * price)
        ev: Event = Fill(ts, trade_id, instrument, quantity, price, _opt_number(obj, "fee"), _tags(obj))
    elif kind == "index":
        ev = IndexTick(ts, _string(obj, "underlying"), _number(obj, "spot", positive=True, bounded=True))
    elif kind == "mark":
        iv = _opt_number(obj, "iv", positive=True, bounded=True)
        fwd = _opt_number(obj, "forward", positive=True, bounded=True)
        if iv is None and fwd is None:
            raise EventRejected("missing_field", "a mark needs 'iv' or 'forward'")
        ev = MarkTick(ts, _string(obj, "instrument"), iv, fwd)
    elif kind == "rate":
        rate, funding = _opt_number(obj, "rate"), _opt_number(obj, "funding_rate")
        vol = _opt_number(obj, "vol", positive=True, bounded=True)
        if rate is None and funding is None and vol is None:
            raise EventRejected("missing_field", "a rate event needs 'rate', 'funding_rate' or 'vol'")
        ev = RateTick(ts, _string(obj, "underlying"), rate, funding, vol)
    else:
        ev = _listing(obj, ts)
    ev.raw = obj
    return ev


#: one decoder for every event (``json.loads`` with options builds a new one per call)
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def decode(line: str | bytes) -> Any:
    """JSON-decode one line (UTF-8, or UTF-16/32 as JSON allows), refusing NaN/Infinity; raises
    :class:`EventRejected` (invalid_json)."""
    try:
        if isinstance(line, (bytes, bytearray, memoryview)):
            raw = bytes(line)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                line = raw.decode(json.detect_encoding(raw))
            if line.startswith("\ufeff"):
                raise ValueError("a byte order mark before the JSON text")
        return _DECODER.decode(line)
    except EventRejected:
        raise
    except (ValueError, UnicodeDecodeError, RecursionError, LookupError) as exc:
        raise EventRejected("invalid_json", f"not valid JSON ({type(exc).__name__}: {str(exc)[:80]})") from None


def parse_line(line: str | bytes) -> Event:
    """Decode and parse one JSON Lines record; raises :class:`EventRejected`."""
    return parse_event(decode(line))


def encode(obj: dict) -> bytes:
    """Compact JSON bytes of an event object (the journal's and the bus's encoding)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


__all__ = ["EVENT_TYPES", "MAX_MAGNITUDE", "PARSE_REASONS", "APPLY_REASONS", "IGNORED_REASONS", "EventRejected", "Event", "Fill",
           "IndexTick", "MarkTick", "RateTick", "Listing", "parse_event", "parse_line", "decode", "encode",
           "ts_to_us", "us_to_datetime", "us_to_iso"]
