"""Backtest targets (issue 9): the policy sweep kernel and the greeks path, against what a user
would otherwise write, in one process.

1. **Sweep**: P policies x G groups x T steps (default 10^3 x 10 x 86,400 one-second steps: 8.6e8
   policy-steps) of the hedge recurrence (a mix of fixed, var, Whalley-Wilmott and Zakamouline
   bands, to_band hedges in whole lots, fees, half spread, linear impact, signed funding, time in
   band, max |skew|), on a random-walk market and greeks path:
   * gpuskew: ``kernels.cpu.policy_sweep`` (numba, prange over tasks), best of k;
   * NumPy columns: every (policy, group) a column, a Python loop over time, every step vectorised
     over the columns (the vectorbt approach), the same recurrence; its results are checked
     against the kernel's.
   Target: <= 10 s on the 2-core machine, and >= 10x the NumPy columns.
2. **Greeks path**: a demo book of N positions (default 10^4) along T one-second steps (default
   86,400), full revaluation every 60 steps: ``compute_greeks_path``; target <= 30 s. For scale,
   the same revaluations one ``Session.group_sums`` call at a time (timed on 100 calls,
   extrapolated).

:func:`gpu_section` times the sweep on a CUDA device (``benchmarks/gpu_check.py`` calls it).

    python benchmarks/bench_backtest.py                      # full size
    python benchmarks/bench_backtest.py --steps 8640 --policies 100
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, best_of, machine_info, machine_markdown, md_table, save_json  # noqa: E402

SECONDS_PER_YEAR = 31_536_000.0


# ------------------------------------------------------------------------------------------------
# inputs


def sweep_inputs(n_pol: int, n_groups: int, n_steps: int, step_seconds: float = 1.0, seed: int = 1) -> dict:
    """A random-walk market (one underlying, vol 60%), group deltas, gammas and wealth, and a grid
    of policies mixing the four band models (to_band, lots of 0.001, costs, funding)."""
    from gpuskew.kernels import policy as kp

    rng = np.random.default_rng(seed)
    dt = np.full(n_steps, step_seconds / SECONDS_PER_YEAR)
    S = np.empty((1, 1, n_steps + 1))
    S[0, 0, 0] = 100_000.0
    S[0, 0, 1:] = 100_000.0 * np.exp(np.cumsum(0.6 * math.sqrt(dt[0]) * rng.standard_normal(n_steps)))
    shape = (1, n_groups, n_steps + 1)
    gamma = -np.abs(rng.normal(0.002, 0.0005, (1, n_groups, 1))) * np.ones(shape)
    delta = np.cumsum(rng.normal(0, 1.0, shape), axis=2) * 0.02 + gamma * (S - S[..., :1])
    arrays = dict(
        S=S, vol=np.full((1, 1, n_steps + 1), 0.6), fund=np.full((1, 1, n_steps + 1), 0.1),
        wealth=np.cumsum(rng.normal(0, 50.0, shape), axis=2), delta=delta, delta_pa=delta.copy(), gamma=gamma,
        vanna=np.full(shape, 0.01), target=np.zeros((0,) + shape), und=np.zeros(n_groups, dtype=np.int64), dt=dt)
    x = np.zeros((n_pol, n_groups, kp.N_PARAMS))
    x[..., kp.P_TARGET] = -1
    x[..., kp.P_CAP_COINS] = np.inf
    x[..., kp.P_CAP_USD] = np.inf
    x[..., kp.P_ENABLED] = 1
    x[..., kp.P_INTERVAL] = 1
    x[..., kp.P_FRACTION] = 1
    x[..., kp.P_LOT] = 0.001
    x[..., kp.P_FEE] = 0.0005
    x[..., kp.P_HALF_SPREAD] = 0.0001
    x[..., kp.P_IMPACT] = 0.0001
    x[..., kp.P_IMPACT_SLOPE] = 1e-10
    x[..., kp.P_FUNDING] = 1
    x[..., kp.P_Z] = 2.326
    x[..., kp.P_SQRT_H] = math.sqrt(1 / 365)
    x[..., kp.P_TAU] = 30 / 365
    x[..., kp.P_COST] = 0.0007
    for i in range(n_pol):
        model = i % 4
        k = (i // 4) % 25 + 1  # 25 widths per model
        x[i, :, kp.P_BAND] = model
        x[i, :, kp.P_LO_COINS] = x[i, :, kp.P_UP_COINS] = 0.02 * k
        x[i, :, kp.P_LO_BUDGET] = x[i, :, kp.P_UP_BUDGET] = 2_000.0 * k
        x[i, :, kp.P_RISK_AVERSION] = 1e-4 / k ** 3 if model == 2 else 2e-3 / k
    arrays["params"] = x
    return arrays


def run_kernel(a: dict) -> np.ndarray:
    from gpuskew.kernels import cpu
    from gpuskew.kernels import policy as kp

    from gpuskew.backtest.sweep import zakamouline_factors

    n_tasks = a["params"].shape[0] * a["params"].shape[1]
    out = np.zeros((n_tasks, kp.N_OUTPUTS))
    zak = zakamouline_factors(a["params"], a["S"], a["vol"], a["gamma"], a["und"])  # once for all policies
    cpu.policy_sweep(a["params"], a["S"], a["vol"], a["fund"], a["wealth"], a["delta"], a["delta_pa"], a["gamma"],
                     a["vanna"], zak, a["target"], a["und"], a["dt"], np.full(n_tasks, -1, np.int64), out,
                     np.zeros((0, kp.N_TRACE_FIELDS, a["dt"].shape[0])))
    return out


# ------------------------------------------------------------------------------------------------
# the NumPy columns reference (vectorbt's approach): columns = (policy, group), a loop over time


def numpy_columns(a: dict) -> dict[str, np.ndarray]:
    """The same recurrence with every (policy, group) a column (the band formulas written out)."""
    from gpuskew.kernels import policy as kp

    x = a["params"].reshape(-1, kp.N_PARAMS)  # column c = policy * G + group
    n_pol, n_g = a["params"].shape[:2]
    g_of = np.tile(np.arange(n_g), n_pol)
    model = x[:, kp.P_BAND].astype(np.int64)
    lo_c, up_c = x[:, kp.P_LO_COINS], x[:, kp.P_UP_COINS]
    lo_b, up_b = x[:, kp.P_LO_BUDGET], x[:, kp.P_UP_BUDGET]
    z, sh, ra, lam, tau = x[:, kp.P_Z], x[:, kp.P_SQRT_H], x[:, kp.P_RISK_AVERSION], x[:, kp.P_COST], x[:, kp.P_TAU]
    fee, spr, imp, slope, lot = (x[:, kp.P_FEE], x[:, kp.P_HALF_SPREAD], x[:, kp.P_IMPACT], x[:, kp.P_IMPACT_SLOPE],
                                 x[:, kp.P_LOT])
    is_fixed, is_var, is_ww, is_zak = (model == 0), (model == 1), (model == 2), (model == 3)
    h1c = 1.12 * lam ** 0.31 * tau ** 0.05
    kc = -4.76 * lam ** 0.78 * tau ** -0.02
    VN = a["vanna"][0]
    n = x.shape[0]
    h = np.zeros(n)
    acc = {k: np.zeros(n) for k in ("hedge", "fees", "spread", "impact", "funding", "hedged", "trades", "turnover",
                                    "inside", "max_skew")}
    S, V, F, W, D, G, dt = (a["S"][0, 0], a["vol"][0, 0], a["fund"][0, 0], a["wealth"][0], a["delta"][0],
                            a["gamma"][0], a["dt"])
    for t in range(dt.shape[0]):
        s0, ds = S[t], S[t + 1] - S[t]
        gm = G[g_of, t]
        hw = np.where(is_fixed, lo_c, 0.0)
        hw = np.where(is_var, lo_b / (z * V[t] * s0 * sh), hw)
        hw = np.where(is_ww, np.cbrt(3.0 * lam * s0 * gm * gm / (2.0 * ra)), hw)
        hw = np.where(is_zak, lam / (ra * s0 * V[t] ** 2 * tau) + h1c * V[t] ** -0.25 * np.sqrt(np.abs(gm) / ra), hw)
        # Zakamouline's centre: the delta at the modified vol (vanna x the vol change)
        k_zak = kc * V[t] ** -0.25 * (ra * s0 * s0 * np.abs(gm)) ** 0.15
        sig_m = V[t] * np.sqrt(np.maximum(np.where(gm < 0, 1.0 - k_zak, 1.0 + k_zak), 0.0))
        centre = np.where(is_zak, VN[g_of, t] * (sig_m - V[t]) * 100.0, 0.0)
        net = D[g_of, t] + h
        a_dev = np.abs(net - centre)
        inside = a_dev <= hw
        acc["inside"] += inside
        acc["max_skew"] = np.maximum(acc["max_skew"], np.where(hw > 0, a_dev / np.where(hw > 0, hw, 1.0), 1e9))
        out = ~inside
        need = np.where(net - centre > 0, centre + hw - net, centre - hw - net)
        k = np.ceil(np.abs(need) / lot - 1e-9)
        trade = np.where(out, np.sign(need) * k * lot, 0.0)
        notional = np.abs(trade) * s0
        c_fee, c_spr, c_imp = notional * fee, notional * spr, notional * (imp + slope * notional)
        acc["fees"] += c_fee
        acc["spread"] += c_spr
        acc["impact"] += c_imp
        acc["trades"] += trade != 0
        acc["turnover"] += np.abs(trade)
        h = h + trade
        received = -h * s0 * F[t] * dt[t]
        acc["funding"] += received
        acc["hedge"] += h * ds
        acc["hedged"] += (W[g_of, t + 1] - W[g_of, t]) + h * ds + received - (c_fee + c_spr + c_imp)
    acc["time_in_band"] = acc["inside"] / dt.shape[0]
    return acc


def compare(kernel_out: np.ndarray, ref: dict[str, np.ndarray], n_pol: int, n_groups: int) -> dict[str, Any]:
    """Share of (policy, group) columns whose trades agree exactly and hedged P&L within 1e-6."""
    from gpuskew.kernels import policy as kp

    # the kernel's tasks run policy fastest; the columns group fastest
    kernel_out = kernel_out.reshape(n_groups, n_pol, -1).transpose(1, 0, 2).reshape(n_pol * n_groups, -1)
    trades_equal = kernel_out[:, kp.O_TRADES] == ref["trades"]
    close = np.isclose(kernel_out[:, kp.O_HEDGED_PNL], ref["hedged"], rtol=1e-6, atol=1e-3)
    return {"columns": int(trades_equal.size), "same_trades": float(trades_equal.mean()),
            "hedged_pnl_within_1e-6": float(close.mean())}


# ------------------------------------------------------------------------------------------------
# the greeks path


def greeks_path_bench(n_positions: int, n_steps: int, full_every: int, repeat: int) -> dict[str, Any]:
    import gpuskew
    from gpuskew.backtest.greeks_path import compute_greeks_path
    from gpuskew.session import MarketUpdate, Session
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.synthetic.markets import synthetic_market

    import pyarrow as pa

    tables = make_demo_book(n_positions, seed=7)
    book = gpuskew.load_book(tables)
    market, _ = synthetic_market({"market": {"steps": n_steps, "step_seconds": 1, "paths": 1, "seed": 3},
                                  "underlying": {"BTC": {"iv_vol_of_vol": 0.8}}}, book, DEMO_AS_OF)
    compute_greeks_path(book, market, [("desk",)], "cpu", full_every=full_every)  # compile, caches
    best, _ = best_of(lambda: compute_greeks_path(book, market, [("desk",)], "cpu", full_every=full_every),
                      repeat=repeat)
    gp = compute_greeks_path(book, market, [("desk",)], "cpu", full_every=full_every)
    session = Session(gpuskew.load_book(tables), backend="cpu", group_by=[("desk",)])
    k = 100
    t0 = time.perf_counter()
    for i in range(k):
        t = (i * full_every) % (n_steps + 1)
        session.group_sums(market.time_at(t), MarketUpdate(underlyings=pa.table(
            {"underlying": market.underlyings, "spot": market.spot[0, :, t]})))
    per_call = (time.perf_counter() - t0) / k
    return {"positions": n_positions, "steps": n_steps, "full_every": full_every, "seconds": best,
            "revaluations": gp.revaluations, "groups": gp.n_groups,
            "taylor_value_rms_relative": gp.error["value_rms_relative"],
            "session_group_sums_s_per_call": per_call,
            "session_extrapolated_s": per_call * gp.revaluations}


# ------------------------------------------------------------------------------------------------
# the GPU section (benchmarks/gpu_check.py)


def gpu_section(n_policies: int) -> dict[str, Any]:
    """Time the sweep kernel on the CUDA backend: ``n_policies`` x 10 groups over as many one-second
    steps (up to 86,400) as fit about a minute, after a compile launch; the CPU kernel on the
    first 200 policies over the same steps for agreement and scale. Under the CUDA simulator
    (gpu_check --simulate) the sizes are tiny and nothing is timed as a GPU figure."""
    from gpuskew.backtest.sweep import launch
    from gpuskew.core.backend import CpuBackend, cudasim_enabled, resolve_backend
    from gpuskew.kernels import policy as kp

    simulated = cudasim_enabled()
    gpu = resolve_backend("cuda", 1)
    n_groups = 2 if simulated else 10

    class _G:  # the arrays launch() reads
        pass

    def make(n_pol: int, n_steps: int):
        a = sweep_inputs(n_pol, n_groups, n_steps)
        g = _G()
        m = _G()
        m.spot, m.atm_vol, m.funding, m.dt_years = a["S"], a["vol"], a["fund"], a["dt"]
        m.n_paths, m.n_steps = 1, n_steps
        g.market = m
        for k in ("wealth", "delta", "delta_pa", "gamma", "vanna", "und"):
            setattr(g, k, a[k])
        return a["params"], g, a["target"]

    if simulated:
        params, g, target = make(n_policies, 16)
        out_gpu, _ = launch(gpu, params, g, target)
        out_cpu, _ = launch(CpuBackend("check"), params, g, target)
        return {"simulated": True, "policies": n_policies, "groups": n_groups, "steps": 16,
                "bitwise_equal_to_cpu": bool(np.array_equal(out_gpu.view(np.int64), out_cpu.view(np.int64)))}
    params, g, target = make(1000, 1000)
    launch(gpu, params, g, target)  # compile
    t0 = time.perf_counter()
    launch(gpu, params, g, target)
    rate = 1000 * n_groups * 1000 / (time.perf_counter() - t0)
    steps = int(min(86_400, max(1_000, 60.0 * rate / (n_policies * n_groups))))
    params, g, target = make(n_policies, steps)
    t0 = time.perf_counter()
    out_gpu, _ = launch(gpu, params, g, target)
    seconds = time.perf_counter() - t0
    sub = np.ascontiguousarray(params[:200])
    t0 = time.perf_counter()
    out_cpu, _ = launch(CpuBackend("check"), sub, g, target)
    cpu_s = time.perf_counter() - t0
    gpu_sub = out_gpu.reshape(1, n_groups, n_policies, kp.N_OUTPUTS)[:, :, :200].reshape(-1, kp.N_OUTPUTS)
    rel = np.abs(gpu_sub - out_cpu) / np.maximum(np.abs(out_cpu), 1e-300)
    return {"policies": n_policies, "groups": n_groups, "steps": steps, "policy_steps": n_policies * n_groups * steps,
            "gpu_seconds_incl_transfers": seconds, "gpu_policy_steps_per_s": n_policies * n_groups * steps / seconds,
            "cpu_policy_steps_per_s_200_policies": 200 * n_groups * steps / cpu_s,
            "tasks_with_same_trades": float(np.mean(gpu_sub[:, kp.O_TRADES] == out_cpu[:, kp.O_TRADES])),
            "hedged_pnl_max_rel_diff": float(np.nanmax(rel[:, kp.O_HEDGED_PNL])),
            "note": "GPU vs CPU differ by FMA contraction and libdevice ulps; a ulp can move a trade by a step"}


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--policies", type=int, default=1000)
    p.add_argument("--groups", type=int, default=10)
    p.add_argument("--steps", type=int, default=86_400)
    p.add_argument("--numpy-steps", type=int, default=None,
                   help="steps of the NumPy columns run (default: --steps; fewer are extrapolated linearly)")
    p.add_argument("--positions", type=float, default=1e4, help="greeks path: positions (default 1e4)")
    p.add_argument("--full-every", type=int, default=60)
    p.add_argument("--skip-greeks", action="store_true")
    add_common_args(p, default_repeat=2)
    args = p.parse_args(argv)

    info = machine_info()
    print("# Backtest benchmarks\n")
    print(machine_markdown(info) + "\n")
    a = sweep_inputs(args.policies, args.groups, args.steps)
    run_kernel(sweep_inputs(4, 2, 10))  # compile
    t_kernel, _ = best_of(lambda: run_kernel(a), repeat=args.repeat)
    out = run_kernel(a)
    ps = args.policies * args.groups * args.steps
    n_np = args.numpy_steps or args.steps
    b = sweep_inputs(args.policies, args.groups, n_np) if n_np != args.steps else a
    t0 = time.perf_counter()
    ref = numpy_columns(b)
    t_numpy = (time.perf_counter() - t0) * args.steps / n_np
    check = compare(run_kernel(b) if b is not a else out, ref, args.policies, args.groups)
    rows = [["gpuskew kernel (numba, prange)", t_kernel, ps / t_kernel, 1.0],
            ["NumPy columns, loop over time" + (" (extrapolated)" if n_np != args.steps else ""), t_numpy,
             ps / t_numpy, t_numpy / t_kernel]]
    print(f"## Sweep: {args.policies:,} policies x {args.groups} groups x {args.steps:,} steps = {ps:,.0f} "
          f"policy-steps\n")
    print(md_table(["implementation", "seconds", "policy-steps/s", "kernel speed-up"], rows))
    print(f"\nAgreement of the NumPy columns with the kernel: {check}")
    print(f"Targets: <= 10 s ({'met' if t_kernel <= 10 else 'NOT met'}), >= 10x NumPy "
          f"({'met' if t_numpy / t_kernel >= 10 else 'NOT met'})\n")
    data: dict[str, Any] = {"machine": info, "sweep": {"policies": args.policies, "groups": args.groups,
                                                       "steps": args.steps, "kernel_s": t_kernel, "numpy_s": t_numpy,
                                                       "numpy_steps": n_np, "agreement": check}}
    if not args.skip_greeks:
        gp = greeks_path_bench(int(args.positions), args.steps, args.full_every, args.repeat)
        print(f"## Greeks path: {gp['positions']:,} positions x {gp['steps']:,} steps, full revaluation every "
              f"{gp['full_every']}\n")
        print(md_table(["implementation", "seconds", "revaluations"],
                       [["compute_greeks_path (batched revaluations)", gp["seconds"], gp["revaluations"]],
                        ["Session.group_sums per revaluation (extrapolated from 100 calls)",
                         gp["session_extrapolated_s"], gp["revaluations"]]]))
        print(f"\nTaylor value error (RMS / RMS of the value moves): {gp['taylor_value_rms_relative']:.2e}; "
              f"target <= 30 s ({'met' if gp['seconds'] <= 30 else 'NOT met'})")
        data["greeks_path"] = gp
    save_json(args, __file__, data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
