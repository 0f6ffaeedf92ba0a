"""numba issue 9288: the workqueue threading layer aborts the process when two threads enter parallel
kernels at once. The guard (gpuskew.kernels.threads.launch_guard around every CPU kernel launch)
serialises launches unless the layer is thread-safe. Each case runs in a subprocess with the
workqueue layer forced (NUMBA_THREADING_LAYER=workqueue): with the guard, four threads pricing the
same book concurrently finish with identical bits, and a sharded run on a ThreadPoolExecutor equals
one process; with the guard switched off the same threads abort the process (so the test can fail)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

THREADS = textwrap.dedent("""
    import hashlib, sys
    from concurrent.futures import ThreadPoolExecutor
    import numba, numpy as np
    import gpuskew
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

    book = gpuskew.load_book(make_demo_book(20_000, seed=2))
    def run(k):
        digests = set()
        for _ in range(40):
            r = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk"], positions_table=False)
            digests.add(hashlib.sha256(np.ascontiguousarray(r.exposures["delta"].to_numpy()).tobytes()).hexdigest())
        return digests
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(run, range(4)))
    assert numba.threading_layer() == "workqueue", numba.threading_layer()
    print(len(set().union(*results)), numba.threading_layer())
""")

SHARDED = textwrap.dedent("""
    import sys, tempfile
    from concurrent.futures import ThreadPoolExecutor
    import numba
    import gpuskew
    from gpuskew.distributed import open_cluster, open_sharded_book, sharded_step
    from gpuskew.session import Session
    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset

    folder = tempfile.mkdtemp()
    write_demo_dataset(folder, n_positions=30_000, seed=4, chunk=2_000)
    one = gpuskew.compute(gpuskew.load_book(folder), as_of=DEMO_AS_OF, backend="cpu", group_by=["desk,book"],
                          positions_table=False)
    sharded = open_sharded_book(folder)
    session = Session(sharded.book, None, "cpu", None, ["desk,book"])
    with ThreadPoolExecutor(4) as pool, open_cluster(pool) as cluster:
        step = sharded_step(session, sharded, cluster, DEMO_AS_OF, shard_positions=1)
    assert step.summary["distributed"]["shards"] == 5, step.summary["distributed"]
    assert step.exposures.equals(one.exposures)
    assert numba.threading_layer() == "workqueue"
    print("ok", step.summary["distributed"]["shards"])
""")


def _run(code: str, guard: bool) -> subprocess.CompletedProcess:
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue", GPUSKEW_NUMBA_THREAD_GUARD="1" if guard else "0")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_threads_with_the_guard_on_the_workqueue_layer_finish_with_the_same_bits():
    proc = _run(THREADS, guard=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["1", "workqueue"]  # one distinct result over 160 concurrent runs


def test_without_the_guard_the_workqueue_layer_aborts_the_process():
    proc = _run(THREADS, guard=False)
    assert proc.returncode == -signal.SIGABRT, (proc.returncode, proc.stdout, proc.stderr[-2000:])
    assert "Concurrent access has been detected" in proc.stderr


def test_sharded_run_on_a_thread_pool_equals_one_process():
    pytest.importorskip("pyarrow.parquet")
    proc = _run(SHARDED, guard=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == ["ok", "5"]


def test_guard_state(monkeypatch):
    from gpuskew.kernels import threads

    monkeypatch.setenv("GPUSKEW_NUMBA_THREAD_GUARD", "0")
    assert not threads.needs_lock()
    monkeypatch.setenv("GPUSKEW_NUMBA_THREAD_GUARD", "1")
    monkeypatch.setattr(threads, "_layer_is_threadsafe", None)
    assert threads.needs_lock()  # before the first launch the layer is unknown: lock
    with threads.launch_guard():
        from gpuskew.kernels import cpu  # noqa: F401 - a launch of a parallel kernel happens in the block
        import numpy as np

        cpu.tile_sums(np.ones((1, 4)), np.arange(4), np.zeros(1, np.int64), np.array([4]), np.empty((1, 1)))
    assert threads._layer_is_threadsafe == (threads.active_layer() in threads.THREADSAFE_LAYERS)


def test_every_parallel_cpu_kernel_is_reached_through_the_guard():
    """Not only the backend's launches: the jobs call kernels directly (scenarios, explain, sweeps);
    every parallel dispatcher of kernels/cpu.py is replaced by its guarded callable."""
    from numba.core.registry import CPUDispatcher

    from gpuskew.kernels import cpu

    parallel = {name for name, obj in vars(cpu).items()
                if isinstance(obj, CPUDispatcher) and obj.targetoptions.get("parallel")}
    guarded = {name for name in cpu.PARALLEL_KERNELS if hasattr(getattr(cpu, name), "dispatcher")}
    assert not parallel, f"parallel kernels reachable without the guard: {sorted(parallel)}"
    assert guarded == set(cpu.PARALLEL_KERNELS)
