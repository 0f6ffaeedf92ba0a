"""Target and band models against hand-computed values and their published forms."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuskew.adherence.bands import (
    SKEW_CAP,
    half_widths,
    skew,
    var_half_width,
    whalley_wilmott_half_width,
    z_score,
)
from gpuskew.errors import InvalidInput
from gpuskew.policy.limits import BandSpec, TargetSpec
from gpuskew.adherence.targets import group_value_usd, target_coins
from gpuskew.core.groups import GroupIndex
from gpuskew.schema import EXPOSURES

HYP = settings(max_examples=60, deadline=None)


def a(*v):
    return np.array(v, dtype=np.float64)


# ---------------------------------------------------------------------------------------------
# targets


def test_neutral_and_fixed():
    s = a(100_000.0, 50_000.0)
    assert target_coins(TargetSpec("neutral"), spot=s).tolist() == [0.0, 0.0]
    assert target_coins(TargetSpec("fixed", coins=-2.5), spot=s).tolist() == [-2.5, -2.5]
    # 150k USD at 100k and at 50k -> 1.5 and 3 coins
    np.testing.assert_allclose(target_coins(TargetSpec("fixed", usd=150_000), spot=s), [1.5, 3.0],
                               rtol=1e-15)


def test_base_pct_group_value_includes_cash():
    # one desk with BTC (value 1M), ETH (0.5M) and USDC cash (2.5M): V = 4M
    level = ["desk", "desk", "desk", "desk", "underlying"]
    desk = ["d", "d", "d", "e", None]
    und = ["BTC", "ETH", "USDC", "BTC", "BTC"]
    value = a(1e6, 0.5e6, 2.5e6, 7e6, 8e6)
    table = pa.table({"level": level, "underlying": und, "desk": desk})
    keys = GroupIndex(table, EXPOSURES).portfolio_codes()
    assert keys.tolist() == [0, 0, 0, 1, 2]
    v = group_value_usd(keys, und, value, "group")
    np.testing.assert_allclose(v, [4e6, 4e6, 4e6, 7e6, 8e6], rtol=1e-15)
    # 40% of 4M in BTC at 100k = 16 BTC; 25% in ETH at 2000 = 500 ETH
    spec = TargetSpec("base_pct", share=0.4)
    np.testing.assert_allclose(target_coins(spec, spot=a(100_000.0), group_value_usd=v[:1]), [16.0],
                               rtol=1e-15)
    # pair scope (Hummingbot's base + quote): BTC row: 1M + 2.5M cash; cash row: the cash only
    vp = group_value_usd(keys, und, value, "pair", ("USDC",))
    np.testing.assert_allclose(vp, [3.5e6, 3.0e6, 2.5e6, 7e6, 8e6], rtol=1e-15)
    # the configurable cash list: without USDC, no cash at all
    vn = group_value_usd(keys, und, value, "pair", ("USDT",))
    np.testing.assert_allclose(vn, [1e6, 0.5e6, 2.5e6, 7e6, 8e6], rtol=1e-15)


def test_carry_hand_computed_sign_and_clip():
    spec = TargetSpec("carry", risk_aversion=1e-6, max_coins=10.0)
    # f = 10%/y paid by longs, sigma 50%, S = 100k: q* = -0.1 / (1e-6 * 0.25 * 1e5) = -4 coins
    q = target_coins(spec, spot=a(100_000.0, 100_000.0, 100_000.0), vol=a(0.5, 0.5, 0.5),
                     funding_rate=a(0.1, -0.05, 0.0))
    np.testing.assert_allclose(q, [-4.0, 2.0, 0.0], rtol=1e-14)
    assert q[0] < 0 < q[1]  # longs pay -> short target; shorts pay -> long target
    # clip: f = 1.0 -> -40 coins, clipped to -10; max_usd 500k at 100k -> 5 coins
    q = target_coins(spec, spot=a(100_000.0), vol=a(0.5), funding_rate=a(1.0))
    assert q.tolist() == [-10.0]
    spec_usd = TargetSpec("carry", risk_aversion=1e-6, max_usd=500_000.0)
    q = target_coins(spec_usd, spot=a(100_000.0, 100_000.0), vol=a(0.5, 0.5),
                     funding_rate=a(1.0, -1.0))
    np.testing.assert_allclose(q, [-5.0, 5.0], rtol=1e-15)


def test_carry_missing_inputs_are_clear_errors():
    spec = TargetSpec("carry", risk_aversion=1e-6, max_coins=10.0, key="underlying.ETH.target")
    with pytest.raises(InvalidInput) as ei:
        target_coins(spec, spot=a(3000.0, 100.0), vol=a(np.nan, 0.5), funding_rate=a(0.1, 0.1),
                     underlying=["ETH", "SOL"])
    e = ei.value
    assert e.column == "vol" and "ETH" in e.rule and "SOL" not in e.rule
    assert "underlying.ETH.target" in e.rule and "carry" in e.rule
    with pytest.raises(InvalidInput) as ei:
        target_coins(spec, spot=a(3000.0), vol=a(0.5), funding_rate=a(np.nan), underlying=["ETH"])
    assert ei.value.column == "funding_rate"
    with pytest.raises(InvalidInput):
        target_coins(spec, spot=a(3000.0), vol=a(0.0), funding_rate=a(0.1), underlying=["ETH"])


# ---------------------------------------------------------------------------------------------
# bands


def test_z_score():
    assert z_score(0.99) == pytest.approx(2.3263478740408408, rel=1e-15)
    assert z_score(0.95) == pytest.approx(1.6448536269514722, rel=1e-15)


def test_var_band_hand_computed():
    # 1M USD, 99%, 1 day, sigma 80%, S 50k: 1e6 / (2.32635 * 0.8 * 50000 * sqrt(1/365)) = 205.31
    hw = var_half_width(1e6, a(50_000.0), a(0.8), 0.99, 24.0)
    assert hw[0] == pytest.approx(205.31079409630246, rel=1e-12)
    # 250k USD, 95%, 8 hours (8/8760 y), sigma 60%, S 3000 -> 2794.13 coins
    hw = var_half_width(250_000.0, a(3000.0), a(0.6), 0.95, 8.0)
    assert hw[0] == pytest.approx(2794.1344912723484, rel=1e-12)
    spec = BandSpec("var", lower_budget_usd=1e6, upper_budget_usd=2e6, confidence=0.99)
    lo, up = half_widths(spec, spot=a(50_000.0), vol=a(0.8))
    assert lo[0] == pytest.approx(205.31079409630246, rel=1e-12)
    assert up[0] == pytest.approx(2 * 205.31079409630246, rel=1e-12)
    # the loss of the half-width in a z-sigma move over h equals the budget
    h = 24.0 / (24 * 365)
    assert lo[0] * 2.3263478740408408 * 0.8 * 50_000.0 * math.sqrt(h) == pytest.approx(1e6)


def test_var_band_needs_vol():
    spec = BandSpec("var", lower_budget_usd=1.0, upper_budget_usd=1.0, key="underlying.XRP.band")
    with pytest.raises(InvalidInput) as ei:
        half_widths(spec, spot=a(2.0), vol=None, underlying=["XRP"])
    assert ei.value.column == "vol" and "XRP" in ei.value.rule and "var" in ei.value.rule


def test_whalley_wilmott_hand_computed():
    # 3 * 0.002 * 1000 * 0.04^2 / (2 * 0.0006) = 8 -> H = 2 coins
    h = whalley_wilmott_half_width(0.002, a(1000.0), a(0.04), 0.0006)
    assert h[0] == pytest.approx(2.0, rel=1e-14)
    # the sign of gamma does not matter (Gamma^2)
    assert whalley_wilmott_half_width(0.002, a(1000.0), a(-0.04), 0.0006)[0] == pytest.approx(2.0)
    # H ~ lambda^(1/3), Gamma^(2/3), gamma^(-1/3)
    assert whalley_wilmott_half_width(0.016, a(1000.0), a(0.04), 0.0006)[0] == pytest.approx(4.0)
    assert whalley_wilmott_half_width(0.002, a(1000.0), a(0.32), 0.0006)[0] == pytest.approx(8.0)
    # BandSpec path: cost from the spec wins over the cost passed in
    spec = BandSpec("whalley_wilmott", risk_aversion=0.0006, cost=0.002)
    lo, up = half_widths(spec, spot=a(1000.0), gamma=a(0.04), cost=0.5)
    assert lo[0] == up[0] == pytest.approx(2.0, rel=1e-14)
    spec = BandSpec("whalley_wilmott", risk_aversion=0.0006)
    lo, up = half_widths(spec, spot=a(1000.0), gamma=a(0.04), cost=a(0.002))
    assert lo[0] == pytest.approx(2.0, rel=1e-14)


@HYP
@given(lam=st.floats(1e-5, 1e-2), s=st.floats(0.1, 1e6), g=st.floats(1e-8, 1e3),
       ra=st.floats(1e-10, 1e-2), k=st.sampled_from([1e-3, 1e-2, 10.0, 1e3]))
def test_whalley_wilmott_dimensions(lam, s, g, ra, k):
    """H is in coins: quote the same position in a coin k times smaller (S/k per unit, Gamma in
    units^2/USD: Gamma*k^2) and H in those units is k times larger, the USD width unchanged."""
    h1 = whalley_wilmott_half_width(lam, a(s), a(g), ra)[0]
    hk = whalley_wilmott_half_width(lam, a(s / k), a(g * k * k), ra)[0]
    assert hk == pytest.approx(h1 * k, rel=1e-10)


def test_fixed_band_units_floor_and_cap():
    s = a(100_000.0, 2.0)
    spec = BandSpec("fixed", lower_coins=1.0, upper_usd=300_000.0)
    lo, up = half_widths(spec, spot=s)
    np.testing.assert_allclose(lo, [1.0, 1.0])
    np.testing.assert_allclose(up, [3.0, 150_000.0])
    # cap 2 coins and 100k USD: min of the two; floor 0.5 coins / 50k USD: max of the two
    spec = BandSpec("fixed", lower_coins=0.1, upper_coins=10.0, cap_coins=2.0, cap_usd=100_000.0,
                    floor_coins=0.5, floor_usd=50_000.0)
    lo, up = half_widths(spec, spot=s)
    # S = 100k: floor = max(0.5, 0.5) = 0.5, cap = min(2, 1) = 1
    # S = 2:    floor = max(0.5, 25000) = 25000, cap = min(2, 50000) = 2 -> the floor wins
    np.testing.assert_allclose(lo, [0.5, 25_000.0])
    np.testing.assert_allclose(up, [1.0, 25_000.0])


def test_whalley_wilmott_zero_gamma_uses_the_floor():
    spec = BandSpec("whalley_wilmott", risk_aversion=1e-6, cost=0.001, floor_usd=10_000.0,
                    cap_usd=1e6)
    lo, up = half_widths(spec, spot=a(100_000.0, 100_000.0), gamma=a(0.0, 1.0))
    assert lo[0] == up[0] == pytest.approx(0.1)
    assert up[1] == pytest.approx(10.0)  # (3e-3 * 1e5 / 2e-6)^(1/3) = 531 > cap 10 coins


# ---------------------------------------------------------------------------------------------
# skew


def test_skew_sides_and_zero_width():
    s = skew(a(2.0, -2.0, 0.0, 0.0, 1.0, -1.0, 3.0), a(4.0, 4.0, 0.0, 1.0, 0.0, 0.0, 1.0),
             a(1.0, 1.0, 0.0, 1.0, 0.0, 0.0, 6.0))
    assert s.tolist() == [2.0, -0.5, 0.0, 0.0, SKEW_CAP, -SKEW_CAP, 0.5]
    assert np.isfinite(skew(a(1e300), a(1.0), a(1e-300))).all()


@HYP
@given(dev=st.floats(-1e6, 1e6), lo=st.floats(0.0, 1e6), up=st.floats(0.0, 1e6))
def test_skew_inside_band_iff_at_most_one(dev, lo, up):
    s = skew(a(dev), a(lo), a(up))[0]
    inside = -lo <= dev <= up
    assert (abs(s) <= 1.0) == inside
    assert s == 0.0 or np.sign(s) == np.sign(dev)


def test_the_adherence_and_the_sweep_share_one_definition_of_each_constant_and_rule():
    """Years, the VaR quantile, the skew cap, the allowed hedges and a band's lambda: one
    definition each (the adherence's bands and hedges and the sweep's kernel parameters)."""
    from gpuskew.adherence import bands, check, hedging
    from gpuskew.kernels import policy as kp
    from gpuskew.policy import grid

    assert bands.SKEW_CAP == kp.SKEW_CAP and bands.HOURS_PER_YEAR == 24.0 * 365.0 and bands.DAYS_PER_YEAR == 365.0
    assert bands.z_score is grid.z_score and hedging.allowed is grid.hedge_allowed
    assert check.band_cost is grid.band_cost and not hasattr(check, "_ww_cost")
