"""Output files of ``gpuskew calibrate``: calibration.json, limits.proposed.toml, limits.diff,
choices.parquet, frontier.png, walk_forward.png, report.html and summary.json (last)."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any, Callable

from gpuskew.backtest.calibrate import Calibration
from gpuskew.backtest.report import plot_frontier
from gpuskew.reporting.pages import house_style
from gpuskew.reporting.report import _img, _matplotlib, _save_png

#: files of a calibration folder, in publishing order (summary.json last)
CALIBRATE_FILES: tuple[str, ...] = ("calibration.json", "limits.proposed.toml", "limits.diff", "choices.parquet",
                                    "frontier.png", "walk_forward.png", "report.html", "summary.json")


def plot_walk_forward(cal: Calibration, path: Path) -> None:
    """The chosen band scale per walk-forward window, per group (at most 12 groups)."""
    Figure, Canvas = _matplotlib()
    fig = Figure(figsize=(11, 4.4), layout="constrained")
    ax = fig.subplots()
    t = cal.choices.to_pylist()
    windows = sorted({r["window"] for r in t if r["window"] >= 0})
    if not windows:
        ax.text(0.5, 0.5, "no walk-forward windows (--walk-forward DAYS)", ha="center", va="center")
    else:
        by: dict[str, dict[int, float]] = {}
        unstable: dict[str, bool] = {}
        for r in t:
            if r["window"] < 0:
                continue
            key = f"{r['underlying']} {r['level']}" + "".join(
                f" {k}={v}" for k, v in r.items() if k not in CHOICE_FIELDS and v is not None)
            by.setdefault(key, {})[r["window"]] = r["scale"]
            unstable[key] = r["unstable"]
        for key in list(by)[:12]:
            xs = sorted(by[key])
            ax.plot(xs, [by[key][w] for w in xs], marker="o", markersize=4, linewidth=1.4,
                    linestyle="--" if unstable[key] else "-", label=key + (" (unstable)" if unstable[key] else ""))
        ax.set_yscale("log", base=2)
        ax.set_xticks(windows)
        ax.set_xlabel("walk-forward window", fontsize=10)
        ax.set_ylabel("chosen band scale (x current half-width)", fontsize=10)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title("Walk-forward stability of the choice", fontsize=12, loc="left", fontweight="bold")
    _save_png(fig, Canvas, path)


CHOICE_FIELDS = {"level", "underlying", "window", "current_policy_id", "chosen_policy_id", "scale", "criterion",
                 "current_score_usd", "chosen_score_usd", "unstable"}


def _money(x: Any) -> str:
    return "&ndash;" if x is None or not math.isfinite(x) else f"{x:,.0f}"


def write_html(cal: Calibration, path: Path) -> None:
    folder = path.parent
    style = f"<style>\n{house_style()}</style>"
    info = cal.info
    vol_rows = "".join(
        f"<tr><td>{html.escape(u)}</td><td class=num>{100 * e['close_to_close']:.2f}% "
        f"[{100 * e['close_to_close_ci_low']:.2f}, {100 * e['close_to_close_ci_high']:.2f}]</td>"
        f"<td class=num>{100 * e['ewma']:.2f}% [{100 * e['ewma_ci_low']:.2f}, {100 * e['ewma_ci_high']:.2f}]</td>"
        f"<td class=num>{e['returns']:,}</td></tr>" for u, e in info["estimates"]["realised_vol"].items())
    fund_rows = "".join(
        f"<tr><td>{html.escape(u)}</td><td class=num>{100 * f['mean']:.2f}%</td><td class=num>{100 * f['std']:.2f}%</td>"
        f"<td class=num>{100 * f['share_positive']:.0f}%</td></tr>" for u, f in info["estimates"]["funding"].items())
    choice_rows = "".join(
        f"<tr><td>{html.escape(r['level'])}</td><td>{html.escape(r['underlying'])}</td>"
        f"<td>{html.escape(', '.join(f'{k}={v}' for k, v in r.items() if k not in CHOICE_FIELDS and v is not None))}</td>"
        f"<td class=num>x{r['scale']:g}</td><td class=num>{_money(r['current_score_usd'])}</td>"
        f"<td class=num>{_money(r['chosen_score_usd'])}</td><td>{'unstable' if r['unstable'] else ''}</td></tr>"
        for r in cal.choices.to_pylist() if r["window"] < 0)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Calibration</title>{style}</head><body>
<h1>Calibration of the limits</h1>
<p class="meta">{html.escape(info['period']['source'])}: {html.escape(info['period']['start'])} to
{html.escape(info['period']['end'])}, {info['period']['paths']} path(s) of {info['period']['steps']} steps of
{info['period']['step_seconds']:g} s. Criterion <b>{html.escape(info['criterion'])}</b>; band scales
{html.escape(', '.join(f'{s:g}' for s in info['scales']))}. The proposal (limits.proposed.toml) is never applied
automatically; limits.diff shows every change.</p>
<h2>Realised volatility (annualised, 95% interval)</h2>
<table><thead><tr><th>underlying</th><th class=num>close to close</th><th class=num>EWMA</th>
<th class=num>returns</th></tr></thead><tbody>{vol_rows}</tbody></table>
<h2>Funding (annualised; positive: longs pay)</h2>
<table><thead><tr><th>underlying</th><th class=num>mean</th><th class=num>std</th><th class=num>positive</th></tr>
</thead><tbody>{fund_rows}</tbody></table>
<h2>Choice per group</h2>
<table><thead><tr><th>level</th><th>underlying</th><th>tags</th><th class=num>band scale</th>
<th class=num>current ({html.escape(info['criterion'])}, USD)</th><th class=num>chosen</th><th></th></tr></thead>
<tbody>{choice_rows}</tbody></table>
<h2>Cost against risk</h2>
{_img(folder / 'frontier.png', 'frontier')}
<h2>Walk-forward</h2>
<p>{info['walk_forward']['windows']} window(s) of {info['walk_forward']['days'] or '&ndash;'} days; a choice that
moves more than 2x between windows is flagged unstable and keeps its current band.</p>
{_img(folder / 'walk_forward.png', 'walk-forward')}
<h2>Changes</h2>
<pre>{html.escape(cal.diff_text)}</pre>
<footer>Generated by gpuskew calibrate.</footer>
</body></html>
"""
    path.write_text(page, encoding="utf-8")


def output_writers(cal: Calibration, summary: dict) -> dict[str, Callable[[Path], None]]:
    from gpuskew.io import write_json, write_parquet, write_text

    return {
        "calibration.json": lambda p: write_json(cal.info, p),
        "limits.proposed.toml": lambda p: write_text(cal.proposed_toml, p),
        "limits.diff": lambda p: write_text(cal.diff_text, p),
        "choices.parquet": lambda p: write_parquet(cal.choices, p),
        "frontier.png": lambda p: plot_frontier(cal.run, p),
        "walk_forward.png": lambda p: plot_walk_forward(cal, p),
        "report.html": lambda p: write_html(cal, p),
        "summary.json": lambda p: write_json(summary, p),
    }


__all__ = ["output_writers", "plot_walk_forward", "write_html", "CALIBRATE_FILES"]
