"""The files and the terminal tables of a scenario run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.scenarios.job import ScenarioResult


def heatmap_names(result: ScenarioResult) -> dict[str, str]:
    """``heatmap_<UNDERLYING>.png`` for every underlying of the run (injective file names)."""
    from gpuskew.reporting.scenarios_page import safe_name

    return {u: f"heatmap_{safe_name(u)}.png" for u in result.grid.underlying_names}


def scenario_writers(result: ScenarioResult, with_report: bool = True,
                     progress: Callable[[str], None] | None = None) -> dict[str, Callable[[Path], None]]:
    """The files of a scenarios output folder and how to write each (for gpuskew.io.publish_run):
    scenarios.parquet, risk_vectors.parquet, (with the report) one heatmap PNG per underlying and
    scenarios.html, then summary.json (the commit marker)."""
    from gpuskew.io import write_json, write_parquet, write_text

    files: dict[str, Callable[[Path], None]] = {
        "scenarios.parquet": lambda p: write_parquet(result.scenarios, p),
        "risk_vectors.parquet": lambda p: write_parquet(result.risk_vectors, p),
    }
    if with_report:
        from gpuskew.reporting.scenarios_page import render_page, write_heatmap

        names = heatmap_names(result)
        for u, name in names.items():
            files[name] = (lambda u_: lambda p: write_heatmap(result.scenarios, u_, p))(u)

        def page(path: Path) -> None:
            charts = [(path.parent / n, f"{u}: spot x vol P&L") for u, n in names.items()]
            write_text(render_page(result.summary, charts), path)
            if progress:
                progress("report")

        files["scenarios.html"] = page  # after the PNGs: it embeds them
    result.summary.setdefault("outputs", {})["files"] = [*files, "summary.json"]
    files["summary.json"] = lambda p: write_json(result.summary, p)
    return files


def _matrix_table(scenarios: pa.Table, underlying: str) -> pa.Table:
    """The standard table of one underlying as rows vol up / same / down x columns spot moves."""
    from gpuskew.reporting.scenarios_page import underlying_rows

    d = underlying_rows(scenarios, underlying)
    std = ~d["extended"]
    moves = d["spot_move"][std].reshape(-1, 3)[:, 0]
    cases = list(d["vol_case"][std][:3])
    full = d["pnl_usd"][std].reshape(-1, 3)
    cols: dict[str, list] = {"vol": ["up", "same", "down"]}
    for k, m in enumerate(moves):
        cols[f"{m:+.0%}" if m else "0%"] = [float(full[k, cases.index(c)]) for c in cols["vol"]]
    return pa.table(cols)


def terminal_tables(result: ScenarioResult) -> str:
    """Per underlying, the spot x vol matrix of full-revaluation P&L (USD); then each group's worst
    weighted loss and the margin estimate."""
    from gpuskew.cli.display import render_table

    parts = []
    for u in result.grid.underlying_names:
        rows = result.scenarios.filter(pc.and_(pc.equal(result.scenarios["level"], "underlying"),
                                               pc.equal(result.scenarios["underlying"], u)))
        if rows.num_rows == 0:
            continue
        table = _matrix_table(result.scenarios, u)
        parts.append(render_table(table, table.column_names, digits={c: 0 for c in table.column_names},
                                  title=f"{u}: scenario P&L, full revaluation (USD)"))
    worst = result.summary["worst"]
    tags = sorted({k for row in worst for k in row} - {
        "level", "underlying", "scenario", "spot_move", "vol_case", "extended", "weight", "pnl_usd",
        "weighted_pnl_usd", "pnl_taylor_usd", "estimated_initial_margin_usd", "estimated_maintenance_margin_usd",
        "worst_coin_scenario", "estimated_initial_margin_coin", "estimated_maintenance_margin_coin"})
    cols = ("level", "underlying", *tags, "scenario", "spot_move", "vol_case", "weight", "pnl_usd",
            "pnl_taylor_usd", "estimated_initial_margin_usd")
    table = pa.Table.from_pylist([{c: row.get(c) for c in cols} for row in worst]) if worst else pa.table({})
    parts.append(render_table(table, cols, digits={"spot_move": 2, "weight": 3},
                              title="Worst weighted loss per group (USD; margin: estimate, see summary.json)"))
    return "\n\n".join(parts)
