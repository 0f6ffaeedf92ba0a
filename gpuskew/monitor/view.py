"""The monitor's state as JSON (``/api/state``, the dashboard's stream, NATS messages).

Text from inputs (tags, instrument and underlying names) is data, never markup: the JSON is
rendered with ``<``, ``>`` and ``&`` escaped as ``\\u003c``, ``\\u003e``, ``\\u0026`` (safe to embed
anywhere), and the dashboard writes every value with ``textContent``. NaN and infinities become
null.
"""

from __future__ import annotations

import json
import math
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import pyarrow as pa

from gpuskew.monitor.events import us_to_iso

#: alerts kept for the feed
ALERT_FEED = 200

_ADHERENCE_FIELDS = ("measure", "spot", "actual", "target", "lower", "upper", "half_width_lower", "half_width_upper",
                     "deviation", "deviation_usd", "skew", "status", "effective_status", "target_model", "band_model",
                     "reservation_offset_usd", "bid_size_mult", "ask_size_mult")
_EXPOSURE_FIELDS = ("spot", "n_positions", "delta", "delta_pa", "delta_usd", "gamma_1pct", "vega_usd", "theta_usd",
                    "value_usd")
_HEDGE_FIELDS = ("hedge_instrument", "kind", "mode", "side", "contracts", "notional_usd", "price_usd", "coin_delta",
                 "pre_trade_delta", "post_trade_delta", "post_trade_deviation", "est_cost_usd", "lot_limited")


def clean(x: Any) -> Any:
    """JSON-safe values: NaN/inf -> None, datetimes -> ISO strings, containers recursively."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [clean(v) for v in x]
    if hasattr(x, "isoformat"):
        from gpuskew.timeutil import iso_z

        return iso_z(x)
    return x


def dumps(obj: Any) -> str:
    """Compact JSON with <, > and & escaped (see the module docstring)."""
    text = json.dumps(clean(obj), separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _tags(table: pa.Table, spec: Any) -> list[str]:
    return spec.tag_columns(table)


def _rows(pub: Any, name: str) -> list[dict]:
    """The publication's rows of ``name``, rendered once per publication when it can
    (:meth:`gpuskew.monitor.state.Publication.rows`)."""
    if hasattr(pub, "rows"):
        return pub.rows(name)
    table = pub.adherence.hedges if name == "hedges" else getattr(pub, name)
    return table.to_pylist()


def _group(row: Mapping[str, Any], tags: list[str]) -> dict:
    return {t: row[t] for t in tags if row.get(t) is not None}


class AlertFeed:
    """The most recent alerts, newest first."""

    def __init__(self, size: int = ALERT_FEED):
        self._items: deque = deque(maxlen=size)

    def extend(self, alerts: Iterable[dict]) -> None:
        for a in alerts:
            self._items.appendleft(a)

    def items(self) -> list[dict]:
        return list(self._items)


def state_view(pub: Any, *, feeds: list[dict], alerts: AlertFeed, counts: Mapping[str, int],
               rejected: Mapping[str, int], clock: str, status: str = "ok", extra: Mapping | None = None) -> dict:
    """The JSON-able view of a publication (``pub`` None before the first publish)."""
    view: dict[str, Any] = {"status": status, "clock": clock, "feeds": feeds, "alerts": alerts.items(),
                            "events": {"applied": dict(counts), "rejected": dict(rejected)},
                            "generated_at": time.time()}
    if extra:
        view.update(extra)
    if pub is None:
        view.update(as_of=None, underlyings=[], exposures=[], hedges=[], groups=0)
        return view
    from gpuskew.schema import ADHERENCE, EXPOSURES, HEDGES
    from gpuskew.session import worst_statuses

    exp = pub.exposures
    etags = _tags(exp, EXPOSURES)
    exposures = [{"level": r["level"], "underlying": r["underlying"], "group": _group(r, etags),
                  **{k: r[k] for k in _EXPOSURE_FIELDS}} for r in _rows(pub, "exposures")]
    under: dict[str, dict] = {}
    for r in exposures:
        if r["level"] == "underlying":
            under[r["underlying"]] = {"underlying": r["underlying"], "spot": r["spot"], "delta": r["delta"],
                                      "delta_pa": r["delta_pa"], "delta_usd": r["delta_usd"],
                                      "n_positions": r["n_positions"], "groups": [], "worst": "ok"}
    hedges = []
    if pub.effective is not None:
        atags = _tags(pub.effective, ADHERENCE)
        for r in _rows(pub, "effective"):
            u = under.setdefault(r["underlying"], {"underlying": r["underlying"], "spot": r["spot"], "groups": [],
                                                   "worst": "ok"})
            g = {"level": r["level"], "underlying": r["underlying"], "group": _group(r, atags),
                 **{k: r[k] for k in _ADHERENCE_FIELDS}}
            u["groups"].append(g)
        for und, worst in worst_statuses(pub.effective).items():
            under[und]["worst"] = worst
        htags = _tags(pub.adherence.hedges, HEDGES)
        hedges = [{"level": r["level"], "underlying": r["underlying"], "group": _group(r, htags),
                   **{k: r[k] for k in _HEDGE_FIELDS}} for r in _rows(pub, "hedges")]
    view.update(
        as_of=us_to_iso(pub.as_of_us), publish=pub.number, published_at=time.time(),
        positions={"priced": pub.positions, "pending": pub.pending}, repriced=pub.repriced,
        score=None if pub.adherence is None else pub.adherence.score,
        underlyings=[under[k] for k in sorted(under)], exposures=exposures, hedges=hedges,
        groups=0 if pub.effective is None else pub.effective.num_rows,
    )
    return view


__all__ = ["ALERT_FEED", "AlertFeed", "clean", "dumps", "state_view"]
