"""Deviation alerts: fire on transitions of a group's status, clear with hysteresis.

Statuses rank ``ok < warn < breach < critical``. The *raw* status of a group comes from |skew|
against its thresholds (strictly above: defaults warn 0.8, breach 1.0, critical 1.5). The
*effective* status adds hysteresis h (in units of skew) against the previous run's effective
status P:

* escalation is immediate: effective >= raw;
* de-escalation is delayed: the group stays at level L (starting from P) while
  |skew| >= threshold(L) - h, and only steps down a level once |skew| < threshold(L) - h.

Example (breach 1.0, warn 0.8, h = 0.1): skews 0.5, 1.05, 0.97, 0.95, 0.85, 0.5 give effective
statuses ok, breach (raised), breach, breach, warn (de-escalated: 0.85 < 0.9), ok (cleared:
0.5 < 0.7).

An alert fires when the effective status differs from the previous one: ``raised`` (ok -> worse),
``escalated``, ``de-escalated`` (to a status other than ok) or ``cleared`` (back to ok). Without a
previous run (``previous`` is None) every group not ok is ``raised``. A group absent from the
previous run counts as previously ok; a group absent from the current run fires nothing.

To carry hysteresis from run to run, append the returned effective table (the current adherence
rows plus ``effective_status``) to the history's ``adherence`` dataset: the next run's
``previous`` then holds ``effective_status``. A previous table without it falls back to its raw
``status`` column.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Union

import pyarrow as pa

from gpuskew import io as _io
from gpuskew.core.groups import group_id
from gpuskew.timeutil import iso_z, to_utc
from gpuskew.schema import ADHERENCE, ADHERENCE_STATUSES, ALERTS, HEDGES, TIMESTAMP

__all__ = [
    "DEFAULT_THRESHOLDS",
    "ALERT_KINDS",
    "severity",
    "raw_status",
    "effective_status",
    "evaluate_alerts",
    "alerts_table",
    "dumps_alerts_jsonl",
    "write_alerts_jsonl",
    "summarise_alerts",
]

#: Default |skew| thresholds (dimensionless; a status applies strictly above its threshold).
DEFAULT_THRESHOLDS: dict[str, float] = {"warn": 0.8, "breach": 1.0, "critical": 1.5}
#: Kinds of alert.
ALERT_KINDS: tuple[str, ...] = ("raised", "escalated", "de-escalated", "cleared")

_RANK: dict[str, int] = {s: i for i, s in enumerate(ADHERENCE_STATUSES)}

#: thresholds: one mapping for every group, or a function of the group's row (a dict with level,
#: underlying, tags...) returning a mapping or an object with warn/breach/critical attributes
#: (e.g. ``lambda row: limits.policy_for(row).thresholds``).
Thresholds = Union[Mapping[str, float], Callable[[dict], Any], None]
Hysteresis = Union[float, Callable[[dict], float]]


def severity(status: str) -> int:
    """Rank of a status: ok 0, warn 1, breach 2, critical 3."""
    return _RANK[status]


def _threshold_values(spec: Any) -> tuple[float, float, float]:
    """(warn, breach, critical) from a mapping (missing keys default) or an attribute object."""
    if spec is None:
        spec = {}
    if isinstance(spec, Mapping):
        merged = {**DEFAULT_THRESHOLDS, **spec}
    else:
        merged = {k: getattr(spec, k, v) for k, v in DEFAULT_THRESHOLDS.items()}
    return float(merged["warn"]), float(merged["breach"]), float(merged["critical"])


def _threshold(values: tuple[float, float, float], status: str) -> float:
    """|skew| threshold of a non-ok status."""
    return values[_RANK[status] - 1]


def raw_status(abs_skew: float, values: tuple[float, float, float]) -> str:
    """Status from |skew| (strictly above a threshold; NaN is above none: ok, as in adherence)."""
    warn, breach, critical = values
    if abs_skew > critical:
        return "critical"
    if abs_skew > breach:
        return "breach"
    if abs_skew > warn:
        return "warn"
    return "ok"


def effective_status(abs_skew: float, previous: str | None, values: tuple[float, float, float],
                     hysteresis: float, raw: str | None = None) -> str:
    """Status after hysteresis: escalate at once, step down from ``previous`` only below
    threshold(level) - hysteresis (all in units of |skew|). ``raw`` overrides the raw status
    (default from |skew|); a NaN |skew| never steps down."""
    raw = raw_status(abs_skew, values) if raw is None else raw
    if previous is None or _RANK[previous] <= _RANK[raw]:
        return raw
    level = _RANK[previous]
    while level > _RANK[raw] and abs_skew < values[level - 1] - hysteresis:
        level -= 1
    return ADHERENCE_STATUSES[level]


def _kind(previous: str, current: str) -> str:
    if _RANK[current] > _RANK[previous]:
        return "raised" if previous == "ok" else "escalated"
    return "cleared" if current == "ok" else "de-escalated"


def _key(row: Mapping[str, Any], keys: Sequence[str]) -> tuple:
    return tuple(row.get(k) for k in keys)


def _previous_statuses(previous: pa.Table | None) -> dict[tuple, str] | None:
    """Group key (level, underlying, non-null tags as sorted pairs) -> previous effective status."""
    if previous is None:
        return None
    col = "effective_status" if "effective_status" in previous.column_names else "status"
    keys = ADHERENCE.key_columns(previous)
    tags = ADHERENCE.tag_columns(previous)
    return {group_id(r, tags): r[col] for r in previous.select(keys + [col]).to_pylist()
            if r[col] is not None}


def _hedge_index(hedges: pa.Table | None) -> dict[tuple, dict]:
    if hedges is None or hedges.num_rows == 0:
        return {}
    tags = HEDGES.tag_columns(hedges)
    return {group_id(r, tags): r for r in hedges.to_pylist()}


def _finite(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def _quantity(x: float) -> str:
    """Contracts for humans: thousands separators, no exponent, up to 6 significant digits."""
    return f"{x:,.0f}" if x >= 1e5 or float(x).is_integer() else f"{x:,.6g}"


def suggested_action(row: Mapping[str, Any], hedge: Mapping[str, Any] | None, status: str) -> str:
    """One line: the proposed hedge (contracts, instrument, mode, est. cost USD) if any, else the
    quote skew (reservation price offset in USD, bid/ask size multipliers)."""
    if status == "ok":
        return "none: back within thresholds"
    if hedge is not None and hedge.get("contracts") is not None:
        contracts = float(hedge["contracts"])
        side = hedge.get("side") or ("buy" if contracts > 0 else "sell")
        text = f"hedge: {side} {_quantity(abs(contracts))} {hedge.get('hedge_instrument')} contracts"
        if hedge.get("mode"):
            text += f" ({hedge['mode']})"
        cost = _finite(hedge.get("est_cost_usd"))
        if cost is not None:
            text += f", est. cost {cost:,.2f} USD"
        return text
    parts = []
    offset = _finite(row.get("reservation_offset_usd"))
    if offset is not None:
        parts.append(f"reservation offset {offset:+,.1f} USD")
    bid, ask = _finite(row.get("bid_size_mult")), _finite(row.get("ask_size_mult"))
    if bid is not None and ask is not None:
        parts.append(f"bid x{bid:.2f} / ask x{ask:.2f}")
    return "skew quotes: " + ", ".join(parts) if parts else "review the group's inventory"


def _threshold_crossed(kind: str, previous: str, current: str, values: tuple[float, float, float],
                       hysteresis: float) -> dict:
    """The threshold the transition crossed: up through threshold(current), or down through
    threshold(lowest level left) - hysteresis."""
    if kind in ("raised", "escalated"):
        return {"name": current, "value": _threshold(values, current), "direction": "above"}
    left = ADHERENCE_STATUSES[_RANK[current] + 1]
    return {"name": left, "value": round(_threshold(values, left) - hysteresis, 12), "direction": "below",
            "hysteresis": hysteresis}


_iso = iso_z


def _alert(row: dict, keys: Sequence[str], as_of: _dt.datetime, previous: str, current: str,
           raw: str, values: tuple[float, float, float], hyst: float, hedge: dict | None) -> dict:
    kind = _kind(previous, current)
    group = {"level": row["level"], "underlying": row["underlying"]}
    group.update({k: row[k] for k in keys[2:] if row.get(k) is not None})
    return {
        "as_of": _iso(as_of),
        "kind": kind,
        "group": group,
        "status": current,
        "previous_status": previous,
        "raw_status": raw,
        "skew": _finite(row.get("skew")),
        "deviation": _finite(row.get("deviation")),
        "deviation_usd": _finite(row.get("deviation_usd")),
        "actual": _finite(row.get("actual")),
        "target": _finite(row.get("target")),
        "threshold_crossed": _threshold_crossed(kind, previous, current, values, hyst),
        "suggested_action": suggested_action(row, hedge, current),
    }


def _group_row(row: Mapping[str, Any], keys: Sequence[str]) -> dict:
    return {k: row.get(k) for k in keys}


def _sort_key(alert: Mapping[str, Any]) -> tuple:
    g = alert["group"]
    tags = tuple(sorted((k, str(v)) for k, v in g.items() if k not in ("level", "underlying")))
    return (-_RANK[alert["status"]], -_RANK[alert["previous_status"]], g["underlying"], g["level"], tags)


def evaluate_alerts(current: pa.Table, previous: pa.Table | None, thresholds: Thresholds = None,
                    hysteresis: Hysteresis = 0.0, as_of: _dt.datetime | str | None = None,
                    hedges: pa.Table | None = None) -> tuple[list[dict], pa.Table]:
    """Alerts of the current run and its effective statuses.

    current: this run's adherence table (``skew`` dimensionless, ``deviation`` coins,
    ``deviation_usd`` USD); previous: the previous run's adherence rows (``previous_adherence``),
    None without history; thresholds: |skew| thresholds (see :data:`Thresholds`); hysteresis:
    units of |skew| (a float, or a function of the group's row); as_of: the run's time (UTC;
    default the table's ``as_of``); hedges: this run's hedge proposals (for suggested actions).

    Returns ``(alerts, effective)``: the alert dicts (JSON-able, sorted worst first then by group)
    and ``current`` with an ``effective_status`` column appended.
    """
    keys = ["level", "underlying", *ADHERENCE.tag_columns(current)]
    rows = current.to_pylist()
    if as_of is None:
        as_of = rows[0]["as_of"] if rows and rows[0].get("as_of") is not None \
            else _dt.datetime.now(_dt.timezone.utc)
    as_of = to_utc(as_of)
    prev = _previous_statuses(previous)
    hedge_by_group = _hedge_index(hedges)
    alerts: list[dict] = []
    effective: list[str] = []
    for row in rows:
        group_row = _group_row(row, keys)
        values = _threshold_values(thresholds(group_row) if callable(thresholds) else thresholds)
        hyst = float(hysteresis(group_row) if callable(hysteresis) else hysteresis)
        gid = group_id(row, keys[2:])
        before = None if prev is None else prev.get(gid, "ok")
        skew = row.get("skew")
        abs_skew = abs(float(skew)) if skew is not None else math.nan
        # a NaN skew (e.g. a missing vol) keeps the table's own status
        raw = raw_status(abs_skew, values) if not math.isnan(abs_skew) else (row.get("status") or "ok")
        now = effective_status(abs_skew, before, values, hyst, raw)
        effective.append(now)
        if now != (before or "ok"):
            alerts.append(_alert(row, keys, as_of, before or "ok", now, raw, values, hyst,
                                 hedge_by_group.get(gid)))
    alerts.sort(key=_sort_key)
    table = current
    if "effective_status" in table.column_names:
        table = table.drop_columns(["effective_status"])
    table = table.append_column(pa.field("effective_status", pa.string()),
                                pa.array(effective, type=pa.string()))
    return alerts, table


def alerts_table(alerts: Sequence[Mapping[str, Any]]) -> pa.Table:
    """The alerts as a flat Arrow table (for the history's ``alerts`` dataset): as_of, level,
    underlying, tag columns, kind, status, previous_status, skew, deviation (coins),
    deviation_usd (USD), threshold_name, threshold_value, threshold_direction, suggested_action."""
    tags = sorted({k for a in alerts for k in a["group"] if k not in ("level", "underlying")})
    cols: dict[str, pa.Array] = {
        "as_of": pa.array([to_utc(a["as_of"]) for a in alerts], type=TIMESTAMP),
        "level": pa.array([a["group"]["level"] for a in alerts], type=pa.string()),
        "underlying": pa.array([a["group"]["underlying"] for a in alerts], type=pa.string()),
    }
    for t in tags:
        cols[t] = pa.array([a["group"].get(t) for a in alerts], type=pa.string())
    for name in ("kind", "status", "previous_status"):
        cols[name] = pa.array([a[name] for a in alerts], type=pa.string())
    for name in ("skew", "deviation", "deviation_usd"):
        cols[name] = pa.array([a.get(name) for a in alerts], type=pa.float64())
    cols["threshold_name"] = pa.array([a["threshold_crossed"]["name"] for a in alerts], type=pa.string())
    cols["threshold_value"] = pa.array([a["threshold_crossed"]["value"] for a in alerts], type=pa.float64())
    cols["threshold_direction"] = pa.array([a["threshold_crossed"]["direction"] for a in alerts],
                                           type=pa.string())
    cols["suggested_action"] = pa.array([a["suggested_action"] for a in alerts], type=pa.string())
    return pa.table(cols)


def dumps_alerts_jsonl(alerts: Sequence[Mapping[str, Any]]) -> str:
    """JSON Lines text: one compact object per alert (sorted keys, no NaN), worst first."""
    ordered = sorted(alerts, key=_sort_key)
    return "".join(json.dumps(a, sort_keys=True, separators=(",", ":"), allow_nan=False,
                              ensure_ascii=False) + "\n" for a in ordered)


def write_alerts_jsonl(alerts: Sequence[Mapping[str, Any]], path: str | Path) -> None:
    """Write ``alerts.jsonl`` atomically (temporary file + ``os.replace``); no alerts -> empty file."""
    data = dumps_alerts_jsonl(alerts).encode("utf-8")
    _io.write_atomic(Path(path), lambda f: f.write(data))


def _group_label(group: Mapping[str, Any]) -> str:
    tags = [f"{k}={v}" for k, v in group.items() if k not in ("level", "underlying")]
    return group["underlying"] + (" " + ",".join(tags) if tags else "")


def summarise_alerts(alerts: Sequence[Mapping[str, Any]], worst: int = 3) -> str:
    """A short summary for stderr: alert count, counts by kind and status, the worst groups."""
    if not alerts:
        return "alerts: none"
    by_kind = Counter(a["kind"] for a in alerts)
    by_status = Counter(a["status"] for a in alerts if a["kind"] != "cleared")
    head = f"alerts: {len(alerts)} (" + ", ".join(f"{by_kind[k]} {k}" for k in ALERT_KINDS if by_kind[k]) + ")"
    statuses = ", ".join(f"{s} {by_status[s]}" for s in reversed(ADHERENCE_STATUSES) if by_status[s])
    lines = [head + (f"; now {statuses}" if statuses else "")]
    for a in sorted(alerts, key=_sort_key)[:worst]:
        skew = "n/a" if a.get("skew") is None else f"{a['skew']:+.2f}"
        shown = "cleared" if a["kind"] == "cleared" else a["status"]
        lines.append(f"  {shown:<8} {_group_label(a['group'])}: skew {skew} "
                     f"({a['previous_status']} -> {a['status']}); {a['suggested_action']}")
    if len(alerts) > worst:
        lines.append(f"  ... and {len(alerts) - worst} more in alerts.jsonl")
    return "\n".join(lines)
