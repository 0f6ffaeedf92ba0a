"""A seeded day of canonical events for a book: what the tests, the benchmarks and the README replay.

:func:`sample_day` mixes, in time order from ``start``: fills on existing positions and on new keys
(new desks and books), a new option listed by an ``instrument`` event and then traded, index
ticks (a random walk per underlying), mark ticks (iv moves of held options, forwards of
perpetuals and futures), rate ticks, and, on purpose, repeated fills (same trade_id) and
out-of-order market ticks (older than the last applied for their key). Prices are plausible for the
instrument (near the index for perpetuals, futures and spot); quantities are small against the
book's. Everything is a plain dict ready for :func:`gpuskew.monitor.events.parse_event`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime

import numpy as np
import pyarrow as pa

from gpuskew.monitor.events import us_to_iso


def _iso(us: int) -> str:
    return us_to_iso(int(us))


def sample_day(tables: Mapping[str, pa.Table], start: datetime, n_events: int = 2000, seed: int = 1,
               seconds: float = 8 * 3600.0, duplicates: float = 0.02, out_of_order: float = 0.02,
               new_instrument: bool = True) -> list[dict]:
    """``n_events`` events over ``seconds`` from ``start`` for the book ``tables`` (see the module
    docstring). ``duplicates`` / ``out_of_order``: fractions of repeated fills and stale ticks."""
    rng = np.random.default_rng(seed)
    inst = tables["instruments"]
    pos = tables["positions"]
    und = tables["underlyings"]
    quotes = tables["quotes"]
    tags = [c for c in pos.column_names if c not in ("instrument", "quantity", "entry_price")
            and pa.types.is_string(pos.schema.field(c).type)]
    rows = inst.to_pylist()
    by_name = {r["instrument"]: r for r in rows}
    spot = {r["underlying"]: float(r["spot"]) for r in und.to_pylist()}
    iv = {r["instrument"]: r["iv"] for r in quotes.to_pylist() if r.get("iv") is not None}
    start_us = int(start.timestamp() * 1_000_000)
    held = pos.select(["instrument", *tags]).to_pylist()
    held = [h for h in held if by_name[h["instrument"]]["underlying"] in spot]
    alive = [r for r in rows if r["expiry"] is None or r["expiry"].timestamp() > start.timestamp() + seconds]
    tradable = [r["instrument"] for r in alive if r["underlying"] in spot
                and (r["kind"] != "option" or r["instrument"] in iv)]
    options = [n for n in tradable if by_name[n]["kind"] == "option"]
    dated_or_perp = [n for n in tradable if by_name[n]["kind"] in ("perpetual", "future")]
    tag_values = {t: sorted({h[t] for h in held if h.get(t) is not None}) for t in tags}
    times = np.sort(rng.uniform(0, seconds, n_events))
    events: list[dict] = []
    last_ts: dict[tuple, int] = {}
    fills: list[dict] = []
    listing_at = n_events // 3 if new_instrument else -1
    listed: str | None = None
    for k, t in enumerate(times):
        ts = start_us + int(t * 1_000_000)
        if k == listing_at and options:
            base = by_name[options[0]]
            u = base["underlying"]
            strike = round(spot[u] * 1.237, 2)
            listed = f"{u}-MON-{int(strike)}-C"
            events.append({"type": "instrument", "ts": _iso(ts), "instrument": listed, "underlying": u,
                           "kind": "option", "settlement": base["settlement"], "option_type": "call",
                           "strike": strike, "expiry": _iso(int(base["expiry"].timestamp() * 1e6)),
                           "contract_size": base["contract_size"]})
            events.append({"type": "mark", "ts": _iso(ts), "instrument": listed, "iv": 0.71})
            iv[listed] = 0.71
            by_name[listed] = {"underlying": u, "kind": "option", "settlement": base["settlement"]}
            options.append(listed)
            tradable.append(listed)
            continue
        r = rng.random()
        if r < 0.45:  # a fill
            if fills and rng.random() < duplicates:
                events.append(dict(fills[int(rng.integers(len(fills)))], ts=_iso(ts)))
                continue
            if held and rng.random() < 0.7:
                h = held[int(rng.integers(len(held)))]
                name, tv = h["instrument"], {t: h[t] for t in tags}
            else:
                name = listed if listed and rng.random() < 0.3 else tradable[int(rng.integers(len(tradable)))]
                tv = {t: (f"new-{t}-{int(rng.integers(2))}" if rng.random() < 0.2 else
                          (tag_values[t][int(rng.integers(len(tag_values[t])))] if tag_values[t] else None))
                      for t in tags}
            row = by_name[name]
            s = spot[row["underlying"]]
            price = s * float(rng.uniform(0.98, 1.02)) if row["kind"] != "option" else s * float(rng.uniform(0.01, 0.2))
            qty = float(rng.integers(1, 20)) * (1 if rng.random() < 0.5 else -1)
            if row["kind"] in ("perpetual", "future") and row["settlement"] == "inverse":
                qty *= 100
            fill = {"type": "fill", "ts": _iso(ts), "trade_id": f"T{seed}-{k}", "instrument": name,
                    "quantity": qty, "price": round(price, 2), "fee": round(abs(qty) * 0.01, 4),
                    "tags": {t: v for t, v in tv.items() if v is not None}}
            fills.append(fill)
            events.append(fill)
        elif r < 0.70:  # an index tick
            u = list(spot)[int(rng.integers(len(spot)))]
            if ("index", u) in last_ts and rng.random() < out_of_order:
                events.append({"type": "index", "ts": _iso(last_ts[("index", u)] - 1_000_000), "underlying": u,
                               "spot": round(spot[u] * 1.5, 2)})
                continue
            spot[u] *= math.exp(float(rng.normal(0, 0.002)))
            last_ts[("index", u)] = ts
            events.append({"type": "index", "ts": _iso(ts), "underlying": u, "spot": round(spot[u], 6)})
        elif r < 0.90:  # a mark
            if options and rng.random() < 0.7:
                name = options[int(rng.integers(len(options)))]
                if ("mark", name) in last_ts and rng.random() < out_of_order:
                    events.append({"type": "mark", "ts": _iso(last_ts[("mark", name)] - 1_000_000),
                                   "instrument": name, "iv": 3.0})
                    continue
                iv[name] = float(np.clip(iv[name] * math.exp(float(rng.normal(0, 0.02))), 0.05, 3.0))
                last_ts[("mark", name)] = ts
                events.append({"type": "mark", "ts": _iso(ts), "instrument": name, "iv": round(iv[name], 6)})
            elif dated_or_perp:
                name = dated_or_perp[int(rng.integers(len(dated_or_perp)))]
                s = spot[by_name[name]["underlying"]]
                last_ts[("mark", name)] = ts
                events.append({"type": "mark", "ts": _iso(ts), "instrument": name,
                               "forward": round(s * float(rng.uniform(0.999, 1.004)), 4)})
        else:  # a rate tick
            u = list(spot)[int(rng.integers(len(spot)))]
            last_ts[("rate", u)] = ts
            events.append({"type": "rate", "ts": _iso(ts), "underlying": u,
                           "rate": round(float(rng.uniform(0.03, 0.05)), 5),
                           "funding_rate": round(float(rng.normal(0.08, 0.05)), 5),
                           "vol": round(float(rng.uniform(0.4, 0.9)), 4)})
    return events


__all__ = ["sample_day"]
