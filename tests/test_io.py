"""Reading inputs (Parquet, CSV, Arrow IPC, in-memory frames) and atomic, deterministic outputs."""

from __future__ import annotations

import json
import os
import stat
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest

from gpuskew import io as gio
from gpuskew import schema
from gpuskew.errors import EXIT_INVALID, GpuskewError, InvalidInput
from gpuskew.io.validate import tag_columns, validate_book

EXPIRY = datetime(2026, 12, 27, 8, 0, tzinfo=timezone.utc)


def _book() -> dict[str, pa.Table]:
    """A tiny valid book as Arrow tables (spot, inverse and linear perps, a future, two options)."""
    ts = schema.TIMESTAMP
    return {
        "instruments": pa.table({
            "instrument": ["BTC", "BTC-PERPETUAL", "BTCUSDT", "BTC-27DEC26", "SOL_USDC-27DEC26-200-C",
                           "BTC-27DEC26-100000-C"],
            "underlying": ["BTC", "BTC", "BTC", "BTC", "SOL", "BTC"],
            "kind": ["spot", "perpetual", "perpetual", "future", "option", "option"],
            "settlement": ["linear", "inverse", "linear", "inverse", "linear", "inverse"],
            "option_type": pa.array([None, None, None, None, "call", "put"], pa.string()),
            "strike": pa.array([None, None, None, None, 200.0, 100_000.0], pa.float64()),
            "expiry": pa.array([None, None, None, EXPIRY, EXPIRY, EXPIRY], ts),
            "contract_size": [1.0, 10.0, 0.001, 10.0, 10.0, 1.0],
        }),
        "positions": pa.table({
            "instrument": ["BTC", "BTC-PERPETUAL", "BTCUSDT", "BTC-27DEC26", "SOL_USDC-27DEC26-200-C",
                           "BTC-27DEC26-100000-C"],
            "quantity": [2.5, -10_000.0, 3000.0, 500.0, -40.0, 12.0],
            "entry_price": pa.array([None, 94_000.0, 95_500.0, 99_000.0, None, None], pa.float64()),
            "desk": ["mm", "mm", "delta1", "delta1", "options", "options"],
            "account": ["1", "2", "1", "2", "007", "2"],
        }),
        "underlyings": pa.table({
            "underlying": ["BTC", "SOL"], "spot": [95_000.0, 180.0], "rate": [0.04, 0.0],
            "vol": [0.55, 0.8], "funding_rate": pa.array([0.1, None], pa.float64()),
        }),
        "quotes": pa.table({
            "instrument": ["BTC-27DEC26", "SOL_USDC-27DEC26-200-C", "BTC-27DEC26-100000-C"],
            "iv": pa.array([None, 0.85, 0.6], pa.float64()),
            "forward": pa.array([97_000.0, None, 97_000.0], pa.float64()),
        }),
    }


def _write_csv(table: pa.Table, path: Path) -> None:
    """Plain CSV: ISO-8601 timestamps with Z, empty cells for nulls."""
    import csv

    cols = {n: table.column(n).to_pylist() for n in table.column_names}
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(table.column_names)
        for i in range(table.num_rows):
            row = []
            for n in table.column_names:
                v = cols[n][i]
                if v is None:
                    v = ""
                elif isinstance(v, datetime):
                    v = v.strftime("%Y-%m-%dT%H:%M:%SZ")
                row.append(v)
            w.writerow(row)


def _write(table: pa.Table, path: Path) -> None:
    ext = path.suffix
    if ext == ".parquet":
        pq.write_table(table, path)
    elif ext == ".csv":
        _write_csv(table, path)
    elif ext == ".arrow":
        with ipc.new_file(path, table.schema) as w:
            w.write_table(table)
    elif ext == ".ipc":
        with ipc.new_stream(path, table.schema) as w:
            w.write_table(table)
    elif ext == ".feather":
        feather.write_feather(table, path)
    else:  # pragma: no cover
        raise AssertionError(ext)


def _write_book(book_dir: Path, ext: str | dict[str, str]) -> Path:
    book_dir.mkdir(parents=True, exist_ok=True)
    for name, table in _book().items():
        e = ext if isinstance(ext, str) else ext[name]
        _write(table, book_dir / f"{name}{e}")
    return book_dir


# ------------------------------------------------------------------------------------------
# reading


@pytest.mark.parametrize("ext", [".parquet", ".csv", ".arrow", ".feather", ".ipc"])
def test_book_round_trip(tmp_path, ext):
    book_dir = _write_book(tmp_path / "book", ext)
    tables, sources = gio.read_book_dir(book_dir)
    assert list(tables) == list(schema.INPUT_TABLES)
    assert sources == {n: str(book_dir / f"{n}{ext}") for n in schema.INPUT_TABLES}
    got = validate_book(tables, sources)
    want = validate_book(_book(), {})
    for name in schema.INPUT_TABLES:
        # Parquet positions keep their tag columns dictionary-encoded: the same values
        assert got[name].cast(want[name].schema).equals(want[name]), (name, got[name].schema, want[name].schema)


def test_mixed_formats_in_one_book(tmp_path):
    exts = {"instruments": ".csv", "positions": ".parquet", "underlyings": ".feather", "quotes": ".ipc"}
    book_dir = _write_book(tmp_path / "book", exts)
    tables, sources = gio.read_book_dir(book_dir)
    assert sources["quotes"].endswith("quotes.ipc")
    validate_book(tables, sources)


def test_csv_keeps_identifiers_and_tags_as_strings(tmp_path):
    p = tmp_path / "positions.csv"
    p.write_text("instrument,quantity,entry_price,desk,account\n"
                 "123,1,,7,007\n"
                 "456,-2.5,100,8,\n")
    t = gio.read_table(p)
    assert t.schema.field("instrument").type == pa.string()
    assert t.schema.field("desk").type == pa.string()
    assert t.column("account").to_pylist() == ["007", None]  # empty cell -> null, zeros kept
    assert t.column("instrument").to_pylist() == ["123", "456"]
    assert t.schema.field("quantity").type == pa.float64()  # known numeric column: inferred
    assert t.column("entry_price").to_pylist() == [None, 100]


def test_csv_tags_and_string_enums(tmp_path):
    p = tmp_path / "instruments.csv"
    p.write_text("instrument,underlying,kind,settlement,option_type,strike,expiry,contract_size\n"
                 "1,2,spot,linear,,,,1\n")
    t = gio.read_table(p)
    for col in ("instrument", "underlying", "kind", "settlement", "option_type"):
        assert t.schema.field(col).type == pa.string(), col
    assert t.column("option_type").to_pylist() == [None]
    book_dir = _write_book(tmp_path / "book", ".csv")
    tables, sources = gio.read_book_dir(book_dir)
    out = validate_book(tables, sources)
    assert tag_columns(out["positions"]) == ["desk", "account"]
    assert out["positions"].column("account").to_pylist() == ["1", "2", "1", "2", "007", "2"]


def test_csv_bad_number_is_reported_with_rows(tmp_path):
    book_dir = _write_book(tmp_path / "book", ".csv")
    text = (book_dir / "positions.csv").read_text().replace("-40.0", "-40 contracts")
    (book_dir / "positions.csv").write_text(text)
    tables, sources = gio.read_book_dir(book_dir)
    with pytest.raises(InvalidInput) as info:
        validate_book(tables, sources)
    err = info.value
    assert err.source == str(book_dir / "positions.csv")
    assert err.column == "quantity" and err.rows == [4] and err.values == ["-40 contracts"]
    assert "wrong type: expected number, got string" in str(err)


def test_csv_only_empty_cells_are_null(tmp_path):
    p = tmp_path / "positions.csv"
    p.write_text("\ufeffinstrument,quantity,desk\nBTC,nan,NA\nBTC,1,null\nBTC,2,\n", encoding="utf-8")
    t = gio.read_table(p)
    assert t.column_names == ["instrument", "quantity", "desk"]  # BOM skipped
    assert t.column("desk").to_pylist() == ["NA", "null", None]
    q = t.column("quantity").to_pylist()
    assert np.isnan(q[0]) and q[1:] == [1.0, 2.0]
    book = _book()
    book["positions"] = t
    with pytest.raises(InvalidInput, match="must be finite") as info:
        validate_book(book, {"positions": str(p)})
    assert info.value.rows == [0] and info.value.source == str(p)


def test_header_only_csv_is_an_empty_table(tmp_path):
    book_dir = tmp_path / "book"
    book_dir.mkdir()
    for name, cols in schema.INPUT_TABLES.items():
        (book_dir / f"{name}.csv").write_text(",".join(c.name for c in cols) + "\n")
    tables, sources = gio.read_book_dir(book_dir)
    out = validate_book(tables, sources)
    assert all(t.num_rows == 0 for t in out.values())


@pytest.mark.parametrize("name,kind", [("x.parquet", "parquet"), ("x.arrow", "arrow ipc"),
                                       ("x.feather", "feather"), ("x.ipc", "arrow ipc")])
def test_corrupt_file(tmp_path, name, kind):
    p = tmp_path / name
    p.write_bytes(b"\x00garbage, not a table\xff" * 10)
    with pytest.raises(InvalidInput) as info:
        gio.read_table(p)
    err = info.value
    assert err.source == str(p) and err.column is None
    assert err.rule.startswith(f"unreadable or corrupt file ({kind}): ")
    assert str(p) in str(err) and err.exit_code == EXIT_INVALID


def test_truncated_parquet(tmp_path):
    p = tmp_path / "positions.parquet"
    pq.write_table(_book()["positions"], p)
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(InvalidInput, match=r"unreadable or corrupt file \(parquet\)"):
        gio.read_table(p)


def test_empty_csv_file(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text("")
    with pytest.raises(InvalidInput, match=r"unreadable or corrupt file \(csv\)") as info:
        gio.read_table(p)
    assert info.value.source == str(p)


def test_csv_with_ragged_rows(tmp_path):
    p = tmp_path / "quotes.csv"
    p.write_text("instrument,iv\nA,0.5\nB,0.5,7\n")
    with pytest.raises(InvalidInput, match=r"unreadable or corrupt file \(csv\)"):
        gio.read_table(p)


def test_parquet_without_columns(tmp_path):
    p = tmp_path / "quotes.parquet"
    pq.write_table(pa.table({}), p)
    with pytest.raises(InvalidInput, match="no columns"):
        gio.read_table(p)


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(InvalidInput, match="no such file") as info:
        gio.read_table(tmp_path / "nope.parquet")
    assert info.value.source == str(tmp_path / "nope.parquet")
    with pytest.raises(InvalidInput, match="unsupported file type '.xlsx'"):
        gio.read_table(tmp_path / "book.xlsx")


def test_find_table_file_missing(tmp_path):
    with pytest.raises(InvalidInput) as info:
        gio.find_table_file(tmp_path, "positions")
    err = info.value
    assert err.source == str(tmp_path) and err.column is None
    assert err.rule.startswith("missing table 'positions' (expected positions.parquet, .csv, .arrow")


def test_find_table_file_ambiguous(tmp_path):
    (tmp_path / "positions.csv").write_text("instrument,quantity\n")
    (tmp_path / "positions.parquet").write_bytes(b"")
    with pytest.raises(InvalidInput, match="positions.parquet, positions.csv"):
        gio.find_table_file(tmp_path, "positions")


def test_find_table_file_one(tmp_path):
    (tmp_path / "quotes.feather").write_bytes(b"")
    (tmp_path / "positions.csv").write_text("")
    assert gio.find_table_file(tmp_path, "quotes") == tmp_path / "quotes.feather"


def test_book_dir_missing_or_a_file(tmp_path):
    with pytest.raises(InvalidInput, match="no such folder") as info:
        gio.read_book_dir(tmp_path / "nope")
    assert info.value.source == str(tmp_path / "nope")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InvalidInput, match="not a folder"):
        gio.read_book_dir(f)


def test_book_dir_missing_one_table(tmp_path):
    book_dir = _write_book(tmp_path / "book", ".parquet")
    (book_dir / "quotes.parquet").unlink()
    with pytest.raises(InvalidInput, match="missing table 'quotes'"):
        gio.read_book_dir(book_dir)


# ------------------------------------------------------------------------------------------
# in-memory inputs


def test_to_arrow_table_arrow_and_dict():
    t = _book()["underlyings"]
    assert gio.to_arrow_table(t, "u") is t
    assert gio.to_arrow_table(t.to_batches()[0], "u").equals(t)
    assert gio.to_arrow_table(pa.RecordBatchReader.from_batches(t.schema, t.to_batches()), "u").equals(t)
    d = gio.to_arrow_table({"underlying": ["BTC"], "spot": np.array([1.0])}, "u")
    assert d.column_names == ["underlying", "spot"] and d.num_rows == 1


def test_to_arrow_table_pandas_drops_index():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"instrument": ["A", "B"], "quantity": [1.0, 2.0]}, index=[7, 9])
    t = gio.to_arrow_table(df, "<positions table>")
    assert t.column_names == ["instrument", "quantity"]
    assert t.column("quantity").to_pylist() == [1.0, 2.0]


def test_to_arrow_table_polars():
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({"instrument": ["A", "B"], "quantity": [1, 2]})
    t = gio.to_arrow_table(df, "<positions table>")
    assert t.column_names == ["instrument", "quantity"]
    assert t.column("instrument").to_pylist() == ["A", "B"]


def test_to_arrow_table_rejects_other_objects():
    with pytest.raises(InvalidInput, match="unsupported table type") as info:
        gio.to_arrow_table(42, "<quotes table>")
    assert info.value.source == "<quotes table>"
    with pytest.raises(InvalidInput, match="cannot convert to an Arrow table"):
        gio.to_arrow_table({"a": [1, 2], "b": [1]}, "<quotes table>")


def test_pandas_import_is_lazy():
    import subprocess
    import sys

    code = "import sys, gpuskew.io, gpuskew.io.validate; print('pandas' in sys.modules, 'polars' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# ------------------------------------------------------------------------------------------
# writing files


def _no_temp_files(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if ".tmp-" in p.name]


def test_write_parquet_is_deterministic(tmp_path):
    table = validate_book(_book(), {})["positions"]
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    gio.write_parquet(table, a)
    gio.write_parquet(table, b)
    assert a.read_bytes() == b.read_bytes()
    gio.write_parquet(table, a)  # overwrite in place
    assert a.read_bytes() == b.read_bytes()
    assert pq.read_table(a).equals(table)
    meta = pq.ParquetFile(a).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert _no_temp_files(tmp_path)


def test_write_parquet_failure_keeps_old_file(tmp_path, monkeypatch):
    p = tmp_path / "out.parquet"
    gio.write_parquet(pa.table({"a": [1]}), p)
    before = p.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", boom)
    with pytest.raises(OSError, match="disk full"):
        gio.write_parquet(pa.table({"a": [2]}), p)
    assert p.read_bytes() == before
    assert _no_temp_files(tmp_path)


def test_write_json(tmp_path):
    p = tmp_path / "summary.json"
    gio.write_json({"b": 1, "a": {"z": np.float64(0.5), "y": [np.int32(3)]}, "when": EXPIRY}, p)
    text = p.read_text()
    assert text.endswith("\n")
    assert text.index('"a"') < text.index('"b"')
    assert '\n  "a": {' in text
    assert json.loads(text) == {"a": {"y": [3], "z": 0.5}, "b": 1, "when": "2026-12-27T08:00:00+00:00"}
    with pytest.raises(ValueError):
        gio.write_json({"x": float("nan")}, tmp_path / "nan.json")
    with pytest.raises(ValueError):
        gio.write_json({"x": np.float64("inf")}, tmp_path / "inf.json")
    assert not (tmp_path / "nan.json").exists() and not (tmp_path / "inf.json").exists()
    assert _no_temp_files(tmp_path)


def test_written_files_respect_umask(tmp_path):
    p = tmp_path / "x.json"
    gio.write_json({}, p)
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~old


# ------------------------------------------------------------------------------------------
# publishing a run


def _files(tag: str = "new", fail: str | None = None) -> dict:
    def text_writer(name: str):
        def write(path: Path) -> None:
            if name == fail:
                raise RuntimeError(f"writer {name} failed")
            path.write_text(f"{tag}:{name}")
        return write

    return {
        "positions.parquet": lambda p: gio.write_parquet(pa.table({"x": [1.0]}), p),
        "summary.json": text_writer("summary.json"),
        "exposures.parquet": text_writer("exposures.parquet"),
    }


def test_publish_run_into_new_folder(tmp_path):
    out = tmp_path / "runs" / "r1"
    paths = gio.publish_run(out, _files(), overwrite=False)
    assert paths == [out / "positions.parquet", out / "summary.json", out / "exposures.parquet"]
    assert sorted(p.name for p in out.iterdir()) == ["exposures.parquet", "positions.parquet", "summary.json"]
    assert (out / "summary.json").read_text() == "new:summary.json"
    assert _no_temp_files(out.parent)
    old = os.umask(0o022)
    os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~old  # not mkdtemp's 0700


def test_publish_run_temp_folder_is_next_to_out_dir(tmp_path):
    out = tmp_path / "run"
    seen = []

    def writer(path: Path) -> None:
        seen.append(path)
        path.write_text("x")

    gio.publish_run(out, {"a.txt": writer}, overwrite=False)
    tmp = seen[0].parent
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(f".run.tmp-{os.getpid()}-")
    assert not tmp.exists()


def test_publish_run_failing_writer_leaves_nothing(tmp_path):
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="writer summary.json failed"):
        gio.publish_run(out, _files(fail="summary.json"), overwrite=False)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_publish_run_failing_writer_keeps_previous_run(tmp_path):
    out = tmp_path / "run"
    gio.publish_run(out, _files("old"), overwrite=False)
    with pytest.raises(RuntimeError):
        gio.publish_run(out, _files("new", fail="exposures.parquet"), overwrite=True)
    assert (out / "summary.json").read_text() == "old:summary.json"
    assert (out / "exposures.parquet").read_text() == "old:exposures.parquet"
    assert _no_temp_files(tmp_path)


def test_publish_run_existing_output_needs_overwrite(tmp_path):
    out = tmp_path / "run"
    gio.publish_run(out, _files("old"), overwrite=False)
    calls = []
    files = {n: (lambda w: (lambda p: (calls.append(p), w(p))))(w) for n, w in _files("new").items()}
    with pytest.raises(gio.OutputExists) as info:
        gio.publish_run(out, files, overwrite=False)
    err = info.value
    assert isinstance(err, GpuskewError) and err.exit_code == 2
    assert "--overwrite" in str(err) and str(out) in str(err) and "summary.json" in str(err)
    assert calls == []  # failed before any work
    assert (out / "summary.json").read_text() == "old:summary.json"
    assert _no_temp_files(tmp_path)


def test_publish_run_overwrite_moves_summary_last(tmp_path, monkeypatch):
    out = tmp_path / "run"
    gio.publish_run(out, _files("old"), overwrite=False)
    (out / "notes.txt").write_text("mine")
    moved: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst, *args, **kwargs):
        if Path(dst).parent == out:  # moves into the output folder (not the writers' own renames)
            moved.append(Path(dst).name)
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", recording_replace)
    paths = gio.publish_run(out, _files("new"), overwrite=True)
    assert moved == ["positions.parquet", "exposures.parquet", "summary.json"]
    assert paths[1] == out / "summary.json"
    assert (out / "summary.json").read_text() == "new:summary.json"
    assert (out / "exposures.parquet").read_text() == "new:exposures.parquet"
    assert (out / "notes.txt").read_text() == "mine"  # other files are left alone
    assert _no_temp_files(tmp_path)


def test_publish_run_into_existing_folder_without_clash(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "other.txt").write_text("keep")
    gio.publish_run(out, _files(), overwrite=False)
    assert (out / "other.txt").read_text() == "keep"
    assert (out / "summary.json").exists()
    assert _no_temp_files(tmp_path)


def test_publish_run_new_folder_is_one_rename(tmp_path, monkeypatch):
    out = tmp_path / "run"
    moved: list[tuple[str, str]] = []
    real_replace = os.replace

    def recording_replace(src, dst, *args, **kwargs):
        moved.append((Path(src).name, Path(dst).name))
        return real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", recording_replace)
    gio.publish_run(out, {"summary.json": lambda p: p.write_text("{}")}, overwrite=False)
    assert moved[-1][0].startswith(".run.tmp-") and moved[-1][1] == "run"
    assert [m for m in moved if m[1] == "summary.json"] == []


def test_publish_run_out_dir_is_a_file(tmp_path):
    out = tmp_path / "run"
    out.write_text("x")
    with pytest.raises(gio.OutputExists, match="not a folder"):
        gio.publish_run(out, _files(), overwrite=True)


def test_publish_run_rejects_paths_as_names(tmp_path):
    with pytest.raises(ValueError):
        gio.publish_run(tmp_path / "run", {"sub/x.json": lambda p: None}, overwrite=False)
    assert not (tmp_path / "run").exists()
