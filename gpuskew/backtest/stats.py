"""Statistics of a sweep: per (policy, group) over paths, the frontier, and the choice by criterion.

Per (policy, group), over the paths (X = hedged P&L of a path, USD):

* ``mean_hedged_pnl_usd``, ``std_hedged_pnl_usd`` (sample std, n - 1; 0 with one path);
* ``es_5pct_usd``: expected shortfall at 5%, the mean of the worst ceil(5% n) outcomes (a P&L:
  negative is a loss); ``cost_at_risk_usd`` = -``es_5pct_usd`` (the tail loss, costs included);
* ``ce_usd``: certainty equivalent under exponential utility u(x) = -exp(-a x) with absolute risk
  aversion a (1/USD): CE = -(1/a) ln(mean exp(-a X)) (computed as a log-sum-exp); the mean when
  a = 0;
* ``mean_cost_usd`` = mean(fees + spread + impact), the means of every cost, funding, book and
  hedge P&L and attribution term, ``mean_time_in_band``, ``mean_trades``,
  ``mean_turnover_coins``, ``mean_max_abs_skew``.

The **frontier** of a group: the policies no other policy beats on both mean cost and std of
hedged P&L (non-dominated, lower is better on both), ordered by mean cost.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from gpuskew.backtest.sweep import SweepResult

#: Tail of the expected shortfall.
ES_LEVEL: float = 0.05
#: Criteria for choosing a policy per group.
CRITERIA: tuple[str, ...] = ("ce", "cost_at_risk")
#: Default absolute risk aversion of the certainty equivalent, 1/USD.
DEFAULT_RISK_AVERSION: float = 1e-6

#: per-path values of the results table, in its column order, and where they come from
RESULT_VALUES: tuple[str, ...] = (
    "book_pnl_usd", "hedge_pnl_usd", "fees_usd", "spread_usd", "impact_usd", "funding_usd", "hedged_pnl_usd",
    "trades", "turnover_coins", "time_in_band", "max_abs_skew", "pnl_delta_usd", "pnl_gamma_usd",
    "pnl_theta_usd", "pnl_vega_usd", "pnl_residual_usd", "final_hedge_coins")


def per_path(result: SweepResult) -> dict[str, np.ndarray]:
    """Every per-path value, as arrays (policies, groups, paths)."""
    t = lambda a: np.transpose(a, (2, 1, 0))  # noqa: E731 - (paths, groups, policies) -> (policies, groups, paths)
    n_pol = len(result.policies)
    out = {name: t(result.value(name)) for name in ("hedge_pnl_usd", "fees_usd", "spread_usd", "impact_usd",
                                                     "funding_usd", "hedged_pnl_usd", "trades", "turnover_coins",
                                                     "time_in_band", "max_abs_skew", "pnl_delta_usd",
                                                     "final_hedge_coins")}
    for name, a in result.book.items():  # (paths, groups) -> broadcast over policies
        out[name] = np.broadcast_to(a.T[None, :, :], (n_pol,) + a.T.shape).copy()
    costs = out["fees_usd"] + out["spread_usd"] + out["impact_usd"]
    out["pnl_residual_usd"] = out["hedged_pnl_usd"] - (out["pnl_delta_usd"] + out["pnl_gamma_usd"]
                                                       + out["pnl_theta_usd"] + out["pnl_vega_usd"]
                                                       + out["funding_usd"] - costs)
    return out


def certainty_equivalent(x: np.ndarray, risk_aversion: float, axis: int = -1) -> np.ndarray:
    """-(1/a) ln(mean exp(-a x)) along ``axis`` (log-sum-exp; the mean when a = 0)."""
    x = np.asarray(x, dtype=np.float64)
    if risk_aversion == 0.0:
        return x.mean(axis=axis)
    y = -risk_aversion * x
    m = y.max(axis=axis, keepdims=True)
    lse = np.squeeze(m, axis=axis) + np.log(np.mean(np.exp(y - m), axis=axis))
    return -lse / risk_aversion


def expected_shortfall(x: np.ndarray, level: float = ES_LEVEL, axis: int = -1) -> np.ndarray:
    """Mean of the worst ceil(level n) values along ``axis`` (at least one)."""
    x = np.sort(np.asarray(x, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    k = max(1, int(math.ceil(level * n - 1e-12)))
    return np.take(x, np.arange(k), axis=axis).mean(axis=axis)


@dataclass
class Summary:
    """Per (policy, group) statistics (arrays (policies, groups)) and the frontier flags."""

    values: dict[str, np.ndarray]
    frontier_rank: np.ndarray  #: 1.. along the frontier of the group (by cost), 0 = not on it
    monitored: np.ndarray


def summarise(result: SweepResult, risk_aversion: float = DEFAULT_RISK_AVERSION) -> Summary:
    """Statistics over paths of every (policy, group), and each group's frontier."""
    x = per_path(result)
    n_paths = x["hedged_pnl_usd"].shape[2]
    h = x["hedged_pnl_usd"]
    cost = x["fees_usd"] + x["spread_usd"] + x["impact_usd"]
    es = expected_shortfall(h)
    v = {
        "mean_hedged_pnl_usd": h.mean(axis=2),
        "std_hedged_pnl_usd": h.std(axis=2, ddof=1) if n_paths > 1 else np.zeros(h.shape[:2]),
        "es_5pct_usd": es,
        "cost_at_risk_usd": -es,
        "ce_usd": certainty_equivalent(h, risk_aversion),
        "mean_cost_usd": cost.mean(axis=2),
    }
    for name in ("fees_usd", "spread_usd", "impact_usd", "funding_usd", "book_pnl_usd", "hedge_pnl_usd",
                 "pnl_delta_usd", "pnl_gamma_usd", "pnl_theta_usd", "pnl_vega_usd", "pnl_residual_usd",
                 "time_in_band", "trades", "turnover_coins", "max_abs_skew"):
        v[f"mean_{name}"] = x[name].mean(axis=2)
    monitored = result.kernel.monitored
    return Summary(v, frontier(v["mean_cost_usd"], v["std_hedged_pnl_usd"], monitored), monitored)


def frontier(cost: np.ndarray, risk: np.ndarray, monitored: np.ndarray) -> np.ndarray:
    """Rank (1, 2, ... by cost) of each (policy, group) on its group's non-dominated frontier of
    (cost, risk), 0 when dominated or not monitored. Ties of both keep the first policy."""
    n_pol, n_g = cost.shape
    rank = np.zeros((n_pol, n_g), dtype=np.int64)
    for g in range(n_g):
        idx = np.flatnonzero(monitored[:, g])
        if idx.size == 0:
            continue
        order = idx[np.lexsort((idx, risk[idx, g], cost[idx, g]))]
        best = math.inf
        r = 0
        for i in order:
            if risk[i, g] < best:
                best = risk[i, g]
                r += 1
                rank[i, g] = r
    return rank


def choose(summary: Summary, criterion: str = "ce") -> np.ndarray:
    """Per group, the index of the policy the criterion prefers (-1 when no policy monitors it):
    ``ce`` the highest certainty equivalent, ``cost_at_risk`` the lowest tail loss; ties to the
    first policy."""
    if criterion not in CRITERIA:
        raise ValueError(f"criterion must be one of {', '.join(CRITERIA)}")
    score = summary.values["ce_usd"] if criterion == "ce" else -summary.values["cost_at_risk_usd"]
    masked = np.where(summary.monitored, score, -np.inf)
    best = np.argmax(masked, axis=0)
    return np.where(summary.monitored.any(axis=0), best, -1)


__all__ = ["Summary", "summarise", "per_path", "frontier", "choose", "certainty_equivalent", "expected_shortfall",
           "CRITERIA", "DEFAULT_RISK_AVERSION", "RESULT_VALUES", "ES_LEVEL"]
