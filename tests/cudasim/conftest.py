"""Tests that run the CUDA backend under numba's CUDA simulator.

They run only in a process started with NUMBA_ENABLE_CUDASIM=1 (tests/test_cudasim.py starts one);
collected in a normal run they skip. The simulator runs one Python thread per CUDA thread and
polls them at every syncthreads(): a short GIL switch interval makes that ~10x faster.
"""

import os
import sys

import pytest

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def pytest_configure(config):
    if SIMULATED:
        sys.setswitchinterval(1e-4)


@pytest.fixture(autouse=True)
def _needs_simulator():
    if not SIMULATED:
        pytest.skip("needs NUMBA_ENABLE_CUDASIM=1 at interpreter start (tests/test_cudasim.py runs these)")
