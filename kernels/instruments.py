"""Per-position measures for every contract type, in one scalar pass.

Conventions (greeks are sensitivities of the position's USD value V to the index price S, with the
forward F moving in proportion to S, dF/dS = F/S):

* spot (linear): delta = q c [coins], V = delta S.
* linear perpetual / future: n = q c coins; delta = n F/S; V = n (F - F0) with an entry price F0,
  else 0.
* inverse perpetual / future: N = q c USD; delta_pa = N/F; delta = N/F0 with an entry price F0
  (V = S N (1/F0 - 1/F) is then linear in S), else N/F and V = 0. USD gamma, vega, theta are 0.
* options (Black-76 on F, see :mod:`black76`), n = q c coins of underlying; the same USD value for
  linear (USDC-settled) and inverse (coin-settled) options. For inverse-settled positions
  delta_pa = delta - V/S (the coin-margined hedge ratio), for linear ones delta_pa = delta.
* options and futures at or past expiry (T <= 0) are not priced: status EXPIRED, zero measures.

Units of the outputs: see ``gpuskew.schema.MEASURES`` (the row order of ``out``).
"""

from __future__ import annotations

from numba.extending import register_jitable

from . import mathfn
from .black76 import black76_core, black76_from_core, black76_value, call_sign

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
    return S * mathfn.exp(r * T)


@register_jitable
def linear_value(size: float, F: float, entry: float) -> float:
    """USD value of a linear perpetual / future of ``size`` coins: n (F - F0) with an entry price
    F0 > 0, else 0."""
    if entry > 0.0:
        return size * (F - entry)
    return 0.0


@register_jitable
def inverse_value(size: float, S: float, F: float, entry: float) -> float:
    """USD value of an inverse perpetual / future of USD notional N = ``size``:
    S N (1/F0 - 1/F) with an entry price F0 > 0, else 0."""
    if entry > 0.0:
        return S * size * (1.0 / entry - 1.0 / F)
    return 0.0


@register_jitable
def position_value(kind, settle, cp, qty, csize, K, T, S, F, r, vol, entry):
    """USD value V of one position on the forward ``F`` (value only, no greeks).

    The same V as ``position_measures`` writes (``out[M_VALUE_USD]``), given the forward that
    function derives with :func:`forward_price`: spot ``q c S``; options ``q c`` Black-76 (F, K,
    T, r, vol); linear / inverse perpetuals and futures :func:`linear_value` /
    :func:`inverse_value` with ``entry`` (0 = none, value 0). Options and futures at or past
    expiry (T <= 0) are worth 0 here (not priced). USD.
    """
    size = qty * csize
    if kind == KIND_SPOT:
        return size * S
    if is_expired(kind, T):
        return 0.0
    if kind == KIND_OPTION:
        return size * black76_value(cp == CALL, F, K, T, r, vol)
    if settle == SETTLE_LINEAR:
        return linear_value(size, F, entry)
    return inverse_value(size, S, F, entry)


#: rows of the per-instrument quantities (what every position on the instrument shares): the
#: forward, and for a live option its Black-76 value and forward sensitivities per coin
#: (:func:`black76.black76`)
Q_F = 0
Q_V = 1
Q_DV_DF = 2
Q_D2V_DF2 = 3
Q_VEGA = 4
Q_DV_DT = 5
Q_VANNA = 6
Q_VOLGA = 7
N_QUANTITIES = 8


@register_jitable
def is_expired(kind: int, T: float) -> bool:
    """Options and futures at or past expiry (T <= 0): status EXPIRED, not priced."""
    return (kind == KIND_OPTION or kind == KIND_FUTURE) and T <= 0.0


@register_jitable
def is_live_option(kind: int, T: float) -> bool:
    """An option before its expiry (T > 0): the instruments Black-76 prices."""
    return kind == KIND_OPTION and T > 0.0


@register_jitable
def live_option_quantities(w, F, K, T, r, vol, sqrt_t, d1, d2, disc, n1, n2, pdf1):
    """A live option's :func:`instrument_quantities` from its forward F and
    :func:`black76.black76_core` (w = 1 call, -1 put)."""
    v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = black76_from_core(w, F, K, T, r, vol, sqrt_t, d1, d2, disc,
                                                                     n1, n2, pdf1)
    return STATUS_OK, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga


@register_jitable
def other_quantities(kind, T, S, fwd_quote, r):
    """:func:`instrument_quantities` of anything but a live option: EXPIRED and zeros for an option
    or future at or past expiry, else its forward (:func:`forward_price`) and zeros."""
    if is_expired(kind, T):
        return STATUS_EXPIRED, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0
    return STATUS_OK, forward_price(kind, S, r, T, fwd_quote), 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0


@register_jitable
def instrument_quantities(kind, cp, K, T, S, fwd_quote, r, vol):
    """What every position on one instrument shares: ``(status, F, v, dV/dF, d2V/dF2, dV/dvol,
    dV/dT, d2V/dF dvol, d2V/dvol2)`` (the forward, USD; for a live option the Black-76 value and
    forward sensitivities per coin, :func:`black76.black76`; zeros otherwise). Options and futures
    at or past expiry (T <= 0): status EXPIRED, nothing priced. Inputs as in
    :func:`position_measures`."""
    if is_live_option(kind, T):
        w = call_sign(cp == CALL)
        F = forward_price(KIND_OPTION, S, r, T, fwd_quote)
        sqrt_t, d1, d2, disc, n1, n2, pdf1 = black76_core(w, F, K, T, r, vol)
        return live_option_quantities(w, F, K, T, r, vol, sqrt_t, d1, d2, disc, n1, n2, pdf1)
    return other_quantities(kind, T, S, fwd_quote, r)


@register_jitable
def store_quantities(st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga, q, status, j):
    """Write one instrument's :func:`instrument_quantities` into ``status[j]`` and ``q[:, j]``
    (rows Q_*)."""
    status[j] = st
    q[Q_F, j] = F
    q[Q_V, j] = v
    q[Q_DV_DF, j] = dv_df
    q[Q_D2V_DF2, j] = d2v_df2
    q[Q_VEGA, j] = vega
    q[Q_DV_DT, j] = dv_dt
    q[Q_VANNA, j] = vanna
    q[Q_VOLGA, j] = volga


@register_jitable
def store_instrument_quantities(kind, cp, K, T, S, fwd_quote, r, vol, q, status, j):
    """:func:`instrument_quantities` of instrument ``j``, written into ``status[j]`` and
    ``q[:, j]`` (rows Q_*): the body of the CUDA instrument-pricing kernel (the CPU's computes the
    same in blocks)."""
    st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = instrument_quantities(kind, cp, K, T, S, fwd_quote, r, vol)
    store_quantities(st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga, q, status, j)


@register_jitable
def measures_from(status, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga, kind, settle, qty, csize, T, S,
                  entry, out, i):
    """Write every measure of position ``i`` (``qty`` contracts of ``csize``, entry price ``entry``)
    into ``out[:, i]`` from its instrument's quantities (:func:`instrument_quantities`); return the
    status. Units: see ``gpuskew.schema.MEASURES``."""
    if status == STATUS_EXPIRED:
        for m in range(N_MEASURES):
            out[m, i] = 0.0
        return STATUS_EXPIRED
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
        value = linear_value(size, F, entry)
        delta_pa = delta
    else:
        # inverse perpetual or future: size is a USD notional
        delta_pa = size / F
        value = inverse_value(size, S, F, entry)
        if entry > 0.0:
            delta = size / entry
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


@register_jitable
def position_measures(kind, settle, cp, qty, csize, K, T, S, fwd_quote, r, vol, entry, out, i):
    """Write every measure of position ``i`` into column ``out[:, i]``; return its status code:
    :func:`instrument_quantities` then :func:`measures_from` (the kernels that price each
    instrument once and then every position on it give the same bits).

    Inputs (USD, coins, years, annualised decimals): kind/settle/cp codes above; qty (contracts,
    signed); csize (contract_size); K strike (options); T years to expiry; S index price;
    fwd_quote quoted forward or mark (0 = none); r rate; vol implied vol (options); entry price
    (0 = none).
    """
    st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = instrument_quantities(kind, cp, K, T, S, fwd_quote,
                                                                                r, vol)
    return measures_from(st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga, kind, settle, qty, csize, T, S,
                         entry, out, i)
