"""Quote skew: the Avellaneda-Stoikov reservation price offset and inventory-skew size multipliers.

Reservation price (Avellaneda & Stoikov 2008, "High-frequency trading in a limit order book",
Quantitative Finance 8(3), 217-224): r = s - q * gamma * sigma_p^2 * (T - t), with sigma_p the
volatility of the *price* (USD per sqrt(year)). With sigma an annualised relative vol,
sigma_p = sigma * S, so the offset implemented here is

    offset = -q * gamma * (sigma * S)^2 * tau     [USD per coin]

q the deviation from target (coins), gamma the risk aversion (1/USD), tau the horizon in years.
Long of target (q > 0) -> negative offset: quote lower to sell inventory down. Hummingbot's
``avellaneda_market_making`` computes ``price - q * gamma * vol * time_left_fraction`` (sigma where
the paper has sigma^2, vol a price standard deviation, q normalised by the inventory, so its gamma
is a fraction of the vol); we keep the paper's sigma^2 with sigma_p = sigma * S, so that gamma is
an absolute risk aversion in 1/USD and the offset is in USD per coin.

Size multipliers (Hummingbot's inventory-skew shape, on the band rather than a fixed range):
piecewise linear in the position, (bid, ask) = (2, 0) at the lower band edge, (1, 1) at the
target, (0, 2) at the upper edge, clamped outside the band: bid = 1 - t, ask = 1 + t with
t = clip(skew, -1, 1).
"""

from __future__ import annotations

import numpy as np

from gpuskew.adherence.bands import HOURS_PER_YEAR, skew as _skew


def reservation_offset(q: np.ndarray | float, risk_aversion: np.ndarray | float,
                       vol: np.ndarray | float, spot: np.ndarray | float,
                       tau_years: np.ndarray | float) -> np.ndarray:
    """-q * gamma * (sigma * S)^2 * tau, USD per coin.

    q: deviation from target (coins); risk_aversion gamma (1/USD); vol sigma (annualised,
    relative); spot S (USD); tau_years: horizon (years).
    """
    q = np.asarray(q, dtype=np.float64)
    sp = np.asarray(vol, dtype=np.float64) * np.asarray(spot, dtype=np.float64)
    ra = np.asarray(risk_aversion, dtype=np.float64)
    return -q * ra * sp * sp * np.asarray(tau_years, dtype=np.float64)


def tau_years(tau_hours: float) -> float:
    """Hours -> ACT/365 years."""
    return tau_hours / HOURS_PER_YEAR


def multipliers_from_skew(skew: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """(bid, ask) size multipliers from the signed skew: (1 - t, 1 + t), t = clip(skew, -1, 1)."""
    t = np.clip(np.asarray(skew, dtype=np.float64), -1.0, 1.0)
    return 1.0 - t, 1.0 + t


def size_multipliers(actual: np.ndarray | float, target: np.ndarray | float,
                     lower: np.ndarray | float, upper: np.ndarray | float
                     ) -> tuple[np.ndarray, np.ndarray]:
    """(bid, ask) size multipliers of a position within the band [lower, upper] around target.

    Linear from (2, 0) at ``lower`` through (1, 1) at ``target`` to (0, 2) at ``upper``, clamped
    outside; an asymmetric band has a different slope on each side.
    """
    a = np.asarray(actual, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    sk = _skew(a - t, t - np.asarray(lower, dtype=np.float64), np.asarray(upper, np.float64) - t)
    return multipliers_from_skew(sk)


__all__ = ["reservation_offset", "tau_years", "multipliers_from_skew", "size_multipliers"]
