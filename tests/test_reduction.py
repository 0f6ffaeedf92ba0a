"""The fixed reduction tree: group sums against an independent reference (np.bincount / math.fsum)."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuskew.core.backend import CpuBackend
from gpuskew.kernels.segsum import TILE
from gpuskew.core.reduction import plan_segmented_sum


def _sums(codes: np.ndarray, values: np.ndarray, n_groups: int) -> np.ndarray:
    return CpuBackend("test").segmented_sum(values, plan_segmented_sum(codes, n_groups))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(n=st.integers(0, 5 * TILE * TILE // 16), n_groups=st.integers(1, 9), seed=st.integers(0, 2**32 - 1))
def test_group_sums_match_fsum(n, n_groups, seed):
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, n_groups, n).astype(np.int32)
    values = rng.normal(scale=1e3, size=(3, n))
    got = _sums(codes, values, n_groups)
    for g in range(n_groups):
        for m in range(3):
            exact = math.fsum(values[m, codes == g])
            assert abs(got[m, g] - exact) <= 1e-12 * max(1.0, np.abs(values[m, codes == g]).sum())


def test_several_levels_and_empty_groups():
    n = TILE * TILE + 5  # one group spans three levels of tiles
    codes = np.zeros(n, dtype=np.int32)
    codes[-1] = 2  # group 1 is empty
    values = np.ones((1, n))
    plan = plan_segmented_sum(codes, 3)
    assert len(plan.levels) == 3
    got = _sums(codes, values, 3)
    np.testing.assert_array_equal(got, [[n - 1, 0.0, 1.0]])


def test_no_groups():
    assert _sums(np.zeros(0, np.int32), np.zeros((2, 0)), 0).shape == (2, 0)


def test_sum_is_the_documented_tree():
    # one tile: pairwise halving, zero padded; order matters in floating point, so check exact bits
    rng = np.random.default_rng(1)
    x = rng.normal(size=TILE - 3) * 10.0 ** rng.integers(-8, 8, TILE - 3)
    buf = np.zeros(TILE)
    buf[: x.size] = x
    s = TILE // 2
    while s:
        buf[:s] = buf[:s] + buf[s: 2 * s]
        s //= 2
    got = _sums(np.zeros(x.size, np.int32), x[None, :], 1)
    assert got[0, 0] == buf[0]


def test_many_groups_use_wider_sort_keys_and_stay_exact():
    # 8-bit, 16-bit and 32-bit sort keys in the plan: the sums must not depend on which
    rng = np.random.default_rng(3)
    for n_groups in (200, 300, 70_000):
        codes = rng.integers(0, n_groups, 50_000).astype(np.int32)
        values = np.ones((1, codes.size))
        got = _sums(codes, values, n_groups)
        np.testing.assert_array_equal(got[0], np.bincount(codes, minlength=n_groups).astype(float))


def test_tiles_never_cross_a_chunk_so_whole_chunks_reproduce_the_bits(monkeypatch):
    """A shard holding whole chunks of the book computes exactly the one-process level-0 tiles: per
    group, the shards' tiles (in chunk order) are the one-process tiles, bit for bit."""
    from gpuskew.core import reduction
    from gpuskew.kernels import cpu

    monkeypatch.setattr(reduction, "CHUNK", 3 * TILE)
    rng = np.random.default_rng(5)
    n, n_groups = 11 * TILE + 7, 4
    codes = rng.integers(0, n_groups, n).astype(np.int32)
    codes[codes == 3] = 2  # group 3 empty
    values = rng.normal(size=(2, n)) * 10.0 ** rng.integers(-6, 6, (2, n))
    plan = plan_segmented_sum(codes, n_groups)
    lv0 = plan.levels[0]
    chunk_of = lv0.index // reduction.CHUNK
    for start, length in zip(lv0.tile_start, lv0.tile_len):  # no tile crosses a chunk
        assert length == 0 or len(set(chunk_of[start:start + length])) == 1
    one = np.empty((2, lv0.tile_start.size))
    cpu.tile_sums(values, lv0.index, lv0.tile_start, lv0.tile_len, one)
    # the one-process tiles of each group, in order
    order_groups = codes[lv0.index]
    tile_group = np.array([order_groups[s] if l else -1 for s, l in zip(lv0.tile_start, lv0.tile_len)])
    shard = {g: [] for g in range(n_groups)}
    for c in range(-(-n // reduction.CHUNK)):
        sel = np.arange(c * reduction.CHUNK, min(n, (c + 1) * reduction.CHUNK))
        order = np.argsort(codes[sel], kind="stable")
        level, per_group = reduction._level0(codes[sel], n_groups, order, positions=sel)
        out = np.empty((2, level.tile_start.size))
        cpu.tile_sums(values[:, sel], level.index, level.tile_start, level.tile_len, out)
        k = 0
        for g in range(n_groups):
            for _ in range(per_group[g]):
                if level.tile_len[k]:  # a group absent from this shard gets an empty tile: not a real one
                    shard[g].append(out[:, k])
                k += 1
    for g in range(n_groups):
        mine = one[:, tile_group == g]
        theirs = np.stack(shard[g], axis=1) if shard[g] else np.zeros((2, 0))
        np.testing.assert_array_equal(mine.view(np.int64), theirs.view(np.int64))
    assert not shard[3] and np.isfinite(CpuBackend("t").segmented_sum(values, plan)).all()
