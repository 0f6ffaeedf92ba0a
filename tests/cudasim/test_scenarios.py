"""Scenario kernel: CUDA backend (simulated) == CPU backend, bit for bit (group sums of every
scenario, Taylor and coin columns, the worst flags), on books of every contract type."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

import gpuskew
from gpuskew.kernels.segsum import TILE
from gpuskew.scenarios import parse_scenario_config
from gpuskew.scenarios.job import ScenarioJob
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scenario_helpers import AS_OF, every_kind_book  # noqa: E402

FLOATS = ("spot_move", "weight", "pnl_usd", "pnl_coin", "pnl_taylor_usd")
CONFIG = parse_scenario_config({"underlying": {"ETH": {"price_range": 0.18, "volatility_range_up": 0.4}}})


def _bits(table: pa.Table) -> np.ndarray:
    return np.stack([table[c].fill_null(-7.0).to_numpy().astype(np.float64) for c in FLOATS]).view(np.int64)


def _both(tables, as_of, group_by=("desk", "desk,book")):
    cpu = ScenarioJob(gpuskew.load_book(tables), as_of, "cpu", list(group_by)).run(CONFIG)
    gpu_job = ScenarioJob(gpuskew.load_book(tables), as_of, "cuda", list(group_by))
    assert gpu_job.backend.device == "cuda-simulator"
    gpu = gpu_job.run(CONFIG)
    return cpu, gpu


def _assert_identical(cpu, gpu):
    assert cpu.scenarios.num_rows == gpu.scenarios.num_rows
    assert cpu.scenarios.drop(list(FLOATS)).equals(gpu.scenarios.drop(list(FLOATS)))
    np.testing.assert_array_equal(_bits(cpu.scenarios), _bits(gpu.scenarios))
    assert cpu.risk_vectors.equals(gpu.risk_vectors)


@pytest.mark.parametrize("seed", [0, 1])
def test_every_kind_book_identical(seed):
    _assert_identical(*_both(every_kind_book(seed), AS_OF))


@pytest.mark.parametrize("n,seed", [(1, 3), (TILE + 1, 5), (301, 7)])
def test_demo_books_identical(n, seed):
    cpu, gpu = _both(make_demo_book(n_positions=n, seed=seed), DEMO_AS_OF)
    _assert_identical(cpu, gpu)
    assert cpu.summary["worst"] == gpu.summary["worst"]


def test_resident_book_reruns_identical():
    tables = make_demo_book(n_positions=120, seed=2)
    job = ScenarioJob(gpuskew.load_book(tables), DEMO_AS_OF, "cuda", ["desk"])
    a = job.run(CONFIG)
    b = job.run(parse_scenario_config({"defaults": {"price_range": 0.1}}))
    c = job.run(CONFIG)
    np.testing.assert_array_equal(_bits(a.scenarios), _bits(c.scenarios))
    cpu = ScenarioJob(gpuskew.load_book(tables), DEMO_AS_OF, "cpu", ["desk"]).run(
        parse_scenario_config({"defaults": {"price_range": 0.1}}))
    np.testing.assert_array_equal(_bits(b.scenarios), _bits(cpu.scenarios))


def test_benchmark_gpu_section_runs_on_the_simulator():
    """The code benchmarks/gpu_check.py runs on a GPU, run here on the simulator (small book)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import bench_scenarios

    assert bench_scenarios.gpu_section(50)["skipped"]
    res = bench_scenarios.gpu_section(60, allow_simulator=True)
    assert res["simulated"] and res["positions"] == 60 and res["scenarios"] == 35
    assert res["kernel_s"] > 0 and res["run_s"] > 0
