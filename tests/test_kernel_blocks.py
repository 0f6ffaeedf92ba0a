"""The CPU pricing kernels work in blocks (kernels/cpu.py: live options packed, priced in one
vectorised loop, then each row's outputs): every row must get the bits of the scalar functions the
CUDA kernels call per thread, whatever the mix of a block, its length and where it ends."""

from __future__ import annotations

import numpy as np
import pytest

from gpuskew.kernels import cpu
from gpuskew.kernels import instruments as ins
from kernel_helpers import INPUTS, kernel_measures, python_measures

BLOCK = cpu.BLOCK


def _book(n: int, seed: int, option_share: float = 0.55) -> dict[str, np.ndarray]:
    """n random positions of every kind and settlement: live and expired options (calls and puts,
    strikes 0.05x-20x, vols 5%-400%, 1 hour to 8 years), futures (some expired), perpetuals and
    spot, with and without quoted forwards and entry prices."""
    rng = np.random.default_rng(seed)
    kind = np.where(rng.random(n) < option_share, ins.KIND_OPTION, rng.integers(0, 3, n)).astype(np.int8)
    S = rng.uniform(10.0, 90_000.0, n)
    T = np.where(rng.random(n) < 0.1, -rng.uniform(0, 0.1, n), rng.uniform(1 / 8760, 8.0, n))
    T = np.where(kind == ins.KIND_SPOT, 0.0, np.where(kind == ins.KIND_PERPETUAL, 0.0, T))
    cp = np.where(kind == ins.KIND_OPTION, rng.choice([ins.CALL, ins.PUT], n), 0).astype(np.int8)
    return {
        "kind": kind,
        "settle": rng.integers(0, 2, n).astype(np.int8),
        "cp": cp,
        "qty": rng.normal(0, 50, n),
        "csize": rng.choice([1.0, 0.1, 10.0], n),
        "strike": np.where(kind == ins.KIND_OPTION, S * np.exp(rng.uniform(np.log(0.05), np.log(20.0), n)), 0.0),
        "T": T,
        "S": S,
        "fwd": np.where(rng.random(n) < 0.3, S * rng.uniform(0.95, 1.05, n), 0.0),
        "r": rng.uniform(-0.02, 0.1, n),
        "vol": np.where(kind == ins.KIND_OPTION, rng.uniform(0.05, 4.0, n), 0.0),
        "entry": np.where(rng.random(n) < 0.5, S * rng.uniform(0.8, 1.2, n), 0.0),
    }


def _assert_bitwise(got: dict, want: dict) -> None:
    for name in want:
        a = np.ascontiguousarray(got[name]).view(np.int64)
        b = np.ascontiguousarray(want[name]).view(np.int64)
        bad = np.flatnonzero(a != b)
        assert bad.size == 0, f"{name}: {bad.size} rows differ from the scalar path, first {bad[:5]}"


@pytest.mark.parametrize("n, option_share", [(1, 1.0), (BLOCK - 1, 0.55), (BLOCK, 1.0), (BLOCK + 1, 0.0),
                                             (3 * BLOCK + 17, 0.55), (5 * BLOCK, 0.95)])
def test_position_greeks_blocks_give_the_scalar_bits(n, option_share):
    book = _book(n, seed=n, option_share=option_share)
    got, got_status = kernel_measures(**book)
    want, want_status = python_measures(**book)
    np.testing.assert_array_equal(got_status, want_status)
    _assert_bitwise(got, want)
    assert (got_status == ins.STATUS_EXPIRED).any() or n < 10 or option_share == 0.0


def test_instrument_pricing_blocks_give_the_scalar_bits():
    n = 4 * BLOCK + 5
    book = _book(n, seed=11)
    args = [np.ascontiguousarray(book[k]) for k in ("kind", "cp", "strike", "T", "S", "fwd", "r", "vol")]
    q = np.full((ins.N_QUANTITIES, n), np.nan)
    status = np.full(n, -1, dtype=np.int8)
    cpu.instrument_pricing(*args, q, status)
    q_py = np.full((ins.N_QUANTITIES, n), np.nan)
    status_py = np.full(n, -1, dtype=np.int8)
    cols = [a.tolist() for a in args]
    for j in range(n):
        ins.store_instrument_quantities(*(c[j] for c in cols), q_py, status_py, j)
    np.testing.assert_array_equal(status, status_py)
    assert np.array_equal(q.view(np.int64), q_py.view(np.int64))


def test_the_book_inputs_match_the_kernel_signature():
    assert list(_book(3, 0)) == list(INPUTS)
