"""History folder: append-only atomic appends, concurrent appends, reads, previous run."""

from __future__ import annotations

import datetime as dt
import multiprocessing as mp
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from gpuskew.errors import InvalidInput
from gpuskew.history import append_run, compact_as_of, list_runs, previous_adherence, read_history
from gpuskew.schema import ADHERENCE, ADHERENCE_COLUMNS, EXPOSURE_COLUMNS, TIMESTAMP

T0 = dt.datetime(2026, 11, 20, 23, 50, tzinfo=dt.timezone.utc)
_STRINGS = {"measure", "status", "target_model", "band_model"}


def make_adherence(skews: list[float], as_of: dt.datetime, tags: dict[str, list] | None = None) -> pa.Table:
    """Adherence rows, one per skew: desk-level groups d0, d1, ... of BTC (or given tag columns)."""
    n = len(skews)
    tags = tags if tags is not None else {"desk": [f"d{i}" for i in range(n)]}
    cols: dict[str, pa.Array] = {
        "as_of": pa.array([as_of] * n, type=TIMESTAMP),
        "level": pa.array([",".join(tags) or "underlying"] * n, type=pa.string()),
        "underlying": pa.array(["BTC"] * n, type=pa.string()),
    }
    for k, v in tags.items():
        cols[k] = pa.array(v, type=pa.string())
    for name, _unit, _doc in ADHERENCE_COLUMNS:
        if name in _STRINGS:
            value = {"measure": "delta", "status": "ok", "target_model": "neutral", "band_model": "fixed"}[name]
            cols[name] = pa.array([value] * n, type=pa.string())
        else:
            cols[name] = pa.array(skews if name == "skew" else [1.0] * n, type=pa.float64())
    return pa.table(cols)


def make_exposures(n: int) -> pa.Table:
    cols: dict[str, pa.Array] = {"level": pa.array(["desk"] * n), "underlying": pa.array(["BTC"] * n),
                                 "desk": pa.array([f"d{i}" for i in range(n)])}
    for name, _u, _d in EXPOSURE_COLUMNS:
        cols[name] = pa.array([float(i) for i in range(n)], type=pa.float64())
    return pa.table(cols)


# ---------------------------------------------------------------------------------------------
# appending


def test_append_layout_columns_and_read_back(tmp_path):
    written = append_run(tmp_path, T0, {"adherence": make_adherence([0.1, 0.2], T0),
                                        "exposures": make_exposures(2)}, run_id="abc123")
    name = "run-20261120T235000000000Z-abc123.parquet"
    assert written == [tmp_path / "adherence" / "date=2026-11-20" / name,
                       tmp_path / "exposures" / "date=2026-11-20" / name]
    # the commit marker, written last, makes the run visible
    assert (tmp_path / "_commits" / "date=2026-11-20" / name.replace(".parquet", ".json")).is_file()
    exp = read_history(tmp_path, "exposures")
    assert exp.column_names[0] == "as_of" and "run_id" in exp.column_names
    assert exp.schema.field("as_of").type == TIMESTAMP
    assert set(exp.column("as_of").to_pylist()) == {T0}
    assert set(exp.column("run_id").to_pylist()) == {"abc123"}
    assert "date" not in exp.column_names
    adh = read_history(tmp_path, "adherence")
    assert adh.num_rows == 2 and adh.column("skew").to_pylist() == [0.1, 0.2]
    assert ADHERENCE.group_columns(adh) == ["level", "underlying", "desk"]
    assert ADHERENCE.group_columns(exp) == ["level", "underlying", "desk"]


def test_reappending_the_same_run_doubles_nothing(tmp_path):
    tables = {"adherence": make_adherence([0.1, 0.2], T0), "exposures": make_exposures(2)}
    assert len(append_run(tmp_path, T0, tables, "same")) == 2
    files = sorted(tmp_path.rglob("*"))
    assert append_run(tmp_path, T0, tables, "same") == []
    assert sorted(tmp_path.rglob("*")) == files  # no temp files left either
    assert read_history(tmp_path, "adherence").num_rows == 2


def test_existing_file_is_never_overwritten(tmp_path):
    append_run(tmp_path, T0, {"adherence": make_adherence([0.1], T0)}, "r1")
    path = next((tmp_path / "adherence").rglob("*.parquet"))
    before = path.read_bytes()
    append_run(tmp_path, T0, {"adherence": make_adherence([9.9, 9.9], T0)}, "r1")
    assert path.read_bytes() == before


def _killed_append(root: Path, run_id: str) -> list[Path]:
    """What an append killed after its data files and before its commit leaves: the files, a
    _pending record naming a process that no longer exists, and a temporary file."""
    import json
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    name = f"run-{compact_as_of(T0)}-{run_id}.parquet"
    files = []
    for ds, table in (("exposures", make_exposures(3)), ("hedges", make_exposures(1))):
        path = root / ds / "date=2026-11-20" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        files.append(path)
    tmp = root / "adherence" / "date=2026-11-20" / f".{name}.tmp-{dead}-abcd1234"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"partial")
    (root / "_pending").mkdir(parents=True, exist_ok=True)
    (root / "_pending" / f"run-{compact_as_of(T0)}-{run_id}.{dead}.json").write_text(json.dumps(
        {"pid": int(dead), "host": socket.gethostname(),
         "commit": f"_commits/date=2026-11-20/run-{compact_as_of(T0)}-{run_id}.json",
         "files": [str(f.relative_to(root)) for f in files]}))
    return files + [tmp]


def test_killed_append_is_invisible_then_rolled_back(tmp_path):
    left = _killed_append(tmp_path, "r1")
    # readers honour the commit marker: the half-written run is in no dataset
    assert read_history(tmp_path, "exposures").num_rows == 0
    assert read_history(tmp_path, "hedges").num_rows == 0
    assert previous_adherence(tmp_path, T0 + dt.timedelta(hours=1)) is None
    # the next append rolls it back (data files and temporary file removed) and lands whole
    later = T0 + dt.timedelta(minutes=5)
    append_run(tmp_path, later, {"exposures": make_exposures(2), "adherence": make_adherence([0.5], later)}, "r2")
    assert not any(p.exists() for p in left)
    assert not list((tmp_path / "_pending").iterdir())
    assert read_history(tmp_path, "exposures").num_rows == 2
    # and the killed run, retried, lands whole
    append_run(tmp_path, T0, {"exposures": make_exposures(3), "adherence": make_adherence([0.1], T0)}, "r1")
    assert read_history(tmp_path, "exposures").num_rows == 5


def test_repair_keeps_a_live_append(tmp_path):
    from gpuskew.history import repair

    left = _killed_append(tmp_path, "r1")
    record = next((tmp_path / "_pending").iterdir())
    import json
    import os
    info = json.loads(record.read_text())
    info["pid"] = os.getpid()  # this process: alive
    record.write_text(json.dumps(info))
    repair(tmp_path)
    assert all(p.exists() for p in left[:2])


def test_append_rejects_bad_names_and_reserved_columns(tmp_path):
    with pytest.raises(ValueError):
        append_run(tmp_path, T0, {"adherence": make_adherence([0.1], T0)}, "../evil")
    with pytest.raises(ValueError):
        append_run(tmp_path, T0, {"../x": make_adherence([0.1], T0)}, "r1")
    with pytest.raises(InvalidInput, match="reserved"):
        append_run(tmp_path, T0, {"adherence": make_adherence([0.1], T0).append_column(
            "date", pa.array(["x"]))}, "r1")
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_append_refuses_rows_of_another_time(tmp_path):
    later = T0 + dt.timedelta(minutes=5)
    with pytest.raises(InvalidInput, match="as_of"):
        append_run(tmp_path, later, {"adherence": make_adherence([0.1], T0)}, "r1")
    assert list(tmp_path.iterdir()) == []


def test_naive_and_string_as_of_are_utc(tmp_path):
    append_run(tmp_path, "2026-11-20T23:50:00Z", {"adherence": make_adherence([0.1], T0)}, "a")
    append_run(tmp_path, dt.datetime(2026, 11, 21, 0, 10), {"exposures": make_exposures(1)}, "b")
    assert (tmp_path / "exposures" / "date=2026-11-21" / "run-20261121T001000000000Z-b.parquet").is_file()
    assert read_history(tmp_path, "exposures").column("as_of")[0].as_py() == \
        dt.datetime(2026, 11, 21, 0, 10, tzinfo=dt.timezone.utc)
    assert compact_as_of(T0) == "20261120T235000000000Z"


# ---------------------------------------------------------------------------------------------
# concurrent appends (separate processes)


def _append_worker(history: str, worker: int, n_runs: int, barrier) -> None:
    barrier.wait()
    for k in range(n_runs):
        as_of = T0 + dt.timedelta(minutes=k, seconds=worker)  # crosses midnight: two partitions
        append_run(history, as_of, {"adherence": make_adherence([worker + k / 10] * 3, as_of),
                                    "exposures": make_exposures(5)}, run_id=f"w{worker}-k{k}")
        # every worker also appends the same shared run: exactly one copy may land
        shared = T0 + dt.timedelta(minutes=30 + k)
        append_run(history, shared, {"adherence": make_adherence([0.0] * 2, shared)}, run_id=f"shared-k{k}")


@pytest.mark.parametrize("n_workers,n_runs", [(4, 4)])
def test_concurrent_appends_lose_nothing_and_double_nothing(tmp_path, n_workers, n_runs):
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(n_workers)
    procs = [ctx.Process(target=_append_worker, args=(str(tmp_path), w, n_runs, barrier))
             for w in range(n_workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * n_workers
    adh = read_history(tmp_path, "adherence")
    own = adh.filter(pa.compute.starts_with(adh.column("run_id"), "w"))
    assert own.num_rows == n_workers * n_runs * 3  # nothing lost
    assert len(set(own.column("run_id").to_pylist())) == n_workers * n_runs
    shared = adh.filter(pa.compute.starts_with(adh.column("run_id"), "shared"))
    assert shared.num_rows == n_runs * 2  # nothing doubled
    assert read_history(tmp_path, "exposures").num_rows == n_workers * n_runs * 5
    assert {p.name for p in (tmp_path / "adherence").iterdir()} == {"date=2026-11-20", "date=2026-11-21"}
    assert not [p for p in tmp_path.rglob(".*")]  # no temp files left


# ---------------------------------------------------------------------------------------------
# reading


def _three_runs(tmp_path: Path) -> list[dt.datetime]:
    times = [T0, T0 + dt.timedelta(minutes=10), T0 + dt.timedelta(minutes=20)]  # 2nd and 3rd next day
    for i, t in enumerate(times):
        append_run(tmp_path, t, {"adherence": make_adherence([0.1 * i, 0.2 * i], t)}, f"r{i}")
    return times


def test_read_history_filters_inclusive_and_sorts(tmp_path):
    times = _three_runs(tmp_path)
    assert read_history(tmp_path, "adherence").num_rows == 6
    sub = read_history(tmp_path, "adherence", start=times[1])
    assert set(sub.column("as_of").to_pylist()) == set(times[1:])
    sub = read_history(tmp_path, "adherence", end=times[1])
    assert set(sub.column("as_of").to_pylist()) == set(times[:2])
    sub = read_history(tmp_path, "adherence", start="2026-11-21T00:00:00Z", end="2026-11-21T00:00:00Z")
    assert set(sub.column("as_of").to_pylist()) == {times[1]}
    assert read_history(tmp_path, "adherence", start="2027-01-01T00:00:00Z").num_rows == 0
    assert read_history(tmp_path, "hedges").num_rows == 0  # dataset never written
    full = read_history(tmp_path, "adherence")
    keys = list(zip(full.column("as_of").to_pylist(), full.column("desk").to_pylist()))
    assert keys == sorted(keys)


def test_read_history_unifies_differing_tag_columns(tmp_path):
    t1, t2 = T0, T0 + dt.timedelta(minutes=1)
    append_run(tmp_path, t1, {"adherence": make_adherence([0.1], t1, {"desk": ["a"]})}, "r1")
    append_run(tmp_path, t2, {"adherence": make_adherence([0.2], t2, {"desk": ["a"], "book": ["x"]})}, "r2")
    table = read_history(tmp_path, "adherence")
    assert table.num_rows == 2
    assert table.column("book").to_pylist() == [None, "x"]
    assert ADHERENCE.group_columns(table) == ["level", "underlying", "desk", "book"]


def test_read_history_ignores_temp_and_foreign_files(tmp_path):
    _three_runs(tmp_path)
    part = tmp_path / "adherence" / "date=2026-11-20"
    (part / ".run-20261120T235000000000Z-x.parquet.tmp-1-abcd").write_bytes(b"partial")
    (part / "notes.txt").write_text("hello")
    assert read_history(tmp_path, "adherence").num_rows == 6


def test_corrupt_history_file_is_named(tmp_path):
    _three_runs(tmp_path)
    bad = next((tmp_path / "adherence").rglob("run-*-r1.parquet"))
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(InvalidInput) as info:
        read_history(tmp_path, "adherence")
    assert str(bad) in str(info.value) and info.value.exit_code == 2


def test_missing_history_folder_is_invalid_input(tmp_path):
    with pytest.raises(InvalidInput, match="no such folder"):
        read_history(tmp_path / "nope", "adherence")


def test_list_runs(tmp_path):
    times = _three_runs(tmp_path)
    runs = list_runs(tmp_path)
    assert [(t, r) for t, r, _ in runs] == [(t, f"r{i}") for i, t in enumerate(times)]


# ---------------------------------------------------------------------------------------------
# previous run


def test_previous_adherence_is_latest_strictly_before(tmp_path):
    times = _three_runs(tmp_path)
    assert previous_adherence(tmp_path, times[0]) is None
    prev = previous_adherence(tmp_path, times[2])
    assert set(prev.column("as_of").to_pylist()) == {times[1]}
    assert prev.column("skew").to_pylist() == [pytest.approx(0.1), pytest.approx(0.2)]
    prev = previous_adherence(tmp_path, times[2] + dt.timedelta(microseconds=1))
    assert set(prev.column("run_id").to_pylist()) == {"r2"}
    assert previous_adherence(tmp_path / "does-not-exist", times[2]) is None


def test_previous_adherence_same_as_of_gives_every_run_there(tmp_path):
    # two runs at one as_of (e.g. other grouping levels): the previous state is both, largest run_id last
    append_run(tmp_path, T0, {"adherence": make_adherence([0.1], T0)}, "aaa")
    append_run(tmp_path, T0, {"adherence": make_adherence([0.9], T0, tags={"book": ["b0"]})}, "bbb")
    prev = previous_adherence(tmp_path, T0 + dt.timedelta(seconds=1))
    assert prev.column("run_id").to_pylist() == ["aaa", "bbb"]


def test_foreign_and_copied_files_are_ignored(tmp_path):
    _three_runs(tmp_path)
    part = tmp_path / "adherence" / "date=2026-11-20"
    src = next(tmp_path.rglob("run-*-r1.parquet"))
    (part / src.name.replace("-r1.", "-copy.")).write_bytes(src.read_bytes())   # a copied file
    pq.write_table(pa.table({"x": [1]}), part / "run-20261120T235900000000Z-foreign.parquet")
    assert read_history(tmp_path, "adherence").num_rows == 6


def test_history_files_are_plain_parquet(tmp_path):
    append_run(tmp_path, T0, {"adherence": make_adherence([0.1], T0)}, "r1")
    path = next(tmp_path.rglob("run-*.parquet"))
    assert pq.read_table(path).num_rows == 1


def test_data_folders_are_fsynced_before_the_commit_marker(tmp_path, monkeypatch):
    """After a power loss the commit marker must never survive without its data: every data
    folder (and every new folder in its parents) is fsynced before the marker is written."""
    import gpuskew.io

    events: list[tuple[str, Path]] = []
    real_fsync, real_write_json = gpuskew.io.fsync_dir, gpuskew.io.write_json
    monkeypatch.setattr(gpuskew.io, "fsync_dir", lambda p: (events.append(("fsync", Path(p))), real_fsync(p)))
    monkeypatch.setattr(gpuskew.io, "write_json",
                        lambda obj, p: (events.append(("json", Path(p))), real_write_json(obj, p)))
    append_run(tmp_path, T0, {"exposures": make_exposures(2), "adherence": make_adherence([0.1], T0)}, "r1")
    commit = next(i for i, (kind, p) in enumerate(events) if kind == "json" and "_commits" in p.parts)
    synced = {p for kind, p in events[:commit] if kind == "fsync"}
    for ds in ("exposures", "adherence"):
        assert tmp_path / ds / "date=2026-11-20" in synced and tmp_path / ds in synced
    assert ("fsync", tmp_path / "_commits" / "date=2026-11-20") in events[commit:]
    assert not list(tmp_path.rglob(".*.tmp-*"))


def test_write_parquet_new_never_overwrites(tmp_path):
    from gpuskew.io import write_parquet, write_parquet_new

    path = tmp_path / "x.parquet"
    assert write_parquet_new(pa.table({"a": [1]}), path) is True
    before = path.read_bytes()
    write_parquet(pa.table({"a": [1]}), tmp_path / "y.parquet")
    assert (tmp_path / "y.parquet").read_bytes() == before  # the same bytes as write_parquet
    (tmp_path / "y.parquet").unlink()
    assert write_parquet_new(pa.table({"a": [2, 3]}), path) is False
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["x.parquet"]


def test_append_repairs_only_what_pending_names(tmp_path):
    """An append does not walk the whole history: a dead process's temporary file in a partition no
    pending append names is left to a full repair()."""
    import subprocess
    import sys

    from gpuskew.history import repair

    append_run(tmp_path, T0, {"adherence": make_adherence([0.1], T0)}, "r0")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    far = tmp_path / "adherence" / "date=2020-01-01" / f".run-x.parquet.tmp-{dead}-abcd1234"
    far.parent.mkdir(parents=True)
    far.write_bytes(b"partial")
    top = tmp_path / f"._schema.json.tmp-{dead}-abcd1234"
    top.write_bytes(b"partial")
    later = T0 + dt.timedelta(minutes=5)
    append_run(tmp_path, later, {"adherence": make_adherence([0.2], later)}, "r1")
    assert far.exists() and not top.exists()
    assert repair(tmp_path) == {"rolled_back": 0, "temp_removed": 1} and not far.exists()


def test_previous_adherence_reads_only_the_latest_commits(tmp_path, monkeypatch):
    import json

    import gpuskew.history.store as store

    times = [T0 + dt.timedelta(hours=6 * i) for i in range(8)]
    for i, t in enumerate(times):
        append_run(tmp_path, t, {"adherence": make_adherence([0.1 * i], t)}, f"r{i}")
    append_run(tmp_path, times[6], {"exposures": make_exposures(1)}, "noadh")  # no adherence: skipped
    reads: list[str] = []
    real = json.loads
    monkeypatch.setattr(store.json, "loads", lambda text, *a, **k: (reads.append(text), real(text, *a, **k))[1])
    prev = previous_adherence(tmp_path, times[7])
    assert set(prev.column("run_id").to_pylist()) == {"r6"} and len(reads) <= 2
    reads.clear()
    prev = previous_adherence(tmp_path, times[7], exclude_run="r6")
    assert set(prev.column("run_id").to_pylist()) == {"r5"} and len(reads) <= 2
    assert previous_adherence(tmp_path, times[0]) is None
