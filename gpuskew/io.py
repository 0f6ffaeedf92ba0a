"""Reading input tables and writing run outputs atomically.

Inputs are read from Parquet, CSV or Arrow IPC (file or stream format; ``.arrow``, ``.feather``,
``.ipc``) into :class:`pyarrow.Table`; in-memory objects (pyarrow, pandas, polars, dicts of columns)
are converted with :func:`to_arrow_table`. Anything unreadable raises
:class:`~gpuskew.errors.InvalidInput` naming the file.

Outputs are written so that a reader never sees a half-written file or a half-written run:

* :func:`write_parquet` / :func:`write_json` write one file to a temporary name in the same folder,
  then ``os.replace`` it into place; re-running with the same data gives byte-identical files.
* :func:`publish_run` writes every file of a run into a temporary folder next to the output folder,
  then renames the whole folder into place (or, if the folder exists, moves the files in one by one
  with ``summary.json`` last: it is the commit marker of a run).

CSV typing: every column that is not a known numeric or timestamp input column (see
:data:`NUMERIC_CSV_COLUMNS`) is read as a string, so identifiers and tag columns (``desk``,
``account``, ...) stay strings even when they look like numbers; known numeric columns use pyarrow's
type inference. Only empty cells are nulls (``NA``, ``null`` are ordinary strings; ``nan``/``inf``
in a number column are NaN/inf, which validation then rejects as not finite).
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from . import schema
from .errors import EXIT_INVALID, GpuskewError, InvalidInput

__all__ = [
    "TABLE_EXTENSIONS",
    "NUMERIC_CSV_COLUMNS",
    "OutputExists",
    "read_table",
    "find_table_file",
    "read_book_dir",
    "to_arrow_table",
    "write_parquet",
    "write_json",
    "publish_run",
]

#: File extensions accepted for input tables, in the order they are looked for.
TABLE_EXTENSIONS: tuple[str, ...] = (".parquet", ".csv", ".arrow", ".feather", ".ipc")

_KIND_BY_EXTENSION: dict[str, str] = {
    ".parquet": "parquet",
    ".csv": "csv",
    ".arrow": "arrow ipc",
    ".feather": "feather",
    ".ipc": "arrow ipc",
}

#: Known input columns that are numbers or timestamps; in a CSV these use pyarrow's type inference.
#: Every other CSV column (identifiers, enums, tags) is read as a string.
NUMERIC_CSV_COLUMNS: frozenset[str] = frozenset(
    c.name for cols in schema.INPUT_TABLES.values() for c in cols if not pa.types.is_string(c.type)
)

#: Rows per Parquet row group of every output file (fixed, so that output bytes are deterministic).
PARQUET_ROW_GROUP_SIZE: int = 1_048_576
#: Parquet compression codec of every output column except floats.
PARQUET_COMPRESSION: str = "zstd"
#: Parquet codec of float columns: the fastest to write of zstd, lz4 and snappy on the 10^6-row
#: positions table (measures are mostly zero outside options; other floats compress little)
PARQUET_FLOAT_COMPRESSION: str = "snappy"
#: The commit marker of a run: moved into the output folder last.
COMMIT_MARKER: str = "summary.json"


class OutputExists(GpuskewError):
    """The output folder already holds files of a run and overwriting was not allowed."""

    exit_code = EXIT_INVALID

    def __init__(self, path: Path | str, names: list[str] | None = None, reason: str | None = None):
        self.path = str(path)
        self.names = list(names or [])
        if reason is None:
            shown = ", ".join(self.names)
            reason = f"already holds {shown}; use --overwrite to replace them"
        super().__init__(f"output folder {self.path} {reason}")


# --------------------------------------------------------------------------------------------
# reading


def _short_reason(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(path: Path, kind: str, reason: str) -> InvalidInput:
    return InvalidInput(source=str(path), column=None,
                        rule=f"unreadable or corrupt file ({kind}): {reason}")


def _csv_header(path: Path) -> list[str]:
    """Column names of a CSV file (its header row), parsed by pyarrow itself."""
    import pyarrow.csv as pacsv

    # Read the header only: every column as a string, no rows converted beyond the first block.
    with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=1 << 16),
                        convert_options=pacsv.ConvertOptions(null_values=[""], strings_can_be_null=True)) as reader:
        return list(reader.schema.names)


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pacsv

    names = _csv_header(path)
    column_types = {n: pa.string() for n in names if n not in NUMERIC_CSV_COLUMNS}
    # Only empty cells are nulls: a desk called "NA" stays "NA", and "nan" in a number column is
    # a NaN (reported as not finite) rather than a silent null.
    convert = pacsv.ConvertOptions(column_types=column_types, null_values=[""], strings_can_be_null=True)
    return pacsv.read_csv(path, convert_options=convert)


def _read_ipc(path: Path, kind: str) -> pa.Table:
    import pyarrow.ipc as ipc

    try:
        with pa.memory_map(str(path), "r") as source:
            return ipc.open_file(source).read_all()
    except pa.ArrowInvalid as file_error:
        try:
            with pa.memory_map(str(path), "r") as source:
                return ipc.open_stream(source).read_all()
        except pa.ArrowInvalid:
            if kind == "feather":  # Feather V1 is neither IPC file nor stream
                import pyarrow.feather as feather

                try:
                    return feather.read_table(str(path))
                except Exception:
                    pass
            raise file_error from None


def read_table(path: str | Path, dictionary_strings_except: Collection[str] | None = None) -> pa.Table:
    """Read one input table from ``.parquet``, ``.csv``, ``.arrow``, ``.feather`` or ``.ipc``.

    Arrow files may be in IPC file or stream format. Raises :class:`InvalidInput` (source = the
    path) when the file is missing, unreadable, corrupt, of an unknown type, or has no columns.
    ``dictionary_strings_except``: read the Parquet string columns not named there as dictionary
    arrays (no string copies: 2-3x faster for the positions table, whose tag columns repeat a few
    values); ``None`` reads every column as stored.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in _KIND_BY_EXTENSION:
        raise InvalidInput(source=str(path), column=None,
                           rule=f"unsupported file type '{path.suffix}'; expected "
                                f"{', '.join(TABLE_EXTENSIONS[:-1])} or {TABLE_EXTENSIONS[-1]}")
    kind = _KIND_BY_EXTENSION[ext]
    if not path.is_file():
        reason = "is a folder" if path.is_dir() else "no such file"
        raise _unreadable(path, kind, reason)
    try:
        if kind == "parquet":
            import pyarrow.parquet as pq

            # pq.ParquetFile, not pq.read_table: read_table goes through pyarrow.dataset, whose
            # import also imports pandas when it is installed (0.2-0.3 s of a run's start-up)
            parquet_file = pq.ParquetFile(path)
            if dictionary_strings_except is not None:
                dictionary = [f.name for f in parquet_file.schema_arrow if f.name not in dictionary_strings_except
                              and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
                if dictionary:
                    parquet_file = pq.ParquetFile(path, metadata=parquet_file.metadata,
                                                  read_dictionary=dictionary)
            table = parquet_file.read()
        elif kind == "csv":
            table = _read_csv(path)
        else:
            table = _read_ipc(path, kind)
    except InvalidInput:
        raise
    except (pa.ArrowException, OSError, ValueError, UnicodeDecodeError) as exc:
        raise _unreadable(path, kind, _short_reason(exc)) from exc
    if table.num_columns == 0:
        raise _unreadable(path, kind, "no columns")
    return table


def _expected_names(name: str) -> str:
    rest = [e for e in TABLE_EXTENSIONS[1:]]
    return f"{name}{TABLE_EXTENSIONS[0]}, {', '.join(rest[:-1])} or {rest[-1]}"


def find_table_file(book_dir: str | Path, name: str) -> Path:
    """The one file holding table ``name`` in ``book_dir`` (``name.parquet``, ``.csv``, ...).

    Raises :class:`InvalidInput` when ``book_dir`` is not a folder, when no such file exists, or
    when more than one does (the choice would be ambiguous).
    """
    book_dir = Path(book_dir)
    if not book_dir.is_dir():
        reason = "not a folder" if book_dir.exists() else "no such folder"
        raise InvalidInput(source=str(book_dir), column=None, rule=f"book folder: {reason}")
    found = [book_dir / f"{name}{ext}" for ext in TABLE_EXTENSIONS if (book_dir / f"{name}{ext}").is_file()]
    if not found:
        raise InvalidInput(source=str(book_dir), column=None,
                           rule=f"missing table '{name}' (expected {_expected_names(name)})")
    if len(found) > 1:
        raise InvalidInput(source=str(book_dir), column=None,
                           rule=f"table '{name}' found in more than one file "
                                f"({', '.join(p.name for p in found)}); keep exactly one")
    return found[0]


def read_book_dir(book_dir: str | Path) -> tuple[dict[str, pa.Table], dict[str, str]]:
    """Read the four input tables (:data:`gpuskew.schema.INPUT_TABLES`) of a book folder.

    Returns ``(tables, sources)``: tables by name, and the path each was read from (as ``str``).
    The tables are as read, not yet validated (see :func:`gpuskew.validate.validate_book`).
    """
    tables: dict[str, pa.Table] = {}
    sources: dict[str, str] = {}
    for name in schema.INPUT_TABLES:
        path = find_table_file(book_dir, name)
        # tag columns of positions (any string column not in the contract) as dictionaries
        tags_as_dictionary = [c.name for c in schema.POSITION_COLUMNS] if name == "positions" else None
        tables[name] = read_table(path, dictionary_strings_except=tags_as_dictionary)
        sources[name] = str(path)
    return tables, sources


# --------------------------------------------------------------------------------------------
# in-memory inputs


def _is_pandas_dataframe(obj: object) -> bool:
    return any(c.__module__.startswith("pandas") and c.__name__ == "DataFrame" for c in type(obj).__mro__)


def to_arrow_table(obj: Any, name: str) -> pa.Table:
    """Convert an in-memory table to a :class:`pyarrow.Table`.

    Accepts a pyarrow ``Table`` / ``RecordBatch`` / ``RecordBatchReader``, a pandas ``DataFrame``
    (its index is dropped), a polars ``DataFrame`` or any object exporting the Arrow PyCapsule
    stream protocol (``__arrow_c_stream__``), an object with ``.to_arrow()``, or a ``dict`` of
    columns. ``name`` is what :class:`InvalidInput` names as the source (e.g. ``"<positions
    table>"``). pandas and polars are never imported here.
    """
    try:
        if isinstance(obj, pa.Table):
            return obj
        if isinstance(obj, pa.RecordBatch):
            return pa.Table.from_batches([obj])
        if isinstance(obj, pa.RecordBatchReader):
            return obj.read_all()
        if _is_pandas_dataframe(obj):
            return pa.Table.from_pandas(obj, preserve_index=False)
        if hasattr(obj, "__arrow_c_stream__"):
            return pa.table(obj)
        if hasattr(obj, "to_arrow"):
            table = obj.to_arrow()
            if isinstance(table, pa.RecordBatch):
                table = pa.Table.from_batches([table])
            if isinstance(table, pa.Table):
                return table
        if isinstance(obj, Mapping):
            return pa.table(dict(obj))
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise InvalidInput(source=name, column=None,
                           rule=f"cannot convert to an Arrow table: {_short_reason(exc)}") from exc
    raise InvalidInput(source=name, column=None,
                       rule=f"unsupported table type {type(obj).__module__}.{type(obj).__qualname__}; "
                            "expected a pyarrow Table, pandas or polars DataFrame, or dict of columns")


# --------------------------------------------------------------------------------------------
# writing


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(binary_file)`` on a fresh temporary file next to ``path``, then rename it."""
    path = Path(path)
    while True:
        tmp = _tmp_name(path)
        try:
            f = open(tmp, "xb")  # respects the umask, unlike tempfile.mkstemp (0600)
            break
        except FileExistsError:  # pragma: no cover - 32 random bits collided
            continue
    try:
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_parquet(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` to ``path`` as Parquet, atomically and deterministically.

    Same table, same pyarrow version -> byte-identical file: fixed codecs, fixed row group size
    (:data:`PARQUET_ROW_GROUP_SIZE` rows), no timestamps in the file metadata. Float columns (the
    measures) are written with Snappy, without dictionary or min/max statistics: they rarely repeat
    and are not filtered on. Every other column is zstd-compressed and dictionary-encoded; only
    integer and time columns (e.g. ``expiry``, ``as_of``) carry statistics. String columns (tags,
    kinds, status) do not: a row group of 10^6 rows holds every desk and book, so their min/max
    prune nothing, and computing them costs a quarter of the write. On a 10^6-row positions table that writes in
    0.28 s instead of 1.05 s (all zstd, dictionary and statistics everywhere), for a file 30%
    larger (62 MB instead of 48 MB).
    """
    import pyarrow.parquet as pq

    not_float = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    with_statistics = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_temporal(f.type)]
    codecs = {f.name: (PARQUET_COMPRESSION if f.name in not_float else PARQUET_FLOAT_COMPRESSION)
              for f in table.schema}

    def write(f: Any) -> None:
        pq.write_table(table, f, compression=codecs, row_group_size=PARQUET_ROW_GROUP_SIZE,
                       write_statistics=with_statistics, use_dictionary=not_float)

    _write_atomic(Path(path), write)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        value = obj.item()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"out of range float value {value!r} is not JSON compliant")
        return value
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy array
        return obj.tolist()
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def dumps_json(obj: Any) -> str:
    """The JSON text :func:`write_json` writes: indent 2, sorted keys, no NaN/inf, trailing newline."""
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False,
                      default=_json_default) + "\n"


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as UTF-8 JSON (indent 2, sorted keys, NaN/inf refused), atomically.

    numpy scalars/arrays, dates and paths are converted; the text is rendered before anything is
    written, so an unserialisable object leaves no file behind.
    """
    data = dumps_json(obj).encode("utf-8")
    _write_atomic(Path(path), lambda f: f.write(data))


def _fresh_dir_next_to(out_dir: Path) -> Path:
    while True:
        tmp = out_dir.with_name(f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        try:
            os.mkdir(tmp)  # mode 0o777 & ~umask, unlike tempfile.mkdtemp (0700)
            return tmp
        except FileExistsError:  # pragma: no cover
            continue


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _clashes(out_dir: Path, names: list[str]) -> list[str]:
    return [n for n in names if os.path.lexists(out_dir / n)]


def check_output_free(out_dir: str | Path, overwrite: bool, names: Sequence[str]) -> None:
    """Fail early (before any work) with :class:`OutputExists` if ``out_dir`` is a file, or holds one
    of ``names`` and ``overwrite`` is not given. :func:`publish_run` checks again at the end."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(out_dir, reason="exists and is not a folder")
    if out_dir.is_dir() and not overwrite:
        clash = _clashes(out_dir, list(names))
        if clash:
            raise OutputExists(out_dir, clash)


def publish_run(out_dir: str | Path, files: Mapping[str, Callable[[Path], None]],
                overwrite: bool, stale: Sequence[str] = ()) -> list[Path]:
    """Write every output file of a run, atomically, into ``out_dir``.

    ``files`` maps a file name (no folders) to ``writer(path)`` that writes that file at ``path``.
    All writers run first, into a fresh folder ``.{out_dir.name}.tmp-<pid>-<random>`` next to
    ``out_dir`` (same filesystem); if one raises, that folder is removed and the error re-raised:
    nothing is published. Then:

    * ``out_dir`` missing: the temporary folder is renamed to ``out_dir`` (one atomic rename);
    * ``out_dir`` exists and already holds one of the names: :class:`OutputExists` unless
      ``overwrite``;
    * otherwise the files are moved in one by one with ``os.replace``, ``summary.json`` last (the
      commit marker: a reader that sees the new ``summary.json`` sees the whole run); files named
      in ``stale`` that this run does not write (outputs of an earlier, different run) are removed
      first, so the folder never mixes two runs.

    Returns the final paths, in the order of ``files``.
    """
    out_dir = Path(out_dir)
    names = list(files)
    for n in names:
        if not n or n in (".", "..") or "/" in n or os.sep in n or (os.altsep and os.altsep in n):
            raise ValueError(f"output file name must be a plain file name, got {n!r}")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(out_dir, reason="exists and is not a folder")
    if out_dir.is_dir() and not overwrite:  # fail before doing any work
        clash = _clashes(out_dir, names)
        if clash:
            raise OutputExists(out_dir, clash)
    out_dir.parent.mkdir(parents=True, exist_ok=True)

    tmp = _fresh_dir_next_to(out_dir)
    try:
        for n in names:
            files[n](tmp / n)
            if not (tmp / n).is_file():
                raise RuntimeError(f"writer for {n!r} did not write a file")
        if not out_dir.exists():
            try:
                os.replace(tmp, out_dir)
                _fsync_dir(out_dir.parent)
                return [out_dir / n for n in names]
            except OSError:
                if not out_dir.is_dir():  # not a race with another publisher: a real failure
                    raise
        clash = _clashes(out_dir, names)
        if clash and not overwrite:
            raise OutputExists(out_dir, clash)
        order = [n for n in names if n != COMMIT_MARKER] + [n for n in names if n == COMMIT_MARKER]
        for n in stale:
            if n not in files and os.path.lexists(out_dir / n):
                os.remove(out_dir / n)
        for n in order:
            os.replace(tmp / n, out_dir / n)
        _fsync_dir(out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return [out_dir / n for n in names]
