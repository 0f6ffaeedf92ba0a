"""The simulator's static shared arrays must be one array per block (see conftest.py).

Forcing a thread switch inside the simulator's lookup (a slow ``np.empty``) reproduces its race
deterministically: without the lock, the threads of the first block get different arrays and
thread 0 sums memory the others never wrote. With the lock of conftest.py (which allocates through
the same slowed ``np.empty``) every block is right.
"""

import time

import numpy as np
import pytest

THREADS = 16


from numba import cuda, float64  # noqa: E402 - collected only under the simulator


@cuda.jit
def block_sum(out):
    buf = cuda.shared.array(THREADS, float64)
    j = cuda.threadIdx.x
    buf[j] = j + 1.0
    cuda.syncthreads()
    if j == 0:
        total = 0.0
        for i in range(THREADS):
            total += buf[i]
        out[cuda.blockIdx.x] = total


@pytest.fixture
def slow_empty(monkeypatch):
    """np.empty as the simulator sees it: yields the GIL first (widens the race window) and
    returns NaN-filled memory (so that a read of memory no thread wrote cannot look right)."""
    from numba.cuda.simulator import kernelapi

    real_empty = np.empty

    class SlowNumpy:
        def __getattr__(self, name):
            return getattr(np, name)

        @staticmethod
        def empty(*args, **kwargs):
            time.sleep(0.05)
            memory = real_empty(*args, **kwargs)
            memory.fill(np.nan)
            return memory

    monkeypatch.setattr(kernelapi, "np", SlowNumpy())


def test_static_shared_array_is_one_per_block(slow_empty):
    out = np.zeros(4)
    block_sum[4, THREADS](out)
    assert out.tolist() == [THREADS * (THREADS + 1) / 2] * 4


def test_without_the_lock_the_simulator_races(slow_empty, monkeypatch):
    """The failure the lock prevents is real (documents why conftest.py patches the simulator)."""
    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    unlocked = FakeCUDAShared.array.__wrapped_original__
    monkeypatch.setattr(FakeCUDAShared, "array", unlocked)
    out = np.zeros(4)
    block_sum[4, THREADS](out)
    assert np.isnan(out[0])  # the first block's threads did not share one array
