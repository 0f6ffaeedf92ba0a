"""The policy kernel (kernels/policy.py): band formulas against independent implementations, the
hedge recurrence against a plain-Python reference written here, and its invariants."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuskew.adherence import bands
from gpuskew.kernels import cpu
from gpuskew.kernels import policy as kp
from gpuskew.policy.limits import BandSpec

mpmath.mp.dps = 40


# -- Zakamouline (2006), written here from the paper's formulas -------------------------------------

def paper_h0(lam, gamma_ra, S, sigma, T):
    return mpmath.mpf(lam) / (mpmath.mpf(gamma_ra) * S * mpmath.mpf(sigma) ** 2 * T)


def paper_h1(lam, T, r, sigma, Gamma, gamma_ra):
    return (mpmath.mpf("1.12") * mpmath.mpf(lam) ** mpmath.mpf("0.31") * mpmath.mpf(T) ** mpmath.mpf("0.05")
            * (mpmath.exp(-mpmath.mpf(r) * T) / sigma) ** mpmath.mpf("0.25")
            * (abs(mpmath.mpf(Gamma)) / gamma_ra) ** mpmath.mpf("0.5"))


def paper_k(lam, T, r, sigma, gamma_ra, S, Gamma):
    return (mpmath.mpf("-4.76") * mpmath.mpf(lam) ** mpmath.mpf("0.78") / mpmath.mpf(T) ** mpmath.mpf("0.02")
            * (mpmath.exp(-mpmath.mpf(r) * T) / sigma) ** mpmath.mpf("0.25")
            * (mpmath.mpf(gamma_ra) * mpmath.mpf(S) ** 2 * abs(mpmath.mpf(Gamma))) ** mpmath.mpf("0.15"))


CASES = [  # lambda, gamma (1/USD), S, sigma, T (years), r, Gamma (coins/USD)
    (0.0005, 1e-6, 100_000.0, 0.6, 30 / 365, 0.0, -0.004),
    (0.001, 2e-5, 3_000.0, 0.8, 7 / 365, 0.05, 0.2),
    (0.002, 1.0, 100.0, 0.2, 1.0, 0.01, -0.05),
    (0.0001, 1e-9, 2.0, 1.2, 2 / 365, 0.0, 5_000.0),
]


@pytest.mark.parametrize("lam,ra,S,sigma,T,r,G", CASES)
def test_zakamouline_h0_h1_k_against_the_paper(lam, ra, S, sigma, T, r, G):
    # scalar functions (plain Python) and the compiled vectorised wrapper the adherence bands use
    assert kp.zakamouline_h0(lam, ra, S, sigma, T) == pytest.approx(float(paper_h0(lam, ra, S, sigma, T)), rel=1e-13)
    assert kp.zakamouline_h1(lam, T, r, sigma, G, ra) == pytest.approx(float(paper_h1(lam, T, r, sigma, G, ra)),
                                                                      rel=1e-13)
    k = kp.zakamouline_k(lam, T, r, sigma, ra, S, G)
    assert k == pytest.approx(float(paper_k(lam, T, r, sigma, ra, S, G)), rel=1e-13)
    assert k < 0
    terms = bands.zakamouline_terms(lam, np.array([S]), np.array([sigma]), np.array([G]), ra, T, r, vanna=2.0)
    assert terms["h0"][0] == pytest.approx(float(paper_h0(lam, ra, S, sigma, T)), rel=1e-13)
    assert terms["h1"][0] == pytest.approx(float(paper_h1(lam, T, r, sigma, G, ra)), rel=1e-13)
    assert terms["k"][0] == pytest.approx(float(paper_k(lam, T, r, sigma, ra, S, G)), rel=1e-13)
    # the band is centred on the delta at the modified vol: short gamma sigma sqrt(1 - K), long sqrt(1 + K)
    kk = paper_k(lam, T, r, sigma, ra, S, G)
    sigma_m = sigma * mpmath.sqrt(1 - kk) if G < 0 else sigma * mpmath.sqrt(1 + kk)
    assert terms["shift"][0] == pytest.approx(float(2.0 * (sigma_m - sigma) * 100), rel=1e-10, abs=1e-15)
    assert (terms["shift"][0] > 0) == (G < 0)  # a short-gamma book hedges with a higher vol


def test_zakamouline_band_through_the_limits_spec():
    spec = BandSpec("zakamouline", risk_aversion=1e-6, cost=0.0005, tau_days=30.0, floor_coins=0.0)
    lo, up = bands.half_widths(spec, spot=np.array([100_000.0]), vol=np.array([0.6]), gamma=np.array([-0.004]))
    want = paper_h0(0.0005, 1e-6, 100_000.0, 0.6, 30 / 365) + paper_h1(0.0005, 30 / 365, 0.0, 0.6, -0.004, 1e-6)
    assert lo[0] == up[0] == pytest.approx(float(want), rel=1e-13)


def test_whalley_wilmott_and_var_formulas_by_hand():
    # (3 * 0.002 * 1000 * 0.04^2 / (2 * 0.0006))^(1/3) = 8^(1/3) = 2
    assert kp.whalley_wilmott_half_width(0.002, 1000.0, 0.04, 0.0006) == pytest.approx(2.0, rel=1e-14)
    assert kp.whalley_wilmott_half_width(0.002, 1000.0, 0.0, 0.0006) == 0.0
    # 400000 / (2.3263 * 0.5 * 100000 * sqrt(1/365)) = 65.7 BTC (docs/adherence.md)
    z = bands.z_score(0.99)
    assert kp.var_half_width(400_000.0, z, 0.5, 100_000.0, math.sqrt(1 / 365)) == pytest.approx(65.7, abs=0.05)


def test_floor_and_cap_the_floor_wins():
    assert kp.floor_cap(5.0, 0.0, 0.0, math.inf, math.inf, 100.0) == 5.0
    assert kp.floor_cap(5.0, 0.0, 0.0, 3.0, math.inf, 100.0) == 3.0
    assert kp.floor_cap(5.0, 0.0, 0.0, math.inf, 200.0, 100.0) == 2.0  # cap 200 USD / 100 = 2 coins
    assert kp.floor_cap(1.0, 4.0, 0.0, 3.0, math.inf, 100.0) == 4.0  # floor over cap


# -- trades: rounding to lots ------------------------------------------------------------------------

def test_trade_to_band_rounds_away_into_the_band():
    # net 10.3 above a band [-1, 1] around 0 with lots of 0.5: to the edge 1 -> -9.3 -> 19 lots (-9.5)
    x = kp.trade_coins(10.3, 0.0, 1.0, 1.0, kp.MODE_TO_BAND, 1.0, 0.5, 0.0)
    assert x == pytest.approx(-9.5)
    assert -1.0 <= 10.3 + x <= 1.0
    # below: to the lower edge
    x = kp.trade_coins(-4.2, 0.0, 1.0, 2.0, kp.MODE_TO_BAND, 1.0, 1.0, 0.0)
    assert x == 4.0 and -1.0 <= -4.2 + x <= 2.0


def test_trade_to_band_narrower_than_a_lot_keeps_the_nearest():
    # band [-0.1, 0.1], lot 1: from 1.3, 1 lot lands at 0.3 (0.2 above), 2 lots at -0.7 (0.6 below)
    assert kp.trade_coins(1.3, 0.0, 0.1, 0.1, kp.MODE_TO_BAND, 1.0, 1.0, 0.0) == -1.0


def test_trade_to_target_nearest_lot_fraction_and_minimum():
    assert kp.trade_coins(10.3, 0.0, 1.0, 1.0, kp.MODE_TO_TARGET, 1.0, 0.5, 0.0) == pytest.approx(-10.5)
    assert kp.trade_coins(10.0, 2.0, 1.0, 1.0, kp.MODE_TO_TARGET, 0.5, 1.0, 0.0) == -4.0  # half way to 2
    assert kp.trade_coins(0.6, 0.0, 0.1, 0.1, kp.MODE_TO_TARGET, 1.0, 0.25, 1.0) == -1.0  # raised to min 1
    assert kp.round_half_away(2.5) == 3.0 and kp.round_half_away(-2.5) == -3.0


@settings(max_examples=200)
@given(net=st.floats(-1e4, 1e4), centre=st.floats(-100, 100), lo=st.floats(0.5, 50), up=st.floats(0.5, 50),
       lot=st.floats(0.001, 0.5))
def test_to_band_trades_land_inside_a_band_wider_than_a_lot(net, centre, lo, up, lot):
    dev = net - centre
    if -lo <= dev <= up:
        return
    x = kp.trade_coins(net, centre, lo, up, kp.MODE_TO_BAND, 1.0, lot, 0.0)
    post = net + x - centre
    assert -lo - 1e-6 <= post <= up + 1e-6
    assert abs(x / lot - round(x / lot)) < 1e-6
    # and it is the smallest such trade: one lot less stays out of the band
    post_less = post - math.copysign(lot, x)
    assert not (-lo + 1e-6 < post_less < up - 1e-6)


# -- the recurrence ---------------------------------------------------------------------------------

def _market(n_paths=2, n_groups=2, n_steps=300, seed=1, vol=0.8, funding=0.3):
    rng = np.random.default_rng(seed)
    dt = np.full(n_steps, 60.0 / 31_536_000.0)
    z = rng.standard_normal((n_paths, 1, n_steps))
    S = np.empty((n_paths, 1, n_steps + 1))
    S[:, :, 0] = 50_000.0
    S[:, :, 1:] = 50_000.0 * np.exp(np.cumsum(vol * np.sqrt(dt[0]) * z, axis=2))
    L = np.full_like(S, 0.6)
    F = np.full_like(S, funding)
    delta = np.cumsum(rng.normal(0.0, 0.4, (n_paths, n_groups, n_steps + 1)), axis=2) + 3.0
    wealth = np.cumsum(rng.normal(0.0, 100.0, (n_paths, n_groups, n_steps + 1)), axis=2)
    gamma = np.full((n_paths, n_groups, n_steps + 1), -0.002)
    return dict(S=S, vol=L, fund=F, wealth=wealth, delta=delta, delta_pa=delta * 0.9, gamma=gamma,
                vanna=np.zeros_like(gamma), target=np.zeros((0, n_paths, n_groups, n_steps + 1)),
                und=np.zeros(n_groups, dtype=np.int64), dt=dt)


def _params(n_pol, n_groups, **kw):
    x = np.zeros((n_pol, n_groups, kp.N_PARAMS))
    x[..., kp.P_TARGET] = -1
    x[..., kp.P_CAP_COINS] = np.inf
    x[..., kp.P_CAP_USD] = np.inf
    x[..., kp.P_ENABLED] = 1
    x[..., kp.P_INTERVAL] = 1
    x[..., kp.P_FRACTION] = 1
    x[..., kp.P_LOT] = 0.01
    x[..., kp.P_FUNDING] = 1
    for name, value in kw.items():
        x[..., getattr(kp, name)] = value
    return x


def sweep(params, m, trace_tasks=()):
    n_tasks = params.shape[0] * params.shape[1] * m["S"].shape[0]
    out = np.zeros((n_tasks, kp.N_OUTPUTS))
    slots = np.full(n_tasks, -1, dtype=np.int64)
    for i, t in enumerate(trace_tasks):
        slots[t] = i
    trace = np.zeros((len(trace_tasks), kp.N_TRACE_FIELDS, m["dt"].shape[0]))
    from gpuskew.backtest.sweep import zakamouline_factors

    zak = zakamouline_factors(params, m["S"], m["vol"], m["gamma"], m["und"])
    cpu.policy_sweep(params, m["S"], m["vol"], m["fund"], m["wealth"], m["delta"], m["delta_pa"], m["gamma"],
                     m["vanna"], zak, m["target"], m["und"], m["dt"], slots, out, trace)
    return out.reshape(m["S"].shape[0], params.shape[1], params.shape[0], kp.N_OUTPUTS), trace


def reference(p, m, path, g):
    """The recurrence for a fixed band in coins, written plainly."""
    S, D, W, F, dt = m["S"][path, 0], (m["delta"] if p[kp.P_MEASURE] == 0 else m["delta_pa"])[path, g], \
        m["wealth"][path, g], m["fund"][path, 0], m["dt"]
    lo, up = p[kp.P_LO_COINS], p[kp.P_UP_COINS]
    lot, h = p[kp.P_LOT], 0.0
    acc = dict(hedge=0.0, fees=0.0, spread=0.0, impact=0.0, funding=0.0, hedged=0.0, trades=0, turnover=0.0,
               inside=0)
    for t in range(len(dt)):
        dev = D[t] + h
        inside = -lo <= dev <= up
        acc["inside"] += inside
        cost = 0.0
        if p[kp.P_ENABLED] and not inside and t % int(p[kp.P_INTERVAL]) == 0:
            if p[kp.P_MODE] == kp.MODE_TO_BAND:
                goal = up if dev > 0 else -lo
                n_lots = math.ceil(abs(goal - dev) / lot - 1e-9)
                x = math.copysign(n_lots * lot, goal - dev)
            else:
                need = p[kp.P_FRACTION] * (0.0 - dev)
                x = math.copysign(math.floor(abs(need) / lot + 0.5) * lot, need)
            if x != 0.0:
                notional = abs(x) * S[t]
                fee, spread = notional * p[kp.P_FEE], notional * p[kp.P_HALF_SPREAD]
                impact = notional * (p[kp.P_IMPACT] + p[kp.P_IMPACT_SLOPE] * notional)
                acc["fees"] += fee
                acc["spread"] += spread
                acc["impact"] += impact
                cost = fee + spread + impact
                acc["trades"] += 1
                acc["turnover"] += abs(x)
                h += x
        received = -h * S[t] * F[t] * dt[t] if p[kp.P_FUNDING] else 0.0
        acc["funding"] += received
        acc["hedge"] += h * (S[t + 1] - S[t])
        acc["hedged"] += (W[t + 1] - W[t]) + h * (S[t + 1] - S[t]) + received - cost
    acc["time_in_band"] = acc["inside"] / len(dt)
    acc["final"] = h
    return acc


@pytest.mark.parametrize("mode", [kp.MODE_TO_BAND, kp.MODE_TO_TARGET])
def test_recurrence_matches_a_plain_python_reference(mode):
    m = _market()
    params = _params(4, 2, P_MODE=mode, P_FEE=0.0005, P_HALF_SPREAD=0.0001, P_IMPACT=0.0002,
                     P_IMPACT_SLOPE=1e-9)
    for i, (w, interval, frac) in enumerate([(0.5, 1, 1.0), (1.5, 1, 0.5), (0.2, 7, 1.0), (3.0, 3, 0.25)]):
        params[i, :, kp.P_LO_COINS] = w
        params[i, :, kp.P_UP_COINS] = 2 * w
        params[i, :, kp.P_INTERVAL] = interval
        params[i, :, kp.P_FRACTION] = frac
    params[:, 1, kp.P_MEASURE] = 1  # the second group manages delta_pa
    out, _ = sweep(params, m)
    for path in range(2):
        for g in range(2):
            for i in range(4):
                ref = reference(params[i, g], m, path, g)
                o = out[path, g, i]
                assert o[kp.O_TRADES] == ref["trades"] > 0
                for key, name in ((kp.O_HEDGE_PNL, "hedge"), (kp.O_FEES, "fees"), (kp.O_SPREAD, "spread"),
                                  (kp.O_IMPACT, "impact"), (kp.O_FUNDING, "funding"), (kp.O_HEDGED_PNL, "hedged"),
                                  (kp.O_TURNOVER, "turnover"), (kp.O_TIME_IN_BAND, "time_in_band"),
                                  (kp.O_FINAL_HEDGE, "final")):
                    assert o[key] == pytest.approx(ref[name], rel=1e-12, abs=1e-9), name


def test_hedged_pnl_identity():
    m = _market(n_paths=3, n_groups=2, n_steps=500, seed=4)
    params = _params(3, 2, P_LO_COINS=0.3, P_UP_COINS=0.3, P_FEE=0.0005, P_HALF_SPREAD=0.0002, P_IMPACT=0.0001,
                     P_IMPACT_SLOPE=1e-8)
    params[1, :, kp.P_BAND] = kp.BAND_WHALLEY_WILMOTT
    params[1, :, kp.P_COST] = 0.0008
    params[1, :, kp.P_RISK_AVERSION] = 1e-4
    params[2, :, kp.P_BAND] = kp.BAND_VAR
    params[2, :, [kp.P_LO_BUDGET, kp.P_UP_BUDGET]] = 2_000.0
    params[2, :, kp.P_Z] = 2.33
    params[2, :, kp.P_SQRT_H] = math.sqrt(1 / 365)
    out, _ = sweep(params, m)
    book = (m["wealth"][:, :, -1] - m["wealth"][:, :, 0])[:, :, None]
    lhs = out[..., kp.O_HEDGED_PNL]
    rhs = book + out[..., kp.O_HEDGE_PNL] - out[..., kp.O_FEES] - out[..., kp.O_SPREAD] - out[..., kp.O_IMPACT] \
        + out[..., kp.O_FUNDING]
    scale = np.abs(book) + np.abs(out[..., kp.O_HEDGE_PNL]) + 1.0
    assert np.all(np.abs(lhs - rhs) <= 1e-9 * scale)
    assert (out[..., kp.O_TRADES] > 0).all()


def test_never_trading_and_zero_costs():
    m = _market()
    never = _params(2, 2, P_LO_COINS=0.1, P_UP_COINS=0.1, P_FEE=0.001, P_HALF_SPREAD=0.001)
    never[0, :, kp.P_ENABLED] = 0  # hedge.enabled = false
    never[1, :, [kp.P_LO_COINS, kp.P_UP_COINS]] = 1e12  # a band so wide it never trades
    out, _ = sweep(never, m)
    for k in (kp.O_TRADES, kp.O_FEES, kp.O_SPREAD, kp.O_IMPACT, kp.O_TURNOVER, kp.O_HEDGE_PNL, kp.O_FUNDING):
        assert (out[..., k] == 0).all()
    assert (out[..., 1, kp.O_TIME_IN_BAND] == 1.0).all()
    free = _params(1, 2, P_LO_COINS=0.1, P_UP_COINS=0.1)
    out, _ = sweep(free, m)
    assert (out[..., kp.O_TRADES] > 10).all()
    assert (out[..., kp.O_FEES] == 0).all() and (out[..., kp.O_SPREAD] == 0).all() and (out[..., kp.O_IMPACT] == 0).all()


def test_positive_funding_on_a_short_hedge_is_received():
    m = _market(funding=0.5)
    m["delta"] = np.abs(m["delta"]) + 5.0  # a long book: the hedge is short
    params = _params(1, 2, P_LO_COINS=0.0, P_UP_COINS=0.0, P_MODE=kp.MODE_TO_TARGET)
    out, _ = sweep(params, m)
    assert (out[..., kp.O_FINAL_HEDGE] < 0).all()
    assert (out[..., kp.O_FUNDING] > 0).all()
    m["fund"] = -m["fund"]  # negative funding: shorts pay
    out, _ = sweep(params, m)
    assert (out[..., kp.O_FUNDING] < 0).all()
    params[..., kp.P_FUNDING] = 0  # spot and futures: no funding
    out, _ = sweep(params, m)
    assert (out[..., kp.O_FUNDING] == 0).all()


def test_time_based_policy_trades_only_every_n_steps():
    m = _market(n_paths=1, n_groups=1, n_steps=200)
    params = _params(1, 1, P_INTERVAL=25, P_MODE=kp.MODE_TO_TARGET)
    task = 0
    out, trace = sweep(params, m, [task])
    h = trace[0, kp.F_HEDGE]
    changes = np.flatnonzero(np.diff(np.concatenate([[0.0], h])))
    assert changes.size == out[0, 0, 0, kp.O_TRADES] > 0
    assert (changes % 25 == 0).all()


def test_inverse_hedge_lots_are_usd_over_the_price():
    m = _market(n_paths=1, n_groups=1, n_steps=50)
    params = _params(1, 1, P_LO_COINS=0.0, P_UP_COINS=0.0, P_MODE=kp.MODE_TO_TARGET, P_LOT=10.0, P_INVERSE=1)
    _, trace = sweep(params, m, [0])
    h = trace[0, kp.F_HEDGE]
    steps = np.flatnonzero(np.diff(np.concatenate([[0.0], h])))
    for t in steps:
        lots = (h[t] - (h[t - 1] if t else 0.0)) * m["S"][0, 0, t] / 10.0  # 10 USD per contract
        assert abs(lots - round(lots)) < 1e-6


def test_whalley_wilmott_band_in_the_kernel_equals_the_adherence_band():
    m = _market(n_paths=1, n_groups=1, n_steps=100)
    m["gamma"] = np.abs(np.random.default_rng(3).normal(0.01, 0.003, m["gamma"].shape))
    params = _params(1, 1, P_BAND=kp.BAND_WHALLEY_WILMOTT, P_COST=0.0007, P_RISK_AVERSION=2e-5,
                     P_FLOOR_USD=1_000.0, P_CAP_COINS=5.0)
    _, trace = sweep(params, m, [0])
    spec = BandSpec("whalley_wilmott", risk_aversion=2e-5, cost=0.0007, floor_usd=1_000.0, cap_coins=5.0)
    lo, up = bands.half_widths(spec, spot=m["S"][0, 0, :-1], gamma=m["gamma"][0, 0, :-1])
    np.testing.assert_array_equal(trace[0, kp.F_UPPER] - trace[0, kp.F_CENTRE], up)
    np.testing.assert_allclose(trace[0, kp.F_CENTRE] - trace[0, kp.F_LOWER], lo, rtol=1e-15)


def test_traced_task_reports_the_same_statistics():
    m = _market()
    params = _params(3, 2, P_BAND=kp.BAND_WHALLEY_WILMOTT, P_COST=0.0007, P_RISK_AVERSION=1e-4, P_FEE=0.0004)
    params[2, :, kp.P_RISK_AVERSION] = 1e-7  # a band so wide that the largest |skew| is met inside it
    plain, _ = sweep(params, m)
    traced, trace = sweep(params, m, list(range(12)))
    np.testing.assert_array_equal(plain, traced)  # the cube-root shortcut of untraced tasks changes nothing
    assert (plain[..., 2, kp.O_TRADES] == 0).all() and (plain[..., 2, kp.O_MAX_ABS_SKEW] > 0.01).all()
    np.testing.assert_array_equal(trace[:, kp.F_HEDGED_PNL, -1], traced.reshape(12, -1)[:, kp.O_HEDGED_PNL])
