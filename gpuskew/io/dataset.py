"""Positions as a partitioned Parquet dataset: a folder of Parquet files read as one table.

A book folder may hold its positions as a folder, ``positions/`` or ``positions.parquet/``, of
Parquet files instead of one file (what Spark, ``pyarrow.dataset``, polars, DuckDB and
``gpuskew demo --partitioned`` write). The rules:

* **files**: every ``*.parquet`` file below the folder, at any depth, in the sorted order of their
  paths relative to the folder (names starting with ``.`` or ``_`` are skipped: ``_SUCCESS``,
  ``_metadata``, temporary files). The book's positions are the files' rows in that order; the
  position number of a row (what the reduction plan of :mod:`gpuskew.core.reduction` cuts into
  chunks) is its index in that concatenation;
* **hive partition folders** ``key=value`` (the value URL-decoded): ``underlying=BTC`` declares
  that every row below holds an instrument of underlying BTC (checked: a row of another
  underlying is invalid input), which lets a sharded run cut the book between underlyings; any
  other key is a tag column with that value for every row below, added when the files do not hold
  that column (as ``pyarrow.dataset``, Spark and polars read it);
* every file has the columns of the first, in the same order;
* **validation is per file**, in order: the first file that breaks a rule is named, rows counted
  from 1 within that file, whether the book is read by one process or by the shards of a cluster;
* **content hash** (run ids): sha256 over the relative path and the sha256 of each file, in order.

Readers of a part of a file (:func:`read_rows`) read only the Parquet row groups that hold it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.errors import InvalidInput

__all__ = ["DatasetFile", "PositionsDataset", "positions_dataset", "list_dataset", "read_rows", "read_file",
           "dataset_hash", "check_partition", "file_sha256", "PARTITION_UNDERLYING"]

#: the hive partition key that names the underlying of every row below it
PARTITION_UNDERLYING = "underlying"
#: folder names a book's positions dataset may have
DATASET_NAMES: tuple[str, ...] = ("positions", "positions.parquet")


@dataclass(frozen=True)
class DatasetFile:
    """One file of the positions (a dataset's file, or the book's one positions file).

    ``rows``: data rows; ``row_groups``: rows per Parquet row group (empty for other formats: the
    file is read whole); ``partition``: the ``key=value`` folders above it, outermost first.
    """

    path: str  #: absolute path
    relative: str  #: path relative to the dataset folder (the file name for a one-file book)
    rows: int
    row_groups: tuple[int, ...] = ()
    partition: tuple[tuple[str, str], ...] = ()

    @property
    def underlying(self) -> str | None:
        """The underlying every row holds, from an ``underlying=X`` folder, else None."""
        return dict(self.partition).get(PARTITION_UNDERLYING)


@dataclass(frozen=True)
class PositionsDataset:
    """The files of a book's positions in book order, and where they came from (``source``: the
    dataset folder, or the one file)."""

    source: str
    files: tuple[DatasetFile, ...]
    is_folder: bool

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def offsets(self) -> np.ndarray:
        """Position number of the first row of each file (int64, one more entry: the total)."""
        return np.concatenate(([0], np.cumsum([f.rows for f in self.files], dtype=np.int64))).astype(np.int64)


def _partition(relative: Path) -> tuple[tuple[str, str], ...]:
    out = []
    for part in relative.parts[:-1]:
        if "=" in part:
            key, value = part.split("=", 1)
            out.append((unquote(key), unquote(value)))
    return tuple(out)


def _parquet_meta(path: Path) -> tuple[int, tuple[int, ...], pa.Schema]:
    import pyarrow.parquet as pq

    from gpuskew.io.read import unreadable_parquet

    try:
        meta = pq.read_metadata(path)
        arrow_schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        raise unreadable_parquet(path, exc) from exc
    groups = tuple(meta.row_group(i).num_rows for i in range(meta.num_row_groups))
    return meta.num_rows, groups, arrow_schema


def list_dataset(folder: str | Path) -> PositionsDataset:
    """The Parquet files of a positions dataset folder, checked (same columns as the first file)."""
    folder = Path(folder)
    found = []
    for p in folder.rglob("*.parquet"):
        relative = p.relative_to(folder)
        if any(part.startswith((".", "_")) for part in relative.parts) or not p.is_file():
            continue
        found.append((relative.as_posix(), p))
    found.sort(key=lambda item: item[0])
    if not found:
        raise InvalidInput(str(folder), None, "is a folder holding no Parquet file: a partitioned positions "
                                              "dataset needs *.parquet files (or write one file positions.parquet)")
    files = []
    first: tuple[str, list[str]] | None = None
    for rel, p in found:
        rows, groups, arrow_schema = _parquet_meta(p)
        partition = _partition(Path(rel))
        names = list(arrow_schema.names) + [k for k, _ in partition
                                            if k != PARTITION_UNDERLYING and k not in arrow_schema.names]
        if first is None:
            first = (rel, names)
        elif names != first[1]:
            extra = [n for n in names if n not in first[1]]
            missing = [n for n in first[1] if n not in names]
            what = (f"column '{extra[0]}' is not in the first file" if extra else
                    f"column '{missing[0]}' of the first file is missing" if missing else "columns in another order")
            raise InvalidInput(str(p), (extra or missing or [None])[0],
                               f"every file of a positions dataset needs the columns of the first ({first[0]}: "
                               f"{', '.join(first[1])}); {what}")
        files.append(DatasetFile(str(p.resolve()), rel, rows, groups, partition))
    return PositionsDataset(str(folder), tuple(files), True)


def positions_dataset(book_dir: str | Path) -> PositionsDataset | None:
    """The positions dataset of a book folder when its positions are a folder (``positions/`` or
    ``positions.parquet/``), else None (one positions file)."""
    book_dir = Path(book_dir)
    folders = [book_dir / n for n in DATASET_NAMES if (book_dir / n).is_dir()]
    if not folders:
        return None
    if len(folders) > 1:
        raise InvalidInput(str(book_dir), None, "positions found in more than one folder "
                                                f"({', '.join(p.name for p in folders)}); keep exactly one")
    from gpuskew.io.read import TABLE_EXTENSIONS

    files = [book_dir / f"positions{ext}" for ext in TABLE_EXTENSIONS if (book_dir / f"positions{ext}").is_file()]
    if files:
        raise InvalidInput(str(book_dir), None, f"positions found as a file ({files[0].name}) and as a folder "
                                                f"({folders[0].name}); keep exactly one")
    return list_dataset(folders[0])


def one_file(path: str | Path) -> PositionsDataset:
    """A one-file book's positions as a dataset of one file (row groups known for Parquet, so that a
    sharded run reads only its part of the file)."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        rows, groups, _ = _parquet_meta(path)
    else:
        from gpuskew.io.read import read_table

        rows, groups = read_table(path).num_rows, ()
    return PositionsDataset(str(path), (DatasetFile(str(path.resolve()), path.name, rows, groups),), False)


def read_rows(file: DatasetFile, start: int = 0, stop: int | None = None) -> pa.Table:
    """Rows ``[start, stop)`` of ``file`` (partition columns added), reading only the Parquet row
    groups that hold them."""
    from gpuskew.io.read import parquet_file, read_table, unreadable_parquet

    stop = file.rows if stop is None else stop
    path = Path(file.path)
    # the positions' tag columns (any string column not in the contract) read as dictionaries (no
    # string copies), as gpuskew.io.read.read_book_dir reads them
    contract = [c.name for c in schema.POSITION_COLUMNS]
    if not file.row_groups:  # CSV or Arrow IPC: the reader of one-file books, then a slice
        table = read_table(path, dictionary_strings_except=contract)
        table = table.slice(start, stop - start)
    else:
        try:
            pf = parquet_file(path, dictionary_strings_except=contract)
            ends = np.cumsum(file.row_groups)
            begins = ends - np.asarray(file.row_groups)
            wanted = [i for i in range(len(file.row_groups)) if begins[i] < stop and ends[i] > start]
            if wanted:
                table = pf.read_row_groups(wanted)
                table = table.slice(start - int(begins[wanted[0]]), stop - start)
            else:
                table = pf.schema_arrow.empty_table()
        except (pa.ArrowException, OSError) as exc:
            raise unreadable_parquet(path, exc) from exc
    for key, value in file.partition:
        if key != PARTITION_UNDERLYING and key not in table.column_names:
            col = pa.DictionaryArray.from_arrays(pa.array(np.zeros(table.num_rows, np.int32)),
                                                 pa.array([value], pa.string()))
            table = table.append_column(key, col)
    return table


def read_file(file: DatasetFile) -> pa.Table:
    """Every row of ``file``."""
    return read_rows(file, 0, file.rows)


def check_partition(positions: pa.Table, file: DatasetFile, instruments: pa.Table) -> None:
    """Rows of a file below ``underlying=X`` must hold instruments of underlying X (validated
    ``positions`` and ``instruments``)."""
    expected = file.underlying
    if expected is None or positions.num_rows == 0:
        return
    idx = pc.index_in(positions.column("instrument"), value_set=instruments.column("instrument"))
    under = instruments.column("underlying").combine_chunks().take(idx)
    bad = pc.fill_null(pc.not_equal(under, expected), True)
    from gpuskew.io.validate import _raise_rows

    _raise_rows(file.path, "instrument", f"instrument of another underlying in the partition folder "
                                         f"{PARTITION_UNDERLYING}={expected}", bad, positions.column("instrument"))


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes (``sha256:<hex>``)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def dataset_hash(dataset: PositionsDataset,
                 hashes: Sequence[str] | None = None) -> str:
    """The content hash of the positions: the file's sha256 for one file, else sha256 over
    ``relative path NUL sha256 LF`` of every file in order (``hashes``: the files' sha256 when known,
    e.g. computed on the workers)."""
    if hashes is None:
        hashes = [file_sha256(f.path) for f in dataset.files]
    if not dataset.is_folder:
        return hashes[0]
    digest = hashlib.sha256()
    for f, h in zip(dataset.files, hashes):
        digest.update(f"{f.relative}\0{h}\n".encode())
    return "sha256:" + digest.hexdigest()


def validate_file(file: DatasetFile, reference: dict[str, pa.Table], sources: dict[str, str],
                  start: int = 0, stop: int | None = None,
                  read: Callable[[DatasetFile, int, int | None], pa.Table] = read_rows) -> pa.Table:
    """Rows ``[start, stop)`` of ``file`` read and validated against the validated instruments,
    underlyings and quotes of ``reference``; the rows of an error are counted within the file."""
    from gpuskew.io.validate import validate_positions

    table = read(file, start, stop)
    src = dict(sources, positions=file.path)
    try:
        valid = validate_positions(table, reference["instruments"], reference["underlyings"],
                                   reference["quotes"], src)
        check_partition(valid, file, reference["instruments"])
    except InvalidInput as exc:
        if start and exc.rows and exc.source == file.path:
            raise InvalidInput(exc.source, exc.column, exc.rule, [r + start for r in exc.rows], exc.n_bad,
                               exc.values) from None
        raise
    return valid
