"""`gpuskew run --positions parquet|arrow|none`, and the positions file written in the background
while the step goes on: same bytes as a plain write; nothing published when the step fails."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.synthetic.demo import write_demo_book

AS_OF = "2026-11-20T08:00:00Z"


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    folder = tmp_path_factory.mktemp("book")
    write_demo_book(folder, n_positions=700, seed=4)
    return folder


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_positions_formats(book, tmp_path):
    for fmt in ("parquet", "arrow", "none"):
        res = _run("run", book, "--out", tmp_path / fmt, "--as-of", AS_OF, "--group-by", "desk", "--positions", fmt)
        assert res.exit_code == 0, res.output
    parquet = pq.read_table(tmp_path / "parquet" / "positions.parquet")
    with pa.memory_map(str(tmp_path / "arrow" / "positions.arrow")) as source:
        arrow = ipc.open_file(source).read_all()
    assert arrow.equals(parquet.cast(arrow.schema))
    assert not list((tmp_path / "none").glob("positions.*"))
    ex = {fmt: (tmp_path / fmt / "exposures.parquet").read_bytes() for fmt in ("parquet", "arrow", "none")}
    assert ex["parquet"] == ex["arrow"] == ex["none"]
    # switching format over an existing run folder leaves no stale positions file of the other format
    assert _run("run", book, "--out", tmp_path / "arrow", "--as-of", AS_OF, "--overwrite", "--positions",
                "parquet").exit_code == 0
    assert sorted(p.name for p in (tmp_path / "arrow").glob("positions.*")) == ["positions.parquet"]


def test_background_write_gives_the_same_bytes(book, tmp_path):
    """positions.parquet written in a thread during adherence = written by publish_run afterwards."""
    import gpuskew
    from gpuskew.policy.limits import example_limits_path, load_limits
    from gpuskew.session import Session

    assert _run("run", book, "--out", tmp_path / "cli", "--as-of", AS_OF, "--limits", example_limits_path()).exit_code in (0, 3)
    step = Session(gpuskew.load_book(book), load_limits(example_limits_path()), "cpu").step(AS_OF)
    step.write(tmp_path / "api")
    for name in ("positions.parquet", "exposures.parquet", "adherence.parquet", "hedges.parquet"):
        assert (tmp_path / "cli" / name).read_bytes() == (tmp_path / "api" / name).read_bytes(), name


def test_a_failing_step_publishes_nothing_even_with_a_background_write(book, tmp_path, monkeypatch):
    import gpuskew.session as session

    def boom(*args, **kwargs):
        raise RuntimeError("adherence failed")

    monkeypatch.setattr(session.Session, "adhere", boom)
    from gpuskew.policy.limits import example_limits_path

    res = CliRunner().invoke(main, ["run", str(book), "--out", str(tmp_path / "o"), "--as-of", AS_OF,
                                    "--limits", str(example_limits_path())])
    assert res.exit_code == 1 and "adherence failed" in res.output
    assert not (tmp_path / "o").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_table_hash_streams_the_ipc_bytes():
    """The content hash of an in-memory table is sha256 of its IPC stream, fed piece by piece
    (never holding the stream whole: a 10^7-row book would need 1.4 GiB more at peak)."""
    import hashlib

    import pyarrow as pa
    import pyarrow.ipc as ipc

    from gpuskew.core.book import _table_hash
    from gpuskew.synthetic.demo import make_demo_book

    table = make_demo_book(3000, seed=5)["positions"]
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, table.schema.remove_metadata()) as writer:
        writer.write_table(table.replace_schema_metadata(None))
    whole = "sha256:" + hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
    assert _table_hash(table) == whole
    assert _table_hash(table.slice(1)) != whole
