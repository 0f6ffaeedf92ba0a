"""Recalibration: estimate the market, sweep around the current limits, propose new ones.

    cal = calibrate(greeks, current_mapping, resolve_hedges, criterion="ce", walk_forward_days=7)
    cal.proposed_toml, cal.diff_text, cal.info                 # never applied automatically

1. **Estimates** per underlying, from the path's index prices: realised vol by close-to-close
   (the sample std of log returns, annualised with the step) and by EWMA (RiskMetrics: lambda =
   0.94 per day, i.e. a half-life of 11.2 days, scaled to the step), each with a 95% confidence
   interval from the asymptotic normal law of a vol estimate, sigma (1 +/- z / sqrt(2 n)) (n the
   returns; for EWMA the effective n = (1 + lambda) / (1 - lambda)); funding statistics (mean,
   std, share positive, min, max, annualised); the hedge costs of the current limits (the cheapest
   allowed instrument's fee, half spread and impact per underlying) and what the sweep paid.
2. **Sweep** around the current limits: one policy per band scale s (default 0.25 ... 4): every
   band of the limits file scaled so that its half-width is s times the current one (fixed:
   coins and USD x s; var: budgets x s; whalley_wilmott: risk aversion / s^3; zakamouline: risk
   aversion / s, exact for H0), floors and caps kept.
3. **Choice** per group by the criterion: ``ce`` the highest certainty equivalent, or
   ``cost_at_risk`` the smallest tail loss (minus the 5% expected shortfall of hedged P&L).
4. **Walk-forward**: the path cut into windows of ``walk_forward_days``; the choice is made in
   each window; a group whose chosen scale moves by more than 2x between consecutive windows is
   flagged ``unstable`` (and keeps its current band in the proposal).
5. **Proposal**: the current limits plus one ``[[group]]`` entry per group whose choice differs
   (matching the group exactly: level, underlying and tags, so it wins over every other entry),
   with the scaled band; a readable diff against the current file.
"""

from __future__ import annotations

import copy
import difflib
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from statistics import NormalDist
from typing import Any, Callable

import numpy as np
import pyarrow as pa

from gpuskew import __version__
from gpuskew.backtest.greeks_path import GreeksPath
from gpuskew.backtest.run import BacktestRun, group_name, run_backtest, sweep_grid
from gpuskew.backtest.stats import CRITERIA, choose, summarise
from gpuskew.errors import InvalidConfig, InvalidInput
from gpuskew.policy.grid import PolicyGrid, PolicyPoint, policy_id, to_toml
from gpuskew.policy.limits import BandSpec, parse_limits
from gpuskew.schema import CALIBRATION_CHOICES, SECONDS_PER_YEAR
from gpuskew.timeutil import iso_z

#: Default band scales swept around the current limits.
DEFAULT_SCALES: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0)
#: RiskMetrics' daily EWMA decay.
RISKMETRICS_LAMBDA: float = 0.94
#: Confidence of the intervals.
CONFIDENCE: float = 0.95
#: A choice moving by more than this factor between walk-forward windows is unstable.
UNSTABLE_RATIO: float = 2.0
SECONDS_PER_DAY: float = 86_400.0


# ---------------------------------------------------------------------------------------------
# estimates


def realised_vol(spot: np.ndarray, step_seconds: float, confidence: float = CONFIDENCE) -> dict[str, float]:
    """Realised vol of index prices ``spot`` (paths x steps+1, USD), annualised: close-to-close and
    EWMA (RiskMetrics' lambda scaled to the step), each with a confidence interval."""
    r = np.diff(np.log(np.asarray(spot, dtype=np.float64)), axis=-1)
    r = r.reshape(-1, r.shape[-1]) if r.ndim > 1 else r[None, :]
    n = int(r.size)
    if n < 2:
        raise InvalidInput("market", "spot", "at least two index prices are needed to estimate a vol")
    per_year = SECONDS_PER_YEAR / step_seconds
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    cc = float(np.sqrt(np.sum((r - r.mean()) ** 2) / (n - 1) * per_year))
    lam = RISKMETRICS_LAMBDA ** (step_seconds / SECONDS_PER_DAY)
    # EWMA of squared returns along each path (zero mean, as RiskMetrics), then pooled over paths
    w = lam ** np.arange(r.shape[1] - 1, -1, -1)
    ewma_var = float(np.mean((r * r) @ w / w.sum()))
    ewma = math.sqrt(ewma_var * per_year)
    n_eff = min(float(n), r.shape[0] * (1 + lam) / (1 - lam))
    return {"close_to_close": cc, "close_to_close_ci_low": cc * (1 - z / math.sqrt(2 * n)),
            "close_to_close_ci_high": cc * (1 + z / math.sqrt(2 * n)), "ewma": ewma,
            "ewma_ci_low": ewma * max(0.0, 1 - z / math.sqrt(2 * n_eff)),
            "ewma_ci_high": ewma * (1 + z / math.sqrt(2 * n_eff)), "ewma_lambda_per_step": lam,
            "returns": n, "confidence": confidence}


def funding_stats(funding: np.ndarray) -> dict[str, float]:
    """Annualised funding rates (positive: longs pay): mean, std, share positive, min, max."""
    f = np.asarray(funding, dtype=np.float64).ravel()
    return {"mean": float(f.mean()), "std": float(f.std()), "share_positive": float(np.mean(f > 0)),
            "min": float(f.min()), "max": float(f.max())}


# ---------------------------------------------------------------------------------------------
# scaling the bands of a limits mapping


def scale_band_table(band: dict, s: float) -> dict:
    """A band table whose half-width is ``s`` times the original (see the module docstring)."""
    out = dict(band)
    model = band.get("model")
    if model == "fixed":
        for k in ("coins", "usd", "lower_coins", "upper_coins", "lower_usd", "upper_usd"):
            if k in out:
                out[k] = out[k] * s
    elif model == "var":
        for k in ("budget_usd", "lower_budget_usd", "upper_budget_usd"):
            if k in out:
                out[k] = out[k] * s
    elif model == "whalley_wilmott":
        out["risk_aversion"] = band["risk_aversion"] / s ** 3
    elif model == "zakamouline":
        out["risk_aversion"] = band["risk_aversion"] / s
    return out


def scaled_mapping(mapping: dict, s: float) -> dict:
    """The limits mapping with every band table scaled by ``s``."""
    m = copy.deepcopy(mapping)
    layers = [m.get("defaults", {})] + list(m.get("underlying", {}).values()) + list(m.get("group", []))
    for layer in layers:
        if isinstance(layer, dict) and isinstance(layer.get("band"), dict):
            layer["band"] = scale_band_table(layer["band"], s)
    return m


def band_table(spec: BandSpec) -> dict:
    """A resolved band spec written back as a limits-file band table."""
    t: dict[str, Any] = {"model": spec.model}
    if spec.model == "fixed":
        for k in ("lower_coins", "upper_coins", "lower_usd", "upper_usd"):
            if getattr(spec, k) is not None:
                t[k] = getattr(spec, k)
    elif spec.model == "var":
        t.update(lower_budget_usd=spec.lower_budget_usd, upper_budget_usd=spec.upper_budget_usd,
                 confidence=spec.confidence, horizon_hours=spec.horizon_hours)
    else:
        t["risk_aversion"] = spec.risk_aversion
        if spec.cost is not None:
            t["cost"] = spec.cost
        if spec.model == "zakamouline":
            t["tau_days"] = spec.tau_days
    for k in ("floor_coins", "floor_usd", "cap_coins", "cap_usd"):
        if getattr(spec, k) is not None:
            t[k] = getattr(spec, k)
    return t


def scale_grid(mapping: dict, scales: tuple[float, ...], source: str) -> PolicyGrid:
    """One policy per band scale; scale 1 is the current limits."""
    if 1.0 not in scales:
        scales = tuple(sorted(set(scales) | {1.0}))
    policies = []
    for s in scales:
        m = scaled_mapping(mapping, s)
        policies.append(PolicyPoint(policy_id(m), {"band_scale": s}, m, parse_limits(m, source=source), s == 1.0))
    return PolicyGrid(source, [], policies, mapping)


# ---------------------------------------------------------------------------------------------


@dataclass
class Calibration:
    """What :func:`calibrate` found and proposes."""

    run: BacktestRun
    info: dict
    choices: pa.Table
    proposed: dict
    proposed_toml: str
    diff_text: str
    windows: list[dict] = field(default_factory=list)


def _windows(greeks: GreeksPath, days: float | None) -> list[tuple[int, int]]:
    m = greeks.market
    if not days:
        return []
    steps = int(round(days * SECONDS_PER_DAY / m.step_seconds))
    if steps < 1 or steps * 2 > m.n_steps:
        raise InvalidConfig("--walk-forward", "DAYS", days, f"needs at least two windows in the market's "
                                                            f"{m.n_steps * m.step_seconds / SECONDS_PER_DAY:g} days")
    return [(a, a + steps) for a in range(0, m.n_steps - steps + 1, steps)]


def calibrate(book: Any, greeks: GreeksPath, current: dict, *, source: str = "<limits>",
              criterion: str = "ce", scales: tuple[float, ...] = DEFAULT_SCALES,
              walk_forward_days: float | None = None, backend: str = "auto", risk_aversion: float = 1e-6,
              resolve_hedges: Callable | None = None, inputs: dict | None = None,
              sweep: Callable | None = None) -> Calibration:
    """Estimate, sweep, choose and propose (see the module docstring). ``book``: the book (its
    instruments resolve hedge instruments; None for a history, whose limits must describe them
    inline); ``greeks``: the greeks path of the period; ``current``: the current limits mapping."""
    if criterion not in CRITERIA:
        raise InvalidConfig("--criterion", "criterion", criterion, f"must be one of {', '.join(CRITERIA)}")
    if any(not (s > 0) for s in scales):
        raise InvalidConfig("--scales", "scales", scales, "every scale must be > 0")
    grid = scale_grid(current, tuple(scales), source)
    m = greeks.market
    run = run_backtest(book, grid, m, backend=backend, risk_aversion=risk_aversion, greeks=greeks, inputs=inputs,
                       resolve_hedges=resolve_hedges, sweep=sweep)
    score_name = "ce_usd" if criterion == "ce" else "cost_at_risk_usd"
    sign = 1.0 if criterion == "ce" else -1.0
    cur = next(i for i, p in enumerate(grid.policies) if p.is_current)

    def pick(summary: Any) -> np.ndarray:
        """The criterion's choice per group; the current limits when nothing beats them."""
        best = choose(summary, criterion)
        score = sign * summary.values[score_name]
        for g in range(best.size):
            if best[g] >= 0 and summary.monitored[cur, g] and not score[best[g], g] > score[cur, g]:
                best[g] = cur
        return best

    chosen = pick(run.summary)
    scale_of = [p.values["band_scale"] for p in grid.policies]

    # walk-forward: the choice in each window (the sweep and its statistics only: no traces, no tables)
    per_window: list[np.ndarray] = []
    windows = _windows(greeks, walk_forward_days)
    for a, b in windows:
        wres, _ = sweep_grid(book, grid, m.window(a, b), greeks.window(a, b), backend=backend,
                             resolve_hedges=resolve_hedges, sweep=sweep)
        per_window.append(pick(summarise(wres, risk_aversion)))
    n_g = greeks.n_groups
    unstable = unstable_flags([[scale_of[i] if i >= 0 else math.nan for i in w] for w in per_window], n_g)

    # the proposal: an exact [[group]] entry per group whose choice differs (stable ones only)
    proposed = copy.deepcopy(current)
    entries: list[dict] = []
    lines: list[str] = []
    rows: dict[str, list] = {k: [] for k in ("window", "current_policy_id", "chosen_policy_id", "scale",
                                             "criterion", "current_score_usd", "chosen_score_usd", "unstable")}
    group_rows: list[int] = []
    v = run.summary.values
    for g, row in enumerate(greeks.groups):
        if chosen[g] < 0 or not run.result.kernel.monitored[cur, g]:
            continue
        c = int(chosen[g])
        s = scale_of[c]
        group_rows.append(g)
        rows["window"].append(-1)
        rows["current_policy_id"].append(grid.policies[cur].policy_id)
        rows["chosen_policy_id"].append(grid.policies[c].policy_id)
        rows["scale"].append(float(s))
        rows["criterion"].append(criterion)
        rows["current_score_usd"].append(float(sign * v[score_name][cur, g]))
        rows["chosen_score_usd"].append(float(sign * v[score_name][c, g]))
        rows["unstable"].append(bool(unstable[g]))
        for w, picks in enumerate(per_window):
            if picks[g] >= 0:
                group_rows.append(g)
                rows["window"].append(w)
                rows["current_policy_id"].append(grid.policies[cur].policy_id)
                rows["chosen_policy_id"].append(grid.policies[int(picks[g])].policy_id)
                rows["scale"].append(float(scale_of[int(picks[g])]))
                rows["criterion"].append(criterion)
                rows["current_score_usd"].append(math.nan)
                rows["chosen_score_usd"].append(math.nan)
                rows["unstable"].append(bool(unstable[g]))
        name = group_name(row)
        old_band = grid.policies[cur].limits.policy_for(row).band
        new_band = grid.policies[c].limits.policy_for(row).band
        if s == 1.0:
            lines.append(f"{name}: keep {_describe(old_band)}")
            continue
        if unstable[g]:
            lines.append(f"{name}: keep {_describe(old_band)} (the choice, x{s:g}, is unstable across windows)")
            continue
        match = {k: val for k, val in row.items() if val is not None}
        entries.append({"match": match, "band": band_table(new_band)})
        lines.append(f"{name}: band {_describe(old_band)} -> {_describe(new_band)} (half-width x{s:g}); "
                     f"{criterion} {sign * v[score_name][cur, g]:,.0f} -> {sign * v[score_name][c, g]:,.0f} USD; "
                     f"mean cost {v['mean_cost_usd'][cur, g]:,.0f} -> {v['mean_cost_usd'][c, g]:,.0f} USD; "
                     f"std {v['std_hedged_pnl_usd'][cur, g]:,.0f} -> {v['std_hedged_pnl_usd'][c, g]:,.0f} USD")
    if entries:
        proposed.setdefault("group", [])
        proposed["group"] = list(proposed["group"]) + entries
    proposed_limits = parse_limits(proposed, source="limits.proposed.toml")
    for e in entries:  # the proposal resolves to the chosen bands
        assert band_table(proposed_limits.policy_for(e["match"]).band) == e["band"]
    period = f"{iso_z(m.start)} to {iso_z(m.time_at(m.n_steps))}"
    header = (f"Proposed by gpuskew calibrate {__version__} on {iso_z(datetime.now(timezone.utc).replace(microsecond=0))}"
              f"\nfrom {m.source}, {period} ({m.n_paths} path(s));\ncriterion {criterion}; band scales "
              f"{', '.join(f'{x:g}' for x in grid_scales(grid))}.\nNot applied automatically: review the diff, "
              "then pass it to gpuskew run --limits.")
    proposed_toml = to_toml(proposed, header)
    current_toml = to_toml(current)
    udiff = "".join(difflib.unified_diff(current_toml.splitlines(True), to_toml(proposed).splitlines(True),
                                         "limits (current)", "limits.proposed.toml"))
    diff_text = ("Per group (criterion " + criterion + "):\n" + "\n".join(f"  {ln}" for ln in lines)
                 + "\n\nThe file:\n" + (udiff or "(no change)\n"))
    gt = greeks.group_table.take(pa.array(group_rows, pa.int64()))
    cols = {n: gt[n] for n in gt.column_names}
    cols.update({k: val for k, val in rows.items()})
    schema = CALIBRATION_CHOICES.arrow_schema(greeks.tags)
    choices = pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema)
    realised = {u: realised_vol(m.spot[:, j, :], m.step_seconds) for j, u in enumerate(m.underlyings)}
    info = {
        "version": __version__,
        "period": {"start": iso_z(m.start), "end": iso_z(m.time_at(m.n_steps)), "paths": m.n_paths,
                   "steps": m.n_steps, "step_seconds": m.step_seconds, "source": m.source},
        "criterion": criterion, "scales": grid_scales(grid), "risk_aversion": risk_aversion,
        "estimates": {
            "realised_vol": realised,
            "funding": {u: funding_stats(m.funding[:, j, :]) for j, u in enumerate(m.underlyings)},
            "hedge_costs": _hedge_costs(run, cur),
        },
        "choices": [{"group": group_name(greeks.groups[g]), "scale": float(scale_of[int(chosen[g])]),
                     "policy_id": grid.policies[int(chosen[g])].policy_id, "unstable": bool(unstable[g])}
                    for g in range(n_g) if chosen[g] >= 0 and run.result.kernel.monitored[cur, g]],
        "walk_forward": {"days": walk_forward_days, "windows": len(windows),
                         "unstable_groups": [group_name(greeks.groups[g]) for g in range(n_g) if unstable[g]]},
        "greeks_path": dict(greeks.error),
        "proposed_changes": len(entries),
        "warnings": list(run.info["warnings"]),
    }
    return Calibration(run, info, choices, proposed, proposed_toml, diff_text,
                       [{"start": a, "end": b} for a, b in windows])


def unstable_flags(scales_by_window: list[list[float]], n_groups: int) -> np.ndarray:
    """Per group: does its chosen scale move by more than UNSTABLE_RATIO between consecutive
    windows (NaN: no choice in that window, skipped)?"""
    out = np.zeros(n_groups, dtype=bool)
    for g in range(n_groups):
        picks = [w[g] for w in scales_by_window if math.isfinite(w[g])]
        out[g] = any(max(x / y, y / x) > UNSTABLE_RATIO for x, y in zip(picks, picks[1:]))
    return out


def grid_scales(grid: PolicyGrid) -> list[float]:
    return [float(p.values["band_scale"]) for p in grid.policies]


def _describe(band: BandSpec) -> str:
    t = band_table(band)
    return f"{t.pop('model')}(" + ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in t.items()) + ")"


def _hedge_costs(run: BacktestRun, cur: int) -> dict[str, dict]:
    """Per underlying: the cheapest allowed hedge of the current limits and what the sweep paid per
    unit of notional traded (the per-underlying groups)."""
    out: dict[str, dict] = {}
    v = run.summary.values
    kp_params = run.result.kernel.params
    from gpuskew.kernels import policy as kp

    for g, row in enumerate(run.greeks.groups):
        if row["level"] != "underlying" or not run.result.kernel.monitored[cur, g]:
            continue
        x = kp_params[cur, g]
        turnover = float(v["mean_turnover_coins"][cur, g])
        out[row["underlying"]] = {
            "hedge_instrument": run.result.kernel.hedge[cur][g],
            "fee": float(x[kp.P_FEE]), "half_spread": float(x[kp.P_HALF_SPREAD]), "impact": float(x[kp.P_IMPACT]),
            "mean_cost_usd": float(v["mean_cost_usd"][cur, g]),
            "mean_turnover_coins": turnover,
            "mean_trades": float(v["mean_trades"][cur, g]),
        }
    return out


__all__ = ["Calibration", "calibrate", "unstable_flags", "realised_vol", "funding_stats", "scale_band_table", "scaled_mapping",
           "band_table", "scale_grid", "DEFAULT_SCALES", "CRITERIA"]
