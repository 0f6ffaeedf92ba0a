"""Hypothesis properties of the compiled CPU kernel ``position_greeks``.

* put-call parity (USD and coin values, delta, delta_pa, gamma, vega, theta, rho, vanna, volga),
  linear and inverse;
* central finite differences of every greek (delta and gamma bumping S with F = S e^{rT} moving with
  it; vega, vanna, volga bumping vol; theta bumping T and rho bumping r with a quoted, fixed F;
  delta_pa = S d(value_coin)/dS for inverse positions);
* linear scaling in quantity (exact for powers of 2) and exact sign flip;
* the compiled kernel agrees with the scalar functions run as plain Python.

Examples are derandomized with no database (reproducible in CI), 200 per property.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuskew.kernels import instruments as ins
from gpuskew.schema import MEASURE_NAMES
from kernel_helpers import HYPOTHESIS_SETTINGS, assert_close, kernel_measures, python_measures

#: relative tolerance of central finite differences (step sizes below keep truncation ~1e-7)
FD_RTOL = 1e-6
#: absolute floor of finite-difference comparisons, as a fraction of each greek's natural scale
FD_FLOOR = 1e-10

finite = dict(allow_nan=False, allow_infinity=False)


def _log_uniform(lo, hi):
    return st.floats(math.log(lo), math.log(hi), **finite).map(math.exp)


@st.composite
def option_batches(draw, min_size=1, max_size=6):
    """A batch of option positions: S from 1 to 2e5 USD, 1 hour to 5 years, 5% to 300% vol,
    r from -1% to 10%, log-moneyness ln(F/K) from -4 to +4 standard deviations, calls and puts,
    linear and inverse, with or without a quoted forward (basis +-5%)."""
    n = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(n):
        S = draw(_log_uniform(1.0, 2e5))
        T = draw(_log_uniform(1.0 / 8760.0, 5.0))
        vol = draw(_log_uniform(0.05, 3.0))
        r = draw(st.floats(-0.01, 0.10, **finite))
        z = draw(st.floats(-4.0, 4.0, **finite))
        quoted = draw(st.booleans())
        F = S * math.exp(r * T + (draw(st.floats(-0.05, 0.05, **finite)) if quoted else 0.0))
        rows.append(dict(
            kind=ins.KIND_OPTION,
            settle=draw(st.sampled_from([ins.SETTLE_LINEAR, ins.SETTLE_INVERSE])),
            cp=draw(st.sampled_from([ins.CALL, ins.PUT])),
            qty=draw(st.sampled_from([-1.0, 1.0])) * draw(_log_uniform(0.01, 1000.0)),
            csize=draw(st.sampled_from([1.0, 0.1, 10.0])),
            strike=F * math.exp(-z * vol * math.sqrt(T)), T=T, S=S, fwd=F if quoted else 0.0,
            r=r, vol=vol, entry=0.0))
    return _stack(rows)


@st.composite
def any_batches(draw, min_size=1, max_size=6):
    """A batch of positions of every kind and settlement (options priced as above, perpetuals and
    futures with and without entry price and quoted mark/forward, spot; some expired)."""
    n = draw(st.integers(min_size, max_size))
    rows = []
    for _ in range(n):
        kind = draw(st.sampled_from([ins.KIND_SPOT, ins.KIND_PERPETUAL, ins.KIND_FUTURE,
                                     ins.KIND_OPTION]))
        S = draw(_log_uniform(0.01, 2e5))
        T = draw(st.one_of(_log_uniform(1.0 / 8760.0, 5.0), st.sampled_from([0.0, -0.5])))
        vol = draw(_log_uniform(0.05, 3.0))
        r = draw(st.floats(-0.01, 0.10, **finite))
        quoted = draw(st.booleans())
        F = S * math.exp(draw(st.floats(-0.1, 0.1, **finite)))
        sd = vol * math.sqrt(max(T, 1e-4))
        rows.append(dict(
            kind=kind,
            settle=draw(st.sampled_from([ins.SETTLE_LINEAR, ins.SETTLE_INVERSE])),
            cp=draw(st.sampled_from([ins.CALL, ins.PUT])) if kind == ins.KIND_OPTION else 0,
            qty=draw(st.sampled_from([-1.0, 1.0])) * draw(_log_uniform(1e-3, 1e4)),
            csize=draw(st.sampled_from([1.0, 0.1, 10.0, 0.001, 100.0])),
            strike=F * math.exp(-draw(st.floats(-4.0, 4.0, **finite)) * sd)
            if kind == ins.KIND_OPTION else 0.0,
            T=T, S=S, fwd=F if quoted else 0.0, r=r, vol=vol,
            entry=S * math.exp(draw(st.floats(-0.5, 0.5, **finite)))
            if draw(st.booleans()) else 0.0))
    return _stack(rows)


def _stack(rows):
    return {k: np.array([row[k] for row in rows]) for k in rows[0]}


def _forward(p):
    return np.where(p["fwd"] > 0, p["fwd"], p["S"] * np.exp(p["r"] * p["T"]))


def _natural_scales(p):
    """Per-position natural magnitude of each greek (for absolute floors)."""
    size = np.abs(p["qty"] * p["csize"])
    F, S, T, vol, r = _forward(p), p["S"], p["T"], p["vol"], p["r"]
    g = F / S
    return {
        "value_usd": size * F,
        "delta": size * g,
        "gamma": size * g * g / (F * vol * np.sqrt(T)),
        "vega_usd": size * F * np.sqrt(T) / 100.0,
        "theta_usd": size * F * (np.abs(r) + vol / np.sqrt(T)) / 365.0,
        "rho_usd": size * F * T / 100.0,
        "vanna": size * g / 100.0,
        "volga": size * F * np.sqrt(T) / 1e4,
    }


# --- put-call parity ------------------------------------------------------------------------------

@settings(**HYPOTHESIS_SETTINGS)
@given(option_batches())
def test_put_call_parity(p):
    """C - P = D (F - K) per coin (both settlements), in USD and in coins; the greeks of D (F - K):
    delta D F/S, gamma/vega/vanna/volga equal, theta r D (F - K)/365, rho -T D (F - K)/100; and for
    inverse options delta_pa(C) - delta_pa(P) = D K / S."""
    calls, sc = kernel_measures(**{**p, "cp": np.full_like(p["cp"], ins.CALL)})
    puts, sp = kernel_measures(**{**p, "cp": np.full_like(p["cp"], ins.PUT)})
    assert (sc == ins.STATUS_OK).all() and (sp == ins.STATUS_OK).all()
    size = p["qty"] * p["csize"]
    F, K, S, T, r = _forward(p), p["strike"], p["S"], p["T"], p["r"]
    D = np.exp(-r * T)
    # floor: 1e-13 of the terms of the identity (F and K legs), per unit of each measure
    legs = np.abs(size) * D * (F + K)
    expected = {
        "value_usd": (size * D * (F - K), legs),
        "value_coin": (size * D * (F - K) / S, legs / S),
        "delta": (size * D * F / S, legs / S),
        "gamma": (0.0, 1e-3 * _natural_scales(p)["gamma"]),
        "vega_usd": (0.0, 1e-3 * _natural_scales(p)["vega_usd"]),
        "vanna": (0.0, 1e-3 * _natural_scales(p)["vanna"]),
        "volga": (0.0, 1e-3 * _natural_scales(p)["volga"]),
        "theta_usd": (size * r * D * (F - K) / 365.0,
                      legs * (np.abs(r) + p["vol"] / np.sqrt(T)) / 365.0),
        "rho_usd": (-size * T * D * (F - K) / 100.0, legs * T / 100.0),
    }
    inverse = p["settle"] == ins.SETTLE_INVERSE
    expected["delta_pa"] = (np.where(inverse, size * D * K / S, size * D * F / S), legs / S)
    for name, (exp, scale) in expected.items():
        assert_close(f"parity {name}", calls[name] - puts[name], np.broadcast_to(exp, S.shape),
                     1e-12, 1e-13 * scale, p)


# --- finite differences ---------------------------------------------------------------------------

def _rounding(p, h, value_scale=None):
    """Floor for a central difference of the USD value with step h: the value is a difference of
    Black's two legs, D F N(.) and D K N(.), each rounded at ~eps of its size (deep ITM with
    K >> F the legs dwarf the greek), so the difference quotient carries ~eps (legs) / h."""
    if value_scale is None:
        value_scale = np.abs(p["qty"] * p["csize"]) * np.exp(-p["r"] * p["T"]) * (
            _forward(p) + p["strike"])
    return 64.0 * np.finfo(np.float64).eps * value_scale / (2.0 * h)


def _fd(p, key, h, measure):
    """Central difference of ``measure`` w.r.t. input ``key`` with step ``h`` (array)."""
    up, su = kernel_measures(**{**p, key: p[key] + h})
    dn, sd = kernel_measures(**{**p, key: p[key] - h})
    assert (su == ins.STATUS_OK).all() and (sd == ins.STATUS_OK).all()
    return (up[measure] - dn[measure]) / (2.0 * h)


@settings(**HYPOTHESIS_SETTINGS)
@given(option_batches())
def test_delta_gamma_by_bumping_S(p):
    """delta = dV/dS and gamma = d(delta)/dS with F moving in proportion to S: no quoted forward
    (F = S e^{rT}); step 1e-4 standard deviations of S."""
    p = {**p, "fwd": np.zeros_like(p["fwd"])}
    got, _ = kernel_measures(**p)
    h = 1e-4 * np.minimum(p["vol"] * np.sqrt(p["T"]), 1.0) * p["S"]
    scales = _natural_scales(p)
    assert_close("delta", got["delta"], _fd(p, "S", h, "value_usd"), FD_RTOL,
                 FD_FLOOR * scales["delta"] + _rounding(p, h), p)
    assert_close("gamma", got["gamma"], _fd(p, "S", h, "delta"), FD_RTOL,
                 FD_FLOOR * scales["gamma"], p)
    # the per-1% and USD forms
    assert_close("gamma_1pct", got["gamma_1pct"], got["gamma"] * p["S"] / 100.0, 1e-15, 0.0)
    assert_close("delta_usd", got["delta_usd"], got["delta"] * p["S"], 1e-15, 0.0)


@settings(**HYPOTHESIS_SETTINGS)
@given(option_batches())
def test_vega_vanna_volga_by_bumping_vol(p):
    """vega_usd = dV/dvol per vol point; vanna = d(delta)/dvol and volga = d(vega_usd)/dvol, per
    vol point; step 1e-5 vol (relative)."""
    got, _ = kernel_measures(**p)
    h = 1e-5 * p["vol"]
    scales = _natural_scales(p)
    for name, of in (("vega_usd", "value_usd"), ("vanna", "delta"), ("volga", "vega_usd")):
        # rounding of the central difference: a few ulps of the differenced measure over the step
        rounding = (_rounding(p, h) if of == "value_usd" else 4 * np.finfo(float).eps * np.abs(got[of]) / h) / 100.0
        assert_close(name, got[name], _fd(p, "vol", h, of) / 100.0, FD_RTOL,
                     FD_FLOOR * scales[name] + rounding, p)


@settings(**HYPOTHESIS_SETTINGS)
@given(option_batches())
def test_theta_by_bumping_T_and_rho_by_bumping_r_with_F_fixed(p):
    """theta_usd = -dV/dT per calendar day (/365) and rho_usd = dV/dr per 1% (/100), both with the
    forward quoted (fixed) and vol fixed; steps 1e-5 T and 1e-4 in r."""
    p = {**p, "fwd": _forward(p)}
    got, _ = kernel_measures(**p)
    scales = _natural_scales(p)
    hT = 1e-5 * p["T"]
    assert_close("theta_usd", got["theta_usd"], -_fd(p, "T", hT, "value_usd") / 365.0, FD_RTOL,
                 FD_FLOOR * scales["theta_usd"] + _rounding(p, hT) / 365.0, p)
    hr = np.full_like(p["r"], 1e-4)
    assert_close("rho_usd", got["rho_usd"], _fd(p, "r", hr, "value_usd") / 100.0, FD_RTOL,
                 FD_FLOOR * scales["rho_usd"] + _rounding(p, hr) / 100.0, p)


@settings(**HYPOTHESIS_SETTINGS)
@given(any_batches())
def test_delta_pa_is_S_times_dvalue_coin_dS(p):
    """For every position, delta_pa relates to the coin value: for inverse-settled ones
    delta_pa = delta - V/S = S d(V/S)/dS (the coin-margined hedge ratio), for linear ones delta_pa
    = delta = dV/dS. F moves with S (no quoted forward/mark); expired positions excluded. Perpetuals
    and futures get an entry price (without one their value is 0 by convention, not a P&L)."""
    live = (p["T"] > 0) | (p["kind"] == ins.KIND_SPOT) | (p["kind"] == ins.KIND_PERPETUAL)
    if not live.any():
        return
    p = {k: v[live] for k, v in p.items()}
    p["fwd"] = np.zeros_like(p["fwd"])
    p["T"] = np.where(p["T"] > 0, p["T"], 1.0)  # spot/perpetuals ignore T
    p["entry"] = np.where(p["entry"] > 0, p["entry"], 1.1 * p["S"])
    got, _ = kernel_measures(**p)
    h = 1e-4 * np.minimum(p["vol"] * np.sqrt(p["T"]), 1.0) * p["S"]
    inverse = (p["settle"] == ins.SETTLE_INVERSE) & (p["kind"] != ins.KIND_SPOT)
    expected = np.where(inverse, p["S"] * _fd(p, "S", h, "value_coin"), _fd(p, "S", h, "value_usd"))
    option = p["kind"] == ins.KIND_OPTION
    size = np.abs(p["qty"] * p["csize"])
    F = _forward(p)
    # inverse perps/futures: delta_pa = N/F, scale |N|/F; linear ones and spot: n F/S coins
    scale = np.where(option | ~inverse, _natural_scales(p)["delta"], size / F)
    # rounding of the value: Black's legs for options, S N (1/F0 + 1/F) for inverse perps/futures,
    # n (F + F0) for linear ones
    legs = np.where(option, size * np.exp(-p["r"] * p["T"]) * (F + p["strike"]),
                    np.where(inverse, p["S"] * size * (1 / p["entry"] + 1 / F),
                             size * (F + p["entry"])))
    assert_close("delta_pa", got["delta_pa"], expected, FD_RTOL,
                 FD_FLOOR * scale + _rounding(p, h, legs), p)


# --- scaling and sign -----------------------------------------------------------------------------

@settings(**HYPOTHESIS_SETTINGS)
@given(any_batches(), st.integers(-20, 20))
def test_quantity_scaling_exact_for_powers_of_two(p, j):
    k = 2.0 ** j
    base, s0 = kernel_measures(**p)
    scaled, s1 = kernel_measures(**{**p, "qty": p["qty"] * k})
    np.testing.assert_array_equal(s0, s1)
    for name in MEASURE_NAMES:
        np.testing.assert_array_equal(scaled[name], k * base[name], err_msg=name)


@settings(**HYPOTHESIS_SETTINGS)
@given(any_batches(), _log_uniform(1e-3, 1e3))
def test_quantity_scaling_relative(p, k):
    """measures(q k) = k measures(q) to 1e-12 relative; delta_pa of inverse options, a difference
    delta - V/S, gets a floor of 1e-12 (|delta| + |V/S|)."""
    base, s0 = kernel_measures(**p)
    scaled, s1 = kernel_measures(**{**p, "qty": p["qty"] * k})
    np.testing.assert_array_equal(s0, s1)
    for name in MEASURE_NAMES:
        atol = 0.0
        if name == "delta_pa":
            atol = 1e-12 * k * (np.abs(base["delta"]) + np.abs(base["value_coin"]))
        assert_close(name, scaled[name], k * base[name], 1e-12, atol, p)


@settings(**HYPOTHESIS_SETTINGS)
@given(any_batches())
def test_sign_flip_is_exact(p):
    base, s0 = kernel_measures(**p)
    flipped, s1 = kernel_measures(**{**p, "qty": -p["qty"]})
    np.testing.assert_array_equal(s0, s1)
    for name in MEASURE_NAMES:
        np.testing.assert_array_equal(flipped[name], -base[name], err_msg=name)
        assert np.isfinite(base[name]).all(), name


@settings(**HYPOTHESIS_SETTINGS)
@given(any_batches())
def test_compiled_kernel_agrees_with_plain_python(p):
    """The compiled kernel and the scalar functions run as plain Python (what the CUDA simulator
    executes) agree to 1e-13 relative (a difference, e.g. delta_pa = delta - V/S, gets a floor of
    1e-13 x its terms): one formula, two execution paths."""
    compiled, s0 = kernel_measures(**p)
    plain, s1 = python_measures(**p)
    np.testing.assert_array_equal(s0, s1)
    for name in MEASURE_NAMES:
        atol = 1e-13 * (np.abs(compiled["delta"]) + np.abs(compiled["value_coin"])) \
            if name == "delta_pa" else 0.0
        assert_close(name, compiled[name], plain[name], 1e-13, atol, p)
