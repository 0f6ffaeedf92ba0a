"""The coordinator's reduction: the shards' level-0 tile sums -> group sums, bitwise one process.

Per level:

1. **global group codes**: the distinct group keys of all shards (each shard sends the keys of the
   groups it holds) are numbered by :func:`gpuskew.core.groups.group_positions` itself, run over one
   row per distinct key: the order depends only on the set of keys (underlying name, then tag
   values sorted, null last), so the codes are those one process gives the whole book;
2. **tile order**: each shard's tiles are re-labelled with global codes and all tiles are ordered by
   (group, chunk, shard, tile): the one-process level-0 order, since a (group, chunk) pair lies
   within one shard whose tiles of it are in position order (:mod:`gpuskew.distributed.plan`);
3. **the rest of the tree**: levels 1+ of the one-process plan over those tiles
   (:func:`gpuskew.core.reduction.upper_levels`), summed by the CPU backend's tile kernel (the same
   tree on every backend), then counts and expired positions added exactly as integers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from gpuskew.core.groups import Grouping, group_positions
from gpuskew.distributed.shard import LevelPartial


@dataclass
class ReducedLevel:
    """Group sums of one level over every shard, in the one-process order."""

    level: tuple[str, ...]
    grouping: Grouping  #: keys of the global groups (its codes: one per distinct key, unused)
    sums: np.ndarray  #: float64 (N_MEASURES x n_groups)
    counts: np.ndarray  #: int64
    expired: np.ndarray  #: int64


def _key_tuples(keys: dict[str, list], columns: Sequence[str]) -> list[tuple]:
    return list(zip(*(keys[c] for c in columns))) if keys[columns[0]] else []


def global_groups(level: tuple[str, ...], partials: Sequence[LevelPartial],
                  underlying_names: list[str]) -> tuple[Grouping, list[np.ndarray]]:
    """The level's global grouping (step 1 of the module docstring) and, per partial, the global code
    of each of its local groups."""
    columns = ["underlying", *level]
    distinct: dict[tuple, int] = {}
    for p in partials:
        for key in _key_tuples(p.keys, columns):
            distinct.setdefault(key, len(distinct))
    rows = list(distinct)
    code_of_name = {name: i for i, name in enumerate(underlying_names)}
    underlying_code = np.array([code_of_name[r[0]] for r in rows], dtype=np.int32)
    table = pa.table({c: pa.array([r[i + 1] for r in rows], pa.string()) for i, c in enumerate(level)})
    if not level:
        table = pa.table({"_": pa.nulls(len(rows))})
    grouping = group_positions(underlying_code, underlying_names, table, level)
    code_of_key = {key: int(grouping.codes[i]) for key, i in distinct.items()}
    maps = [np.array([code_of_key[k] for k in _key_tuples(p.keys, columns)], dtype=np.int64) for p in partials]
    return grouping, maps


def reduce_level(level: tuple[str, ...], partials: Sequence[LevelPartial], underlying_names: list[str],
                 backend: object | None = None) -> ReducedLevel:
    """Group sums of ``level`` from the shards' partials (listed in shard order)."""
    from gpuskew.core.backend import CpuBackend
    from gpuskew.core.reduction import SegmentedSumPlan, upper_levels
    from gpuskew.kernels.instruments import N_MEASURES

    grouping, maps = global_groups(level, partials, underlying_names)
    n_groups = grouping.n_groups
    counts = np.zeros(n_groups, dtype=np.int64)
    expired = np.zeros(n_groups, dtype=np.int64)
    if n_groups == 0:
        rows = partials[0].tile_sums.shape[0] if partials else N_MEASURES
        return ReducedLevel(level, grouping, np.zeros((rows, 0)), counts, expired)
    tile_group = np.concatenate([m[p.tile_group] for m, p in zip(maps, partials)])
    tile_chunk = np.concatenate([p.tile_chunk for p in partials])
    tile_shard = np.concatenate([np.full(p.tile_group.size, k, np.int64) for k, p in enumerate(partials)])
    tile_rank = np.concatenate([np.arange(p.tile_group.size, dtype=np.int64) for p in partials])
    order = np.lexsort((tile_rank, tile_shard, tile_chunk, tile_group))
    values = np.ascontiguousarray(np.concatenate([p.tile_sums for p in partials], axis=1)[:, order])
    tiles_per_group = np.bincount(tile_group, minlength=n_groups).astype(np.int64)
    plan = SegmentedSumPlan(n_groups, upper_levels(tiles_per_group))
    chosen = backend if backend is not None else CpuBackend("coordinator: the upper levels of the tree")
    sums = chosen.segmented_sum(values, plan)  # type: ignore[attr-defined]
    for m, p in zip(maps, partials):
        np.add.at(counts, m, p.counts)
        np.add.at(expired, m, p.expired)
    return ReducedLevel(level, grouping, np.asarray(sums), counts, expired)
