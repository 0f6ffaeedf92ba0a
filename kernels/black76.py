"""Black-76 closed forms on a forward F, per coin of underlying, in USD.

    d1 = (ln(F/K) + sigma^2 T / 2) / (sigma sqrt(T)),   d2 = d1 - sigma sqrt(T),   D = exp(-r T)
    call = D [F N(d1) - K N(d2)]        put = D [K N(-d2) - F N(-d1)]

Every function is scalar, plain Python, and compiled for both targets (``register_jitable``); exp,
log and erfc are :mod:`mathfn`'s (plain arithmetic: the same IEEE operations on every target, and
vectorisable over a block of options on the CPU).
Sensitivities here are with respect to the forward F (the instruments module maps them to the index
price S with dF/dS = F/S).
"""

from __future__ import annotations

import math

from numba.extending import register_jitable

from . import mathfn
from .mathfn import select

#: 1 / sqrt(2)
INV_SQRT2 = 0.7071067811865476
#: 1 / sqrt(2 pi)
INV_SQRT_2PI = 0.3989422804014327


@register_jitable
def norm_cdf(x: float) -> float:
    """Standard normal CDF N(x) = erfc(-x / sqrt(2)) / 2 (accurate in both tails)."""
    return 0.5 * mathfn.erfc(-x * INV_SQRT2)


@register_jitable
def norm_pdf(x: float) -> float:
    """Standard normal density n(x) = exp(-x^2 / 2) / sqrt(2 pi)."""
    return INV_SQRT_2PI * mathfn.exp(-0.5 * x * x)


@register_jitable
def _d1_d2(F: float, K: float, T: float, vol: float):
    """(sqrt(T), sigma sqrt(T), d1, d2) of Black-76."""
    sqrt_t = math.sqrt(T)
    sig_sqrt_t = vol * sqrt_t
    d1 = (mathfn.log(F / K) + 0.5 * sig_sqrt_t * sig_sqrt_t) / sig_sqrt_t
    return sqrt_t, sig_sqrt_t, d1, d1 - sig_sqrt_t


@register_jitable
def black76_core(w: float, F: float, K: float, T: float, r: float, vol: float):
    """Every transcendental of Black-76, for a call (``w`` = 1) or a put (``w`` = -1):
    ``(sqrt(T), d1, d2, D = exp(-r T), N(w d1), N(w d2), n(d1))``.

    Straight-line arithmetic without data-dependent branches (:mod:`mathfn`'s exp, log and erfc), so
    that the CPU kernels evaluate it over a block of options in one vectorised loop; the rest of
    Black-76 (:func:`black76_from_core`) is a few products."""
    sqrt_t, _, d1, d2 = _d1_d2(F, K, T, vol)
    return (sqrt_t, d1, d2, mathfn.exp(-r * T), norm_cdf(w * d1), norm_cdf(w * d2), norm_pdf(d1))


@register_jitable
def black76_value_from_core(w: float, F: float, K: float, disc: float, n1: float, n2: float):
    """(value, dV/dF) from :func:`black76_core`: call D [F N(d1) - K N(d2)], D N(d1);
    put D [K N(-d2) - F N(-d1)], -D N(-d1) (USD per coin, coins per coin)."""
    call = w > 0.0
    return (select(call, disc * (F * n1 - K * n2), disc * (K * n2 - F * n1)),
            select(call, disc * n1, -disc * n1))


@register_jitable
def black76_from_core(w, F, K, T, r, vol, sqrt_t, d1, d2, disc, n1, n2, pdf1):
    """:func:`black76`'s seven outputs from :func:`black76_core`'s ``(sqrt_t, d1, d2, disc, n1, n2,
    pdf1)`` (the formulas are listed there)."""
    sig_sqrt_t = vol * sqrt_t
    value, dv_df = black76_value_from_core(w, F, K, disc, n1, n2)
    d2v_df2 = disc * pdf1 / (F * sig_sqrt_t)
    vega = disc * F * pdf1 * sqrt_t
    dv_dt = -r * value + disc * F * pdf1 * vol / (2.0 * sqrt_t)
    vanna = -disc * pdf1 * d2 / vol
    volga = vega * d1 * d2 / vol
    return value, dv_df, d2v_df2, vega, dv_dt, vanna, volga


@register_jitable
def call_sign(is_call: bool) -> float:
    """w = 1 for a call, -1 for a put (the sign that turns N(d) into N(-d))."""
    return select(is_call, 1.0, -1.0)


@register_jitable
def black76_value(is_call: bool, F: float, K: float, T: float, r: float, vol: float) -> float:
    """The Black-76 value alone (USD per coin), the same bits as ``black76(...)[0]``: what a
    revaluation needs, without the sensitivities."""
    w = call_sign(is_call)
    _, _, d1, d2 = _d1_d2(F, K, T, vol)
    return black76_value_from_core(w, F, K, mathfn.exp(-r * T), norm_cdf(w * d1), norm_cdf(w * d2))[0]


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

    :func:`black76_core` (the transcendentals) then :func:`black76_from_core` (the products): the
    CPU kernels run the two over blocks of options and give the same bits.
    """
    w = call_sign(is_call)
    sqrt_t, d1, d2, disc, n1, n2, pdf1 = black76_core(w, F, K, T, r, vol)
    return black76_from_core(w, F, K, T, r, vol, sqrt_t, d1, d2, disc, n1, n2, pdf1)
