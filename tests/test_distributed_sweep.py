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


def test_policy_blocks_on_the_cluster_equal_one_process():
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
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0") as lc, distributed.Client(lc) as client, \
            open_cluster(client) as cluster:
        sharded = run_sweep_sharded(greeks, grid, resolve, cluster, "cpu")
    assert len(one.policies) == 14 and sharded.backend["blocks"] >= 2
    np.testing.assert_array_equal(sharded.task.view(np.int64), one.task.view(np.int64))
    assert outputs.results_table(sharded).equals(outputs.results_table(one))
