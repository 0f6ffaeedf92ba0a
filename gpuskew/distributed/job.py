"""A sharded run: one Session step whose positions are priced by the shards of a cluster.

    from gpuskew.distributed import open_cluster, open_sharded_book, sharded_step
    sharded = open_sharded_book("book/")                   # reference tables; positions stay on disk
    session = Session(sharded.book, limits, "cpu", group_by=["desk"])
    with open_cluster("local:2") as cluster:
        step = sharded_step(session, sharded, cluster, as_of, positions_dir="parts/")
        step.write("run/")                  # run/positions.parquet: the shards' part files

The coordinator validates the instruments, underlyings and quotes (small), plans the shards
(:mod:`gpuskew.distributed.plan`), sends the shard tasks (:mod:`gpuskew.distributed.shard`), picks the
error one process would have raised if any shard reports one, reduces the shards' level-0 tile sums
in the fixed tree order (:mod:`gpuskew.distributed.reduce`) into the exposures table, then hands it to
the Session's own :meth:`~gpuskew.session.Session.finish` (summary, run id, adherence, alerts, hedges).
Exposures, adherence, hedges and alerts are bitwise those of one process on the same book and
backend; positions.parquet is the same rows, written by the shards as part files of a dataset.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew.core.book import Book
from gpuskew.distributed.executor import Cluster
from gpuskew.distributed.plan import Shard, default_shard_positions, plan_shards
from gpuskew.distributed.reduce import ReducedLevel, reduce_level
from gpuskew.distributed.shard import ShardContext, ShardResult, run_shard, validate_whole_file
from gpuskew.errors import InvalidInput
from gpuskew.io.dataset import PositionsDataset
from gpuskew.session import Session, StepResult


@dataclass
class ShardedBook:
    """A book whose positions stay in their files: the validated instruments, underlyings and quotes,
    the positions' files (:class:`~gpuskew.io.dataset.PositionsDataset`) and ``book``: a
    :class:`~gpuskew.core.book.Book` with those tables and no position rows (the positions' columns
    and tags), for the :class:`~gpuskew.session.Session`."""

    book: Book
    dataset: PositionsDataset
    reference: dict[str, pa.Table]
    sources: dict[str, str]

    def __len__(self) -> int:
        return self.dataset.rows


def open_sharded_book(book_dir: str | Path) -> ShardedBook:
    """Read and validate a book folder's instruments, underlyings and quotes, and list its positions
    (a partitioned dataset folder, or one file): nothing of the positions is read but their
    Parquet footers and columns."""
    from gpuskew.core.book import read_reference
    from gpuskew.io import find_table_file
    from gpuskew.io.dataset import one_file, positions_dataset, validate_file

    book_dir = Path(book_dir)
    reference, sources, hashes = read_reference(book_dir)
    dataset = positions_dataset(book_dir) or one_file(find_table_file(book_dir, "positions"))
    sources["positions"] = dataset.source
    try:  # the columns of the positions (tags), validated on no rows
        empty = validate_file(dataset.files[0], reference, sources, 0, 0)
    except InvalidInput:  # a column-level problem: the first file's message as one process gives it
        validate_file(dataset.files[0], reference, sources)
        raise
    hashes["positions"] = None  # computed by sharded_step from the hashes the shards return
    names = ("instruments", "positions", "underlyings", "quotes")
    book = Book(reference["instruments"], empty, reference["underlyings"], reference["quotes"],
                {n: sources[n] for n in names}, {n: hashes[n] for n in names})
    return ShardedBook(book, dataset, reference, sources)


class ShardedStepResult(StepResult):
    """A step whose positions were written by the shards: the positions output
    (``positions.parquet`` or ``positions.arrow``) is a folder of part files, one per shard, in book
    order: the same rows as one process's file. Written in place when the shards wrote into the
    :class:`gpuskew.io.OutputStage` of the run (the CLI), else moved into the published folder.
    ``positions`` (the in-memory table) is empty: the rows never sit in one process; read the
    published folder (``pyarrow.parquet.read_table(run / "positions.parquet")``)."""

    positions_dir: str | None = None
    positions_format: str = "parquet"
    #: what the shards did (cluster, shards, each shard's result: worker, timings, peak memory)
    info: Any = None
    #: the group sums of ``sharded_step(extra=...)``'s rows per level (the per-underlying level
    #: first), in the same groups and order as the exposures; empty without ``extra``
    extra_sums: list = []

    def output_files(self, positions: str = "parquet") -> dict[str, Callable[[Path], None]]:
        from gpuskew.session import position_file

        fmt = "none" if positions == "none" or self.positions_dir is None else self.positions_format
        files = super().output_files(fmt)
        if fmt != "none":
            files[position_file(fmt)] = self._place_parts
        return files

    def write(self, out_dir: str | Path, overwrite: bool = False, positions: str = "parquet",
              stage: Any = None) -> list[Path]:
        """Write the run folder atomically (the positions as the shards' part files)."""
        try:
            return super().write(out_dir, overwrite=overwrite,
                                 positions="none" if positions == "none" or self.positions_dir is None
                                 else self.positions_format, stage=stage)
        finally:
            self.discard()

    def _place_parts(self, path: Path) -> None:
        assert self.positions_dir is not None
        source = Path(self.positions_dir)
        if source.exists() and os.path.abspath(source) == os.path.abspath(path):
            return  # the shards wrote into the output stage itself
        source.mkdir(parents=True, exist_ok=True)  # no shard held a position: an empty dataset
        try:
            os.replace(source, path)
        except OSError:  # another filesystem: copy
            shutil.move(str(source), path)

    def discard(self) -> None:
        """Remove the shards' part files where they are still (not published: the write failed)."""
        if self.positions_dir and os.path.isdir(self.positions_dir):
            shutil.rmtree(self.positions_dir, ignore_errors=True)


@dataclass
class _Backends:
    """The backends the shards used, for summary.json (duck-types a Backend's name/device/reason)."""

    name: str
    device: str
    reason: str


def _backends(results: Sequence[ShardResult]) -> _Backends:
    used = sorted({r.backend for r in results if r.backend[0]})
    if not used:
        return _Backends("cpu", "cpu", "no positions")
    names = sorted({u[0] for u in used})
    devices = sorted({u[1] for u in used})
    reasons = sorted({u[2] for u in used})
    return _Backends("+".join(names), "+".join(devices),
                     f"{len(results)} shard(s): " + "; ".join(reasons[:3]) + (" ..." if len(reasons) > 3 else ""))


def raise_first_error(results: Sequence[ShardResult], shards: Sequence[Shard], cluster: Cluster,
                      ctx: Any) -> None:
    """Raise the error one process would have raised first, if any shard reported one: the first file
    (in book order) that breaks a validation rule, with the message of the whole file (a file a shard
    held only part of is validated again, whole, on the cluster); then any other domain error."""
    failed = [r for r in results if r.error is not None]
    invalid = [r for r in failed if isinstance(r.error, InvalidInput) and r.error_fragment is not None]
    if invalid:
        frag_of = {r.index: shards[r.index].fragments[r.error_fragment] for r in invalid}  # type: ignore[index]
        first = min(invalid, key=lambda r: frag_of[r.index].file_index)
        frag = frag_of[first.index]
        if not frag.whole_file:
            whole = cluster.map(validate_whole_file, [(frag.file, ctx)])[0]
            if whole is not None:
                raise whole
        raise first.error  # type: ignore[misc]
    if failed:
        raise failed[0].error  # type: ignore[misc]


def raise_nonfinite(results: Sequence[ShardResult], source: str) -> None:
    """The one-process error for positions whose measures are not finite, merged over the shards."""
    from gpuskew.core.engine import nonfinite_positions_error

    bad = [r.nonfinite for r in results if r.nonfinite is not None]
    if not bad:
        return
    from gpuskew import schema

    measures = np.any([b.measures for b in bad], axis=0)
    rows = sorted(row for b in bad for row in b.rows)[:5]
    raise nonfinite_positions_error(source, schema.MEASURE_NAMES[int(np.flatnonzero(measures)[0])], rows,
                                    sum(b.n_bad for b in bad))


def _check_sums(reduced: ReducedLevel, source: str) -> None:
    from gpuskew.core.engine import group_overflow_error

    if np.isfinite(reduced.sums).all():
        return
    from gpuskew import schema

    m, g = (int(x[0]) for x in np.nonzero(~np.isfinite(reduced.sums)))
    keys = reduced.grouping.keys
    where = " (group " + ", ".join(f"{k}={keys[k][g]}" for k in keys) + ")"
    # the shards found every position finite: a group sum overflows (the positions are not listed here)
    names = schema.MEASURE_NAMES
    raise group_overflow_error(source, names[m] if m < len(names) else None, where, [], 0)


@dataclass
class ShardRunInfo:
    """What the shards did, for summary.json's ``distributed`` section and benchmarks."""

    cluster: str
    workers: int
    shards: int
    shard_positions: int
    chunk: int
    results: list[ShardResult] = field(default_factory=list)

    def summary(self) -> dict:
        peak = max((r.peak_rss_bytes for r in self.results), default=0)
        seconds = [r.timings.get("total", 0.0) for r in self.results]
        return {"cluster": self.cluster, "workers": self.workers, "shards": self.shards,
                "shard_positions": self.shard_positions, "chunk": self.chunk,
                "largest_shard": max((r.rows for r in self.results), default=0),
                "worker_processes": len({r.worker for r in self.results}),
                "peak_worker_rss_bytes": peak,
                "task_seconds": {"sum": round(sum(seconds), 6), "max": round(max(seconds, default=0.0), 6),
                                 "mean": round(sum(seconds) / len(seconds), 6) if seconds else 0.0}}


def sharded_step(session: Session, sharded: ShardedBook, cluster: Cluster, as_of: Any = None, *,
                 positions_dir: str | Path | None = None, positions_format: str = "parquet",
                 shard_positions: int | None = None, extra: tuple[Any, Any] | None = None,
                 progress: Callable[[str], None] | None = None) -> ShardedStepResult:
    """One step of ``session`` with the positions priced by the shards (module docstring).

    ``session``: built on ``sharded.book``; ``cluster``: from :func:`open_cluster` (its executor
    None: the shards run here, one after the other, in bounded memory); ``positions_dir``: the folder
    the shards write their part files of the positions into (``positions_format`` 'parquet' or
    'arrow'), on a filesystem the workers share: the output stage of the run (the CLI), or a folder
    the step's :meth:`~ShardedStepResult.write` moves into the run folder; None: no positions table;
    ``shard_positions``: target positions per shard (default: from the book's size and the
    workers, or GPUSKEW_SHARD_POSITIONS); ``extra``: ``(fn, params)``, more per-position rows to
    sum per group by the same tree (``fn(book, priced, backend, params)`` -> rows x positions, a
    module-level function), returned in ``step.extra_sums`` (one
    :class:`~gpuskew.distributed.reduce.ReducedLevel` per level): the seam for jobs that sum other
    per-position values (scenario P&L) over the shards of a book."""
    from gpuskew import schema
    from gpuskew.core import reduction
    from gpuskew.core.engine import RunResult, _summary, exposures_table, parse_as_of
    from gpuskew.io.dataset import dataset_hash, file_sha256
    from gpuskew.kernels.segsum import TILE

    t0 = time.perf_counter()
    timings: dict[str, float] = {}
    when = parse_as_of(as_of)
    warnings = session.plausibility_warnings(when)
    chunk = reduction.CHUNK
    target = shard_positions or default_shard_positions(chunk, sharded.dataset.rows, cluster.worker_count())
    shards = plan_shards(sharded.dataset, target, chunk)
    staging = None if positions_dir is None else os.path.abspath(positions_dir)
    if positions_format not in ("parquet", "arrow"):
        raise ValueError(f"positions_format must be parquet or arrow, got {positions_format!r}")
    info = ShardRunInfo(cluster.description, cluster.worker_count(), len(shards), target, chunk)
    timings["plan"] = time.perf_counter() - t0
    try:
        ctx = ShardContext(sharded.reference, sharded.sources, when, tuple(session.levels),
                           session.requested_backend, staging, positions_format, TILE, chunk, extra)
        shared = cluster.share(ctx)
        t = time.perf_counter()
        results = cluster.map(run_shard, [(shard, shared) for shard in shards])
        info.results = results
        timings["shards"] = time.perf_counter() - t
        if progress:
            progress("greeks")
            progress("tables")  # the shards wrote their parts of the positions
        raise_first_error(results, shards, cluster, shared)
        source = sharded.sources["positions"]
        raise_nonfinite(results, source)

        t = time.perf_counter()
        names = sorted(sharded.reference["underlyings"].column("underlying").to_pylist())
        spots = dict(zip(sharded.reference["underlyings"].column("underlying").to_pylist(),
                         sharded.reference["underlyings"].column("spot").to_pylist()))
        book = sharded.book
        all_tags = sorted({t for lv in session.levels for t in lv}, key=lambda t: book.tags.index(t))
        with_rows = [r for r in results if r.levels]
        tables, extra_sums = [], []
        for k, level in enumerate([(), *[lv for lv in session.levels if lv != ()]]):
            reduced = reduce_level(level, [r.levels[k] for r in with_rows], names)
            _check_sums(reduced, source)
            tables.append(exposures_table(level, all_tags, reduced.grouping, reduced.sums, reduced.counts,
                                           reduced.expired, spots))
            if extra is not None:
                extra_sums.append(reduce_level(level, [r.extra_levels[k] for r in with_rows], names))
                _check_sums(extra_sums[-1], source)
        exposures = schema.with_units(pa.concat_tables(tables), schema.EXPOSURES)
        timings["reduce"] = time.perf_counter() - t
        if progress:
            progress("group_sums")
        # the files' hashes from the shards that read their first rows (empty files: hashed here)
        hashed: dict[int, str] = {}
        for r in results:
            hashed.update(r.file_hashes)
        book.input_hashes["positions"] = dataset_hash(
            sharded.dataset, [hashed.get(i) or file_sha256(f.path) for i, f in enumerate(sharded.dataset.files)])
        n_expired = sum(r.n_expired for r in results)
        timings["total"] = time.perf_counter() - t0
        summary = _summary(book, _backends(results), session.requested_backend, when,  # type: ignore[arg-type]
                           session.levels, tables, exposures, n_expired, {k: round(v, 6) for k, v in timings.items()})
        summary["counts"]["positions"] = sharded.dataset.rows
        summary["distributed"] = info.summary()
        result = RunResult(pa.table({}), exposures, summary, list(session.levels))
        step = ShardedStepResult(result, "")
        step.positions_dir, step.positions_format = staging, positions_format
        step.info = info
        step.extra_sums = extra_sums
        return session.finish(step, when, warnings, progress)  # type: ignore[return-value]
    except BaseException:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        raise
