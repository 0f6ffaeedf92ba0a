"""Sharded sweeps: shared inputs scattered once, items (policies) sent out in blocks.

A sweep evaluates many independent items (the policies of a recalibration grid) against the same
large inputs (the market and greeks paths). :func:`map_blocks` sends the shared inputs to every
worker once (``Cluster.share``: Dask's scatter with broadcast), cuts the items into contiguous
blocks and runs ``fn(shared, start, stop)`` per block; the results come back in block order, so
concatenating them gives exactly the one-process result (each item's computation does not depend
on which block it is in).

Block size (:func:`block_size`): a task should run well above Dask's per-task overhead (about a
millisecond of scheduler and transfer time per task; measured by benchmarks/bench_distributed.py),
so a block holds at least ``MIN_OVERHEAD_RATIO`` x overhead of work, and otherwise the items are
spread over ``TASKS_PER_WORKER`` tasks per worker (some balance when workers differ in speed).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from gpuskew.distributed.executor import Cluster

#: Dask's per-task overhead assumed when none is measured (seconds; see the module docstring)
TASK_OVERHEAD_S = 1e-3
#: a task runs at least this many times the per-task overhead
MIN_OVERHEAD_RATIO = 100
#: tasks per worker when the items allow it
TASKS_PER_WORKER = 4


def block_size(n_items: int, workers: int, seconds_per_item: float, overhead_s: float = TASK_OVERHEAD_S) -> int:
    """Items per block: at least ``MIN_OVERHEAD_RATIO * overhead_s`` seconds of work per task, and
    otherwise ``n_items / (workers * TASKS_PER_WORKER)`` items (module docstring)."""
    if n_items <= 0:
        return 1
    floor = math.ceil(MIN_OVERHEAD_RATIO * overhead_s / max(seconds_per_item, 1e-12))
    balance = math.ceil(n_items / (max(1, workers) * TASKS_PER_WORKER))
    return max(1, min(n_items, max(floor, balance)))


def block_bounds(n_items: int, size: int) -> list[tuple[int, int]]:
    """Contiguous ``[start, stop)`` blocks of ``size`` items covering ``range(n_items)``."""
    return [(a, min(n_items, a + size)) for a in range(0, n_items, max(1, size))]


def _call(fn: Callable[[Any, int, int], Any], shared: Any, start: int, stop: int) -> Any:
    return fn(shared, start, stop)


def map_blocks(cluster: Cluster, fn: Callable[[Any, int, int], Any], shared: Any,
               bounds: Sequence[tuple[int, int]]) -> list[Any]:
    """``[fn(shared, a, b) for a, b in bounds]``, on the cluster's workers (here without an
    executor), ``shared`` sent once to each worker; results in block order. ``fn`` must be a
    module-level function (pickled by reference)."""
    handle = cluster.share(shared)
    return cluster.map(_call, [(fn, handle, a, b) for a, b in bounds])


# ---------------------------------------------------------------------------------------------
# the backtest's policy sweep in blocks of policies


def _policy_block(shared: dict, start: int, stop: int) -> Any:
    """The sweep kernel over policies ``[start, stop)``: (paths, groups, policies, outputs)."""
    from gpuskew.backtest.sweep import launch
    from gpuskew.core.backend import resolve_backend

    greeks, params = shared["greeks"], shared["params"][start:stop]
    out, _ = launch(resolve_backend(shared["backend"], 0), params, greeks, shared["targets"])
    return out.reshape(greeks.market.n_paths, greeks.n_groups, stop - start, -1)


def run_sweep_sharded(greeks: Any, grid: Any, resolve_hedges: Any, backend: Any = "auto", *,
                      cluster: Cluster) -> Any:
    """``gpuskew.backtest.sweep.run_sweep`` with the policies sent out in blocks: the kernel
    parameters and target paths are built here once, the greeks path, targets and parameters are
    sent once to every worker, and each task runs the sweep kernel over a contiguous block of
    policies. Every (policy, group, path) task of the kernel is independent, so the blocks'
    outputs, concatenated on the policy axis, are the one-process outputs bit for bit (the same
    :class:`~gpuskew.backtest.sweep.SweepResult`). The first block (one policy) runs here and times
    the others' size (:func:`block_size`). No per-step traces (``run_backtest`` computes its traces
    apart)."""
    import time

    import numpy as np

    from gpuskew.backtest.sweep import SweepResult, book_terms, sweep_backend, target_paths
    from gpuskew.policy.grid import PolicyGrid, kernel_params

    policies = list(grid.policies if isinstance(grid, PolicyGrid) else grid)
    m = greeks.market
    rates = [float(m.rate[u]) for u in greeks.und]
    kparams = kernel_params(policies, greeks.groups, resolve_hedges, m.step_seconds, rates)
    n_pol = len(policies)
    n_tasks = n_pol * greeks.n_groups * m.n_paths
    chosen = backend if not isinstance(backend, str) else sweep_backend(backend, n_tasks)
    targets = target_paths(greeks, kparams.targets, kparams.params)
    shared = {"greeks": greeks, "params": kparams.params, "targets": targets, "backend": chosen.name}
    t0 = time.perf_counter()
    first = _policy_block(shared, 0, min(1, n_pol))
    per_policy = time.perf_counter() - t0
    size = block_size(max(0, n_pol - 1), cluster.worker_count(), per_policy)
    rest = map_blocks(cluster, _policy_block, shared, [(a + 1, b + 1) for a, b in block_bounds(n_pol - 1, size)])
    task = np.concatenate([first, *rest], axis=2) if n_pol else first
    return SweepResult(policies, greeks, kparams, task, book_terms(greeks), {},
                       {"used": chosen.name, "device": chosen.device, "reason": chosen.reason,
                        "blocks": 1 + len(rest), "block_size": size, "cluster": cluster.description},
                       time.perf_counter() - t0)


@contextmanager
def sweep_on(spec: Any) -> Iterator[Callable[..., Any]]:
    """The backtest's sweep on the cluster of ``spec`` (:func:`open_cluster`), open for the block:
    a function called like ``gpuskew.backtest.sweep.run_sweep`` (``run_backtest(..., sweep=...)``)."""
    import functools

    from gpuskew.distributed.executor import open_cluster

    with open_cluster(spec) as cluster:
        yield functools.partial(run_sweep_sharded, cluster=cluster)
