"""Scenario revaluation: every position under every (spot move, vol shock) of a risk matrix.

One scalar pass per position (:func:`position_scenarios`) revalues it under each scenario through
:func:`gpuskew.kernels.instruments.position_value` (the pricing formulas live there, not here):

* a scenario j moves the index by ``m = moves[u, j]`` (u: the position's underlying):
  S' = S (1 + m) and the position's forward F' = F (1 + m); T and r are unchanged;
* its vol case ``vol_case[j]`` (-1 down, 0 same, +1 up) sets the option's implied vol to
  :func:`shocked_vol` (Deribit's portfolio-margin shock, see there);
* P&L = V' - V in USD, V as in ``position_value`` except that a perpetual or future held without
  an entry price takes the base forward as its entry (F0 = F), so its move shows:
  linear n (F' - F), inverse S' N (1/F - 1/F');
* options and futures at or past expiry have zero scenario P&L (``position_value`` gives 0).

Beside the P&L the pass writes, per position, the vol terms of a second-order Taylor estimate
(:data:`N_TAYLOR` rows): with dv = 100 (sigma' - sigma) in vol points for the up and down cases,
``vega_usd * dv``, ``vanna * dv`` (coins) and ``volga * dv^2 / 2`` (USD). Summed per group they give
the group's Taylor P&L with :func:`taylor_pnl` (the index move dS = S m is the same for every
position of a group: groups never mix underlyings).

Arrays: ``moves`` (n_underlyings x n_scenarios, float64), ``vol_case`` (n_scenarios, int8),
``vparams`` (n_underlyings x :data:`N_VOL_PARAMS`, float64, columns ``P_*``), ``greeks`` the
(N_MEASURES x n) output of ``position_measures``, ``pnl`` (n_scenarios x n) and ``taylor``
(N_TAYLOR x n) written.
"""

from __future__ import annotations

from numba.extending import register_jitable

from .black76 import black76_value
from .instruments import (CALL, KIND_FUTURE, KIND_OPTION, KIND_PERPETUAL, M_VANNA, M_VEGA_USD, M_VOLGA,
                          forward_price, position_value)

#: vol cases of a scenario
VOL_DOWN = -1
VOL_SAME = 0
VOL_UP = 1

#: columns of the per-underlying vol-shock parameter array ``vparams`` (Deribit's names)
P_VOLATILITY_RANGE_UP = 0
P_VOLATILITY_RANGE_DOWN = 1
P_MIN_VOLATILITY_FOR_SHOCK_UP = 2
P_SHORT_TERM_VEGA_POWER = 3
P_LONG_TERM_VEGA_POWER = 4
N_VOL_PARAMS = 5

#: days to expiry below which the short-term vega power applies; also the shock's pivot
PIVOT_DAYS = 30.0
#: floor of the days to expiry in the shock (an option expiring within a day is shocked as 1 day)
DTE_FLOOR_DAYS = 1.0
#: calendar days per year (T in years -> days)
DAYS_PER_YEAR = 365.0

#: rows of the per-position Taylor vol terms (dv = 100 (sigma' - sigma), vol points)
T_VEGA_UP = 0  #: vega_usd * dv_up, USD
T_VEGA_DOWN = 1  #: vega_usd * dv_down, USD
T_VANNA_UP = 2  #: vanna * dv_up, coins
T_VANNA_DOWN = 3  #: vanna * dv_down, coins
T_VOLGA_UP = 4  #: volga * dv_up^2 / 2, USD
T_VOLGA_DOWN = 5  #: volga * dv_down^2 / 2, USD
N_TAYLOR = 6


@register_jitable
def vol_shock_scale(T: float, short_power: float, long_power: float) -> float:
    """(30 / DTE)^p with DTE = max(365 T, 1) days, p = ``short_power`` if DTE < 30 else
    ``long_power`` (Deribit: 0.30 and 0.13). Dimensionless."""
    dte = T * DAYS_PER_YEAR
    if dte < DTE_FLOOR_DAYS:
        dte = DTE_FLOOR_DAYS
    p = short_power if dte < PIVOT_DAYS else long_power
    return (PIVOT_DAYS / dte) ** p


@register_jitable
def shocked_vol(vol: float, T: float, case: int, range_up: float, range_down: float,
                min_vol_up: float, short_power: float, long_power: float) -> float:
    """Implied vol of an option under vol case ``case`` (annualised decimals), Deribit's
    portfolio-margin shock (support.deribit.com, "Portfolio Margin", article 25944756247837):

    * up:   max(sigma (1 + volatility_range_up s), min_volatility_for_shock_up)
    * same: sigma
    * down: sigma (1 - volatility_range_down s)

    with s = :func:`vol_shock_scale` (T, short_term_vega_power, long_term_vega_power).
    """
    if case == VOL_SAME:
        return vol
    s = vol_shock_scale(T, short_power, long_power)
    if case > 0:
        up = vol * (1.0 + range_up * s)
        return up if up > min_vol_up else min_vol_up
    return vol * (1.0 - range_down * s)


@register_jitable
def taylor_pnl(delta: float, gamma: float, dS: float, vega_term: float, vanna_term: float,
               volga_term: float) -> float:
    """Second-order Taylor P&L (USD): delta dS + gamma dS^2 / 2 + vega dv + vanna dS dv + volga dv^2 / 2,
    with the vol terms already multiplied out per position (``vega_term`` = sum of vega_usd dv,
    ``vanna_term`` = sum of vanna dv in coins, ``volga_term`` = sum of volga dv^2 / 2).
    delta in coins, gamma in coins per USD, dS in USD. Plain arithmetic: works on NumPy arrays."""
    return delta * dS + 0.5 * gamma * dS * dS + vega_term + vanna_term * dS + volga_term


@register_jitable
def coin_pnl(pnl_usd: float, value_usd: float, S: float, move: float) -> float:
    """Change of a value measured in coins of the underlying, V'/S' - V/S, from its USD change
    ``pnl_usd`` = V' - V, its base value V and the index move m (S' = S (1 + m)):
    (pnl_usd - m V) / S'. Coins. Plain arithmetic: works on NumPy arrays."""
    return (pnl_usd - move * value_usd) / (S * (1.0 + move))


@register_jitable
def scenario_entry(kind: int, entry: float, F: float) -> float:
    """Entry price used in scenarios: the position's own, else the base forward F for perpetuals
    and futures (so that their move shows), else 0."""
    if entry > 0.0:
        return entry
    if kind == KIND_PERPETUAL or kind == KIND_FUTURE:
        return F
    return 0.0


#: rows of the per-instrument scenario array after the n_scenarios per-coin values: the base
#: per-coin value, the shocked vols (up, down) and the forward
QS_BASE = 0
QS_VOL_UP = 1
QS_VOL_DOWN = 2
QS_F = 3
N_QS_EXTRA = 4


@register_jitable
def instrument_scenarios(kind, cp, K, T, S, fwd_quote, r, vol, u, moves, vol_case, vparams, qv, j):
    """What every position on instrument j shares under the grid, written to column ``qv[:, j]``
    (``n_scenarios + N_QS_EXTRA`` rows): for a live option its Black-76 value per coin under each
    scenario (rows 0..n_scenarios-1: F' = F (1 + m), the vol of the scenario's case), then at the
    base, the shocked vols up and down, and the forward F (inputs as in ``position_measures``;
    ``u`` the underlying code). Not a live option: values 0, vols as given."""
    ns = vol_case.shape[0]
    F = forward_price(kind, S, r, T, fwd_quote)
    vol_up = vol
    vol_down = vol
    if kind == KIND_OPTION:
        vol_up = shocked_vol(vol, T, VOL_UP, vparams[u, P_VOLATILITY_RANGE_UP],
                             vparams[u, P_VOLATILITY_RANGE_DOWN], vparams[u, P_MIN_VOLATILITY_FOR_SHOCK_UP],
                             vparams[u, P_SHORT_TERM_VEGA_POWER], vparams[u, P_LONG_TERM_VEGA_POWER])
        vol_down = shocked_vol(vol, T, VOL_DOWN, vparams[u, P_VOLATILITY_RANGE_UP],
                               vparams[u, P_VOLATILITY_RANGE_DOWN], vparams[u, P_MIN_VOLATILITY_FOR_SHOCK_UP],
                               vparams[u, P_SHORT_TERM_VEGA_POWER], vparams[u, P_LONG_TERM_VEGA_POWER])
    qv[ns + QS_VOL_UP, j] = vol_up
    qv[ns + QS_VOL_DOWN, j] = vol_down
    qv[ns + QS_F, j] = F
    if kind == KIND_OPTION and T > 0.0:
        call = cp == CALL
        qv[ns + QS_BASE, j] = black76_value(call, F, K, T, r, vol)
        for s in range(ns):
            g = 1.0 + moves[u, s]
            case = vol_case[s]
            v = vol
            if case == VOL_UP:
                v = vol_up
            elif case == VOL_DOWN:
                v = vol_down
            qv[s, j] = black76_value(call, F * g, K, T, r, v)
    else:
        qv[ns + QS_BASE, j] = 0.0
        for s in range(ns):
            qv[s, j] = 0.0


@register_jitable
def position_scenarios(kind, settle, qty, csize, T, S, vol, entry, u, greeks, moves, vol_case, qv, j, pnl,
                       taylor, i):
    """Write ``pnl[s, i]`` = V' - V (USD) for every scenario s and ``taylor[:, i]`` of position i
    on instrument j (its shared values in ``qv[:, j]``, :func:`instrument_scenarios`): an option is
    ``q c`` times its instrument's per-coin values (0 at or past expiry); the rest revalued by
    ``position_value`` (spot, perpetuals and futures, the base forward as entry when none)."""
    ns = vol_case.shape[0]
    F = qv[ns + QS_F, j]
    vol_up = qv[ns + QS_VOL_UP, j]
    vol_down = qv[ns + QS_VOL_DOWN, j]
    if kind == KIND_OPTION:
        if T <= 0.0:
            for s in range(ns):
                pnl[s, i] = 0.0
        else:
            size = qty * csize
            base = size * qv[ns + QS_BASE, j]
            for s in range(ns):
                pnl[s, i] = size * qv[s, j] - base
    else:
        ent = scenario_entry(kind, entry, F)
        base = position_value(kind, settle, 0, qty, csize, 0.0, T, S, F, 0.0, vol, ent)
        for s in range(ns):
            g = 1.0 + moves[u, s]
            pnl[s, i] = position_value(kind, settle, 0, qty, csize, 0.0, T, S * g, F * g, 0.0, vol, ent) - base
    dv_up = 100.0 * (vol_up - vol)
    dv_down = 100.0 * (vol_down - vol)
    vega = greeks[M_VEGA_USD, i]
    vanna = greeks[M_VANNA, i]
    volga = greeks[M_VOLGA, i]
    taylor[T_VEGA_UP, i] = vega * dv_up
    taylor[T_VEGA_DOWN, i] = vega * dv_down
    taylor[T_VANNA_UP, i] = vanna * dv_up
    taylor[T_VANNA_DOWN, i] = vanna * dv_down
    taylor[T_VOLGA_UP, i] = 0.5 * volga * dv_up * dv_up
    taylor[T_VOLGA_DOWN, i] = 0.5 * volga * dv_down * dv_down


@register_jitable
def explain_terms(delta, gamma, vega_usd, theta_usd, rho_usd, vanna, volga, dS, dv, dt_days, dr_pct):
    """The greek terms of a P&L explain, greeks of the earlier run (USD each):

    delta dS, gamma dS^2 / 2, vega_usd dv, theta_usd dt, vanna dS dv, volga dv^2 / 2, rho_usd dr

    with dS in USD, dv in vol points, dt in days, dr in percentage points (the units of the
    greeks: see gpuskew.schema.MEASURES). Returned in that order. Plain arithmetic: works on
    NumPy arrays."""
    return (delta * dS, 0.5 * gamma * dS * dS, vega_usd * dv, theta_usd * dt_days, vanna * dS * dv,
            0.5 * volga * dv * dv, rho_usd * dr_pct)
