"""The CUDA per-position and per-instrument kernels (one thread per row, the scalar functions) against
the CPU kernels that price options in blocks (kernels/cpu.py), bit for bit, on books that cross the
CPU's block edges: every kind, live and expired options, quoted forwards, entry prices."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from gpuskew.kernels import cpu
from gpuskew.kernels import instruments as ins

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_kernel_blocks import _book  # noqa: E402

ORDER = ("kind", "settle", "cp", "qty", "csize", "strike", "T", "S", "fwd", "r", "vol", "entry")


@pytest.mark.parametrize("n, option_share", [(cpu.BLOCK + 3, 0.55), (2 * cpu.BLOCK + 1, 0.95)])
def test_position_greeks_identical(n, option_share):
    from gpuskew.kernels import cuda as kcuda

    book = _book(n, seed=n, option_share=option_share)
    args = [np.ascontiguousarray(book[k]) for k in ORDER]
    out_cpu = np.full((ins.N_MEASURES, n), np.nan)
    st_cpu = np.full(n, -1, dtype=np.int8)
    cpu.position_greeks(*args, out_cpu, st_cpu)
    out_gpu = np.full((ins.N_MEASURES, n), np.nan)
    st_gpu = np.full(n, -1, dtype=np.int8)
    kcuda.launch_position_greeks(*args, out_gpu, st_gpu)
    np.testing.assert_array_equal(st_gpu, st_cpu)
    np.testing.assert_array_equal(out_gpu.view(np.int64), out_cpu.view(np.int64))
    assert (st_cpu == ins.STATUS_EXPIRED).any() and (st_cpu == ins.STATUS_OK).any()


def test_instrument_pricing_identical():
    from gpuskew.kernels import cuda as kcuda

    n = 2 * cpu.BLOCK + 5
    book = _book(n, seed=5)
    args = [np.ascontiguousarray(book[k]) for k in ("kind", "cp", "strike", "T", "S", "fwd", "r", "vol")]
    q_cpu = np.full((ins.N_QUANTITIES, n), np.nan)
    st_cpu = np.full(n, -1, dtype=np.int8)
    cpu.instrument_pricing(*args, q_cpu, st_cpu)
    q_gpu = np.full((ins.N_QUANTITIES, n), np.nan)
    st_gpu = np.full(n, -1, dtype=np.int8)
    kcuda.launch_instrument_pricing(*args, q_gpu, st_gpu)
    np.testing.assert_array_equal(st_gpu, st_cpu)
    np.testing.assert_array_equal(q_gpu.view(np.int64), q_cpu.view(np.int64))
