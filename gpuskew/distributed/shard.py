"""The shard task, run on a worker: read, validate and price one shard, return its partial sums.

A shard's task reads its fragments of the positions (only the Parquet row groups that hold them),
validates each against the book's validated instruments, underlyings and quotes (the same rules, in
the same order, as one process: :func:`gpuskew.io.dataset.validate_file`), prices every position in
one kernel pass on the worker's backend, and returns per level the **level-0 tile sums** of its
groups (12 measures x tiles, float64) with each tile's group key and chunk, and the counts of
positions and expired positions per group: small arrays (a tile stands for up to TILE positions).
Given a positions folder it also writes its rows of the positions there as one part file
(``part-<shard>.parquet`` or ``.arrow``: sorted names are book order).

Errors come back as values, not raised: an :class:`~gpuskew.errors.InvalidInput` of a file (the
coordinator picks the first failing file, as one process would), positions whose measures are not
finite (the coordinator merges them into one message), other domain errors (e.g. CUDA asked for and
not usable). A task killed with its worker is re-run by Dask and gives the same bits: it depends
only on its inputs, and its part file is written atomically under a fixed name.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew.distributed.plan import Shard
from gpuskew.errors import GpuskewError, InvalidInput


@dataclass(frozen=True)
class ShardContext:
    """What every shard task of a run shares (sent once to each worker)."""

    reference: dict[str, pa.Table]  #: validated instruments, underlyings, quotes
    sources: dict[str, str]  #: where each input table was read from
    as_of: datetime
    levels: tuple[tuple[str, ...], ...]  #: grouping levels besides the per-underlying one
    backend: str  #: 'auto' | 'cpu' | 'cuda', resolved on the worker
    positions_dir: str | None  #: folder of the positions part files; None: no positions table
    positions_format: str  #: 'parquet' | 'arrow'
    tile: int  #: the coordinator's reduction tile and chunk: a worker must use the same
    chunk: int
    #: more per-position rows to sum per group, by the same tree: ``(fn, params)`` with
    #: ``fn(book, priced, backend, params)`` -> (rows x positions) float64 array on the backend (a
    #: module-level function: it travels to the workers by reference); None: none
    extra: tuple[Any, Any] | None = None


@dataclass
class LevelPartial:
    """A shard's level-0 tiles of one level: ``keys`` (underlying and tag values of its groups, in
    its local group order), per tile its local group and chunk and its sums, per group the counts."""

    keys: dict[str, list]
    tile_group: np.ndarray  #: int32, local group of each tile (tiles are in local group order)
    tile_chunk: np.ndarray  #: int64, chunk of the positions each tile sums
    tile_sums: np.ndarray  #: float64 (N_MEASURES x tiles)
    counts: np.ndarray  #: int64 positions per local group
    expired: np.ndarray  #: int64 expired positions per local group


@dataclass
class NonFinite:
    """Positions whose measures are not finite: which measures (bool per measure), the first 5
    position numbers and how many there are."""

    measures: np.ndarray
    rows: list[int]
    n_bad: int


@dataclass
class ShardResult:
    """What a shard task returns (small: no per-position array)."""

    index: int
    rows: int
    levels: list[LevelPartial] = field(default_factory=list)
    #: the level-0 tiles of the ``extra`` rows, per level (same groups as ``levels``)
    extra_levels: list[LevelPartial] = field(default_factory=list)
    #: a domain error (InvalidInput of a file, CudaUnavailable, ...) and the fragment it came from
    error: GpuskewError | None = None
    error_fragment: int | None = None
    nonfinite: NonFinite | None = None
    part: str | None = None  #: the positions part file written, if any
    #: names of the instruments the shard's positions hold (risk vectors are per instrument held)
    instruments: list[str] = field(default_factory=list)
    n_expired: int = 0
    backend: tuple[str, str, str] = ("", "", "")  #: name, device, reason
    worker: str = ""
    peak_rss_bytes: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    #: sha256 (``sha256:<hex>``) of the files whose first row is in this shard, by file index: every
    #: non-empty file hashed once, on the worker that has just read it (not all on the coordinator)
    file_hashes: dict[int, str] = field(default_factory=dict)


def part_name(index: int, fmt: str = "parquet") -> str:
    """File name of shard ``index``'s rows of the positions (sorted names = book order)."""
    return f"part-{index:05d}.{fmt}"


def _peak_rss_bytes() -> int:
    """Peak resident memory of this process so far (bytes; ru_maxrss is KiB on Linux, bytes on macOS)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def _check_plan_constants(ctx: ShardContext) -> None:
    from gpuskew.core import reduction
    from gpuskew.kernels.segsum import TILE

    if (TILE, reduction.CHUNK) != (ctx.tile, ctx.chunk):
        raise RuntimeError(f"worker {socket.gethostname()}:{os.getpid()} reduces with tile {TILE} and chunk "
                           f"{reduction.CHUNK}, the coordinator with tile {ctx.tile} and chunk {ctx.chunk}: give "
                           "every process the same GPUSKEW_REDUCE_TILE and GPUSKEW_REDUCE_CHUNK")


def level_partial(codes: np.ndarray, n_groups: int, keys: dict[str, list], positions: np.ndarray,
                  values: Any, backend: Any, expired_mask: np.ndarray, chunk: int) -> LevelPartial:
    """The level-0 tile sums of one level: the tiles of the one-process plan
    (:func:`gpuskew.core.reduction._level0` with the global position numbers), summed by the
    backend's tile kernel."""
    from gpuskew.core.reduction import SegmentedSumPlan, _level0, _stable_order

    order = _stable_order(codes, n_groups)
    level0, tiles_per_group = _level0(codes, n_groups, order, positions=positions)
    sums = backend.segmented_sum(values, SegmentedSumPlan(n_groups, (level0,)))
    tile_group = np.repeat(np.arange(n_groups, dtype=np.int32), tiles_per_group)
    tile_chunk = positions[level0.index[level0.tile_start]] // chunk
    return LevelPartial(keys, tile_group, tile_chunk.astype(np.int64), np.ascontiguousarray(sums),
                        np.bincount(codes, minlength=n_groups).astype(np.int64),
                        np.bincount(codes[expired_mask], minlength=n_groups).astype(np.int64))


def _nonfinite(out: np.ndarray, positions: np.ndarray) -> NonFinite | None:
    bad = ~np.isfinite(out)
    rows = np.flatnonzero(bad.any(axis=0))
    if not rows.size:
        return None
    return NonFinite(bad.any(axis=1), positions[rows[:5]].tolist(), int(rows.size))


def run_shard(shard: Shard, ctx: ShardContext) -> ShardResult:
    """The task of one shard (module docstring)."""
    from gpuskew import schema
    from gpuskew.core.book import Book, concat_positions
    from gpuskew.core.engine import _positions_table, as_backend, price_positions
    from gpuskew.core.groups import group_positions
    from gpuskew.io.dataset import file_sha256, validate_file

    t0 = time.perf_counter()
    result = ShardResult(shard.index, shard.rows, worker=f"{socket.gethostname()}:{os.getpid()}")
    _check_plan_constants(ctx)
    parts = []
    for k, frag in enumerate(shard.fragments):
        try:
            parts.append(validate_file(frag.file, ctx.reference, ctx.sources, frag.start, frag.stop))
        except InvalidInput as exc:
            result.error, result.error_fragment = exc, k
            return result
    timings = result.timings
    timings["read_validate"] = time.perf_counter() - t0
    t = time.perf_counter()
    for frag in shard.fragments:
        if frag.start == 0:
            result.file_hashes[frag.file_index] = file_sha256(frag.file.path)
    timings["hash"] = time.perf_counter() - t
    if not parts:
        return result
    positions = concat_positions(parts, [f.file.path for f in shard.fragments])
    del parts
    import pyarrow.compute as pc

    result.instruments = sorted(str(v) for v in pc.unique(positions.column("instrument").cast("string")).to_pylist())
    ref = ctx.reference
    book = Book(ref["instruments"], positions, ref["underlyings"], ref["quotes"],
                dict(ctx.sources, positions=shard.fragments[0].file.path), {n: "shard" for n in schema.INPUT_TABLES})
    try:
        backend = as_backend(ctx.backend, len(book))
        t = time.perf_counter()
        priced = price_positions(book, ctx.as_of, backend)
        backend.synchronize()
        timings["greeks"] = time.perf_counter() - t
        t = time.perf_counter()
        numbers = shard.positions()
        expired_mask = priced.status == schema.STATUS_EXPIRED
        flat = priced.flat
        extra = None
        if ctx.extra is not None:
            fn, params = ctx.extra
            extra = fn(book, priced, backend, params)
        for level in ((), *ctx.levels):
            g = group_positions(flat.underlying_code, flat.underlying_names, book.positions, level)
            result.levels.append(level_partial(g.codes, g.n_groups, g.keys, numbers, priced.out, backend,
                                               expired_mask, ctx.chunk))
            if extra is not None:
                result.extra_levels.append(level_partial(g.codes, g.n_groups, g.keys, numbers, extra, backend,
                                                         expired_mask, ctx.chunk))
        timings["tile_sums"] = time.perf_counter() - t
    except GpuskewError as exc:  # e.g. backend 'cuda' asked for and not usable on this worker
        result.error = exc
        return result
    result.backend = (backend.name, backend.device, backend.reason)
    result.n_expired = int(expired_mask.sum())
    if not all(np.isfinite(lv.tile_sums).all() for lv in result.levels):
        result.nonfinite = _nonfinite(np.asarray(backend.to_host(priced.out)), numbers)
    elif extra is not None and not all(np.isfinite(lv.tile_sums).all() for lv in result.extra_levels):
        result.nonfinite = _nonfinite(np.asarray(backend.to_host(extra)), numbers)
    if ctx.positions_dir is not None and result.nonfinite is None:
        from gpuskew.session import position_writer

        t = time.perf_counter()
        out = np.asarray(backend.to_host(priced.out))
        table = _positions_table(book, flat, priced.T, out, priced.status)
        del out
        folder = Path(ctx.positions_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / part_name(shard.index, ctx.positions_format)
        position_writer(table, ctx.positions_format)(path)
        result.part = str(path)
        timings["positions_part"] = time.perf_counter() - t
    result.peak_rss_bytes = _peak_rss_bytes()
    timings["total"] = time.perf_counter() - t0
    return result


def validate_whole_file(file: Any, ctx: ShardContext) -> GpuskewError | None:
    """Validate every row of one file (to give the exact one-process message for a file whose
    failing rows a shard found in part of it). Returns the error, or None."""
    from gpuskew.io.dataset import validate_file

    try:
        validate_file(file, ctx.reference, ctx.sources)
    except InvalidInput as exc:
        return exc
    return None
