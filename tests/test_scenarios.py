"""Scenario revaluation against things gpuskew did not write: mpmath, Deribit's published numbers,
identities (zero shock, linear instruments, put-call parity, Taylor orders)."""

from __future__ import annotations

import math
from datetime import timedelta

import mpmath as mp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import gpuskew
from gpuskew.kernels import scenarios as ks
from gpuskew.scenarios import parse_scenario_config
from gpuskew.scenarios.job import ScenarioJob, run_scenarios
from gpuskew.scenarios.matrix import build_grid
from gpuskew.scenarios.params import N_STANDARD, ScenarioConfig
from scenario_helpers import (AS_OF, SECONDS_PER_YEAR, UNDERLYINGS, every_kind_book, mp_forward,
                              mp_position_value, mp_shocked_vol, tables)

LEVELS = ["desk", "desk,book"]


def _rows(result, level="underlying", **keys):
    t = result.scenarios
    mask = pc.equal(t["level"], level)
    for k, v in keys.items():
        mask = pc.and_(mask, pc.equal(t[k], v))
    return t.filter(mask).sort_by("scenario")


# ---------------------------------------------------------------------------------------------
# Deribit's vol shock and extended weights


def test_vol_shock_reproduces_deribits_documented_examples():
    """Deribit's portfolio-margin page (deribit.com/pages/docs/portfoliomargin): "maximum implied
    volatility change of (30/days to expiration)^0.30 * 38.00%. Example: options expiring in 30 days:
    IV change of maximum 38.00%, options expiring in 15 days: (30/15)^0.30 * 38.00%"."""
    day = 1.0 / 365.0
    for days, change in ((30, 0.38), (15, 0.38 * 2 ** 0.30)):
        up = ks.shocked_vol(0.6, days * day, ks.VOL_UP, 0.38, 0.0, 0.0, 0.30, 0.30)
        assert up == pytest.approx(0.6 * (1 + change), rel=1e-15)
    # 15 days: 46.78% (2^0.3 x 38%)
    assert ks.shocked_vol(1.0, 15 * day, ks.VOL_UP, 0.38, 0.0, 0.0, 0.30, 0.30) - 1.0 == pytest.approx(0.46783, abs=5e-6)


@pytest.mark.parametrize("days,scale", [
    (0.25, 30 ** 0.30),           # DTE floored at 1 day
    (1.0, 30 ** 0.30),
    (7.0, (30 / 7) ** 0.30),
    (29.0, (30 / 29) ** 0.30),    # short-term power below 30 days
    (30.0, 1.0),                  # long-term power from 30 days: (30/30)^0.13
    (90.0, (1 / 3) ** 0.13),
    (365.0, (30 / 365) ** 0.13),
])
def test_vol_shock_scale_at_deribits_default_powers(days, scale):
    """Deribit's support article "Portfolio Margin" (support.deribit.com, 25944756247837) and its
    API's model_params (short_term_vega_power 0.3, long_term_vega_power 0.13)."""
    assert ks.vol_shock_scale(days / 365.0, 0.30, 0.13) == pytest.approx(scale, rel=1e-14)
    s = scale
    assert ks.shocked_vol(0.8, days / 365.0, ks.VOL_UP, 0.5, 0.25, 0.5, 0.30, 0.13) == pytest.approx(
        max(0.8 * (1 + 0.5 * s), 0.5), rel=1e-14)
    assert ks.shocked_vol(0.8, days / 365.0, ks.VOL_DOWN, 0.5, 0.25, 0.5, 0.30, 0.13) == pytest.approx(
        0.8 * (1 - 0.25 * s), rel=1e-14)
    assert ks.shocked_vol(0.8, days / 365.0, ks.VOL_SAME, 0.5, 0.25, 0.5, 0.30, 0.13) == 0.8


def test_vol_up_floor_min_volatility_for_shock_up():
    # a 20% vol a year out: 0.2 (1 + 0.5 (30/365)^0.13) = 0.272 < 0.5 -> the floor
    assert ks.shocked_vol(0.2, 1.0, ks.VOL_UP, 0.5, 0.25, 0.5, 0.30, 0.13) == 0.5
    assert ks.shocked_vol(0.2, 1.0, ks.VOL_UP, 0.5, 0.25, 0.0, 0.30, 0.13) == pytest.approx(
        0.2 * (1 + 0.5 * (30 / 365) ** 0.13), rel=1e-15)
    # the floor does not apply to vol down
    assert ks.shocked_vol(0.2, 1.0, ks.VOL_DOWN, 0.5, 0.25, 0.5, 0.30, 0.13) < 0.2


def test_extended_weights_are_price_range_over_move():
    grid = build_grid(ScenarioConfig(), ["BTC"])
    moves = grid.moves[0, N_STANDARD:]
    np.testing.assert_allclose(grid.weights[0, N_STANDARD:], 0.16 / np.abs(moves), rtol=1e-15)
    # the weights a venue publishes for the same table (Paradex, "Portfolio Margin": 24%, 48%, 32%,
    # 16%, 8%, 5.33%, 4%, 3.20% for -66% .. +500% at a 16% range)
    np.testing.assert_allclose(grid.weights[0, N_STANDARD:], [0.24, 0.48, 0.32, 0.16, 0.08, 0.0533, 0.04, 0.032],
                               atol=0.0052)
    assert (grid.weights[0, :N_STANDARD] == 1.0).all()
    assert (grid.vol_case[N_STANDARD:] == ks.VOL_UP).all()
    cfg = parse_scenario_config({"defaults": {"extended_table_factor": 0.5, "price_range": 0.2}})
    g2 = build_grid(cfg, ["BTC"])
    np.testing.assert_allclose(g2.weights[0, N_STANDARD:], 0.5 * 0.2 / np.abs(moves), rtol=1e-15)


def test_standard_table_layout():
    grid = build_grid(ScenarioConfig(), ["BTC"])
    m = grid.moves[0, :N_STANDARD].reshape(9, 3)
    assert (m == m[:, :1]).all()
    np.testing.assert_allclose(m[:, 0], np.linspace(-0.16, 0.16, 9), rtol=0, atol=1e-16)
    assert m[4, 0] == 0.0 and (np.diff(m[:, 0]) > 0).all()
    np.testing.assert_array_equal(m[::-1, 0], -m[:, 0])  # symmetric, 0 exact, the edges exactly +-price_range
    assert m[0, 0] == -0.16 and m[-1, 0] == 0.16
    assert grid.vol_case_names[:3] == ["down", "same", "up"]
    assert grid.n_scenarios == 35


# ---------------------------------------------------------------------------------------------
# full revaluation against mpmath


def _mp_group_pnl(tables_, config: ScenarioConfig, levels):
    """Exact (mpmath) scenario P&L per (level, underlying, tags) and scenario; coin P&L too."""
    inst = {r["instrument"]: r for r in tables_["instruments"].to_pylist()}
    quotes = {r["instrument"]: r for r in tables_["quotes"].to_pylist()}
    und = {r["underlying"]: r for r in tables_["underlyings"].to_pylist()}
    grid = build_grid(config, sorted(und))
    out: dict = {}
    for p in tables_["positions"].to_pylist():
        i = inst[p["instrument"]]
        u = und[i["underlying"]]
        S, r = u["spot"], u["rate"] or 0.0
        T = (i["expiry"] - AS_OF).total_seconds() / SECONDS_PER_YEAR if i["expiry"] is not None else 0.0
        q = quotes.get(p["instrument"], {})
        vol = q.get("iv") or 0.0
        F = mp_forward(i["kind"], S, r, T, q.get("forward"))
        entry = p["entry_price"] or 0.0
        if entry <= 0 and i["kind"] in ("perpetual", "future"):
            entry = F  # the base forward as entry (design section 5)
        args = (i["kind"], i["settlement"], i["option_type"], p["quantity"], i["contract_size"], i["strike"] or 0.0)
        V = mp_position_value(*args, T, S, F, r, vol, entry)
        par = config.for_underlying(i["underlying"])
        uc = grid.underlying_names.index(i["underlying"])
        pnl, coin = [], []
        for j in range(grid.n_scenarios):
            m = mp.mpf(grid.moves[uc, j])
            case = grid.vol_case_names[j]
            v = mp_shocked_vol(vol, T, case, par.volatility_range_up, par.volatility_range_down,
                               par.min_volatility_for_shock_up, par.short_term_vega_power,
                               par.long_term_vega_power) if i["kind"] == "option" else vol
            V1 = mp_position_value(*args, T, mp.mpf(S) * (1 + m), F * (1 + m), r, v, entry)
            pnl.append(V1 - V)
            coin.append(V1 / (mp.mpf(S) * (1 + m)) - V / mp.mpf(S))
        for level in [()] + levels:
            key = (",".join(level) or "underlying", i["underlying"], tuple(p[t] for t in level))
            acc = out.setdefault(key, [[mp.mpf(0)] * grid.n_scenarios, [mp.mpf(0)] * grid.n_scenarios,
                                       [mp.mpf(0)] * grid.n_scenarios, False])
            acc[3] = acc[3] or i["settlement"] == "inverse"
            for j in range(grid.n_scenarios):
                acc[0][j] += pnl[j]
                acc[1][j] += coin[j]
                acc[2][j] += abs(pnl[j])
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_full_revaluation_matches_mpmath_per_group(seed):
    tabs = every_kind_book(seed)
    config = parse_scenario_config({"underlying": {"ETH": {"price_range": 0.18, "volatility_range_up": 0.4}}})
    levels = [("desk",), ("desk", "book")]
    result = run_scenarios(gpuskew.load_book(tabs), AS_OF, "cpu", LEVELS, config)
    exact = _mp_group_pnl(tabs, config, levels)
    rows = result.scenarios.to_pylist()
    assert len(rows) == len(exact) * 35
    worst = 0.0
    for row in rows:
        level = row["level"]
        tags = tuple(row[t] for t in (level.split(",") if level != "underlying" else ()))
        pnl, coin, mag, coin_margined = exact[(level, row["underlying"], tags)]
        j = row["scenario"]
        want = pnl[j]
        # 1e-9 relative to the group's P&L; the sum of |position P&L| bounds cancellation in a hedged group
        err = abs(mp.mpf(row["pnl_usd"]) - want)
        assert err <= mp.mpf("1e-9") * abs(want) + mp.mpf("1e-13") * mag[j], (row, want)
        worst = max(worst, float(err / max(abs(want), mp.mpf(1e-300))))
        assert (row["pnl_coin"] is not None) == coin_margined  # only groups holding coin-settled positions
        if coin_margined:
            assert abs(mp.mpf(row["pnl_coin"]) - coin[j]) <= mp.mpf("1e-9") * abs(coin[j]) + mp.mpf("1e-13") * mag[j] / 3400
    assert worst < 1e-9


def test_zero_shock_gives_zero_pnl_bitwise():
    result = run_scenarios(gpuskew.load_book(every_kind_book(3)), AS_OF, "cpu", LEVELS)
    t = result.scenarios
    zero = t.filter(pc.and_(pc.equal(t["spot_move"], 0.0), pc.equal(t["vol_case"], "same")))
    assert zero.num_rows == result.summary["counts"]["groups"]
    assert set(zero["pnl_usd"].to_pylist()) == {0.0}
    assert set(zero["pnl_taylor_usd"].to_pylist()) == {0.0}
    assert set(v for v in zero["pnl_coin"].to_pylist() if v is not None) == {0.0}


def test_expired_positions_have_zero_scenario_pnl():
    t = tables([dict(instrument="X", underlying="BTC", kind="option", settlement="inverse", option_type="put",
                     strike=120_000.0, expiry=AS_OF - timedelta(hours=2), contract_size=1.0),
                dict(instrument="FX", underlying="BTC", kind="future", settlement="linear", option_type=None,
                     strike=None, expiry=AS_OF, contract_size=1.0)],
               [dict(instrument="X", quantity=-50.0, entry_price=None, desk="a"),
                dict(instrument="FX", quantity=7.0, entry_price=90_000.0, desk="a")],
               [dict(instrument="X", iv=0.6, forward=None)], {"BTC": UNDERLYINGS["BTC"]})
    result = run_scenarios(gpuskew.load_book(t), AS_OF, "cpu")
    assert set(result.scenarios["pnl_usd"].to_pylist()) == {0.0}
    assert result.summary["counts"]["expired"] == 2


# ---------------------------------------------------------------------------------------------
# linear instruments, parity, Taylor


def _linear_book():
    S = 97_000.0
    exp = AS_OF + timedelta(days=40)
    inst = [dict(instrument="BTC", underlying="BTC", kind="spot", settlement="linear", contract_size=1.0),
            dict(instrument="PL", underlying="BTC", kind="perpetual", settlement="linear", contract_size=0.001),
            dict(instrument="PI", underlying="BTC", kind="perpetual", settlement="inverse", contract_size=10.0),
            dict(instrument="FL", underlying="BTC", kind="future", settlement="linear", expiry=exp, contract_size=1.0),
            dict(instrument="FI", underlying="BTC", kind="future", settlement="inverse", expiry=exp, contract_size=10.0)]
    pos = [dict(instrument="BTC", quantity=3.5, entry_price=None, desk="a"),
           dict(instrument="PL", quantity=-2500.0, entry_price=None, desk="a"),
           dict(instrument="PL", quantity=800.0, entry_price=95_000.0, desk="b"),
           dict(instrument="PI", quantity=-40_000.0, entry_price=None, desk="a"),
           dict(instrument="PI", quantity=12_000.0, entry_price=99_000.0, desk="b"),
           dict(instrument="FL", quantity=1.7, entry_price=None, desk="a"),
           dict(instrument="FI", quantity=-9_000.0, entry_price=101_000.0, desk="b"),
           dict(instrument="FI", quantity=5_000.0, entry_price=None, desk="a")]
    quo = [dict(instrument="PI", iv=None, forward=S * 1.0003), dict(instrument="FI", iv=None, forward=S * 1.01)]
    return tables([{**dict(option_type=None, strike=None, expiry=None), **r} for r in inst], pos, quo,
                  {"BTC": UNDERLYINGS["BTC"]})


def test_linear_book_taylor_equals_full_revaluation():
    result = run_scenarios(gpuskew.load_book(_linear_book()), AS_OF, "cpu", ["desk"])
    full = result.scenarios["pnl_usd"].to_numpy()
    taylor = result.scenarios["pnl_taylor_usd"].to_numpy()
    scale = np.abs(full).max()
    np.testing.assert_allclose(taylor, full, rtol=1e-12, atol=1e-12 * scale)
    # and the vol cases change nothing
    t = _rows(result)
    p = t["pnl_usd"].to_numpy()[:N_STANDARD].reshape(9, 3)
    np.testing.assert_array_equal(p, p[:, :1].repeat(3, axis=1))


def test_inverse_perpetual_coin_convexity_reproduces_deribits_risk_vectors():
    """Deribit's private/pme/simulate example (docs.deribit.com, API reference): a BTC-PERPETUAL
    position of 0.314538364 BTC (mark 65910.57, index 65666.19) and a BTC-28JUN24 position of
    -0.001187534 BTC (mark 67371.75), price_range 0.16: their published standard risk vectors in BTC."""
    deribit = {
        "BTC-PERPETUAL": [-0.05991206933333334, -0.04289159509090909, -0.027351162086956524,
                          -0.013105765166666668, 0.0, 0.012097629384615385, 0.023299138074074074,
                          0.033700538999999995, 0.043384601931034494],
        "BTC-28JUN24": [0.0002261969523809524, 0.00016193645454545456, 0.00010326382608695652,
                        0.00004948058333333334, 0.0, -0.00004567438461538462, -0.00008796548148148148,
                        -0.0001272357857142857, -0.00016379779310344832],
    }
    S = 65666.19
    marks = {"BTC-PERPETUAL": 65910.57, "BTC-28JUN24": 67371.75}
    coins = {"BTC-PERPETUAL": 0.314538364, "BTC-28JUN24": -0.001187534}
    inst = [dict(instrument="BTC-PERPETUAL", underlying="BTC", kind="perpetual", settlement="inverse", option_type=None,
                 strike=None, expiry=None, contract_size=10.0),
            dict(instrument="BTC-28JUN24", underlying="BTC", kind="future", settlement="inverse", option_type=None,
                 strike=None, expiry=AS_OF + timedelta(days=11), contract_size=10.0)]
    # Deribit sizes positions in coins at the mark: USD notional N = coins * mark, contracts = N / 10
    pos = [dict(instrument=k, quantity=coins[k] * marks[k] / 10.0, entry_price=None, desk="a") for k in coins]
    quo = [dict(instrument=k, iv=None, forward=marks[k]) for k in coins]
    t = tables(inst, pos, quo, {"BTC": dict(spot=S, rate=0.0)})
    result = run_scenarios(gpuskew.load_book(t), AS_OF, "cpu", ["desk"])
    rv = {r["instrument"]: r for r in result.risk_vectors.to_pylist()}
    for name, vector in deribit.items():
        per_contract = np.array(rv[name]["standard"])
        position = per_contract * coins[name] * marks[name] / 10.0
        np.testing.assert_allclose(position.reshape(9, 3), np.repeat(np.array(vector)[:, None], 3, 1),
                                   rtol=1e-12, atol=1e-18)
        assert rv[name]["settlement_currency"] == "BTC"
        assert len(rv[name]["standard"]) == 27 and len(rv[name]["extended"]) == 8
    # the group's coin P&L is the sum of both: (N/F) m / (1 + m) per position, the coin convexity
    grp = _rows(result)
    m = grp["spot_move"].to_numpy()
    want = sum(coins[k] * m / (1 + m) for k in coins)
    np.testing.assert_allclose(grp["pnl_coin"].to_numpy(), want, rtol=1e-12, atol=1e-18)
    # in USD the perpetual without an entry price is linear: N S m / F
    usd = sum(coins[k] * S * m for k in coins)
    np.testing.assert_allclose(grp["pnl_usd"].to_numpy(), usd, rtol=1e-12, atol=1e-9)


def _parity_book(K: float, days: float, vol: float, settle: str):
    exp = AS_OF + timedelta(days=days)
    inst = [dict(instrument=f"C{K}", underlying="BTC", kind="option", settlement=settle, option_type="call",
                 strike=K, expiry=exp, contract_size=1.0),
            dict(instrument=f"P{K}", underlying="BTC", kind="option", settlement=settle, option_type="put",
                 strike=K, expiry=exp, contract_size=1.0)]
    pos = [dict(instrument=f"C{K}", quantity=1.0, entry_price=None, desk="call"),
           dict(instrument=f"P{K}", quantity=1.0, entry_price=None, desk="put")]
    quo = [dict(instrument=f"C{K}", iv=vol, forward=None), dict(instrument=f"P{K}", iv=vol, forward=None)]
    return tables(inst, pos, quo, {"BTC": UNDERLYINGS["BTC"]})


@pytest.mark.parametrize("K,days,vol,settle", [(97_000.0, 7, 0.5, "inverse"), (60_000.0, 200, 0.9, "linear"),
                                               (150_000.0, 0.5, 1.6, "inverse"), (100_000.0, 45, 0.2, "linear")])
def test_put_call_parity_in_every_scenario(K, days, vol, settle):
    """C' - P' = D (F' - K) in every scenario, so pnl(call) - pnl(put) = D F m."""
    result = run_scenarios(gpuskew.load_book(_parity_book(K, days, vol, settle)), AS_OF, "cpu", ["desk"])
    c = _rows(result, "desk", desk="call")["pnl_usd"].to_numpy()
    p = _rows(result, "desk", desk="put")["pnl_usd"].to_numpy()
    m = _rows(result, "desk", desk="call")["spot_move"].to_numpy()
    S, r = UNDERLYINGS["BTC"]["spot"], UNDERLYINGS["BTC"]["rate"]
    T = days * 86_400 / SECONDS_PER_YEAR
    F = S * math.exp(r * T)
    want = math.exp(-r * T) * F * m
    np.testing.assert_allclose(c - p, want, rtol=1e-10, atol=1e-10 * max(F, K))


def _one_option(h: float, kind_of_shock: str, K: float, days: float, vol: float, call: bool):
    """A single option under moves scaled by h (vol ranges scaled alike for 'joint')."""
    t = _parity_book(K, days, vol, "inverse")
    t["positions"] = t["positions"].slice(0 if call else 1, 1)
    cfg = {"price_range": h, "min_volatility_for_shock_up": 0.0,
           "volatility_range_up": h if kind_of_shock == "joint" else 0.5,
           "volatility_range_down": h if kind_of_shock == "joint" else 0.25}
    return run_scenarios(gpuskew.load_book(t), AS_OF, "cpu", (), parse_scenario_config({"defaults": cfg}))


@pytest.mark.parametrize("K,days,vol,call", [(120_000.0, 30, 0.6, True), (80_000.0, 30, 0.6, False),
                                             (97_000.0, 200, 0.8, True)])
@pytest.mark.parametrize("kind_of_shock", ["spot", "joint"])
def test_taylor_error_shrinks_like_the_cube_of_the_move(kind_of_shock, K, days, vol, call):
    errs = []
    for h in (0.02, 0.01, 0.005):
        r = _rows(_one_option(h, kind_of_shock, K, days, vol, call))
        std = ~r["extended"].to_numpy()
        full, tay = r["pnl_usd"].to_numpy()[std], r["pnl_taylor_usd"].to_numpy()[std]
        cases = np.array(r["vol_case"].to_pylist())[std]
        use = np.ones_like(std[std]) if kind_of_shock == "joint" else cases == "same"
        errs.append(np.abs(full - tay)[use].max())
    ratios = [errs[0] / errs[1], errs[1] / errs[2]]
    for q in ratios:
        assert 6.5 < q < 9.5, (errs, ratios)  # 2^3 = 8: third order


def test_taylor_matches_the_second_order_terms_of_the_kernel_greeks():
    """The Taylor column is delta dS + gamma dS^2/2 + vega dv + vanna dS dv + volga dv^2/2 with the
    run's own greeks (gpuskew.compute) and the kernel's shocked vol."""
    t = _parity_book(90_000.0, 20, 0.7, "linear")
    t["positions"] = t["positions"].slice(1, 1)
    book = gpuskew.load_book(t)
    res = run_scenarios(book, AS_OF, "cpu")
    g = gpuskew.compute(gpuskew.load_book(t), as_of=AS_OF, backend="cpu").positions.to_pylist()[0]
    r = _rows(res)
    T = g["time_to_expiry"]
    for row in r.to_pylist():
        case = {"down": ks.VOL_DOWN, "same": ks.VOL_SAME, "up": ks.VOL_UP}[row["vol_case"]]
        dv = 100 * (ks.shocked_vol(0.7, T, case, 0.5, 0.25, 0.5, 0.30, 0.13) - 0.7)
        dS = g["spot"] * row["spot_move"]
        want = (g["delta"] * dS + 0.5 * g["gamma"] * dS ** 2 + g["vega_usd"] * dv + g["vanna"] * dS * dv
                + 0.5 * g["volga"] * dv ** 2)
        assert row["pnl_taylor_usd"] == pytest.approx(want, rel=1e-12, abs=1e-9)


# ---------------------------------------------------------------------------------------------
# the job


def test_worst_is_the_smallest_weighted_pnl_and_summary_agrees():
    result = run_scenarios(gpuskew.load_book(every_kind_book(4)), AS_OF, "cpu", LEVELS)
    t = result.scenarios
    w = (t["weight"].to_numpy() * t["pnl_usd"].to_numpy()).reshape(-1, 35)
    flags = t["worst"].to_numpy(zero_copy_only=False).reshape(-1, 35)
    assert (flags.sum(axis=1) == 1).all()
    np.testing.assert_array_equal(np.argmax(flags, axis=1), np.argmin(w, axis=1))
    for g, row in enumerate(result.summary["worst"]):
        assert row["scenario"] == int(np.argmin(w[g]))
        assert row["estimated_initial_margin_usd"] == max(0.0, -w[g].min())
        assert row["estimated_maintenance_margin_usd"] == pytest.approx(0.8 * max(0.0, -w[g].min()), rel=1e-15)


def test_coarser_levels_add_up_and_coin_pnl_only_for_coin_margined_groups():
    tabs = every_kind_book(5)
    result = run_scenarios(gpuskew.load_book(tabs), AS_OF, "cpu", ["desk,book"])
    t = result.scenarios
    under = _rows(result)
    for u in ("BTC", "ETH"):
        fine = t.filter(pc.and_(pc.equal(t["level"], "desk,book"), pc.equal(t["underlying"], u)))
        sums = fine["pnl_usd"].to_numpy().reshape(-1, 35).sum(axis=0)
        np.testing.assert_allclose(sums, _rows(result, underlying=u)["pnl_usd"].to_numpy(), rtol=1e-11,
                                   atol=1e-6)
    assert under.num_rows == 70
    # a group with only linear positions has no coin P&L
    lin = run_scenarios(gpuskew.load_book(_parity_book(1e5, 10, 0.5, "linear")), AS_OF, "cpu")
    assert set(lin.scenarios["pnl_coin"].to_pylist()) == {None}


def test_resident_job_reruns_with_other_parameters():
    book = gpuskew.load_book(every_kind_book(6))
    job = ScenarioJob(book, AS_OF, "cpu", ["desk"])
    a = job.run(ScenarioConfig())
    b = job.run(parse_scenario_config({"defaults": {"price_range": 0.08}}))
    c = job.run(ScenarioConfig())
    assert a.scenarios.equals(c.scenarios)
    assert not a.scenarios.equals(b.scenarios)
    fresh = run_scenarios(gpuskew.load_book(every_kind_book(6)), AS_OF, "cpu", ["desk"],
                          parse_scenario_config({"defaults": {"price_range": 0.08}}))
    assert fresh.scenarios.equals(b.scenarios)


def test_empty_book():
    tabs = every_kind_book(7)
    tabs["positions"] = tabs["positions"].slice(0, 0)
    result = run_scenarios(gpuskew.load_book(tabs), AS_OF, "cpu", ["desk"])
    assert result.scenarios.num_rows == 0 and result.risk_vectors.num_rows == 0
    assert result.summary["worst"] == []


def test_non_finite_revaluation_is_refused_naming_rows():
    tabs = every_kind_book(8)
    pos = tabs["positions"]
    q = pos["quantity"].to_numpy().copy()
    q[3] = 1e306
    tabs["positions"] = pos.set_column(1, "quantity", pa.array(q))
    from gpuskew.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not finite|non-finite"):
        run_scenarios(gpuskew.load_book(tabs), AS_OF, "cpu")


def test_a_rerun_prices_the_risk_vectors_unit_contracts_once(monkeypatch):
    """What does not change between runs (the held instruments' unit contracts priced, their
    names) is kept by the job: a rerun only revalues them under the new grid, with the same
    risk vectors as a fresh run and as risk_vector_table over the positions."""
    from gpuskew.kernels import cpu
    from gpuskew.scenarios.job import risk_vector_table

    book = gpuskew.load_book(every_kind_book(6))
    job = ScenarioJob(book, AS_OF, "cpu", ["desk"])
    real, calls = cpu.position_greeks, []
    monkeypatch.setattr(cpu, "position_greeks", lambda *a: calls.append(1) or real(*a))
    wide = parse_scenario_config({"defaults": {"price_range": 0.08}})
    a, b, c = job.run(ScenarioConfig()), job.run(wide), job.run(ScenarioConfig())
    assert len(calls) == 1
    assert a.risk_vectors.equals(c.risk_vectors) and not a.risk_vectors.equals(b.risk_vectors)
    fresh = run_scenarios(gpuskew.load_book(every_kind_book(6)), AS_OF, "cpu", ["desk"], wide)
    assert fresh.risk_vectors.equals(b.risk_vectors)
    assert risk_vector_table(book, job.flat, job.T, b.grid).equals(b.risk_vectors)
    assert a.summary["counts"]["instruments_held"] == a.risk_vectors.num_rows
