"""Band models: the tolerated deviation around the target, as half-widths in coins (lower, upper).

Vectorised over group rows sharing one :class:`~gpuskew.limits.BandSpec`:

* ``fixed``: half-width = coins, or usd / S, per side (asymmetric allowed).
* ``var``: half-width = budget_usd / (z * sigma * S * sqrt(h)), z = N^-1(confidence), h the horizon
  in years (ACT/365: hours / (24 * 365)). A deviation of that many coins loses the budget in a
  z-sigma move of S over h (one-sided normal VaR).
* ``whalley_wilmott``: H = (3 * lambda * S * Gamma^2 / (2 * gamma))^(1/3), lambda the proportional
  cost of trading the hedge, Gamma the group's net gamma, gamma the risk aversion (1/USD)
  [Whalley & Wilmott 1997]; symmetric.

Then per side: half = min(half, cap), then max(half, floor) (the floor wins), with cap =
min(cap_coins, cap_usd / S) and floor = max(floor_coins, floor_usd / S) over those given.

Also here, the band geometry shared by adherence and quoting: :func:`skew`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from gpuskew.policy.limits import BandSpec
from gpuskew.adherence.targets import require_positive

#: Hours in the ACT/365 year.
HOURS_PER_YEAR: float = 24.0 * 365.0
#: |skew| reported for a nonzero deviation against a zero half-width (instead of infinity).
SKEW_CAP: float = 1e9


def z_score(confidence: float) -> float:
    """One-sided standard normal quantile z = N^-1(confidence) (0.99 -> 2.3263)."""
    return NormalDist().inv_cdf(confidence)


def var_half_width(budget_usd: float | np.ndarray, spot: np.ndarray, vol: np.ndarray,
                   confidence: float, horizon_hours: float) -> np.ndarray:
    """budget / (z * sigma * S * sqrt(h)), coins; h = horizon_hours / 8760 years."""
    h = horizon_hours / HOURS_PER_YEAR
    budget = np.asarray(budget_usd, dtype=np.float64)
    return budget / (z_score(confidence) * vol * spot * math.sqrt(h))


def whalley_wilmott_half_width(cost: float | np.ndarray, spot: np.ndarray, gamma: np.ndarray,
                               risk_aversion: float) -> np.ndarray:
    """H = (3 * lambda * S * Gamma^2 / (2 * gamma_ra))^(1/3), coins.

    cost lambda: fraction of notional; spot S: USD per coin; gamma Gamma: d(delta)/dS in coins per
    USD (per USD-per-coin of price: coins^2/USD); risk_aversion: 1/USD. Dimensions:
    (USD/coin)(coins^4/USD^2)/(1/USD) = coins^3, so H is in coins.
    """
    g = np.asarray(gamma, dtype=np.float64)
    return np.cbrt(3.0 * np.asarray(cost, dtype=np.float64) * spot * g * g / (2.0 * risk_aversion))


def half_widths(spec: BandSpec, *, spot: np.ndarray, vol: np.ndarray | None = None,
                gamma: np.ndarray | None = None, cost: np.ndarray | float | None = None,
                underlying: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(half_width_lower, half_width_upper) per group row, coins, floors and caps applied.

    spot S (USD); vol sigma (annualised; ``var`` only); gamma the group's net gamma (coins per USD;
    ``whalley_wilmott`` only); cost lambda (fraction; ``whalley_wilmott`` when the spec has no
    ``cost``); underlying: names for error messages.
    """
    s = np.asarray(spot, dtype=np.float64)
    n = s.shape[0]
    m = spec.model
    if m == "fixed":
        lo = np.full(n, spec.lower_coins) if spec.lower_coins is not None else spec.lower_usd / s
        up = np.full(n, spec.upper_coins) if spec.upper_coins is not None else spec.upper_usd / s
    elif m == "var":
        sigma = require_positive(vol, n, "vol", spec.key, m, underlying)
        lo = var_half_width(spec.lower_budget_usd, s, sigma, spec.confidence, spec.horizon_hours)
        up = var_half_width(spec.upper_budget_usd, s, sigma, spec.confidence, spec.horizon_hours)
    elif m == "whalley_wilmott":
        lam = spec.cost if spec.cost is not None else cost
        if lam is None:
            raise ValueError("whalley_wilmott band needs a cost")
        g = np.zeros(n) if gamma is None else np.nan_to_num(np.asarray(gamma, dtype=np.float64))
        lo = whalley_wilmott_half_width(lam, s, g, spec.risk_aversion)
        up = lo.copy()
    else:
        raise ValueError(f"unknown band model {m!r}")
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (n,)).copy()
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), (n,)).copy()
    cap = np.full(n, np.inf)
    if spec.cap_coins is not None:
        cap = np.minimum(cap, spec.cap_coins)
    if spec.cap_usd is not None:
        cap = np.minimum(cap, spec.cap_usd / s)
    floor = np.zeros(n)
    if spec.floor_coins is not None:
        floor = np.maximum(floor, spec.floor_coins)
    if spec.floor_usd is not None:
        floor = np.maximum(floor, spec.floor_usd / s)
    lo = np.maximum(np.minimum(lo, cap), floor)
    up = np.maximum(np.minimum(up, cap), floor)
    return lo, up


def skew(deviation: np.ndarray, half_width_lower: np.ndarray,
         half_width_upper: np.ndarray) -> np.ndarray:
    """Signed skew = deviation / the half-width on its side (upper if deviation >= 0, else lower).

    |skew| <= 1 inside the band. A zero half-width gives 0 for a zero deviation, else
    +/- SKEW_CAP (1e9); every skew is clipped to +/- SKEW_CAP, so it is always finite.
    """
    d = np.asarray(deviation, dtype=np.float64)
    w = np.where(d >= 0, half_width_upper, half_width_lower).astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        s = np.where(w > 0, d / np.where(w > 0, w, 1.0), np.sign(d) * SKEW_CAP)
    return np.clip(s, -SKEW_CAP, SKEW_CAP)


__all__ = ["half_widths", "var_half_width", "whalley_wilmott_half_width", "z_score", "skew",
           "HOURS_PER_YEAR", "SKEW_CAP"]
