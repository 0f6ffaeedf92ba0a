"""The policy sweep: every policy of a grid over every group and path of a greeks path.

One kernel launch (``gpuskew.kernels.cpu.policy_sweep`` or the CUDA kernel of
``gpuskew.kernels.cuda``, bitwise identical under the simulator) runs the hedge recurrence of
``gpuskew.kernels.policy`` for every task (policy, group, path) and keeps streaming statistics
only; a few chosen tasks also write per-step traces.

Per task (USD unless said): ``hedge_pnl`` = sum of h dS; ``fees``, ``spread``, ``impact`` (costs,
positive); ``funding`` received on the hedge (signed: positive funding costs a long hedge);
``hedged_pnl`` = the running sum of each step's book, hedge, funding and cost P&L; ``trades``;
``turnover`` (coins); ``time_in_band`` (fraction of steps); ``max_abs_skew``; ``pnl_delta`` = sum of
(book delta + h) dS. Then, per (group, path) and independent of the policy: ``book_pnl`` = W(T) -
W(0) and the book's second-order terms ``pnl_gamma`` = sum gamma dS^2 / 2, ``pnl_theta`` = sum
theta dt (days), ``pnl_vega`` = sum vega dL (vol points); the residual closes the attribution:

    hedged = book + hedge - fees - spread - impact + funding
    hedged = pnl_delta + pnl_gamma + pnl_theta + pnl_vega + funding - fees - spread - impact + residual
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gpuskew.backtest.greeks_path import GreeksPath
from gpuskew.core.backend import Backend, resolve_backend
from gpuskew.core.groups import GroupIndex
from gpuskew.kernels import policy as kp
from gpuskew.policy.grid import KernelParams, PolicyGrid, PolicyPoint, kernel_params
from gpuskew.schema import EXPOSURES

#: per-task outputs of the kernel, by name (kernels.policy O_*)
TASK_OUTPUTS: dict[str, int] = {
    "hedge_pnl_usd": kp.O_HEDGE_PNL, "fees_usd": kp.O_FEES, "spread_usd": kp.O_SPREAD,
    "impact_usd": kp.O_IMPACT, "funding_usd": kp.O_FUNDING, "hedged_pnl_usd": kp.O_HEDGED_PNL,
    "trades": kp.O_TRADES, "turnover_coins": kp.O_TURNOVER, "time_in_band": kp.O_TIME_IN_BAND,
    "max_abs_skew": kp.O_MAX_ABS_SKEW, "pnl_delta_usd": kp.O_PNL_DELTA, "final_hedge_coins": kp.O_FINAL_HEDGE,
}
#: trace fields (kernels.policy F_*)
TRACE_FIELDS: dict[str, int] = {
    "net_delta": kp.F_NET, "centre": kp.F_CENTRE, "lower": kp.F_LOWER, "upper": kp.F_UPPER,
    "hedge_coins": kp.F_HEDGE, "hedged_pnl_usd": kp.F_HEDGED_PNL, "costs_usd": kp.F_COSTS,
}


@dataclass
class SweepResult:
    """Outputs of :func:`run_sweep`: ``task`` (paths, groups, policies, N_OUTPUTS) as the kernel
    wrote them; ``book`` (paths, groups) arrays of the policy-independent terms; ``traces``:
    (policy index, group, path) -> (N_TRACE_FIELDS, steps)."""

    policies: list[PolicyPoint]
    greeks: GreeksPath
    kernel: KernelParams
    task: np.ndarray
    book: dict[str, np.ndarray]
    traces: dict[tuple[int, int, int], np.ndarray] = field(default_factory=dict)
    backend: dict = field(default_factory=dict)
    seconds: float = 0.0

    def value(self, name: str) -> np.ndarray:
        """A per-task output (paths, groups, policies)."""
        return self.task[..., TASK_OUTPUTS[name]]


def target_paths(greeks: GreeksPath, specs: Sequence[Any], params: np.ndarray | None = None) -> np.ndarray:
    """(targets, paths, groups, steps + 1) coins: each target spec evaluated by
    ``gpuskew.adherence.targets.target_coins`` at every step, with the market's spot, ATM vol
    (as ``vol``) and funding, and the groups' wealth as their value (``base_pct``); with
    ``params``, only for the groups some policy uses it on (0 elsewhere)."""
    from gpuskew.adherence.targets import group_value_usd, target_coins

    m = greeks.market
    n_p, n_g, n_s = greeks.wealth.shape
    out = np.empty((len(specs), n_p, n_g, n_s))
    if not specs:
        return out
    und = greeks.und
    spot = m.spot[:, und, :]
    vol = m.atm_vol[:, und, :]
    fund = m.funding[:, und, :]
    names = np.array([m.underlyings[u] for u in und], dtype=object)
    keys = GroupIndex(greeks.group_table, EXPOSURES).portfolio_codes()
    n_keys = int(keys.max()) + 1 if keys.size else 0
    flat_keys = ((np.arange(n_p)[:, None, None] * n_keys + keys[None, :, None]) * n_s
                 + np.arange(n_s)[None, None, :]).reshape(-1)
    flat_names = np.broadcast_to(names[None, :, None], (n_p, n_g, n_s)).reshape(-1)
    for k, spec in enumerate(specs):
        gv = None
        if spec.model == "base_pct":
            gv = group_value_usd(flat_keys, flat_names, greeks.wealth.reshape(-1), spec.value_scope,
                                 spec.cash_underlyings).reshape(n_p, n_g, n_s)
        used = np.ones(n_g, dtype=bool) if params is None else (params[:, :, kp.P_TARGET] == k).any(axis=0)
        cols = np.flatnonzero(used)
        out[k] = 0.0
        if cols.size:
            sub = lambda a: a[:, cols, :].reshape(-1)  # noqa: E731
            out[k][:, cols, :] = target_coins(
                spec, spot=sub(spot), vol=sub(vol), funding_rate=sub(fund),
                group_value_usd=None if gv is None else sub(gv),
                underlying=np.broadcast_to(names[None, cols, None], (n_p, cols.size, n_s)).reshape(-1),
            ).reshape(n_p, cols.size, n_s)
    return out


def book_terms(greeks: GreeksPath) -> dict[str, np.ndarray]:
    """Per (path, group): ``book_pnl_usd``, ``pnl_gamma_usd``, ``pnl_theta_usd``, ``pnl_vega_usd``."""
    m = greeks.market
    S = m.spot[:, greeks.und, :]
    L = m.atm_vol[:, greeks.und, :]
    dS = np.diff(S, axis=2)
    dL = 100.0 * np.diff(L, axis=2)
    dd = m.step_seconds / 86_400.0
    return {
        "book_pnl_usd": greeks.wealth[:, :, -1] - greeks.wealth[:, :, 0],
        "pnl_gamma_usd": np.sum(0.5 * greeks.gamma[:, :, :-1] * dS * dS, axis=2),
        "pnl_theta_usd": np.sum(greeks.theta[:, :, :-1] * dd, axis=2),
        "pnl_vega_usd": np.sum(greeks.vega[:, :, :-1] * dL, axis=2),
    }


def _contiguous(a: np.ndarray) -> np.ndarray:
    return np.require(a, np.float64, ("C", "W"))


def _greeks_zakamouline(params: np.ndarray, greeks: GreeksPath, und: np.ndarray) -> np.ndarray:
    """:func:`zakamouline_factors` of ``greeks``, computed once per greeks path (they do not depend
    on the policies) and kept in its ``cache``: the sweep, its trace relaunch and every block of a
    sharded sweep share them. Anything else with the arrays launch() reads (no ``cache``, as the
    simulator tests' stand-ins) gets them computed per launch."""
    if not (params[..., kp.P_BAND] == kp.BAND_ZAKAMOULINE).any():
        return np.zeros((kp.N_ZAK_FACTORS, 0, 0, 0))
    m = greeks.market
    cache = getattr(greeks, "cache", None)
    if cache is None:
        return zakamouline_factors(params, m.spot, m.atm_vol, greeks.gamma, und)
    if "zakamouline" not in cache:
        cache["zakamouline"] = zakamouline_factors(params, m.spot, m.atm_vol, greeks.gamma, und)
    return cache["zakamouline"]


def zakamouline_factors(params: np.ndarray, spot: np.ndarray, vol: np.ndarray, gamma: np.ndarray,
                        und: np.ndarray) -> np.ndarray:
    """Zakamouline's market factors (``kernels.cpu.zakamouline_factors``), computed on the host once
    for every policy; an empty array when no policy has a zakamouline band."""
    if not (params[..., kp.P_BAND] == kp.BAND_ZAKAMOULINE).any():
        return np.zeros((kp.N_ZAK_FACTORS, 0, 0, 0))
    from gpuskew.kernels import cpu

    zak = np.empty((kp.N_ZAK_FACTORS,) + gamma.shape)
    cpu.zakamouline_factors(_contiguous(spot), _contiguous(vol), _contiguous(gamma), und, zak)
    return zak


def launch(backend: Backend, params: np.ndarray, greeks: GreeksPath, targets: np.ndarray,
           trace_tasks: Sequence[int] = ()) -> tuple[np.ndarray, np.ndarray]:
    """Run the kernel over every task; return (out (tasks, N_OUTPUTS), traces (len(trace_tasks),
    N_TRACE_FIELDS, steps))."""
    m = greeks.market
    n_pol, n_g = params.shape[0], params.shape[1]
    n_tasks = n_pol * n_g * m.n_paths
    slots = np.full(n_tasks, -1, dtype=np.int64)
    for i, task in enumerate(trace_tasks):
        slots[task] = i
    und = np.ascontiguousarray(greeks.und, dtype=np.int64)
    zak = _greeks_zakamouline(params, greeks, und)
    arrays = [_contiguous(params), _contiguous(m.spot), _contiguous(m.atm_vol), _contiguous(m.funding),
              _contiguous(greeks.wealth), _contiguous(greeks.delta), _contiguous(greeks.delta_pa),
              _contiguous(greeks.gamma), _contiguous(greeks.vanna), zak, _contiguous(targets), und,
              _contiguous(m.dt_years), slots]
    out = np.zeros((n_tasks, kp.N_OUTPUTS))
    trace = np.zeros((len(trace_tasks), kp.N_TRACE_FIELDS, m.n_steps))
    if backend.name == "cpu":
        from gpuskew.kernels import cpu

        cpu.policy_sweep(*arrays, out, trace)
        return out, trace
    from gpuskew.kernels import cuda as kcuda

    dev = [backend.to_device(a) for a in arrays]
    out_d = backend.to_device(out)
    trace_d = backend.to_device(trace)
    kcuda.launch_policy_sweep(*dev, out_d, trace_d)
    backend.synchronize()
    return np.asarray(backend.to_host(out_d)), np.asarray(backend.to_host(trace_d))


#: Below this many tasks 'auto' sweeps on the CPU (a task runs a whole path: a few thousand tasks
#: keep both CPU cores busy for a fraction of a second, less than a GPU's start-up).
AUTO_CUDA_MIN_TASKS: int = 20_000


def sweep_backend(requested: str, n_tasks: int) -> Backend:
    """The sweep's backend: 'cpu', 'cuda' (:class:`CudaUnavailable` without a device) or 'auto'
    (CUDA from :data:`AUTO_CUDA_MIN_TASKS` tasks when a device is usable; the reason is kept)."""
    from gpuskew.core.backend import CpuBackend, CudaBackend, cudasim_enabled, probe_cuda

    if requested != "auto":
        return resolve_backend(requested, n_tasks)
    if cudasim_enabled():
        return CpuBackend("auto: the CUDA simulator is not a device; using the CPU")
    if n_tasks < AUTO_CUDA_MIN_TASKS:
        return CpuBackend(f"auto: {n_tasks} tasks < {AUTO_CUDA_MIN_TASKS} (the CPU is faster below this)")
    usable, why = probe_cuda()
    return CudaBackend(f"auto: {why}") if usable else CpuBackend(f"auto: CUDA not usable ({why}); using the CPU")


def task_index(policy: int, group: int, path: int, n_policies: int, n_groups: int) -> int:
    """The kernel's task number of (policy, group, path)."""
    return (path * n_groups + group) * n_policies + policy


def run_sweep(greeks: GreeksPath, grid: PolicyGrid | Sequence[PolicyPoint], resolve_hedges: Any,
              backend: str | Backend = "auto", trace: Sequence[tuple[int, int, int]] = ()) -> SweepResult:
    """Sweep every policy over ``greeks``.

    ``resolve_hedges(limits)``: the limits' hedge instruments resolved against the book
    (``gpuskew.adherence.hedging.resolve_hedge_instruments``); ``backend``: 'auto' | 'cpu' |
    'cuda' (auto: CUDA from :data:`AUTO_CUDA_MIN_TASKS` tasks when usable); ``trace``: (policy index, group, path) triples
    whose per-step traces are kept.
    """
    import time

    policies = list(grid.policies if isinstance(grid, PolicyGrid) else grid)
    m = greeks.market
    rates = [float(m.rate[u]) for u in greeks.und]
    kparams = kernel_params(policies, greeks.groups, resolve_hedges, m.step_seconds, rates)
    n_pol, n_g, n_p = len(policies), greeks.n_groups, m.n_paths
    n_tasks = n_pol * n_g * n_p
    chosen = backend if isinstance(backend, Backend) else sweep_backend(backend, n_tasks)
    targets = target_paths(greeks, kparams.targets, kparams.params)
    tasks = [task_index(pi, g, p, n_pol, n_g) for pi, g, p in trace]
    t0 = time.perf_counter()
    out, traces = launch(chosen, kparams.params, greeks, targets, tasks)
    seconds = time.perf_counter() - t0
    return SweepResult(policies, greeks, kparams, out.reshape(n_p, n_g, n_pol, kp.N_OUTPUTS), book_terms(greeks),
                       {key: traces[i] for i, key in enumerate(trace)},
                       {"used": chosen.name, "device": chosen.device, "reason": chosen.reason}, seconds)


__all__ = ["SweepResult", "run_sweep", "sweep_backend", "launch", "target_paths", "book_terms", "task_index", "TASK_OUTPUTS",
           "TRACE_FIELDS"]
