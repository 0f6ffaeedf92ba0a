"""The backtest's policy sweep in blocks of policies on a real LocalCluster (2 processes x 1 thread):
the greeks path scattered once, the same SweepResult as one process, bit for bit, and the same
results table. Skipped where the backtest job is not installed."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gpuskew.backtest.sweep", reason="the backtest job (issue 9) is not in this tree")
distributed = pytest.importorskip("distributed", reason="the distributed extra: pip install 'gpuskew[distributed]'")
sys.path.insert(0, str(Path(__file__).parent))
from backtest_helpers import bs_book, gbm_market, policies  # noqa: E402


@pytest.fixture(scope="module")
def client():
    """A real LocalCluster: 2 worker processes with one thread each, on 127.0.0.1; closed at teardown."""
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as c:
        yield c


def test_policy_blocks_on_the_cluster_equal_one_process(client):
    from gpuskew.backtest import outputs
    from gpuskew.backtest.greeks_path import compute_greeks_path
    from gpuskew.backtest.run import hedge_resolver
    from gpuskew.backtest.sweep import run_sweep
    from gpuskew.distributed import open_cluster
    from gpuskew.distributed.sweep import run_sweep_sharded
    from gpuskew.policy.grid import expand_policies

    book = bs_book(quantity=-50.0)
    market = gbm_market(book, steps=48, step_seconds=1800.0, paths=64, seed=5)
    greeks = compute_greeks_path(book, market, [], "cpu", full_every=4)
    bands = [{"model": "fixed", "coins": w} for w in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0)]
    grid = expand_policies(policies(bands, {"mode": ["to_band", "to_target"]}, fee=0.0005, half_spread=0.0001,
                                    lot_size=0.001))
    resolve = hedge_resolver(book, market.start)
    one = run_sweep(greeks, grid, resolve, "cpu")
    with open_cluster(client) as cluster:
        sharded = run_sweep_sharded(greeks, grid, resolve, "cpu", cluster=cluster)
    assert len(one.policies) == 14 and sharded.backend["blocks"] >= 2
    np.testing.assert_array_equal(sharded.task.view(np.int64), one.task.view(np.int64))
    assert outputs.results_table(sharded).equals(outputs.results_table(one))


MARKET = """
[market]
steps = 40
step_seconds = 300
paths = 5
seed = 9

[underlying.BTC]
model = "gbm"
"""


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from click.testing import CliRunner

    from gpuskew.cli import main
    from gpuskew.policy.limits import example_limits_path

    d = tmp_path_factory.mktemp("sweep")
    assert CliRunner().invoke(main, ["demo", str(d / "book"), "--demo-size", "300", "--demo-seed", "4"]).exit_code == 0
    text = example_limits_path().read_text()
    (d / "current.toml").write_text(text)
    (d / "policies.toml").write_text(text.replace(
        'band = { model = "var", budget_usd = 5_000_000, confidence = 0.99, horizon_hours = 24, floor_coins = 10 }',
        'band = { model = "var", budget_usd = [1_000_000, 2_000_000, 5_000_000, 8_000_000], confidence = 0.99, '
        'horizon_hours = 24, floor_coins = 10 }'))
    (d / "market.toml").write_text(MARKET)
    return d


def _same(a: Path, b: Path, names) -> None:
    for name in names:
        if name.endswith(".parquet"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        else:  # text: all but the line stamped with the wall-clock time of writing
            lines = [[ln for ln in (p / name).read_text().splitlines() if not ln.startswith("# Proposed by")]
                     for p in (a, b)]
            assert lines[0] == lines[1] and len(lines[0]) > 3, name


@pytest.mark.parametrize("command", ["backtest", "calibrate"])
def test_backtest_and_calibrate_with_cluster_equal_one_process(client, files, tmp_path, command):
    """`gpuskew backtest|calibrate ... --cluster tcp://HOST:PORT`: the policies in blocks on the
    cluster, the same output files as one process."""
    from click.testing import CliRunner

    from gpuskew.cli import main

    if command == "backtest":
        args = ["backtest", files / "book", "--policies", files / "policies.toml", "--limits", files / "current.toml"]
        names = ("results.parquet", "summary.parquet", "frontier.parquet", "policies.parquet", "traces.parquet")
    else:
        args = ["calibrate", files / "book", "--limits", files / "current.toml", "--scales", "0.5,1,2"]
        names = ("choices.parquet", "limits.proposed.toml", "limits.diff")
    common = ["--synthetic", files / "market.toml", "--as-of", "2026-11-20T08:00:00Z", "--backend", "cpu", "--json"]
    one = CliRunner().invoke(main, [*map(str, args), *map(str, common), "--out", str(tmp_path / "one")])
    assert one.exit_code == 0, one.output
    many = CliRunner().invoke(main, [*map(str, args), *map(str, common), "--out", str(tmp_path / "many"),
                                     "--cluster", client.scheduler.address])
    assert many.exit_code == 0, many.output
    _same(tmp_path / "one", tmp_path / "many", names)
    if command == "backtest":
        import json

        sweep = json.loads((tmp_path / "many" / "summary.json").read_text())["backend"]["sweep"]
        assert sweep["cluster"].startswith("dask scheduler") and sweep["blocks"] >= 2
