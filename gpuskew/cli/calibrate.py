"""``gpuskew calibrate``: estimate the market, sweep around the current limits, propose new ones.

    gpuskew calibrate BOOK_DIR --synthetic market.toml --limits limits.toml --out cal/
    gpuskew calibrate BOOK_DIR --market events/ --limits limits.toml --out cal/ --walk-forward 7
    gpuskew calibrate [BOOK_DIR] --history hist/ --limits limits.toml --out cal/ --criterion cost_at_risk

With --history, BOOK_DIR is optional: it resolves the limits' hedge instruments (without it they
must be described inline: underlying, kind, contract_size, and a future's expiry).

Writes calibration.json (estimates, choices, walk-forward), limits.proposed.toml (valid for
``gpuskew run --limits``; never applied automatically), limits.diff, choices.parquet, charts,
report.html and summary.json into --out, atomically.
"""

from __future__ import annotations

from pathlib import Path

import click

from gpuskew.cli.backtest import full_every_option, load_market, market_options, risk_aversion_option
from gpuskew.cli.common import check_out_target, command, emit_json, handle_errors, log, safe
from gpuskew.cli.options import (backend_option, cluster_option, config_option, group_by_option, history_read_option,
                                 json_option, limits_option, out_options, sweep_on)


@command()
@click.argument("book_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@limits_option
@out_options
@history_read_option
@market_options
@click.option("--from", "start", default=None, help="With --history: first as_of (ISO 8601).")
@click.option("--to", "end", default=None, help="With --history: last as_of (ISO 8601).")
@click.option("--criterion", type=click.Choice(["ce", "cost_at_risk"]), default="ce", show_default=True,
              envvar="GPUSKEW_CRITERION",
              help="ce: the highest certainty equivalent; cost_at_risk: the smallest 5% tail loss.")
@click.option("--walk-forward", "walk_forward", type=click.FloatRange(min=0.0, min_open=True), default=None,
              envvar="GPUSKEW_WALK_FORWARD",
              help="Check the choice in windows of this many days (flag moves of more than 2x).")
@click.option("--scales", default="0.25,0.5,0.75,1,1.5,2,4", show_default=True, envvar="GPUSKEW_SCALES",
              help="Band scales swept around the current limits (multiples of the half-widths).")
@group_by_option
@backend_option
@full_every_option
@risk_aversion_option
@cluster_option
@json_option
@config_option
@handle_errors
def calibrate(book_dir: Path | None, limits_path: Path | None, out_dir: Path, overwrite: bool, history: Path | None,
              synthetic: Path | None,
              market_dir: Path | None, flow_dir: Path | None, seed: int | None, as_of: str | None,
              step_seconds: float, windows: int, start: str | None, end: str | None, criterion: str,
              walk_forward: float | None, scales: str, group_by: tuple[str, ...], backend: str, full_every: int,
              risk_aversion: float, cluster: str | None, as_json: bool) -> None:
    """Propose limits from the cost-risk frontier of a sweep around the current ones (--limits: the
    current limits, required)."""
    from gpuskew import __version__
    from gpuskew.backtest.calibrate import calibrate as run_calibration
    from gpuskew.backtest.calibrate_report import CALIBRATE_FILES, output_writers
    from gpuskew.backtest.greeks_path import compute_greeks_path
    from gpuskew.backtest.run import file_hash, hedge_resolver
    from gpuskew.core.book import load_book
    from gpuskew.core.groups import parse_levels
    from gpuskew.io import publish_run
    from gpuskew.policy.limits import read_toml
    from gpuskew.policy.limits import parse_limits
    from gpuskew.timeutil import to_utc

    if limits_path is None:
        raise click.UsageError("--limits CURRENT.toml is required: the limits to calibrate around")
    sources = [x for x in (history, synthetic, market_dir) if x is not None]
    if len(sources) != 1:
        raise click.UsageError("give exactly one of --history DIR, --market DIR or --synthetic FILE")
    if history is None and book_dir is None:
        raise click.UsageError("BOOK_DIR is required with --market or --synthetic")
    try:
        scale_list = tuple(float(x) for x in scales.split(",") if x.strip())
    except ValueError:
        raise click.BadParameter(f"not a comma-separated list of numbers: {scales!r}", param_hint="--scales")
    out_dir = check_out_target(out_dir, book_dir, overwrite, CALIBRATE_FILES)
    current = read_toml(limits_path)
    limits = parse_limits(current, source=str(limits_path))
    book = load_book(book_dir) if book_dir is not None else None
    warnings: list[str] = []
    if history is not None:
        from gpuskew.backtest.history_path import greeks_from_history

        greeks, warnings = greeks_from_history(history, to_utc(start, "--from") if start else None,
                                               to_utc(end, "--to") if end else None)
    else:
        levels = parse_levels(list(group_by), book.tags)
        managed = parse_levels([",".join(lv) for lv in limits.levels], book.tags)
        levels += [lv for lv in managed if lv not in levels]
        market, flow = load_market(book, synthetic, market_dir, flow_dir, seed, as_of, step_seconds)
        greeks = compute_greeks_path(book, market, levels, backend, full_every, flow)
        if market_dir is not None:
            days = market.n_steps * market.step_seconds / 86_400.0
            cut = windows if windows > 1 else max(1, int(days)) if walk_forward is None else 1
            if cut > 1:
                greeks = greeks.split(cut)
    m = greeks.market
    log(f"calibrating on {m.n_paths} path(s) x {m.n_steps} steps of {m.step_seconds:g} s ({m.source})")
    inputs = {"limits": {"source": str(limits_path), "hash": file_hash(limits_path)},
              "book": str(book_dir) if book_dir else None,
              "market": str(synthetic or market_dir or history)}
    with sweep_on(cluster) as sweep:  # --cluster: the policies in blocks on the cluster's workers
        cal = run_calibration(book, greeks, current, source=str(limits_path), criterion=criterion,
                              scales=scale_list, walk_forward_days=walk_forward, backend=backend,
                              risk_aversion=risk_aversion, resolve_hedges=hedge_resolver(book, m.start),
                              inputs=inputs, sweep=sweep)
    cal.info["warnings"] = warnings + cal.info["warnings"]
    summary = {"version": __version__, "status": "ok", "out": str(out_dir), "inputs": inputs,
               "criterion": criterion, "proposed_changes": cal.info["proposed_changes"],
               "unstable_groups": len(cal.info["walk_forward"]["unstable_groups"]),
               "files": list(CALIBRATE_FILES)}
    publish_run(out_dir, output_writers(cal, summary), overwrite=overwrite, stale=CALIBRATE_FILES)
    for w in cal.info["warnings"]:
        log(f"warning: {w}")
    log(f"{cal.info['proposed_changes']} group(s) with a new band; limits.proposed.toml and limits.diff in "
        f"{out_dir} (not applied)")
    if as_json:
        emit_json({
            "status": "ok", "out": str(out_dir), "criterion": criterion,
            "proposed_changes": cal.info["proposed_changes"],
            "realised_vol": {u: round(e["close_to_close"], 6)
                             for u, e in cal.info["estimates"]["realised_vol"].items()},
            "unstable_groups": cal.info["walk_forward"]["unstable_groups"],
        })
        return
    click.echo(safe(cal.diff_text.split("\n\nThe file:")[0]))
