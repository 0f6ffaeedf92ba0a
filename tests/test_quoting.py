"""Quote skew: the Avellaneda-Stoikov reservation offset and the size multipliers' shape."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpuskew.adherence.quoting import multipliers_from_skew, reservation_offset, size_multipliers, tau_years

HYP = settings(max_examples=80, deadline=None)


def test_reservation_offset_hand_computed():
    # q = 2 BTC long of target, gamma = 1e-6 /USD, sigma = 50%, S = 100k, tau = 1 hour:
    # -2 * 1e-6 * (0.5 * 1e5)^2 * (1/8760) = -5000 / 8760 = -0.5707762... USD
    off = reservation_offset(2.0, 1e-6, 0.5, 100_000.0, tau_years(1.0))
    assert float(off) == pytest.approx(-5000.0 / 8760.0, rel=1e-14)
    assert tau_years(24.0 * 365.0) == 1.0


def test_reservation_offset_signs_and_sigma_squared():
    args = dict(risk_aversion=1e-6, spot=3000.0, tau_years=0.01)
    long_ = float(reservation_offset(5.0, vol=0.6, **args))
    short = float(reservation_offset(-5.0, vol=0.6, **args))
    assert long_ < 0 < short and long_ == -short  # long -> quote lower to sell down
    assert float(reservation_offset(0.0, vol=0.6, **args)) == 0.0
    # the paper's sigma^2: doubling the vol quadruples the offset (Hummingbot's sigma would double)
    assert float(reservation_offset(5.0, vol=1.2, **args)) == pytest.approx(4 * long_, rel=1e-14)
    # sigma is relative, so the price variance (sigma S)^2 grows as S^2: at twice the price,
    # four times the offset (USD per coin) for the same q coins
    assert float(reservation_offset(5.0, vol=0.6, risk_aversion=1e-6, spot=6000.0,
                                    tau_years=0.01)) == pytest.approx(4 * long_, rel=1e-14)


def test_reservation_offset_vectorised_and_nan_propagates():
    off = reservation_offset(np.array([1.0, -1.0, 1.0]), np.array([1e-6, 1e-6, np.nan]),
                             np.array([0.5, 0.5, 0.5]), np.array([1e5, 1e5, 1e5]), 1.0)
    assert off[0] == pytest.approx(-2500.0) and off[1] == pytest.approx(2500.0)
    assert np.isnan(off[2])


def test_multipliers_shape_symmetric_band():
    lower, target, upper = -2.0, 0.0, 2.0
    pts = np.array([-2.0, -1.0, 0.0, 1.0, 2.0])
    bid, ask = size_multipliers(pts, target, lower, upper)
    np.testing.assert_allclose(bid, [2.0, 1.5, 1.0, 0.5, 0.0], atol=0)
    np.testing.assert_allclose(ask, [0.0, 0.5, 1.0, 1.5, 2.0], atol=0)
    # clamped outside the band
    bid, ask = size_multipliers(np.array([-100.0, 100.0]), target, lower, upper)
    assert bid.tolist() == [2.0, 0.0] and ask.tolist() == [0.0, 2.0]


def test_multipliers_asymmetric_band_and_offset_target():
    # target 10, lower edge 9 (1 below), upper edge 14 (4 above)
    bid, ask = size_multipliers(np.array([9.0, 9.5, 10.0, 12.0, 14.0, 20.0, 0.0]), 10.0, 9.0, 14.0)
    np.testing.assert_allclose(bid, [2.0, 1.5, 1.0, 0.5, 0.0, 0.0, 2.0])
    np.testing.assert_allclose(ask, [0.0, 0.5, 1.0, 1.5, 2.0, 2.0, 0.0])


def test_multipliers_zero_width_side():
    bid, ask = size_multipliers(np.array([0.0, 0.1, -0.1]), 0.0, 0.0, 1.0)
    np.testing.assert_allclose(bid, [1.0, 0.9, 2.0])
    np.testing.assert_allclose(ask, [1.0, 1.1, 0.0])


@HYP
@given(target=st.floats(-1e3, 1e3), lo=st.floats(1e-3, 1e3), up=st.floats(1e-3, 1e3),
       x1=st.floats(-3e3, 3e3), x2=st.floats(-3e3, 3e3))
def test_multipliers_properties(target, lo, up, x1, x2):
    a1, a2 = sorted((x1, x2))
    b, k = size_multipliers(np.array([a1, a2]), target, target - lo, target + up)
    assert np.all((b >= 0) & (b <= 2) & (k >= 0) & (k <= 2))
    np.testing.assert_allclose(b + k, 2.0, rtol=0, atol=1e-12)
    assert b[0] >= b[1] - 1e-12 and k[0] <= k[1] + 1e-12  # more inventory: bid less, ask more


def test_multipliers_from_skew():
    bid, ask = multipliers_from_skew(np.array([-3.0, -1.0, 0.0, 0.25, 1.0, 7.0]))
    assert bid.tolist() == [2.0, 2.0, 1.0, 0.75, 0.0, 0.0]
    assert ask.tolist() == [0.0, 0.0, 1.0, 1.25, 2.0, 2.0]
