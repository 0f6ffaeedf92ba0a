"""``gpuskew scenarios``: the risk matrix of every group (Deribit's spot x vol grid, extended moves)."""

from __future__ import annotations

from pathlib import Path

import click

from gpuskew.cli.common import check_out_target, command, emit_json, handle_errors, log, safe, stderr_is_tty
from gpuskew.cli.options import (as_of_option, backend_option, cluster_option, config_option, group_by_option,
                                 json_option, out_options)

#: files of a scenarios output folder (summary.json last: the commit marker)
SCENARIO_FILES = ("scenarios.parquet", "risk_vectors.parquet", "scenarios.html", "summary.json")


@command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@out_options
@as_of_option
@group_by_option
@click.option("--scenarios", "scenarios_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_SCENARIOS", help="Scenario matrix parameters (TOML, per underlying); default: "
                                               "Deribit's (price_range 0.16, vol shock 0.5 / 0.25, ...).")
@backend_option
@click.option("--report/--no-report", "with_report", default=False, show_default=True, envvar="GPUSKEW_REPORT",
              help="Also write the heatmap page: scenarios.html and heatmap_<UNDERLYING>.png (matplotlib: about "
                   "0.4 s per underlying, whatever the size of the book).")
@cluster_option
@json_option
@config_option
@handle_errors
def scenarios(book_dir: Path, out_dir: Path, overwrite: bool, as_of: str | None, group_by: tuple[str, ...],
              scenarios_path: Path | None, backend: str, with_report: bool, cluster: str | None,
              as_json: bool) -> None:
    """Revalue a book under the spot x vol risk matrix of each underlying, per group; write the
    scenario P&L (full and Taylor), Deribit-layout risk vectors, the worst loss and a margin estimate."""
    from gpuskew.cli.progress import ProgressBar
    from gpuskew.core.book import load_book
    from gpuskew.io import publish_run
    from gpuskew.scenarios.job import run_scenarios
    from gpuskew.scenarios.output import scenario_writers
    from gpuskew.scenarios.params import load_scenario_config

    sharding = cluster is not None  # checked by --cluster's callback
    out = check_out_target(out_dir, book_dir, overwrite, SCENARIO_FILES)
    config = load_scenario_config(scenarios_path)
    stages = ["load", "greeks", "scenarios", "tables"] + (["report"] if with_report else []) + ["write"]
    with ProgressBar(stages, enabled=stderr_is_tty() and not as_json) as progress:
        if sharding:  # the positions stay in their files; the shards read them on the cluster
            from gpuskew.distributed import open_cluster, open_sharded_book
            from gpuskew.distributed.scenarios import run_scenarios_sharded

            sharded = open_sharded_book(book_dir)
            progress("load")
            with open_cluster(cluster) as handle:
                result = run_scenarios_sharded(sharded, handle, config, as_of=as_of, backend=backend,
                                               group_by=group_by, progress=progress)
        else:
            book = load_book(book_dir)
            progress("load")
            result = run_scenarios(book, as_of=as_of, backend=backend, group_by=group_by, config=config,
                                   progress=progress)
        result.summary["outputs"] = {"folder": str(out)}
        files = scenario_writers(result, with_report, progress)
        # heatmaps of an earlier run (other underlyings) go: its summary.json lists them
        publish_run(out, files, overwrite=overwrite, stale=SCENARIO_FILES)
        progress("write")
    summary = result.summary
    for warning in summary["warnings"]:
        log(f"warning: {warning}")
    log(f"backend {summary['backend']['used']} ({summary['backend']['reason']}); "
        f"{summary['counts']['positions']:,} positions x {summary['counts']['scenarios']} scenarios; "
        f"outputs in {out}")
    if as_json:
        emit_json(json_summary(summary))
        return
    click.echo(safe(terminal_tables(result)))


def json_summary(summary: dict) -> dict:
    """The compact summary a scheduler reads: the worst weighted loss and margin estimate per
    underlying (the per-underlying level)."""
    worst = {row["underlying"]: {"scenario": row["scenario"], "spot_move": row["spot_move"],
                                 "vol_case": row["vol_case"], "weighted_pnl_usd": row["weighted_pnl_usd"],
                                 "estimated_initial_margin_usd": row["estimated_initial_margin_usd"]}
             for row in summary["worst"] if row["level"] == "underlying"}
    return {"status": "ok", "exit_code": 0, "as_of": summary["as_of"], "backend": summary["backend"]["used"],
            "positions": summary["counts"]["positions"], "scenarios": summary["counts"]["scenarios"],
            "groups": summary["counts"]["groups"], "warnings": len(summary["warnings"]),
            "out": summary["outputs"]["folder"], "worst": worst}


def _matrix_table(scenarios, underlying: str):
    """The standard table of one underlying as rows vol up / same / down x columns spot moves."""
    import pyarrow as pa

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


def terminal_tables(result) -> str:
    """Per underlying, the spot x vol matrix of full-revaluation P&L (USD); then each group's worst
    weighted loss and the margin estimate."""
    import pyarrow as pa
    import pyarrow.compute as pc

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
