"""Hedge policies for backtests: band half-widths and the hedge recurrence of one (policy, group, path).

Every function is scalar, plain Python, compiled for both targets (``register_jitable``): the CPU
sweep (:func:`gpuskew.kernels.cpu.policy_sweep`, a ``prange`` over tasks) and the CUDA sweep
(:mod:`gpuskew.kernels.cuda`, one thread per task) call :func:`policy_task`; the adherence band
models (``gpuskew.adherence.bands``) call the half-width formulas through small vectorised wrappers
in kernels/cpu.py. Units: coins of the group's underlying for deltas, half-widths and hedges; USD
per coin for S; 1/USD for risk aversions; fractions of notional for costs; years for time.

Band half-widths (coins), per side:

* fixed: ``coins + usd / S`` (one of the two given per side, the other 0);
* var: ``budget / (z sigma S sqrt(h))``, z = N^-1(confidence), h the horizon in years;
* whalley_wilmott: ``H = (3 lambda S Gamma^2 / (2 gamma))^(1/3)`` (Whalley & Wilmott 1997);
* zakamouline (Zakamouline 2006, Quantitative Finance 6(5), 435-445: the closed-form fit of the
  utility-based hedging bandwidth), with tau the time to maturity in years, r the rate:

      H0 = lambda / (gamma S sigma^2 tau)
      H1 = 1.12 lambda^0.31 tau^0.05 (exp(-r tau) / sigma)^0.25 (|Gamma| / gamma)^0.5
      K  = -4.76 lambda^0.78 tau^-0.02 (exp(-r tau) / sigma)^0.25 (gamma S^2 |Gamma|)^0.15
      half-width = H0 + H1; the band is centred on the delta computed with the modified vol
      sigma_m = sigma sqrt(1 - K) for a net short-gamma book (Gamma < 0), sigma sqrt(1 + K) for a
      net long one: centre = target + vanna (sigma_m - sigma) * 100 (vanna in coins per vol point);

then ``max(min(half, cap), floor)`` with cap = min(cap_coins, cap_usd / S) and floor =
max(floor_coins, floor_usd / S) (the floor wins). A policy that never trades (``hedge.enabled =
false``) and a time-based policy (checks only every N steps) use the same recurrence.

The recurrence (per step t of the path, decision at t, P&L over [t, t+1]):

    centre = target(t) [+ Zakamouline shift];  net = book_delta(t) + h;  dev = net - centre
    out of band: dev > upper half-width or dev < -lower half-width (checked every N steps)
        -> trade x coins: to the band edge (``to_band``: whole lots, rounded away from the position
           so that it lands inside), or a fraction f of the way to the centre (``to_target``:
           nearest whole lot); a nonzero trade below the minimum size is raised to it;
        costs: notional |x| S times fee, half spread, impact + impact_slope |x| S (linear impact)
    h += x
    hedge P&L += h (S(t+1) - S(t));  funding received += -h S(t) f(t) dt (perpetual hedges only:
    positive funding, longs pay);  hedged P&L += (W(t+1) - W(t)) + h dS + funding - costs(t)

with W the book's wealth (value plus cash from flow and expiries). Statistics are streamed (sums,
counts, a running maximum): no per-step array is written except for the traced tasks.
"""

from __future__ import annotations

import math

from numba.extending import register_jitable

from . import mathfn

#: band model codes (params[..., P_BAND])
BAND_FIXED = 0
BAND_VAR = 1
BAND_WHALLEY_WILMOTT = 2
BAND_ZAKAMOULINE = 3
#: hedge mode codes (params[..., P_MODE])
MODE_TO_BAND = 0
MODE_TO_TARGET = 1

#: |skew| reported for a nonzero deviation against a zero half-width (as gpuskew.adherence.bands)
SKEW_CAP = 1e9
#: slack (in lots) of the rounding of trades
LOT_TOL = 1e-9

#: Zakamouline (2006) fitted constants
ZAK_H1_C = 1.12
ZAK_H1_LAMBDA = 0.31
ZAK_H1_TAU = 0.05
ZAK_DISC = 0.25
ZAK_K_C = -4.76
ZAK_K_LAMBDA = 0.78
ZAK_K_TAU = -0.02
ZAK_K_GAMMA = 0.15

# -- the parameter layout of one (policy, group): params[policy, group, P_*] ----------------------
#: managed delta: 0 delta, 1 delta_pa
P_MEASURE = 0
#: index into the target paths (-1: target 0)
P_TARGET = 1
#: band model code
P_BAND = 2
#: fixed: half-widths per side in coins and in USD (one of each pair 0)
P_LO_COINS = 3
P_UP_COINS = 4
P_LO_USD = 5
P_UP_USD = 6
#: var: USD budget per side, z = N^-1(confidence), sqrt(horizon in years)
P_LO_BUDGET = 7
P_UP_BUDGET = 8
P_Z = 9
P_SQRT_H = 10
#: whalley_wilmott / zakamouline: risk aversion gamma (1/USD), proportional cost lambda, tau (years)
P_RISK_AVERSION = 11
P_COST = 12
P_TAU = 13
#: floors (0 = none) and caps (inf = none)
P_FLOOR_COINS = 14
P_FLOOR_USD = 15
P_CAP_COINS = 16
P_CAP_USD = 17
#: 1 the policy trades, 0 never
P_ENABLED = 18
#: the band is checked every this many steps (>= 1)
P_INTERVAL = 19
#: MODE_* and the fraction of the way to the centre (to_target)
P_MODE = 20
P_FRACTION = 21
#: costs: fractions of notional; impact slope per USD of notional (linear impact)
P_FEE = 22
P_HALF_SPREAD = 23
P_IMPACT = 24
P_IMPACT_SLOPE = 25
#: lot and minimum size: coins (linear, spot) or USD (inverse: coins = USD / S)
P_LOT = 26
P_MIN_SIZE = 27
P_INVERSE = 28
#: 1 when the hedge pays or receives funding (perpetuals)
P_FUNDING = 29
#: the underlying's rate r (Zakamouline's discount)
P_RATE = 30
#: parameters per (policy, group)
N_PARAMS = 32

# -- outputs per task: out[task, O_*] --------------------------------------------------------------
O_HEDGE_PNL = 0
O_FEES = 1
O_SPREAD = 2
O_IMPACT = 3
O_FUNDING = 4
O_HEDGED_PNL = 5
O_TRADES = 6
O_TURNOVER = 7
O_TIME_IN_BAND = 8
O_MAX_ABS_SKEW = 9
O_PNL_DELTA = 10
O_FINAL_HEDGE = 11
N_OUTPUTS = 12

# -- trace fields of a traced task: trace[slot, F_*, t] --------------------------------------------
F_NET = 0
F_CENTRE = 1
F_LOWER = 2
F_UPPER = 3
F_HEDGE = 4
F_HEDGED_PNL = 5
F_COSTS = 6
N_TRACE_FIELDS = 7


@register_jitable
def power(x: float, y: float) -> float:
    """x^y for x > 0 (0 for x = 0), as exp(y log x) with :mod:`mathfn`'s exp and log: the same
    operations on the CPU, CUDA and the simulator (libm's and libdevice's pow round differently)."""
    if x == 0.0:
        return 0.0
    return mathfn.exp(y * mathfn.log(x))


@register_jitable
def fixed_half_width(coins: float, usd: float, S: float) -> float:
    """coins + usd / S, coins (one of the two is 0; the division only when usd is given)."""
    if usd == 0.0:
        return coins
    return coins + usd / S


@register_jitable
def var_half_width(budget: float, z: float, vol: float, S: float, sqrt_h: float) -> float:
    """budget / (z sigma S sqrt(h)), coins: a deviation that loses the USD budget in a z-sigma move
    of S over the horizon h (years)."""
    return budget / (z * vol * S * sqrt_h)


@register_jitable
def whalley_wilmott_cube(cost: float, S: float, gamma: float, risk_aversion: float) -> float:
    """H^3 = 3 lambda S Gamma^2 / (2 gamma), coins^3 (lambda fraction, S USD/coin, Gamma coins/USD,
    gamma 1/USD)."""
    return 3.0 * cost * S * gamma * gamma / (2.0 * risk_aversion)


@register_jitable
def whalley_wilmott_half_width(cost: float, S: float, gamma: float, risk_aversion: float) -> float:
    """H = (3 lambda S Gamma^2 / (2 gamma))^(1/3), coins."""
    x = whalley_wilmott_cube(cost, S, gamma, risk_aversion)
    if x <= 0.0:
        return 0.0
    return power(x, 1.0 / 3.0)


@register_jitable
def zakamouline_h0_coef(cost: float, risk_aversion: float, tau: float) -> float:
    """lambda / (gamma tau): the part of H0 constant along a path."""
    return cost / (risk_aversion * tau)


@register_jitable
def zakamouline_inv_s_var(S: float, vol: float) -> float:
    """1 / (S sigma^2): the part of H0 that moves with the market."""
    return 1.0 / (S * vol * vol)


@register_jitable
def zakamouline_h0_from(coef: float, inv_s_var: float) -> float:
    """H0 = coef / (S sigma^2), coef from :func:`zakamouline_h0_coef`, coins."""
    return coef * inv_s_var


@register_jitable
def zakamouline_h0(cost: float, risk_aversion: float, S: float, vol: float, tau: float) -> float:
    """H0 = lambda / (gamma S sigma^2 tau), coins: the part of the bandwidth that costs alone set."""
    return zakamouline_h0_from(zakamouline_h0_coef(cost, risk_aversion, tau), zakamouline_inv_s_var(S, vol))


@register_jitable
def zakamouline_vol_factor(vol: float) -> float:
    """sigma^-0.25 (as 1 / sqrt(sqrt(sigma))), the vol factor of H1 and K."""
    return 1.0 / math.sqrt(math.sqrt(vol))


@register_jitable
def zakamouline_sqrt_gamma(gamma: float) -> float:
    """|Gamma|^0.5, the part of H1 that moves with the book."""
    return math.sqrt(abs(gamma))


@register_jitable
def zakamouline_h1_coef(cost: float, tau: float, r: float, risk_aversion: float) -> float:
    """1.12 lambda^0.31 tau^0.05 exp(-r tau)^0.25 / gamma^0.5: the part of H1 constant along a path."""
    if cost == 0.0:
        return 0.0
    return (ZAK_H1_C * power(cost, ZAK_H1_LAMBDA) * power(tau, ZAK_H1_TAU) * mathfn.exp(-ZAK_DISC * r * tau)
            / math.sqrt(risk_aversion))


@register_jitable
def zakamouline_k_coef(cost: float, tau: float, r: float, risk_aversion: float) -> float:
    """-4.76 lambda^0.78 tau^-0.02 exp(-r tau)^0.25 gamma^0.15: the part of K constant along a path."""
    if cost == 0.0:
        return 0.0
    return (ZAK_K_C * power(cost, ZAK_K_LAMBDA) * power(tau, ZAK_K_TAU) * mathfn.exp(-ZAK_DISC * r * tau)
            * power(risk_aversion, ZAK_K_GAMMA))


@register_jitable
def zakamouline_gamma_factor(S: float, gamma: float) -> float:
    """(S^2 |Gamma|)^0.15, the part of K that moves with the market and the book."""
    return power(S * S * abs(gamma), ZAK_K_GAMMA)


@register_jitable
def zakamouline_h1_from(coef: float, vol_factor: float, sqrt_gamma: float) -> float:
    """H1 = coef sigma^-0.25 |Gamma|^0.5, coef from :func:`zakamouline_h1_coef`, coins."""
    return coef * vol_factor * sqrt_gamma


@register_jitable
def zakamouline_k_from(coef: float, vol_factor: float, gamma_factor: float) -> float:
    """K = coef sigma^-0.25 (S^2 |Gamma|)^0.15 (<= 0), coef from :func:`zakamouline_k_coef`."""
    return coef * vol_factor * gamma_factor


@register_jitable
def zakamouline_h1(cost: float, tau: float, r: float, vol: float, gamma: float,
                   risk_aversion: float) -> float:
    """H1 = 1.12 lambda^0.31 tau^0.05 (exp(-r tau)/sigma)^0.25 (|Gamma|/gamma)^0.5, coins."""
    return zakamouline_h1_from(zakamouline_h1_coef(cost, tau, r, risk_aversion), zakamouline_vol_factor(vol),
                               zakamouline_sqrt_gamma(gamma))


@register_jitable
def zakamouline_k(cost: float, tau: float, r: float, vol: float, risk_aversion: float, S: float,
                  gamma: float) -> float:
    """K = -4.76 lambda^0.78 tau^-0.02 (exp(-r tau)/sigma)^0.25 (gamma S^2 |Gamma|)^0.15 (<= 0)."""
    return zakamouline_k_from(zakamouline_k_coef(cost, tau, r, risk_aversion), zakamouline_vol_factor(vol),
                              zakamouline_gamma_factor(S, gamma))


#: rows of the per-path Zakamouline factor array zak[k, path, group, step]
Z_VOL = 0
Z_GAMMA = 1
Z_SQRT_GAMMA = 2
Z_INV_S_VAR = 3
N_ZAK_FACTORS = 4


@register_jitable
def zakamouline_factors_at(S: float, vol: float, gamma: float, zak, p: int, g: int, t: int) -> None:
    """Write the market factors of one (path, group, step): sigma^-0.25, (S^2 |Gamma|)^0.15,
    |Gamma|^0.5 and 1 / (S sigma^2) (computed once for every policy)."""
    zak[Z_VOL, p, g, t] = zakamouline_vol_factor(vol)
    zak[Z_GAMMA, p, g, t] = zakamouline_gamma_factor(S, gamma)
    zak[Z_SQRT_GAMMA, p, g, t] = zakamouline_sqrt_gamma(gamma)
    zak[Z_INV_S_VAR, p, g, t] = zakamouline_inv_s_var(S, vol)


@register_jitable
def zakamouline_modified_vol(vol: float, k: float, gamma: float) -> float:
    """sigma_m = sigma sqrt(1 - K) for a net short-gamma position (Gamma < 0), sigma sqrt(1 + K) for
    a long one (floored at 0): the vol whose delta the band is centred on."""
    if gamma < 0.0:
        m = 1.0 - k
    else:
        m = 1.0 + k
    if m <= 0.0:
        return 0.0
    return vol * math.sqrt(m)


@register_jitable
def floor_and_cap(floor_coins: float, floor_usd: float, cap_coins: float, cap_usd: float, S: float):
    """(floor, cap) in coins: floor = max(floor_coins, floor_usd / S), cap = min(cap_coins,
    cap_usd / S); caps inf and floors 0 when not given."""
    cap = cap_coins
    if cap_usd != math.inf:
        cap = min(cap, cap_usd / S)
    floor = floor_coins
    if floor_usd != 0.0:
        floor = max(floor, floor_usd / S)
    return floor, cap


@register_jitable
def floor_cap(half: float, floor_coins: float, floor_usd: float, cap_coins: float, cap_usd: float,
              S: float) -> float:
    """max(min(half, cap), floor) with :func:`floor_and_cap` (the floor wins when they cross)."""
    floor, cap = floor_and_cap(floor_coins, floor_usd, cap_coins, cap_usd, S)
    return max(min(half, cap), floor)


@register_jitable
def skew_of(dev: float, lower: float, upper: float) -> float:
    """dev / the half-width on its side, clipped to +/- SKEW_CAP (0 for 0 against a zero width);
    NaN for a NaN deviation."""
    if dev != dev:
        return dev
    w = upper if dev >= 0.0 else lower
    if w > 0.0:
        s = dev / w
    elif dev == 0.0:
        s = 0.0
    elif dev > 0.0:
        s = SKEW_CAP
    else:
        s = -SKEW_CAP
    return max(-SKEW_CAP, min(SKEW_CAP, s))


@register_jitable
def round_half_away(x: float) -> float:
    """Nearest integer, halves away from zero."""
    if x >= 0.0:
        return math.floor(x + 0.5)
    return -math.floor(-x + 0.5)


@register_jitable
def trade_coins(net: float, centre: float, lower: float, upper: float, mode: int, fraction: float,
                lot: float, min_size: float) -> float:
    """Coins to trade from ``net`` (out of the band [centre - lower, centre + upper]), whole lots.

    ``to_band``: to the nearest edge, rounded away from the position (ceil of the lots needed) so
    that the result is inside; if that passes the far edge (a band narrower than a lot) the lot
    count nearest to the band is kept (one lot fewer, when nearer). ``to_target``: ``fraction`` of
    the way to the centre, nearest whole lot. A nonzero trade below ``min_size`` coins is raised to
    it (whole lots).
    """
    dev = net - centre
    if mode == MODE_TO_BAND:
        need = (centre + upper - net) if dev > 0.0 else (centre - lower - net)
        sign = 1.0 if need > 0.0 else -1.0
        k = float(math.ceil(abs(need) / lot - LOT_TOL))
        post = net + sign * k * lot
        if k > 0.0 and (post - centre > upper or centre - post > lower):
            # overshoot past the far edge: keep the count nearest to the band
            prev = net + sign * (k - 1.0) * lot
            d_post = max(post - centre - upper, centre - lower - post, 0.0)
            d_prev = max(prev - centre - upper, centre - lower - prev, 0.0)
            if d_prev <= d_post:
                k = k - 1.0
    else:
        need = fraction * (centre - net)
        sign = 1.0 if need > 0.0 else -1.0
        k = round_half_away(abs(need) / lot)
    if k > 0.0 and k * lot < min_size:
        k = float(math.ceil(min_size / lot - LOT_TOL))
    return sign * k * lot


@register_jitable
def band_half_widths(model: int, S: float, vol: float, gamma: float, lo_coins: float, up_coins: float,
                     lo_usd: float, up_usd: float, lo_budget: float, up_budget: float, z: float,
                     sqrt_h: float, risk_aversion: float, cost: float, h0_coef: float, h1_coef: float,
                     inv_s_var: float, vol_factor: float, sqrt_gamma: float, floor_coins: float, floor_usd: float,
                     cap_coins: float, cap_usd: float):
    """(lower, upper) half-widths in coins of a band model (BAND_*) at spot S, vol sigma and the
    group's gamma, before the Zakamouline centre shift; floors and caps applied. Zakamouline only:
    ``h0_coef``, ``h1_coef`` (:func:`zakamouline_h0_coef`, :func:`zakamouline_h1_coef`) and the
    market factors ``inv_s_var``, ``vol_factor``, ``sqrt_gamma``."""
    if model == BAND_FIXED:
        lo = fixed_half_width(lo_coins, lo_usd, S)
        up = fixed_half_width(up_coins, up_usd, S)
    elif model == BAND_VAR:
        lo = var_half_width(lo_budget, z, vol, S, sqrt_h)
        up = lo if up_budget == lo_budget else var_half_width(up_budget, z, vol, S, sqrt_h)
    elif model == BAND_WHALLEY_WILMOTT:
        lo = whalley_wilmott_half_width(cost, S, gamma, risk_aversion)
        up = lo
    else:
        lo = zakamouline_h0_from(h0_coef, inv_s_var) + zakamouline_h1_from(h1_coef, vol_factor, sqrt_gamma)
        up = lo
    lo = floor_cap(lo, floor_coins, floor_usd, cap_coins, cap_usd, S)
    if model == BAND_WHALLEY_WILMOTT or model == BAND_ZAKAMOULINE or up == lo:
        return lo, lo
    return lo, floor_cap(up, floor_coins, floor_usd, cap_coins, cap_usd, S)


@register_jitable
def zakamouline_shift(k_coef: float, vol: float, vol_factor: float, gamma: float, gamma_factor: float,
                      vanna: float) -> float:
    """Centre shift of a Zakamouline band, coins: vanna (sigma_m - sigma) * 100, with K from
    ``k_coef`` (:func:`zakamouline_k_coef`) and the market factors."""
    k = zakamouline_k_from(k_coef, vol_factor, gamma_factor)
    return vanna * (zakamouline_modified_vol(vol, k, gamma) - vol) * 100.0


@register_jitable
def policy_task(task, params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und, dt,
                trace_slot, out, trace):
    """Run the hedge recurrence of one task and write its statistics into ``out[task]``.

    task = (path * n_groups + group) * n_policies + policy. Arrays: params (n_policies, n_groups,
    N_PARAMS); S, vol, fund (paths, underlyings, steps + 1): index price (USD), ATM implied vol,
    annualised funding rate; wealth, delta, delta_pa, gamma, vanna (paths, groups, steps + 1):
    the book's value plus cash (USD), deltas (coins), gamma (coins/USD), vanna (coins per vol
    point); zak (N_ZAK_FACTORS, paths, groups, steps + 1): Zakamouline's market factors
    (:func:`zakamouline_factors_at`; read only by zakamouline bands, may be empty otherwise); target (n_targets, paths, groups, steps + 1) coins;
    und (groups,) the group's underlying; dt (steps,) years of each step; trace_slot (tasks,) the
    trace row of a task or -1.
    """
    n_pol = params.shape[0]
    n_grp = params.shape[1]
    pol = task % n_pol
    rest = task // n_pol
    g = rest % n_grp
    p = rest // n_grp
    u = und[g]
    n_steps = dt.shape[0]
    measure = int(params[pol, g, P_MEASURE])
    k_target = int(params[pol, g, P_TARGET])
    model = int(params[pol, g, P_BAND])
    lo_coins = params[pol, g, P_LO_COINS]
    up_coins = params[pol, g, P_UP_COINS]
    lo_usd = params[pol, g, P_LO_USD]
    up_usd = params[pol, g, P_UP_USD]
    lo_budget = params[pol, g, P_LO_BUDGET]
    up_budget = params[pol, g, P_UP_BUDGET]
    z = params[pol, g, P_Z]
    sqrt_h = params[pol, g, P_SQRT_H]
    risk_aversion = params[pol, g, P_RISK_AVERSION]
    lam = params[pol, g, P_COST]
    tau = params[pol, g, P_TAU]
    rate = params[pol, g, P_RATE]
    h0_coef = 0.0
    h1_coef = 0.0
    k_coef = 0.0
    if model == BAND_ZAKAMOULINE:
        h0_coef = zakamouline_h0_coef(lam, risk_aversion, tau)
        h1_coef = zakamouline_h1_coef(lam, tau, rate, risk_aversion)
        k_coef = zakamouline_k_coef(lam, tau, rate, risk_aversion)
    floor_coins = params[pol, g, P_FLOOR_COINS]
    floor_usd = params[pol, g, P_FLOOR_USD]
    cap_coins = params[pol, g, P_CAP_COINS]
    cap_usd = params[pol, g, P_CAP_USD]
    enabled = params[pol, g, P_ENABLED] != 0.0
    interval = int(params[pol, g, P_INTERVAL])
    mode = int(params[pol, g, P_MODE])
    fraction = params[pol, g, P_FRACTION]
    fee = params[pol, g, P_FEE]
    half_spread = params[pol, g, P_HALF_SPREAD]
    impact = params[pol, g, P_IMPACT]
    slope = params[pol, g, P_IMPACT_SLOPE]
    lot_param = params[pol, g, P_LOT]
    min_param = params[pol, g, P_MIN_SIZE]
    inverse = params[pol, g, P_INVERSE] != 0.0
    pays_funding = params[pol, g, P_FUNDING] != 0.0
    # a fixed band in coins does not move with S: computed once
    static_band = model == BAND_FIXED and lo_usd == 0.0 and up_usd == 0.0 and floor_usd == 0.0 \
        and cap_usd == math.inf
    slot = trace_slot[task]

    h = 0.0
    hedge_pnl = 0.0
    fees = 0.0
    spread = 0.0
    impact_usd = 0.0
    funding = 0.0
    hedged = 0.0
    trades = 0.0
    turnover = 0.0
    n_in = 0.0
    max_skew = 0.0
    max_skew3 = 0.0
    pnl_delta = 0.0
    s0 = S[p, u, 0]
    w0 = wealth[p, g, 0]
    lo = 0.0
    up = 0.0
    countdown = 0
    for t in range(n_steps):
        s1 = S[p, u, t + 1]
        w1 = wealth[p, g, t + 1]
        if measure == 0:
            d = delta[p, g, t]
        else:
            d = delta_pa[p, g, t]
        centre = 0.0
        if k_target >= 0:
            centre = target[k_target, p, g, t]
        net = d + h
        dev = net - centre
        a = abs(dev)
        fast = False
        if model == BAND_WHALLEY_WILMOTT and slot < 0:
            # in cube space: |dev| <= H exactly when |dev|^3 <= H^3, so an in-band step that sets no
            # new maximum of |skew| needs no cube root
            gm = gamma[p, g, t]
            x = whalley_wilmott_cube(lam, s0, gm, risk_aversion)
            floor, cap = floor_and_cap(floor_coins, floor_usd, cap_coins, cap_usd, s0)
            xe = max(min(x, cap * cap * cap), floor * floor * floor)
            a3 = a * a * a
            if a3 <= xe and a3 <= max_skew3 * xe:
                fast = True
        if fast:
            n_in += 1.0
            inside = True
        else:
            if not static_band or t == 0:
                v = 0.0
                gm = 0.0
                vf = 0.0
                sg = 0.0
                isv = 0.0
                if model == BAND_VAR or model == BAND_ZAKAMOULINE:
                    v = vol[p, u, t]
                if model == BAND_WHALLEY_WILMOTT or model == BAND_ZAKAMOULINE:
                    gm = gamma[p, g, t]
                if model == BAND_ZAKAMOULINE:
                    vf = zak[Z_VOL, p, g, t]
                    sg = zak[Z_SQRT_GAMMA, p, g, t]
                    isv = zak[Z_INV_S_VAR, p, g, t]
                lo, up = band_half_widths(model, s0, v, gm, lo_coins, up_coins, lo_usd, up_usd, lo_budget,
                                          up_budget, z, sqrt_h, risk_aversion, lam, h0_coef, h1_coef, isv, vf, sg,
                                          floor_coins, floor_usd, cap_coins, cap_usd)
                if model == BAND_ZAKAMOULINE:
                    centre += zakamouline_shift(k_coef, v, vf, gm, zak[Z_GAMMA, p, g, t], vanna[p, g, t])
                    dev = net - centre
                    a = abs(dev)
            # statistics of the state the market brought (before this step's trade)
            w = up if dev >= 0.0 else lo
            inside = a <= w
            n_in += 1.0 if inside else 0.0
            if a > max_skew * w:
                sk = abs(skew_of(dev, lo, up))
                if sk > max_skew:
                    max_skew = sk
                    max_skew3 = sk * sk * sk
        cost = 0.0
        check = countdown == 0
        countdown += 1
        if countdown == interval:
            countdown = 0
        if enabled and check and not inside:
            lot = lot_param
            min_size = min_param
            if inverse:
                lot = lot_param / s0
                min_size = min_param / s0
            x = trade_coins(net, centre, lo, up, mode, fraction, lot, min_size)
            if x != 0.0:
                notional = abs(x) * s0
                c_fee = notional * fee
                c_spread = notional * half_spread
                c_impact = notional * (impact + slope * notional)
                fees += c_fee
                spread += c_spread
                impact_usd += c_impact
                cost = c_fee + c_spread + c_impact
                trades += 1.0
                turnover += abs(x)
                h += x
        ds = s1 - s0
        step_hedge = h * ds
        hedge_pnl += step_hedge
        pnl_delta += (d + h) * ds
        received = 0.0
        if pays_funding:
            received = -h * s0 * fund[p, u, t] * dt[t]
            funding += received
        hedged += (w1 - w0) + step_hedge + received - cost
        if slot >= 0:
            trace[slot, F_NET, t] = net
            trace[slot, F_CENTRE, t] = centre
            trace[slot, F_LOWER, t] = centre - lo
            trace[slot, F_UPPER, t] = centre + up
            trace[slot, F_HEDGE, t] = h
            trace[slot, F_HEDGED_PNL, t] = hedged
            trace[slot, F_COSTS, t] = fees + spread + impact_usd
        s0 = s1
        w0 = w1
    out[task, O_HEDGE_PNL] = hedge_pnl
    out[task, O_FEES] = fees
    out[task, O_SPREAD] = spread
    out[task, O_IMPACT] = impact_usd
    out[task, O_FUNDING] = funding
    out[task, O_HEDGED_PNL] = hedged
    out[task, O_TRADES] = trades
    out[task, O_TURNOVER] = turnover
    out[task, O_TIME_IN_BAND] = n_in / n_steps if n_steps > 0 else 1.0
    out[task, O_MAX_ABS_SKEW] = max_skew
    out[task, O_PNL_DELTA] = pnl_delta
    out[task, O_FINAL_HEDGE] = h
