"""Output tables of a backtest, built from their declarations in :mod:`gpuskew.schema.tables`.

Rows are ordered by policy (the grid's order, the current limits last when outside the grid), then
group (the greeks path's order: per-underlying totals, then each ``--group-by`` level), then path.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from gpuskew.backtest.stats import RESULT_VALUES, Summary, per_path
from gpuskew.backtest.sweep import TRACE_FIELDS, SweepResult
from gpuskew.policy.grid import PolicyPoint
from gpuskew.schema import (BACKTEST_FRONTIER, BACKTEST_POLICIES, BACKTEST_RESULTS, BACKTEST_SUMMARY,
                            BACKTEST_TRACES, TIMESTAMP)


def _group_columns(result: SweepResult, group_index: np.ndarray) -> dict[str, pa.Array]:
    gt = result.greeks.group_table
    idx = pa.array(group_index, pa.int64())
    return {name: gt[name].take(idx) for name in gt.column_names}


def _table(spec, tags: list[str], cols: dict) -> pa.Table:
    schema = spec.arrow_schema(tags)
    return pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)


def policies_table(policies: list[PolicyPoint]) -> pa.Table:
    """policies.parquet: one row per (policy, axis); a policy without axes has one row (axis null)."""
    rows: dict[str, list] = {"policy_id": [], "is_current": [], "label": [], "axis": [], "value_json": [],
                             "value_number": []}
    for p in policies:
        items = list(p.values.items()) or [(None, None)]
        for axis, value in items:
            rows["policy_id"].append(p.policy_id)
            rows["is_current"].append(p.is_current)
            rows["label"].append(p.label)
            rows["axis"].append(axis)
            rows["value_json"].append(None if axis is None else json.dumps(value, sort_keys=True, default=str))
            number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
            rows["value_number"].append(None if number is None else float(number))
    return _table(BACKTEST_POLICIES, [], rows)


def _mask(result: SweepResult) -> np.ndarray:
    return result.kernel.monitored


def results_table(result: SweepResult) -> pa.Table:
    """results.parquet: one row per monitored (policy, group) and path."""
    x = per_path(result)
    n_pol, n_g, n_p = x["hedged_pnl_usd"].shape
    pol_i, g_i = np.nonzero(_mask(result))
    pol = np.repeat(pol_i, n_p)
    grp = np.repeat(g_i, n_p)
    path = np.tile(np.arange(n_p, dtype=np.int64), pol_i.size)
    cols: dict = {"policy_id": pa.array([result.policies[i].policy_id for i in pol], pa.string()),
                  "path": pa.array(path, pa.int64())}
    cols.update(_group_columns(result, grp))
    for name in RESULT_VALUES:
        cols[name] = pa.array(x[name][pol, grp, path], pa.float64())
    return _table(BACKTEST_RESULTS, result.greeks.tags, cols)


def summary_table(result: SweepResult, summary: Summary) -> pa.Table:
    """summary.parquet: one row per monitored (policy, group)."""
    pol, grp = np.nonzero(_mask(result))
    cols: dict = {"policy_id": pa.array([result.policies[i].policy_id for i in pol], pa.string()),
                  "is_current": pa.array([result.policies[i].is_current for i in pol], pa.bool_()),
                  "hedge_instrument": pa.array([result.kernel.hedge[i][g] for i, g in zip(pol, grp)], pa.string()),
                  "paths": pa.array(np.full(pol.size, result.greeks.market.n_paths), pa.int64()),
                  "frontier_rank": pa.array(summary.frontier_rank[pol, grp], pa.int64())}
    cols.update(_group_columns(result, grp))
    for name, a in summary.values.items():
        cols[name] = pa.array(a[pol, grp], pa.float64())
    return _table(BACKTEST_SUMMARY, result.greeks.tags, cols)


def frontier_table(result: SweepResult, summary: Summary) -> pa.Table:
    """frontier.parquet: per group, its frontier policies by rank."""
    rank = summary.frontier_rank
    pairs = sorted(zip(*np.nonzero(rank > 0)), key=lambda ig: (ig[1], rank[ig[0], ig[1]]))
    pol = np.array([p for p, _ in pairs], dtype=np.int64)
    grp = np.array([g for _, g in pairs], dtype=np.int64)
    v = summary.values
    cols: dict = {"policy_id": pa.array([result.policies[i].policy_id for i in pol], pa.string()),
                  "frontier_rank": pa.array(rank[pol, grp], pa.int64()),
                  "is_current": pa.array([result.policies[i].is_current for i in pol], pa.bool_()),
                  "label": pa.array([result.policies[i].label for i in pol], pa.string())}
    cols.update(_group_columns(result, grp))
    for name in ("mean_cost_usd", "std_hedged_pnl_usd", "mean_hedged_pnl_usd", "ce_usd", "mean_time_in_band"):
        cols[name] = pa.array(v[name][pol, grp], pa.float64())
    return _table(BACKTEST_FRONTIER, result.greeks.tags, cols)


def traces_table(result: SweepResult) -> pa.Table:
    """traces.parquet: every step of the traced (policy, group, path) triples."""
    m = result.greeks.market
    n_s = m.n_steps
    parts = []
    for (pi, g, p), tr in sorted(result.traces.items()):
        cols: dict = {"policy_id": pa.array([result.policies[pi].policy_id] * n_s, pa.string()),
                      "path": pa.array(np.full(n_s, p), pa.int64()),
                      "step": pa.array(np.arange(n_s, dtype=np.int64)),
                      "time": pa.array(np.datetime64(m.start.replace(tzinfo=None), "us")
                                       + np.round(np.arange(n_s) * m.step_seconds * 1e6).astype("timedelta64[us]"),
                                       TIMESTAMP),
                      "spot": pa.array(m.spot[p, result.greeks.und[g], :n_s], pa.float64())}
        cols.update(_group_columns(result, np.full(n_s, g, dtype=np.int64)))
        for name, f in TRACE_FIELDS.items():
            cols[name] = pa.array(tr[f], pa.float64())
        parts.append(_table(BACKTEST_TRACES, result.greeks.tags, cols))
    if not parts:
        return BACKTEST_TRACES.empty(result.greeks.tags)
    return pa.concat_tables(parts)


__all__ = ["policies_table", "results_table", "summary_table", "frontier_table", "traces_table"]
