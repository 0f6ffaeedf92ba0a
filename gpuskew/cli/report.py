"""``gpuskew report``: adherence over a period of runs from a history folder."""

from __future__ import annotations

from pathlib import Path

import click

from gpuskew.cli.common import check_out_target, command, emit_json, handle_errors, log
from gpuskew.cli.options import config_option, history_read_option, json_option, out_options


@command()
@history_read_option
@click.option("--from", "start", default=None, envvar="GPUSKEW_FROM",
              help="First as_of to include (ISO 8601, UTC; a date alone means 08:00).")
@click.option("--to", "end", default=None, envvar="GPUSKEW_TO", help="Last as_of to include (ISO 8601, UTC).")
@out_options
@json_option
@config_option
@handle_errors
def report(history: Path | None, start: str | None, end: str | None, out_dir: Path, overwrite: bool,
           as_json: bool) -> None:
    """Adherence over a period: time in band, breaches, time to recover, hedges proposed and executed
    (written to --out: report.parquet, report.csv, PNG charts, report.html, summary.json)."""
    import pyarrow.parquet as pq

    from gpuskew.cli.display import render_table
    from gpuskew.reporting.report import REPORT_FILES, build_report
    from gpuskew.schema import REPORT
    from gpuskew.timeutil import to_utc

    if history is None:
        raise click.UsageError("--history is required (the folder `gpuskew run --history` appends to)")
    start_t = to_utc(start, source="--from") if start else None
    end_t = to_utc(end, source="--to") if end else None
    if start_t and end_t and end_t < start_t:
        raise click.UsageError("--to is before --from")
    out_dir = check_out_target(out_dir, None, overwrite, REPORT_FILES)
    summary = build_report(history, out_dir, start_t, end_t, overwrite=overwrite)
    if as_json:
        emit_json({"status": "ok", "exit_code": 0, **summary})
        return
    table = pq.read_table(Path(out_dir) / "report.parquet")
    tags = REPORT.tag_columns(table)
    click.echo(render_table(table, ("level", "underlying", *tags, "n_runs", "fraction_in_band", "breach_count",
                                    "breach_minutes_total", "mean_time_to_recover_minutes", "max_abs_skew",
                                    "worst_status", "hedge_proposals", "hedge_coins_abs",
                                    "hedge_executed_coins_abs"),
                            digits={"fraction_in_band": 3}, title=f"Adherence report ({summary.get('runs', '?')} runs)"))
    log(f"report written to {out_dir} (open report.html)")
