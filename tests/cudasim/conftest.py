"""Tests that run the CUDA backend under numba's CUDA simulator.

They run only in a process started with NUMBA_ENABLE_CUDASIM=1 (tests/test_cudasim.py starts one);
collected in a normal run they skip. The simulator runs one Python thread per CUDA thread and
polls them at every syncthreads(): a short GIL switch interval makes that ~10x faster.

The simulator's static shared arrays (``cuda.shared.array``) are looked up and created per call
site without a lock: two threads of a block that both miss the lookup each create an array of
their own, and the block no longer shares its memory (a real GPU has no such failure). Under a
short switch interval this happened, rarely, in the reduction kernel: one block summed
uninitialised memory. :func:`_share_static_arrays_atomically` puts the lookup under a lock;
tests/cudasim/test_simulator_shared.py shows the failure without it.
"""

import os
import sys
import threading

import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _share_static_arrays_atomically() -> None:
    """Make the simulator's ``FakeCUDAShared.array`` look up / create an array under a lock.

    Same behaviour otherwise: one array per (file, line) of the calling kernel, for the block.
    """
    from numba.core import types
    from numba.cuda.simulator import kernelapi
    from numba.cuda.simulator.kernelapi import FakeCUDAShared
    from numba.np import numpy_support

    if getattr(FakeCUDAShared.array, "_gpuskew_locked", False):
        return
    unlocked = FakeCUDAShared.array
    lock = threading.Lock()

    def array(self, shape, dtype, alignment=None):
        if shape == 0 or alignment is not None:  # dynamic shared memory / unsupported: no lookup
            return unlocked(self, shape, dtype, alignment)
        if isinstance(dtype, types.Type):
            dtype = numpy_support.as_dtype(dtype)
        caller = sys._getframe(1)
        site = (caller.f_code.co_filename, caller.f_lineno)
        with lock:
            found = self._allocations.get(site)
            if found is None:
                # kernelapi's own numpy, as the simulator allocates (tests may slow it down)
                found = self._allocations[site] = kernelapi.np.empty(shape, dtype)
        return found

    array._gpuskew_locked = True
    array.__wrapped_original__ = unlocked
    FakeCUDAShared.array = array


def pytest_configure(config):
    if SIMULATED:
        sys.setswitchinterval(1e-4)
        _share_static_arrays_atomically()


@pytest.fixture(autouse=True)
def _needs_simulator():
    if not SIMULATED:
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 at interpreter start (tests/test_cudasim.py runs these)")
