"""The --cluster seam without a cluster: spec parsing, errors (exit 2), any Executor as a cluster, the
sharded step run here, sweep block sizes, and Dask never imported by `import gpuskew` or a plain run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from gpuskew.cli import main
from gpuskew.distributed import block_bounds, block_size, open_cluster, parse_spec
from gpuskew.errors import InvalidConfig


def test_specs():
    assert parse_spec(None) == ("none", None) and parse_spec(" none ") == ("none", None)
    assert parse_spec("local:3") == ("local", 3)
    assert parse_spec("tcp://10.0.0.5:8786") == ("address", "tcp://10.0.0.5:8786")
    for bad in ("local:0", "local", "local:x", "8786", "http://host:8786"):
        with pytest.raises(InvalidConfig):
            parse_spec(bad)


def test_bad_cluster_spec_exits_2(tmp_path):
    (tmp_path / "book").mkdir()
    res = CliRunner().invoke(main, ["run", str(tmp_path / "book"), "--out", str(tmp_path / "o"), "--cluster",
                                    "locale:2", "--json"])
    assert res.exit_code == 2 and "--cluster" in res.stderr and "local:N" in res.stderr
    assert '"status":"error"' in res.stdout
    res = CliRunner().invoke(main, ["run", "--demo", "--out", str(tmp_path / "o"), "--cluster", "local:2"])
    assert res.exit_code == 2 and "does not take --demo" in res.output


def test_any_executor_is_a_cluster_and_none_runs_here():
    with ThreadPoolExecutor(3) as pool, open_cluster(pool) as cluster:
        assert cluster.executor is pool and cluster.worker_count() == 3 and cluster.share(5) == 5
    with open_cluster(None) as cluster:
        assert cluster.executor is None and cluster.worker_count() == 1
    with pytest.raises(TypeError):
        with open_cluster(3.5):  # type: ignore[arg-type]
            pass


def test_sharded_step_without_an_executor_equals_one_process(tmp_path):
    """The shards one after the other in this process (bounded memory, no Dask): the same bits."""
    import gpuskew
    from gpuskew.distributed import run_sharded
    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset

    write_demo_dataset(tmp_path / "b", n_positions=3000, seed=8)
    step = run_sharded(tmp_path / "b", None, as_of=DEMO_AS_OF, backend="cpu", group_by=["account"],
                       shard_positions=1)
    one = gpuskew.compute(gpuskew.load_book(tmp_path / "b"), as_of=DEMO_AS_OF, backend="cpu",
                          group_by=["account"], positions_table=False)
    assert step.summary["distributed"]["shards"] == 5 and step.exposures.equals(one.exposures)
    assert step.summary["counts"]["positions"] == 3000 and step.summary["totals"] == one.summary["totals"]


def test_block_sizes_keep_tasks_well_above_the_overhead():
    # 10^5 items of 1 us: 100 x 1 ms of overhead needs 10^5 items per block -> one block
    assert block_size(100_000, 8, 1e-6) == 100_000
    # slow items: spread over 4 tasks per worker
    assert block_size(1000, 2, 1.0) == 125
    assert block_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)] and block_size(0, 2, 1.0) == 1


def test_import_gpuskew_and_a_plain_run_do_not_import_dask(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        import gpuskew, gpuskew.cli
        from click.testing import CliRunner
        res = CliRunner().invoke(gpuskew.cli.main, ["run", "--demo", "--demo-size", "200", "--out",
                                                    {str(tmp_path / 'o')!r}])
        assert res.exit_code == 0, res.output
        bad = sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed"))
        print(bad)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_extra_rows_are_summed_over_the_shards_as_one_process(tmp_path):
    """The seam for other per-position values (scenario P&L): rows computed on the shards, summed per
    group by the same tree as one process's plan over the whole book, bit for bit."""
    sys.path.insert(0, str(__import__("pathlib").Path(__file__).parent))
    import numpy as np
    from distributed_helpers import extra_rows

    import gpuskew
    from gpuskew.core.backend import CpuBackend
    from gpuskew.core.engine import price_positions
    from gpuskew.core.groups import group_positions
    from gpuskew.core.reduction import plan_segmented_sum
    from gpuskew.distributed import open_sharded_book, sharded_step
    from gpuskew.session import Session
    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset

    write_demo_dataset(tmp_path / "b", n_positions=4000, seed=12)
    sharded = open_sharded_book(tmp_path / "b")
    session = Session(sharded.book, None, "cpu", None, ["desk,book"])
    with ThreadPoolExecutor(2) as pool, open_cluster(pool) as cluster:
        step = sharded_step(session, sharded, cluster, DEMO_AS_OF, shard_positions=1, extra=(extra_rows, 3.0))
    assert step.summary["distributed"]["shards"] == 5 and len(step.extra_sums) == 2
    book = gpuskew.load_book(tmp_path / "b")
    backend = CpuBackend("t")
    priced = price_positions(book, DEMO_AS_OF, backend)
    rows = extra_rows(book, priced, backend, 3.0)
    flat = book.flat()
    for level, reduced in zip([(), ("desk", "book")], step.extra_sums):
        g = group_positions(flat.underlying_code, flat.underlying_names, book.positions, level)
        one = backend.segmented_sum(rows, plan_segmented_sum(g.codes, g.n_groups))
        assert reduced.grouping.keys == g.keys
        np.testing.assert_array_equal(reduced.sums.view(np.int64), one.view(np.int64))


def test_non_finite_results_in_two_shards_give_the_one_process_message(tmp_path):
    """Positions whose measures overflow, in two shards: the coordinator merges the shards' reports
    into the message one process gives (the first measure, the first rows of the book, the count)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    import gpuskew
    from gpuskew.distributed import run_sharded
    from gpuskew.errors import InvalidInput
    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset

    write_demo_dataset(tmp_path / "b", n_positions=2000, seed=3)
    for und, rows in (("ETH", [4, 9]), ("SOL", [1])):
        part = tmp_path / "b" / "positions" / f"underlying={und}" / "part-00000.parquet"
        t = pq.read_table(part)
        q = t["quantity"].to_numpy().copy()
        q[rows] = 1e307
        pq.write_table(t.set_column(t.schema.get_field_index("quantity"), "quantity", pa.array(q)), part)
    messages = []
    for run in (lambda: gpuskew.compute(gpuskew.load_book(tmp_path / "b"), as_of=DEMO_AS_OF, backend="cpu"),
                lambda: run_sharded(tmp_path / "b", None, as_of=DEMO_AS_OF, backend="cpu", shard_positions=1)):
        with pytest.raises(InvalidInput) as err:
            run()
        messages.append(str(err.value))
    assert messages[0] == messages[1] and "non-finite" in messages[0]
    assert len(messages[0].split("; rows ")[1].split(" (")[0].split(", ")) == 3  # ETH's two and SOL's one


@pytest.mark.parametrize("command", ["backtest", "calibrate", "scenarios"])
def test_bad_cluster_spec_is_refused_before_any_work(tmp_path, monkeypatch, command):
    """--cluster is checked once, while the options are read: a job that would first spend minutes on
    its greeks path (backtest, calibrate) exits 2 before it reads anything."""
    import gpuskew.core.book

    def no_work(*_a, **_k):
        raise AssertionError("the book was read before --cluster was checked")

    monkeypatch.setattr(gpuskew.core.book, "load_book", no_work)
    extra = {"backtest": ["--policies", str(tmp_path / "p.toml"), "--synthetic", str(tmp_path / "m.toml")],
             "calibrate": ["--limits", str(tmp_path / "l.toml"), "--synthetic", str(tmp_path / "m.toml")],
             "scenarios": []}[command]
    res = CliRunner().invoke(main, [command, str(tmp_path / "book"), "--out", str(tmp_path / "o"), *extra,
                                    "--cluster", "bogus:x"])
    assert res.exit_code == 2, res.output
    assert "--cluster" in res.stderr and "local:N" in res.stderr
    assert not (tmp_path / "o").exists()


def test_cluster_spec_is_cleaned_and_none_means_one_process(tmp_path):
    from gpuskew.cli.options import _cluster_spec

    assert _cluster_spec(None, None, None) is None and _cluster_spec(None, None, " None ") is None  # type: ignore[arg-type]
    assert _cluster_spec(None, None, " local:2 ") == "local:2"  # type: ignore[arg-type]


def test_cluster_without_dask_exits_2_with_the_extra_to_install(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "distributed" else real(name, *a))
    res = CliRunner().invoke(main, ["run", str(tmp_path / "book"), "--out", str(tmp_path / "o"), "--cluster",
                                    "local:2"])
    assert res.exit_code == 2 and "gpuskew[distributed]" in res.stderr


def test_option_errors_print_the_json_line_when_json_is_asked(tmp_path, monkeypatch):
    """A usage error found while the options are read prints the JSON error line too, whether --json
    comes before or after the bad option, or from GPUSKEW_JSON."""
    for args in (["--json", "--backend", "bogus"], ["--backend", "bogus", "--json"]):
        res = CliRunner().invoke(main, ["run", "--demo", "--out", str(tmp_path / "o"), *args])
        assert res.exit_code == 2 and '"status":"error"' in res.stdout and '"exit_code":2' in res.stdout
    monkeypatch.setenv("GPUSKEW_JSON", "1")
    res = CliRunner().invoke(main, ["scenarios", str(tmp_path / "b"), "--out", str(tmp_path / "o"), "--cluster", "x"])
    assert res.exit_code == 2 and '"status":"error"' in res.stdout
    monkeypatch.delenv("GPUSKEW_JSON")
    res = CliRunner().invoke(main, ["run", "--demo", "--out", str(tmp_path / "o"), "--backend", "bogus"])
    assert res.exit_code == 2 and res.stdout == ""
