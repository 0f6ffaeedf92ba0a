"""Runs tests/cudasim/ in a subprocess with numba's CUDA simulator switched on.

The simulator must be enabled before numba is imported, hence the subprocess. A small reduction
tile (GPUSKEW_REDUCE_TILE=16, the same for both backends in that process) keeps the simulated
blocks small; one case in tests/cudasim also exercises several tree levels.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent


@pytest.mark.cudasim
def test_cuda_backend_under_simulator_is_bitwise_identical_to_cpu():
    if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
        pytest.skip("already inside the simulator run")
    pytest.importorskip("numba.cuda", reason="numba-cuda is not installed")
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1", GPUSKEW_REDUCE_TILE="16")
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(HERE / "cudasim"),
                           # the CPU reduction again, compiled with the small tile (a separate cache)
                           str(HERE / "test_reduction.py")],
                          env=env, capture_output=True, text=True, timeout=1800)
    tail = (proc.stdout + proc.stderr)[-6000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1], tail
