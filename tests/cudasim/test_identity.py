"""CUDA backend (simulated) == CPU backend, bit for bit: per-position measures, statuses, group sums.

Books: the demo universe at small sizes (every contract type, expired options, several desks and
books), sizes that are not multiples of the tile or block size, one-row and empty books.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

import gpuskew
from gpuskew import schema
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
from gpuskew.kernels.segsum import TILE


def _bits(table: pa.Table, columns) -> np.ndarray:
    return np.stack([table[c].to_numpy(zero_copy_only=False).astype(np.float64) for c in columns]).view(np.int64)


def _both(tables, group_by=("desk", "desk,book")):
    book = gpuskew.load_book(tables)
    cpu = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", group_by=list(group_by))
    book = gpuskew.load_book(tables)
    gpu = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cuda", group_by=list(group_by))
    return cpu, gpu


def _assert_identical(cpu, gpu):
    assert gpu.summary["backend"]["device"] == "cuda-simulator"
    assert cpu.summary["backend"]["used"] == "cpu"
    measures = list(schema.MEASURE_NAMES)
    assert cpu.positions.num_rows == gpu.positions.num_rows
    np.testing.assert_array_equal(_bits(cpu.positions, measures), _bits(gpu.positions, measures))
    assert cpu.positions["status"].equals(gpu.positions["status"])
    assert cpu.exposures.drop(measures).equals(gpu.exposures.drop(measures))
    np.testing.assert_array_equal(_bits(cpu.exposures, measures), _bits(gpu.exposures, measures))


@pytest.mark.parametrize("n,seed", [(1, 3), (TILE - 1, 11), (TILE + 1, 5), (3 * TILE + 7, 2), (301, 7)])
def test_demo_books_identical(n, seed):
    tables = make_demo_book(n_positions=n, seed=seed)
    cpu, gpu = _both(tables)
    _assert_identical(cpu, gpu)
    if n > 100:
        kinds = set(cpu.positions["kind"].to_pylist())
        assert kinds == {"spot", "perpetual", "future", "option"}


def test_one_big_group_needs_several_tree_levels():
    # TILE**2 + 3 positions in one group: three levels of tiles
    tables = make_demo_book(n_positions=TILE * TILE + 3, seed=1)
    pos = tables["positions"]
    keep = pa.compute.equal(pos["instrument"], pos["instrument"][0])
    one = pos.filter(keep)
    reps = -(-(TILE * TILE + 3) // max(1, one.num_rows))
    tables["positions"] = pa.concat_tables([one] * reps).slice(0, TILE * TILE + 3)
    cpu, gpu = _both(tables, group_by=())
    _assert_identical(cpu, gpu)
    assert cpu.exposures.num_rows == 1


def test_empty_book_identical():
    tables = make_demo_book(n_positions=50, seed=1)
    tables["positions"] = tables["positions"].slice(0, 0)
    cpu, gpu = _both(tables)
    _assert_identical(cpu, gpu)
    assert cpu.exposures.num_rows == 0


def test_same_bits_run_after_run():
    tables = make_demo_book(n_positions=200, seed=9)
    book = gpuskew.load_book(tables)
    a = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cuda", group_by=["desk"])
    b = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cuda", group_by=["desk"])
    measures = list(schema.MEASURE_NAMES)
    np.testing.assert_array_equal(_bits(a.exposures, measures), _bits(b.exposures, measures))
