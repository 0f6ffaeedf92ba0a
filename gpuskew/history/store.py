"""The history folder: every run's tables, appended to Parquet datasets partitioned by date.

Layout (one dataset per table name; Hive partitions by the UTC date of the run's ``as_of``)::

    HISTORY/
      exposures/date=2026-11-20/run-20261120T080000000000Z-<run_id>.parquet
      hedges/   date=2026-11-20/run-20261120T080000000000Z-<run_id>.parquet
      alerts/   date=2026-11-20/run-...
      adherence/date=2026-11-20/run-...      <- written last: the commit marker of a run

Append-only and atomic: a run writes one file per dataset, first to a temporary name starting with
``.`` in the partition folder (with :func:`gpuskew.io.write_parquet`), then publishes it with
``os.link(temp, final)``, which fails rather than replace an existing file; the temporary name is
then removed. So a file, once in the history, is never overwritten; a reader never sees a partial
file (names starting with ``.`` are ignored); two processes appending different runs at the same
time both land (different names); and appending the same run twice (same ``as_of`` and ``run_id``,
a deterministic hash the caller derives from as_of, the inputs and the limits) doubles nothing:
the second append finds the file there and skips it.

Every appended table gets an ``as_of`` column (timestamp[us, UTC], the run's as_of) when it lacks
one (a table that has one must hold the run's as_of only), and a ``run_id`` column. ``date`` is reserved for the partition.
"""

from __future__ import annotations

import datetime as _dt
import errno
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import io as _io
from gpuskew.errors import InvalidInput
from gpuskew.schema import ADHERENCE_COLUMNS, EXPOSURE_COLUMNS, TIMESTAMP
from gpuskew.timeutil import to_utc

__all__ = [
    "DATASETS",
    "KNOWN_COLUMNS",
    "group_key_columns",
    "to_utc",
    "compact_as_of",
    "append_run",
    "list_runs",
    "read_history",
    "previous_adherence",
]

#: Datasets a run usually appends, in publication order (``adherence`` last: the commit marker).
DATASETS: tuple[str, ...] = ("exposures", "hedges", "alerts", "adherence")
#: The dataset whose file marks a run as complete (written after every other dataset of the run).
COMMIT_DATASET: str = "adherence"

#: Column names that are never tags (group keys are level, underlying and the other string columns).
KNOWN_COLUMNS: frozenset[str] = frozenset(
    {"as_of", "level", "underlying", "run_id", "date", "effective_status"}
    | {c[0] for c in EXPOSURE_COLUMNS}
    | {c[0] for c in ADHERENCE_COLUMNS}
    # hedges (gpuskew.hedging.HEDGE_COLUMNS)
    | {"hedge_instrument", "kind", "settlement", "mode", "side", "contracts", "notional_usd",
       "price_usd", "coin_delta", "pre_trade_delta", "post_trade_delta", "post_trade_deviation",
       "est_cost_usd", "fee_usd", "spread_usd", "impact_usd", "funding_usd", "lot_limited"}
    # alerts (gpuskew.alerts.alerts_table)
    | {"previous_status", "threshold_name", "threshold_value", "threshold_direction",
       "suggested_action", "group", "raw_status"}
    # report (gpuskew.report.REPORT_COLUMNS)
    | {"worst_status", "last_status", "first_as_of", "last_as_of"}
)

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_RUN_FILE_RE = re.compile(r"^run-(\d{8}T\d{12}Z)-(.+)\.parquet$")
_DATE_DIR_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")


def _is_string_type(t: pa.DataType) -> bool:
    if pa.types.is_dictionary(t):
        t = t.value_type
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t)


def group_key_columns(table: pa.Table | pa.Schema) -> list[str]:
    """The group key of a row: ``["level", "underlying"]`` + the tag columns.

    Tag columns are the string (or all-null) columns that are not in :data:`KNOWN_COLUMNS`, in
    table order (e.g. ``desk``, ``book``).
    """
    schema = table.schema if isinstance(table, pa.Table) else table
    tags = [f.name for f in schema if f.name not in KNOWN_COLUMNS and _is_string_type(f.type)]
    return ["level", "underlying"] + tags


def compact_as_of(as_of: _dt.datetime) -> str:
    """``YYYYMMDDTHHMMSSffffffZ`` (UTC, microseconds): sorts like time, no ``-`` or ``:``."""
    return to_utc(as_of).strftime("%Y%m%dT%H%M%S%fZ")


def _check_name(kind: str, name: str) -> None:
    if not _NAME_RE.match(name) or name in (".", ".."):
        raise ValueError(f"{kind} must be letters, digits, '_', '.', '-' and not start with '.' "
                         f"or '-', got {name!r}")


def _prepare(table: pa.Table, as_of: _dt.datetime, run_id: str, dataset: str) -> pa.Table:
    """Add ``as_of`` (first) and ``run_id`` columns when missing; cast as_of to timestamp[us, UTC]."""
    if "date" in table.column_names:
        raise InvalidInput(source=f"<{dataset} table>", column="date",
                           rule="'date' is reserved for the history's date partition; rename it")
    n = table.num_rows
    if "as_of" in table.column_names:
        i = table.column_names.index("as_of")
        col = pc.fill_null(table.column("as_of").cast(TIMESTAMP), pa.scalar(as_of, type=TIMESTAMP))
        if n and not pc.all(pc.equal(col, pa.scalar(as_of, type=TIMESTAMP))).as_py():
            raise InvalidInput(source=f"<{dataset} table>", column="as_of",
                               rule=f"holds times other than the run's as_of {as_of.isoformat()} "
                                    "(each run appends its own rows only)")
        table = table.set_column(i, pa.field("as_of", TIMESTAMP), col)
    else:
        table = table.add_column(0, pa.field("as_of", TIMESTAMP), pa.array([as_of] * n, type=TIMESTAMP))
    if "run_id" not in table.column_names:
        table = table.append_column(pa.field("run_id", pa.string()),
                                    pa.array([run_id] * n, type=pa.string()))
    return table


def _publish_exclusive(table: pa.Table, final: Path) -> bool:
    """Write ``table`` to ``final`` unless it exists; never overwrite. True if written.

    Writes a temporary ``.name.tmp-*`` next to ``final`` with :func:`gpuskew.io.write_parquet`,
    then ``os.link`` (atomic, fails if ``final`` exists). Filesystems without hard links fall back
    to an existence check + ``os.replace`` (a narrow race there: documented, not expected on local
    disks).
    """
    if final.exists():
        return False
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
    _io.write_parquet(table, tmp)
    try:
        try:
            os.link(tmp, final)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                                 errno.EMLINK):
                raise
            if final.exists():  # pragma: no cover - filesystems without hard links
                return False
            os.replace(tmp, final)  # pragma: no cover
        return True
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass


def append_run(history_dir: str | Path, as_of: _dt.datetime | str, tables: Mapping[str, pa.Table],
               run_id: str) -> list[Path]:
    """Append one run's tables to the history; returns the paths of the files newly written.

    ``tables`` maps a dataset name (``exposures``, ``adherence``, ``hedges``, ``alerts``, or any
    other plain name) to that run's table. Each lands in
    ``history_dir/<dataset>/date=<UTC date of as_of>/run-<compact as_of>-<run_id>.parquet``;
    ``adherence`` is published last (a run whose adherence file is present is complete). A file
    that already exists is left alone (the same run appended twice doubles nothing; an interrupted
    append is completed by appending again). Zero-row tables are written too (they record that the
    run happened, with its schema).
    """
    _check_name("run_id", run_id)
    as_of = to_utc(as_of)
    history_dir = Path(history_dir)
    if history_dir.exists() and not history_dir.is_dir():
        raise InvalidInput(source=str(history_dir), column=None, rule="history path is not a folder")
    names = sorted(tables, key=lambda n: (n == COMMIT_DATASET, DATASETS.index(n) if n in DATASETS else -1, n))
    for name in names:
        _check_name("dataset name", name)
    file_name = f"run-{compact_as_of(as_of)}-{run_id}.parquet"
    partition = f"date={as_of.date().isoformat()}"
    prepared = {n: _prepare(tables[n], as_of, run_id, n) for n in names}  # fail before writing
    written: list[Path] = []
    for name in names:
        folder = history_dir / name / partition
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / file_name
        if _publish_exclusive(prepared[name], final):
            written.append(final)
    return written


# ---------------------------------------------------------------------------------------------
# reading


def _history_root(history_dir: str | Path) -> Path:
    root = Path(history_dir)
    if not root.is_dir():
        reason = "not a folder" if root.exists() else "no such folder"
        raise InvalidInput(source=str(root), column=None, rule=f"history folder: {reason}")
    return root


def list_runs(history_dir: str | Path, dataset: str = COMMIT_DATASET,
              start: _dt.datetime | str | None = None,
              end: _dt.datetime | str | None = None) -> list[tuple[_dt.datetime, str, Path]]:
    """The run files of one dataset, from their names: ``(as_of, run_id, path)`` sorted by time.

    ``start``/``end`` bound as_of (inclusive). Temporary files (names starting with ``.``) and
    anything not named ``run-<compact as_of>-<run_id>.parquet`` in a ``date=YYYY-MM-DD`` folder
    are ignored. A missing dataset folder gives an empty list.
    """
    root = _history_root(history_dir) / dataset
    lo = to_utc(start) if start is not None else None
    hi = to_utc(end) if end is not None else None
    out: list[tuple[_dt.datetime, str, Path]] = []
    if not root.is_dir():
        return out
    for part in sorted(root.iterdir()):
        m = _DATE_DIR_RE.match(part.name)
        if not m or not part.is_dir():
            continue
        day = m.group(1)
        if (lo is not None and day < lo.date().isoformat()) or (hi is not None and day > hi.date().isoformat()):
            continue  # partition pruning
        for f in sorted(part.iterdir()):
            fm = _RUN_FILE_RE.match(f.name)
            if not fm:
                continue
            t = _dt.datetime.strptime(fm.group(1), "%Y%m%dT%H%M%S%fZ").replace(tzinfo=_dt.timezone.utc)
            if (lo is not None and t < lo) or (hi is not None and t > hi):
                continue
            out.append((t, fm.group(2), f))
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def _corrupt(path: Path, exc: BaseException) -> InvalidInput:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InvalidInput(source=str(path), column=None,
                        rule=f"corrupt history file (unreadable Parquet): {reason[:200]}; "
                             "move it out of the history folder")


def _unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    merged = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in merged])


def _sort(table: pa.Table) -> pa.Table:
    keys = [k for k in ["as_of", "run_id"] + group_key_columns(table) if k in table.column_names]
    return table.sort_by([(k, "ascending") for k in keys]) if keys and table.num_rows else table


def _read_files(paths: Sequence[Path], lo: _dt.datetime | None, hi: _dt.datetime | None) -> pa.Table:
    """Read run files as one pyarrow dataset with a unified schema; corrupt files named."""
    import pyarrow.dataset as ds

    schemas = []
    for p in paths:
        try:
            schemas.append(ds.dataset(str(p), format="parquet").schema)
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(p, exc) from exc
    schema = _unify(schemas)
    dataset = ds.dataset([str(p) for p in paths], schema=schema, format="parquet")
    flt = None
    if "as_of" in schema.names:
        if lo is not None:
            flt = pc.field("as_of") >= pa.scalar(lo, type=TIMESTAMP)
        if hi is not None:
            cond = pc.field("as_of") <= pa.scalar(hi, type=TIMESTAMP)
            flt = cond if flt is None else flt & cond
    try:
        return dataset.to_table(filter=flt)
    except (pa.ArrowException, OSError):
        for p in paths:  # find the culprit to name it
            try:
                ds.dataset(str(p), schema=schema, format="parquet").to_table()
            except (pa.ArrowException, OSError) as exc:
                raise _corrupt(p, exc) from exc
        raise


def read_history(history_dir: str | Path, dataset: str, start: _dt.datetime | str | None = None,
                 end: _dt.datetime | str | None = None) -> pa.Table:
    """Every row of ``dataset`` with ``start <= as_of <= end`` (UTC; None = unbounded).

    Files are pruned by their ``date=`` partition and name, then read as one pyarrow dataset whose
    schema unifies every file's (tag columns that differ between runs: missing ones are null).
    Sorted by as_of, run_id, then group keys. No run in range -> a table with no rows and no
    columns. A corrupt file raises :class:`InvalidInput` naming it.
    """
    lo = to_utc(start) if start is not None else None
    hi = to_utc(end) if end is not None else None
    runs = list_runs(history_dir, dataset, lo, hi)
    if not runs:
        return pa.table({})
    return _sort(_read_files([p for _, _, p in runs], lo, hi))


def previous_adherence(history_dir: str | Path, before: _dt.datetime | str) -> pa.Table | None:
    """The adherence rows of the latest run with as_of strictly before ``before``; None if none.

    The run is found from the file names (no data read but that run's file); several runs at the
    same as_of (different run_id) -> the largest run_id, so the answer is deterministic. A history
    folder that does not exist yet gives None (the first run of a scheduler).
    """
    before = to_utc(before)
    if not Path(history_dir).is_dir():
        return None
    runs = [r for r in list_runs(history_dir, COMMIT_DATASET, end=before) if r[0] < before]
    if not runs:
        return None
    return _sort(_read_files([runs[-1][2]], None, None))
