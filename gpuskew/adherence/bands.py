"""Band models: the tolerated deviation around the target, as half-widths in coins (lower, upper).

Vectorised over group rows sharing one :class:`~gpuskew.limits.BandSpec`. The formulas live once,
as scalar functions in ``gpuskew.kernels.policy`` (the backtest's policy sweep runs the same ones);
this module calls them through small vectorised wrappers (``gpuskew.kernels.cpu.band_*_vec``):

* ``fixed``: half-width = coins, or usd / S, per side (asymmetric allowed).
* ``var``: half-width = budget_usd / (z * sigma * S * sqrt(h)), z = N^-1(confidence), h the horizon
  in years (ACT/365: hours / (24 * 365)). A deviation of that many coins loses the budget in a
  z-sigma move of S over h (one-sided normal VaR).
* ``whalley_wilmott``: H = (3 * lambda * S * Gamma^2 / (2 * gamma))^(1/3), lambda the proportional
  cost of trading the hedge, Gamma the group's net gamma, gamma the risk aversion (1/USD)
  [Whalley & Wilmott 1997]; symmetric.
* ``zakamouline``: H = H0 + H1 (Zakamouline 2006), H0 = lambda / (gamma S sigma^2 tau),
  H1 = 1.12 lambda^0.31 tau^0.05 (exp(-r tau)/sigma)^0.25 (|Gamma|/gamma)^0.5, tau =
  ``tau_days`` / 365; symmetric. (The paper centres the band on the delta at a modified vol:
  :func:`zakamouline_terms` gives that shift; backtests apply it, ``gpuskew run`` keeps the band
  centred on the target.)

Then per side: half = min(half, cap), then max(half, floor) (the floor wins), with cap =
min(cap_coins, cap_usd / S) and floor = max(floor_coins, floor_usd / S) over those given.

Also here, the band geometry shared by adherence and quoting: :func:`skew`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from gpuskew.adherence.targets import require_positive
from gpuskew.errors import InvalidConfig
from gpuskew.policy import grid as _grid
from gpuskew.policy.limits import BandSpec

#: Hours in the ACT/365 year.
HOURS_PER_YEAR: float = _grid.HOURS_PER_YEAR
#: Days in the ACT/365 year.
DAYS_PER_YEAR: float = _grid.DAYS_PER_YEAR
#: One-sided standard normal quantile (the sweep's kernel parameters use the same).
z_score = _grid.z_score


def __getattr__(name: str) -> float:
    # SKEW_CAP: |skew| reported for a nonzero deviation against a zero half-width (instead of
    # infinity): the kernels' constant, read when asked (importing kernels.policy imports numba)
    if name == "SKEW_CAP":
        from gpuskew.kernels.policy import SKEW_CAP

        return SKEW_CAP
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _kernels():
    from gpuskew.kernels import cpu

    return cpu


def _vectors(*arrays: float | np.ndarray) -> tuple[tuple[int, ...], list[np.ndarray]]:
    """Broadcast to one shape; return the shape and contiguous float64 1-d copies."""
    b = np.broadcast_arrays(*[np.asarray(a, dtype=np.float64) for a in arrays])
    shape = b[0].shape
    return shape, [np.array(x, dtype=np.float64).reshape(-1) for x in b]  # copies: writable, contiguous


def var_half_width(budget_usd: float | np.ndarray, spot: np.ndarray, vol: np.ndarray,
                   confidence: float, horizon_hours: float) -> np.ndarray:
    """budget / (z * sigma * S * sqrt(h)), coins; h = horizon_hours / 8760 years."""
    shape, (budget, s, sigma) = _vectors(budget_usd, spot, vol)
    out = np.empty(s.shape[0])
    _kernels().band_var_vec(budget, z_score(confidence), sigma, s, math.sqrt(horizon_hours / HOURS_PER_YEAR),
                            out)
    return out.reshape(shape)


def whalley_wilmott_half_width(cost: float | np.ndarray, spot: np.ndarray, gamma: np.ndarray,
                               risk_aversion: float) -> np.ndarray:
    """H = (3 * lambda * S * Gamma^2 / (2 * gamma_ra))^(1/3), coins.

    cost lambda: fraction of notional; spot S: USD per coin; gamma Gamma: d(delta)/dS in coins per
    USD (per USD-per-coin of price: coins^2/USD); risk_aversion: 1/USD. Dimensions:
    (USD/coin)(coins^4/USD^2)/(1/USD) = coins^3, so H is in coins.
    """
    shape, (lam, s, g) = _vectors(cost, spot, gamma)
    out = np.empty(s.shape[0])
    _kernels().band_whalley_wilmott_vec(lam, s, g, float(risk_aversion), out)
    return out.reshape(shape)


def zakamouline_terms(cost: float | np.ndarray, spot: np.ndarray, vol: np.ndarray, gamma: np.ndarray,
                      risk_aversion: float, tau_years: float, rate: float | np.ndarray = 0.0,
                      vanna: float | np.ndarray = 0.0) -> dict[str, np.ndarray]:
    """Zakamouline's (2006) band terms per row: ``h0`` and ``h1`` (coins), ``k`` (<= 0), and
    ``shift`` = vanna (sigma_m - sigma) * 100, the move of the band centre to the delta at the
    modified vol sigma_m = sigma sqrt(1 -/+ K) (coins; vanna in coins per vol point).

    cost lambda (fraction), spot S (USD/coin), vol sigma (annualised), gamma Gamma (coins/USD),
    risk_aversion gamma (1/USD), tau_years (> 0), rate r (annualised).
    """
    shape, (lam, s, sigma, g, r, vn) = _vectors(cost, spot, vol, gamma, rate, vanna)
    n = s.shape[0]
    h0, h1, k, shift = (np.empty(n) for _ in range(4))
    _kernels().band_zakamouline_vec(lam, float(risk_aversion), s, sigma, float(tau_years), r, g, vn, h0, h1,
                                    k, shift)
    return {"h0": h0.reshape(shape), "h1": h1.reshape(shape), "k": k.reshape(shape),
            "shift": shift.reshape(shape)}


def _floor_cap(half: np.ndarray, spec: BandSpec, s: np.ndarray) -> np.ndarray:
    out = np.empty(s.shape[0])
    _kernels().band_floor_cap_vec(
        np.ascontiguousarray(half, dtype=np.float64),
        0.0 if spec.floor_coins is None else float(spec.floor_coins),
        0.0 if spec.floor_usd is None else float(spec.floor_usd),
        math.inf if spec.cap_coins is None else float(spec.cap_coins),
        math.inf if spec.cap_usd is None else float(spec.cap_usd), s, out)
    return out


def half_widths(spec: BandSpec, *, spot: np.ndarray, vol: np.ndarray | None = None,
                gamma: np.ndarray | None = None, cost: np.ndarray | float | None = None,
                underlying: Sequence[str] | None = None,
                rate: np.ndarray | float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(half_width_lower, half_width_upper) per group row, coins, floors and caps applied.

    spot S (USD); vol sigma (annualised; ``var`` and ``zakamouline``); gamma the group's net gamma
    (coins per USD; ``whalley_wilmott`` and ``zakamouline``); cost lambda (fraction; when the
    spec has no ``cost``); rate r (``zakamouline``'s discount); underlying: names for error
    messages.
    """
    s = np.ascontiguousarray(spot, dtype=np.float64).reshape(-1)
    n = s.shape[0]
    m = spec.model
    if m == "fixed":
        lo, up = np.empty(n), np.empty(n)
        for side, out in (("lower", lo), ("upper", up)):
            coins = getattr(spec, f"{side}_coins")
            usd = getattr(spec, f"{side}_usd")
            _kernels().band_fixed_vec(np.full(n, 0.0 if coins is None else float(coins)),
                                      np.full(n, 0.0 if usd is None else float(usd)), s, out)
    elif m == "var":
        sigma = require_positive(vol, n, "vol", spec.key, m, underlying)
        lo = var_half_width(spec.lower_budget_usd, s, sigma, spec.confidence, spec.horizon_hours)
        up = var_half_width(spec.upper_budget_usd, s, sigma, spec.confidence, spec.horizon_hours)
    elif m in ("whalley_wilmott", "zakamouline"):
        lam = spec.cost if spec.cost is not None else cost
        if lam is None:
            raise InvalidConfig("limits", f"{spec.key}.cost", None,
                                f"a {m} band needs the proportional cost lambda: set {spec.key}.cost")
        g = np.zeros(n) if gamma is None else np.nan_to_num(np.asarray(gamma, dtype=np.float64))
        if m == "whalley_wilmott":
            lo = whalley_wilmott_half_width(lam, s, g, spec.risk_aversion)
        else:
            sigma = require_positive(vol, n, "vol", spec.key, m, underlying)
            terms = zakamouline_terms(lam, s, sigma, g, spec.risk_aversion, spec.tau_days / DAYS_PER_YEAR, rate)
            lo = terms["h0"] + terms["h1"]
        up = lo.copy()
    else:
        raise ValueError(f"unknown band model {m!r}")
    lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (n,)).copy()
    up = np.broadcast_to(np.asarray(up, dtype=np.float64), (n,)).copy()
    return _floor_cap(lo, spec, s), _floor_cap(up, spec, s)


def skew(deviation: np.ndarray, half_width_lower: np.ndarray,
         half_width_upper: np.ndarray) -> np.ndarray:
    """Signed skew = deviation / the half-width on its side (upper if deviation >= 0, else lower).

    |skew| <= 1 inside the band. A zero half-width gives 0 for a zero deviation, else
    +/- SKEW_CAP (1e9); every skew is clipped to +/- SKEW_CAP, so it is always finite.
    """
    shape, (d, lo, up) = _vectors(deviation, half_width_lower, half_width_upper)
    out = np.empty(d.shape[0])
    _kernels().skew_vec(d, lo, up, out)
    return out.reshape(shape)


__all__ = ["half_widths", "var_half_width", "whalley_wilmott_half_width", "zakamouline_terms", "z_score",
           "skew", "HOURS_PER_YEAR", "SKEW_CAP"]
