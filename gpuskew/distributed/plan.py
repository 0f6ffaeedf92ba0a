"""Shard planning: cut a book's positions into shards whose partial sums reproduce one process.

The positions are numbered in book order (the files of a dataset in order, see
:mod:`gpuskew.io.dataset`) and the reduction plan cuts them into chunks of
:data:`gpuskew.core.reduction.CHUNK` positions; no level-0 tile crosses a chunk, and every group
lies within one underlying. So a shard computes exactly the one-process level-0 tiles of its
groups when every (group, chunk) pair has all its positions in that shard, which holds when shards
are ranges of positions cut only

* at a multiple of CHUNK (always allowed), or
* between two files of different ``underlying=X`` partition folders (every group there ends: the
  shard checks that each file's rows hold instruments of its folder's underlying).

:func:`plan_shards` cuts greedily within the target size, at an underlying boundary when there is
one (whole underlyings when they fit, a big underlying by CHUNK-aligned ranges), so a shard is never
larger than the target size or one CHUNK, whichever is larger. A one-file book is cut at CHUNK multiples
(a Parquet file's worker reads only the row groups of its range).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from gpuskew.io.dataset import DatasetFile, PositionsDataset

#: largest default shard, in chunks of the reduction plan (4 x 2^20 positions: ~1.5 GiB of a worker)
DEFAULT_SHARD_CHUNKS = 4
#: shards per worker the default size aims at (some balance between workers and shards of unequal size)
SHARDS_PER_WORKER = 4


def default_shard_positions(chunk: int, positions: int = 0, workers: int = 1) -> int:
    """GPUSKEW_SHARD_POSITIONS when set, else ``positions / (workers x SHARDS_PER_WORKER)`` rounded
    up to whole chunks, between one chunk and :data:`DEFAULT_SHARD_CHUNKS` chunks (peak memory of
    a worker follows the shard size, not the book's)."""
    text = os.environ.get("GPUSKEW_SHARD_POSITIONS")
    if text:
        try:
            n = int(text)
        except ValueError:
            n = 0
        if n < 1:
            from gpuskew.errors import InvalidConfig

            raise InvalidConfig("environment", "GPUSKEW_SHARD_POSITIONS", text,
                                "must be a positive number of positions")
        return n
    wanted = -(-max(1, positions) // (max(1, workers) * SHARDS_PER_WORKER))
    return int(min(DEFAULT_SHARD_CHUNKS, max(1, -(-wanted // chunk))) * chunk)


@dataclass(frozen=True)
class Fragment:
    """Rows ``[start, stop)`` of ``file``; ``offset``: the position number of its first row."""

    file: DatasetFile
    file_index: int
    start: int
    stop: int
    offset: int

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def whole_file(self) -> bool:
        return self.start == 0 and self.stop == self.file.rows


@dataclass(frozen=True)
class Shard:
    """Positions ``[start, stop)`` of the book, as fragments of its files."""

    index: int
    start: int
    stop: int
    fragments: tuple[Fragment, ...]

    @property
    def rows(self) -> int:
        return self.stop - self.start

    def positions(self) -> np.ndarray:
        """The position number of each of the shard's rows (int64), fragment after fragment."""
        return np.arange(self.start, self.stop, dtype=np.int64)


def underlying_cuts(dataset: PositionsDataset) -> np.ndarray:
    """Position numbers between two files of different ``underlying=X`` folders, and the total."""
    offsets = dataset.offsets()
    cuts = {int(offsets[-1])}
    for i in range(1, len(dataset.files)):
        before, after = dataset.files[i - 1].underlying, dataset.files[i].underlying
        if before is not None and after is not None and before != after:
            cuts.add(int(offsets[i]))
    return np.array(sorted(c for c in cuts if c > 0), dtype=np.int64)


def allowed_cuts(dataset: PositionsDataset, chunk: int) -> np.ndarray:
    """Sorted position numbers where a shard may end (module docstring); the last is the total."""
    total = dataset.rows
    cuts = set(range(chunk, total, chunk)) | set(underlying_cuts(dataset).tolist())
    return np.array(sorted(c for c in cuts if 0 < c <= total), dtype=np.int64)


def plan_shards(dataset: PositionsDataset, shard_positions: int, chunk: int) -> list[Shard]:
    """Cut the positions into shards of at most ``max(shard_positions, chunk)`` positions at the
    allowed points: at the last underlying boundary within ``shard_positions`` of the shard's start
    when there is one (a shard holds whole underlyings when they fit), else at the last multiple
    of ``chunk`` there, else at the first allowed point (module docstring). An empty book has no
    shard."""
    if shard_positions < 1:
        raise ValueError(f"shard_positions must be >= 1, got {shard_positions}")
    offsets = dataset.offsets()
    cuts = allowed_cuts(dataset, chunk)
    by_underlying = underlying_cuts(dataset)
    bounds = [0]
    while cuts.size and bounds[-1] < int(cuts[-1]):
        start = bounds[-1]
        later = cuts[cuts > start]
        within = later[later <= start + shard_positions]
        ends = by_underlying[(by_underlying > start) & (by_underlying <= start + shard_positions)]
        bounds.append(int(ends[-1]) if ends.size else int(within[-1]) if within.size else int(later[0]))
    shards = []
    for k in range(len(bounds) - 1):
        a, b = bounds[k], bounds[k + 1]
        frags = []
        for i, f in enumerate(dataset.files):
            lo, hi = max(a, int(offsets[i])), min(b, int(offsets[i + 1]))
            if lo < hi:
                frags.append(Fragment(f, i, lo - int(offsets[i]), hi - int(offsets[i]), lo))
        shards.append(Shard(k, a, b, tuple(frags)))
    return shards
