"""``gpuskew scenarios``: the risk matrix of every group (Deribit's spot x vol grid, extended moves)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from gpuskew.cli import _stderr_is_tty, handle_errors, log

#: files of a scenarios output folder (summary.json last: the commit marker)
SCENARIO_FILES = ("scenarios.parquet", "risk_vectors.parquet", "scenarios.html", "summary.json")


@click.command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              envvar="GPUSKEW_OUT", help="Output folder: scenarios.parquet, risk_vectors.parquet, summary.json, "
                                         "scenarios.html and heatmap_<UNDERLYING>.png.")
@click.option("--as-of", "as_of", default=None, envvar="GPUSKEW_AS_OF", help="Valuation time, ISO 8601 (default: now).")
@click.option("--group-by", "group_by", multiple=True, envvar="GPUSKEW_GROUP_BY",
              help="Tag columns to group by, comma-separated (e.g. desk,book); repeat for more levels.")
@click.option("--scenarios", "scenarios_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_SCENARIOS", help="Scenario matrix parameters (TOML, per underlying); default: "
                                               "Deribit's (price_range 0.16, ...).")
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              envvar="GPUSKEW_BACKEND", help="Compute backend.")
@click.option("--report/--no-report", "with_report", default=True, show_default=True,
              help="Write the heatmap page (scenarios.html and one PNG per underlying).")
@click.option("--json", "as_json", is_flag=True, envvar="GPUSKEW_JSON",
              help="Print the summary as one compact JSON line on stdout (and nothing else).")
@click.option("--overwrite", is_flag=True, envvar="GPUSKEW_OVERWRITE", help="Replace outputs in an existing --out.")
@handle_errors
def scenarios(book_dir: Path, out_dir: Path, as_of: str | None, group_by: tuple[str, ...],
              scenarios_path: Path | None, backend: str, with_report: bool, as_json: bool, overwrite: bool) -> None:
    """Revalue a book under the spot x vol risk matrix of each underlying, per group, and write the results."""
    from gpuskew.cli.progress import ProgressBar
    from gpuskew.core.book import load_book
    from gpuskew.io import check_output_free, publish_run
    from gpuskew.scenarios.output import scenario_writers
    from gpuskew.scenarios.params import load_scenario_config

    check_output_free(out_dir, overwrite, SCENARIO_FILES)
    config = load_scenario_config(scenarios_path)
    stages = ["load", "greeks", "scenarios", "tables"] + (["report"] if with_report else []) + ["write"]
    with ProgressBar(stages, enabled=_stderr_is_tty() and not as_json) as progress:
        from gpuskew.scenarios.job import run_scenarios

        book = load_book(book_dir)
        progress("load")
        result = run_scenarios(book, as_of=as_of, backend=backend, group_by=group_by, config=config,
                               progress=progress)
        result.summary["outputs"] = {"folder": str(out_dir)}
        files = scenario_writers(result, with_report, progress)
        # heatmaps of an earlier run into this folder (other underlyings) must not linger
        old_maps = tuple(p.name for p in out_dir.glob("heatmap_*.png")) if out_dir.is_dir() else ()
        publish_run(out_dir, files, overwrite=overwrite, stale=SCENARIO_FILES + old_maps)
        progress("write")
    summary = result.summary
    for warning in summary["warnings"]:
        log(f"warning: {warning}")
    log(f"backend {summary['backend']['used']} ({summary['backend']['reason']}); "
        f"{summary['counts']['positions']:,} positions x {summary['counts']['scenarios']} scenarios; "
        f"outputs in {out_dir}")
    if as_json:
        click.echo(json.dumps(json_summary(summary), separators=(",", ":"), sort_keys=True))
        return
    from gpuskew.scenarios.output import terminal_tables

    click.echo(terminal_tables(result))


def json_summary(summary: dict) -> dict:
    """The compact summary a scheduler reads: the worst loss and margin estimate per underlying."""
    worst = {row["underlying"]: {"scenario": row["scenario"], "spot_move": row["spot_move"],
                                 "vol_case": row["vol_case"], "weighted_pnl_usd": row["weighted_pnl_usd"],
                                 "estimated_initial_margin_usd": row["estimated_initial_margin_usd"]}
             for row in summary["worst"] if row["level"] == "underlying"}
    return {"status": "ok", "as_of": summary["as_of"], "backend": summary["backend"]["used"],
            "positions": summary["counts"]["positions"], "scenarios": summary["counts"]["scenarios"],
            "groups": summary["counts"]["groups"], "warnings": len(summary["warnings"]),
            "out": summary["outputs"]["folder"], "worst": worst}
