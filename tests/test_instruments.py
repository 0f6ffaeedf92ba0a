"""Per-contract measures (kernels/instruments.py): inverse (coin-settled) identities, perpetuals,
futures, spot, Deribit's DeltaTotal example, and expiry handling.

Every test runs both through the compiled CPU kernel ``position_greeks`` and through the scalar
``position_measures`` called as plain Python (``path`` fixture).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import ndtr

from gpuskew.kernels import instruments as ins
from gpuskew.schema import MEASURE_NAMES
from kernel_helpers import PATHS, assert_close

#: measures that are identically zero for spot, perpetuals and futures
OPTION_ONLY = ("gamma", "gamma_1pct", "vega_usd", "theta_usd", "rho_usd", "vanna", "volga")
#: relative tolerance of closed-form identities evaluated in floating point
RTOL = 1e-12


@pytest.fixture(params=sorted(PATHS))
def run(request):
    return PATHS[request.param]


def _random_options(n, seed, settle):
    rng = np.random.default_rng(seed)
    S = np.exp(rng.uniform(math.log(1.0), math.log(1e5), n))
    T = np.exp(rng.uniform(math.log(1 / 8760), math.log(3.0), n))
    vol = rng.uniform(0.1, 2.0, n)
    r = rng.uniform(-0.01, 0.1, n)
    quoted = rng.random(n) < 0.5
    F = np.where(quoted, S * np.exp(r * T + rng.uniform(-0.05, 0.05, n)), S * np.exp(r * T))
    K = F * np.exp(-rng.uniform(-2.5, 2.5, n) * vol * np.sqrt(T))
    cp = np.where(rng.random(n) < 0.5, ins.CALL, ins.PUT).astype(np.int8)
    qty = rng.choice([-1.0, 1.0], n) * rng.uniform(0.1, 50.0, n)
    return dict(kind=ins.KIND_OPTION, settle=settle, cp=cp, qty=qty,
                csize=rng.choice([1.0, 0.1], n), strike=K, T=T, S=S,
                fwd=np.where(quoted, F, 0.0), r=r, vol=vol), F


# --- inverse options ------------------------------------------------------------------------------

def test_inverse_call_r0_delta_pa_is_K_over_F_N_d2(run):
    """Inverse call, r = 0, no forward quote (F = S): delta_pa = delta - V/S
    = N(d1) - (F N(d1) - K N(d2)) / F = (K/F) N(d2) per coin; for the put -(K/F) N(-d2)."""
    S = 60_000.0
    K = np.array([20_000.0, 45_000.0, 58_000.0, 60_000.0, 62_000.0, 80_000.0, 150_000.0])
    T = np.array([1 / 365, 7 / 365, 30 / 365, 0.25, 0.5, 1.0, 2.0])
    vol = np.array([0.45, 0.9, 0.6, 0.55, 0.7, 0.8, 1.2])
    qty, csize = 3.0, 1.0
    sd = vol * np.sqrt(T)
    d2 = (np.log(S / K) - 0.5 * sd * sd) / sd
    for cp, expected in ((ins.CALL, K / S * ndtr(d2)), (ins.PUT, -K / S * ndtr(-d2))):
        got, status = run(kind=ins.KIND_OPTION, settle=ins.SETTLE_INVERSE, cp=cp, qty=qty,
                          csize=csize, strike=K, T=T, S=S, r=0.0, vol=vol)
        assert (status == ins.STATUS_OK).all()
        # floor: 1e-13 coins per coin of the position (the cancellation delta - V/S)
        assert_close(f"delta_pa cp={cp}", got["delta_pa"], qty * csize * expected, 1e-11,
                     1e-13 * qty * csize)


@pytest.mark.parametrize("seed", [1, 2])
def test_inverse_option_delta_pa_and_coin_value(run, seed):
    """Any inverse option: delta_pa = delta - value_usd / S, value_coin = value_usd / S, and every
    USD measure equals that of the same linear (USDC-settled) option."""
    inv_in, _ = _random_options(300, seed, ins.SETTLE_INVERSE)
    inv, status = run(**inv_in)
    lin, _ = run(**{**inv_in, "settle": ins.SETTLE_LINEAR})
    assert (status == ins.STATUS_OK).all()
    S = inv_in["S"]
    scale = np.abs(inv["delta"]) + np.abs(inv["value_usd"] / S)
    assert_close("delta_pa", inv["delta_pa"], inv["delta"] - inv["value_usd"] / S, RTOL,
                 1e-15 * scale)
    assert_close("value_coin", inv["value_coin"], inv["value_usd"] / S, RTOL, 0.0)
    for name in MEASURE_NAMES:
        if name != "delta_pa":
            np.testing.assert_array_equal(inv[name], lin[name], err_msg=name)
    np.testing.assert_array_equal(lin["delta_pa"], lin["delta"])
    # a long inverse call's coin hedge ratio is below its delta (the premium is held in coins);
    # a long put's is more negative
    long = inv_in["qty"] > 0
    assert (inv["delta_pa"][long] < inv["delta"][long]).all()


def test_deribit_delta_total_worked_example(run):
    """Deribit's DeltaTotal example (Deribit FAQ "What does Delta Total in the account summary
    mean?"; Deribit API docs: DeltaTotal uses the Net Transaction Delta of options = Black-Scholes
    delta - mark price of the option in BTC): "If you buy a call option with delta 0.50 for
    0.10 BTC, your DeltaTotal will increase with 0.40."

    Construct such an option: r = 0, F = S, delta N(d1) = 0.5 needs d1 = 0, i.e.
    K = F exp(s^2 / 2) with s = sigma sqrt(T); the value in BTC is then
    0.5 - exp(s^2 / 2) N(-s) = 0.10, solved for s. With T = 0.25 the vol is about 59.8%.
    """
    s = brentq(lambda s: math.exp(0.5 * s * s) * ndtr(-s) - 0.4, 1e-6, 5.0, xtol=1e-15)
    S, T = 60_000.0, 0.25
    vol = s / math.sqrt(T)
    K = S * math.exp(0.5 * s * s)
    got, status = run(kind=ins.KIND_OPTION, settle=ins.SETTLE_INVERSE, cp=ins.CALL, qty=1.0,
                      csize=1.0, strike=K, T=T, S=S, r=0.0, vol=vol)
    assert status[0] == ins.STATUS_OK
    assert 0.55 < vol < 0.65 and 62_000 < K < 63_000  # a realistic BTC call
    assert got["delta"][0] == pytest.approx(0.50, abs=1e-12)
    assert got["value_coin"][0] == pytest.approx(0.10, abs=1e-12)
    assert got["value_usd"][0] == pytest.approx(0.10 * S, rel=1e-11)
    assert got["delta_pa"][0] == pytest.approx(0.40, abs=1e-12)
    # the same call, USDC settled: the premium is paid in USD, the hedge ratio is the delta
    lin, _ = run(kind=ins.KIND_OPTION, settle=ins.SETTLE_LINEAR, cp=ins.CALL, qty=1.0, csize=1.0,
                 strike=K, T=T, S=S, r=0.0, vol=vol)
    assert lin["delta_pa"][0] == pytest.approx(0.50, abs=1e-12)


# --- perpetuals and futures -----------------------------------------------------------------------

def test_inverse_perpetual_deribit_contracts(run):
    """BTC-PERPETUAL: $10 per contract. 1000 contracts = USD 10,000 notional N; at mark 50,000
    delta_pa = N/F = 0.2 BTC. Entered at 40,000: delta = N/entry = 0.25 BTC and the USD value
    S N (1/entry - 1/F) = 50,000 x 10,000 x (1/40,000 - 1/50,000) = 2,500 (with F = S)."""
    got, status = run(kind=ins.KIND_PERPETUAL, settle=ins.SETTLE_INVERSE, qty=[1000.0, 1000.0],
                      csize=10.0, S=50_000.0, entry=[40_000.0, 0.0])
    assert (status == ins.STATUS_OK).all()
    assert got["delta_pa"] == pytest.approx([0.2, 0.2], rel=1e-15)
    assert got["delta"] == pytest.approx([0.25, 0.2], rel=1e-15)
    assert got["value_usd"] == pytest.approx([2500.0, 0.0], rel=1e-12)
    assert got["value_coin"] == pytest.approx([0.05, 0.0], rel=1e-12)
    assert got["delta_usd"] == pytest.approx([12_500.0, 10_000.0], rel=1e-15)


@pytest.mark.parametrize("kind", [ins.KIND_PERPETUAL, ins.KIND_FUTURE])
def test_inverse_perp_and_future_formulas(run, kind):
    """USD notional N = quantity x contract_size: delta_pa = N/F; with an entry F0, delta = N/F0
    and value = S N (1/F0 - 1/F); without, delta = N/F and value = 0. F: the quoted mark/forward,
    else S (perpetual) or S e^{rT} (future)."""
    rng = np.random.default_rng(11 + kind)
    n = 200
    S = np.exp(rng.uniform(math.log(0.5), math.log(1e5), n))
    r = rng.uniform(-0.01, 0.1, n)
    T = rng.uniform(0.01, 2.0, n)
    quoted = rng.random(n) < 0.5
    fwd = np.where(quoted, S * np.exp(rng.uniform(-0.05, 0.05, n)), 0.0)
    entry = np.where(rng.random(n) < 0.7, S * np.exp(rng.uniform(-0.5, 0.5, n)), 0.0)
    qty = rng.choice([-1.0, 1.0], n) * rng.integers(1, 100_000, n)
    csize = rng.choice([1.0, 10.0, 100.0], n)
    got, status = run(kind=kind, settle=ins.SETTLE_INVERSE, qty=qty, csize=csize, T=T, S=S,
                      fwd=fwd, r=r, entry=entry)
    assert (status == ins.STATUS_OK).all()
    if kind == ins.KIND_PERPETUAL:
        F = np.where(quoted, fwd, S)
    else:
        F = np.where(quoted, fwd, S * np.exp(r * T))
    N = qty * csize
    has_entry = entry > 0
    safe_entry = np.where(has_entry, entry, 1.0)
    assert_close("delta_pa", got["delta_pa"], N / F, RTOL, 0.0)
    assert_close("delta", got["delta"], np.where(has_entry, N / safe_entry, N / F), RTOL, 0.0)
    value = np.where(has_entry, S * N * (1 / safe_entry - 1 / F), 0.0)
    # floor: the subtraction 1/F0 - 1/F, 1e-15 x S N (1/F0 + 1/F)
    assert_close("value_usd", got["value_usd"], value, RTOL,
                 1e-15 * np.abs(S * N) * (1 / safe_entry + 1 / F))
    assert_close("value_coin", got["value_coin"], got["value_usd"] / S, RTOL, 0.0)
    assert_close("delta_pa = delta - V/S", got["delta_pa"], got["delta"] - got["value_usd"] / S,
                 1e-11, 1e-14 * np.abs(N) / F)
    for name in OPTION_ONLY:
        np.testing.assert_array_equal(got[name], 0.0, err_msg=name)


def test_inverse_perp_value_is_linear_in_S_with_slope_delta(run):
    """No quoted mark (F = S): V(S) = N (S/F0 - 1) is linear in S with slope delta = N/F0, while the
    coin-margined hedge ratio delta_pa = N/S changes with the price (the inverse convexity)."""
    S = np.array([30_000.0, 40_000.0, 50_000.0, 60_000.0])
    got, _ = run(kind=ins.KIND_PERPETUAL, settle=ins.SETTLE_INVERSE, qty=-2500.0, csize=10.0, S=S,
                 entry=45_000.0)
    slopes = np.diff(got["value_usd"]) / np.diff(S)
    np.testing.assert_allclose(slopes, -25_000.0 / 45_000.0, rtol=1e-10)
    np.testing.assert_allclose(got["delta"], -25_000.0 / 45_000.0, rtol=1e-15)
    np.testing.assert_allclose(got["delta_pa"], -25_000.0 / S, rtol=1e-15)


@pytest.mark.parametrize("kind", [ins.KIND_PERPETUAL, ins.KIND_FUTURE])
def test_linear_perp_and_future_formulas(run, kind):
    """n = quantity x contract_size coins: delta = n F/S, value = n (F - entry) with an entry
    else 0, delta_pa = delta."""
    S, r, T = 2_000.0, 0.05, 0.5
    qty = np.array([3.0, -7.0, 3.0, 1.5])
    csize = np.array([1.0, 0.1, 1.0, 10.0])
    fwd = np.array([2_010.0, 0.0, 0.0, 1_990.0])
    entry = np.array([1_900.0, 2_100.0, 0.0, 2_000.0])
    got, status = run(kind=kind, settle=ins.SETTLE_LINEAR, qty=qty, csize=csize, T=T, S=S,
                      fwd=fwd, r=r, entry=entry)
    assert (status == ins.STATUS_OK).all()
    F_default = S if kind == ins.KIND_PERPETUAL else S * math.exp(r * T)
    F = np.where(fwd > 0, fwd, F_default)
    n = qty * csize
    assert_close("delta", got["delta"], n * F / S, RTOL, 0.0)
    assert_close("value_usd", got["value_usd"], np.where(entry > 0, n * (F - entry), 0.0), RTOL,
                 0.0)
    np.testing.assert_array_equal(got["delta_pa"], got["delta"])
    assert_close("delta_usd", got["delta_usd"], n * F, RTOL, 0.0)
    for name in OPTION_ONLY:
        np.testing.assert_array_equal(got[name], 0.0, err_msg=name)
    # worked numbers: 3 coins long entered at 1,900 with the mark quoted at 2,010
    assert got["value_usd"][0] == pytest.approx(330.0, rel=1e-14)
    assert got["delta"][0] == pytest.approx(3.0 * 2_010.0 / 2_000.0, rel=1e-15)


def test_spot(run):
    """Spot: delta = quantity x contract_size coins, value = delta S, delta_pa = delta; no option
    greeks, whatever T, r, vol or entry say."""
    qty = np.array([2.5, -1.0, 1000.0])
    csize = np.array([1.0, 1.0, 0.001])
    got, status = run(kind=ins.KIND_SPOT, settle=ins.SETTLE_LINEAR, qty=qty, csize=csize,
                      S=64_000.0, T=[0.0, -1.0, 0.5], r=0.05, vol=0.6, entry=[50_000.0, 0.0, 1.0],
                      fwd=[0.0, 0.0, 65_000.0])
    assert (status == ins.STATUS_OK).all()
    np.testing.assert_array_equal(got["delta"], qty * csize)
    np.testing.assert_array_equal(got["delta_pa"], qty * csize)
    np.testing.assert_array_equal(got["value_usd"], qty * csize * 64_000.0)
    np.testing.assert_array_equal(got["value_coin"], qty * csize)
    for name in OPTION_ONLY:
        np.testing.assert_array_equal(got[name], 0.0, err_msg=name)


def test_value_coin_is_value_over_S_for_every_kind(run):
    kinds = [ins.KIND_SPOT, ins.KIND_PERPETUAL, ins.KIND_FUTURE, ins.KIND_OPTION] * 2
    settles = [ins.SETTLE_LINEAR] * 4 + [ins.SETTLE_INVERSE] * 4
    cp = [0, 0, 0, ins.CALL] * 2
    got, status = run(kind=kinds, settle=settles, cp=cp, qty=-3.0, csize=10.0, strike=3_300.0,
                      T=0.3, S=3_000.0, r=0.04, vol=0.7, entry=[0, 2_900, 3_100, 0] * 2)
    assert (status == ins.STATUS_OK).all()
    assert_close("value_coin", got["value_coin"], got["value_usd"] / 3_000.0, RTOL, 0.0)
    assert_close("delta_usd", got["delta_usd"], got["delta"] * 3_000.0, RTOL, 0.0)
    assert_close("gamma_1pct", got["gamma_1pct"], got["gamma"] * 30.0, RTOL, 0.0)
    assert (got["value_usd"] != 0).all()  # every position here has a value (entries given)


# --- expiry ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("settle", [ins.SETTLE_LINEAR, ins.SETTLE_INVERSE])
def test_expired_options_and_futures(run, settle):
    """T <= 0: status EXPIRED and every measure exactly 0 (never NaN), for options and futures;
    spot and perpetuals have no expiry and still price."""
    T = np.array([0.0, -0.0, -1e-12, -1.0 / 8760, -3.0])
    for kind, cp in ((ins.KIND_OPTION, ins.CALL), (ins.KIND_OPTION, ins.PUT),
                     (ins.KIND_FUTURE, 0)):
        got, status = run(kind=kind, settle=settle, cp=cp, qty=5.0, csize=1.0, strike=50_000.0,
                          T=T, S=55_000.0, fwd=[0.0, 55_100.0, 0.0, 0.0, 0.0], r=0.05, vol=0.6,
                          entry=[0.0, 0.0, 50_000.0, 0.0, 50_000.0])
        np.testing.assert_array_equal(status, ins.STATUS_EXPIRED)
        for name in MEASURE_NAMES:
            np.testing.assert_array_equal(got[name], 0.0, err_msg=f"{kind} {cp} {name}")
    for kind in (ins.KIND_SPOT, ins.KIND_PERPETUAL):
        got, status = run(kind=kind, settle=settle if kind != ins.KIND_SPOT else ins.SETTLE_LINEAR,
                          qty=5.0, csize=1.0, T=T, S=55_000.0, entry=50_000.0)
        np.testing.assert_array_equal(status, ins.STATUS_OK)
        assert (got["delta"] != 0).all()


@pytest.mark.parametrize("settle", [ins.SETTLE_LINEAR, ins.SETTLE_INVERSE])
def test_tiny_positive_T_still_prices(run, settle):
    """One second (and less) before expiry the option is priced: status OK, finite measures,
    value -> discounted intrinsic, delta -> 0 or +-1 away from the money."""
    S, K, r = 55_000.0, np.array([50_000.0, 60_000.0, 55_000.0]), 0.05
    for T in (1.0 / 31_536_000.0, 1e-12, 5e-324):
        D, F = math.exp(-r * T), S * math.exp(r * T)
        for cp, sign in ((ins.CALL, 1.0), (ins.PUT, -1.0)):
            got, status = run(kind=ins.KIND_OPTION, settle=settle, cp=cp, qty=2.0, csize=1.0,
                              strike=K, T=T, S=S, r=r, vol=0.8)
            np.testing.assert_array_equal(status, ins.STATUS_OK)
            for name in MEASURE_NAMES:
                assert np.isfinite(got[name]).all(), (T, cp, name, got[name])
            intrinsic = D * np.maximum(sign * (F - K[:2]), 0.0)
            assert got["value_usd"][:2] == pytest.approx(2.0 * intrinsic, rel=1e-12, abs=1e-9)
            itm = sign * (F - K[:2]) > 0
            assert got["delta"][:2] == pytest.approx(2.0 * sign * itm * D * F / S, abs=1e-12)
            # at the money: a tiny time value, 0.4 F vol sqrt(T) (it rounds to 0 for T = 5e-324)
            assert got["value_usd"][2] == pytest.approx(
                2.0 * 0.3989422804014327 * F * 0.8 * math.sqrt(T), rel=1e-3, abs=1e-9)
            assert got["value_usd"][2] >= 0
    # futures too
    got, status = run(kind=ins.KIND_FUTURE, settle=settle, qty=2.0, csize=1.0, T=1e-12, S=S,
                      entry=50_000.0)
    assert status[0] == ins.STATUS_OK and got["delta"][0] != 0
