"""Market paths: the spot models' moments, correlation, implied vol, Deribit's funding formula,
recorded markets, flow folders, and configuration errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from backtest_helpers import AS_OF, OPTION, bs_book

import gpuskew
from gpuskew.errors import InvalidConfig, InvalidInput
from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
from gpuskew.synthetic.markets import (FUNDING_PERIODS_PER_YEAR, deribit_funding_rate, flow_folder, poisson_flow,
                                       recorded_market, synthetic_market)

YEAR = 31_536_000.0


@pytest.fixture(scope="module")
def demo_book():
    return gpuskew.load_book(make_demo_book(300, seed=1))


def _market(book, underlying=None, steps=500, step_seconds=3600.0, paths=400, seed=1, **top):
    cfg = {"market": {"steps": steps, "step_seconds": step_seconds, "paths": paths, "seed": seed},
           "underlying": underlying or {}, **top}
    return synthetic_market(cfg, book, DEMO_AS_OF)[0]


def test_gbm_log_returns_have_the_model_moments(demo_book):
    m = _market(demo_book, {"BTC": {"model": "gbm", "vol": 0.8, "drift": 0.2}})
    r = np.diff(np.log(m.spot[:, m.index("BTC")]), axis=1).ravel()
    dt = 3600.0 / YEAR
    n = r.size
    assert r.std() == pytest.approx(0.8 * math.sqrt(dt), rel=4 / math.sqrt(2 * n))
    assert r.mean() == pytest.approx((0.2 - 0.32) * dt, abs=4 * r.std() / math.sqrt(n))


def test_merton_jumps_and_the_compensated_drift(demo_book):
    m = _market(demo_book, {"ETH": {"model": "merton", "vol": 0.5, "jump_intensity": 200.0, "jump_mean": -0.02,
                                    "jump_std": 0.03}}, steps=200, paths=2000)
    j = m.index("ETH")
    r = np.diff(np.log(m.spot[:, j]), axis=1)
    dt = 3600.0 / YEAR
    # E[S_T / S_0] = 1 (no drift; jumps compensated)
    growth = m.spot[:, j, -1] / m.spot[:, j, 0]
    assert growth.mean() == pytest.approx(1.0, abs=4 * growth.std() / math.sqrt(growth.size))
    # variance per step: sigma^2 dt + lambda dt (mu_J^2 + sigma_J^2)
    want = 0.25 * dt + 200.0 * dt * (0.02 ** 2 + 0.03 ** 2)
    assert r.var() == pytest.approx(want, rel=0.05)
    # fat left tail
    assert np.mean(r < r.mean() - 4 * r.std()) > 1e-4


def test_svcj_variance_mean_reverts_and_price_is_a_martingale(demo_book):
    m = _market(demo_book, {"BTC": {"model": "svcj", "vol": 0.6}}, steps=240, paths=2000)
    j = m.index("BTC")
    growth = m.spot[:, j, -1] / m.spot[:, j, 0]
    assert growth.mean() == pytest.approx(1.0, abs=4 * growth.std() / math.sqrt(growth.size))
    r = np.diff(np.log(m.spot[:, j]), axis=1)
    realised = r.std() * math.sqrt(YEAR / 3600.0)
    assert 0.5 < realised < 0.9  # the variance level theta = vol^2, plus jumps
    assert np.isfinite(m.spot).all() and (m.spot > 0).all()


def test_correlated_underlyings(demo_book):
    m = _market(demo_book, {"BTC": {"vol": 0.5}, "ETH": {"vol": 0.7}}, correlation={"BTC,ETH": 0.8},
                steps=300, paths=100)
    a = np.diff(np.log(m.spot[:, m.index("BTC")]), axis=1).ravel()
    b = np.diff(np.log(m.spot[:, m.index("ETH")]), axis=1).ravel()
    assert np.corrcoef(a, b)[0, 1] == pytest.approx(0.8, abs=0.01)


def test_implied_vol_level_moves_as_a_log_random_walk(demo_book):
    m = _market(demo_book, {"BTC": {"iv_vol_of_vol": 1.2, "iv_spot_correlation": -0.5, "iv_start": 0.55}},
                steps=300, paths=100)
    j = m.index("BTC")
    assert (m.atm_vol[:, j, 0] == 0.55).all()
    dl = np.diff(np.log(m.atm_vol[:, j]), axis=1).ravel()
    ds = np.diff(np.log(m.spot[:, j]), axis=1).ravel()
    assert dl.std() == pytest.approx(1.2 * math.sqrt(3600.0 / YEAR), rel=0.03)
    assert np.corrcoef(dl, ds)[0, 1] == pytest.approx(-0.5, abs=0.03)
    flat = _market(demo_book, {"BTC": {"iv_start": 0.55}}, steps=10, paths=2)
    assert (flat.atm_vol[:, j] == 0.55).all()


def test_deribit_funding_formula():
    # zero within the damper; the premium minus the damper outside it; capped
    got = deribit_funding_rate(np.array([0.0001, -0.0002, 0.0005, -0.0005, 0.02, -0.02]), cap=0.005)
    np.testing.assert_allclose(got, [0.0, 0.0, 0.00025, -0.00025, 0.005, -0.005], atol=1e-15)
    # annualised funding: positive premium (mark above index), longs pay
    book = bs_book(funding=0.2)
    m = _market(book, {"BTC": {"premium_vol": 0.0}}, steps=5, paths=1)
    assert np.allclose(m.funding, 0.2)
    m = _market(book, {"BTC": {"premium_vol": 0.0, "premium_mean": 0.001}}, steps=400, paths=1,
                step_seconds=3600.0)
    assert m.funding[0, 0, -1] == pytest.approx((0.001 - 0.00025) * FUNDING_PERIODS_PER_YEAR, rel=1e-6)


def test_same_seed_same_paths_other_seed_other_paths(demo_book):
    cfg = {"BTC": {"model": "svcj", "iv_vol_of_vol": 0.5}}
    a = _market(demo_book, cfg, steps=20, paths=3, seed=7)
    b = _market(demo_book, cfg, steps=20, paths=3, seed=7)
    c = _market(demo_book, cfg, steps=20, paths=3, seed=8)
    for name in ("spot", "atm_vol", "funding"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.spot, c.spot)


@pytest.mark.parametrize("cfg,key", [
    ({"market": {"steps": 10, "step_seconds": 60, "paths": 1}, "underlying": {"BTC": {"model": "heston"}}},
     "underlying.BTC.model"),
    ({"market": {"steps": 10, "step_seconds": 60, "paths": 1}, "underlying": {"BTC": {"kappa": 2.0}}},
     "underlying.BTC.kappa"),
    ({"market": {"steps": 10, "step_seconds": 60, "paths": 1}, "underlying": {"DOGE": {}}}, "underlying.DOGE"),
    ({"market": {"steps": 10, "paths": 1}}, "market.step_seconds"),
    ({"market": {"steps": 0, "step_seconds": 60, "paths": 1}}, "market.steps"),
    ({"market": {"steps": 10, "step_seconds": 60, "paths": 1, "stpes": 3}}, "market.stpes"),
    ({"market": {"steps": 10, "step_seconds": 60, "paths": 1}, "correlation": {"BTC,DOGE": 0.5}},
     "correlation.BTC,DOGE"),
    ({"market": {"steps": 10, "step_seconds": 60, "paths": 1},
      "correlation": {"BTC,ETH": 0.99, "BTC,SOL": 0.99, "ETH,SOL": -0.99}}, "correlation"),
    # hostile numbers: a 400-digit integer (float() overflows) is refused, not a traceback
    ({"market": {"steps": 10 ** 400, "step_seconds": 60, "paths": 1}}, "market.steps"),
    ({"market": {"steps": 10, "step_seconds": 10 ** 400, "paths": 1}}, "market.step_seconds"),
])
def test_bad_synthetic_files_name_the_key(demo_book, cfg, key):
    with pytest.raises(InvalidConfig) as err:
        synthetic_market(cfg, demo_book, DEMO_AS_OF)
    assert err.value.key == key


def _table(rows):
    """A table of dict rows whose keys may differ (missing values null)."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    return pa.table({k: [r.get(k) for r in rows] for k in keys})


def _events(tmp_path, rows, name="events.parquet"):
    folder = tmp_path / "market"
    folder.mkdir(exist_ok=True)
    pq.write_table(_table(rows), folder / name)
    return folder


def test_recorded_market_holds_values_between_events(tmp_path):
    book = bs_book()
    folder = _events(tmp_path, [
        {"type": "index", "ts": "2026-11-20T08:00:00Z", "underlying": "BTC", "spot": 100_000.0},
        {"type": "index", "ts": "2026-11-20T08:02:30Z", "underlying": "BTC", "spot": 101_000.0},
        {"type": "mark", "ts": "2026-11-20T08:01:00Z", "instrument": OPTION, "iv": 0.62},
        {"type": "mark", "ts": "2026-11-20T08:03:00Z", "instrument": OPTION, "iv": 0.65},
        {"type": "rate", "ts": "2026-11-20T08:04:00Z", "underlying": "BTC", "funding_rate": 0.15},
        {"type": "index", "ts": "2026-11-20T08:05:00Z", "underlying": "BTC", "spot": 99_000.0},
        {"type": "index", "ts": "2026-11-20T08:05:00Z", "underlying": "DOGE", "spot": 0.3},
    ])
    m = recorded_market(folder, book, step_seconds=60.0)
    assert m.start == AS_OF and m.n_steps == 5 and m.n_paths == 1
    np.testing.assert_array_equal(m.spot[0, 0], [100_000, 100_000, 100_000, 101_000, 101_000, 99_000])
    np.testing.assert_allclose(m.funding[0, 0], [0, 0, 0, 0, 0.15, 0.15])
    # the ATM level moves by the change of the marked ivs since their first mark: 0.6 then +0.03
    np.testing.assert_allclose(m.atm_vol[0, 0], [0.6, 0.6, 0.6, 0.63, 0.63, 0.63])


def test_recorded_market_errors(tmp_path):
    book = bs_book()
    folder = _events(tmp_path, [{"type": "quote", "ts": "2026-11-20T08:00:00Z", "underlying": "BTC", "spot": 1.0}])
    with pytest.raises(InvalidInput, match="type"):
        recorded_market(folder, book)
    folder = _events(tmp_path, [{"type": "index", "ts": "2026-11-20T08:00:00Z", "underlying": "BTC", "spot": -1.0}],
                     name="events.parquet")
    with pytest.raises(InvalidInput, match="spot"):
        recorded_market(folder, book)
    with pytest.raises(InvalidInput, match="not a folder"):
        recorded_market(tmp_path / "missing", book)


def test_flow_folder_reads_fills(tmp_path):
    book = bs_book()
    m = _market(book, steps=10, step_seconds=600.0, paths=1)
    folder = tmp_path / "fills"
    folder.mkdir()
    rows = [{"ts": "2026-11-20T08:15:00Z", "trade_id": "t1", "instrument": OPTION, "quantity": -2.0,
             "price": 4_000.0, "desk": "opt"},
            {"ts": "2026-11-20T08:15:00Z", "trade_id": "t1", "instrument": OPTION, "quantity": -2.0,
             "price": 4_000.0, "desk": "opt"},
            {"ts": "2026-11-20T08:40:00Z", "trade_id": "t2", "instrument": "BTC_USDC-PERPETUAL", "quantity": 100.0,
             "price": 100_100.0, "fee": 2.5, "desk": "hedge"}]
    pq.write_table(_table(rows), folder / "fills.parquet")
    flow = flow_folder(folder, book, m)
    assert len(flow) == 2 and flow.duplicates == 1
    assert flow.step.tolist() == [2, 4]  # the first grid step at or after the fill
    assert flow.tags["desk"] == ["opt", "hedge"] and flow.fee.tolist() == [0.0, 2.5]
    (folder / "more.jsonl").write_text(json.dumps({"ts": "2026-11-21T09:00:00Z", "trade_id": "t3",
                                                   "instrument": OPTION, "quantity": 1.0, "price": 1.0}) + "\n")
    with pytest.raises(InvalidInput, match="outside the market's time range"):
        flow_folder(folder, book, m)
    (folder / "more.jsonl").write_text(json.dumps({"ts": "2026-11-20T09:00:00Z", "trade_id": "t3",
                                                   "instrument": "ETH-X", "quantity": 1.0, "price": 1.0}) + "\n")
    with pytest.raises(InvalidInput, match="instrument"):
        flow_folder(folder, book, m)


def test_poisson_flow(demo_book):
    m = _market(demo_book, steps=24 * 60, step_seconds=60.0, paths=1)
    flow = poisson_flow(demo_book, m, rate_per_hour=20.0, edge=0.02, seed=3)
    assert len(flow) == pytest.approx(480, abs=4 * math.sqrt(480))
    kinds = dict(zip(demo_book.instruments["instrument"].to_pylist(), demo_book.instruments["kind"].to_pylist()))
    assert {kinds[i] for i in flow.instrument} == {"option"}
    assert np.isnan(flow.price).all() and flow.edge == 0.02
    assert (np.diff(flow.step) >= 0).all() and set(flow.tags) == set(demo_book.tags)
