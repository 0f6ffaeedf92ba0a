"""A whole backtest: greeks path, sweep, statistics, traces, output files.

    run = run_backtest(book, grid, market, levels=[("desk",)], backend="auto")
    publish_run(out_dir, output_writers(run), overwrite=False)

Traces: per group, the current limits' policy and the policy of the highest certainty equivalent
(and any ``trace_ids``), on path 0, from a second launch of the kernel over those policies only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew import __version__
from gpuskew.backtest import outputs
from gpuskew.backtest.greeks_path import DEFAULT_FULL_EVERY, GreeksPath, compute_greeks_path
from gpuskew.backtest.stats import DEFAULT_RISK_AVERSION, Summary, choose, summarise
from gpuskew.backtest.sweep import SweepResult, launch, run_sweep, sweep_backend, target_paths, task_index
from gpuskew.core.book import Book
from gpuskew.errors import InvalidConfig
from gpuskew.io.dataset import file_sha256 as file_hash  # ``sha256:<hex>`` of a file (the CLI's inputs)
from gpuskew.policy.grid import PolicyGrid
from gpuskew.synthetic.markets import Flow, MarketPaths
from gpuskew.timeutil import iso_z

#: output files of a backtest, in the order they are published (summary.json last)
BACKTEST_FILES: tuple[str, ...] = ("policies.parquet", "results.parquet", "summary.parquet", "frontier.parquet",
                                   "traces.parquet", "frontier.png", "attribution.png", "time_in_band.png",
                                   "trace.png", "report.html", "summary.json")


@dataclass
class BacktestRun:
    """Everything a backtest produced."""

    grid: PolicyGrid
    greeks: GreeksPath
    result: SweepResult
    summary: Summary
    tables: dict[str, pa.Table]
    info: dict
    best: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


def group_name(row: dict) -> str:
    """``level/underlying[/tag=value,...]``: a group's name in summaries and logs."""
    tags = ",".join(f"{k}={v}" for k, v in row.items() if k not in ("level", "underlying") and v is not None)
    return f"{row['level']}/{row['underlying']}" + (f"/{tags}" if tags else "")


def hedge_resolver(book: Book | None, as_of: Any) -> Callable[[Any], list]:
    """``limits -> hedge instruments`` resolved against the book's instruments and quotes
    (``gpuskew.adherence.hedging.resolve_hedge_instruments``), cached per set of entries; without a
    book the limits must describe their hedge instruments inline."""
    from gpuskew.adherence.hedging import resolve_hedge_instruments

    cache: dict[tuple, list] = {}

    def resolve(limits: Any) -> list:
        key = tuple(limits.hedge_instruments)
        if key not in cache:
            if book is None:
                cache[key] = resolve_hedge_instruments(limits, None, None, as_of, None)
            else:
                cache[key] = resolve_hedge_instruments(limits, book.instruments, book.quotes, as_of,
                                                       book.underlyings)
        return cache[key]

    return resolve


def _traces(result: SweepResult, summary: Summary, best: np.ndarray, trace_ids: Sequence[str],
            backend: Any) -> dict[tuple[int, int, int], np.ndarray]:
    """Per-step traces of path 0 for the current and best policies of every group (and trace_ids)."""
    ids = [p.policy_id for p in result.policies]
    wanted: list[tuple[int, int]] = []
    for g in range(result.greeks.n_groups):
        picks = [i for i, p in enumerate(result.policies) if p.is_current]
        if best[g] >= 0:
            picks.append(int(best[g]))
        for pid in trace_ids:
            if pid not in ids:
                raise InvalidConfig("--trace", "policy_id", pid, "not a policy of the grid (see policies.parquet)")
            picks.append(ids.index(pid))
        for i in picks:
            if result.kernel.monitored[i, g] and (i, g) not in wanted:
                wanted.append((i, g))
    if not wanted:
        return {}
    pols = sorted({i for i, _ in wanted})
    sub = result.kernel.params[pols]
    greeks = result.greeks
    targets = target_paths(greeks, result.kernel.targets, sub)
    tasks = [task_index(pols.index(i), g, 0, len(pols), greeks.n_groups) for i, g in wanted]
    _, traces = launch(backend, sub, greeks, targets, tasks)
    return {(i, g, 0): traces[k] for k, (i, g) in enumerate(wanted)}


def sweep_grid(book: Book | None, grid: PolicyGrid, market: MarketPaths, greeks: GreeksPath, *,
               backend: str = "auto", resolve_hedges: Callable[[Any], list] | None = None,
               sweep: Callable[..., Any] | None = None) -> tuple[SweepResult, Any]:
    """The sweep of a backtest alone (no traces, no tables): every policy of ``grid`` over
    ``greeks``; the result and the backend it ran on. Arguments as :func:`run_backtest`."""
    n_tasks = len(grid.policies) * greeks.n_groups * market.n_paths
    chosen = sweep_backend(backend, n_tasks)
    resolve = resolve_hedges if resolve_hedges is not None else hedge_resolver(book, market.start)
    return (sweep or run_sweep)(greeks, grid, resolve, chosen), chosen


def run_backtest(book: Book | None, grid: PolicyGrid, market: MarketPaths, *,
                 levels: Sequence[tuple[str, ...]] = (), backend: str = "auto", full_every: int = DEFAULT_FULL_EVERY,
                 flow: Flow | None = None, risk_aversion: float = DEFAULT_RISK_AVERSION,
                 trace_ids: Sequence[str] = (), greeks: GreeksPath | None = None, inputs: dict | None = None,
                 resolve_hedges: Callable[[Any], list] | None = None,
                 progress: Callable[[str], None] | None = None,
                 sweep: Callable[..., Any] | None = None) -> BacktestRun:
    """Run every policy of ``grid`` through ``market`` (see the module docstring). ``greeks``: a
    greeks path already computed for this book and market (e.g. by calibrate; needed without a
    book); ``resolve_hedges``: see :func:`hedge_resolver` (default: against ``book``); ``sweep``: the
    sweep, called as ``run_sweep`` (default: :func:`gpuskew.backtest.sweep.run_sweep`; on a cluster,
    ``gpuskew.distributed.sweep.sweep_on(spec)`` gives one: the same results)."""
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    if greeks is None:
        if book is None:
            raise ValueError("a backtest without a book needs its greeks path")
        greeks = compute_greeks_path(book, market, levels, backend, full_every, flow)
    timings["greeks_path"] = round(time.perf_counter() - t0, 6)
    if progress:
        progress("greeks")
    t0 = time.perf_counter()
    n_tasks = len(grid.policies) * greeks.n_groups * market.n_paths
    result, chosen = sweep_grid(book, grid, market, greeks, backend=backend, resolve_hedges=resolve_hedges,
                                sweep=sweep)
    timings["sweep"] = round(time.perf_counter() - t0, 6)
    timings["sweep_kernel"] = round(result.seconds, 6)
    if progress:
        progress("sweep")
    t0 = time.perf_counter()
    summary = summarise(result, risk_aversion)
    best = choose(summary, "ce")
    result.traces = _traces(result, summary, best, trace_ids, chosen)
    tables = {
        "policies": outputs.policies_table(result.policies),
        "results": outputs.results_table(result),
        "summary": outputs.summary_table(result, summary),
        "frontier": outputs.frontier_table(result, summary),
        "traces": outputs.traces_table(result),
    }
    timings["statistics"] = round(time.perf_counter() - t0, 6)
    if progress:
        progress("statistics")
    current = grid.current
    info = {
        "version": __version__,
        "as_of": iso_z(market.start),
        "backend": {"greeks_path": greeks.backend, "sweep": result.backend},
        "inputs": dict(inputs or {}),
        "market": market.summary(),
        "flow": greeks.flow,
        "counts": {"positions": greeks.n_positions, "policies": len(grid.policies), "groups": greeks.n_groups,
                   "paths": market.n_paths, "steps": market.n_steps, "tasks": n_tasks,
                   "policy_steps": n_tasks * market.n_steps, "results": tables["results"].num_rows},
        "axes": [{"name": a.name, "values": list(a.values)} for a in grid.axes],
        "current_policy_id": current.policy_id if current else None,
        "risk_aversion": risk_aversion,
        "greeks_path": dict(greeks.error),
        "best_by_ce": [{"group": group_name(greeks.groups[g]), "policy_id": result.policies[int(best[g])].policy_id,
                        "label": result.policies[int(best[g])].label,
                        "ce_usd": float(summary.values["ce_usd"][best[g], g])}
                       for g in range(greeks.n_groups) if best[g] >= 0],
        "warnings": list(result.kernel.warnings),
        "timings_s": timings,
        "policy_steps_per_second": (n_tasks * market.n_steps / result.seconds) if result.seconds > 0 else None,
    }
    return BacktestRun(grid, greeks, result, summary, tables, info, best)


def output_writers(run: BacktestRun) -> dict[str, Callable[[Path], None]]:
    """The files of a backtest output folder and how to write each (for gpuskew.io.publish_run);
    the PNGs are written before report.html (which embeds them) and summary.json is last."""
    from gpuskew.backtest import report
    from gpuskew.io import write_json, write_parquet

    files: dict[str, Callable[[Path], None]] = {}
    for name in ("policies", "results", "summary", "frontier", "traces"):
        files[f"{name}.parquet"] = (lambda t: lambda p: write_parquet(t, p))(run.tables[name])
    files.update(report.chart_writers(run))
    files["report.html"] = lambda p: report.write_html(run, p)
    run.info["outputs"] = {"files": list(files) + ["summary.json"]}
    files["summary.json"] = lambda p: write_json(run.info, p)
    return files


__all__ = ["BacktestRun", "run_backtest", "group_name", "output_writers", "hedge_resolver", "BACKTEST_FILES", "file_hash"]
