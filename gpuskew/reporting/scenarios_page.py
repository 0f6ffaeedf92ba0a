"""The scenario report page: a heatmap of spot x vol P&L per underlying, full revaluation against
the Taylor estimate, the worst cell marked; the extended moves beside it.

:func:`write_heatmap` draws one PNG per underlying from the ``level == "underlying"`` rows of
``scenarios.parquet``; :func:`render_page` embeds them in a self-contained ``scenarios.html``.
matplotlib is imported only inside the functions that draw (Agg canvas, no display needed).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.reporting.pages import house_style, img_tag, matplotlib_figure, safe_name, save_png

__all__ = ["underlying_rows", "write_heatmap", "render_page", "safe_name"]


def underlying_rows(scenarios: pa.Table, underlying: str) -> dict[str, np.ndarray]:
    """The per-underlying rows of one underlying as arrays, in scenario order."""
    mask = pc.and_(pc.equal(scenarios["level"], "underlying"), pc.equal(scenarios["underlying"], underlying))
    t = scenarios.filter(mask).sort_by("scenario")
    out = {c: t[c].to_numpy(zero_copy_only=False) for c in ("scenario", "spot_move", "weight", "pnl_usd",
                                                            "pnl_taylor_usd", "extended", "worst")}
    out["vol_case"] = np.array(t["vol_case"].to_pylist(), dtype=object)
    return out


def _scale(values: np.ndarray) -> tuple[float, str]:
    top = float(np.nanmax(np.abs(values))) if values.size else 0.0
    for factor, unit in ((1e9, "bn USD"), (1e6, "M USD"), (1e3, "k USD")):
        if top >= factor:
            return factor, unit
    return 1.0, "USD"


def write_heatmap(scenarios: pa.Table, underlying: str, path: str | Path) -> None:
    """One PNG: the standard table (rows vol up / same / down, columns the spot moves) as two
    heatmaps, full revaluation and Taylor, on one colour scale; below, the extended moves (weighted
    P&L, full and Taylor). The group's worst weighted loss is outlined (or starred if extended)."""
    Figure, Canvas = matplotlib_figure()
    d = underlying_rows(scenarios, underlying)
    std = ~d["extended"]
    moves = d["spot_move"][std].reshape(-1, 3)[:, 0]
    cases = list(d["vol_case"][std][:3])
    order = [cases.index(c) for c in ("up", "same", "down")]
    full = d["pnl_usd"][std].reshape(-1, 3).T[order]
    taylor = d["pnl_taylor_usd"][std].reshape(-1, 3).T[order]
    worst = d["worst"][std].reshape(-1, 3).T[order]
    ext = d["extended"]
    w_full = (d["weight"] * d["pnl_usd"])[ext]
    w_taylor = (d["weight"] * d["pnl_taylor_usd"])[ext]
    factor, unit = _scale(np.concatenate([full.ravel(), taylor.ravel(), w_full, w_taylor]))
    lim = max(float(np.nanmax(np.abs(np.concatenate([full.ravel(), taylor.ravel()])))) / factor, 1e-12)
    fig = Figure(figsize=(13, 7.6), layout="constrained")
    grid = fig.add_gridspec(2, 2, height_ratios=[1.0, 0.9])
    labels = [f"{m:+.0%}" if m else "0%" for m in moves]
    image = None
    for k, (title, values) in enumerate((("Full revaluation", full), ("Taylor estimate (delta, gamma, vega, "
                                                                       "vanna, volga)", taylor))):
        ax = fig.add_subplot(grid[0, k])
        image = ax.imshow(values / factor, cmap="RdYlGn", vmin=-lim, vmax=lim, aspect="auto")
        ax.set_xticks(range(len(moves)), labels, fontsize=9)
        ax.set_yticks(range(3), ["vol up", "vol same", "vol down"], fontsize=9)
        ax.set_xlabel("index move (every forward moves alike)", fontsize=9.5)
        ax.set_title(title, fontsize=11, loc="left")
        for (i, j), v in np.ndenumerate(values / factor):
            ax.text(j, i, f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}", ha="center", va="center", fontsize=7.5,
                    color="black")
        if worst.any():
            i, j = np.argwhere(worst)[0]
            from matplotlib.patches import Rectangle

            ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.5))
    cbar = fig.colorbar(image, ax=fig.axes, shrink=0.9, location="right")
    cbar.set_label(f"P&L ({unit})", fontsize=9.5)
    ax = fig.add_subplot(grid[1, :])
    x = np.arange(int(ext.sum()))
    ax.bar(x - 0.2, w_full / factor, width=0.4, color="#4c72b0", label="full revaluation x weight")
    ax.bar(x + 0.2, w_taylor / factor, width=0.4, color="#b8b8b8", label="Taylor x weight")
    ax.axhline(0, color="#333333", linewidth=0.8)
    ext_moves = d["spot_move"][ext]
    ax.set_xticks(x, [f"{m:+.0%}\n(w {w:.3f})" for m, w in zip(ext_moves, d["weight"][ext])], fontsize=9)
    ax.set_ylabel(f"weighted P&L ({unit})", fontsize=9.5)
    ax.set_title("Extended moves on vol up, weighted by price_range / |move|", fontsize=11, loc="left")
    wext = d["worst"][ext]
    if wext.any():
        k = int(np.flatnonzero(wext)[0])
        ax.plot([k - 0.2], [w_full[k] / factor], marker="*", markersize=16, color="black",
                label="worst weighted loss")
    ax.legend(fontsize=9, frameon=False, loc="best")
    ax.grid(True, axis="y", alpha=0.3)
    j = int(np.flatnonzero(d["worst"])[0]) if d["worst"].any() else None
    sub = ""
    if j is not None:
        mark = "starred" if d["extended"][j] else "outlined"
        sub = (f"; worst weighted loss: move {d['spot_move'][j]:+.0%}, vol {d['vol_case'][j]}, "
               f"{d['weight'][j] * d['pnl_usd'][j] / factor:,.2f} {unit} ({mark})")
    fig.suptitle(f"{underlying}: scenario P&L of the whole book{sub}", x=0.01, ha="left", fontsize=12.5,
                 fontweight="bold")
    save_png(fig, Canvas, path, dpi=100)


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "&ndash;"
    if isinstance(v, bool):
        return "yes" if v else ""
    if isinstance(v, float):
        return f"{v:,.2f}"
    return html.escape(str(v))


def render_page(summary: dict, charts: Sequence[tuple[Path, str]]) -> str:
    """A self-contained HTML page: the heatmaps, then each group's worst scenario and margin estimate."""
    cols = ("level", "underlying", "scenario", "spot_move", "vol_case", "weight", "pnl_usd", "weighted_pnl_usd",
            "pnl_taylor_usd", "estimated_initial_margin_usd", "estimated_maintenance_margin_usd")
    tag_cols = sorted({k for row in summary["worst"] for k in row} - set(cols) - {
        "extended", "worst_coin_scenario", "estimated_initial_margin_coin", "estimated_maintenance_margin_coin"})
    shown = (*cols[:2], *tag_cols, *cols[2:])
    numeric = set(cols[3:]) - {"vol_case"}  # right-aligned (the house style's td.num)

    def cell(tag: str, column: str, text: str) -> str:
        return f'<{tag} class="num">{text}</{tag}>' if column in numeric else f"<{tag}>{text}</{tag}>"

    head = "".join(cell("th", c, html.escape(c)) for c in shown)
    body = "".join("<tr>" + "".join(cell("td", c, _fmt(row.get(c))) for c in shown) + "</tr>"
                   for row in summary["worst"])
    figures = "\n".join(img_tag(p, alt) for p, alt in charts)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Scenario risk {html.escape(summary['as_of'])}</title>
<style>
{house_style()}</style></head><body>
<h1>Scenario risk matrix, {html.escape(summary['as_of'])}</h1>
<p class="meta">{summary['counts']['positions']:,} positions, {summary['counts']['scenarios']} scenarios per
underlying (Deribit's 9 spot moves x vol down/same/up, and extended moves on vol up), backend
{html.escape(summary['backend']['used'])}. Spot move m sets S' = S (1 + m) and every forward F' = F (1 + m);
vol cases follow Deribit's (30 / DTE)^p shock. Full revaluation is V' - V summed over the positions; the
Taylor estimate uses delta, gamma, vega, vanna and volga.</p>
<h2>Spot x vol P&amp;L per underlying</h2>
{figures}
<h2>Worst weighted loss per group</h2>
<p class="meta">{html.escape(summary['margin_note'])}.</p>
<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>
<footer>Generated by gpuskew {html.escape(summary['version'])}.</footer>
</body></html>
"""
