"""The per-position greeks kernel as it was before issue 11 (gpuskew at commit efb116b), for the
greeks benchmark's "baseline" column: the speed targets are ratios to this kernel in the same run.

A verbatim copy of that commit's ``kernels/black76.py`` and ``kernels/instruments.py`` scalar
functions (libm's exp/log/erfc, out-of-line calls per position, numba's default error model) and
its ``position_greeks`` loop; compiled here without a disk cache. Not part of the package: the
package's kernels are in ``kernels/``.
"""

from __future__ import annotations

import math

from numba import njit, prange
from numba.extending import register_jitable

# ------------------------------------------------------------------------------------------------
# efb116b: kernels/black76.py

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
    sqrt_t = math.sqrt(T)
    sig_sqrt_t = vol * sqrt_t
    d1 = (math.log(F / K) + 0.5 * sig_sqrt_t * sig_sqrt_t) / sig_sqrt_t
    d2 = d1 - sig_sqrt_t
    disc = math.exp(-r * T)
    pdf1 = norm_pdf(d1)
    if is_call:
        n1 = norm_cdf(d1)
        value = disc * (F * n1 - K * norm_cdf(d2))
        dv_df = disc * n1
    else:
        m1 = norm_cdf(-d1)
        value = disc * (K * norm_cdf(-d2) - F * m1)
        dv_df = -disc * m1
    d2v_df2 = disc * pdf1 / (F * sig_sqrt_t)
    vega = disc * F * pdf1 * sqrt_t
    dv_dt = -r * value + disc * F * pdf1 * vol / (2.0 * sqrt_t)
    vanna = -disc * pdf1 * d2 / vol
    volga = vega * d1 * d2 / vol
    return value, dv_df, d2v_df2, vega, dv_dt, vanna, volga


# ------------------------------------------------------------------------------------------------
# efb116b: kernels/instruments.py

#: instruments.kind codes
KIND_SPOT = 0
KIND_PERPETUAL = 1
KIND_FUTURE = 2
KIND_OPTION = 3
#: instruments.settlement codes
SETTLE_LINEAR = 0
SETTLE_INVERSE = 1
#: option_type codes (0 for non-options)
CALL = 1
PUT = -1
#: status codes (gpuskew.schema.STATUS_NAMES)
STATUS_OK = 0
STATUS_EXPIRED = 1

#: rows of the output array, in gpuskew.schema.MEASURES order
M_VALUE_USD = 0
M_VALUE_COIN = 1
M_DELTA = 2
M_DELTA_USD = 3
M_DELTA_PA = 4
M_GAMMA = 5
M_GAMMA_1PCT = 6
M_VEGA_USD = 7
M_THETA_USD = 8
M_RHO_USD = 9
M_VANNA = 10
M_VOLGA = 11
N_MEASURES = 12

#: calendar days per year (theta per day)
DAYS_PER_YEAR = 365.0


@register_jitable
def forward_price(kind: int, S: float, r: float, T: float, quoted: float) -> float:
    """The forward F used for a position: the quoted forward (or perpetual mark) when ``quoted > 0``;
    else S for spot and perpetuals, and S exp(r T) for futures and options."""
    if quoted > 0.0:
        return quoted
    if kind == KIND_SPOT or kind == KIND_PERPETUAL:
        return S
    return S * math.exp(r * T)


@register_jitable
def position_measures(kind, settle, cp, qty, csize, K, T, S, fwd_quote, r, vol, entry, out, i):
    """Write every measure of position ``i`` into column ``out[:, i]``; return its status code.

    Inputs (USD, coins, years, annualised decimals): kind/settle/cp codes above; qty (contracts,
    signed); csize (contract_size); K strike (options); T years to expiry; S index price;
    fwd_quote quoted forward or mark (0 = none); r rate; vol implied vol (options); entry price
    (0 = none).
    """
    if (kind == KIND_OPTION or kind == KIND_FUTURE) and T <= 0.0:
        for m in range(N_MEASURES):
            out[m, i] = 0.0
        return STATUS_EXPIRED
    F = forward_price(kind, S, r, T, fwd_quote)
    size = qty * csize
    value = 0.0
    delta = 0.0
    delta_pa = 0.0
    gamma = 0.0
    vega_usd = 0.0
    theta_usd = 0.0
    rho_usd = 0.0
    vanna_coins = 0.0
    volga_usd = 0.0
    if kind == KIND_SPOT:
        delta = size
        value = size * S
        delta_pa = delta
    elif kind == KIND_OPTION:
        v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = black76(cp == CALL, F, K, T, r, vol)
        g = F / S
        value = size * v
        delta = size * dv_df * g
        gamma = size * d2v_df2 * g * g
        vega_usd = size * vega / 100.0
        theta_usd = -size * dv_dt / DAYS_PER_YEAR
        rho_usd = -size * T * v / 100.0
        vanna_coins = size * vanna * g / 100.0
        volga_usd = size * volga / 10000.0
        if settle == SETTLE_INVERSE:
            delta_pa = delta - value / S
        else:
            delta_pa = delta
    elif settle == SETTLE_LINEAR:
        # linear perpetual or future: size in coins
        delta = size * F / S
        if entry > 0.0:
            value = size * (F - entry)
        delta_pa = delta
    else:
        # inverse perpetual or future: size is a USD notional
        delta_pa = size / F
        if entry > 0.0:
            delta = size / entry
            value = S * size * (1.0 / entry - 1.0 / F)
        else:
            delta = delta_pa
    out[M_VALUE_USD, i] = value
    out[M_VALUE_COIN, i] = value / S
    out[M_DELTA, i] = delta
    out[M_DELTA_USD, i] = delta * S
    out[M_DELTA_PA, i] = delta_pa
    out[M_GAMMA, i] = gamma
    out[M_GAMMA_1PCT, i] = gamma * S / 100.0
    out[M_VEGA_USD, i] = vega_usd
    out[M_THETA_USD, i] = theta_usd
    out[M_RHO_USD, i] = rho_usd
    out[M_VANNA, i] = vanna_coins
    out[M_VOLGA, i] = volga_usd
    return STATUS_OK


# ------------------------------------------------------------------------------------------------
# efb116b: kernels/cpu.py


@njit(parallel=True)
def position_greeks(kind, settle, cp, qty, csize, strike, T, S, fwd, r, vol, entry, out, status):
    """Fill ``out[:, i]`` (N_MEASURES x n, float64) and ``status[i]`` (int8) for every position."""
    n = qty.shape[0]
    for i in prange(n):
        status[i] = position_measures(kind[i], settle[i], cp[i], qty[i], csize[i], strike[i], T[i],
                                      S[i], fwd[i], r[i], vol[i], entry[i], out, i)
