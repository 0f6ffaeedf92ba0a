"""Positions as a partitioned Parquet dataset (gpuskew.io.dataset): listing, reading ranges, per-file
validation, partition folders, content hash; `gpuskew demo --partitioned` (generated in chunks); one
process reading a dataset book; publish_run of a folder output (a sharded run's positions.parquet)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import gpuskew
from gpuskew.cli import main
from gpuskew.errors import InvalidInput
from gpuskew.io import publish_run, write_parquet
from gpuskew.io.dataset import dataset_hash, list_dataset, positions_dataset, read_rows
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book, write_demo_book, write_demo_dataset

UNDERLYINGS = ("BTC", "ETH", "SOL", "USDC", "XRP")


@pytest.fixture(scope="module")
def dataset_book(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ds")
    write_demo_dataset(folder, n_positions=9_000, seed=3, chunk=4_000)
    return folder


def _digests(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_demo_dataset_is_written_in_chunks_partitioned_by_underlying_and_deterministic(dataset_book, tmp_path):
    files = sorted(p.relative_to(dataset_book / "positions").as_posix()
                   for p in (dataset_book / "positions").rglob("*.parquet"))
    assert files == [f"underlying={u}/part-{k:05d}.parquet" for u in UNDERLYINGS for k in range(3)]
    rows = {f: pq.read_metadata(dataset_book / "positions" / f).num_rows for f in files}
    assert sum(rows.values()) == 9_000
    assert sum(n for f, n in rows.items() if f.endswith("00002.parquet")) == 1_000  # the last chunk
    again = tmp_path / "again"
    write_demo_dataset(again, n_positions=9_000, seed=3, chunk=4_000)
    assert _digests(again) == _digests(dataset_book)
    write_demo_dataset(again, n_positions=3_000, seed=3, chunk=4_000)  # a smaller book: no stale parts
    assert sorted(p.name for p in (again / "positions").rglob("*.parquet")) == ["part-00000.parquet"] * 5
    assert gpuskew.load_book(again).positions.num_rows == 3_000


def test_one_chunk_dataset_holds_the_demo_book_and_gives_its_bits(tmp_path):
    write_demo_dataset(tmp_path / "ds", n_positions=5_000, seed=9)
    ds_book = gpuskew.load_book(tmp_path / "ds")
    book = gpuskew.load_book(make_demo_book(5_000, seed=9))
    key = ["instrument", "quantity", "account"]
    a = ds_book.positions.select(key).cast(pa.schema([("instrument", pa.string()), ("quantity", pa.float64()),
                                                      ("account", pa.string())]))
    b = book.positions.select(key).cast(a.schema)
    assert sorted(zip(*a.to_pydict().values())) == sorted(zip(*b.to_pydict().values()))
    r1 = gpuskew.compute(ds_book, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk,book"], positions_table=False)
    r2 = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk,book"], positions_table=False)
    assert r1.exposures.equals(r2.exposures)  # each group's positions keep their order: the same tiles


def test_dataset_book_is_its_files_in_order(dataset_book, tmp_path):
    """One process reads a dataset as the concatenation of its files in path order: the same book as
    those rows in one file (same exposures, bit for bit)."""
    ds = list_dataset(dataset_book / "positions")
    table = pa.concat_tables([pq.read_table(f.path) for f in ds.files])
    one = tmp_path / "one"
    shutil.copytree(dataset_book, one, ignore=shutil.ignore_patterns("positions"))
    pq.write_table(table, one / "positions.parquet")
    b1, b2 = gpuskew.load_book(dataset_book), gpuskew.load_book(one)
    assert b1.sources["positions"] == str(dataset_book / "positions")
    assert b1.input_hashes["positions"] == dataset_hash(ds) != b2.input_hashes["positions"]
    r1 = gpuskew.compute(b1, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk", "account"])
    r2 = gpuskew.compute(b2, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk", "account"])
    assert r1.exposures.equals(r2.exposures)
    assert r1.positions.column("instrument").to_pylist() == table.column("instrument").to_pylist()


def test_listing_skips_hidden_files_and_orders_by_relative_path(tmp_path):
    folder = tmp_path / "positions"
    t = pa.table({"instrument": ["BTC"], "quantity": [1.0]})
    for rel in ("b/2.parquet", "a/10.parquet", "a/9.parquet", "_SUCCESS.parquet", ".tmp.parquet",
                "a/_common_metadata.parquet"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, folder / rel)
    (folder / "notes.txt").write_text("x")
    assert [f.relative for f in list_dataset(folder).files] == ["a/10.parquet", "a/9.parquet", "b/2.parquet"]


def test_files_with_other_columns_are_refused(tmp_path):
    folder = tmp_path / "positions"
    folder.mkdir()
    pq.write_table(pa.table({"instrument": ["BTC"], "quantity": [1.0], "desk": ["a"]}), folder / "a.parquet")
    pq.write_table(pa.table({"instrument": ["BTC"], "quantity": [1.0], "book": ["x"]}), folder / "b.parquet")
    with pytest.raises(InvalidInput) as err:
        list_dataset(folder)
    assert err.value.source.endswith("b.parquet") and err.value.column == "book" and "a.parquet" in err.value.rule
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InvalidInput, match="is a folder holding no Parquet file"):
        list_dataset(empty)


def test_positions_as_a_file_and_a_folder_is_refused(dataset_book, tmp_path):
    both = tmp_path / "both"
    shutil.copytree(dataset_book, both)
    shutil.copy(next((dataset_book / "positions").rglob("*.parquet")), both / "positions.parquet")
    with pytest.raises(InvalidInput, match="as a file .* and as a folder"):
        positions_dataset(both)


def test_hive_folders_other_than_underlying_are_tag_columns(tmp_path):
    write_demo_book(tmp_path / "b", n_positions=300, seed=1)
    pos = pq.read_table(tmp_path / "b" / "positions.parquet")
    (tmp_path / "b" / "positions.parquet").unlink()
    for desk in ("options-mm", "delta-one"):
        part = pos.filter(pa.compute.equal(pos["desk"], desk)).drop_columns(["desk"])
        folder = tmp_path / "b" / "positions" / f"desk={desk}"
        folder.mkdir(parents=True)
        pq.write_table(part, folder / "part-0.parquet")
    book = gpuskew.load_book(tmp_path / "b")
    assert "desk" in book.tags and set(book.positions["desk"].to_pylist()) == {"options-mm", "delta-one"}
    assert book.positions["desk"].to_pylist()[0] == "delta-one"  # desk=delta-one sorts first


def test_each_file_is_validated_with_its_own_rows(dataset_book, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(dataset_book, bad)
    part = bad / "positions" / "underlying=SOL" / "part-00001.parquet"
    t = pq.read_table(part)
    q = t["quantity"].to_numpy().copy()
    q[[0, 7]] = np.nan
    pq.write_table(t.set_column(t.schema.get_field_index("quantity"), "quantity", pa.array(q)), part)
    with pytest.raises(InvalidInput) as err:
        gpuskew.load_book(bad)
    assert err.value.source == str(part.resolve()) and err.value.column == "quantity"
    assert err.value.row_numbers == [1, 8] and err.value.n_bad == 2


def test_a_row_of_another_underlying_under_underlying_folder_is_refused(dataset_book, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(dataset_book, bad)
    eth = pq.read_table(bad / "positions" / "underlying=ETH" / "part-00000.parquet").slice(0, 2)
    btc_file = bad / "positions" / "underlying=BTC" / "part-00000.parquet"
    pq.write_table(pa.concat_tables([pq.read_table(btc_file).slice(0, 4), eth]), btc_file)
    with pytest.raises(InvalidInput) as err:
        gpuskew.load_book(bad)
    assert err.value.source == str(btc_file.resolve()) and err.value.row_numbers == [5, 6]
    assert "underlying=BTC" in err.value.rule


def test_read_rows_reads_the_row_groups_of_a_range(tmp_path):
    t = make_demo_book(5_000, seed=2)["positions"]
    path = tmp_path / "p.parquet"
    pq.write_table(t, path, row_group_size=700)
    f = list_dataset(tmp_path).files[0]
    assert f.row_groups == (700,) * 7 + (100,)
    for a, b in ((0, 5_000), (650, 760), (700, 1400), (4_999, 5_000), (3, 3)):
        got = read_rows(f, a, b)
        assert got.num_rows == b - a
        assert got["instrument"].to_pylist() == t["instrument"].to_pylist()[a:b]
        assert pa.types.is_dictionary(got["desk"].type)  # tags read as dictionaries


def test_content_hash_is_of_the_files_not_where_they_are(dataset_book, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(dataset_book, copy)
    h = dataset_hash(list_dataset(dataset_book / "positions"))
    assert dataset_hash(list_dataset(copy / "positions")) == h
    part = next((copy / "positions").rglob("*.parquet"))
    t = pq.read_table(part)
    pq.write_table(t.slice(1), part)
    assert dataset_hash(list_dataset(copy / "positions")) != h


def test_cli_demo_partitioned_then_run_one_process(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["demo", str(tmp_path / "d"), "--demo-size", "2500", "--partitioned"])
    assert res.exit_code == 0, res.output
    assert "positions: " in res.stdout and (tmp_path / "d" / "positions" / "underlying=BTC").is_dir()
    res = runner.invoke(main, ["run", str(tmp_path / "d"), "--out", str(tmp_path / "o"), "--as-of",
                               "2026-11-20T08:00:00Z", "--json"])
    assert res.exit_code == 0, res.output
    assert pq.read_table(tmp_path / "o" / "positions.parquet").num_rows == 2500
    res = runner.invoke(main, ["demo", str(tmp_path / "e"), "--partitioned", "--format", "csv"])
    assert res.exit_code == 2 and "--partitioned writes Parquet" in res.output


def test_publish_run_replaces_a_file_by_a_folder_and_back(tmp_path):
    out = tmp_path / "out"
    table = pa.table({"x": [1.0, 2.0]})

    def folder_writer(path: Path) -> None:
        path.mkdir()
        write_parquet(table, path / "part-00000.parquet")

    publish_run(out, {"positions.parquet": lambda p: write_parquet(table, p),
                      "summary.json": lambda p: p.write_text("{}")}, overwrite=False)
    publish_run(out, {"positions.parquet": folder_writer, "summary.json": lambda p: p.write_text("{}")},
                overwrite=True)
    assert (out / "positions.parquet").is_dir() and pq.read_table(out / "positions.parquet").equals(table)
    publish_run(out, {"positions.parquet": folder_writer, "summary.json": lambda p: p.write_text("{}")},
                overwrite=True)  # a folder over a folder
    publish_run(out, {"positions.parquet": lambda p: write_parquet(table, p),
                      "summary.json": lambda p: p.write_text("{}")}, overwrite=True)
    assert (out / "positions.parquet").is_file()
    publish_run(out, {"positions.parquet": folder_writer, "summary.json": lambda p: p.write_text("{}")},
                overwrite=True)
    publish_run(out, {"summary.json": lambda p: p.write_text("{}")}, overwrite=True, stale=["positions.parquet"])
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]  # a stale folder output removed


def test_book_file_hashes_are_the_one_file_sha256(dataset_book, tmp_path):
    """A book read from files hashes each file with gpuskew.io.dataset.file_sha256 (one helper for
    one-file books, dataset books and sharded runs), and the book module keeps no copy of it."""
    import gpuskew.core.book as book_module
    from gpuskew.io.dataset import file_sha256

    assert not hasattr(book_module, "_file_sha256")
    write_demo_book(tmp_path / "b", n_positions=200, seed=1)
    book = gpuskew.load_book(tmp_path / "b")
    assert book.input_hashes == {n: file_sha256(p) for n, p in book.sources.items()}
    ds = gpuskew.load_book(dataset_book)
    assert {n: ds.input_hashes[n] for n in ("instruments", "underlyings", "quotes")} == \
        {n: file_sha256(ds.sources[n]) for n in ("instruments", "underlyings", "quotes")}


def test_a_corrupt_dataset_file_reads_like_a_corrupt_book_file(tmp_path):
    """A dataset file that is not Parquet raises the error read_table raises for a one-file book
    (one helper: same rule text), naming the file."""
    from gpuskew.io import read_table

    folder = tmp_path / "positions"
    folder.mkdir()
    bad = folder / "part-0.parquet"
    bad.write_bytes(b"not parquet at all\n" * 10)
    with pytest.raises(InvalidInput) as from_dataset:
        list_dataset(folder)
    with pytest.raises(InvalidInput) as from_file:
        read_table(bad)
    assert from_dataset.value.source == str(bad)
    assert from_dataset.value.rule == from_file.value.rule
    assert from_dataset.value.rule.startswith("unreadable or corrupt file (parquet): ")
