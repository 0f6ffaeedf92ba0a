"""Black-76 closed forms on a forward F, per coin of underlying, in USD.

    d1 = (ln(F/K) + sigma^2 T / 2) / (sigma sqrt(T)),   d2 = d1 - sigma sqrt(T),   D = exp(-r T)
    call = D [F N(d1) - K N(d2)]        put = D [K N(-d2) - F N(-d1)]

Every function is scalar, plain Python, and compiled for both targets (``register_jitable``).
Sensitivities here are with respect to the forward F (the instruments module maps them to the index
price S with dF/dS = F/S).
"""

from __future__ import annotations

import math

from numba.extending import register_jitable

#: 1 / sqrt(2)
INV_SQRT2 = 0.7071067811865476
#: 1 / sqrt(2 pi)
INV_SQRT_2PI = 0.3989422804014327


@register_jitable
def norm_cdf(x: float) -> float:
    """Standard normal CDF N(x) = erfc(-x / sqrt(2)) / 2 (accurate in both tails)."""
    return 0.5 * math.erfc(-x * INV_SQRT2)


@register_jitable
def norm_pdf(x: float) -> float:
    """Standard normal density n(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    return INV_SQRT_2PI * math.exp(-0.5 * x * x)


@register_jitable
def _d1_d2(F: float, K: float, T: float, vol: float):
    """(sqrt(T), sigma sqrt(T), d1, d2) of Black-76."""
    sqrt_t = math.sqrt(T)
    sig_sqrt_t = vol * sqrt_t
    d1 = (math.log(F / K) + 0.5 * sig_sqrt_t * sig_sqrt_t) / sig_sqrt_t
    return sqrt_t, sig_sqrt_t, d1, d1 - sig_sqrt_t


@register_jitable
def _premium(is_call: bool, F: float, K: float, disc: float, d1: float, d2: float):
    """(value, dV/dF): call D [F N(d1) - K N(d2)], D N(d1); put D [K N(-d2) - F N(-d1)], -D N(-d1)."""
    if is_call:
        n1 = norm_cdf(d1)
        return disc * (F * n1 - K * norm_cdf(d2)), disc * n1
    m1 = norm_cdf(-d1)
    return disc * (K * norm_cdf(-d2) - F * m1), -disc * m1


@register_jitable
def black76_value(is_call: bool, F: float, K: float, T: float, r: float, vol: float) -> float:
    """The Black-76 value alone (USD per coin), the same bits as ``black76(...)[0]``: what a
    revaluation needs, without the sensitivities."""
    _, _, d1, d2 = _d1_d2(F, K, T, vol)
    return _premium(is_call, F, K, math.exp(-r * T), d1, d2)[0]


@register_jitable
def black76(is_call: bool, F: float, K: float, T: float, r: float, vol: float):
    """Black-76 value and forward sensitivities of one option on one coin of underlying.

    Returns ``(value, dV_dF, d2V_dF2, dV_dvol, dV_dT, d2V_dF_dvol, d2V_dvol2)`` in USD, with
    F, K in USD, T in years (> 0), r and vol annualised decimals (vol > 0):

    * dV/dF = D N(d1) (call), -D N(-d1) (put)                         [coins per coin]
    * d2V/dF2 = D n(d1) / (F sigma sqrt(T))                           [per USD]
    * dV/dsigma = D F n(d1) sqrt(T)                                   [USD per unit vol]
    * dV/dT at fixed F and sigma = -r V + D F n(d1) sigma / (2 sqrt(T))  [USD per year]
    * d2V/dF dsigma = -D n(d1) d2 / sigma
    * d2V/dsigma2 = vega d1 d2 / sigma
    """
    sqrt_t, sig_sqrt_t, d1, d2 = _d1_d2(F, K, T, vol)
    disc = math.exp(-r * T)
    pdf1 = norm_pdf(d1)
    value, dv_df = _premium(is_call, F, K, disc, d1, d2)
    d2v_df2 = disc * pdf1 / (F * sig_sqrt_t)
    vega = disc * F * pdf1 * sqrt_t
    dv_dt = -r * value + disc * F * pdf1 * vol / (2.0 * sqrt_t)
    vanna = -disc * pdf1 * d2 / vol
    volga = vega * d1 * d2 / vol
    return value, dv_df, d2v_df2, vega, dv_dt, vanna, volga
