"""The adherence report: how well each group kept to its target over a period of runs.

    summary = build_report("history/", "out/report", start="2026-11-20T00:00:00Z")

reads the history's ``adherence`` (and ``hedges``) datasets and writes, atomically
(:func:`gpuskew.io.publish_run`), into ``out_dir``: ``report.parquet`` and ``report.csv`` (one row
per group), ``delta_<UNDERLYING>.png`` (net delta against target and band over time),
``skew_histogram.png``, a self-contained ``report.html`` and ``summary.json``.

Metric definitions (all per group, over the runs with start <= as_of <= end):

* **Run time weights.** Each run's state holds until the next run of the history (the grid of
  distinct run times, shared by all groups); the last run's state holds for the median interval
  between runs (0 when the period has one run; then every time-weighted metric falls back to a
  plain average over runs). A group absent from a run holds no time for that interval.
* ``fraction_in_band``: time in band (|skew| <= 1) / time observed.
* ``breach_count``: breach episodes, i.e. runs in ``breach`` or ``critical`` whose previous run of
  the group was not (a group already in breach at the first run of the period counts one).
* ``breach_minutes_total`` / ``breach_minutes_longest``: time held in breach-or-worse, in total
  and for the longest episode (minutes).
* ``mean_abs_skew`` (time-weighted) and ``max_abs_skew``.
* ``mean_time_to_recover_minutes``: mean, over episodes that recovered within the period, of the
  time from the first run of the episode to the first later run back in band (|skew| <= 1);
  null when no episode recovered.
* ``hedge_proposals``, ``hedge_contracts_abs`` (sum of |contracts|), ``hedge_coins_abs`` (sum of
  |coin_delta|, coins), ``hedge_est_cost_usd``: the corrective hedges proposed in the period
  (each run's proposal counted: a hedge not executed is proposed again next run).

Several runs with the same as_of (different run_id) are deduplicated: the largest run_id wins, as
in :func:`gpuskew.history.previous_adherence`.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import io as _io
from gpuskew.adherence.alerts import DEFAULT_THRESHOLDS
from gpuskew.errors import InvalidInput
from gpuskew.reporting.pages import house_style, img_tag, matplotlib_figure, page_template, safe_name, save_png
from gpuskew.core.groups import group_id, group_sort_key
from gpuskew.history import read_history
from gpuskew.timeutil import iso_z, to_utc
from gpuskew.schema import ADHERENCE, ADHERENCE_STATUSES, HEDGES, REPORT, TIMESTAMP

__all__ = ["REPORT_COLUMNS", "REPORT_FILES", "build_report", "report_table", "run_weights", "group_metrics"]

#: the report's fixed file names (besides delta_<UNDERLYING>.png and explain_daily.parquet): an --out
#: holding one of them needs --overwrite
REPORT_FILES: tuple[str, ...] = ("report.parquet", "report.csv", "skew_histogram.png", "report.html", "summary.json")

# the chart helpers (gpuskew.reporting.pages) under their earlier names, still imported by the backtest reports
_matplotlib, _save_png, _img, _safe_name = matplotlib_figure, save_png, img_tag, safe_name

_RANK = {s: i for i, s in enumerate(ADHERENCE_STATUSES)}
_BREACH = _RANK["breach"]

#: Report table columns after level, underlying and the tag columns: (name, type, unit, doc).
REPORT_COLUMNS: tuple[tuple[str, pa.DataType, str, str], ...] = tuple(
    (c.name, c.type, c.unit, c.doc) for c in REPORT.columns[2:])

#: Plain-words definitions shown in the HTML report, by column.
DEFINITIONS: dict[str, str] = {
    "group": "Level (underlying total, or the tags the book is grouped by), underlying and tag values.",
    "n_runs": "Number of runs in the period in which the group was monitored.",
    "fraction_in_band": "Share of the observed time the net delta was inside its band (|skew| &le; 1). "
                        "Each run's state counts until the next run; the last run's state counts for "
                        "the median interval between runs.",
    "breach_count": "Number of times the group went into breach or critical (a group already in "
                    "breach at the start of the period counts once).",
    "breach_minutes_total": "Total time spent in breach or critical, in minutes.",
    "breach_minutes_longest": "Longest single stay in breach or critical, in minutes.",
    "mean_time_to_recover_minutes": "Average time from entering breach to the first run back inside "
                                    "the band, in minutes; blank when no breach recovered in the period.",
    "mean_abs_skew": "Time-weighted average of |skew|, where skew = deviation from target divided by "
                     "the band half-width on that side (1 = on the band edge).",
    "max_abs_skew": "Largest |skew| seen in the period.",
    "worst_status": "Worst status in the period: ok, warn (|skew| above the warn threshold, default "
                    "0.8), breach (above the band, default 1.0) or critical (default 1.5).",
    "last_status": "Status at the group's last run in the period.",
    "hedge_contracts_abs": "Corrective hedges proposed over the period: sum of |contracts| "
                           "(each run's proposal counted; a hedge not executed is proposed again).",
    "hedge_coins_abs": "The same proposals in coins of the underlying (sum of |coin delta|).",
    "hedge_est_cost_usd": "Sum of the proposals' estimated cost (fees, spread, impact, funding), USD.",
}


@dataclass(eq=False)
class _Group:
    """One group's run series (arrays aligned on its runs, sorted by time)."""

    key: dict
    run_index: np.ndarray   # index into the run grid
    skew: np.ndarray
    status: np.ndarray      # severity ranks 0..3
    actual: np.ndarray      # coins
    target: np.ndarray      # coins
    lower: np.ndarray       # coins
    upper: np.ndarray       # coins


# ---------------------------------------------------------------------------------------------
# metrics


def run_weights(times: np.ndarray) -> np.ndarray:
    """Minutes each run's state holds: the gap to the next run; the last run holds for the median
    gap (0 with a single run). ``times`` is sorted datetime64."""
    t = np.asarray(times, dtype="datetime64[us]").astype(np.int64) / 60e6
    if t.size == 0:
        return np.zeros(0)
    gaps = np.diff(t)
    last = float(np.median(gaps)) if gaps.size else 0.0
    return np.append(gaps, last)


def _episodes(flags: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges of consecutive True runs."""
    out, start = [], None
    for i, f in enumerate(flags):
        if f and start is None:
            start = i
        elif not f and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(flags)))
    return out


def _weighted_mean(x: np.ndarray, w: np.ndarray) -> float:
    ok = np.isfinite(x)
    if not ok.any():
        return math.nan
    if w[ok].sum() > 0:
        return float(np.sum(x[ok] * w[ok]) / w[ok].sum())
    return float(np.mean(x[ok]))


def group_metrics(t_minutes: np.ndarray, w_minutes: np.ndarray, skew: np.ndarray,
                  status_rank: np.ndarray) -> dict[str, Any]:
    """The adherence metrics of one group from its runs (sorted by time).

    t_minutes: run times (minutes, any origin); w_minutes: minutes each run's state holds;
    skew: dimensionless; status_rank: 0 ok, 1 warn, 2 breach, 3 critical.
    """
    abs_skew = np.abs(np.asarray(skew, dtype=np.float64))
    w = np.asarray(w_minutes, dtype=np.float64)
    in_band = abs_skew <= 1.0
    breach = np.asarray(status_rank) >= _BREACH
    total_w = float(w.sum())
    fraction = float(np.sum(w * in_band) / total_w) if total_w > 0 else float(np.mean(in_band))
    episodes = _episodes(breach)
    durations = [float(w[a:b].sum()) for a, b in episodes]
    recover = []
    for a, b in episodes:
        back = np.flatnonzero(in_band[b:])
        if back.size:
            recover.append(float(t_minutes[b + back[0]] - t_minutes[a]))
    finite = abs_skew[np.isfinite(abs_skew)]
    return {
        "observed_minutes": total_w,
        "fraction_in_band": fraction,
        "breach_count": len(episodes),
        "breach_minutes_total": float(sum(durations)),
        "breach_minutes_longest": float(max(durations)) if durations else 0.0,
        "mean_time_to_recover_minutes": float(np.mean(recover)) if recover else None,
        "mean_abs_skew": _weighted_mean(abs_skew, w),
        "max_abs_skew": float(finite.max()) if finite.size else math.nan,
    }


# ---------------------------------------------------------------------------------------------
# reading the history into per-group series


def _dedupe_runs(table: pa.Table) -> pa.Table:
    """One row per (as_of, group): when several runs at one as_of hold the same group (a run and its
    retry with other inputs), the row of the largest run_id wins; runs with other grouping levels
    at the same as_of keep their own groups."""
    if table.num_rows == 0 or "run_id" not in table.column_names:
        return table
    tags = ADHERENCE.tag_columns(table) if "level" in table.column_names else []
    rows = table.select(["as_of", "run_id", "level", "underlying", *tags]).to_pylist()
    best: dict[tuple, tuple[str, int]] = {}
    for i, r in enumerate(rows):
        k = (r["as_of"], group_id(r, tags))
        if k not in best or (r["run_id"] or "") > best[k][0]:
            best[k] = (r["run_id"] or "", i)
    keep = sorted(i for _, i in best.values())
    return table.take(pa.array(keep, pa.int64())) if len(keep) != table.num_rows else table


def _series(adherence: pa.Table, grid: np.ndarray) -> list[_Group]:
    """Split the adherence rows into per-group series aligned on the run grid."""
    tags = ADHERENCE.tag_columns(adherence)
    keys = ["level", "underlying", *tags]
    times = adherence.column("as_of").cast(TIMESTAMP).to_numpy(zero_copy_only=False) \
        .astype("datetime64[us]")
    run_index = np.searchsorted(grid, times)
    cols = {c: adherence.column(c).to_numpy(zero_copy_only=False).astype(np.float64)
            for c in ("skew", "actual", "target", "lower", "upper")}
    status = np.array([_RANK.get(s or "ok", 0) for s in adherence.column("status").to_pylist()])
    members: dict[tuple, list[int]] = {}
    first: dict[tuple, dict] = {}
    for i, row in enumerate(adherence.select(keys).to_pylist()):
        gid = group_id(row, tags)
        members.setdefault(gid, []).append(i)
        first.setdefault(gid, row)
    groups = []
    for gid in sorted(members, key=group_sort_key):
        idx = np.asarray(members[gid])
        idx = idx[np.argsort(run_index[idx], kind="stable")]
        groups.append(_Group(key=first[gid], run_index=run_index[idx], status=status[idx],
                             **{c: v[idx] for c, v in cols.items()}))
    return groups


def _hedge_totals(hedges: pa.Table, grid: np.ndarray) -> dict[tuple, dict[str, float]]:
    """Distinct hedge proposals per group: a proposal that stands unexecuted is proposed again at
    every run, so consecutive runs (on the run grid) proposing the same instrument and side count
    as one proposal, sized by its largest |contracts| (and that run's coins and cost)."""
    if hedges.num_rows == 0:
        return {}
    tags = HEDGES.tag_columns(hedges)
    names = ["as_of", "level", "underlying", *tags, "hedge_instrument", "side", "contracts", "coin_delta",
             "est_cost_usd"]
    rows = hedges.select([c for c in names if c in hedges.column_names]).to_pylist()
    times = hedges.column("as_of").cast(TIMESTAMP).to_numpy(zero_copy_only=False).astype("datetime64[us]")
    run_index = np.searchsorted(grid, times)
    by_group: dict[tuple, list[tuple[int, dict]]] = {}
    for i, row in enumerate(rows):
        by_group.setdefault(group_id(row, tags), []).append((int(run_index[i]), row))
    out: dict[tuple, dict[str, float]] = {}
    for gid, items in by_group.items():
        items.sort(key=lambda x: x[0])
        acc = {"n": 0, "contracts": 0.0, "coins": 0.0, "cost": 0.0}
        streak: dict | None = None
        prev_run, prev_key = None, None

        def close(s: dict | None) -> None:
            if s is not None:
                acc["n"] += 1
                acc["contracts"] += s["contracts"]
                acc["coins"] += s["coins"]
                acc["cost"] += s["cost"]

        for run, row in items:
            key = (row.get("hedge_instrument"), row.get("side"))
            contracts = abs(row.get("contracts") or 0.0)
            cost = row.get("est_cost_usd")
            size = {"contracts": contracts, "coins": abs(row.get("coin_delta") or 0.0),
                    "cost": cost if cost is not None and math.isfinite(cost) else 0.0}
            if streak is not None and key == prev_key and prev_run is not None and run == prev_run + 1:
                if contracts > streak["contracts"]:
                    streak.update(size)
            else:
                close(streak)
                streak = size
            prev_run, prev_key = run, key
        close(streak)
        out[gid] = acc
    return out


def report_table(adherence: pa.Table, hedges: pa.Table | None = None,
                 executed: pa.Table | None = None) -> pa.Table:
    """The per-group metrics table (see the module docstring) from history rows.

    ``adherence``: rows of one or more runs (as from :func:`gpuskew.history.read_history`);
    ``hedges``: the hedges proposed in the same runs, or None; ``executed``: hedge executions
    (``level``, ``underlying``, tags, ``coin_delta``) where known, or None.
    """
    adherence = _dedupe_runs(adherence)
    grid = np.unique(adherence.column("as_of").cast(TIMESTAMP).to_numpy(zero_copy_only=False)
                     .astype("datetime64[us]"))
    if hedges is None or hedges.num_rows == 0:
        hedges = pa.table({})
    else:
        hedges = _dedupe_runs(hedges)
    weights = run_weights(grid)
    grid_min = grid.astype(np.int64) / 60e6
    hedge = _hedge_totals(hedges, grid) if hedges.num_rows else {}
    done: dict[tuple, float] = {}
    if executed is not None and executed.num_rows:
        etags = HEDGES.tag_columns(executed)
        for row in executed.to_pylist():
            gid = group_id(row, etags)
            done[gid] = done.get(gid, 0.0) + abs(row.get("coin_delta") or 0.0)
    tags = ADHERENCE.tag_columns(adherence)
    keys = ["level", "underlying", *tags]
    rows = []
    for g in _series(adherence, grid):
        m = group_metrics(grid_min[g.run_index], weights[g.run_index], g.skew, g.status)
        gid = group_id(g.key, tags)
        h = hedge.get(gid, {"n": 0, "contracts": 0.0, "coins": 0.0, "cost": 0.0})
        rows.append({**{k: g.key.get(k) for k in keys}, **m,
                     "n_runs": int(g.run_index.size),
                     "first_as_of": grid[g.run_index[0]].astype(_dt.datetime).replace(tzinfo=_dt.timezone.utc),
                     "last_as_of": grid[g.run_index[-1]].astype(_dt.datetime).replace(tzinfo=_dt.timezone.utc),
                     "worst_status": ADHERENCE_STATUSES[int(g.status.max())],
                     "last_status": ADHERENCE_STATUSES[int(g.status[-1])],
                     "hedge_proposals": h["n"], "hedge_contracts_abs": h["contracts"],
                     "hedge_coins_abs": h["coins"], "hedge_est_cost_usd": h["cost"],
                     "hedge_executed_coins_abs": done.get(gid) if executed is not None else None})
    return pa.Table.from_pylist(rows, schema=REPORT.arrow_schema(tags))


# ---------------------------------------------------------------------------------------------
# charts (matplotlib, Agg canvas, imported lazily)

#: Drawing width (minutes) of the last run when it holds no time (a period of a single run).
_SINGLE_RUN_DRAW_MINUTES: float = 5.0

_LEGEND_ORDER = ("band (lower to upper edge)", "target", "net delta (actual)", "run in breach",
                 "run critical")

_STATUS_COLOURS = {"ok": "#2e7d32", "warn": "#ef8f00", "breach": "#d32f2f", "critical": "#7b1fa2"}


def _coin_formatter() -> Any:
    """Tick labels with thousands separators (12,500), short decimals for small values."""
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: f"{x:,.0f}" if abs(x) >= 1000 else f"{x:g}")


def _style_time_axis(ax: Any) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.grid(True, alpha=0.3)


def _group_title(g: _Group, breach_minutes: float | None = None) -> str:
    tags = ", ".join(f"{k} = {v}" for k, v in g.key.items()
                     if k not in ("level", "underlying") and v is not None)
    title = f"{g.key['underlying']} total" if g.key["level"] == "underlying" else f"{g.key['underlying']}, {tags}"
    if breach_minutes:
        title += f"  (in breach {breach_minutes:,.0f} min)"
    return title


def _plot_group(ax: Any, g: _Group, grid: np.ndarray, hold: np.ndarray, title: str) -> None:
    """Net delta (step line), target (dashed), band (shaded) of one group; breach runs marked."""
    t = grid[g.run_index]
    last_hold = hold[g.run_index[-1]] if hold[g.run_index[-1]] > 0 else _SINGLE_RUN_DRAW_MINUTES
    t_end = np.append(t, t[-1] + np.timedelta64(int(round(last_hold * 60e6)), "us"))
    ext = lambda a: np.append(a, a[-1])  # noqa: E731 - the last run's state holds to t_end
    tt = t_end.astype("datetime64[ms]").astype(_dt.datetime)
    ax.fill_between(tt, ext(g.lower), ext(g.upper), step="post", color="#1f77b4", alpha=0.15,
                    linewidth=0, label="band (lower to upper edge)")
    ax.step(tt, ext(g.target), where="post", color="#555555", linestyle="--", linewidth=1.3,
            label="target")
    ax.step(tt, ext(g.actual), where="post", color="#111111", linewidth=1.8, label="net delta (actual)")
    if t.size <= 60:  # few runs: mark each run's value
        ax.plot(tt[:-1], g.actual, "o", color="#111111", markersize=3.5)
    for status, label in (("breach", "run in breach"), ("critical", "run critical")):
        mark = g.status == _RANK[status]
        if mark.any():
            ax.scatter(tt[:-1][mark], g.actual[mark], s=24, color=_STATUS_COLOURS[status], zorder=5,
                       label=label)
    ax.set_title(title, fontsize=12, loc="left")
    ax.set_ylabel("net delta (coins)", fontsize=10)
    ax.yaxis.set_major_formatter(_coin_formatter())
    _style_time_axis(ax)


def _plot_underlying(groups: list[_Group], table: pa.Table, grid: np.ndarray, hold: np.ndarray,
                     underlying: str, top: int, path: Path) -> None:
    """One PNG per underlying: its total (coarsest level) then the ``top`` groups by breach time."""
    Figure, Canvas = matplotlib_figure()
    breach_time = dict(zip(map(id, groups), table.column("breach_minutes_total").to_pylist()))
    mine = [g for g in groups if g.key["underlying"] == underlying]
    total = [g for g in mine if g.key["level"] == "underlying"] or mine[:1]
    others = sorted((g for g in mine if all(g is not x for x in total) and breach_time[id(g)] > 0),
                    key=lambda g: -breach_time[id(g)])[:top]
    panels = total + others
    fig = Figure(figsize=(11, 1.0 + 2.9 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, sharex=True)[:, 0]
    for ax, g in zip(axes, panels):
        _plot_group(ax, g, grid, hold, _group_title(g, breach_time[id(g)]))
    axes[-1].set_xlabel("time (UTC)", fontsize=10)
    found: dict[str, Any] = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            found.setdefault(lab, h)
    labels = {lab: found[lab] for lab in _LEGEND_ORDER if lab in found}
    fig.legend(list(labels.values()), list(labels), loc="outside lower center", ncol=len(labels),
               fontsize=9.5, frameon=False)
    sub = f"; below: the {len(others)} group{'s' if len(others) > 1 else ''} longest in breach" if others else ""
    fig.suptitle(f"{underlying}: net delta against target and band (coins){sub}", x=0.01, ha="left",
                 fontsize=13, fontweight="bold")
    save_png(fig, Canvas, path)


def _plot_skew_histogram(adherence: pa.Table, thresholds: Mapping[str, float], path: Path) -> None:
    """Histogram of skew over all groups and runs, stacked by level; band edges and thresholds."""
    Figure, Canvas = matplotlib_figure()
    lim = max(3.0, thresholds["critical"] * 1.5)
    skew = adherence.column("skew").to_numpy(zero_copy_only=False).astype(np.float64)
    level = np.array(adherence.column("level").to_pylist(), dtype=object)
    ok = np.isfinite(skew)
    clipped = np.clip(skew, -lim, lim)
    levels = sorted(set(level[ok]), key=lambda v: (v != "underlying", v))
    fig = Figure(figsize=(11, 4.8), layout="constrained")
    ax = fig.subplots()
    bins = np.linspace(-lim, lim, 49)
    palette = ["#4c72b0", "#8fb0d9", "#b8b8b8", "#707070", "#d0d0e8"]
    ax.hist([clipped[ok & (level == lv)] for lv in levels], bins=bins, stacked=True,
            color=[palette[i % len(palette)] for i in range(len(levels))],
            label=[f"level: {lv}" for lv in levels], edgecolor="white", linewidth=0.4)
    ax.axvspan(-1, 1, color="#1f77b4", alpha=0.08, label="inside band (|skew| \u2264 1)")
    marks = [(1.0, _STATUS_COLOURS["breach"], "-", "band edge \u00b11"
              + (" = breach" if thresholds["breach"] == 1.0 else "")),
             (thresholds["warn"], _STATUS_COLOURS["warn"], "--", f"warn \u00b1{thresholds['warn']:g}"),
             (thresholds["critical"], _STATUS_COLOURS["critical"], "--",
              f"critical \u00b1{thresholds['critical']:g}")]
    if thresholds["breach"] != 1.0:
        marks.append((thresholds["breach"], _STATUS_COLOURS["breach"], "--",
                      f"breach \u00b1{thresholds['breach']:g}"))
    for x, colour, style, label in marks:
        ax.axvline(x, color=colour, linestyle=style, linewidth=1.5, label=label)
        ax.axvline(-x, color=colour, linestyle=style, linewidth=1.5)
    for side, beyond in ((-1, int(np.sum(skew[ok] < -lim))), (1, int(np.sum(skew[ok] > lim)))):
        if beyond:
            sign = "\u2212" if side < 0 else "+"
            ax.annotate(f"{beyond} beyond {sign}{lim:g}", xy=(side * lim, 1.0),
                        xycoords=("data", "axes fraction"), xytext=(-6 * side, -14),
                        textcoords="offset points", ha="right" if side > 0 else "left", fontsize=9,
                        color="#333333", bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8})
    ax.set_xlim(-lim, lim)
    ax.set_xlabel(f"skew = deviation / band half-width (dimensionless; values beyond \u00b1{lim:g} "
                  "shown at the edges)", fontsize=10)
    ax.set_ylabel("group-runs", fontsize=10)
    ax.set_title(f"Distribution of skew: {int(ok.sum())} group-runs", fontsize=13, loc="left",
                 fontweight="bold")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    save_png(fig, Canvas, path)


# ---------------------------------------------------------------------------------------------
# HTML

_HTML_COLUMNS: tuple[tuple[str, str], ...] = (
    ("n_runs", "runs"), ("fraction_in_band", "in band"), ("breach_count", "breaches"),
    ("breach_minutes_total", "breach min (total)"), ("breach_minutes_longest", "breach min (longest)"),
    ("mean_time_to_recover_minutes", "mean recovery (min)"), ("mean_abs_skew", "mean |skew|"),
    ("max_abs_skew", "max |skew|"), ("worst_status", "worst"), ("last_status", "last"),
    ("hedge_contracts_abs", "hedge contracts"), ("hedge_coins_abs", "hedge coins"),
    ("hedge_est_cost_usd", "hedge cost (USD)"),
)


def _fmt(name: str, v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if name == "fraction_in_band":
        return f"{100 * v:.1f}%"
    if name in ("worst_status", "last_status"):
        return f'<span class="st st-{html.escape(v)}">{html.escape(v)}</span>'
    if isinstance(v, int):
        return f"{v:,d}"
    if name in ("mean_abs_skew", "max_abs_skew"):
        return f"{v:.2f}"
    if name == "hedge_coins_abs":
        return f"{v:,.3f}"
    if name == "hedge_contracts_abs":
        return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"
    return f"{v:,.1f}" if name.endswith("minutes") or name.endswith("_total") or name.endswith("_longest") \
        else f"{v:,.2f}"


def _html_table(table: pa.Table) -> str:
    keys = REPORT.key_columns(table)
    head = "".join(f"<th>{html.escape(k)}</th>" for k in keys)
    head += "".join(f'<th class="num">{html.escape(label)}</th>' for _, label in _HTML_COLUMNS)
    body = []
    for row in table.to_pylist():
        cls = f' class="row-{row["worst_status"]}"'
        cells = "".join(f"<td>{html.escape(str(row[k])) if row[k] is not None else ''}</td>" for k in keys)
        cells += "".join(f'<td class="num">{_fmt(n, row[n])}</td>' for n, _ in _HTML_COLUMNS)
        body.append(f"<tr{cls}>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _definitions() -> str:
    labels = {"group": "level, underlying, tags", **dict(_HTML_COLUMNS)}
    items = "".join(f"<dt>{html.escape(labels.get(k, k))}<br><code>{html.escape(k)}</code></dt><dd>{v}</dd>"
                    for k, v in DEFINITIONS.items())
    return f"<dl>{items}</dl>"


def _status_counts(table: pa.Table) -> str:
    counts = {s: 0 for s in ADHERENCE_STATUSES}
    for s in table.column("worst_status").to_pylist():
        counts[s] += 1
    return " ".join(f'<span class="st st-{s}">{counts[s]} {s}</span>' for s in reversed(ADHERENCE_STATUSES))


def _render_html(summary: Mapping[str, Any], table: pa.Table, charts: list[tuple[Path, str]],
                 explain_section: str = "") -> str:
    """The self-contained HTML page; ``charts``: the delta charts then the skew histogram."""
    template = page_template("report.html")
    first, last = summary["period_start"][:10], summary["period_end"][:10]
    return template.substitute(
        style=house_style(),
        title=html.escape("Inventory skew adherence report, " + (first if first == last else f"{first} to {last}")),
        period_start=html.escape(summary["period_start"]),
        period_end=html.escape(summary["period_end"]),
        runs=summary["runs"], groups=summary["groups"],
        median_interval=f"{summary['median_run_interval_minutes']:.1f}",
        history=html.escape(summary["history"]),
        status_counts=_status_counts(table),
        delta_charts="\n".join(img_tag(p, alt) for p, alt in charts[:-1]),
        skew_chart=img_tag(*charts[-1]),
        table=_html_table(table),
        definitions=_definitions(),
        explain_section=explain_section,
    )


# ---------------------------------------------------------------------------------------------
# build


_iso = iso_z


def _csv_writer(table: pa.Table) -> Any:
    def write(path: Path) -> None:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, path)
    return write


def build_report(history_dir: str | Path, out_dir: str | Path,
                 start: _dt.datetime | str | None = None, end: _dt.datetime | str | None = None,
                 *, overwrite: bool = False, thresholds: Mapping[str, float] | None = None,
                 top_groups: int = 3) -> dict[str, Any]:
    """Build the adherence report of the runs with start <= as_of <= end (UTC) into ``out_dir``.

    Writes report.parquet, report.csv, delta_<UNDERLYING>.png, skew_histogram.png, report.html
    and summary.json with :func:`gpuskew.io.publish_run` (all or nothing; an existing report needs
    ``overwrite``). ``thresholds`` are the warn/critical lines drawn on the skew histogram
    (default 0.8 / 1.5); ``top_groups``: groups per underlying chart besides the total, those
    longest in breach. Returns the summary (also summary.json). No run in range ->
    :class:`InvalidInput` naming the history folder.
    """
    lo = to_utc(start) if start is not None else None
    hi = to_utc(end) if end is not None else None
    adherence = read_history(history_dir, "adherence", lo, hi)
    if adherence.num_rows == 0:
        window = "" if lo is None and hi is None else \
            f" between {_iso(lo) if lo else 'the start'} and {_iso(hi) if hi else 'the end'}"
        raise InvalidInput(source=str(history_dir), column=None,
                           rule=f"no adherence runs in the history folder{window}; "
                                "append runs with `gpuskew run ... --history DIR`")
    hedges = read_history(history_dir, "hedges", lo, hi)
    thr = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    adherence = _dedupe_runs(adherence)
    executed = read_history(history_dir, "executions", lo, hi)
    table = report_table(adherence, hedges, executed if executed.num_rows else None)
    grid = np.unique(adherence.column("as_of").cast(TIMESTAMP).to_numpy(zero_copy_only=False)
                     .astype("datetime64[us]"))
    hold = run_weights(grid)
    groups = _series(adherence, grid)
    underlyings = sorted(set(adherence.column("underlying").to_pylist()))
    to_dt = lambda x: x.astype("datetime64[us]").astype(_dt.datetime).replace(tzinfo=_dt.timezone.utc)  # noqa: E731
    summary: dict[str, Any] = {
        "history": str(history_dir),
        "from": _iso(lo) if lo else None, "to": _iso(hi) if hi else None,
        "period_start": _iso(to_dt(grid[0])), "period_end": _iso(to_dt(grid[-1])),
        "runs": int(grid.size), "groups": table.num_rows,
        "median_run_interval_minutes": float(hold[-1]),
        "worst_status_by_underlying": {},
        "breach_count_total": int(pc.sum(table.column("breach_count")).as_py() or 0),
    }
    for row in table.select(["underlying", "worst_status"]).to_pylist():
        u, s = row["underlying"], row["worst_status"]
        cur = summary["worst_status_by_underlying"].get(u, "ok")
        summary["worst_status_by_underlying"][u] = s if _RANK[s] >= _RANK[cur] else cur
    chart_names = {u: f"delta_{safe_name(u)}.png" for u in underlyings}
    from gpuskew.reporting.explain_section import daily_explain, explain_html

    explain = daily_explain(history_dir, lo, hi)  # None: fewer than two runs with explain inputs
    summary["files"] = ["report.parquet", "report.csv", *chart_names.values(), "skew_histogram.png",
                        *(["explain_daily.parquet"] if explain is not None else []), "report.html", "summary.json"]
    if explain is not None:
        summary["explain_days"] = explain.num_rows

    def html_writer(path: Path) -> None:
        tmp = path.parent
        charts = [(tmp / n, f"{u}: net delta against target and band") for u, n in chart_names.items()]
        charts.append((tmp / "skew_histogram.png", "distribution of skew"))
        path.write_text(_render_html(summary, table, charts, explain_html(explain)), encoding="utf-8")

    files: dict[str, Any] = {
        "report.parquet": lambda p: _io.write_parquet(table, p),
        "report.csv": _csv_writer(table),
    }
    for u, n in chart_names.items():
        files[n] = (lambda u_: lambda p: _plot_underlying(groups, table, grid, hold, u_, top_groups, p))(u)
    files["skew_histogram.png"] = lambda p: _plot_skew_histogram(adherence, thr, p)
    if explain is not None:
        files["explain_daily.parquet"] = lambda p: _io.write_parquet(explain, p)
    files["report.html"] = html_writer  # after the PNGs: it embeds them
    files["summary.json"] = lambda p: _io.write_json(summary, p)
    _io.publish_run(out_dir, files, overwrite=overwrite)
    return summary
