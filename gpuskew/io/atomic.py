"""Atomic writes: the one place that writes output files.

Outputs are written so that a reader never sees a half-written file or a half-written run:

* :func:`write_atomic` writes one file to a temporary name *beside* the target (same folder, so
  the same filesystem: the final ``os.replace`` is atomic even when the folder is a mount point),
  fsyncs it, then renames it into place; :func:`write_parquet` / :func:`write_json` /
  :func:`write_text` use it; re-running with the same data gives byte-identical files.
* :func:`publish_run` writes every file of a run into a temporary folder beside a new output
  folder, then renames the whole folder into place; into an existing output folder (perhaps a mount
  point) through a temporary folder inside it, moving the files in one by one with ``summary.json``
  last: it is the commit marker of a run. Every rename stays on one filesystem.
* :func:`remove_stale_temporaries` removes temporary files and folders a killed process left.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from gpuskew.errors import EXIT_INVALID, GpuskewError

__all__ = ["OutputExists", "OutputStage", "write_atomic", "write_new", "write_parquet", "write_parquet_new", "write_arrow", "write_json", "write_text",
           "dumps_json", "json_default", "publish_run", "listed_outputs", "check_output_free", "fsync_dir", "PARQUET_ROW_GROUP_SIZE", "COMMIT_MARKER"]

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
# writing


def _tmp_name(final: Path) -> Path:
    return final.with_name(f".{final.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")


def _discard(tmp: Path) -> None:
    """Remove a temporary file if it is still there."""
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass


def _filled_tmp(path: Path, write: Callable[[Any], None]) -> Path:
    """A fresh temporary file next to ``path`` holding what ``write(binary_file)`` wrote, fsynced."""
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
    except BaseException:
        _discard(tmp)
        raise
    return tmp


def write_atomic(path: Path, write: Callable[[Any], None]) -> None:
    """Call ``write(binary_file)`` on a fresh temporary file next to ``path``, fsync it, then rename
    it into place (replacing ``path``)."""
    path = Path(path)
    tmp = _filled_tmp(path, write)
    try:
        os.replace(tmp, path)
    except BaseException:
        _discard(tmp)
        raise


def write_new(path: Path, write: Callable[[Any], None]) -> bool:
    """As :func:`write_atomic`, but never over an existing file: the fsynced temporary file is
    hard-linked into place (atomic, fails when ``path`` exists; filesystems without hard links: an
    existence check, then a rename). False, and nothing written, when ``path`` already exists."""
    path = Path(path)
    if os.path.lexists(path):
        return False
    return _link_new(_filled_tmp(path, write), path)


def _link_new(tmp: Path, path: Path) -> bool:
    """Hard-link the finished ``tmp`` to ``path`` unless ``path`` exists, then drop ``tmp``."""
    import errno

    try:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV, errno.EMLINK):
                raise
            if os.path.lexists(path):  # pragma: no cover - filesystems without hard links
                return False
            os.replace(tmp, path)  # pragma: no cover
        return True
    finally:
        _discard(tmp)


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
    write_atomic(Path(path), _parquet_writer(table))


def write_parquet_new(table: pa.Table, path: str | Path) -> bool:
    """:func:`write_parquet` never over an existing file (:func:`write_new`): True when written,
    False when ``path`` exists (e.g. the data files of a history)."""
    return write_new(Path(path), _parquet_writer(table))


def _parquet_writer(table: pa.Table) -> Callable[[Any], None]:
    """The deterministic Parquet writer of :func:`write_parquet` (its docstring)."""
    import pyarrow.parquet as pq

    not_float = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    with_statistics = [f.name for f in table.schema if pa.types.is_integer(f.type) or pa.types.is_temporal(f.type)]
    codecs = {f.name: (PARQUET_COMPRESSION if f.name in not_float else PARQUET_FLOAT_COMPRESSION)
              for f in table.schema}

    def write(f: Any) -> None:
        pq.write_table(table, f, compression=codecs, row_group_size=PARQUET_ROW_GROUP_SIZE,
                       write_statistics=with_statistics, use_dictionary=not_float)

    return write


def write_arrow(table: pa.Table, path: str | Path) -> None:
    """Write ``table`` as an Arrow IPC file (uncompressed: the fastest to write and to memory-map),
    atomically."""
    import pyarrow.ipc as ipc

    def write(f: Any) -> None:
        with ipc.new_file(f, table.schema) as writer:
            writer.write_table(table, max_chunksize=PARQUET_ROW_GROUP_SIZE)

    write_atomic(Path(path), write)


def json_default(obj: Any) -> Any:
    """The ``default`` of every JSON gpuskew writes: dates and paths as text, numpy arrays as lists,
    numpy scalars as Python numbers (a non-finite float refused, as ``allow_nan=False`` does);
    anything else is a TypeError (never its ``str``)."""
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    if getattr(obj, "ndim", 0) and callable(getattr(obj, "tolist", None)):  # numpy array (before .item(),
        return obj.tolist()                                                # which fails on > 1 element)
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar, 0-d array
        value = obj.item()
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"out of range float value {value!r} is not JSON compliant")
        return value
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def dumps_json(obj: Any, *, compact: bool = False) -> str:
    """The JSON text :func:`write_json` writes: indent 2, sorted keys, no NaN/inf, trailing newline;
    ``compact``: one line, no spaces, no newline, ASCII only (the ``--json`` line of the CLI)."""
    if compact:
        return json.dumps(obj, separators=(",", ":"), sort_keys=True, allow_nan=False, default=json_default)
    return json.dumps(obj, indent=2, sort_keys=True, allow_nan=False, ensure_ascii=False,
                      default=json_default) + "\n"


def write_json(obj: Any, path: str | Path) -> None:
    """Write ``obj`` as UTF-8 JSON (indent 2, sorted keys, NaN/inf refused), atomically.

    numpy scalars/arrays, dates and paths are converted; the text is rendered before anything is
    written, so an unserialisable object leaves no file behind.
    """
    data = dumps_json(obj).encode("utf-8")
    write_atomic(Path(path), lambda f: f.write(data))


def write_text(text: str, path: str | Path) -> None:
    """Write UTF-8 ``text`` to ``path`` atomically (temporary file beside it, then rename)."""
    data = text.encode("utf-8")
    write_atomic(Path(path), lambda f: f.write(data))


def _fresh_dir_for(out_dir: Path) -> Path:
    """A new temporary folder on the same filesystem as ``out_dir``'s files: inside it when it
    exists (it may be a mount point: a folder beside it would be on another filesystem, and the
    final renames would fail with "Invalid cross-device link"), else beside it."""
    while True:
        name = f".{out_dir.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}"
        tmp = out_dir / name if out_dir.is_dir() else out_dir.with_name(name)
        try:
            os.mkdir(tmp)  # mode 0o777 & ~umask, unlike tempfile.mkdtemp (0700)
            return tmp
        except FileExistsError:  # pragma: no cover
            continue


def fsync_dir(path: Path) -> None:
    """fsync a folder (its entries: a rename or a new file in it is durable); a no-op where the
    platform cannot open folders."""
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
    out_dir = Path(os.path.abspath(out_dir))
    if out_dir.parent == out_dir:
        raise OutputExists(out_dir, reason="is the filesystem root: give a folder to create or fill")
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputExists(out_dir, reason="exists and is not a folder")
    if out_dir.is_dir() and not overwrite:
        clash = _clashes(out_dir, list(names))
        if clash:
            raise OutputExists(out_dir, clash)
    existing = out_dir if out_dir.is_dir() else next((p for p in out_dir.parents if p.exists()), out_dir.parent)
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise OutputExists(out_dir, reason=f"cannot be written ({existing} is not a writable folder)")


def _written(path: Path) -> bool:
    """A writer's output: a file, or a folder of files (a partitioned dataset such as the part files
    of a sharded run's positions.parquet)."""
    return path.is_file() or (path.is_dir() and not path.is_symlink())


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.remove(path)


def _plain_name(name: object) -> bool:
    return (isinstance(name, str) and bool(name) and name not in (".", "..") and "/" not in name
            and os.sep not in name and not (os.altsep and os.altsep in name) and "\0" not in name)


def listed_outputs(out_dir: str | Path) -> list[str]:
    """The files the run published in ``out_dir`` lists in its commit marker (``summary.json``:
    ``files`` or ``outputs.files``); plain file names only (a listed path is never followed); empty
    when there is no readable marker."""
    try:
        summary = json.loads((Path(out_dir) / COMMIT_MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(summary, dict):
        return []
    outputs = summary.get("outputs")
    listed: list[object] = []
    for files in (summary.get("files"), outputs.get("files") if isinstance(outputs, dict) else None):
        if isinstance(files, list):
            listed += files
    return [n for n in dict.fromkeys(x for x in listed if _plain_name(x))]  # type: ignore[misc]


class OutputStage:
    """The files of one run folder, written into a temporary folder on the target's filesystem
    (beside ``out_dir`` when it does not exist yet, inside it when it does), then published.

    ``write(name, writer)`` runs ``writer(path)`` now; ``write_async(name, writer)`` runs it in a
    background thread (pyarrow releases the GIL while it encodes: the big positions file is written
    while the run goes on). ``publish(stale)`` waits for the background writers, then publishes as
    :func:`publish_run` describes; any failure removes the temporary folder: nothing is published.
    Use as a context manager: leaving the block without publishing discards everything.
    """

    def __init__(self, out_dir: str | Path, overwrite: bool):
        out_dir = Path(os.path.abspath(out_dir))
        if out_dir.parent == out_dir:
            raise OutputExists(out_dir, reason="is the filesystem root: give a folder to create or fill")
        if out_dir.exists() and not out_dir.is_dir():
            raise OutputExists(out_dir, reason="exists and is not a folder")
        self.out_dir, self.overwrite = out_dir, overwrite
        self.names: list[str] = []
        self._threads: list[tuple[str, Any]] = []
        self._errors: list[BaseException] = []
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = _fresh_dir_for(out_dir)

    def _check(self, name: str) -> None:
        if not name or name in (".", "..") or "/" in name or os.sep in name or (os.altsep and os.altsep in name):
            raise ValueError(f"output file name must be a plain file name, got {name!r}")
        if name in self.names:
            raise ValueError(f"output file {name!r} written twice")
        if self.out_dir.is_dir() and not self.overwrite and os.path.lexists(self.out_dir / name):
            raise OutputExists(self.out_dir, [name])
        self.names.append(name)

    def write(self, name: str, writer: Callable[[Path], None]) -> None:
        self._check(name)
        writer(self.tmp / name)
        if not _written(self.tmp / name):
            raise RuntimeError(f"writer for {name!r} did not write a file")

    def write_async(self, name: str, writer: Callable[[Path], None]) -> None:
        import threading

        self._check(name)

        def run() -> None:
            try:
                writer(self.tmp / name)
            except BaseException as exc:  # re-raised by publish()
                self._errors.append(exc)

        thread = threading.Thread(target=run, name=f"gpuskew-write-{name}", daemon=True)
        thread.start()
        self._threads.append((name, thread))

    def wait(self) -> None:
        """Wait for the background writers; re-raise the first error."""
        for _, thread in self._threads:
            thread.join()
        self._threads = []
        if self._errors:
            raise self._errors[0]

    def publish(self, stale: Sequence[str] = ()) -> list[Path]:
        out_dir, tmp, names = self.out_dir, self.tmp, self.names
        try:
            self.wait()
            for n in names:
                if not _written(tmp / n):
                    raise RuntimeError(f"writer for {n!r} did not write a file")
            if not out_dir.exists() and tmp.parent == out_dir.parent:
                try:
                    os.replace(tmp, out_dir)
                    fsync_dir(out_dir.parent)
                    return [out_dir / n for n in names]
                except OSError:
                    if not out_dir.is_dir():  # not a race with another publisher: a real failure
                        raise
            clash = _clashes(out_dir, names)
            if clash and not self.overwrite:
                raise OutputExists(out_dir, clash)
            order = [n for n in names if n != COMMIT_MARKER] + [n for n in names if n == COMMIT_MARKER]
            earlier = listed_outputs(out_dir) if self.overwrite else []
            for n in dict.fromkeys([*stale, *earlier]):
                if n not in names and os.path.lexists(out_dir / n):
                    _remove(out_dir / n)
            for n in order:
                target = out_dir / n
                if (target.is_dir() and not target.is_symlink()) or ((tmp / n).is_dir() and os.path.lexists(target)):
                    # a folder output (a dataset) over an earlier output, or a file over a folder: a
                    # rename cannot replace a non-empty folder, so the earlier one moves aside first
                    os.replace(target, tmp / f".replaced-{n}")
                os.replace(tmp / n, target)
            fsync_dir(out_dir)
            return [out_dir / n for n in names]
        finally:
            self.discard()

    def discard(self) -> None:
        for _, thread in self._threads:
            thread.join()
        self._threads = []
        if self.tmp.exists():
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> OutputStage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.discard()


def publish_run(out_dir: str | Path, files: Mapping[str, Callable[[Path], None]],
                overwrite: bool, stale: Sequence[str] = ()) -> list[Path]:
    """Write every output file of a run, atomically, into ``out_dir``.

    ``files`` maps a file name (no folders) to ``writer(path)`` that writes that file at ``path``
    (or a folder of files there: a partitioned dataset such as a sharded run's ``positions.parquet``).
    All writers run first, into a fresh temporary folder on ``out_dir``'s filesystem
    (:class:`OutputStage`); if one raises, that folder is removed and the error re-raised: nothing
    is published. Then:

    * ``out_dir`` missing: the temporary folder is renamed to ``out_dir`` (one atomic rename);
    * ``out_dir`` exists and already holds one of the names: :class:`OutputExists` unless
      ``overwrite``;
    * otherwise the files are moved in one by one with ``os.replace``, ``summary.json`` last (the
      commit marker: a reader that sees the new ``summary.json`` sees the whole run); the files
      this run does not write that are named in ``stale`` or, with ``overwrite``, listed by the
      earlier run's ``summary.json`` (``files`` or ``outputs.files``: :func:`listed_outputs`, e.g. a
      chart of an underlying the new run no longer has) are removed first, so the folder never
      mixes two runs.

    Returns the final paths, in the order of ``files``.
    """
    target = Path(os.path.abspath(out_dir))
    if target.is_dir() and not overwrite:  # fail before doing any work, naming every clash
        clash = _clashes(target, list(files))
        if clash:
            raise OutputExists(target, clash)
    with OutputStage(out_dir, overwrite) as stage:
        for name, writer in files.items():
            stage.write(name, writer)
        return stage.publish(stale)
