"""Deterministic segmented sums: the host-side plan of the fixed reduction tree.

The tree itself is in ``gpuskew.kernels.segsum`` (and its two implementations in kernels/cpu.py and
kernels/cuda.py). Here we only lay out which elements each tile sums, level after level:

* level 0: the positions of each group, in ascending position order (a stable sort by group
  code), cut into tiles of TILE consecutive elements; every group has at least one tile (an empty
  tile sums to 0.0);
* level k+1: the tile sums of level k, which are contiguous per group, cut again into tiles;
* until every group has one tile: its sum is the group total.

The plan depends only on the group codes, so it is built once per grouping, on the host, with
NumPy, and is the same for both backends; so are the sums, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gpuskew.kernels.segsum import TILE


@dataclass(frozen=True)
class TileLevel:
    """One level of the tree: tile t sums values[:, index[tile_start[t] : tile_start[t] + tile_len[t]]]."""

    index: np.ndarray  #: int64 gather index into the level's input columns
    tile_start: np.ndarray  #: int64 first position (in ``index``) of each tile
    tile_len: np.ndarray  #: int64 elements in each tile (0..TILE)


@dataclass(frozen=True)
class SegmentedSumPlan:
    """All levels of the tree for ``n_groups`` groups; the last level has one tile per group."""

    n_groups: int
    levels: tuple[TileLevel, ...]


def _tiles(counts: np.ndarray, index: np.ndarray) -> tuple[TileLevel, np.ndarray]:
    """Cut groups of ``counts`` consecutive elements of ``index`` into tiles; return the level and
    the number of tiles per group."""
    tiles_per_group = np.maximum(1, -(-counts // TILE)).astype(np.int64)
    group_start = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    tile_group = np.repeat(np.arange(counts.size), tiles_per_group)
    first_tile = np.concatenate(([0], np.cumsum(tiles_per_group)[:-1]))
    rank = np.arange(tile_group.size, dtype=np.int64) - np.repeat(first_tile, tiles_per_group)
    tile_start = group_start[tile_group] + rank * TILE
    tile_len = np.clip(counts[tile_group] - rank * TILE, 0, TILE).astype(np.int64)
    return TileLevel(index.astype(np.int64, copy=False), tile_start, tile_len), tiles_per_group


def _stable_order(codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Indices that sort ``codes`` stably (ties keep position order). NumPy radix-sorts 8- and
    16-bit keys in O(n): ~5x faster than its merge sort of int32 at 10^6 rows."""
    if n_groups <= 1 << 8:
        return np.argsort(codes.astype(np.uint8), kind="stable")
    if n_groups <= 1 << 16:
        return np.argsort(codes.astype(np.uint16), kind="stable")
    return np.argsort(codes, kind="stable")


def plan_segmented_sum(codes: np.ndarray, n_groups: int) -> SegmentedSumPlan:
    """Plan the sums of every group ``g`` in ``range(n_groups)`` of the elements with ``codes == g``."""
    codes = np.asarray(codes)
    if n_groups == 0:
        return SegmentedSumPlan(0, ())
    order = _stable_order(codes, n_groups)
    counts = np.bincount(codes, minlength=n_groups).astype(np.int64)
    levels = []
    level, counts = _tiles(counts, order)
    levels.append(level)
    while counts.sum() > n_groups:
        level, counts = _tiles(counts, np.arange(int(counts.sum()), dtype=np.int64))
        levels.append(level)
    return SegmentedSumPlan(n_groups, tuple(levels))
