"""``gpuskew backtest``: run skew policies through a simulated or recorded market.

    gpuskew backtest BOOK_DIR --policies policies.toml --synthetic market.toml --out bt/
    gpuskew backtest BOOK_DIR --policies policies.toml --market events/ --out bt/ --windows 30

Writes policies.parquet, results.parquet, summary.parquet, frontier.parquet, traces.parquet, PNG
charts, report.html and summary.json (last) into --out, atomically. stdout: the best policy per
group (with ``--json``: one compact JSON line and nothing else); logs on stderr.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import click

from gpuskew.cli.common import check_out_target, command, emit_json, handle_errors, log
from gpuskew.cli.options import (as_of_option, backend_option, cluster_option, config_option, group_by_option,
                                 json_option, limits_option, option_group, out_options, sweep_on)


#: --synthetic / --market / --flow / --seed / --as-of / --step-seconds / --windows (shared with calibrate)
market_options = option_group(
    click.option("--synthetic", "synthetic", type=click.Path(dir_okay=False, path_type=Path), default=None,
                 envvar="GPUSKEW_SYNTHETIC",
                 help="Synthetic market file (TOML: [market] steps, step_seconds, paths, seed; [underlying.X])."),
    click.option("--market", "market_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 envvar="GPUSKEW_MARKET",
                 help="Folder of recorded market events (Parquet/JSON Lines: index, mark, rate)."),
    click.option("--flow", "flow_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                 envvar="GPUSKEW_FLOW", help="Folder of client fill events applied to the book along the path."),
    click.option("--seed", type=int, default=None, envvar="GPUSKEW_SEED",
                 help="Seed of the synthetic market (overrides [market] seed)."),
    as_of_option,
    click.option("--step-seconds", type=click.FloatRange(min=0.001), default=60.0, show_default=True,
                 envvar="GPUSKEW_STEP_SECONDS", help="Grid step of a recorded market."),
    click.option("--windows", type=click.IntRange(1, 100_000), default=1, show_default=True,
                 envvar="GPUSKEW_WINDOWS",
                 help="Cut a recorded market into this many windows, each a path (the hedge restarts)."),
)


def load_market(book, synthetic: Path | None, market_dir: Path | None, flow_dir: Path | None, seed: int | None,
                as_of: str | None, step_seconds: float):
    """(market, flow) for a book from --synthetic or --market, and --flow or the synthetic [flow]."""
    from gpuskew.synthetic.markets import flow_folder, poisson_flow, recorded_market, synthetic_market
    from gpuskew.timeutil import to_utc

    if (synthetic is None) == (market_dir is None):
        raise click.UsageError("give exactly one of --synthetic FILE or --market DIR")
    flow = None
    if synthetic is not None:
        start = to_utc(as_of, source="--as-of") if as_of else datetime.now(timezone.utc).replace(microsecond=0)
        market, spec = synthetic_market(synthetic, book, start, seed)
        if spec.flow is not None and flow_dir is None:
            f = spec.flow
            flow = poisson_flow(book, market, f["rate_per_hour"], f["edge"], f["size"], f["seed"])
    else:
        if seed is not None:
            log("warning: --seed is ignored with a recorded --market")
        market = recorded_market(market_dir, book, step_seconds)
    if flow_dir is not None:
        flow = flow_folder(flow_dir, book, market)
    return market, flow


full_every_option = click.option(
    "--full-every", type=click.IntRange(1, 10_000_000), default=60, show_default=True, envvar="GPUSKEW_FULL_EVERY",
    help="Steps between full revaluations of the book (second-order steps in between).")

risk_aversion_option = click.option(
    "--risk-aversion", type=click.FloatRange(min=0.0), default=1e-6, show_default=True,
    envvar="GPUSKEW_RISK_AVERSION", help="Absolute risk aversion of the certainty equivalent, 1/USD.")


@command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--policies", "policies_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              envvar="GPUSKEW_POLICIES",
              help="Policies file: a limits file (TOML) in which any value may be a list (a grid axis).")
@out_options
@market_options
@limits_option
@group_by_option
@backend_option
@full_every_option
@risk_aversion_option
@click.option("--trace", "trace_ids", multiple=True, help="Also keep per-step traces of this policy_id (path 0).")
@cluster_option
@json_option
@config_option
@handle_errors
def backtest(book_dir: Path, policies_path: Path, out_dir: Path, synthetic: Path | None, market_dir: Path | None,
             flow_dir: Path | None, seed: int | None, as_of: str | None, step_seconds: float, windows: int,
             limits_path: Path | None, group_by: tuple[str, ...], backend: str, full_every: int,
             risk_aversion: float, trace_ids: tuple[str, ...], cluster: str | None, as_json: bool,
             overwrite: bool) -> None:
    """Run the skew policies of --policies through a simulated or recorded market (--limits: the
    current limits, marked on the frontier and added to the sweep when not in the grid)."""
    from gpuskew.backtest.greeks_path import compute_greeks_path
    from gpuskew.backtest.run import BACKTEST_FILES, file_hash, output_writers, run_backtest
    from gpuskew.core.book import load_book
    from gpuskew.core.groups import parse_levels
    from gpuskew.io import publish_run
    from gpuskew.policy.grid import load_policies, read_toml

    out_dir = check_out_target(out_dir, book_dir, overwrite, BACKTEST_FILES)
    if windows > 1 and market_dir is None:
        raise click.UsageError("--windows cuts a recorded --market into paths")
    book = load_book(book_dir)
    grid = load_policies(policies_path)
    if limits_path is not None:
        grid = grid.with_current(read_toml(limits_path), source=str(limits_path))
    levels = parse_levels(list(group_by), book.tags)
    for point in grid.policies:  # the levels the limits manage are computed too
        managed = parse_levels([",".join(lv) for lv in point.limits.levels], book.tags)
        levels += [lv for lv in managed if lv not in levels]
    market, flow = load_market(book, synthetic, market_dir, flow_dir, seed, as_of, step_seconds)
    log(f"{len(grid.policies)} policies, {market.n_paths} path(s) x {market.n_steps} steps of "
        f"{market.step_seconds:g} s from {market.start.isoformat()}")
    greeks = compute_greeks_path(book, market, levels, backend, full_every, flow)
    if windows > 1:
        greeks = greeks.split(windows)
        market = greeks.market
    log(f"greeks path: {greeks.n_groups} groups, {greeks.revaluations} full revaluations; Taylor value error "
        f"RMS {greeks.error['value_rms_usd']:,.2f} USD")
    inputs = {"book": {n: {"source": book.sources[n], "hash": book.input_hashes[n]} for n in book.sources},
              "policies": {"source": str(policies_path), "hash": file_hash(policies_path)},
              "limits": {"source": str(limits_path), "hash": file_hash(limits_path)} if limits_path else None,
              "market": {"source": str(synthetic or market_dir),
                         "hash": file_hash(synthetic) if synthetic else None},
              "flow": str(flow_dir) if flow_dir else None}
    with sweep_on(cluster) as sweep:  # --cluster: the policies in blocks on the cluster's workers
        run = run_backtest(book, grid, market, levels=levels, backend=backend, full_every=full_every, flow=flow,
                           risk_aversion=risk_aversion, trace_ids=trace_ids, greeks=greeks, inputs=inputs,
                           sweep=sweep)
    run.info["outputs"] = {"folder": str(out_dir)}
    publish_run(out_dir, output_writers(run), overwrite=overwrite, stale=BACKTEST_FILES)
    for w in run.info["warnings"]:
        log(f"warning: {w}")
    rate = run.info["policy_steps_per_second"]
    log(f"sweep: {run.info['counts']['tasks']:,} tasks on {run.result.backend['used']} in "
        f"{run.result.seconds:.3f} s ({rate:,.3g} policy-steps/s); outputs in {out_dir}" if rate else
        f"outputs in {out_dir}")
    if as_json:
        emit_json({
            "status": "ok", "out": str(out_dir), "as_of": run.info["as_of"],
            "policies": run.info["counts"]["policies"], "groups": run.info["counts"]["groups"],
            "paths": run.info["counts"]["paths"], "steps": run.info["counts"]["steps"],
            "backend": {"greeks_path": greeks.backend["used"], "sweep": run.result.backend["used"]},
            "current_policy_id": run.info["current_policy_id"],
            "best_by_ce": {b["group"]: b["policy_id"] for b in run.info["best_by_ce"]},
            "warnings": len(run.info["warnings"]),
            "sweep_seconds": round(run.result.seconds, 6),
        })
        return
    _print_best(run)


def _print_best(run) -> None:
    """The best policy per group (by certainty equivalent) as a table on stdout."""
    import pyarrow as pa

    from gpuskew.cli.display import render_table

    v = run.summary.values
    rows = [(g, int(i)) for g, i in enumerate(run.best) if i >= 0]
    gt = run.greeks.group_table.take(pa.array([g for g, _ in rows], pa.int64()))
    cols = {name: gt[name] for name in gt.column_names}
    cols["policy_id"] = pa.array([run.result.policies[i].policy_id for _, i in rows], pa.string())
    for name in ("mean_cost_usd", "std_hedged_pnl_usd", "ce_usd", "mean_time_in_band", "mean_trades"):
        cols[name] = pa.array([float(v[name][i, g]) for g, i in rows], pa.float64())
    table = pa.table(cols)
    click.echo(render_table(table, tuple(table.column_names), digits={"mean_time_in_band": 3},
                            title="Best policy per group by certainty equivalent (USD)"))
