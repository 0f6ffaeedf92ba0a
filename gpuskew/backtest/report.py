"""Charts and the HTML page of a backtest (with the reporting package's matplotlib helpers).

* ``frontier.png``: per group, mean cost against the std of hedged P&L of every policy, the
  frontier, the current limits (star) and the highest certainty equivalent (diamond);
* ``attribution.png``: a waterfall of the mean P&L of the current limits (else the first policy)
  over the per-underlying groups: the book's delta, gamma, theta, vega and other terms, then the
  hedge, funding and costs, to the hedged P&L;
* ``time_in_band.png``: time in band per group, current against best;
* ``trace.png``: one traced path: net delta, band and hedge over time;
* ``report.html``: a self-contained page embedding them, with a table per group.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gpuskew.reporting.pages import house_style, page_template
from gpuskew.reporting.report import _img, _matplotlib, _save_png

#: most groups drawn in the per-group charts (the rest are in the tables)
MAX_CHART_GROUPS: int = 12


def _group_label(row: dict) -> str:
    tags = ", ".join(f"{k}={v}" for k, v in row.items() if k not in ("level", "underlying") and v is not None)
    return f"{row['underlying']} total" if row["level"] == "underlying" else f"{row['underlying']}, {tags}"


def _current_index(run: Any) -> int | None:
    for i, p in enumerate(run.result.policies):
        if p.is_current:
            return i
    return None


def _chart_groups(run: Any) -> list[int]:
    """The monitored groups whose policies differ (more than one distinct mean cost or std), at
    most MAX_CHART_GROUPS, those with the longest frontier first, then in the greeks path's order;
    the first monitored group when no policy differs anywhere."""
    mon = run.result.kernel.monitored
    v = run.summary.values
    groups = [g for g in range(run.greeks.n_groups) if mon[:, g].any()]

    def distinct(g: int) -> int:
        pts = np.round(np.stack([v["mean_cost_usd"][mon[:, g], g], v["std_hedged_pnl_usd"][mon[:, g], g]]), 6)
        return int(np.unique(pts, axis=1).shape[1])

    varied = [g for g in groups if distinct(g) > 1]
    if not varied:
        return groups[:1]
    longest = sorted(varied, key=lambda g: -int((run.summary.frontier_rank[:, g] > 0).sum()))
    return sorted(longest[:MAX_CHART_GROUPS])


def _subplots(n: int, width: float = 4.2, height: float = 3.4) -> tuple[Any, Any, Any]:
    Figure, Canvas = _matplotlib()
    cols = min(3, max(1, n))
    rows = max(1, math.ceil(n / cols))
    fig = Figure(figsize=(width * cols, 0.8 + height * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    return fig, Canvas, axes


def plot_frontier(run: Any, path: Path) -> None:
    v = run.summary.values
    groups = _chart_groups(run)
    fig, Canvas, axes = _subplots(max(1, len(groups)))
    cur = _current_index(run)
    for k, g in enumerate(groups):
        ax = axes[k // axes.shape[1]][k % axes.shape[1]]
        mon = run.result.kernel.monitored[:, g]
        cost, risk = v["mean_cost_usd"][:, g], v["std_hedged_pnl_usd"][:, g]
        ax.scatter(cost[mon], risk[mon], s=12, color="#9aa7b8", label="policy", zorder=2)
        rank = run.summary.frontier_rank[:, g]
        on = np.flatnonzero(rank > 0)
        on = on[np.argsort(rank[on])]
        ax.plot(cost[on], risk[on], "-o", color="#1f5fa8", markersize=4, linewidth=1.6, label="frontier", zorder=3)
        b = int(run.best[g]) if run.best.size else -1
        if b >= 0:
            ax.scatter([cost[b]], [risk[b]], marker="D", s=60, color="#2e7d32", label="best CE", zorder=5)
        if cur is not None and mon[cur]:
            ax.scatter([cost[cur]], [risk[cur]], marker="*", s=180, color="#d32f2f", label="current limits",
                       zorder=6)
        ax.set_title(_group_label(run.greeks.groups[g]), fontsize=10, loc="left")
        ax.set_xlabel("mean cost (USD)", fontsize=9)
        ax.set_ylabel("std of hedged P&L (USD)", fontsize=9)
        from matplotlib.ticker import FuncFormatter, MaxNLocator

        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(MaxNLocator(nbins=5))
            axis.set_major_formatter(FuncFormatter(lambda x, _pos: f"{x:,.0f}"))
        ax.grid(True, alpha=0.3)
        if k == 0:
            ax.legend(fontsize=8, loc="best")
    fig.suptitle("Cost against risk per group: every policy, the frontier, the current limits", x=0.01,
                 ha="left", fontsize=12, fontweight="bold")
    _save_png(fig, Canvas, path)


def attribution_terms(run: Any, policy: int) -> list[tuple[str, float]]:
    """Mean waterfall terms (USD) of ``policy`` summed over the per-underlying groups it monitors."""
    v = run.summary.values
    sel = [g for g, row in enumerate(run.greeks.groups)
           if row["level"] == "underlying" and run.result.kernel.monitored[policy, g]]
    tot = lambda name: float(np.sum(v[name][policy, sel])) if sel else 0.0  # noqa: E731
    book = tot("mean_book_pnl_usd")
    delta_book = tot("mean_pnl_delta_usd") - tot("mean_hedge_pnl_usd")
    gamma, theta, vega = tot("mean_pnl_gamma_usd"), tot("mean_pnl_theta_usd"), tot("mean_pnl_vega_usd")
    return [("book delta", delta_book), ("gamma", gamma), ("theta", theta), ("vega", vega),
            ("book other", book - delta_book - gamma - theta - vega), ("hedge", tot("mean_hedge_pnl_usd")),
            ("funding", tot("mean_funding_usd")), ("fees", -tot("mean_fees_usd")),
            ("spread", -tot("mean_spread_usd")), ("impact", -tot("mean_impact_usd")),
            ("hedged P&L", tot("mean_hedged_pnl_usd"))]


def plot_attribution(run: Any, path: Path) -> None:
    Figure, Canvas = _matplotlib()
    cur = _current_index(run)
    policy = cur if cur is not None else 0
    terms = attribution_terms(run, policy)
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax = fig.subplots()
    level = 0.0
    for i, (name, value) in enumerate(terms):
        if name == "hedged P&L":
            ax.bar(i, value, color="#1f5fa8", width=0.65)
            y = value
        else:
            ax.bar(i, value, bottom=level, color="#2e7d32" if value >= 0 else "#d32f2f", width=0.65)
            level += value
            y = level
        ax.annotate(f"{value:,.0f}", (i, max(y, level if name != "hedged P&L" else y)), textcoords="offset points",
                    xytext=(0, 4), ha="center", fontsize=8)
    ax.axhline(0, color="#555555", linewidth=0.8)
    ax.set_xticks(range(len(terms)), [t[0] for t in terms], fontsize=9)
    ax.set_ylabel("mean P&L over paths (USD)", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    who = "current limits" if cur is not None else f"policy {run.result.policies[policy].policy_id}"
    ax.set_title(f"Attribution of the mean hedged P&L, {who}, summed over underlyings", fontsize=12, loc="left",
                 fontweight="bold")
    _save_png(fig, Canvas, path)


def plot_time_in_band(run: Any, path: Path) -> None:
    Figure, Canvas = _matplotlib()
    groups = _chart_groups(run)
    v = run.summary.values["mean_time_in_band"]
    cur = _current_index(run)
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    ax = fig.subplots()
    x = np.arange(len(groups))
    if cur is not None:
        ax.bar(x - 0.2, [100 * v[cur, g] for g in groups], width=0.4, color="#d32f2f", label="current limits")
    ax.bar(x + 0.2, [100 * v[int(run.best[g]), g] if run.best[g] >= 0 else 0 for g in groups], width=0.4,
           color="#2e7d32", label="best certainty equivalent")
    ax.set_xticks(x, [_group_label(run.greeks.groups[g]) for g in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("time in band (%)", fontsize=10)
    ax.set_ylim(0, 105)
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=9)
    ax.set_title("Time in band per group", fontsize=12, loc="left", fontweight="bold")
    _save_png(fig, Canvas, path)


def _trace_key(run: Any) -> tuple[int, int, int] | None:
    """The trace drawn: the current limits' (else any) traced policy on the group it trades most."""
    if not run.result.traces:
        return None
    cur = _current_index(run)
    keys = sorted(run.result.traces)
    trades = run.result.value("trades")
    mine = [k for k in keys if cur is not None and k[0] == cur] or keys
    return max(mine, key=lambda k: (trades[k[2], k[1], k[0]], -k[1]))


def plot_trace(run: Any, path: Path) -> None:
    from gpuskew.kernels import policy as kp

    Figure, Canvas = _matplotlib()
    fig = Figure(figsize=(11, 4.6), layout="constrained")
    ax = fig.subplots()
    key = _trace_key(run)
    if key is None:
        ax.text(0.5, 0.5, "no traced policy", ha="center", va="center")
    else:
        tr = run.result.traces[key]
        m = run.greeks.market
        hours = np.arange(tr.shape[1]) * m.step_seconds / 3600.0
        ax.fill_between(hours, tr[kp.F_LOWER], tr[kp.F_UPPER], color="#1f77b4", alpha=0.15, linewidth=0,
                        label="band")
        ax.plot(hours, tr[kp.F_CENTRE], "--", color="#555555", linewidth=1.0, label="centre")
        ax.plot(hours, tr[kp.F_NET], color="#111111", linewidth=1.2, label="net delta (book + hedge)")
        ax.plot(hours, tr[kp.F_HEDGE], color="#ef8f00", linewidth=1.0, label="hedge")
        ax.set_xlabel("hours from the start", fontsize=10)
        ax.set_ylabel("coins", fontsize=10)
        ax.legend(fontsize=9, loc="best")
        ax.grid(True, alpha=0.3)
        pol = run.result.policies[key[0]]
        ax.set_title(f"{_group_label(run.greeks.groups[key[1]])}, path {key[2]}, policy {pol.policy_id}"
                     f" ({'current limits' if pol.is_current else pol.label})", fontsize=11, loc="left")
    _save_png(fig, Canvas, path)


def chart_writers(run: Any) -> dict[str, Callable[[Path], None]]:
    return {"frontier.png": lambda p: plot_frontier(run, p), "attribution.png": lambda p: plot_attribution(run, p),
            "time_in_band.png": lambda p: plot_time_in_band(run, p), "trace.png": lambda p: plot_trace(run, p)}


def _money(x: float) -> str:
    return "&ndash;" if x is None or not math.isfinite(x) else f"{x:,.0f}"


def _table(run: Any) -> str:
    v = run.summary.values
    cur = _current_index(run)
    head = ("<tr><th>group</th><th>policy</th><th class=num>mean cost</th><th class=num>std hedged</th>"
            "<th class=num>ES 5%</th><th class=num>CE</th><th class=num>in band</th><th class=num>trades</th></tr>")
    body = []
    for g, row in enumerate(run.greeks.groups):
        picks = []
        if cur is not None and run.result.kernel.monitored[cur, g]:
            picks.append(("current", cur))
        if run.best[g] >= 0:
            picks.append(("best CE", int(run.best[g])))
        for name, i in picks:
            pol = run.result.policies[i]
            body.append(
                f"<tr><td>{html.escape(_group_label(row))}</td><td>{name}: <code>{pol.policy_id}</code> "
                f"{html.escape(pol.label)}</td><td class=num>{_money(v['mean_cost_usd'][i, g])}</td>"
                f"<td class=num>{_money(v['std_hedged_pnl_usd'][i, g])}</td>"
                f"<td class=num>{_money(v['es_5pct_usd'][i, g])}</td><td class=num>{_money(v['ce_usd'][i, g])}</td>"
                f"<td class=num>{100 * v['mean_time_in_band'][i, g]:.1f}%</td>"
                f"<td class=num>{v['mean_trades'][i, g]:,.1f}</td></tr>")
    return f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>"


DEFINITIONS: dict[str, str] = {
    "hedged P&L": "book P&amp;L + hedge P&amp;L &minus; fees &minus; half spreads &minus; impact + funding received, "
                  "per path, in USD.",
    "mean cost": "mean over paths of fees + half spreads + impact paid on hedge trades.",
    "ES 5%": "expected shortfall: the mean of the worst 5% of the paths' hedged P&amp;L.",
    "CE": "certainty equivalent under exponential utility: &minus;(1/a) ln(mean exp(&minus;a X)), X the hedged "
          "P&amp;L, a the risk aversion (1/USD).",
    "in band": "share of steps with |skew| &le; 1 before that step's trade.",
    "frontier": "policies no other policy beats on both mean cost and std of hedged P&amp;L.",
}


def write_html(run: Any, path: Path) -> None:
    """report.html, embedding the PNGs written beside it."""
    folder = path.parent
    info = run.info
    m = run.greeks.market
    template = page_template("backtest.html")
    cur = _current_index(run)
    key = _trace_key(run)
    rate = info.get("policy_steps_per_second")
    err = run.greeks.error
    terms = ("the current limits" if cur is not None else "the first policy")
    text = html.escape(
        f"Mean over paths, summed over the per-underlying groups, for {terms}: the book's P&L split into "
        "its delta, gamma, theta and vega terms (second order, from the greeks path) and the rest, then the "
        "hedge's P&L, funding received and the costs paid; the last bar is the hedged P&L.")
    trace_text = "No policy was traced." if key is None else html.escape(
        f"Path {key[2]} of {_group_label(run.greeks.groups[key[1]])}: the net delta (book + hedge, coins), the "
        "band around its centre and the hedge position; traces.parquet holds every traced step.")
    page = template.substitute(
        style=house_style(),
        title=html.escape("Backtest: skew policies against the market"),
        subtitle=html.escape(f"From {info['as_of']}; {m.source}."),
        policies=len(run.result.policies), groups=run.greeks.n_groups, paths=m.n_paths, steps=m.n_steps,
        step_seconds=f"{m.step_seconds:g}", market=html.escape(", ".join(f"{k}: {v}" for k, v in m.models.items())),
        backend=html.escape(f"{run.greeks.backend.get('used')} / {run.result.backend.get('used')}"),
        rate="&ndash;" if not rate else f"{rate:,.3g}",
        full_every=run.greeks.full_every,
        taylor_error=html.escape(f"{err.get('value_rms_usd', 0.0):,.2f} USD "
                                 f"({100 * err.get('value_rms_relative', 0.0):.3f}% of the value moves)"),
        risk_aversion=f"{info['risk_aversion']:g}",
        frontier_chart=_img(folder / "frontier.png", "cost against risk"),
        attribution_text=text, attribution_chart=_img(folder / "attribution.png", "attribution waterfall"),
        time_chart=_img(folder / "time_in_band.png", "time in band"),
        trace_text=trace_text, trace_chart=_img(folder / "trace.png", "a traced path"),
        table=_table(run),
        definitions="<dl>" + "".join(f"<dt>{html.escape(k)}</dt><dd>{v}</dd>" for k, v in DEFINITIONS.items())
                    + "</dl>",
    )
    path.write_text(page, encoding="utf-8")


__all__ = ["chart_writers", "write_html", "attribution_terms", "plot_frontier", "plot_attribution",
           "plot_time_in_band", "plot_trace"]
