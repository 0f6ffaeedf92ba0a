"""CUDA backend kernels: ``numba.cuda.jit`` kernels over the same scalar functions as cpu.py.

Import only when the CUDA backend is used (it imports numba.cuda). The kernels use only constructs
numba's CUDA simulator runs (no warp shuffles): with NUMBA_ENABLE_CUDASIM=1 they run on the CPU on
NumPy arrays, thread by thread.

* :func:`position_greeks_kernel` - one thread per position (grid-stride loop).
* :func:`tile_sums_kernel` - one block of TILE/2 threads per tile; the tree of segsum.py in
  shared memory with ``syncthreads()``, looping over measures.
* :func:`policy_sweep_kernel` - one thread per (policy, group, path) task (grid-stride loop), each
  running the hedge recurrence of kernels/policy.py sequentially over the steps.
* :func:`scenario_pnl_kernel` - one thread per position (grid-stride loop), every scenario of it
  (scenarios.py); the book stays on the device, the scenarios are a small parameter array.
"""

from __future__ import annotations

from numba import cuda, float64

from .instruments import (Q_D2V_DF2, Q_DV_DF, Q_DV_DT, Q_F, Q_V, Q_VANNA, Q_VEGA, Q_VOLGA, measures_from,
                          position_measures, store_instrument_quantities)
from .policy import policy_task
from .scenarios import instrument_scenarios, position_scenarios
from .segsum import HALF_TILE

#: threads per block of the per-position kernel
GREEKS_BLOCK = 128


def _position_greeks(kind, settle, cp, qty, csize, strike, T, S, fwd, r, vol, entry, out, status):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, qty.shape[0], stride):
        status[i] = position_measures(kind[i], settle[i], cp[i], qty[i], csize[i], strike[i], T[i],
                                      S[i], fwd[i], r[i], vol[i], entry[i], out, i)


def _instrument_pricing(kind, cp, strike, T, S, fwd, r, vol, q, status):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, kind.shape[0], stride):
        store_instrument_quantities(kind[j], cp[j], strike[j], T[j], S[j], fwd[j], r[j], vol[j], q, status, j)


def _positions_from_instruments(inst, qty, entry, kind, settle, csize, T, S, q, inst_status, out, status):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, qty.shape[0], stride):
        j = inst[i]
        status[i] = measures_from(inst_status[j], q[Q_F, j], q[Q_V, j], q[Q_DV_DF, j], q[Q_D2V_DF2, j],
                                  q[Q_VEGA, j], q[Q_DV_DT, j], q[Q_VANNA, j], q[Q_VOLGA, j], kind[j], settle[j],
                                  qty[i], csize[j], T[j], S[j], entry[i], out, i)


def _tile_sums(values, index, tile_start, tile_len, out):
    buf = cuda.shared.array(HALF_TILE, float64)
    t = cuda.blockIdx.x
    j = cuda.threadIdx.x
    start = tile_start[t]
    length = tile_len[t]
    for m in range(values.shape[0]):
        a = 0.0
        b = 0.0
        if j < length:
            a = values[m, index[start + j]]
        if j + HALF_TILE < length:
            b = values[m, index[start + j + HALF_TILE]]
        buf[j] = a + b
        cuda.syncthreads()
        s = HALF_TILE // 2
        while s > 0:
            if j < s:
                buf[j] += buf[j + s]
            cuda.syncthreads()
            s //= 2
        if j == 0:
            out[m, t] = buf[0]
        cuda.syncthreads()


def _policy_sweep(params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und, dt, trace_slot,
                  out, trace):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for task in range(start, out.shape[0], stride):
        policy_task(task, params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und, dt,
                    trace_slot, out, trace)


def _instrument_scenario_values(kind, cp, strike, T, S, fwd, r, vol, ucode, moves, vol_case, vparams, qv):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for j in range(start, kind.shape[0], stride):
        instrument_scenarios(kind[j], cp[j], strike[j], T[j], S[j], fwd[j], r[j], vol[j], ucode[j], moves, vol_case,
                             vparams, qv, j)


def _scenario_pnl(pos_inst, qty, entry, kind, settle, csize, T, S, vol, ucode, greeks, moves, vol_case, qv, pnl,
                  taylor):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, qty.shape[0], stride):
        j = pos_inst[i]
        position_scenarios(kind[j], settle[j], qty[i], csize[j], T[j], S[j], vol[j], entry[i], ucode[j], greeks,
                           moves, vol_case, qv, j, pnl, taylor, i)


#: Python sources of every kernel, for numba.cuda.compile_ptx (tests/test_ptx.py)
KERNEL_SOURCES = {"position_greeks": _position_greeks, "tile_sums": _tile_sums, "policy_sweep": _policy_sweep,
                  "instrument_pricing": _instrument_pricing,
                  "positions_from_instruments": _positions_from_instruments,
                  "instrument_scenario_values": _instrument_scenario_values, "scenario_pnl": _scenario_pnl}

position_greeks_kernel = cuda.jit(_position_greeks)
instrument_pricing_kernel = cuda.jit(_instrument_pricing)
positions_from_instruments_kernel = cuda.jit(_positions_from_instruments)
tile_sums_kernel = cuda.jit(_tile_sums)
policy_sweep_kernel = cuda.jit(_policy_sweep)
instrument_scenario_values_kernel = cuda.jit(_instrument_scenario_values)
scenario_pnl_kernel = cuda.jit(_scenario_pnl)

#: threads per block of the policy sweep (consecutive threads: consecutive policies of one group
#: and path, which read the same market and greeks arrays)
POLICY_BLOCK = 128
#: threads per block of the scenario kernels
SCENARIO_BLOCK = 128


def launch_position_greeks(kind, settle, cp, qty, csize, strike, T, S, fwd, r, vol, entry, out, status):
    """Launch the per-position kernel over all positions (arrays already on the device)."""
    n = qty.shape[0]
    if n == 0:
        return
    blocks = min((n + GREEKS_BLOCK - 1) // GREEKS_BLOCK, 65535)
    position_greeks_kernel[blocks, GREEKS_BLOCK](kind, settle, cp, qty, csize, strike, T, S, fwd, r,
                                                 vol, entry, out, status)


def launch_instrument_pricing(kind, cp, strike, T, S, fwd, r, vol, q, status):
    """Launch the per-instrument kernel (arrays already on the device)."""
    n = kind.shape[0]
    if n == 0:
        return
    blocks = min((n + GREEKS_BLOCK - 1) // GREEKS_BLOCK, 65535)
    instrument_pricing_kernel[blocks, GREEKS_BLOCK](kind, cp, strike, T, S, fwd, r, vol, q, status)


def launch_positions_from_instruments(inst, qty, entry, kind, settle, csize, T, S, q, inst_status, out, status):
    """Launch the per-position kernel over the instruments' quantities (arrays on the device)."""
    n = qty.shape[0]
    if n == 0:
        return
    blocks = min((n + GREEKS_BLOCK - 1) // GREEKS_BLOCK, 65535)
    positions_from_instruments_kernel[blocks, GREEKS_BLOCK](inst, qty, entry, kind, settle, csize, T, S, q,
                                                           inst_status, out, status)


def launch_tile_sums(values, index, tile_start, tile_len, out):
    """Launch one level of the reduction tree: one block of TILE/2 threads per tile."""
    n_tiles = tile_start.shape[0]
    if n_tiles == 0:
        return
    tile_sums_kernel[n_tiles, HALF_TILE](values, index, tile_start, tile_len, out)


def launch_policy_sweep(params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und, dt,
                        trace_slot, out, trace):
    """Launch the policy sweep: one thread per task (arrays already on the device)."""
    n = out.shape[0]
    if n == 0:
        return
    blocks = min((n + POLICY_BLOCK - 1) // POLICY_BLOCK, 65535)
    policy_sweep_kernel[blocks, POLICY_BLOCK](params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak,
                                              target, und, dt, trace_slot, out, trace)


def launch_instrument_scenario_values(kind, cp, strike, T, S, fwd, r, vol, ucode, moves, vol_case, vparams, qv):
    """Launch the per-instrument scenario kernel (arrays already on the device)."""
    m = kind.shape[0]
    if m == 0:
        return
    blocks = min((m + SCENARIO_BLOCK - 1) // SCENARIO_BLOCK, 65535)
    instrument_scenario_values_kernel[blocks, SCENARIO_BLOCK](kind, cp, strike, T, S, fwd, r, vol, ucode, moves,
                                                              vol_case, vparams, qv)


def launch_scenario_pnl(pos_inst, qty, entry, kind, settle, csize, T, S, vol, ucode, greeks, moves, vol_case, qv,
                        pnl, taylor):
    """Launch the per-position scenario kernel (arrays already on the device)."""
    n = qty.shape[0]
    if n == 0:
        return
    blocks = min((n + SCENARIO_BLOCK - 1) // SCENARIO_BLOCK, 65535)
    scenario_pnl_kernel[blocks, SCENARIO_BLOCK](pos_inst, qty, entry, kind, settle, csize, T, S, vol, ucode, greeks,
                                                moves, vol_case, qv, pnl, taylor)
