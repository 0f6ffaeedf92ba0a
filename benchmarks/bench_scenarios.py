"""Scenario risk: ``gpuskew scenarios`` end to end, and the scenario kernel against NumPy/SciPy.

On a mixed demo book of ``--size`` positions (default 10^6; 35 scenarios: Deribit's 27 + 8
extended), in one run:

* end to end: ``gpuskew scenarios BOOK --out OUT --backend cpu --group-by desk,book --no-report``
  as a subprocess on a Parquet book (start-up, read, validate, price, revalue, sum, write), best of
  ``--repeat`` after a warm-up; the same with the heatmap page (``--report``) beside it; and the
  in-process stage times of that run (``summary.json`` ``timings_s``);
* kernel: ``gpuskew.kernels.cpu.scenario_pnl`` (every position x every scenario, full
  revaluation, plus the Taylor vol terms) on ``Book.flat()`` arrays after a warm-up, against a
  vectorised NumPy/SciPy revaluation of the same grid written here (Black-76 value on the options
  with ``scipy.special.ndtr``, closed forms for the rest, one array operation per scenario), both
  followed by the per-group sums (the fixed reduction tree / ``np.bincount``). The two P&L arrays
  are cross-checked (max relative difference <= 1e-9 of the position's largest |P&L|).

``gpu_section(n_positions)`` times the resident scenario kernel on the CUDA backend (book moved
once, each run moves only the scenario grid): ``benchmarks/gpu_check.py`` calls it on a GPU
machine; here, without a device, it returns ``{"skipped": reason}``.

Usage::

    python benchmarks/bench_scenarios.py --size 1e6 [--repeat 3] [--json-out]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (add_common_args, best_of, best_of_cmd, gpuskew_cmd, machine_info,  # noqa: E402
                    machine_markdown, md_table, run_cmd, save_json)

SPOT, PERPETUAL, FUTURE, OPTION = 0, 1, 2, 3
LINEAR, INVERSE = 0, 1
RTOL = 1e-9


# ------------------------------------------------------------------------------------------------
# the NumPy/SciPy baseline (written from docs/scenarios.md, not from the kernel)
# ------------------------------------------------------------------------------------------------

def numpy_shocked_vols(vol: np.ndarray, T: np.ndarray, p: dict[str, float]) -> tuple[np.ndarray, np.ndarray]:
    """Deribit's vol up / down per option: s = (30 / max(365 T, 1))^(0.30 if DTE < 30 else 0.13)."""
    dte = np.maximum(T * 365.0, 1.0)
    s = (30.0 / dte) ** np.where(dte < 30.0, p["short_term_vega_power"], p["long_term_vega_power"])
    up = np.maximum(vol * (1.0 + p["volatility_range_up"] * s), p["min_volatility_for_shock_up"])
    return up, vol * (1.0 - p["volatility_range_down"] * s)


def numpy_black76_value(is_call: np.ndarray, F: np.ndarray, K: np.ndarray, T: np.ndarray, r: np.ndarray,
                        vol: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    sd = vol * np.sqrt(T)
    d1 = (np.log(F / K) + 0.5 * sd * sd) / sd
    d2 = d1 - sd
    phi = np.where(is_call, 1.0, -1.0)
    return phi * np.exp(-r * T) * (F * ndtr(phi * d1) - K * ndtr(phi * d2))


def numpy_scenario_pnl(flat: Any, T: np.ndarray, moves: np.ndarray, vol_case: np.ndarray,
                       params: dict[str, float]) -> np.ndarray:
    """(n_scenarios x n) USD P&L V' - V of every position, vectorised per scenario."""
    kind, settle = flat.kind, flat.settle
    size = flat.qty * flat.csize
    S, r = flat.S, flat.r
    F = np.where(flat.fwd > 0, flat.fwd, np.where((kind == SPOT) | (kind == PERPETUAL), S, S * np.exp(r * T)))
    live = ~(((kind == OPTION) | (kind == FUTURE)) & (T <= 0))
    entry = np.where(flat.entry > 0, flat.entry, F)
    opt = np.flatnonzero((kind == OPTION) & live)
    lin = np.flatnonzero(((kind == PERPETUAL) | (kind == FUTURE)) & (settle == LINEAR) & live)
    inv = np.flatnonzero(((kind == PERPETUAL) | (kind == FUTURE)) & (settle == INVERSE) & live)
    spot = np.flatnonzero(kind == SPOT)
    u = flat.underlying_code
    o_call = flat.cp[opt] == 1
    oF, oK, oT, orr, ovol = F[opt], flat.strike[opt], T[opt], r[opt], flat.vol[opt]
    o_size = size[opt]
    vol_up, vol_down = numpy_shocked_vols(ovol, oT, params)
    base_opt = o_size * numpy_black76_value(o_call, oF, oK, oT, orr, ovol)
    pnl = np.zeros((moves.shape[1], size.size))
    for j in range(moves.shape[1]):
        g = 1.0 + moves[u, j]
        v = ovol if vol_case[j] == 0 else (vol_up if vol_case[j] > 0 else vol_down)
        pnl[j, opt] = o_size * numpy_black76_value(o_call, oF * g[opt], oK, oT, orr, v) - base_opt
        pnl[j, lin] = size[lin] * (F[lin] * g[lin] - entry[lin]) - size[lin] * (F[lin] - entry[lin])
        Si, Fi, Ei, Ni = S[inv], F[inv], entry[inv], size[inv]
        pnl[j, inv] = Si * g[inv] * Ni * (1 / Ei - 1 / (Fi * g[inv])) - Si * Ni * (1 / Ei - 1 / Fi)
        pnl[j, spot] = size[spot] * S[spot] * g[spot] - size[spot] * S[spot]
    return pnl


# ------------------------------------------------------------------------------------------------
# sections
# ------------------------------------------------------------------------------------------------

def _book(n: int, seed: int):
    from gpuskew.core.book import load_book
    from gpuskew.synthetic.demo import make_demo_book

    return load_book(make_demo_book(n, seed=seed))


def kernel_section(n: int, repeat: int, seed: int) -> dict[str, Any]:
    """The CPU scenario kernel vs the NumPy/SciPy baseline on the same flat arrays and grid."""
    from gpuskew.core.engine import as_of_micros
    from gpuskew.core.groups import group_positions
    from gpuskew.core.reduction import plan_segmented_sum
    from gpuskew.core.backend import CpuBackend
    from gpuskew.kernels import cpu
    from gpuskew.kernels.instruments import N_MEASURES
    from gpuskew.kernels.scenarios import N_TAYLOR
    from gpuskew.scenarios.matrix import build_grid
    from gpuskew.scenarios.params import ScenarioConfig
    from gpuskew.synthetic.demo import DEMO_AS_OF

    book = _book(n, seed)
    flat = book.flat()
    T = flat.time_to_expiry(as_of_micros(DEMO_AS_OF))
    config = ScenarioConfig()
    grid = build_grid(config, flat.underlying_names)
    args = (flat.kind, flat.settle, flat.cp, flat.qty, flat.csize, flat.strike, T, flat.S, flat.fwd, flat.r,
            flat.vol, flat.entry)
    greeks = np.empty((N_MEASURES, n))
    status = np.empty(n, dtype=np.int8)
    cpu.position_greeks(*args, greeks, status)
    out = np.empty((3 + N_TAYLOR + grid.n_scenarios, n))
    pnl, taylor = out[3 + N_TAYLOR:], out[3:3 + N_TAYLOR]

    from gpuskew.kernels.scenarios import N_QS_EXTRA

    hT = flat.held_time_to_expiry(as_of_micros(DEMO_AS_OF))
    h_ucode = np.empty(flat.held_row.size, dtype=np.int32)
    h_ucode[flat.pos_inst] = flat.underlying_code
    qv = np.empty((grid.n_scenarios + N_QS_EXTRA, flat.held_row.size))

    def kernel() -> None:
        # what the job runs: each held instrument revalued once per scenario, then every position
        cpu.instrument_scenario_values(flat.h_kind, flat.h_cp, flat.h_strike, hT, flat.h_S, flat.h_fwd, flat.h_r,
                                       flat.h_vol, h_ucode, grid.moves, grid.vol_case, grid.vparams, qv)
        cpu.scenario_pnl(flat.pos_inst, flat.qty, flat.entry, flat.h_kind, flat.h_settle, flat.h_csize, hT, flat.h_S,
                         flat.h_vol, h_ucode, greeks, grid.moves, grid.vol_case, qv, pnl, taylor)

    t_kernel, _ = best_of(kernel, repeat=repeat, warmup=1)
    grouping = group_positions(flat.underlying_code, flat.underlying_names, book.positions, ("desk", "book"))
    plan = plan_segmented_sum(grouping.codes, grouping.n_groups)
    backend = CpuBackend("bench")
    t_sums, _ = best_of(lambda: backend.segmented_sum(pnl, plan), repeat=repeat, warmup=1)
    params = {k: getattr(config.defaults, k) for k in ("volatility_range_up", "volatility_range_down",
                                                      "min_volatility_for_shock_up", "short_term_vega_power",
                                                      "long_term_vega_power")}
    ref: dict[str, np.ndarray] = {}

    def numpy_run() -> None:
        ref["pnl"] = numpy_scenario_pnl(flat, T, grid.moves, grid.vol_case, params)

    t_numpy, _ = best_of(numpy_run, repeat=max(1, min(repeat, 2)))

    def numpy_sums() -> None:
        for j in range(grid.n_scenarios):
            np.bincount(grouping.codes, weights=ref["pnl"][j], minlength=grouping.n_groups)

    t_numpy_sums, _ = best_of(numpy_sums, repeat=repeat)
    scale = np.maximum(np.abs(pnl).max(axis=0), 1e-300)
    diff = float(np.max(np.abs(pnl - ref["pnl"]) / scale))
    n_opt = int(np.sum(flat.kind == OPTION))
    return {"positions": n, "options": n_opt, "scenarios": grid.n_scenarios,
            "kernel_s": t_kernel, "tree_sums_s": t_sums, "numpy_s": t_numpy, "numpy_sums_s": t_numpy_sums,
            "kernel_ratio": t_numpy / t_kernel,
            "with_sums_ratio": (t_numpy + t_numpy_sums) / (t_kernel + t_sums),
            "revaluations_per_s": n * grid.n_scenarios / t_kernel, "max_rel_diff": diff,
            "agree": diff <= RTOL}


def end_to_end_section(n: int, repeat: int, seed: int, work: Path) -> dict[str, Any]:
    """``gpuskew scenarios`` as a subprocess on a Parquet book, with and without the page."""
    import json

    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_book

    book_dir = work / "book"
    write_demo_book(book_dir, n_positions=n, seed=seed, fmt="parquet")
    base = [*gpuskew_cmd(), "scenarios", str(book_dir), "--as-of", DEMO_AS_OF.isoformat(), "--backend", "cpu",
            "--group-by", "desk,book", "--overwrite"]
    no_report = [*base, "--out", str(work / "out"), "--no-report"]
    t_plain, times = best_of_cmd(no_report, repeat=repeat, warmup=1)
    summary = json.loads((work / "out" / "summary.json").read_text())
    with_report = [*base, "--out", str(work / "out_report"), "--report"]
    t_report, _ = best_of_cmd(with_report, repeat=max(1, repeat - 1), warmup=0)
    _, proc = run_cmd([*no_report, "--json"])
    return {"positions": n, "end_to_end_s": t_plain, "end_to_end_times": times, "with_report_s": t_report,
            "timings_s": summary["timings_s"], "groups": summary["counts"]["groups"],
            "json_line": proc.stdout.strip()[:200]}


def gpu_section(n_positions: int, allow_simulator: bool = False) -> dict[str, Any]:
    """The resident scenario kernel on the CUDA backend: a demo book of ``n_positions`` moved to the
    device once (``ScenarioJob``), then each run moves only the scenario grid. Times (best of 5,
    device synchronised): the kernel alone, and a whole ``ScenarioJob.run`` (kernel, tree sums,
    tables). Returns ``{"skipped": reason}`` without a usable CUDA device: it never runs a GPU path
    on a machine without one, nor under the CUDA simulator (``allow_simulator=True``: the tests
    run its code there, on a small book; its times are then not GPU times)."""
    from gpuskew.core.backend import cudasim_enabled, probe_cuda

    if cudasim_enabled() and not allow_simulator:
        return {"skipped": "the CUDA simulator is not a GPU"}
    usable, why = probe_cuda()
    if not usable:
        return {"skipped": why}
    from gpuskew.kernels.scenarios import N_TAYLOR
    from gpuskew.scenarios.job import ScenarioJob, _scenario_kernel
    from gpuskew.scenarios.matrix import build_grid
    from gpuskew.scenarios.params import ScenarioConfig
    from gpuskew.synthetic.demo import DEMO_AS_OF

    book = _book(n_positions, 7)
    t0 = time.perf_counter()
    job = ScenarioJob(book, DEMO_AS_OF, "cuda", ["desk", "desk,book"])
    t_resident = time.perf_counter() - t0
    b = job.backend
    config = ScenarioConfig()
    grid = build_grid(config, job.flat.underlying_names)
    out = b.xp.empty((3 + N_TAYLOR + grid.n_scenarios, n_positions), dtype=np.float64)

    def kernel() -> None:
        _scenario_kernel(b, job.cols, job.greeks, grid, out)
        b.synchronize()

    t_kernel, _ = best_of(kernel, repeat=5, warmup=1)
    del out
    t_run, _ = best_of(lambda: job.run(config), repeat=3, warmup=1)
    return {"device": b.reason, "simulated": cudasim_enabled(), "positions": n_positions, "scenarios": grid.n_scenarios,
            "resident_setup_s": t_resident, "kernel_s": t_kernel, "run_s": t_run,
            "revaluations_per_s": n_positions * grid.n_scenarios / t_kernel}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=1e6, help="positions (default 1e6)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--skip-end-to-end", action="store_true")
    add_common_args(parser, default_repeat=3)
    args = parser.parse_args(argv)
    n = int(args.size)
    info = machine_info()
    print("# Scenario risk benchmark\n")
    print(machine_markdown(info))
    print(f"\nBook: mixed demo book of {n:,} positions, 35 scenarios (27 standard + 8 extended).\n", flush=True)
    k = kernel_section(n, args.repeat, args.seed)
    print("## Scenario kernel vs NumPy/SciPy (CPU, same grid, in one process)\n")
    print(md_table(["step", "gpuskew (2-core numba)", "NumPy/SciPy (1 core)", "ratio"], [
        ["revaluation (positions x scenarios)", f"{k['kernel_s']:.3f} s", f"{k['numpy_s']:.3f} s",
         f"{k['kernel_ratio']:.1f}x"],
        ["+ group sums (desk,book)", f"{k['kernel_s'] + k['tree_sums_s']:.3f} s",
         f"{k['numpy_s'] + k['numpy_sums_s']:.3f} s", f"{k['with_sums_ratio']:.1f}x"],
    ]))
    print(f"\n{k['revaluations_per_s'] / 1e6:.1f} M revaluations/s; {k['options']:,} options; max relative "
          f"difference {k['max_rel_diff']:.2e} ({'agree' if k['agree'] else 'DISAGREE'} at {RTOL:g})\n")
    e = None
    if not args.skip_end_to_end:
        with tempfile.TemporaryDirectory(prefix="gpuskew-bench-scen-") as tmp:
            e = end_to_end_section(n, args.repeat, args.seed, Path(tmp))
        print("## End to end: `gpuskew scenarios` (subprocess, Parquet book, --backend cpu)\n")
        print(md_table(["run", "best wall time"], [
            ["--no-report (tables and summary.json)", f"{e['end_to_end_s']:.2f} s"],
            ["--report (plus one heatmap PNG per underlying and scenarios.html)", f"{e['with_report_s']:.2f} s"],
        ]))
        print("\nStages of the run (in process, summary.json timings_s): "
              + ", ".join(f"{k_}: {v:.3f} s" for k_, v in e["timings_s"].items()) + "\n")
    g = gpu_section(10_000_000)
    print("## GPU\n")
    print(f"GPU: skipped ({g['skipped']})" if "skipped" in g else str(g))
    save_json(args, "bench_scenarios", {"machine": info, "kernel": k, "end_to_end": e, "gpu": g})
    return 0 if k["agree"] else 1


if __name__ == "__main__":
    sys.exit(main())
