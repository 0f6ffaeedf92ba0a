"""``gpuskew explain``: the P&L between two runs, split into its greeks per group."""

from __future__ import annotations

from pathlib import Path

import click

from gpuskew.cli.common import check_out_target, command, emit_json, handle_errors, log, safe
from gpuskew.cli.options import config_option, group_by_option, json_option, out_options

#: files of an explain output folder (summary.json last: the commit marker)
EXPLAIN_FILES = ("explain.parquet", "explain_positions.parquet", "summary.json")

EXPLAIN_DISPLAY = ("actual", "delta", "gamma", "vega", "theta", "vanna", "volga", "rho", "new_trades", "residual",
                   "residual_flag")


@command()
@click.argument("run_from", type=click.Path(file_okay=False, path_type=Path))
@click.argument("run_to", type=click.Path(file_okay=False, path_type=Path))
@out_options
@group_by_option
@click.option("--positions", "with_positions", is_flag=True, help="Also write explain_positions.parquet (per position).")
@click.option("--residual-threshold", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Flag a group when |residual| > this fraction of |actual| (and > --residual-floor-usd).")
@click.option("--residual-floor-usd", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Never flag a residual below this many USD.")
@json_option
@config_option
@handle_errors
def explain(run_from: Path, run_to: Path, out_dir: Path, overwrite: bool, group_by: tuple[str, ...],
            with_positions: bool, residual_threshold: float, residual_floor_usd: float, as_json: bool) -> None:
    """Explain the change of value from RUN_FROM to RUN_TO (two `gpuskew run` output folders) by
    delta, gamma, vega, theta, vanna, volga, rho, new trades and a residual, per group (default:
    RUN_TO's grouping levels)."""
    from gpuskew.core.groups import parse_levels
    from gpuskew.io import publish_run, write_json, write_parquet
    from gpuskew.scenarios.explain import explain_runs, load_run

    out_dir = check_out_target(out_dir, None, overwrite, EXPLAIN_FILES)
    for run_dir in (run_from, run_to):
        here = Path(run_dir).resolve()
        if out_dir == here or here in out_dir.parents:
            raise click.UsageError(f"--out must not be the run folder {run_dir} or inside it")
    levels = None
    if group_by:
        from gpuskew.schema import POSITIONS_OUT

        tags = POSITIONS_OUT.tag_columns(load_run(run_to).positions)
        levels = parse_levels(group_by, tags)
    result = explain_runs(run_from, run_to, levels, residual_threshold, residual_floor_usd)
    summary = result.summary
    summary["outputs"] = {"folder": str(out_dir)}
    files = {"explain.parquet": lambda p: write_parquet(result.groups, p)}
    if with_positions:
        files["explain_positions.parquet"] = lambda p: write_parquet(result.positions, p)
    summary["outputs"]["files"] = [*files, "summary.json"]
    files["summary.json"] = lambda p: write_json(summary, p)
    publish_run(out_dir, files, overwrite=overwrite, stale=EXPLAIN_FILES)
    counts = summary["counts"]
    log(f"explain {summary['from_as_of']} -> {summary['to_as_of']}: {counts['held']:,} held, {counts['new']:,} new, "
        f"{counts['closed']:,} closed, {counts['resized']:,} resized, {counts['expired']:,} expired; "
        f"{counts['flagged']} group(s) with a large residual; outputs in {out_dir}")
    if as_json:
        emit_json({"status": "ok", "exit_code": 0, "from": summary["from_as_of"], "to": summary["to_as_of"],
                   "groups": counts["groups"], "flagged": counts["flagged"], "out": str(out_dir),
                   "totals": summary["totals"]})
        return
    from gpuskew.cli.display import render_table

    from gpuskew.schema import EXPLAIN

    table = result.groups
    tags = EXPLAIN.tag_columns(table)
    click.echo(safe(render_table(table, ("level", "underlying", *tags, *EXPLAIN_DISPLAY),
                                 title="P&L explain per group (USD; actual = the terms + residual)")))
