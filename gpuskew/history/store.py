"""The history folder: every run's tables, appended to Parquet datasets partitioned by date.

Layout (one dataset per table name; Hive partitions by the UTC date of the run's ``as_of``)::

    HISTORY/
      exposures/date=2026-11-20/run-20261120T080000000000Z-<run_id>.parquet
      hedges/   date=2026-11-20/run-...
      alerts/   date=2026-11-20/run-...
      adherence/date=2026-11-20/run-...
      _commits/ date=2026-11-20/run-20261120T080000000000Z-<run_id>.json   <- the commit marker
      _pending/ run-...json                                                 <- an append in flight

**All or nothing.** A run's data files are written first (each to a temporary name beside its
target, fsynced, then hard-linked into place: a file in the history is never overwritten); their
folders are fsynced, and only then is the commit marker written (atomically, last): the run becomes
part of the history with it, and after a power loss a marker never survives without its data. Every reader here
(:func:`list_runs`, :func:`read_history`, :func:`previous_statuses`, the report) reads committed
runs only, so a run appears in every dataset at once or in none. An append killed before its
commit leaves a ``_pending`` record naming its process; the next append (or :func:`repair`) rolls
back the data files of appends whose process is gone, and removes stale temporary files.

**Append-only and idempotent.** The run id is a deterministic hash of the run's content (as_of,
input and limits content, grouping levels: see :func:`gpuskew.session.run_id`): appending the
same run twice stores it once; two processes appending different runs at once both land.

Query engines (DuckDB, polars, pyarrow.dataset) read each dataset folder as a Hive-partitioned
Parquet dataset; folders starting with ``_`` and files starting with ``.`` are skipped by them.
To honour the commit markers from outside, join on ``run_id`` with the ``_commits`` records
(README "History"). Units are in each file's Arrow field metadata and in the Parquet column
descriptions; ``HISTORY/_schema.json`` lists every dataset's columns with their units.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import io as _io
from gpuskew.errors import InvalidInput
from gpuskew.schema import ADHERENCE, ALERTS, EXPOSURES, HEDGES, TIMESTAMP, TableSpec
from gpuskew.timeutil import iso_z, to_utc

__all__ = [
    "DATASETS",
    "DATASET_SPECS",
    "compact_as_of",
    "append_run",
    "list_runs",
    "read_history",
    "previous_adherence",
    "committed_runs",
    "has_run",
    "repair",
]

#: Datasets a run appends.
DATASETS: tuple[str, ...] = ("exposures", "hedges", "alerts", "adherence")
#: The declared table of each dataset (which columns are keys, tags, units).
DATASET_SPECS: dict[str, TableSpec] = {"exposures": EXPOSURES, "hedges": HEDGES, "alerts": ALERTS,
                                       "adherence": ADHERENCE}
#: Folder of the commit markers, and of the records of appends in flight.
COMMITS: str = "_commits"
PENDING: str = "_pending"
#: A temporary file older than this (seconds) whose process cannot be checked is stale.
STALE_TEMP_SECONDS: float = 3600.0

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")
_RUN_RE = re.compile(r"^run-(\d{8}T\d{12}Z)-([A-Za-z0-9_][A-Za-z0-9_.\-]*)\.(parquet|json)$")
_DATE_DIR_RE = re.compile(r"^date=(\d{4}-\d{2}-\d{2})$")
_TMP_RE = re.compile(r"^\..*\.tmp-(\d+)-[0-9a-f]+$")


def compact_as_of(as_of: _dt.datetime) -> str:
    """``YYYYMMDDTHHMMSSffffffZ`` (UTC, microseconds): sorts like time, no ``-`` or ``:``."""
    return to_utc(as_of).strftime("%Y%m%dT%H%M%S%fZ")


def _parse_compact(text: str) -> _dt.datetime:
    return _dt.datetime.strptime(text, "%Y%m%dT%H%M%S%fZ").replace(tzinfo=_dt.timezone.utc)


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
        table = table.set_column(i, table.schema.field(i).with_type(TIMESTAMP), col)
    else:
        table = table.add_column(0, pa.field("as_of", TIMESTAMP), pa.array([as_of] * n, type=TIMESTAMP))
    if "run_id" not in table.column_names:
        table = table.append_column(pa.field("run_id", pa.string(), metadata={
            "unit": "", "doc": "id of the run (a hash of its inputs, limits and levels)"}),
            pa.array([run_id] * n, type=pa.string()))
    return table


def _link_into_place(table: pa.Table, final: Path) -> bool:
    """Write ``table`` to ``final`` unless it exists; never overwrite. True if written
    (:func:`gpuskew.io.write_parquet_new`: a temporary file beside ``final``,
    fsynced, then hard-linked into place)."""
    return _io.write_parquet_new(table, final)


def _make_dirs(root: Path, folder: Path) -> None:
    """``folder`` (under ``root``) and its missing parents, each new one fsynced into its parent so
    that the data files linked into it survive a power loss with it."""
    missing = []
    p = folder
    while p != root and p.parent != p and not p.is_dir():
        missing.append(p)
        p = p.parent
    for p in reversed(missing):
        p.mkdir(exist_ok=True)
        _io.fsync_dir(p.parent)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - another user's process
        return True
    return True


def _commit_path(root: Path, as_of: _dt.datetime, run_id: str) -> Path:
    return root / COMMITS / f"date={as_of.date().isoformat()}" / f"run-{compact_as_of(as_of)}-{run_id}.json"


def repair(history_dir: str | Path, *, full: bool = True) -> dict[str, int]:
    """Roll back what killed appends left: data files of uncommitted runs whose appending process
    is gone, and stale temporary files. Returns counts ``{"rolled_back": n, "temp_removed": m}``.

    ``full``: look for temporary files in the whole history; else (every append) only where the
    appends that ``_pending`` records name wrote (their run's date partition of every dataset and
    of the commits), ``_pending`` and the history's top folder: the cost of an append does not grow
    with the history. Safe while other processes append (a live process's files are kept).
    """
    root = Path(history_dir)
    counts = {"rolled_back": 0, "temp_removed": 0}
    if not root.is_dir():
        return counts
    host = socket.gethostname()
    pending = root / PENDING
    folders: set[Path] = {root, pending}  # where temporary files are looked for (without ``full``)
    if pending.is_dir():
        for record in sorted(pending.glob("run-*.json")):
            try:
                info = json.loads(record.read_text("utf-8"))
                age = time.time() - record.stat().st_mtime
            except (OSError, ValueError):  # gone meanwhile (its append finished), or being written
                continue
            if info.get("host") == host and _pid_alive(int(info.get("pid", -1))):
                continue
            if info.get("host") != host and age < STALE_TEMP_SECONDS:
                continue
            committed = (root / info.get("commit", "")).is_file()
            if not committed:
                for rel in info.get("files", []):
                    try:
                        (root / rel).unlink()
                        counts["rolled_back"] += 1
                    except FileNotFoundError:
                        pass
            partition = Path(str(info.get("commit", ""))).parent.name
            if _DATE_DIR_RE.match(partition):
                folders |= {d / partition for d in root.iterdir() if d.is_dir()}
            record.unlink(missing_ok=True)
    now = time.time()
    if full:
        candidates: Iterable[Path] = root.rglob(".*.tmp-*")
    else:
        candidates = [p for f in sorted(folders) if f.is_dir() for p in f.glob(".*.tmp-*")]
    for path in candidates:
        m = _TMP_RE.match(path.name)
        if not m:
            continue
        pid = int(m.group(1))
        try:
            old = now - path.stat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:  # its writer renamed or removed it meanwhile
            continue
        if (pid != os.getpid() and not _pid_alive(pid)) or old:
            path.unlink(missing_ok=True)
            counts["temp_removed"] += 1
    return counts


def _write_schema_note(root: Path) -> None:
    """``_schema.json``: every dataset's declared columns with unit, doc and role (for readers that
    do not see Arrow metadata). Written once."""
    path = root / "_schema.json"
    if path.exists():
        return
    note = {name: {"partitioned_by": "date (YYYY-MM-DD, the UTC date of as_of)",
                   "tag_columns": "any other string column (desk, book, ...): a tag of the positions",
                   "columns": {c.name: {"type": str(c.type), "unit": c.unit, "role": c.role, "doc": c.doc}
                               for c in spec.columns}}
            for name, spec in DATASET_SPECS.items()}
    _io.write_json(note, path)


def append_run(history_dir: str | Path, as_of: _dt.datetime | str, tables: Mapping[str, pa.Table],
               run_id: str) -> list[Path]:
    """Append one run's tables to the history, all or nothing; returns the files newly written
    (empty when the history already holds this run).

    ``tables`` maps a dataset name (``exposures``, ``adherence``, ``hedges``, ``alerts``, or any
    other plain name) to that run's table. Each lands in
    ``history_dir/<dataset>/date=<UTC date of as_of>/run-<compact as_of>-<run_id>.parquet``, then
    the commit marker makes the run visible. Zero-row tables are written too (they record that the
    run happened, with its schema).
    """
    _check_name("run_id", run_id)
    as_of = to_utc(as_of)
    root = Path(history_dir)
    if root.exists() and not root.is_dir():
        raise InvalidInput(source=str(root), column=None, rule="history path is not a folder")
    names = sorted(tables)
    for name in names:
        _check_name("dataset name", name)
        if name.startswith("_"):
            raise ValueError(f"dataset names starting with '_' are reserved, got {name!r}")
    prepared = {n: _prepare(tables[n], as_of, run_id, n) for n in names}  # fail before writing
    root.mkdir(parents=True, exist_ok=True)
    repair(root, full=False)
    commit = _commit_path(root, as_of, run_id)
    if commit.exists():
        return []
    _write_schema_note(root)
    file_name = f"run-{compact_as_of(as_of)}-{run_id}.parquet"
    partition = f"date={as_of.date().isoformat()}"
    finals = {n: root / n / partition / file_name for n in names}
    record = root / PENDING / f"run-{compact_as_of(as_of)}-{run_id}.{os.getpid()}.json"
    record.parent.mkdir(parents=True, exist_ok=True)
    _io.write_json({"pid": os.getpid(), "host": socket.gethostname(), "commit": str(commit.relative_to(root)),
                    "files": [str(p.relative_to(root)) for p in finals.values()]}, record)
    written: list[Path] = []
    try:
        for name in names:
            _make_dirs(root, finals[name].parent)
            if _link_into_place(prepared[name], finals[name]):
                written.append(finals[name])
        for folder in sorted({p.parent for p in finals.values()}):  # the data is durable before its commit
            _io.fsync_dir(folder)
        _make_dirs(root, commit.parent)
        _io.write_json({"as_of": iso_z(as_of), "run_id": run_id,
                        "datasets": {n: {"file": str(finals[n].relative_to(root)), "rows": prepared[n].num_rows}
                                     for n in names}}, commit)
        _io.fsync_dir(commit.parent)
    except BaseException:
        if not commit.exists():
            for path in written:
                path.unlink(missing_ok=True)
        raise
    finally:
        record.unlink(missing_ok=True)
    return written


# ---------------------------------------------------------------------------------------------
# reading


def _history_root(history_dir: str | Path) -> Path:
    root = Path(history_dir)
    if not root.is_dir():
        reason = "not a folder" if root.exists() else "no such folder"
        raise InvalidInput(source=str(root), column=None, rule=f"history folder: {reason}")
    return root


def _partitions(folder: Path, lo: _dt.datetime | None, hi: _dt.datetime | None):
    if not folder.is_dir():
        return
    for part in sorted(folder.iterdir()):
        m = _DATE_DIR_RE.match(part.name)
        if not m or not part.is_dir():
            continue
        day = m.group(1)
        if (lo is not None and day < lo.date().isoformat()) or (hi is not None and day > hi.date().isoformat()):
            continue  # partition pruning
        yield part


def _read_commit(path: Path) -> dict:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise InvalidInput(source=str(path), column=None,
                           rule=f"unreadable commit marker ({exc}); move it out of the history") from exc


def committed_runs(history_dir: str | Path, start: _dt.datetime | str | None = None,
                   end: _dt.datetime | str | None = None) -> list[tuple[_dt.datetime, str, dict]]:
    """The committed runs ``(as_of, run_id, commit record)`` with start <= as_of <= end, by time.

    A history written before commit markers existed (no ``_commits`` folder) counts a run as
    committed when its ``adherence`` file is there (the dataset such a history wrote last).
    """
    root = _history_root(history_dir)
    lo = to_utc(start) if start is not None else None
    hi = to_utc(end) if end is not None else None
    out: list[tuple[_dt.datetime, str, dict]] = []
    legacy = not (root / COMMITS).is_dir()
    folder = root / ("adherence" if legacy else COMMITS)
    for part in _partitions(folder, lo, hi):
        for f in sorted(part.iterdir()):
            m = _RUN_RE.match(f.name)
            if not m or m.group(3) != ("parquet" if legacy else "json"):
                continue
            t = _parse_compact(m.group(1))
            if (lo is not None and t < lo) or (hi is not None and t > hi):
                continue
            out.append((t, m.group(2), {"datasets": None} if legacy else _read_commit(f)))
    out.sort(key=lambda r: (r[0], r[1]))
    return out


def list_runs(history_dir: str | Path, dataset: str = "adherence",
              start: _dt.datetime | str | None = None,
              end: _dt.datetime | str | None = None) -> list[tuple[_dt.datetime, str, Path]]:
    """The files of one dataset that belong to committed runs: ``(as_of, run_id, path)`` by time.

    ``start``/``end`` bound as_of (inclusive). Files of uncommitted runs, temporary files and any
    foreign or copied file are ignored. A missing dataset gives an empty list.
    """
    root = _history_root(history_dir)
    out = []
    for t, rid, record in committed_runs(root, start, end):
        if record.get("datasets") is None:  # legacy history: the file named after the run
            path = root / dataset / f"date={t.date().isoformat()}" / f"run-{compact_as_of(t)}-{rid}.parquet"
            if path.is_file():
                out.append((t, rid, path))
        elif dataset in record["datasets"]:
            out.append((t, rid, root / record["datasets"][dataset]["file"]))
    return out


def _corrupt(path: Path, reason: str) -> InvalidInput:
    return InvalidInput(source=str(path), column=None,
                        rule=f"not a history file of this dataset ({reason[:200]}); move it out of the "
                             "history folder")


def _unify(schemas: Sequence[pa.Schema]) -> pa.Schema:
    merged = pa.unify_schemas([s.remove_metadata() for s in schemas], promote_options="permissive")
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in merged])


def _sort(table: pa.Table, spec: TableSpec | None) -> pa.Table:
    keys = ["as_of", "run_id"] + (spec.key_columns(table) if spec is not None else [])
    keys = list(dict.fromkeys(k for k in keys if k in table.column_names))
    return table.sort_by([(k, "ascending") for k in keys]) if keys and table.num_rows else table


def _read_files(paths: Sequence[Path], dataset: str, lo: _dt.datetime | None,
                hi: _dt.datetime | None) -> pa.Table:
    """Read run files as one table with a unified schema; a file that is not Parquet, or lacks the
    dataset's key columns, is named in an :class:`InvalidInput`."""
    import pyarrow.parquet as pq

    spec = DATASET_SPECS.get(dataset)
    required = {"as_of", "run_id"} | ({c.name for c in spec.columns if c.role == "key"} if spec else set())
    tables = []
    for p in paths:
        try:
            t = pq.ParquetFile(p).read()
        except (pa.ArrowException, OSError) as exc:
            raise _corrupt(p, f"unreadable Parquet: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc}") from exc
        missing = sorted(required - set(t.column_names))
        if missing:
            raise _corrupt(p, f"missing column(s) {', '.join(missing)}")
        tables.append(t)
    schema = _unify([t.schema for t in tables])
    try:
        table = pa.concat_tables([t.select([n for n in t.column_names]).cast(
            pa.schema([schema.field(n) for n in t.column_names])) for t in tables], promote_options="permissive")
    except (pa.ArrowException, ValueError) as exc:
        raise InvalidInput(source=str(paths[0].parent.parent), column=None,
                           rule=f"history files of {dataset} have incompatible columns: {exc}") from exc
    table = table.select([n for n in schema.names if n in table.column_names])
    if lo is not None or hi is not None:
        col = table.column("as_of").cast(TIMESTAMP)
        mask = pa.array([True] * table.num_rows)
        if lo is not None:
            mask = pc.and_(mask, pc.greater_equal(col, pa.scalar(lo, type=TIMESTAMP)))
        if hi is not None:
            mask = pc.and_(mask, pc.less_equal(col, pa.scalar(hi, type=TIMESTAMP)))
        table = table.filter(mask)
    return _sort(table, spec)


def read_history(history_dir: str | Path, dataset: str, start: _dt.datetime | str | None = None,
                 end: _dt.datetime | str | None = None) -> pa.Table:
    """Every row of ``dataset`` of the committed runs with ``start <= as_of <= end`` (UTC; None =
    unbounded), with a schema unifying every file's (tag columns that differ between runs: missing
    ones are null); sorted by as_of, run_id, then group keys. No run in range -> a table with no
    rows and no columns.
    """
    lo = to_utc(start) if start is not None else None
    hi = to_utc(end) if end is not None else None
    runs = list_runs(history_dir, dataset, lo, hi)
    if not runs:
        return pa.table({})
    return _read_files([p for _, _, p in runs], dataset, lo, hi)


def previous_adherence(history_dir: str | Path, before: _dt.datetime | str,
                       exclude_run: str | None = None) -> pa.Table | None:
    """The adherence rows of the committed runs at the latest as_of strictly before ``before``
    (several runs at that as_of, e.g. with other grouping levels: all of them); None if none.

    The commits are searched newest first (by file name), and only those of the latest as_of with
    adherence are read: the cost does not grow with the history. A history folder that does not
    exist yet gives None (the first run of a scheduler).
    """
    before = to_utc(before)
    root = Path(history_dir)
    if not root.is_dir():
        return None
    legacy = not (root / COMMITS).is_dir()
    folder = root / ("adherence" if legacy else COMMITS)
    latest: _dt.datetime | None = None
    found: list[tuple[str, Path]] = []
    for part in reversed(list(_partitions(folder, None, before))):
        runs = []
        for f in part.iterdir():
            m = _RUN_RE.match(f.name)
            if not m or m.group(3) != ("parquet" if legacy else "json") or m.group(2) == exclude_run:
                continue
            t = _parse_compact(m.group(1))
            if t < before:
                runs.append((t, m.group(2), f))
        for t, rid, f in sorted(runs, reverse=True):
            if latest is not None and t < latest:
                break
            if legacy:
                path: Path | None = f
            else:
                entry = (_read_commit(f).get("datasets") or {}).get("adherence")
                path = root / entry["file"] if entry else None
            if path is not None:
                latest = t
                found.append((rid, path))
        if latest is not None:
            break
    if not found:
        return None
    return _read_files([p for _, p in sorted(found)], "adherence", None, None)


def has_run(history_dir: str | Path, as_of: _dt.datetime | str, run_id: str) -> bool:
    """Whether the history holds the committed run (as_of, run_id)."""
    root = Path(history_dir)
    if not root.is_dir():
        return False
    as_of = to_utc(as_of)
    if (root / COMMITS).is_dir():
        return _commit_path(root, as_of, run_id).is_file()
    return (root / "adherence" / f"date={as_of.date().isoformat()}"
            / f"run-{compact_as_of(as_of)}-{run_id}.parquet").is_file()
