"""CPU backend kernels: ``numba.njit(parallel=True, cache=True)`` loops over the scalar functions.

* :func:`position_greeks` - one pass over positions, every measure of each (see instruments.py).
* :func:`tile_sums` - one level of the fixed reduction tree of :mod:`segsum`.
* :func:`scenario_pnl` - one pass over positions, every scenario of each (see scenarios.py).
* :func:`position_values` - the USD value of each position on a given forward (explain).
* :func:`forwards` - the forward each position is priced on (explain).
"""

from __future__ import annotations

import os

# numba's OpenMP worker threads spin between parallel regions by default; on a shared or small
# machine the spinning threads take the cores the next launch needs (a reduction launch measured
# ~45 ms instead of < 1 ms). Sleeping threads cost a wake-up of tens of microseconds per launch.
# Set before the threading layer loads; the environment can still say otherwise.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from ._cache import configure_numba_cache  # noqa: E402
from .instruments import forward_price, position_measures, position_value
from .scenarios import position_scenarios
from .segsum import TILE

CACHE_DIR = configure_numba_cache()

# The per-position functions that receive the output arrays, inlined into the loops at numba's IR
# level (CPU only; the CUDA kernels call the same functions): an out-of-line call per position
# would pay reference-count atomics on the output arrays. With error_model="numpy" no division
# carries a zero check (inputs are validated: S, F, K, vol, T > 0 where they divide). Neither
# changes a single bit of the results.
_position_measures = njit(inline="always", error_model="numpy")(position_measures)
_position_scenarios = njit(inline="always", error_model="numpy")(position_scenarios)


@njit(parallel=True, cache=True, error_model="numpy")
def position_greeks(kind, settle, cp, qty, csize, strike, T, S, fwd, r, vol, entry, out, status):
    """Fill ``out[:, i]`` (N_MEASURES x n, float64) and ``status[i]`` (int8) for every position."""
    n = qty.shape[0]
    for i in prange(n):
        status[i] = _position_measures(kind[i], settle[i], cp[i], qty[i], csize[i], strike[i], T[i],
                                      S[i], fwd[i], r[i], vol[i], entry[i], out, i)


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


@njit(parallel=True, cache=True, error_model="numpy")
def scenario_pnl(kind, settle, cp, qty, csize, strike, T, S, fwd, r, vol, entry, ucode, greeks, moves,
                 vol_case, vparams, pnl, taylor):
    """Fill ``pnl[j, i]`` (n_scenarios x n, USD) and ``taylor[:, i]`` (N_TAYLOR x n) for every
    position i (scenarios.py)."""
    n = qty.shape[0]
    for i in prange(n):
        _position_scenarios(kind[i], settle[i], cp[i], qty[i], csize[i], strike[i], T[i], S[i], fwd[i], r[i],
                           vol[i], entry[i], ucode[i], greeks, moves, vol_case, vparams, pnl, taylor, i)


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
