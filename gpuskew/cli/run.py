"""``gpuskew run``: one Session step on a book (or the demo book, or N demo steps), written to --out.

Order of work: check the output target (before any work) -> load limits and the book -> the step(s)
-> publish --out atomically -> append to --history (last: a run whose outputs fail leaves no trace
in the history) -> tables (or the one --json line) -> exit 3 if --fail-on says so.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from gpuskew.cli.common import check_out_target, command, emit_json, handle_errors, log, safe, stderr_is_tty
from gpuskew.cli.options import (as_of_option, backend_option, cluster_option, config_option, demo_options,
                                 group_by_option, history_option, json_option, limits_option, out_options,
                                 plausibility_options, strict_option)
from gpuskew.errors import EXIT_LIMIT_BREACHED, InvalidInput

FAIL_ON = {"breach": ("breach", "critical"), "critical": ("critical",)}


def _needs_prometheus(_ctx: click.Context, _param: click.Parameter, value: Path | None) -> Path | None:
    """--prom-textfile: the metrics renderer's dependency checked while the options are read (exit 2,
    nothing written), not after the outputs and the history."""
    if value is not None:
        try:
            import prometheus_client  # noqa: F401
        except ImportError as exc:
            raise click.BadParameter(f"needs prometheus-client ({exc}); install the monitor extra: "
                                     "pip install 'gpuskew[monitor]'") from exc
    return value


@command()
@click.argument("book_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@out_options
@click.option("--demo", is_flag=True, help="Run on the seeded demo book (and the example limits) instead of BOOK_DIR.")
@demo_options
@click.option("--demo-steps", type=click.IntRange(1, 10_000), default=1, show_default=True,
              envvar="GPUSKEW_DEMO_STEPS",
              help="With --demo: this many steps 15 minutes apart (market moves, client flow, hedges filled); "
                   "with --history each step is a run of the history.")
@as_of_option
@backend_option
@group_by_option
@limits_option
@history_option
@click.option("--fail-on", "fail_on", type=click.Choice(["breach", "critical"]), default=None,
              envvar="GPUSKEW_FAIL_ON", help="Exit 3 (after writing everything) if any group is at this status or worse.")
@click.option("--positions", "positions_format", type=click.Choice(["parquet", "arrow", "none"]), default="parquet",
              show_default=True, envvar="GPUSKEW_POSITIONS",
              help="Per-position output: positions.parquet, positions.arrow (Arrow IPC: fastest to write and "
                   "to memory-map, larger), or none (schedulers that only need the exposures).")
@strict_option
@plausibility_options
@click.option("--prom-textfile", "prom_textfile", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_PROM_TEXTFILE", callback=_needs_prometheus,
              help="Also write the run's metrics (Prometheus text format) to this file, atomically, for "
                   "node_exporter's textfile collector (needs the monitor extra).")
@cluster_option
@json_option
@config_option
@handle_errors
def run(book_dir: Path | None, out_dir: Path, overwrite: bool, demo: bool, demo_size: int, demo_seed: int,
        demo_steps: int, as_of: str | None, backend: str, group_by: tuple[str, ...], limits_path: Path | None,
        history: Path | None, fail_on: str | None, positions_format: str, strict: bool, max_iv: float,
        max_abs_rate: float, max_expiry_years: float, prom_textfile: Path | None, cluster: str | None,
        as_json: bool) -> None:
    """Price a book, check it against its limits, and write the results to --out."""
    from gpuskew.cli.progress import ProgressBar, run_stages
    from gpuskew.io.dataset import file_sha256
    from gpuskew.session import RUN_FILES, MemoryAlertState, NoAlertState, Plausibility, Session

    if demo == (book_dir is not None):
        raise click.UsageError("give either BOOK_DIR or --demo (not both)")
    if demo_steps > 1 and not demo:
        raise click.UsageError("--demo-steps needs --demo")
    sharding = cluster is not None  # checked by --cluster's callback
    if sharding and demo:
        raise click.UsageError("--cluster shards a BOOK_DIR (write the demo book with `gpuskew demo DIR "
                               "--partitioned`); it does not take --demo")
    out = check_out_target(out_dir, book_dir, overwrite, RUN_FILES)
    if history is not None:
        history_abs = Path(os.path.abspath(history))
        if history_abs == out or out in history_abs.parents or history_abs in out.parents:
            raise InvalidInput(str(history), None, "--history and --out must be separate folders")
    if demo:
        from gpuskew.synthetic.demo import DEMO_AS_OF

        as_of = as_of or DEMO_AS_OF.isoformat()
        if limits_path is None:
            from gpuskew.policy.limits import example_limits_path

            limits_path = example_limits_path()
    limits = None
    if limits_path is not None:
        from gpuskew.policy.limits import load_limits

        limits = load_limits(limits_path)
    if history is not None:
        from gpuskew.history import HistoryAlertState

        state = HistoryAlertState(history)
    else:
        state = MemoryAlertState() if demo_steps > 1 else NoAlertState()
    stages = run_stages(demo, limits is not None, demo_steps if demo else 1)
    with ProgressBar(stages, enabled=stderr_is_tty() and not as_json) as progress:
        sharded = _sharded(book_dir, progress) if sharding else None
        book = sharded.book if sharded is not None else _load(book_dir, demo, demo_size, demo_seed, progress)
        limits_hash = None if limits_path is None else file_sha256(limits_path)
        session = Session(book, limits, backend, state, group_by, limits_hash=limits_hash,
                          limits_source=str(limits_path) if limits_path else None, strict=strict,
                          plausibility=Plausibility(max_iv, max_abs_rate, max_expiry_years))
        from gpuskew.io import OutputStage
        from gpuskew.session import position_file, position_writer

        with OutputStage(out, overwrite) as stage:
            def write_positions_early(positions) -> None:  # in the background, while the sums run
                if demo_steps == 1 and positions_format != "none":
                    stage.write_async(position_file(positions_format), position_writer(positions, positions_format))

            if sharded is not None:  # the shards write their parts of the positions into the stage
                from gpuskew.distributed import sharded_step_into

                step = sharded_step_into(session, sharded, cluster, as_of, stage, positions_format, progress=progress)
            else:
                step = _steps(session, as_of, demo_steps, demo_seed, history, progress, write_positions_early,
                              positions_format != "none")
            step.write(out, overwrite=overwrite, positions=positions_format, stage=stage)
        progress("write")
        appended = _append(history, step) if history is not None else None
    if prom_textfile is not None:
        from gpuskew.io import write_text
        from gpuskew.monitor.metrics import render_run_textfile

        write_text(render_run_textfile(step.effective, step.summary), prom_textfile)
    _report(step, out, history, appended, as_json, fail_on)


def _load(book_dir, demo, demo_size, demo_seed, progress):
    from gpuskew.core.book import load_book

    if demo:
        from gpuskew.synthetic.demo import make_demo_book

        tables = make_demo_book(n_positions=demo_size, seed=demo_seed)
        progress("demo")
        book = load_book(tables)
        book.sources = {n: f"demo(size={demo_size}, seed={demo_seed})" for n in book.sources}
    else:
        book = load_book(book_dir)
    progress("load")
    return book


def _sharded(book_dir, progress):
    """A book for --cluster: reference tables validated here, positions left in their files."""
    from gpuskew.distributed import open_sharded_book

    sharded = open_sharded_book(book_dir)
    progress("load")
    return sharded


def _steps(session, as_of, demo_steps, demo_seed, history, progress, on_positions=None, positions_table=True):
    """The run's step, or the demo loop: every step but the last appended to the history at once
    (each is a complete run); the last one is published first, then appended."""
    step = session.step(as_of, progress=progress, on_positions=on_positions, positions_table=positions_table)
    if demo_steps == 1:
        return step
    from gpuskew.core.engine import parse_as_of
    from gpuskew.synthetic.simulate import DemoSimulation

    sim = DemoSimulation(start=parse_as_of(as_of), seed=demo_seed)
    for k in range(1, demo_steps):
        if history is not None:
            _append(history, step, executions=sim.executions)
        _log_step(progress, k, demo_steps, step)
        sim.propose(step.hedges)
        when, market, fills = sim.advance(session.book)
        progress("load")
        step = session.step(when, market=market, fills=fills, progress=progress, positions_table=positions_table)
    step.executions = sim.executions
    return step


def _log_step(progress, k, n, step) -> None:
    progress.clear()
    adh = step.summary.get("adherence")
    score = f", score {adh['score']:.3f}, {adh['alerts']} alert(s)" if adh else ""
    log(f"step {k}/{n} {step.summary['as_of']}{score}")


def _append(history, step, executions=None):
    from gpuskew.history import append_run

    tables = step.history_tables()
    executions = executions if executions is not None else getattr(step, "executions", None)
    if executions is not None and executions.num_rows:
        tables["executions"] = executions
    return append_run(history, step.as_of, tables, step.run_id)


def _report(step, out: Path, history, appended, as_json: bool, fail_on: str | None) -> None:
    import sys

    summary = step.summary
    for warning in summary["warnings"]:
        log(f"warning: {warning}")
    log(f"backend {summary['backend']['used']} ({summary['backend']['reason']}); "
        f"{summary['counts']['positions']:,} positions; outputs in {out}")
    if history is not None and not appended:
        log(f"history {history} already holds run {summary['run_id']} (same as_of, inputs, limits and levels): "
            "nothing appended")
    adh = summary.get("adherence")
    if adh and adh.get("alerts_already_raised"):
        log(f"{adh['alerts_already_raised']} alert(s) already raised by this same run earlier: not raised again")
    worst = (adh or {}).get("worst_status_by_underlying", {})
    breached = bool(fail_on) and any(s in FAIL_ON[fail_on] for s in worst.values())
    if not as_json:
        from gpuskew.cli.display import print_adherence, print_exposures

        print_exposures(step.exposures, step.result.levels)
        if step.adherence is not None:
            print_adherence(step)
    if step.adherence is not None:
        from gpuskew.adherence.alerts import summarise_alerts

        click.echo(safe(summarise_alerts(step.alerts)), err=True)
    if as_json:
        emit_json(json_summary(summary, out, breached))
    if breached:
        log(f"limit breached ({', '.join(f'{u}: {s}' for u, s in worst.items() if s in FAIL_ON[fail_on])}); "
            f"exit 3 (--fail-on {fail_on})")
        sys.exit(EXIT_LIMIT_BREACHED)


def json_summary(summary: dict, out: Path, breached: bool) -> dict:
    """The compact summary a scheduler reads: its ``status`` agrees with the exit code
    (``ok`` 0, ``limit_breached`` 3)."""
    result = {"status": "limit_breached" if breached else "ok", "exit_code": EXIT_LIMIT_BREACHED if breached else 0,
              "as_of": summary["as_of"], "run_id": summary["run_id"], "backend": summary["backend"]["used"],
              "positions": summary["counts"]["positions"], "expired": summary["counts"]["expired"],
              "warnings": len(summary["warnings"]), "out": str(out),
              "totals": {u: {"delta": t["delta"], "delta_pa": t["delta_pa"], "delta_usd": t["delta_usd"]}
                         for u, t in summary["totals"].items()}}
    if "adherence" in summary:
        adh = summary["adherence"]
        result.update(worst_status=adh["worst_status_by_underlying"], alerts=adh["alerts"],
                      alerts_already_raised=adh["alerts_already_raised"], adherence_score=adh["score"],
                      hedges_proposed=adh["hedges_proposed"], unmatched_rules=len(adh["unmatched_rules"]))
    return result
