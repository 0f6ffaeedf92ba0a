"""CPU backend kernels: ``numba.njit(parallel=True, cache=True)`` loops over the scalar functions.

* :func:`position_greeks` - every measure of each position, in blocks (see instruments.py).
* :func:`instrument_pricing` / :func:`positions_from_instruments` - each held instrument priced once
  (in blocks), then every position from its instrument.
* :func:`tile_sums` - one level of the fixed reduction tree of :mod:`segsum`.
* :func:`policy_sweep` - the hedge recurrence of every (policy, group, path) (see policy.py).
* ``band_*_vec`` - the band half-width formulas of policy.py over arrays, for the adherence bands.
* :func:`scenario_pnl` - one pass over positions, every scenario of each (see scenarios.py).
* :func:`position_values` - the USD value of each position on a given forward (explain).
* :func:`forwards` - the forward each position is priced on (explain).
"""

from __future__ import annotations

import os
import types

# numba's OpenMP worker threads spin between parallel regions by default; on a shared or small
# machine the spinning threads take the cores the next launch needs (a reduction launch measured
# ~45 ms instead of < 1 ms). Sleeping threads cost a wake-up of tens of microseconds per launch.
# Set before the threading layer loads; the environment can still say otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ._cache import configure_numba_cache  # noqa: E402
from . import policy as _policy  # noqa: E402
from . import mathfn  # noqa: E402
from .black76 import black76_core, call_sign, norm_cdf  # noqa: E402
from .instruments import (  # noqa: E402
    CALL, KIND_OPTION, N_QUANTITIES, Q_D2V_DF2, Q_DV_DF, Q_DV_DT, Q_F, Q_V, Q_VANNA, Q_VEGA, Q_VOLGA, STATUS_OK,
    forward_price, is_live_option, live_option_quantities, measures_from, other_quantities, position_value,
    store_quantities)
from .scenarios import instrument_scenarios, position_scenarios
from .segsum import TILE

CACHE_DIR = configure_numba_cache()

# The per-position functions that receive the output arrays, inlined into the loops at numba's IR
# level (CPU only; the CUDA kernels call the same functions): an out-of-line call per position
# would pay reference-count atomics on the output arrays. With error_model="numpy" no division
# carries a zero check (inputs are validated: S, F, K, vol, T > 0 where they divide). Neither
# changes a single bit of the results.
_position_scenarios = njit(inline="always", error_model="numpy")(position_scenarios)
_measures_from = njit(inline="always", error_model="numpy")(measures_from)
_other_quantities = njit(inline="always", error_model="numpy")(other_quantities)
_store_quantities = njit(inline="always", error_model="numpy")(store_quantities)

# ---------------------------------------------------------------------------------------------
# Pricing in blocks. Each prange iteration takes BLOCK rows (positions or instruments):
#   1. packs the inputs of the block's live options into a scratch buffer (scalar);
#   2. prices them (forward, black76_core, live_option_quantities: every exp, log and erfc of
#      Black-76) in one loop LLVM vectorises: it reads and writes the one buffer at fixed offsets,
#      so no runtime alias check stops it;
#   3. takes each row's quantities (an option's from the buffer, any other by other_quantities)
#      and writes them (instruments) or the position's measures (measures_from).
# Every row gets the bits of the scalar functions the CUDA kernels call per thread
# (instrument_quantities, measures_from): the same operations in the same order.

#: rows per block of the CPU pricing kernels
BLOCK = 128
# rows of a block's scratch buffer (each BLOCK long)
_W, _K, _T, _S, _FQ, _R, _VOL = 0, 1, 2, 3, 4, 5, 6  # the packed live options' inputs
_OQ = 7  # their quantities: N_QUANTITIES rows (instruments.Q_* order)
_N_ROWS = _OQ + N_QUANTITIES


def _inline_copy(fn, **globals_):  # noqa: ANN001, ANN003, ANN202 - builds numba dispatchers
    """``fn`` (a plain-Python scalar function of kernels/) compiled to be inlined at numba's IR level,
    with some of the names it calls rebound (to inlined copies in turn): a vectorised loop must
    not call a function LLVM will not inline (erfc is too large for its inliner). The CPU loops
    only: the shared functions stay ordinary calls for CUDA, whose compiler does not take numba's
    inline overloads. The same operations, so the same bits as the calls."""
    names = dict(fn.__globals__)
    names.update(globals_)
    copy = types.FunctionType(fn.__code__, names, fn.__name__, fn.__defaults__, fn.__closure__)
    return njit(inline="always", error_model="numpy")(copy)


def _module_with(module, **attrs):  # noqa: ANN001, ANN003, ANN202
    """A stand-in for ``module`` whose attributes ``attrs`` are replaced (for :func:`_inline_copy`)."""
    stand_in = types.ModuleType(module.__name__)
    stand_in.__dict__.update({k: v for k, v in vars(module).items() if not k.startswith("__")})
    stand_in.__dict__.update(attrs)
    return stand_in


# black76_core -> norm_cdf -> mathfn.erfc, each inlined into the loop of _price_options
_erfc = _inline_copy(mathfn.erfc)
_norm_cdf = _inline_copy(norm_cdf, mathfn=_module_with(mathfn, erfc=_erfc))
_black76_core = _inline_copy(black76_core, norm_cdf=_norm_cdf)
_live_option_quantities = njit(inline="always", error_model="numpy")(live_option_quantities)


@njit(inline="always", error_model="numpy")
def _pack_live_options(kind, cp, strike, T, S, fwd, r, vol, start, stop, buf):
    """Copy the inputs of the live options among rows start..stop-1 into ``buf``, packed; return
    how many."""
    c = 0
    for i in range(start, stop):
        if is_live_option(kind[i], T[i]):
            buf[_W * BLOCK + c] = call_sign(cp[i] == CALL)
            buf[_K * BLOCK + c] = strike[i]
            buf[_T * BLOCK + c] = T[i]
            buf[_S * BLOCK + c] = S[i]
            buf[_FQ * BLOCK + c] = fwd[i]
            buf[_R * BLOCK + c] = r[i]
            buf[_VOL * BLOCK + c] = vol[i]
            c += 1
    return c


@njit(inline="always", error_model="numpy")
def _price_options(buf, c):
    """instruments.instrument_quantities of the ``c`` packed live options in ``buf`` (rows _OQ...):
    the vectorised loop of every exp, log and erfc of the block."""
    for j in range(c):
        w = buf[_W * BLOCK + j]
        K = buf[_K * BLOCK + j]
        T = buf[_T * BLOCK + j]
        r = buf[_R * BLOCK + j]
        vol = buf[_VOL * BLOCK + j]
        F = forward_price(KIND_OPTION, buf[_S * BLOCK + j], r, T, buf[_FQ * BLOCK + j])
        sqrt_t, d1, d2, disc, n1, n2, pdf1 = _black76_core(w, F, K, T, r, vol)
        _, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = _live_option_quantities(
            w, F, K, T, r, vol, sqrt_t, d1, d2, disc, n1, n2, pdf1)
        buf[(_OQ + Q_F) * BLOCK + j] = F
        buf[(_OQ + Q_V) * BLOCK + j] = v
        buf[(_OQ + Q_DV_DF) * BLOCK + j] = dv_df
        buf[(_OQ + Q_D2V_DF2) * BLOCK + j] = d2v_df2
        buf[(_OQ + Q_VEGA) * BLOCK + j] = vega
        buf[(_OQ + Q_DV_DT) * BLOCK + j] = dv_dt
        buf[(_OQ + Q_VANNA) * BLOCK + j] = vanna
        buf[(_OQ + Q_VOLGA) * BLOCK + j] = volga


@njit(inline="always", error_model="numpy")
def _quantities(buf, c, live, kind, T, S, fwd_quote, r):
    """instruments.instrument_quantities of one row: a live option's from packed column ``c`` of
    ``buf`` (rows _OQ...), any other row's by instruments.other_quantities."""
    if live:
        return (STATUS_OK, buf[(_OQ + Q_F) * BLOCK + c], buf[(_OQ + Q_V) * BLOCK + c],
                buf[(_OQ + Q_DV_DF) * BLOCK + c], buf[(_OQ + Q_D2V_DF2) * BLOCK + c],
                buf[(_OQ + Q_VEGA) * BLOCK + c], buf[(_OQ + Q_DV_DT) * BLOCK + c],
                buf[(_OQ + Q_VANNA) * BLOCK + c], buf[(_OQ + Q_VOLGA) * BLOCK + c])
    return _other_quantities(kind, T, S, fwd_quote, r)


@njit(parallel=True, cache=True, error_model="numpy")
def instrument_pricing(kind, cp, strike, T, S, fwd, r, vol, q, status):
    """Per instrument j: ``status[j]`` and its quantities ``q[:, j]`` (instruments.Q_*): what every
    position on it shares (the forward; an option's Black-76 value and sensitivities per coin).
    The bits of instruments.store_instrument_quantities, computed in blocks (see above)."""
    n = kind.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        buf = np.empty(_N_ROWS * BLOCK)
        start = b * BLOCK
        stop = min(start + BLOCK, n)
        _price_options(buf, _pack_live_options(kind, cp, strike, T, S, fwd, r, vol, start, stop, buf))
        c = 0
        for j in range(start, stop):
            live = is_live_option(kind[j], T[j])
            st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = _quantities(buf, c, live, kind[j], T[j], S[j],
                                                                              fwd[j], r[j])
            c += 1 if live else 0
            _store_quantities(st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga, q, status, j)


@njit(parallel=True, cache=True, error_model="numpy")
def positions_from_instruments(inst, qty, entry, kind, settle, csize, T, S, q, inst_status, out, status):
    """Every measure of every position i from its instrument ``inst[i]``'s quantities: the same
    bits as :func:`position_greeks` (instruments.measures_from)."""
    n = qty.shape[0]
    for i in prange(n):
        j = inst[i]
        status[i] = _measures_from(inst_status[j], q[Q_F, j], q[Q_V, j], q[Q_DV_DF, j], q[Q_D2V_DF2, j],
                                   q[Q_VEGA, j], q[Q_DV_DT, j], q[Q_VANNA, j], q[Q_VOLGA, j], kind[j], settle[j],
                                   qty[i], csize[j], T[j], S[j], entry[i], out, i)


@njit(parallel=True, cache=True, error_model="numpy")
def position_greeks(kind, settle, cp, qty, csize, strike, T, S, fwd, r, vol, entry, out, status):
    """Fill ``out[:, i]`` (N_MEASURES x n, float64) and ``status[i]`` (int8) for every position:
    the bits of instruments.position_measures, computed in blocks (see above)."""
    n = qty.shape[0]
    for b in prange((n + BLOCK - 1) // BLOCK):
        buf = np.empty(_N_ROWS * BLOCK)
        start = b * BLOCK
        stop = min(start + BLOCK, n)
        _price_options(buf, _pack_live_options(kind, cp, strike, T, S, fwd, r, vol, start, stop, buf))
        c = 0
        for i in range(start, stop):
            live = is_live_option(kind[i], T[i])
            st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = _quantities(buf, c, live, kind[i], T[i], S[i],
                                                                              fwd[i], r[i])
            c += 1 if live else 0
            status[i] = _measures_from(st, F, v, dv_df, d2v_df2, vega, dv_dt, vanna, volga, kind[i], settle[i],
                                       qty[i], csize[i], T[i], S[i], entry[i], out, i)


@njit(parallel=True, cache=True, error_model="numpy")
def tile_sums(values, index, tile_start, tile_len, out):
    """out[m, t] = tree sum of values[m, index[tile_start[t] + j]] for j < tile_len[t] (<= TILE).

    The tree is the one a CUDA block runs in shared memory (segsum.py), zero-padded to TILE.
    """
    n_measures = values.shape[0]
    n_tiles = tile_start.shape[0]
    for t in prange(n_tiles):
        buf = np.empty(TILE, dtype=np.float64)
        start = tile_start[t]
        length = tile_len[t]
        for m in range(n_measures):
            for j in range(TILE):
                buf[j] = values[m, index[start + j]] if j < length else 0.0
            s = TILE // 2
            while s > 0:
                for j in range(s):
                    buf[j] += buf[j + s]
                s //= 2
            out[m, t] = buf[0]


@njit(parallel=True, cache=True)
def policy_sweep(params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und, dt,
                 trace_slot, out, trace):
    """out[task] = statistics of the hedge recurrence of every task (policy, group, path); see
    :func:`gpuskew.kernels.policy.policy_task`. Each task accumulates sequentially, in step order."""
    for task in prange(out.shape[0]):
        _policy.policy_task(task, params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und,
                            dt, trace_slot, out, trace)


@njit(parallel=True, cache=True)
def zakamouline_factors(S, vol, gamma, und, zak):
    """Zakamouline's market factors of every (path, group, step) (policy.zakamouline_factors_at),
    computed once for every policy."""
    for p in prange(S.shape[0]):
        for g in range(gamma.shape[1]):
            u = und[g]
            for t in range(S.shape[2]):
                _policy.zakamouline_factors_at(S[p, u, t], vol[p, u, t], gamma[p, g, t], zak, p, g, t)


@njit(cache=True)
def band_fixed_vec(coins, usd, S, out):
    """out[i] = fixed half-width coins[i] + usd[i] / S[i] (coins)."""
    for i in range(out.shape[0]):
        out[i] = _policy.fixed_half_width(coins[i], usd[i], S[i])


@njit(cache=True)
def band_var_vec(budget, z, vol, S, sqrt_h, out):
    """out[i] = var half-width budget[i] / (z sigma[i] S[i] sqrt(h)) (coins)."""
    for i in range(out.shape[0]):
        out[i] = _policy.var_half_width(budget[i], z, vol[i], S[i], sqrt_h)


@njit(cache=True)
def band_whalley_wilmott_vec(cost, S, gamma, risk_aversion, out):
    """out[i] = (3 lambda[i] S[i] Gamma[i]^2 / (2 gamma))^(1/3) (coins)."""
    for i in range(out.shape[0]):
        out[i] = _policy.whalley_wilmott_half_width(cost[i], S[i], gamma[i], risk_aversion)


@njit(cache=True)
def band_zakamouline_vec(cost, risk_aversion, S, vol, tau, r, gamma, vanna, h0, h1, k, shift):
    """Zakamouline's H0, H1, K and the centre shift vanna (sigma_m - sigma) * 100 per row."""
    for i in range(h0.shape[0]):
        h0[i] = _policy.zakamouline_h0(cost[i], risk_aversion, S[i], vol[i], tau)
        h1[i] = _policy.zakamouline_h1(cost[i], tau, r[i], vol[i], gamma[i], risk_aversion)
        k[i] = _policy.zakamouline_k(cost[i], tau, r[i], vol[i], risk_aversion, S[i], gamma[i])
        shift[i] = vanna[i] * (_policy.zakamouline_modified_vol(vol[i], k[i], gamma[i]) - vol[i]) * 100.0


@njit(cache=True)
def band_floor_cap_vec(half, floor_coins, floor_usd, cap_coins, cap_usd, S, out):
    """out[i] = max(min(half[i], cap), floor) with cap and floor in coins from coins and USD / S."""
    for i in range(out.shape[0]):
        out[i] = _policy.floor_cap(half[i], floor_coins, floor_usd, cap_coins, cap_usd, S[i])


@njit(cache=True)
def skew_vec(dev, lower, upper, out):
    """out[i] = dev[i] / the half-width on its side, clipped to +/- SKEW_CAP (policy.skew_of)."""
    for i in range(out.shape[0]):
        out[i] = _policy.skew_of(dev[i], lower[i], upper[i])


@njit(parallel=True, cache=True, error_model="numpy")
def instrument_scenario_values(kind, cp, strike, T, S, fwd, r, vol, ucode, moves, vol_case, vparams, qv):
    """``qv[:, j]`` for every held instrument j (scenarios.instrument_scenarios): each option priced
    once per scenario, whatever the number of positions on it."""
    m = kind.shape[0]
    for j in prange(m):
        instrument_scenarios(kind[j], cp[j], strike[j], T[j], S[j], fwd[j], r[j], vol[j], ucode[j], moves,
                             vol_case, vparams, qv, j)


@njit(parallel=True, cache=True, error_model="numpy")
def scenario_pnl(pos_inst, qty, entry, kind, settle, csize, T, S, vol, ucode, greeks, moves, vol_case, qv, pnl,
                 taylor):
    """Fill ``pnl[s, i]`` (n_scenarios x n, USD) and ``taylor[:, i]`` (N_TAYLOR x n) for every
    position i from its instrument's ``qv`` column (scenarios.position_scenarios)."""
    n = qty.shape[0]
    for i in prange(n):
        j = pos_inst[i]
        _position_scenarios(kind[j], settle[j], qty[i], csize[j], T[j], S[j], vol[j], entry[i], ucode[j], greeks,
                            moves, vol_case, qv, j, pnl, taylor, i)


@njit(parallel=True, cache=True, error_model="numpy")
def position_values(kind, settle, cp, qty, csize, strike, T, S, F, r, vol, entry, out):
    """out[i] = USD value of position i on the forward F[i] (instruments.position_value)."""
    n = qty.shape[0]
    for i in prange(n):
        out[i] = position_value(kind[i], settle[i], cp[i], qty[i], csize[i], strike[i], T[i], S[i], F[i], r[i],
                                vol[i], entry[i])


@njit(parallel=True, cache=True, error_model="numpy")
def forwards(kind, S, r, T, quoted, out):
    """out[i] = the forward position i is priced on (instruments.forward_price), USD."""
    n = S.shape[0]
    for i in prange(n):
        out[i] = forward_price(kind[i], S[i], r[i], T[i], quoted[i])


# ---------------------------------------------------------------------------------------------
# Every parallel kernel above is reached only through a guard (kernels/threads.py, numba issue
# 9288): two Python threads inside parallel kernels at once abort the process under numba's
# workqueue layer. The names below are the guarded callables; the numba dispatcher of each is its
# ``dispatcher`` attribute.

from .threads import launch_guard  # noqa: E402


def _guarded(dispatcher):  # noqa: ANN001, ANN202 - wraps numba dispatchers
    def call(*args):  # noqa: ANN002, ANN202
        with launch_guard():
            return dispatcher(*args)

    call.__name__ = dispatcher.__name__
    call.__qualname__ = dispatcher.__qualname__
    call.__doc__ = dispatcher.__doc__
    call.dispatcher = dispatcher
    return call


PARALLEL_KERNELS = ("instrument_pricing", "positions_from_instruments", "position_greeks", "tile_sums",
                    "policy_sweep", "zakamouline_factors", "instrument_scenario_values", "scenario_pnl",
                    "position_values", "forwards")
for _name in PARALLEL_KERNELS:
    globals()[_name] = _guarded(globals()[_name])
del _name
