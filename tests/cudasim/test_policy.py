"""The policy sweep on the CUDA backend (simulated) == the CPU backend, bit for bit: every per-task
statistic and every trace, over every band model, hedge mode, target, lot rule and funding; then a
whole small backtest (greeks path and sweep) on both backends."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from gpuskew.backtest.sweep import launch
from gpuskew.core.backend import CpuBackend, CudaBackend
from gpuskew.kernels import policy as kp


class _Greeks:
    """The arrays launch() reads, without a book."""

    def __init__(self, market, arrays):
        self.market = market
        for k, v in arrays.items():
            setattr(self, k, v)


class _Market:
    def __init__(self, S, L, F, dt):
        self.spot, self.atm_vol, self.funding, self.dt_years = S, L, F, dt
        self.n_paths, self.n_steps = S.shape[0], dt.shape[0]


def _inputs(n_paths=3, n_groups=4, n_steps=40, seed=5):
    rng = np.random.default_rng(seed)
    n_u = 2
    dt = np.full(n_steps, 60.0 / 31_536_000.0)
    S = np.empty((n_paths, n_u, n_steps + 1))
    S[:, 0, 0], S[:, 1, 0] = 60_000.0, 3_000.0
    S[:, :, 1:] = S[:, :, :1] * np.exp(np.cumsum(0.9 * math.sqrt(dt[0]) * rng.standard_normal((n_paths, n_u, n_steps)),
                                                 axis=2))
    L = 0.6 * np.exp(np.cumsum(0.05 * rng.standard_normal((n_paths, n_u, n_steps + 1)), axis=2))
    F = rng.normal(0.1, 0.3, (n_paths, n_u, n_steps + 1))
    shape = (n_paths, n_groups, n_steps + 1)
    delta = np.cumsum(rng.normal(0, 0.5, shape), axis=2)
    arrays = dict(wealth=np.cumsum(rng.normal(0, 500.0, shape), axis=2), delta=delta, delta_pa=delta * 0.97,
                  gamma=rng.normal(0.0, 0.01, shape), vanna=rng.normal(0.0, 0.2, shape),
                  und=np.array([0, 1, 0, 1], dtype=np.int64)[:n_groups])
    target = rng.normal(0.0, 1.0, (2,) + shape)
    return _Greeks(_Market(S, L, F, dt), arrays), target


def _policies(n_groups=4):
    rows = []
    for model in (kp.BAND_FIXED, kp.BAND_VAR, kp.BAND_WHALLEY_WILMOTT, kp.BAND_ZAKAMOULINE):
        for mode, interval, inverse, target in ((kp.MODE_TO_BAND, 1, 0, -1), (kp.MODE_TO_TARGET, 4, 1, 0),
                                                (kp.MODE_TO_TARGET, 1, 0, 1)):
            x = np.zeros(kp.N_PARAMS)
            x[kp.P_BAND] = model
            x[kp.P_MODE] = mode
            x[kp.P_INTERVAL] = interval
            x[kp.P_INVERSE] = inverse
            x[kp.P_TARGET] = target
            x[kp.P_FRACTION] = 0.5 if mode == kp.MODE_TO_TARGET else 1.0
            x[kp.P_MEASURE] = len(rows) % 2
            x[kp.P_ENABLED] = 1.0
            x[kp.P_LO_COINS], x[kp.P_UP_COINS], x[kp.P_UP_USD] = 0.4, 0.2, 20_000.0
            x[kp.P_LO_BUDGET], x[kp.P_UP_BUDGET], x[kp.P_Z], x[kp.P_SQRT_H] = 3_000.0, 5_000.0, 2.33, 0.01
            x[kp.P_RISK_AVERSION], x[kp.P_COST], x[kp.P_TAU], x[kp.P_RATE] = 3e-5, 0.0006, 0.05, 0.03
            x[kp.P_FLOOR_COINS], x[kp.P_FLOOR_USD] = 0.05, 100.0
            x[kp.P_CAP_COINS], x[kp.P_CAP_USD] = 10.0, math.inf if len(rows) % 3 else 200_000.0
            x[kp.P_FEE], x[kp.P_HALF_SPREAD], x[kp.P_IMPACT], x[kp.P_IMPACT_SLOPE] = 5e-4, 1e-4, 2e-4, 1e-9
            x[kp.P_LOT] = 10.0 if inverse else 0.01
            x[kp.P_MIN_SIZE] = 20.0 if inverse else 0.05
            x[kp.P_FUNDING] = float(len(rows) % 2 == 0)
            rows.append(x)
    return np.ascontiguousarray(np.broadcast_to(np.array(rows)[:, None, :], (len(rows), n_groups, kp.N_PARAMS)))


def test_policy_sweep_identical_to_cpu():
    greeks, target = _inputs()
    params = _policies()
    n_tasks = params.shape[0] * params.shape[1] * greeks.market.n_paths
    traced = [0, 5, 17, n_tasks // 2, n_tasks - 1]
    cpu_out, cpu_tr = launch(CpuBackend("test"), params, greeks, target, traced)
    gpu = CudaBackend("test")
    assert gpu.device == "cuda-simulator"
    gpu_out, gpu_tr = launch(gpu, params, greeks, target, traced)
    assert cpu_out.shape == (n_tasks, kp.N_OUTPUTS) and n_tasks >= 100
    np.testing.assert_array_equal(cpu_out.view(np.int64), gpu_out.view(np.int64))
    np.testing.assert_array_equal(cpu_tr.view(np.int64), gpu_tr.view(np.int64))
    assert (cpu_out[:, kp.O_TRADES] > 0).mean() > 0.5  # the cases trade
    assert np.isfinite(cpu_out).all()


def test_backtest_identical_on_both_backends():
    import gpuskew
    from gpuskew.backtest.run import run_backtest
    from gpuskew.policy.grid import expand_policies
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.synthetic.markets import synthetic_market

    book = gpuskew.load_book(make_demo_book(60, seed=4))
    market, _ = synthetic_market({"market": {"steps": 12, "step_seconds": 300, "paths": 2, "seed": 9},
                                  "underlying": {"BTC": {"model": "merton", "iv_vol_of_vol": 0.5}}}, book, DEMO_AS_OF)
    policies = {"defaults": {"band": [{"model": "fixed", "usd": 50_000.0},
                                      {"model": "whalley_wilmott", "risk_aversion": 1e-7, "cost": 0.0005}],
                             "hedge": {"mode": ["to_band", "to_target"]}},
                "underlying": {"USDC": {"enabled": False}},
                "hedge_instrument": [{"instrument": f"{u}-SPOT-HEDGE", "underlying": u, "kind": "spot",
                                      "contract_size": 1.0, "fee": 0.0005, "half_spread": 0.0001, "lot_size": 0.001}
                                     for u in ("BTC", "ETH", "SOL", "XRP")]}
    grid = expand_policies(policies)
    runs = [run_backtest(book, grid, market, levels=[("desk",)], backend=b, full_every=4) for b in ("cpu", "cuda")]
    assert runs[1].info["backend"]["sweep"]["device"] == "cuda-simulator"
    assert runs[1].info["backend"]["greeks_path"]["device"] == "cuda-simulator"
    for name in ("results", "summary", "frontier", "traces"):
        a, b = runs[0].tables[name], runs[1].tables[name]
        assert a.num_rows == b.num_rows > 0
        for col in a.column_names:
            if pa.types.is_floating(a[col].type):
                np.testing.assert_array_equal(a[col].to_numpy().view(np.int64), b[col].to_numpy().view(np.int64))
            else:
                assert a[col].equals(b[col]), col
