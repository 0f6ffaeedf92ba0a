"""Backtests in a Black-Scholes world, the identities of the P&L, and the greeks path."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from backtest_helpers import AS_OF, OPTION, bs_book, bs_tables, gbm_market, policies

import gpuskew
from gpuskew.backtest.greeks_path import compute_greeks_path
from gpuskew.backtest.run import run_backtest
from gpuskew.policy.grid import expand_policies

DAY = 86_400.0


def _summary(run, group_level="underlying"):
    t = run.tables["summary"]
    rows = [r for r in t.to_pylist() if r["level"] == group_level]
    return {r["policy_id"]: r for r in rows}


def _by_axis(run, axis):
    """{axis value: summary row} for the per-underlying group."""
    rows = _summary(run)
    return {p.values[axis]: rows[p.policy_id] for p in run.result.policies if p.policy_id in rows}


@pytest.fixture(scope="module")
def bs_hedging():
    """A short ATM call (100 BTC, 30 days, vol 60%) delta-hedged with spot, no costs, over one day,
    rebalanced every 1, 4 and 16 steps of 22.5 minutes (64, 16, 4 rebalances)."""
    book = bs_book(quantity=-100.0)
    market = gbm_market(book, steps=64, step_seconds=DAY / 64, paths=400, seed=3)
    greeks = compute_greeks_path(book, market, [], "cpu", full_every=1)
    hours = [DAY / 64 / 3600 * k for k in (1, 4, 16)]
    grid = expand_policies(policies({"model": "fixed", "coins": 0.0},
                                    {"mode": "to_target", "interval_hours": hours}))
    return run_backtest(book, grid, market, backend="cpu", greeks=greeks, risk_aversion=0.0), hours


def test_delta_hedged_short_option_has_mean_zero(bs_hedging):
    run, hours = bs_hedging
    for h, row in _by_axis(run, "defaults.hedge.interval_hours").items():
        se = row["std_hedged_pnl_usd"] / math.sqrt(400)
        assert abs(row["mean_hedged_pnl_usd"]) < 3.5 * se, (h, row["mean_hedged_pnl_usd"], se)
        assert row["mean_cost_usd"] == 0.0
        # hedging removes most of the option's risk
        assert row["std_hedged_pnl_usd"] < 0.5 * np.std(run.result.book["book_pnl_usd"])


def test_hedging_error_falls_like_one_over_sqrt_rebalances(bs_hedging):
    run, hours = bs_hedging
    by = _by_axis(run, "defaults.hedge.interval_hours")
    std = [by[h]["std_hedged_pnl_usd"] for h in hours]  # 64, 16 and 4 rebalances
    trades = [by[h]["mean_trades"] for h in hours]
    assert trades == pytest.approx([64, 16, 4], abs=0.01)
    # 4x fewer rebalances, 2x the std (sampling error of a std over 400 paths: ~3.5%)
    assert std[1] / std[0] == pytest.approx(2.0, rel=0.15)
    assert std[2] / std[1] == pytest.approx(2.0, rel=0.15)


def test_attribution_adds_up_and_the_residual_is_small(bs_hedging):
    run, _ = bs_hedging
    r = run.tables["results"]
    col = lambda n: r[n].to_numpy()  # noqa: E731
    costs = col("fees_usd") + col("spread_usd") + col("impact_usd")
    hedged = col("hedged_pnl_usd")
    np.testing.assert_allclose(hedged, col("book_pnl_usd") + col("hedge_pnl_usd") - costs + col("funding_usd"),
                               rtol=0, atol=1e-9 * np.abs(col("book_pnl_usd")).max())
    total = col("pnl_delta_usd") + col("pnl_gamma_usd") + col("pnl_theta_usd") + col("pnl_vega_usd") \
        + col("funding_usd") - costs + col("pnl_residual_usd")
    np.testing.assert_allclose(total, hedged, rtol=0, atol=1e-9 * np.abs(col("book_pnl_usd")).max())
    # second order explains the book: the residual is a small part of the P&L's spread
    assert np.std(col("pnl_residual_usd")) < 0.05 * np.std(col("book_pnl_usd"))


@pytest.fixture(scope="module")
def band_sweep():
    book = bs_book(quantity=-100.0)
    market = gbm_market(book, steps=240, step_seconds=360.0, paths=60, seed=8)
    grid = expand_policies(policies([{"model": "fixed", "coins": w} for w in (0.25, 1.0, 4.0, 16.0, 1e9)],
                                    {"mode": "to_band"}, fee=0.0005, half_spread=0.0001, lot_size=0.001))
    return run_backtest(book, grid, market, backend="cpu", full_every=10)


def test_tighter_bands_trade_more_and_leave_less_variance(band_sweep):
    rows = [_summary(band_sweep)[p.policy_id] for p in band_sweep.result.policies]
    trades = [r["mean_trades"] for r in rows]
    std = [r["std_hedged_pnl_usd"] for r in rows]
    cost = [r["mean_cost_usd"] for r in rows]
    assert trades == sorted(trades, reverse=True) and trades[0] > trades[-2] > 0
    assert std[0] < std[1] < std[2] < std[3] < std[4]
    assert cost[0] > cost[-2] > 0
    # a band so wide it never trades: zero trades, zero cost, and every step in band
    assert trades[-1] == 0 and cost[-1] == 0 and rows[-1]["mean_time_in_band"] == 1.0
    # the frontier: every band here trades cost against risk, so none is dominated
    assert all(r["frontier_rank"] > 0 for r in rows)


def test_positive_funding_on_a_short_hedge_adds_pnl():
    book = bs_book(quantity=100.0, funding=0.3)  # long calls: the hedge is short
    market = gbm_market(book, steps=48, step_seconds=1800.0, paths=8, seed=2, premium_vol=0.0)
    assert np.allclose(market.funding, 0.3)
    runs = {}
    for kind in ("spot", "perpetual"):
        grid = expand_policies(policies({"model": "fixed", "coins": 0.0}, {"mode": "to_target"}, kind=kind,
                                        lot_size=0.001))  # lots of 0.001 BTC for both (the perp's contract)
        runs[kind] = run_backtest(book, grid, market, backend="cpu", full_every=4)
    r = runs["perpetual"].tables["results"]
    funding = r["funding_usd"].to_numpy()
    hedge = r["final_hedge_coins"].to_numpy()
    assert (hedge < 0).all() and (funding > 0).all()
    # about |hedge| S f t: ~50 coins x 100k x 0.3 x 1 day / 365
    assert funding.mean() == pytest.approx(np.abs(hedge).mean() * 100_000 * 0.3 / 365, rel=0.3)
    assert (runs["spot"].tables["results"]["funding_usd"].to_numpy() == 0).all()
    gain = runs["perpetual"].tables["results"]["hedged_pnl_usd"].to_numpy() \
        - runs["spot"].tables["results"]["hedged_pnl_usd"].to_numpy()
    np.testing.assert_allclose(gain, funding, rtol=1e-9)  # everything else is equal


def test_whalley_wilmott_band_of_the_backtest_equals_the_adherence_band():
    from gpuskew.adherence import compute_adherence
    from gpuskew.kernels import policy as kp
    from gpuskew.policy.limits import parse_limits

    mapping = policies({"model": "whalley_wilmott", "risk_aversion": 2e-7}, {"mode": "to_band"}, fee=0.0004,
                       half_spread=0.0002)
    book = bs_book(quantity=-300.0)
    market = gbm_market(book, steps=10, step_seconds=60.0, paths=1)
    run = run_backtest(book, expand_policies(mapping), market, backend="cpu", full_every=1)
    trace = run.result.traces[(0, 0, 0)]
    exposures = gpuskew.compute(book, as_of=AS_OF, backend="cpu").exposures
    adh = compute_adherence(exposures, book.underlyings, book.instruments, book.quotes, parse_limits(mapping), AS_OF)
    row = adh.table.to_pylist()[0]
    assert row["band_model"] == "whalley_wilmott" and row["half_width_upper"] > 1.0
    assert trace[kp.F_UPPER, 0] - trace[kp.F_CENTRE, 0] == pytest.approx(row["half_width_upper"], rel=1e-12)
    assert trace[kp.F_CENTRE, 0] - trace[kp.F_LOWER, 0] == pytest.approx(row["half_width_lower"], rel=1e-12)


def test_same_seed_same_results_other_seed_other_results():
    book = bs_book()
    grid = expand_policies(policies({"model": "fixed", "coins": [1.0, 3.0]}, {"mode": "to_band"}, fee=0.0005))
    runs = [run_backtest(book, grid, gbm_market(book, 30, 600.0, 5, seed=s), backend="cpu", full_every=3)
            for s in (4, 4, 5)]
    assert runs[0].tables["results"].equals(runs[1].tables["results"])
    assert not runs[0].tables["results"].equals(runs[2].tables["results"])


# -- the greeks path ---------------------------------------------------------------------------------

def test_full_revaluations_agree_and_the_taylor_error_shrinks():
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.synthetic.markets import synthetic_market

    book = gpuskew.load_book(make_demo_book(300, seed=2))
    market, _ = synthetic_market({"market": {"steps": 120, "step_seconds": 60, "paths": 2, "seed": 1},
                                  "underlying": {"BTC": {"model": "svcj", "iv_vol_of_vol": 1.0}}}, book, DEMO_AS_OF)
    paths = {k: compute_greeks_path(book, market, [("desk",)], "cpu", full_every=k) for k in (1, 10, 60)}
    for k in (10, 60):  # at the common full revaluations the values are the same bits
        np.testing.assert_array_equal(paths[k].wealth[:, :, ::60], paths[1].wealth[:, :, ::60])
        np.testing.assert_array_equal(paths[k].delta[:, :, ::60], paths[1].delta[:, :, ::60])
    err = {k: paths[k].error["value_rms_usd"] for k in paths}
    assert 0 < err[1] < err[10] < err[60]
    assert paths[60].error["value_rms_relative"] < 1e-3
    # in between, the second-order steps stay close to the full revaluation
    between = np.abs(paths[60].wealth - paths[1].wealth)
    assert between.max() < 1e-3 * np.abs(paths[1].wealth[:, :, 1:] - paths[1].wealth[:, :, :-1]).sum(axis=2).max()


def test_an_option_expiring_in_the_path_is_settled_at_its_payoff():
    book = bs_book(quantity=10.0, expiry_days=0.5, strike=99_000.0)
    market = gbm_market(book, steps=24, step_seconds=3600.0, paths=3, seed=5)
    gp = compute_greeks_path(book, market, [], "cpu", full_every=6)
    settle = 12  # 12 hours in
    s = market.spot[:, 0, settle]
    payoff = 10.0 * np.maximum(s - 99_000.0, 0.0)
    np.testing.assert_allclose(gp.wealth[:, 0, settle], payoff, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(gp.wealth[:, 0, settle:], payoff[:, None] * np.ones((1, 24 - settle + 1)),
                               rtol=1e-12)
    assert (gp.delta[:, 0, settle + 1:] == 0).all()


def test_a_client_fill_enters_the_book_at_its_price(tmp_path):
    import json

    from gpuskew.synthetic.markets import flow_folder

    book = bs_book(quantity=-10.0)
    market = gbm_market(book, steps=20, step_seconds=600.0, paths=2, seed=7)
    folder = tmp_path / "fills"
    folder.mkdir()
    fills = [{"type": "fill", "ts": "2026-11-20T09:00:00Z", "trade_id": "a1", "instrument": OPTION,
              "quantity": 4.0, "price": 3_000.0, "fee": 5.0, "tags": {"desk": "flow"}},
             {"type": "fill", "ts": "2026-11-20T09:00:00Z", "trade_id": "a1", "instrument": OPTION,
              "quantity": 4.0, "price": 3_000.0, "fee": 5.0, "tags": {"desk": "flow"}}]
    (folder / "fills.jsonl").write_text("\n".join(json.dumps(f) for f in fills) + "\n")
    flow = flow_folder(folder, book, market)
    assert len(flow) == 1 and flow.duplicates == 1 and int(flow.step[0]) == 6
    gp = compute_greeks_path(book, market, [("desk",)], "cpu", full_every=5, flow=flow)
    rows = gp.groups
    g = [i for i, r in enumerate(rows) if r.get("desk") == "flow"][0]
    assert (gp.wealth[:, g, :6] == 0).all()
    # at the fill: the new position's value (priced by the engine at that market) minus price and fee
    t = market.time_at(6)
    for p in range(2):
        tables = bs_tables(quantity=4.0, spot=float(market.spot[p, 0, 6]))
        tables["quotes"] = tables["quotes"].set_column(1, "iv", pa.array([float(market.atm_vol[p, 0, 6])]))
        value = gpuskew.compute(gpuskew.load_book(tables), as_of=t, backend="cpu").exposures["value_usd"][0].as_py()
        assert gp.wealth[p, g, 6] == pytest.approx(value - 4.0 * 3_000.0 - 5.0, rel=1e-9)


def test_full_revaluations_equal_the_session_group_sums():
    """At its full revaluations the greeks path prices and sums exactly as Session.group_sums does
    for the same market (same kernel, same reduction tree, same bits)."""
    from gpuskew.session import MarketUpdate, Session
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.synthetic.markets import synthetic_market

    tables = make_demo_book(400, seed=6)
    inst = tables["instruments"]
    keep = [k in ("option", "spot") for k in inst["kind"].to_pylist()]
    names = set(inst.filter(pa.array(keep))["instrument"].to_pylist())
    pos = tables["positions"]
    tables["positions"] = pos.filter(pa.array([n in names for n in pos["instrument"].to_pylist()]))
    book = gpuskew.load_book(tables)
    market, _ = synthetic_market({"market": {"steps": 30, "step_seconds": 600, "paths": 2, "seed": 4},
                                  "underlying": {"ETH": {"model": "merton", "iv_vol_of_vol": 1.5}}}, book, DEMO_AS_OF)
    gp = compute_greeks_path(book, market, [("desk",)], "cpu", full_every=10)
    quotes = book.quotes
    q_inst = quotes["instrument"].to_pylist()
    und_of = dict(zip(book.instruments["instrument"].to_pylist(), book.instruments["underlying"].to_pylist()))
    iv0 = quotes["iv"].to_numpy(zero_copy_only=False)
    fwd0 = quotes["forward"].fill_null(0.0).to_numpy(zero_copy_only=False)
    for p, t in ((0, 10), (1, 30)):
        session = Session(gpuskew.load_book(tables), backend="cpu", group_by=[("desk",)])
        j = [market.index(und_of[i]) for i in q_inst]
        shift = market.atm_vol[p, j, t] - market.atm_vol[p, j, 0]
        iv = np.where(np.isfinite(iv0), np.maximum(iv0 + shift, 0.01), np.nan)
        fwd = np.where(fwd0 > 0, fwd0 * (market.spot[p, j, t] / market.spot[p, j, 0]), 0.0)
        update = MarketUpdate(
            underlyings=pa.table({"underlying": market.underlyings, "spot": market.spot[p, :, t]}),
            quotes=pa.table({"instrument": q_inst, "iv": pa.array(iv, mask=~np.isfinite(iv)),
                             "forward": pa.array(fwd, mask=~(fwd > 0))}))
        sums = session.group_sums(market.time_at(t), update)
        got = np.concatenate([s.sums for s in sums], axis=1)
        from gpuskew import schema

        m = {n: i for i, n in enumerate(schema.MEASURE_NAMES)}
        np.testing.assert_array_equal(gp.wealth[p, :, t], got[m["value_usd"]])
        np.testing.assert_array_equal(gp.delta[p, :, t], got[m["delta"]])
        np.testing.assert_array_equal(gp.delta_pa[p, :, t], got[m["delta_pa"]])
        np.testing.assert_array_equal(gp.gamma[p, :, t], got[m["gamma"]])
        np.testing.assert_array_equal(gp.vega[p, :, t], got[m["vega_usd"]])


def test_the_greeks_path_prices_each_held_instrument_once_per_revaluation(monkeypatch):
    """The engine's held path (Backend.held_greeks: each held instrument priced once, its positions
    from it), not the per-position kernel; and 'auto' decides on the rows priced per launch (the
    revaluations side by side), not on the book's size."""
    from gpuskew.backtest import greeks_path as gp_mod
    from gpuskew.core.backend import CpuBackend
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.synthetic.markets import synthetic_market

    book = gpuskew.load_book(make_demo_book(200, seed=3))
    market, _ = synthetic_market({"market": {"steps": 40, "step_seconds": 60, "paths": 2, "seed": 1}}, book,
                                 DEMO_AS_OF)
    ref = compute_greeks_path(book, market, [("desk",)], "cpu", full_every=10)
    calls = {"held": 0, "rows": []}

    class Spy(CpuBackend):
        def position_greeks(self, cols):
            raise AssertionError("the greeks path must use held_greeks")

        def held_greeks(self, cols):
            calls["held"] += 1
            assert cols["h_kind"].shape[0] * len(book) == cols["qty"].shape[0] * book.flat().h_kind.shape[0]
            return super().held_greeks(cols)

    def resolve(requested, n_rows):
        calls["rows"].append(n_rows)
        return Spy("spy")

    monkeypatch.setattr(gp_mod, "resolve_backend", resolve)
    got = compute_greeks_path(book, market, [("desk",)], "auto", full_every=10)
    assert calls["held"] >= 1
    # 2 paths x 5 revaluations (steps 0, 10, .., 40), at least, in one launch
    assert calls["rows"] == [got.revaluations * len(book)] and got.revaluations >= 10
    for name in ("wealth", "delta", "delta_pa", "gamma", "vanna", "vega", "theta"):
        np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))


def test_zakamouline_factors_are_computed_once_per_greeks_path(monkeypatch):
    """The factors depend on the market and the book's gamma only: the sweep and its trace
    relaunch share one computation, with the same results."""
    from gpuskew.backtest import sweep as sweep_mod

    book = bs_book(quantity=-10.0)
    market = gbm_market(book, steps=30, step_seconds=600.0, paths=2, seed=3)
    band = [{"model": "zakamouline", "risk_aversion": 1e-6, "cost": 0.001, "tau_days": 10},
            {"model": "fixed", "coins": 1.0}]
    grid = expand_policies(policies(band))
    ref = run_backtest(book, grid, market, levels=[("desk",)], backend="cpu", full_every=5)
    real = sweep_mod.zakamouline_factors
    calls = []
    monkeypatch.setattr(sweep_mod, "zakamouline_factors", lambda *a: calls.append(1) or real(*a))
    got = run_backtest(book, grid, market, levels=[("desk",)], backend="cpu", full_every=5)
    assert len(calls) == 1 and got.result.traces
    for name in ("results", "traces"):
        assert got.tables[name].equals(ref.tables[name])


def test_the_sweep_launches_on_anything_with_the_greeks_arrays_and_the_cache_is_not_pickled():
    """launch() reads arrays: an object without the greeks path's cache (the simulator tests'
    stand-ins, benchmarks/gpu_check.py) gets the Zakamouline factors computed per launch, with
    the same results; a pickled greeks path (a sharded sweep's shared input) leaves its cache behind."""
    import pickle
    import types

    from gpuskew.backtest import sweep as sweep_mod
    from gpuskew.core.backend import CpuBackend

    book = bs_book(quantity=-10.0)
    market = gbm_market(book, steps=20, step_seconds=600.0, paths=2, seed=4)
    grid = expand_policies(policies([{"model": "zakamouline", "risk_aversion": 1e-6, "cost": 0.001, "tau_days": 10}]))
    run = run_backtest(book, grid, market, backend="cpu", full_every=5)
    greeks, k = run.greeks, run.result.kernel
    assert "zakamouline" in greeks.cache
    targets = sweep_mod.target_paths(greeks, k.targets, k.params)
    names = ("market", "und", "wealth", "delta", "delta_pa", "gamma", "vanna")
    bare = types.SimpleNamespace(**{n: getattr(greeks, n) for n in names})
    cpu = CpuBackend("test")
    np.testing.assert_array_equal(sweep_mod.launch(cpu, k.params, bare, targets)[0],
                                  sweep_mod.launch(cpu, k.params, greeks, targets)[0])
    assert pickle.loads(pickle.dumps(greeks)).cache == {} and "zakamouline" in greeks.cache
