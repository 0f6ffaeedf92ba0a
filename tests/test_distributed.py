"""Sharded runs on a real Dask LocalCluster (2 worker processes, one thread each, 127.0.0.1): the same
bits as one process, a worker killed mid-run, a bad row in one shard; shards cut inside files (a
process pool, small reduction chunk, in a subprocess); sweeps in blocks."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import gpuskew
from gpuskew.cli import main
from gpuskew.policy.limits import example_limits_path, load_limits
from gpuskew.session import Session
from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset

sys.path.insert(0, str(Path(__file__).parent))
from distributed_helpers import KillOnce, data_file_hashes, same_positions  # noqa: E402

distributed = pytest.importorskip("distributed", reason="the distributed extra: pip install 'gpuskew[distributed]'")

AS_OF = "2026-11-20T08:00:00Z"
LEVELS = ["desk", "desk,book"]


@pytest.fixture(scope="module")
def client():
    """A real LocalCluster: 2 worker processes with one thread each, on 127.0.0.1; closed at teardown."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def book(tmp_path_factory) -> Path:
    """A partitioned demo book (positions/underlying=X/part-00000.parquet): 5 files, 5 shards."""
    folder = tmp_path_factory.mktemp("dataset_book")
    write_demo_dataset(folder, n_positions=4000, seed=11)
    return folder


def _one_process(book: Path, out: Path):
    limits_path = example_limits_path()
    import hashlib

    session = Session(gpuskew.load_book(book), load_limits(limits_path), "cpu", None, LEVELS,
                      limits_hash="sha256:" + hashlib.sha256(limits_path.read_bytes()).hexdigest(),
                      limits_source=str(limits_path))
    step = session.step(AS_OF)
    step.write(out)
    return step


@pytest.fixture(scope="module")
def reference(book, tmp_path_factory):
    """The one-process run of the book (Session.step, every file of the dataset read here)."""
    out = tmp_path_factory.mktemp("reference") / "run"
    return _one_process(book, out), out


def test_sharded_run_on_the_cluster_equals_one_process_bitwise(client, book, reference, tmp_path):
    from gpuskew.distributed import run_sharded

    one, one_out = reference
    out = tmp_path / "run"
    step = run_sharded(book, client, out, as_of=AS_OF, backend="cpu", group_by=LEVELS,
                       limits=example_limits_path(), shard_positions=1)
    info = step.summary["distributed"]
    assert info["shards"] == 5 and info["worker_processes"] == 2  # one shard per underlying, both workers
    assert data_file_hashes(out) == data_file_hashes(one_out) and len(data_file_hashes(out)) == 4
    assert step.run_id == one.run_id and step.summary["counts"] == one.summary["counts"]
    assert step.summary["totals"] == one.summary["totals"] and step.summary["adherence"] == one.summary["adherence"]
    parts = sorted(p.name for p in (out / "positions.parquet").iterdir())
    assert parts == [f"part-{k:05d}.parquet" for k in range(5)]
    assert same_positions(out / "positions.parquet", one_out / "positions.parquet")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left


def test_cli_run_with_cluster_address(client, book, reference, tmp_path):
    """`gpuskew run BOOK --cluster tcp://HOST:PORT` (an existing scheduler): exit 0, the one JSON line,
    the same data files as one process."""
    _, one_out = reference
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["run", str(book), "--out", str(out), "--as-of", AS_OF, "--backend", "cpu",
                                    "--group-by", "desk", "--group-by", "desk,book", "--limits",
                                    str(example_limits_path()), "--cluster", client.scheduler.address, "--json"],
                             env={"GPUSKEW_SHARD_POSITIONS": "1"})
    assert res.exit_code == 0, res.output
    line = json.loads(res.stdout.strip())
    assert line["status"] == "ok" and line["positions"] == 4000
    assert data_file_hashes(out) == data_file_hashes(one_out)
    assert json.loads((out / "summary.json").read_text())["distributed"]["shards"] == 5


def test_worker_killed_mid_run_gives_the_same_bits(client, book, reference, tmp_path):
    """The worker running shard 2 dies (SIGKILL) after computing it, before returning: Dask runs the
    task again on a live worker, and the run's files are bit for bit those of one process."""
    from gpuskew.distributed import open_cluster, open_sharded_book, sharded_step

    _, one_out = reference
    marker = tmp_path / "killed"
    out = tmp_path / "run"
    executor = KillOnce(client.get_executor(pure=False), marker, index=2)
    sharded = open_sharded_book(book)
    limits_path = example_limits_path()
    import hashlib

    session = Session(sharded.book, load_limits(limits_path), "cpu", None, LEVELS,
                      limits_hash="sha256:" + hashlib.sha256(limits_path.read_bytes()).hexdigest(),
                      limits_source=str(limits_path))
    with open_cluster(executor) as cluster:
        step = sharded_step(session, sharded, cluster, AS_OF, positions_dir=tmp_path / "parts", shard_positions=1)
    step.write(out)
    assert not (tmp_path / "parts").exists()  # moved into the run folder
    killed = int(marker.read_text())
    assert step.info.results[2].worker.rsplit(":", 1)[1] != str(killed)  # re-run in another process
    assert data_file_hashes(out) == data_file_hashes(one_out)
    assert same_positions(out / "positions.parquet", one_out / "positions.parquet")
    client.wait_for_workers(2, timeout=60)  # the nanny restarts the killed worker


def _bad_copy(book: Path, tmp_path: Path) -> Path:
    bad = tmp_path / "bad_book"
    shutil.copytree(book, bad)
    return bad


def _cli(book: Path, out: Path, *extra: str):
    return CliRunner().invoke(main, ["run", str(book), "--out", str(out), "--as-of", AS_OF, "--backend", "cpu",
                                     *extra], env={"GPUSKEW_SHARD_POSITIONS": "1"})


def test_bad_row_in_one_shard_exits_2_with_the_one_process_message(client, book, tmp_path):
    bad = _bad_copy(book, tmp_path)
    part = bad / "positions" / "underlying=ETH" / "part-00000.parquet"
    table = pq.read_table(part)
    q = table["quantity"].to_numpy().copy()
    q[[2, 5]] = [np.nan, np.inf]
    pq.write_table(table.set_column(table.schema.get_field_index("quantity"), "quantity", pa.array(q)), part)
    local = _cli(bad, tmp_path / "local")
    remote = _cli(bad, tmp_path / "remote", "--cluster", client.scheduler.address)
    assert local.exit_code == remote.exit_code == 2
    assert local.stderr == remote.stderr
    assert str(part) in remote.stderr and "column 'quantity'" in remote.stderr and "rows 3, 6" in remote.stderr
    assert not (tmp_path / "remote").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_row_of_another_underlying_in_a_partition_folder_is_refused(client, book, tmp_path):
    """A shard may cut the book between underlying=X folders only because every row below one holds
    an instrument of X: a BTC position filed under underlying=ETH is invalid input, here and there."""
    bad = _bad_copy(book, tmp_path)
    btc = pq.read_table(bad / "positions" / "underlying=BTC" / "part-00000.parquet").slice(0, 3)
    stray = bad / "positions" / "underlying=ETH" / "part-00001.parquet"
    pq.write_table(btc, stray)
    local = _cli(bad, tmp_path / "local")
    remote = _cli(bad, tmp_path / "remote", "--cluster", client.scheduler.address)
    assert local.exit_code == remote.exit_code == 2 and local.stderr == remote.stderr
    assert str(stray) in remote.stderr and "underlying=ETH" in remote.stderr and "rows 1, 2, 3" in remote.stderr


def test_sweep_blocks_scatter_once_and_come_back_in_order(client):
    from distributed_helpers import block_squares

    from gpuskew.distributed import block_bounds, block_size, map_blocks, open_cluster

    shared = np.random.default_rng(1).random(10_000)
    bounds = block_bounds(shared.size, block_size(shared.size, 2, seconds_per_item=1e-4))
    assert len(bounds) == 8 and bounds[0][0] == 0 and bounds[-1][1] == shared.size
    with open_cluster(client) as cluster:
        assert isinstance(cluster.share(shared), distributed.Future)
        blocks = map_blocks(cluster, block_squares, shared, bounds)
    np.testing.assert_array_equal(np.concatenate(blocks), block_squares(shared, 0, shared.size))


def test_shards_cut_inside_files_on_a_process_pool(tmp_path):
    """With a small reduction chunk (64 positions, tile 16: set before the kernels compile, hence a
    subprocess), 3,000-position books span 47 chunks: shards of 2 chunks cut inside files. A spawned
    ProcessPoolExecutor (any concurrent.futures.Executor is a cluster) gives the one-process bits for a
    one-file book and a dataset, and a bad row in two shards of one file gives the one-process
    message (the file validated again, whole)."""
    env = dict(os.environ, GPUSKEW_REDUCE_TILE="16", GPUSKEW_REDUCE_CHUNK="64",
               PYTHONPATH=os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(Path(__file__).parent / "distributed_helpers.py"), str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["chunk"] == 64
    for name in ("file", "dataset"):
        r = report[name]
        assert r["same_data"] and r["same_positions"] and r["same_run_id"], r
        assert r["shards"] >= 20 and r["split_files"] >= 20 and r["processes"] == 2, r
    local, sharded = report["bad"]
    assert local == sharded and "rows 1501, 2901" in sharded


@pytest.mark.parametrize("fmt", ["arrow", "none"])
def test_positions_formats_on_the_cluster(client, book, reference, tmp_path, fmt):
    """--positions arrow: the shards write Arrow IPC parts (positions.arrow/ as a dataset); none: no
    positions; the other files are the one-process files either way."""
    import pyarrow.dataset as pads

    _, one_out = reference
    out = tmp_path / "run"
    res = _cli(book, out, "--group-by", "desk", "--group-by", "desk,book", "--limits", str(example_limits_path()),
               "--positions", fmt, "--cluster", client.scheduler.address)
    assert res.exit_code == 0, res.output
    assert data_file_hashes(out) == data_file_hashes(one_out)
    names = sorted(p.name for p in out.iterdir())
    if fmt == "none":
        assert not [n for n in names if n.startswith("positions")]
        return
    assert "positions.arrow" in names and (out / "positions.arrow").is_dir()
    parts = pads.dataset(out / "positions.arrow", format="ipc").to_table()
    one = pq.read_table(one_out / "positions.parquet")
    from distributed_helpers import decoded

    assert decoded(parts) == decoded(one)


def test_sharded_scenarios_on_the_cluster_equal_one_process_bitwise(client, book, tmp_path):
    """The risk matrix over the shards: scenarios.parquet and risk_vectors.parquet byte for byte
    those of one process (the finest level summed over the shards by the fixed tree, coarser levels
    from its group sums, risk vectors of every instrument held)."""
    from gpuskew.distributed import open_cluster, open_sharded_book
    from gpuskew.distributed.scenarios import run_scenarios_sharded
    from gpuskew.io import write_parquet
    from gpuskew.scenarios.job import run_scenarios
    from gpuskew.scenarios.params import load_scenario_config

    config = load_scenario_config(None)
    one = run_scenarios(gpuskew.load_book(book), as_of=AS_OF, backend="cpu", group_by=LEVELS, config=config)
    with open_cluster(client) as handle:
        sharded = run_scenarios_sharded(open_sharded_book(book), handle, config, as_of=AS_OF, backend="cpu",
                                        group_by=LEVELS, shard_positions=1)
    for name in ("scenarios", "risk_vectors"):
        write_parquet(getattr(one, name), tmp_path / f"one-{name}.parquet")
        write_parquet(getattr(sharded, name), tmp_path / f"sharded-{name}.parquet")
        assert (tmp_path / f"one-{name}.parquet").read_bytes() == (tmp_path / f"sharded-{name}.parquet").read_bytes()
    assert sharded.summary["worst"] == one.summary["worst"]
    assert sharded.summary["counts"] == one.summary["counts"]
    assert sharded.summary["distributed"]["shards"] >= 2


def test_scenarios_cli_on_the_cluster(client, book, tmp_path):
    runner = CliRunner()
    args = ["scenarios", str(book), "--as-of", AS_OF, "--group-by", "desk", "--backend", "cpu", "--json"]
    one = runner.invoke(main, args + ["--out", str(tmp_path / "one")], catch_exceptions=False)
    two = runner.invoke(main, args + ["--out", str(tmp_path / "two"), "--cluster", client.scheduler.address],
                        catch_exceptions=False)
    assert one.exit_code == two.exit_code == 0, two.output
    for name in ("scenarios.parquet", "risk_vectors.parquet"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    assert json.loads(two.stdout)["worst"] == json.loads(one.stdout)["worst"]
