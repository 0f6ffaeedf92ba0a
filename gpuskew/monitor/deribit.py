"""Deribit: instrument names -> instruments rows, and JSON-RPC notifications -> canonical events.

Deribit's WebSocket API sends JSON-RPC 2.0 notifications, ``{"jsonrpc": "2.0", "method":
"subscription", "params": {"channel": ..., "data": ...}}`` (https://docs.deribit.com/articles/notifications).
The channels used here and the fields read, by their documented names:

* ``user.changes.{kind}.{currency}.{interval}``
  (https://docs.deribit.com/subscriptions/user/userchangeskindcurrencyinterval): ``data.trades[]``
  with ``trade_id``, ``timestamp`` (ms), ``instrument_name``, ``direction`` (buy | sell),
  ``amount``, optional ``contracts``, ``price``, ``index_price``, ``fee``, ``fee_currency``. The
  trade ``amount`` is in USD for perpetuals and inverse futures and in coins of the base currency
  for options and linear futures (Deribit's ``amount`` field description); contracts = amount /
  contract_size unless the trade carries ``contracts``. Option prices of coin-settled (inverse)
  options are in the base currency: USD price = price x index_price. -> ``fill`` events.
* ``markprice.options.{index_name}``
  (https://docs.deribit.com/subscriptions/market-data/markpriceoptionsindex_name): ``data[]`` with
  ``instrument_name``, ``iv`` (annualised decimal), ``mark_price``, ``timestamp``. -> ``mark``
  events (iv).
* ``deribit_price_index.{index_name}``
  (https://docs.deribit.com/subscriptions/market-data/deribit_price_indexindex_name): ``data.index_name``
  (``btc_usd``, ``sol_usdc``...), ``data.price``, ``data.timestamp``. -> ``index`` events.
* ``perpetual.{instrument_name}.{interval}``
  (https://docs.deribit.com/subscriptions/market-data/perpetualinstrument_nameinterval):
  ``data.interest`` (the perpetual's current 8-hour funding rate), ``data.index_price``,
  ``data.timestamp``. -> a ``rate`` event with funding_rate = interest x 3 x 365 (annualised).

Instrument names (Deribit's naming, https://www.deribit.com/docs/naming/: ``BTC-DMMMYY`` futures,
``BTC-DMMMYY-STRIKE-K`` options, expiring at 08:00 UTC per
https://www.deribit.com/docs/contract-specifications-options/): ``BTC-PERPETUAL``
(inverse perpetual), ``BTC_USDC-PERPETUAL`` (linear perpetual), ``BTC-27DEC26`` (inverse future),
``BTC_USDC-27DEC26`` (linear future), ``BTC-27DEC26-100000-C`` (coin-settled option),
``SOL_USDC-27DEC26-150-P`` (USDC-settled option), ``XRP_USDC-27NOV26-2d3-P`` (strike 2.3: ``d``
is the decimal point), ``BTC_USDC`` (spot pair). Contract sizes that a name does not carry come
from :data:`CONTRACT_SIZES`: BTC and ETH options 1 coin (the options contract specification
above); USDC-settled SOL options 10, XRP and MATIC options 1,000
(https://insights.deribit.com/education/usdc-settled-altcoin-options-live-trade-examples,
https://support.deribit.com/hc/en-us/articles/25944750999581-Linear-USDC-Options); inverse BTC
perpetuals and futures 10 USD, other inverse ones 1 USD. A book's own instruments row always wins,
and an ``instrument`` event can list any contract explicitly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from typing import Any

from gpuskew.monitor.events import us_to_iso
from gpuskew.timeutil import DATE_HOUR_UTC

#: contract multipliers by (kind, settlement, base currency); "*" = any currency
CONTRACT_SIZES: dict[tuple[str, str, str], float] = {
    ("perpetual", "inverse", "BTC"): 10.0,  # USD per contract
    ("future", "inverse", "BTC"): 10.0,
    ("perpetual", "inverse", "*"): 1.0,
    ("future", "inverse", "*"): 1.0,
    ("option", "inverse", "*"): 1.0,  # coins per contract
    ("option", "linear", "SOL"): 10.0,
    ("option", "linear", "XRP"): 1000.0,
    ("option", "linear", "MATIC"): 1000.0,
    ("option", "linear", "*"): 1.0,
    ("perpetual", "linear", "*"): 1.0,
    ("future", "linear", "*"): 1.0,
    ("spot", "linear", "*"): 1.0,
}

_MONTHS = {m: i + 1 for i, m in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP",
                                          "OCT", "NOV", "DEC"))}
_BASE = r"(?P<base>[A-Z0-9]+)(?:_(?P<quote>[A-Z0-9]+))?"
_DATE = r"(?P<day>\d{1,2})(?P<mon>[A-Z]{3})(?P<yy>\d{2})"
_OPTION = re.compile(rf"^{_BASE}-{_DATE}-(?P<strike>\d+(?:d\d+)?)-(?P<cp>[CP])$")
_FUTURE = re.compile(rf"^{_BASE}-{_DATE}$")
_PERP = re.compile(rf"^{_BASE}-PERPETUAL$")
_SPOT = re.compile(r"^(?P<base>[A-Z0-9]+)_(?P<quote>[A-Z0-9]+)$")
#: expiry time of day of Deribit's dated contracts (UTC): the house hour of a date alone
EXPIRY_HOUR_UTC = DATE_HOUR_UTC


class NotDeribitName(ValueError):
    """A string that is not an instrument name in Deribit's form."""


def _expiry_us(day: str, mon: str, yy: str, name: str) -> int:
    if mon not in _MONTHS:
        raise NotDeribitName(f"{name!r}: unknown month {mon!r}")
    try:
        dt = datetime(2000 + int(yy), _MONTHS[mon], int(day), EXPIRY_HOUR_UTC, tzinfo=timezone.utc)
    except ValueError as exc:
        raise NotDeribitName(f"{name!r}: {exc}") from None
    return int(dt.timestamp()) * 1_000_000


def contract_size(kind: str, settlement: str, base: str) -> float:
    """Deribit's multiplier for a contract (see :data:`CONTRACT_SIZES`)."""
    return CONTRACT_SIZES.get((kind, settlement, base), CONTRACT_SIZES[(kind, settlement, "*")])


def parse_instrument_name(name: str) -> dict:
    """An instruments row (``expiry`` in µs since the epoch, or None) from a Deribit name.

    >>> parse_instrument_name("XRP_USDC-27NOV26-2d3-P")["strike"]
    2.3
    """
    if not isinstance(name, str):
        raise NotDeribitName(f"not a string: {name!r}")
    kind: str | None
    m = _OPTION.match(name)
    if m:
        kind = "option"
    else:
        m = _FUTURE.match(name)
        kind = "future" if m else None
    if m is None:
        m = _PERP.match(name)
        kind = "perpetual" if m else None
    if m is None:
        m = _SPOT.match(name)
        kind = "spot" if m else None
    if m is None:
        raise NotDeribitName(f"{name!r} is not a Deribit instrument name")
    assert kind is not None
    g = m.groupdict()
    base, quote = g["base"], g.get("quote")
    settlement = "linear" if (quote or kind == "spot") else "inverse"
    row: dict[str, Any] = {"instrument": name, "underlying": base, "kind": kind, "settlement": settlement,
                           "option_type": None, "strike": None, "expiry": None,
                           "contract_size": contract_size(kind, settlement, base)}
    if kind in ("option", "future"):
        row["expiry"] = _expiry_us(g["day"], g["mon"], g["yy"], name)
    if kind == "option":
        row["strike"] = float(g["strike"].replace("d", "."))
        row["option_type"] = "call" if g["cp"] == "C" else "put"
        if not row["strike"] > 0:
            raise NotDeribitName(f"{name!r}: strike must be > 0")
    return row


def underlying_of_index(index_name: str) -> str:
    """``btc_usd`` -> ``BTC``; ``sol_usdc`` -> ``SOL`` (the base currency of a Deribit index)."""
    return str(index_name).split("_")[0].upper()


def listing_event(row: Mapping[str, Any], ts_us: int) -> dict:
    """A canonical ``instrument`` event for an instruments row (expiry in µs)."""
    out: dict[str, Any] = {"type": "instrument", "ts": us_to_iso(ts_us)}
    out.update({k: row[k] for k in ("instrument", "underlying", "kind", "settlement", "option_type", "strike",
                                     "contract_size")})
    out["expiry"] = None if row.get("expiry") is None else us_to_iso(row["expiry"])
    return out


def _ms_to_iso(ms: Any) -> str | None:
    if isinstance(ms, bool) or not isinstance(ms, (int, float)) or not math.isfinite(ms):
        return None
    return us_to_iso(int(ms) * 1000)


def _number(x: Any) -> float | None:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    x = float(x)
    return x if math.isfinite(x) else None


class DeribitMapper:
    """Maps notifications to canonical event dicts (the monitor then parses and validates them:
    a notification missing a field becomes an event that the parser rejects, never an exception).

    ``instrument_info(name)`` returns the known instruments row of a name (``kind``,
    ``settlement``, ``contract_size``) or None; names not known are parsed from Deribit's form and
    an ``instrument`` event is emitted before the first event that uses them. ``tags`` are added
    to every fill (a Deribit connection is one account: e.g. ``{"desk": "deribit-mm"}``).
    """

    def __init__(self, instrument_info: Callable[[str], Mapping[str, Any] | None] | None = None,
                 tags: Mapping[str, str] | None = None):
        self._info = instrument_info or (lambda name: None)
        self.tags = dict(tags or {})
        self._listed: dict[str, dict] = {}

    def _instrument(self, name: Any, ts_us: int, out: list[dict]) -> Mapping[str, Any] | None:
        if not isinstance(name, str):
            return None
        known = self._info(name) or self._listed.get(name)
        if known is not None:
            return known
        try:
            row = parse_instrument_name(name)
        except NotDeribitName:
            return None  # the event goes through: the monitor rejects it as an unknown instrument
        self._listed[name] = row
        out.append(listing_event(row, ts_us))
        return row

    def map(self, message: Mapping[str, Any]) -> list[dict]:
        """Canonical events of one JSON-RPC message (none for responses and other channels)."""
        if not isinstance(message, Mapping) or message.get("method") != "subscription":
            return []
        params = message.get("params")
        if not isinstance(params, Mapping):
            return []
        channel = str(params.get("channel", ""))
        data = params.get("data")
        if channel.startswith("user.changes.") or channel.startswith("user.trades."):
            trades = data.get("trades", []) if isinstance(data, Mapping) else data
            return self._trades(trades if isinstance(trades, list) else [])
        if channel.startswith("markprice.options."):
            return self._marks(data if isinstance(data, list) else [])
        if channel.startswith("deribit_price_index."):
            return self._index(data if isinstance(data, Mapping) else {}, channel)
        if channel.startswith("perpetual."):
            return self._perpetual(data if isinstance(data, Mapping) else {}, channel)
        return []

    def _trades(self, trades: list) -> list[dict]:
        out: list[dict] = []
        for t in trades:
            if not isinstance(t, Mapping):
                out.append({"type": "fill", "source_payload": t})
                continue
            ts = _ms_to_iso(t.get("timestamp"))
            ts_us = int(t["timestamp"]) * 1000 if ts else 0
            name = t.get("instrument_name")
            info = self._instrument(name, ts_us, out)
            sign = {"buy": 1.0, "sell": -1.0}.get(str(t.get("direction")))
            contracts = _number(t.get("contracts"))
            amount = _number(t.get("amount"))
            quantity = None
            if sign is not None:
                if contracts is not None:
                    quantity = sign * contracts
                elif amount is not None and info is not None and info.get("contract_size"):
                    quantity = sign * amount / float(info["contract_size"])
            price = _number(t.get("price"))
            index_price = _number(t.get("index_price"))
            if info is not None and price is not None and info.get("kind") == "option" \
                    and info.get("settlement") == "inverse":
                price = price * index_price if index_price is not None else None
            fee = _number(t.get("fee"))
            fee_ccy = str(t.get("fee_currency") or "")
            if fee is not None and fee_ccy and fee_ccy not in ("USD", "USDC", "USDT"):
                fee = fee * index_price if index_price is not None else None
            event = {"type": "fill", "ts": ts, "trade_id": t.get("trade_id"), "instrument": name,
                     "quantity": quantity, "price": price, "tags": dict(self.tags), "venue": "deribit"}
            if fee is not None:
                event["fee"] = fee
            if t.get("label"):
                event["label"] = t.get("label")
            out.append(event)
        return out

    def _marks(self, items: list) -> list[dict]:
        out: list[dict] = []
        for m in items:
            if not isinstance(m, Mapping):
                continue
            ts = _ms_to_iso(m.get("timestamp"))
            self._instrument(m.get("instrument_name"), int(m["timestamp"]) * 1000 if ts else 0, out)
            out.append({"type": "mark", "ts": ts, "instrument": m.get("instrument_name"), "iv": m.get("iv"),
                        "venue": "deribit"})
        return out

    def _index(self, data: Mapping, channel: str) -> list[dict]:
        name = data.get("index_name") or channel.split(".", 1)[1]
        return [{"type": "index", "ts": _ms_to_iso(data.get("timestamp")), "underlying": underlying_of_index(name),
                 "spot": data.get("price"), "venue": "deribit"}]

    def _perpetual(self, data: Mapping, channel: str) -> list[dict]:
        parts = channel.split(".")
        name = parts[1] if len(parts) > 1 else ""
        interest = _number(data.get("interest"))
        event = {"type": "rate", "ts": _ms_to_iso(data.get("timestamp")), "underlying": name.split("-")[0].split("_")[0],
                 "funding_rate": None if interest is None else interest * 3 * 365, "venue": "deribit"}
        return [event]


def subscribe_request(channels: list[str], request_id: int, private: bool = False) -> dict:
    """The ``public/subscribe`` (or ``private/subscribe``) JSON-RPC request."""
    return {"jsonrpc": "2.0", "id": request_id, "method": "private/subscribe" if private else "public/subscribe",
            "params": {"channels": list(channels)}}


def default_channels(currencies: list[str], interval: str = "100ms") -> list[str]:
    """The channels the monitor subscribes to for ``currencies`` (e.g. ["BTC", "ETH"])."""
    channels = []
    for cur in currencies:
        c = cur.upper()
        index = f"{c.lower()}_usd" if c in ("BTC", "ETH") else f"{c.lower()}_usdc"
        channels += [f"user.changes.any.{c}.{interval}", f"markprice.options.{index}",
                     f"deribit_price_index.{index}", f"perpetual.{c}-PERPETUAL.{interval}"]
    return channels


__all__ = ["CONTRACT_SIZES", "EXPIRY_HOUR_UTC", "NotDeribitName", "DeribitMapper", "contract_size",
           "parse_instrument_name", "underlying_of_index", "listing_event", "subscribe_request", "default_channels"]
