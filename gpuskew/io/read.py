"""Reading input tables: Parquet, CSV or Arrow IPC files, and in-memory tables.

Inputs are read from Parquet, CSV or Arrow IPC (file or stream format; ``.arrow``, ``.feather``,
``.ipc``) into :class:`pyarrow.Table`; in-memory objects (pyarrow, pandas, polars, dicts of columns)
are converted with :func:`to_arrow_table`. Anything unreadable raises
:class:`~gpuskew.errors.InvalidInput` naming the file.

CSV typing: every column that is not a known numeric or timestamp input column (see
:data:`NUMERIC_CSV_COLUMNS`) is read as a string, so identifiers and tag columns (``desk``,
``account``, ...) stay strings even when they look like numbers; known numeric columns use pyarrow's
type inference. Only empty cells are nulls (``NA``, ``null`` are ordinary strings; ``nan``/``inf``
in a number column are NaN/inf, which validation then rejects as not finite).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from gpuskew import schema
from gpuskew.errors import InvalidInput

__all__ = ["TABLE_EXTENSIONS", "NUMERIC_CSV_COLUMNS", "read_table", "find_table_file", "read_book_dir",
           "to_arrow_table", "parquet_file", "unreadable_parquet"]

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

# --------------------------------------------------------------------------------------------
# reading


def _short_reason(exc: BaseException, limit: int = 200) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _unreadable(path: Path, kind: str, reason: str) -> InvalidInput:
    return InvalidInput(source=str(path), column=None,
                        rule=f"unreadable or corrupt file ({kind}): {reason}")


def unreadable_parquet(path: str | Path, exc: BaseException) -> InvalidInput:
    """The error for a Parquet file that cannot be opened or read (what :func:`read_table` raises)."""
    return _unreadable(Path(path), _KIND_BY_EXTENSION[".parquet"], _short_reason(exc))


def parquet_file(path: str | Path, dictionary_strings_except: Collection[str] | None = None) -> Any:
    """A :class:`pyarrow.parquet.ParquetFile` whose string columns not named in
    ``dictionary_strings_except`` read as dictionary arrays (``None``: every column as stored); see
    :func:`read_table`. Raises what pyarrow raises (callers turn it into :func:`unreadable_parquet`)."""
    import pyarrow.parquet as pq

    # pq.ParquetFile, not pq.read_table: read_table goes through pyarrow.dataset, whose import also
    # imports pandas when it is installed (0.2-0.3 s of a run's start-up)
    pf = pq.ParquetFile(path)
    if dictionary_strings_except is not None:
        dictionary = [f.name for f in pf.schema_arrow if f.name not in dictionary_strings_except
                      and (pa.types.is_string(f.type) or pa.types.is_large_string(f.type))]
        if dictionary:
            pf = pq.ParquetFile(path, metadata=pf.metadata, read_dictionary=dictionary)
    return pf


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
            table = parquet_file(path, dictionary_strings_except).read()
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
    folders = [book_dir / f"{name}{ext}" for ext in TABLE_EXTENSIONS if (book_dir / f"{name}{ext}").is_dir()]
    if not found and folders:
        raise InvalidInput(source=str(folders[0]), column=None,
                           rule=f"table '{name}' is a folder, not a file (a partitioned dataset is not a "
                                f"book table here: write one file {name}{TABLE_EXTENSIONS[0]})")
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


