"""Black-76 option measures against QuantLib and against published reference values.

Oracles:

* QuantLib's ``BlackCalculator(PlainVanillaPayoff(type, K), F, sigma sqrt(T), D)`` (continuous T)
  and ``AnalyticEuropeanEngine`` on a ``BlackProcess`` (the process's underlying is the forward),
  on a seeded random grid: deep ITM/OTM, 1 hour to 5 years, 5% to 300% vol, r from -1% to 10%.
* Central finite differences (of our own first-order greeks and of QuantLib's) for vanna and volga:
  no library's second-order greek is taken on trust.
* Haug, "The Complete Guide to Option Pricing Formulas" (1st ed. "Option pricing formulas",
  McGraw-Hill 1998), examples as used in QuantLib's test-suite/europeanoption.cpp
  (EuropeanOptionTest::testValues and ::testGreekValues).

Conventions matched (all verified numerically, see test_quantlib_conventions_documented):

====================  ======================================================================
ours (per position)   QuantLib, times quantity * contract_size
====================  ======================================================================
value_usd             BlackCalculator.value()                     / engine NPV()
delta (dV/dS, F~S)    BlackCalculator.delta(S) = deltaForward()*F/S / engine delta()*F/S
gamma                 BlackCalculator.gamma(S) = gammaForward()*(F/S)^2 / engine gamma()*(F/S)^2
vega_usd (per 1 pt)   BlackCalculator.vega(T) / 100               / engine vega() / 100
theta_usd (per day,   BlackCalculator.thetaPerDay(F, T) (spot argument = F, so the carry term
  F, sigma fixed)       ln(F/spot) vanishes: theta at fixed F)    / engine thetaPerDay()
rho_usd (per 1%,      (BlackCalculator.rho(T) + dividendRho(T)) / 100 (rho alone is at fixed
  F fixed)              spot; adding dividendRho cancels the forward's dependence on r)
                        / (engine rho() + dividendRho()) / 100 (BlackProcess: q curve = r curve)
====================  ======================================================================
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import QuantLib as ql

from gpuskew.kernels import instruments as ins
from kernel_helpers import PATHS, assert_close, kernel_measures

#: relative tolerance against QuantLib for every first-order measure (and value, gamma)
RTOL = 1e-9
#: absolute floors, as a fraction of each measure's natural scale for the position (see _floors)
FLOOR = 1e-12
#: relative tolerance of vanna/volga against central finite differences
FD_RTOL = 1e-6

N_GRID = 2000


def _grid(n: int, seed: int) -> dict[str, np.ndarray]:
    """Seeded random linear (USDC-settled) option positions over a wide grid.

    Log-moneyness z = ln(F/K) / (sigma sqrt(T)): 70% in [-3, 3] standard deviations, 30% in [-8, 8]
    (deep ITM/OTM, where OTM values underflow towards zero). Half of the positions quote a forward
    (a basis of up to +-10% to S e^{rT}), half use F = S e^{rT}.
    """
    rng = np.random.default_rng(seed)
    S = np.exp(rng.uniform(math.log(0.05), math.log(2e5), n))
    T = np.exp(rng.uniform(math.log(1.0 / 8760.0), math.log(5.0), n))
    vol = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    r = rng.uniform(-0.01, 0.10, n)
    quoted = rng.random(n) < 0.5
    F = np.where(quoted, S * np.exp(r * T + rng.uniform(-0.1, 0.1, n)), S * np.exp(r * T))
    z = np.where(rng.random(n) < 0.7, rng.uniform(-3, 3, n), rng.uniform(-8, 8, n))
    K = F * np.exp(-z * vol * np.sqrt(T))
    cp = np.where(rng.random(n) < 0.5, ins.CALL, ins.PUT).astype(np.int8)
    qty = rng.choice([-1.0, 1.0], n) * np.exp(rng.uniform(math.log(0.1), math.log(100.0), n))
    csize = rng.choice([1.0, 0.1, 10.0], n)
    return dict(kind=ins.KIND_OPTION, settle=ins.SETTLE_LINEAR, cp=cp, qty=qty, csize=csize,
                strike=K, T=T, S=S, fwd=np.where(quoted, F, 0.0), r=r, vol=vol, F=F, z=z)


def _kernel_inputs(g: dict) -> dict:
    return {k: v for k, v in g.items() if k not in ("F", "z")}


def _floors(g: dict) -> dict[str, np.ndarray]:
    """atol = FLOOR x the natural scale of each measure for the position: F for the value (so deep
    OTM values that underflow are compared with 1e-12 F), F/S coins for delta, etc."""
    size = np.abs(g["qty"] * g["csize"])
    F, S, T, vol, r = g["F"], g["S"], g["T"], g["vol"], g["r"]
    sd = vol * np.sqrt(T)
    return {
        "value_usd": FLOOR * size * F,
        "delta": FLOOR * size * F / S,
        "gamma": FLOOR * size * (F / S) ** 2 / (F * sd),
        "vega_usd": FLOOR * size * F * np.sqrt(T) / 100.0,
        "theta_usd": FLOOR * size * F * (np.abs(r) + vol / np.sqrt(T)) / 365.0,
        "rho_usd": FLOOR * size * F * T / 100.0,
    }


def _ql_type(cp: int):
    return ql.Option.Call if cp == ins.CALL else ql.Option.Put


def _blackcalculator(cp, K, F, vol, T, r):
    return ql.BlackCalculator(ql.PlainVanillaPayoff(_ql_type(cp), float(K)), float(F),
                              float(vol) * math.sqrt(T), math.exp(-r * T))


_QL_CDF = ql.CumulativeNormalDistribution()


def _ql_cdf_error(cp, F, K, vol, T):
    """The error of the oracle's own normal CDF in the two terms of Black's formula.

    QuantLib's CumulativeNormalDistribution computes N(x) = (1 + erf(x / sqrt 2)) / 2, switching to
    an asymptotic series only below 1e-8, and BlackCalculator forms a put's N(-d) as 1 - N(d). Both
    lose relative accuracy in the lower tail (measured: up to 1.3e-7 relative for x in [-7.4, -4];
    BlackCalculator's 1 - N(d) has an absolute error ~1e-16). Our norm_cdf uses erfc, accurate in
    both tails. Returns |oracle term - accurate term| for the F-term N(+-d1) and the K-term N(+-d2),
    with scipy.special.ndtr (cephes, erfc-based) as the accurate CDF; used only to widen the floor
    by the oracle's own error, never as the expected value.
    """
    from scipy.special import ndtr

    sd = vol * math.sqrt(T)
    d1 = math.log(F / K) / sd + 0.5 * sd
    d2 = d1 - sd
    if cp == ins.CALL:
        return abs(_QL_CDF(d1) - ndtr(d1)), abs(_QL_CDF(d2) - ndtr(d2))
    return abs((1.0 - _QL_CDF(d1)) - ndtr(-d1)), abs((1.0 - _QL_CDF(d2)) - ndtr(-d2))


def _ql_expected(g: dict) -> dict[str, np.ndarray]:
    """QuantLib BlackCalculator quantities mapped to our conventions, per position, and the
    oracle's own error (``oracle_err_*``, from its normal CDF) in the value and the delta."""
    n = g["S"].shape[0]
    out = {k: np.empty(n) for k in ("value_usd", "delta", "gamma", "vega_usd", "theta_usd",
                                    "rho_usd", "delta_fwd_route", "gamma_fwd_route",
                                    "oracle_err_value", "oracle_err_delta")}
    for i in range(n):
        S, F, T, r = float(g["S"][i]), float(g["F"][i]), float(g["T"][i]), float(g["r"][i])
        size = float(g["qty"][i] * g["csize"][i])
        K, vol = float(g["strike"][i]), float(g["vol"][i])
        bc = _blackcalculator(g["cp"][i], K, F, vol, T, r)
        e1, e2 = _ql_cdf_error(g["cp"][i], F, K, vol, T)
        D = math.exp(-r * T)
        out["oracle_err_value"][i] = abs(size) * D * (F * e1 + K * e2)
        out["oracle_err_delta"][i] = abs(size) * D * e1 * F / S
        out["value_usd"][i] = size * bc.value()
        out["delta"][i] = size * bc.delta(S)
        out["gamma"][i] = size * bc.gamma(S)
        out["delta_fwd_route"][i] = size * bc.deltaForward() * (F / S)
        out["gamma_fwd_route"][i] = size * bc.gammaForward() * (F / S) ** 2
        out["vega_usd"][i] = size * bc.vega(T) / 100.0
        out["theta_usd"][i] = size * bc.thetaPerDay(F, T)
        out["rho_usd"][i] = size * (bc.rho(T) + bc.dividendRho(T)) / 100.0
    return out


@pytest.fixture(scope="module")
def grid():
    g = _grid(N_GRID, seed=20240611)
    return g, _ql_expected(g)


@pytest.mark.parametrize("path", sorted(PATHS))
def test_black76_matches_quantlib_blackcalculator(grid, path):
    g, expected = grid
    got, status = PATHS[path](**_kernel_inputs(g))
    assert (status == ins.STATUS_OK).all()
    floors = _floors(g)
    # widen the floors by twice the oracle's own (CDF) error where it matters: the value, delta,
    # and through V the theta (-r V term) and the rho (-T V)
    ev, ed = 2.0 * expected["oracle_err_value"], 2.0 * expected["oracle_err_delta"]
    floors["value_usd"] = floors["value_usd"] + ev
    floors["delta"] = floors["delta"] + ed
    floors["theta_usd"] = floors["theta_usd"] + np.abs(g["r"]) * ev / 365.0
    floors["rho_usd"] = floors["rho_usd"] + g["T"] * ev / 100.0
    ctx = {k: g[k] for k in ("cp", "S", "F", "strike", "T", "r", "vol", "z")}
    for name in ("value_usd", "delta", "gamma", "vega_usd", "theta_usd", "rho_usd"):
        assert_close(f"{path} {name}", got[name], expected[name], RTOL, floors[name], ctx)
    # the forward-based route of the chain rule (QuantLib's forward greeks times dF/dS = F/S)
    assert_close(f"{path} delta (deltaForward F/S)", got["delta"], expected["delta_fwd_route"],
                 RTOL, floors["delta"], ctx)
    assert_close(f"{path} gamma (gammaForward (F/S)^2)", got["gamma"], expected["gamma_fwd_route"],
                 RTOL, floors["gamma"], ctx)
    # and the derived columns
    np.testing.assert_allclose(got["value_coin"], got["value_usd"] / g["S"], rtol=1e-15, atol=0)
    np.testing.assert_allclose(got["delta_usd"], got["delta"] * g["S"], rtol=1e-15, atol=0)
    np.testing.assert_array_equal(got["delta_pa"], got["delta"])  # linear settlement
    np.testing.assert_allclose(got["gamma_1pct"], got["gamma"] * g["S"] / 100, rtol=1e-15, atol=0)


def test_grid_really_reaches_the_tails(grid):
    """The grid covers what it claims (so the oracle test is not vacuous in the tails)."""
    g, expected = grid
    assert g["z"].min() < -6 and g["z"].max() > 6
    assert g["T"].min() < 2.0 / 8760 and g["T"].max() > 4.5
    assert g["vol"].min() < 0.06 and g["vol"].max() > 2.5
    assert g["r"].min() < -0.009 and g["r"].max() > 0.099
    tiny = np.abs(expected["value_usd"]) < _floors(g)["value_usd"]
    assert tiny.any() and (~tiny).sum() > 0.8 * tiny.size
    assert (g["cp"] == ins.CALL).any() and (g["cp"] == ins.PUT).any()
    # the widening by QuantLib's own CDF error (test above) loosens a handful of positions only
    floors = _floors(g)
    for name, err in (("value_usd", "oracle_err_value"), ("delta", "oracle_err_delta")):
        widened = 2 * expected[err] > floors[name] + RTOL * np.abs(expected[name])
        assert widened.sum() <= 0.005 * widened.size, name


def _engine_option(cp, K, F, vol, r, days):
    """A European option priced by AnalyticEuropeanEngine on a BlackProcess (underlying = F),
    with T = days / 365 (Actual365Fixed): ours and QuantLib's time agree exactly."""
    today = ql.Date(15, ql.January, 2024)
    ql.Settings.instance().evaluationDate = today
    dc = ql.Actual365Fixed()
    process = ql.BlackProcess(
        ql.QuoteHandle(ql.SimpleQuote(float(F))),
        ql.YieldTermStructureHandle(ql.FlatForward(today, float(r), dc, ql.Continuous)),
        ql.BlackVolTermStructureHandle(
            ql.BlackConstantVol(today, ql.NullCalendar(), float(vol), dc)))
    option = ql.VanillaOption(ql.PlainVanillaPayoff(_ql_type(cp), float(K)),
                              ql.EuropeanExercise(today + int(days)))
    option.setPricingEngine(ql.AnalyticEuropeanEngine(process))
    return option


def test_black76_matches_quantlib_engine_on_blackprocess():
    """The engine route: delta/gamma are w.r.t. the process underlying F, so delta_S = delta_F F/S
    and gamma_S = gamma_F (F/S)^2; theta (BlackProcess: fixed F) per day; rho + dividendRho."""
    rng = np.random.default_rng(7)
    n = 150
    days = rng.integers(1, 5 * 365, n)
    T = days / 365.0
    S = np.exp(rng.uniform(math.log(1.0), math.log(1e5), n))
    vol = rng.uniform(0.05, 3.0, n)
    r = rng.uniform(-0.01, 0.10, n)
    F = S * np.exp(r * T + rng.uniform(-0.05, 0.05, n))
    K = F * np.exp(-rng.uniform(-3, 3, n) * vol * np.sqrt(T))
    cp = np.where(rng.random(n) < 0.5, ins.CALL, ins.PUT).astype(np.int8)
    got, status = kernel_measures(kind=ins.KIND_OPTION, cp=cp, strike=K, T=T, S=S, fwd=F, r=r,
                                  vol=vol)
    assert (status == ins.STATUS_OK).all()
    exp = {k: np.empty(n) for k in ("value_usd", "delta", "gamma", "vega_usd", "theta_usd",
                                    "rho_usd")}
    for i in range(n):
        o = _engine_option(cp[i], K[i], F[i], vol[i], r[i], days[i])
        g = F[i] / S[i]
        exp["value_usd"][i] = o.NPV()
        exp["delta"][i] = o.delta() * g
        exp["gamma"][i] = o.gamma() * g * g
        exp["vega_usd"][i] = o.vega() / 100.0
        exp["theta_usd"][i] = o.thetaPerDay()
        exp["rho_usd"][i] = (o.rho() + o.dividendRho()) / 100.0
    floors = _floors(dict(qty=np.ones(n), csize=np.ones(n), F=F, S=S, T=T, vol=vol, r=r))
    for name, e in exp.items():
        assert_close(name, got[name], e, RTOL, floors[name], dict(cp=cp, S=S, F=F, K=K, T=T))


def test_quantlib_conventions_documented():
    """Pin the QuantLib conventions relied on above with independent first principles (finite
    differences of QuantLib's own value), so a change of QuantLib semantics is caught here."""
    F, S, K, T, r, vol = 110.0, 100.0, 100.0, 0.7, 0.05, 0.4
    for cp in (ins.CALL, ins.PUT):
        bc = _blackcalculator(cp, K, F, vol, T, r)

        def val(F=F, T=T, r=r, vol=vol):
            return _blackcalculator(cp, K, F, vol, T, r).value()

        h = 1e-4
        # delta(S): F moves with S (F = S g)
        dv_ds = (val(F=F * (1 + h)) - val(F=F * (1 - h))) / (2 * h * S)
        assert bc.delta(S) == pytest.approx(dv_ds, rel=1e-7)
        assert bc.delta(S) == pytest.approx(bc.deltaForward() * F / S, rel=1e-14)
        # theta at fixed F, per year (spot argument = F), per day = / 365
        dv_dt = (val(T=T + h) - val(T=T - h)) / (2 * h)
        assert bc.theta(F, T) == pytest.approx(-dv_dt, rel=1e-7)
        assert bc.thetaPerDay(F, T) == pytest.approx(bc.theta(F, T) / 365.0, rel=1e-14)
        # rho + dividendRho = dV/dr at fixed F = -T V
        dv_dr = (val(r=r + h) - val(r=r - h)) / (2 * h)
        assert bc.rho(T) + bc.dividendRho(T) == pytest.approx(dv_dr, rel=1e-7)
        assert bc.rho(T) + bc.dividendRho(T) == pytest.approx(-T * bc.value(), rel=1e-12)
        # vega(T) per unit of vol
        dv_dvol = (val(vol=vol + h) - val(vol=vol - h)) / (2 * h)
        assert bc.vega(T) == pytest.approx(dv_dvol, rel=1e-7)


# --- vanna and volga: central finite differences ------------------------------------------------

def _vanna_volga_grid(n=400, seed=99):
    g = _grid(n, seed)
    # keep where the first-order greeks are representable (|z| <= 5): FD of an underflowed delta
    # or vega carries no information; the floors below cover the rest
    keep = np.abs(g["z"]) <= 5
    return {k: (v[keep] if isinstance(v, np.ndarray) else v) for k, v in g.items()}


def _fd_floors(g):
    size = np.abs(g["qty"] * g["csize"])
    F, S, T = g["F"], g["S"], g["T"]
    # vanna in coins of delta per vol point: 1e-10 x (size F/S) per vol point;
    # volga in USD of vega_usd per vol point: 1e-10 x (size F sqrt(T) / 100) per vol point
    return {"vanna": 1e-10 * size * F / S / 100.0,
            "volga": 1e-10 * size * F * np.sqrt(T) / 100.0 / 100.0}


@pytest.mark.parametrize("path", sorted(PATHS))
def test_vanna_volga_vs_finite_differences_of_our_delta_and_vega(path):
    g = _vanna_volga_grid()
    base = _kernel_inputs(g)
    h = 1e-5 * g["vol"]  # vol bump (decimal); central differences, O(h^2) error
    up, _ = PATHS[path](**{**base, "vol": g["vol"] + h})
    dn, _ = PATHS[path](**{**base, "vol": g["vol"] - h})
    got, _ = PATHS[path](**base)
    fd_vanna = (up["delta"] - dn["delta"]) / (2 * h * 100.0)      # per vol point
    fd_volga = (up["vega_usd"] - dn["vega_usd"]) / (2 * h * 100.0)
    floors = _fd_floors(g)
    ctx = {k: g[k] for k in ("cp", "S", "F", "strike", "T", "r", "vol", "z")}
    assert_close(f"{path} vanna", got["vanna"], fd_vanna, FD_RTOL, floors["vanna"], ctx)
    assert_close(f"{path} volga", got["volga"], fd_volga, FD_RTOL, floors["volga"], ctx)


def test_vanna_volga_vs_finite_differences_of_quantlib_delta_and_vega():
    g = _vanna_volga_grid(seed=123)
    n = g["S"].shape[0]
    fd_vanna = np.empty(n)
    fd_volga = np.empty(n)
    for i in range(n):
        S, F, T, r, vol = (float(g[k][i]) for k in ("S", "F", "T", "r", "vol"))
        size = float(g["qty"][i] * g["csize"][i])
        h = 1e-5 * vol
        up = _blackcalculator(g["cp"][i], g["strike"][i], F, vol + h, T, r)
        dn = _blackcalculator(g["cp"][i], g["strike"][i], F, vol - h, T, r)
        fd_vanna[i] = size * (up.delta(S) - dn.delta(S)) / (2 * h) / 100.0
        fd_volga[i] = size * (up.vega(T) - dn.vega(T)) / (2 * h) / 100.0 / 100.0
    got, _ = kernel_measures(**_kernel_inputs(g))
    floors = _fd_floors(g)
    noise = _ql_first_order_noise(g)
    h = 1e-5 * g["vol"]
    floors["vanna"] = floors["vanna"] + noise["delta"] / (2 * h) / 100.0
    floors["volga"] = floors["volga"] + noise["vega"] / (2 * h) / 1e4
    ctx = {k: g[k] for k in ("cp", "S", "F", "strike", "T", "r", "vol", "z")}
    assert_close("vanna", got["vanna"], fd_vanna, FD_RTOL, floors["vanna"], ctx)
    assert_close("volga", got["volga"], fd_volga, FD_RTOL, floors["volga"], ctx)


def _ql_first_order_noise(g):
    """Rounding noise of QuantLib's BlackCalculator delta(S) and vega(T), which a difference
    quotient divides by 2h.

    BlackCalculator forms delta(S) as D [n(d1) F - n(d2) K] / (S sigma sqrt T) + D N(d1) F/S: the
    bracket is exactly 0 in theory (F n(d1) = K n(d2)) but each term is rounded, leaving noise of
    ~eps D n(d1) F / (S sigma sqrt T) - large for short-dated near-the-money options. vega(T) adds
    n(d1) F (ln(K/F) / (sigma^2 T) +- 1/2) terms whose large parts cancel likewise. 16 eps x the
    size of the cancelling terms, per position.
    """
    eps = np.finfo(np.float64).eps
    size = np.abs(g["qty"] * g["csize"])
    F, S, T, vol, K, r = g["F"], g["S"], g["T"], g["vol"], g["strike"], g["r"]
    sd = vol * np.sqrt(T)
    d1 = np.log(F / K) / sd + 0.5 * sd
    n1 = np.exp(-0.5 * d1 * d1) / np.sqrt(2 * np.pi)
    D = np.exp(-r * T)
    return {
        "delta": 16 * eps * size * D * n1 * F / (S * sd),
        "vega": 16 * eps * size * D * np.sqrt(T) * F * n1 * (np.abs(np.log(K / F)) / sd**2 + 1.0),
    }


# --- published reference values (Haug) ----------------------------------------------------------
#
# E.G. Haug, "Option pricing formulas", McGraw-Hill 1998 (1st ed. of "The Complete Guide to Option
# Pricing Formulas"), as tabulated in QuantLib test-suite/europeanoption.cpp. The generalized
# Black-Scholes examples have a dividend yield / cost of carry: S, q, r map to our Black-76 inputs
# by quoting the forward F = S exp((r - q) T) (q = r: futures options, F = S, Black-76 proper).
# Values are printed to 4 decimals; QuantLib checks them to 1e-4, we use the printed half-unit
# 5e-5 (plus 1e-12 slack for the representation of the decimal), except for the one entry Haug
# rounds the wrong way: the at-the-money futures option F = K = 100, T = 0.1, vol = 15% is
# exactly 1.873345 (QuantLib agrees), printed 1.8734; that entry is held to QuantLib's 1e-4.

PRINTED = 0.5e-4 + 1e-12
HAUG_MISROUNDED = 1.0e-4

HAUG_VALUES = [
    # type, strike, spot, q, r, t, vol, value        (Haug 1998, pag 2-8)
    ("call", 65.00, 60.00, 0.00, 0.08, 0.25, 0.30, 2.1334),
    ("put", 95.00, 100.00, 0.05, 0.10, 0.50, 0.20, 2.4648),
    ("put", 19.00, 19.00, 0.10, 0.10, 0.75, 0.28, 1.7011),  # Black-76: F=19, K=19, T=0.75, r=10%
    ("call", 19.00, 19.00, 0.10, 0.10, 0.75, 0.28, 1.7011),
    ("call", 1.60, 1.56, 0.08, 0.06, 0.50, 0.12, 0.0291),  # Garman-Kohlhagen currency option
    ("put", 70.00, 75.00, 0.05, 0.10, 0.50, 0.35, 4.0870),
    # pag 24: futures options (q = r, b = 0), T in {0.1, 0.5}, vol in {15%, 25%, 35%}
    ("call", 100.00, 90.00, 0.10, 0.10, 0.10, 0.15, 0.0205),
    ("call", 100.00, 100.00, 0.10, 0.10, 0.10, 0.15, 1.8734),
    ("call", 100.00, 110.00, 0.10, 0.10, 0.10, 0.15, 9.9413),
    ("call", 100.00, 90.00, 0.10, 0.10, 0.10, 0.25, 0.3150),
    ("call", 100.00, 100.00, 0.10, 0.10, 0.10, 0.25, 3.1217),
    ("call", 100.00, 110.00, 0.10, 0.10, 0.10, 0.25, 10.3556),
    ("call", 100.00, 90.00, 0.10, 0.10, 0.10, 0.35, 0.9474),
    ("call", 100.00, 100.00, 0.10, 0.10, 0.10, 0.35, 4.3693),
    ("call", 100.00, 110.00, 0.10, 0.10, 0.10, 0.35, 11.1381),
    ("call", 100.00, 90.00, 0.10, 0.10, 0.50, 0.15, 0.8069),
    ("call", 100.00, 100.00, 0.10, 0.10, 0.50, 0.15, 4.0232),
    ("call", 100.00, 110.00, 0.10, 0.10, 0.50, 0.15, 10.5769),
    ("call", 100.00, 90.00, 0.10, 0.10, 0.50, 0.25, 2.7026),
    ("call", 100.00, 100.00, 0.10, 0.10, 0.50, 0.25, 6.6997),
    ("call", 100.00, 110.00, 0.10, 0.10, 0.50, 0.25, 12.7857),
    ("call", 100.00, 90.00, 0.10, 0.10, 0.50, 0.35, 4.9329),
    ("call", 100.00, 100.00, 0.10, 0.10, 0.50, 0.35, 9.3679),
    ("call", 100.00, 110.00, 0.10, 0.10, 0.50, 0.35, 15.3086),
    ("put", 100.00, 90.00, 0.10, 0.10, 0.10, 0.15, 9.9210),
    ("put", 100.00, 100.00, 0.10, 0.10, 0.10, 0.15, 1.8734),
    ("put", 100.00, 110.00, 0.10, 0.10, 0.10, 0.15, 0.0408),
    ("put", 100.00, 90.00, 0.10, 0.10, 0.10, 0.25, 10.2155),
    ("put", 100.00, 100.00, 0.10, 0.10, 0.10, 0.25, 3.1217),
    ("put", 100.00, 110.00, 0.10, 0.10, 0.10, 0.25, 0.4551),
    ("put", 100.00, 90.00, 0.10, 0.10, 0.10, 0.35, 10.8479),
    ("put", 100.00, 100.00, 0.10, 0.10, 0.10, 0.35, 4.3693),
    ("put", 100.00, 110.00, 0.10, 0.10, 0.10, 0.35, 1.2376),
    ("put", 100.00, 90.00, 0.10, 0.10, 0.50, 0.15, 10.3192),
    ("put", 100.00, 100.00, 0.10, 0.10, 0.50, 0.15, 4.0232),
    ("put", 100.00, 110.00, 0.10, 0.10, 0.50, 0.15, 1.0646),
    ("put", 100.00, 90.00, 0.10, 0.10, 0.50, 0.25, 12.2149),
    ("put", 100.00, 100.00, 0.10, 0.10, 0.50, 0.25, 6.6997),
    ("put", 100.00, 110.00, 0.10, 0.10, 0.50, 0.25, 3.2734),
    ("put", 100.00, 90.00, 0.10, 0.10, 0.50, 0.35, 14.4452),
    ("put", 100.00, 100.00, 0.10, 0.10, 0.50, 0.35, 9.3679),
    ("put", 100.00, 110.00, 0.10, 0.10, 0.50, 0.35, 5.7963),
    # pag 27
    ("call", 40.00, 42.00, 0.08, 0.04, 0.75, 0.35, 5.0975),
]


def _haug_inputs(rows):
    cp = np.array([ins.CALL if row[0] == "call" else ins.PUT for row in rows], dtype=np.int8)
    K, S, q, r, T, vol = (np.array([row[i] for row in rows], dtype=np.float64) for i in range(1, 7))
    F = S * np.exp((r - q) * T)
    return dict(kind=ins.KIND_OPTION, cp=cp, strike=K, T=T, S=S, fwd=F, r=r, vol=vol), q


@pytest.mark.parametrize("path", sorted(PATHS))
def test_haug_published_values(path):
    inputs, _ = _haug_inputs(HAUG_VALUES)
    got, status = PATHS[path](**inputs)
    assert (status == ins.STATUS_OK).all()
    expected = np.array([row[-1] for row in HAUG_VALUES])
    tol = np.where(expected == 1.8734, HAUG_MISROUNDED, PRINTED)
    assert (tol == HAUG_MISROUNDED).sum() == 2  # the call and the put
    assert_close(f"{path} Haug values", got["value_usd"], expected, 0.0, tol,
                 {"row": np.arange(len(HAUG_VALUES))})


def test_haug_black76_futures_option_example():
    """Haug's Black-76 example: futures option F = 19, K = 19, T = 0.75, r = 10%, vol = 28%:
    call = put = 1.7011 (at the money forward, so the call and put values are identical)."""
    for settle in (ins.SETTLE_LINEAR, ins.SETTLE_INVERSE):
        got, _ = kernel_measures(kind=ins.KIND_OPTION, settle=settle, cp=[ins.CALL, ins.PUT],
                                 strike=19.0, T=0.75, S=19.0, fwd=19.0, r=0.10, vol=0.28)
        assert got["value_usd"] == pytest.approx([1.7011, 1.7011], abs=PRINTED)
        assert got["value_usd"][0] == pytest.approx(got["value_usd"][1], rel=1e-14)


# Haug 1998 pag 11-16 (QuantLib EuropeanOptionTest::testGreekValues): generalized Black-Scholes
# greeks at fixed spot S with carry b = r - q. Ours are Black-76 greeks at fixed F; with
# F = S exp(b T):
#   delta, gamma: identical (delta = dV/dS with dF/dS = F/S; same for gamma);
#   vega (per unit vol) = 100 vega_usd;
#   theta (per year, S fixed) = -dV/dT|F - b F dV/dF = 365 theta_usd - b S delta;
#   rho (S and q fixed) = dV/dr|F + T F dV/dF = 100 rho_usd + T S delta;
#   dividendRho = dV/dq|S = -T F dV/dF = -T S delta;
#   elasticity = delta S / V.
HAUG_GREEKS = [
    # measure, type, strike, spot, q, r, t, vol, published
    ("delta", "call", 100.00, 105.00, 0.10, 0.10, 0.5, 0.36, 0.5946),
    ("delta", "put", 100.00, 105.00, 0.10, 0.10, 0.5, 0.36, -0.3566),
    ("elasticity", "put", 100.00, 105.00, 0.10, 0.10, 0.5, 0.36, -4.8775),
    ("gamma", "call", 60.00, 55.00, 0.00, 0.10, 0.75, 0.30, 0.0278),
    ("gamma", "put", 60.00, 55.00, 0.00, 0.10, 0.75, 0.30, 0.0278),
    ("vega", "call", 60.00, 55.00, 0.00, 0.10, 0.75, 0.30, 18.9358),
    ("vega", "put", 60.00, 55.00, 0.00, 0.10, 0.75, 0.30, 18.9358),
    ("theta", "put", 405.00, 430.00, 0.05, 0.07, 1.0 / 12.0, 0.20, -31.1924),
    ("thetaPerDay", "put", 405.00, 430.00, 0.05, 0.07, 1.0 / 12.0, 0.20, -0.0855),
    ("rho", "call", 75.00, 72.00, 0.00, 0.09, 1.0, 0.19, 38.7325),
    ("dividendRho", "put", 490.00, 500.00, 0.05, 0.08, 0.25, 0.15, 42.2254),
]


@pytest.mark.parametrize("row", HAUG_GREEKS, ids=[f"{r[0]}-{r[1]}" for r in HAUG_GREEKS])
@pytest.mark.parametrize("path", sorted(PATHS))
def test_haug_published_greeks(path, row):
    measure, published = row[0], row[-1]
    inputs, q = _haug_inputs([row[1:-1]])
    got, status = PATHS[path](**inputs)
    assert status[0] == ins.STATUS_OK
    m = {k: float(v[0]) for k, v in got.items()}
    S, T, r, q = float(inputs["S"][0]), float(inputs["T"][0]), float(inputs["r"][0]), float(q[0])
    b = r - q
    derived = {
        "delta": m["delta"],
        "gamma": m["gamma"],
        "vega": 100.0 * m["vega_usd"],
        "theta": 365.0 * m["theta_usd"] - b * S * m["delta"],
        "thetaPerDay": m["theta_usd"] - b * S * m["delta"] / 365.0,
        "rho": 100.0 * m["rho_usd"] + T * S * m["delta"],
        "dividendRho": -T * S * m["delta"],
        "elasticity": m["delta"] * S / m["value_usd"],
    }[measure]
    assert derived == pytest.approx(published, abs=PRINTED)
