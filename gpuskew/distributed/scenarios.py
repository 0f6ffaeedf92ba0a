"""Scenario risk over a cluster: the same risk matrix, the same bits as one process.

Each shard prices its positions and computes the per-position rows of the scenario job (value,
delta, gamma, the Taylor vol terms, every scenario's P&L, and a 1 per inverse-settled position:
:func:`gpuskew.scenarios.job.scenario_rows`); :func:`gpuskew.distributed.job.sharded_step` sums
them per group by the fixed tree over the shards (bitwise the one-process sums, see its module);
the coordinator then builds exactly the tables :class:`gpuskew.scenarios.job.ScenarioJob` builds:
the coarser levels from the finest level's group sums, the worst rows, the risk vectors of every
instrument held (one contract each, priced here: a few thousand rows).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew.distributed.job import ShardedBook, sharded_step
from gpuskew.scenarios.job import ScenarioResult


def run_scenarios_sharded(sharded: ShardedBook, cluster: Any, config: Any, *, as_of: str | datetime | None = None,
                          backend: str = "auto", group_by: Any = (), shard_positions: int | None = None,
                          progress: Callable[[str], None] | None = None) -> ScenarioResult:
    """The scenario run of a sharded book on ``cluster`` (from :func:`open_cluster`);
    ``shard_positions``: target positions per shard (default: from the book and the workers)."""
    from gpuskew.core.backend import CpuBackend
    from gpuskew.core.book import Book
    from gpuskew.core.engine import parse_as_of
    from gpuskew.scenarios.job import (_tag_names, level_order, risk_vector_table, scenario_rows,
                                       scenario_summary, scenario_tables)
    from gpuskew.scenarios.matrix import build_grid
    from gpuskew.session import Session

    t0 = time.perf_counter()
    when = parse_as_of(as_of)
    session = Session(sharded.book, None, backend, group_by=group_by)
    names = sorted(sharded.reference["underlyings"].column("underlying").to_pylist())
    grid = build_grid(config, names)
    step = sharded_step(session, sharded, cluster, when, extra=(scenario_rows, grid), shard_positions=shard_positions,
                        progress=progress)
    t1 = time.perf_counter()
    levels = list(session.levels)
    order = level_order(levels)
    all_levels: Sequence[tuple[str, ...]] = [(), *[lv for lv in levels if lv != ()]]
    reduced = dict(zip(all_levels, step.extra_sums))
    sums = {lv: (reduced[lv].grouping, np.ascontiguousarray(reduced[lv].sums[:-1])) for lv in order}
    n_inverse = {lv: np.rint(reduced[lv].sums[-1]).astype(np.int64) for lv in order}
    coarser = {lv: reduced[lv].grouping for lv in all_levels if lv not in sums}
    spots = dict(zip(sharded.reference["underlyings"].column("underlying").to_pylist(),
                     sharded.reference["underlyings"].column("spot").to_pylist()))
    spot_by_code = np.array([spots[u] for u in grid.underlying_names], dtype=np.float64)
    scenarios, worst_rows = scenario_tables(levels, _tag_names(sharded.book, levels), sums, n_inverse, grid,
                                            spot_by_code, CpuBackend("scenario levels from the finest sums"),
                                            coarser)
    t2 = time.perf_counter()
    # the risk vectors: one contract of every instrument held, as one process prices them
    held = sorted({name for r in step.info.results for name in r.instruments})
    ref = sharded.reference
    unit = pa.table({"instrument": pa.array(held, pa.string()), "quantity": pa.array(np.ones(len(held)))})
    book = Book(ref["instruments"], unit, ref["underlyings"], ref["quotes"], dict(sharded.sources),
                {n: "shard" for n in ("instruments", "positions", "underlyings", "quotes")})
    flat = book.flat()
    from gpuskew.core.engine import as_of_micros

    risk_vectors = risk_vector_table(book, flat, flat.time_to_expiry(as_of_micros(when)), grid)
    t3 = time.perf_counter()
    summary_step = step.summary
    used = summary_step["backend"]
    timings = {"shards_and_sums": round(t1 - t0, 6), "tables": round(t2 - t1, 6), "risk_vectors": round(t3 - t2, 6)}
    summary = scenario_summary(sharded.book, (used["used"], used["device"], used["reason"]), backend, when, levels,
                               config, grid, scenarios, worst_rows, timings, len(sharded), summary_step["counts"]["expired"],
                               len(held))
    summary["inputs"] = summary_step["inputs"]
    summary["distributed"] = summary_step.get("distributed")
    return ScenarioResult(scenarios, risk_vectors, summary, grid, levels)


__all__ = ["run_scenarios_sharded"]
