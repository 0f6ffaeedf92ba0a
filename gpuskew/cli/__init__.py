"""The ``gpuskew`` command line (click).

stdout carries results (a readable table; with ``--json`` the last line is one compact JSON
summary); logs, warnings and progress go to stderr. Exit codes: 0 ok, 1 runtime error, 2 usage
or invalid input, 3 a limit breached and ``--fail-on`` asked to fail on it, 75 CUDA required but
not usable. Configuration: flags > GPUSKEW_* environment variables > a TOML file (``--config``,
table ``[run]``) > defaults.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from gpuskew import __version__
from gpuskew.errors import EXIT_LIMIT_BREACHED, EXIT_RUNTIME, GpuskewError

EXPOSURE_DISPLAY = ("underlying", "n_positions", "n_expired", "delta", "delta_pa", "delta_usd",
                    "gamma_1pct", "vega_usd", "theta_usd", "value_usd")


def _stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def log(message: str) -> None:
    """A log line on stderr."""
    click.echo(f"gpuskew: {message}", err=True)


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--config FILE: a TOML file whose [run] table gives defaults for `gpuskew run` options."""
    if not value:
        return value
    try:
        import tomllib
    except ModuleNotFoundError:  # pragma: no cover - python < 3.11
        import tomli as tomllib
    try:
        with open(value, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, ValueError) as exc:
        raise click.BadParameter(f"cannot read config {value}: {exc}") from exc
    run = data.get("run", {})
    if not isinstance(run, dict):
        raise click.BadParameter(f"{value}: [run] must be a table")
    known = {p.name for p in ctx.command.params}
    for key in run:
        if key.replace("-", "_") not in known:
            raise click.BadParameter(f"{value}: unknown key run.{key}")
    ctx.default_map = {**(ctx.default_map or {}), **{k.replace("-", "_"): v for k, v in run.items()}}
    return value


def handle_errors(func):
    """Map domain errors to their exit codes, with one clear line on stderr and no traceback."""
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GpuskewError as exc:
            click.echo(f"gpuskew: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except click.exceptions.Exit:
            raise
        except (click.ClickException, click.Abort):
            raise
        except Exception as exc:  # runtime error: exit 1, traceback only when asked
            if os.environ.get("GPUSKEW_DEBUG"):
                raise
            click.echo(f"gpuskew: runtime error: {type(exc).__name__}: {exc} "
                       "(set GPUSKEW_DEBUG=1 for a traceback)", err=True)
            sys.exit(EXIT_RUNTIME)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpuskew")
def main() -> None:
    """gpuskew: greeks, net delta and inventory skew adherence for crypto options desks."""


FAIL_ON = {"breach": ("breach", "critical"), "critical": ("critical",)}


@main.command()
@click.argument("book_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              envvar="GPUSKEW_OUT", help="Output folder (positions, exposures, adherence, hedges, alerts, summary).")
@click.option("--demo", is_flag=True, help="Run on the seeded demo book (and the example limits) instead of BOOK_DIR.")
@click.option("--demo-size", type=click.IntRange(1, 50_000_000), default=20_000, show_default=True,
              envvar="GPUSKEW_DEMO_SIZE", help="Positions in the demo book.")
@click.option("--demo-seed", type=int, default=7, show_default=True, help="Seed of the demo book.")
@click.option("--demo-steps", type=click.IntRange(1, 10_000), default=1, show_default=True,
              help="With --demo and --history: simulate this many intraday runs, 15 minutes apart.")
@click.option("--as-of", "as_of", default=None, envvar="GPUSKEW_AS_OF",
              help="Valuation time, ISO 8601 (default: now; the demo's own time with --demo).")
@click.option("--backend", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
              envvar="GPUSKEW_BACKEND", help="Compute backend.")
@click.option("--group-by", "group_by", multiple=True, envvar="GPUSKEW_GROUP_BY",
              help="Tag columns to group by, comma-separated (e.g. desk,book); repeat for more levels. "
                   "Default with --demo: desk and desk,book.")
@click.option("--limits", "limits_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_LIMITS", help="Limits file (TOML): targets, bands, thresholds, hedges. "
                                            "Default with --demo: the shipped example.")
@click.option("--history", "history", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_HISTORY", help="Append this run to a history folder (alerts fire on transitions).")
@click.option("--fail-on", "fail_on", type=click.Choice(["breach", "critical"]), default=None,
              envvar="GPUSKEW_FAIL_ON", help="Exit 3 (after writing everything) if any group is at this status or worse.")
@click.option("--json", "as_json", is_flag=True, envvar="GPUSKEW_JSON",
              help="Print the summary as one compact JSON line, last on stdout.")
@click.option("--overwrite", is_flag=True, envvar="GPUSKEW_OVERWRITE", help="Replace outputs in an existing --out.")
@click.option("--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True,
              expose_value=False, envvar="GPUSKEW_CONFIG", help="TOML file with a [run] table of defaults.")
@handle_errors
def run(book_dir: Path | None, out_dir: Path, demo: bool, demo_size: int, demo_seed: int, demo_steps: int,
        as_of: str | None, backend: str, group_by: tuple[str, ...], limits_path: Path | None,
        history: Path | None, fail_on: str | None, as_json: bool, overwrite: bool) -> None:
    """Price a book, check it against its limits, and write the results to --out."""
    from gpuskew.core.book import load_book
    from gpuskew.io import check_output_free, publish_run
    from gpuskew.cli.progress import ProgressBar, run_stages
    from gpuskew.session import RUN_FILES, append_to_history, output_writers, risk_run

    if demo == (book_dir is not None):
        raise click.UsageError("give either BOOK_DIR or --demo (not both)")
    if demo_steps > 1 and not (demo and history):
        raise click.UsageError("--demo-steps needs --demo and --history")
    check_output_free(out_dir, overwrite, RUN_FILES)
    if demo:
        from gpuskew.synthetic.demo import DEMO_AS_OF

        as_of = as_of or DEMO_AS_OF.isoformat()
        group_by = group_by or ("desk", "desk,book")
        if limits_path is None:
            from gpuskew.policy.limits import example_limits_path

            limits_path = example_limits_path()
    limits = None
    if limits_path is not None:
        from gpuskew.policy.limits import load_limits

        limits = load_limits(limits_path)
    stages = run_stages(demo, limits is not None, demo_steps if demo else 1)
    with ProgressBar(stages, enabled=_stderr_is_tty()) as progress:
        if demo:
            from gpuskew.synthetic.demo import make_demo_book
            from gpuskew.core.engine import parse_as_of
            from gpuskew.synthetic.simulate import DemoSimulation

            tables = make_demo_book(n_positions=demo_size, seed=demo_seed)
            progress("demo")
            sim = DemoSimulation(tables, start=parse_as_of(as_of), seed=demo_seed)
            steps = sim.steps(demo_steps)
        else:
            steps = iter([(as_of, None)])
        for k, (step_as_of, step_tables) in enumerate(steps):
            book = load_book(step_tables if demo else book_dir)
            if demo:
                book.sources = {n: f"demo(size={demo_size}, seed={demo_seed}, step={k})" for n in book.sources}
            progress("load")
            outcome = risk_run(book, as_of=step_as_of, backend=backend, group_by=group_by, limits=limits,
                               limits_path=limits_path, history=history, progress=progress)
            if history:
                append_to_history(history, outcome)
            if demo and outcome.adherence is not None and k + 1 < demo_steps:
                sim.execute_hedges(outcome.adherence.hedges)
                progress.clear()
                log(f"step {k + 1}/{demo_steps} {outcome.summary['as_of']}: "
                    f"{len(outcome.alerts)} alert(s), score {outcome.summary['adherence']['score']:.3f}")
        summary = outcome.summary
        summary["outputs"] = {"folder": str(out_dir)}
        publish_run(out_dir, output_writers(outcome), overwrite=overwrite, stale=RUN_FILES)
        progress("write")
    for warning in summary["warnings"]:
        log(f"warning: {warning}")
    log(f"backend {summary['backend']['used']} ({summary['backend']['reason']}); "
        f"{summary['counts']['positions']:,} positions; outputs in {out_dir}")
    _print_exposures(outcome.result.exposures, outcome.result.levels)
    if outcome.adherence is not None:
        from gpuskew.adherence.alerts import summarise_alerts

        _print_adherence(outcome)
        click.echo(summarise_alerts(outcome.alerts), err=True)
    if as_json:
        click.echo(json.dumps(_json_summary(summary), separators=(",", ":"), sort_keys=True))
    worst = summary.get("adherence", {}).get("worst_status_by_underlying", {})
    if fail_on and any(s in FAIL_ON[fail_on] for s in worst.values()):
        log(f"limit breached ({', '.join(f'{u}: {s}' for u, s in worst.items() if s in FAIL_ON[fail_on])}); "
            f"exit 3 (--fail-on {fail_on})")
        sys.exit(EXIT_LIMIT_BREACHED)


def _json_summary(summary: dict) -> dict:
    """The compact summary a scheduler reads (Airflow XCom takes the last stdout line)."""
    out = {"status": "ok", "as_of": summary["as_of"], "backend": summary["backend"]["used"],
           "positions": summary["counts"]["positions"], "expired": summary["counts"]["expired"],
           "warnings": len(summary["warnings"]), "out": summary["outputs"]["folder"],
           "totals": {u: {"delta": t["delta"], "delta_pa": t["delta_pa"], "delta_usd": t["delta_usd"]}
                      for u, t in summary["totals"].items()}}
    if "adherence" in summary:
        adh = summary["adherence"]
        out.update(worst_status=adh["worst_status_by_underlying"], alerts=adh["alerts"],
                   adherence_score=adh["score"], hedges_proposed=adh["hedges_proposed"])
    return out


ADHERENCE_DISPLAY = ("measure", "actual", "target", "lower", "upper", "skew", "effective_status")


def _print_adherence(outcome) -> None:
    from gpuskew.cli.display import render_table

    table = outcome.effective
    tags = [c for c in ("desk", "book") if c in table.column_names]
    cols = ("level", "underlying", *tags, *ADHERENCE_DISPLAY)
    click.echo("")
    click.echo(render_table(table, cols, digits={"skew": 2},
                            title=f"Skew adherence (coins; score {outcome.summary['adherence']['score']:.3f})"))
    hedges = outcome.adherence.hedges
    if hedges.num_rows:
        click.echo("")
        click.echo(render_table(hedges, ("level", "underlying", *tags, "hedge_instrument", "side", "contracts",
                                         "coin_delta", "post_trade_deviation", "est_cost_usd"),
                                title="Proposed hedges"))


def _print_exposures(exposures, levels) -> None:
    import pyarrow.compute as pc

    from gpuskew.cli.display import render_table

    under = exposures.filter(pc.equal(exposures["level"], "underlying"))
    click.echo(render_table(under, EXPOSURE_DISPLAY, digits={"delta": 4, "delta_pa": 4, "gamma_1pct": 4},
                            title="Net exposure per underlying (delta, delta_pa in coins; others USD)"))
    for level in levels:
        name = ",".join(level)
        rows = exposures.filter(pc.equal(exposures["level"], name))
        cols = ("underlying",) + tuple(level) + EXPOSURE_DISPLAY[1:]
        click.echo("")
        click.echo(render_table(rows, cols, digits={"delta": 4, "delta_pa": 4, "gamma_1pct": 4},
                                title=f"Net exposure per underlying and {name}"))


@main.command()
@click.option("--history", "history", required=True, type=click.Path(file_okay=False, path_type=Path),
              envvar="GPUSKEW_HISTORY", help="History folder written by `gpuskew run --history`.")
@click.option("--from", "start", default=None, help="First as_of to include (ISO 8601, UTC).")
@click.option("--to", "end", default=None, help="Last as_of to include (ISO 8601, UTC).")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: report.parquet, report.csv, PNG charts, report.html, summary.json.")
@click.option("--overwrite", is_flag=True, help="Replace outputs in an existing --out.")
@click.option("--json", "as_json", is_flag=True, help="Print the report summary as one JSON line, last on stdout.")
@handle_errors
def report(history: Path, start: str | None, end: str | None, out_dir: Path, overwrite: bool, as_json: bool) -> None:
    """Adherence over a period: time in band, breaches, time to recover, hedge volume; charts and HTML."""
    from gpuskew.cli.display import render_table
    from gpuskew.core.engine import parse_as_of
    from gpuskew.reporting.report import build_report

    start_t = parse_as_of(start) if start else None
    end_t = parse_as_of(end) if end else None
    if start_t and end_t and end_t < start_t:
        raise click.UsageError("--to is before --from")
    summary = build_report(history, out_dir, start_t, end_t, overwrite=overwrite)
    import pyarrow.parquet as pq

    table = pq.read_table(out_dir / "report.parquet")
    tags = [c for c in ("desk", "book") if c in table.column_names]
    click.echo(render_table(table, ("level", "underlying", *tags, "n_runs", "fraction_in_band", "breach_count",
                                    "breach_minutes_total", "mean_time_to_recover_minutes", "max_abs_skew",
                                    "worst_status"), digits={"fraction_in_band": 3},
                            title=f"Adherence report ({summary.get('runs', '?')} runs)"))
    log(f"report written to {out_dir} (open report.html)")
    if as_json:
        click.echo(json.dumps(summary, separators=(",", ":"), sort_keys=True, default=str))


@main.command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--demo-size", type=click.IntRange(1, 50_000_000), default=20_000, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "arrow"]), default="parquet",
              show_default=True)
@handle_errors
def demo(book_dir: Path, demo_size: int, seed: int, fmt: str) -> None:
    """Write the seeded demo book to BOOK_DIR as files (shows the input format)."""
    from gpuskew.synthetic.demo import write_demo_book
    from gpuskew.cli.progress import ProgressBar

    with ProgressBar(["demo", "write"], enabled=_stderr_is_tty()) as progress:
        paths = write_demo_book(book_dir, n_positions=demo_size, seed=seed, fmt=fmt, progress=progress)
    for name, path in paths.items():
        click.echo(f"{name}: {path}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@handle_errors
def doctor(as_json: bool) -> None:
    """Versions, whether CUDA is usable (and why not), and the cache folders."""
    from gpuskew.cli.doctor import collect

    info = collect()
    if as_json:
        click.echo(json.dumps(info, separators=(",", ":"), sort_keys=True))
        return
    for key, value in info.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")


def entry_point() -> None:
    """The ``gpuskew`` console script: :func:`main`, then a fast exit.

    Once the command has finished (outputs published, stdout and stderr flushed) the process ends
    with ``os._exit``: interpreter teardown with numba, llvmlite and pyarrow loaded takes ~0.2 s
    and does nothing a run needs (every file is closed and renamed into place before this point).
    Set GPUSKEW_FAST_EXIT=0 for a normal interpreter exit. The command runs without the two
    start-up probe imports of pyarrow (pandas) and numba (``scipy.linalg``) that it never uses:
    see :mod:`gpuskew.startup`.
    """
    from gpuskew.cli.startup import skip_probe_imports

    try:
        with skip_probe_imports():
            main(standalone_mode=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            click.echo(str(exc.code), err=True)
            code = EXIT_RUNTIME
    if os.environ.get("GPUSKEW_FAST_EXIT", "1") == "0":
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


main.add_command(__import__("gpuskew.cli.backtest", fromlist=["backtest"]).backtest)

if __name__ == "__main__":  # pragma: no cover
    entry_point()
