"""The prepared GPU check: one command, a few minutes, on a machine with an NVIDIA GPU.

    pip install --no-deps --no-build-isolation -e .        # numba-cuda, CuPy, pyarrow, numpy, click there
    python benchmarks/gpu_check.py OUT_DIR                 # writes OUT_DIR/gpu_check.json and .md

What it does (each section is timed and guarded: a failing section is reported, the rest runs):

1. **agreement**: random books of every contract type (the demo book) priced by the real CUDA
   backend and by the CPU backend: per measure, the largest relative difference per position and
   the share of values that are bitwise equal; group sums on the GPU bitwise identical run to run.
2. **resident greeks**: 10^6, 10^7 and 10^8 positions (the demo book's flat arrays tiled), with
   host-to-device transfer, the kernel, the group sums and device-to-host timed apart.
3. **scenario and policy-sweep kernels**, where the benchmarks that time them exist
   (``bench_scenarios.gpu_section``, ``bench_backtest.gpu_section``).
4. **end to end**: ``gpuskew run --backend cuda`` on a 10^6-position Parquet book, against
   ``--backend cpu`` on the same book.

``--simulate`` runs the same script tiny under numba's CUDA simulator (the test suite does: it
proves the script runs; its timings mean nothing). No figure here is ever a GPU timing unless the
device line says a real GPU was used.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

SIZES_REAL = (1_000_000, 10_000_000, 100_000_000)
SIZES_SIM = (100,)


def _now() -> float:
    return time.perf_counter()


def _device_line(backend) -> str:
    if backend.device == "cuda-simulator":
        return "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1): no GPU timing"
    try:
        from numba import cuda

        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        free, total = cuda.current_context().get_memory_info()
        return f"{name}, compute capability {dev.compute_capability}, {total / 2**30:.1f} GiB"
    except Exception as exc:  # pragma: no cover - depends on the device
        return f"CUDA device (details unavailable: {exc})"


def _backends():
    from gpuskew.core.backend import CpuBackend, resolve_backend

    return CpuBackend("gpu_check"), resolve_backend("cuda", 0)


def section_agreement(n: int, seed: int = 11) -> dict[str, Any]:
    """CPU vs CUDA per position, and CUDA sums run to run."""
    import numpy as np

    from gpuskew import schema
    from gpuskew.core.book import load_book
    from gpuskew.core.engine import compute
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

    cpu, gpu = _backends()
    tables = make_demo_book(n_positions=n, seed=seed)
    a = compute(load_book(tables), as_of=DEMO_AS_OF, backend=cpu, group_by=["desk", "desk,book"])
    book = load_book(tables)
    b = compute(book, as_of=DEMO_AS_OF, backend=gpu, group_by=["desk", "desk,book"])
    c = compute(book, as_of=DEMO_AS_OF, backend=gpu, group_by=["desk", "desk,book"])
    per_measure = {}
    for m in schema.MEASURE_NAMES:
        x = a.positions[m].to_numpy(zero_copy_only=False)
        y = b.positions[m].to_numpy(zero_copy_only=False)
        scale = np.maximum(np.abs(x), np.abs(y))
        rel = np.where(scale > 0, np.abs(x - y) / np.where(scale > 0, scale, 1.0), 0.0)
        per_measure[m] = {"max_rel_diff": float(rel.max()) if rel.size else 0.0,
                          "bitwise_equal_share": float(np.mean(x.view(np.int64) == y.view(np.int64))) if x.size else 1.0}
    measures = list(schema.MEASURE_NAMES)
    bits_b = np.stack([b.exposures[m].to_numpy() for m in measures]).view(np.int64)
    bits_c = np.stack([c.exposures[m].to_numpy() for m in measures]).view(np.int64)
    worst = max(v["max_rel_diff"] for v in per_measure.values())
    return {"positions": n, "device": _device_line(gpu), "per_measure": per_measure,
            "max_rel_diff": worst, "within_1e-12": worst <= 1e-12,
            "sums_bitwise_run_to_run": bool(np.array_equal(bits_b, bits_c)),
            "status_equal": bool(a.positions["status"].equals(b.positions["status"]))}


def _flat_tiled(n: int, seed: int = 7):
    """Flat kernel inputs of n positions: a demo book's arrays tiled (fast for 10^8)."""
    import numpy as np

    from gpuskew.core.book import load_book
    from gpuskew.core.engine import as_of_micros
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

    base_n = min(n, 1_000_000)
    flat = load_book(make_demo_book(n_positions=base_n, seed=seed)).flat()
    reps = -(-n // base_n)
    T = flat.time_to_expiry(as_of_micros(DEMO_AS_OF))
    cols = {name: np.ascontiguousarray(np.tile(getattr(flat, name), reps)[:n])
            for name in ("kind", "settle", "cp", "qty", "csize", "strike", "S", "fwd", "r", "vol", "entry")}
    cols["T"] = np.ascontiguousarray(np.tile(T, reps)[:n])
    codes = np.ascontiguousarray(np.tile(flat.underlying_code, reps)[:n])
    return cols, codes, len(flat.underlying_names)


def section_resident(sizes, repeat: int = 3) -> list[dict[str, Any]]:
    """Resident greeks on the GPU: transfers, kernel, group sums, each timed apart (best of k)."""
    from gpuskew.core.reduction import plan_segmented_sum

    _, gpu = _backends()
    rows = []
    for n in sizes:
        cols, codes, n_groups = _flat_tiled(n)
        t0 = _now()
        dev = {k: gpu.to_device(v) for k, v in cols.items()}
        gpu.synchronize()
        t_h2d = _now() - t0
        plan = plan_segmented_sum(codes, n_groups)
        dplan = gpu.plan_to_device(plan)
        gpu.synchronize()
        out, status = gpu.position_greeks(dev)  # warm-up: JIT and first launch
        gpu.synchronize()
        best_k = best_s = float("inf")
        for _ in range(repeat):
            t0 = _now()
            out, status = gpu.position_greeks(dev)
            gpu.synchronize()
            best_k = min(best_k, _now() - t0)
            t0 = _now()
            gpu.segmented_sum(out, plan, dplan)
            gpu.synchronize()
            best_s = min(best_s, _now() - t0)
        t0 = _now()
        gpu.to_host(out)
        gpu.synchronize()
        t_d2h = _now() - t0
        rows.append({"positions": n, "host_to_device_s": t_h2d, "kernel_s": best_k,
                     "positions_per_s": n / best_k if best_k > 0 else None, "group_sums_s": best_s,
                     "device_to_host_s": t_d2h, "groups": n_groups})
        del dev, out, status
    return rows


def section_optional(name: str, func_name: str, arg: int) -> dict[str, Any]:
    """A benchmark's GPU section, where that benchmark exists."""
    import importlib

    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError:
        return {"skipped": f"{name}.py is not in this checkout"}
    func = getattr(module, func_name, None)
    if func is None:
        return {"skipped": f"{name}.{func_name} does not exist"}
    return func(arg)


def section_end_to_end(n: int, simulate: bool) -> dict[str, Any]:
    """``gpuskew run`` on a Parquet book: --backend cuda against --backend cpu (best of 2 each)."""
    from gpuskew.synthetic.demo import write_demo_book

    with tempfile.TemporaryDirectory(prefix="gpuskew-gpucheck-") as tmp:
        book = Path(tmp) / "book"
        write_demo_book(book, n_positions=n, seed=7)
        out = {}
        for backend in ("cpu", "cuda"):
            best = float("inf")
            for k in range(1 if simulate else 2):
                cmd = [sys.executable, "-m", "gpuskew", "run", str(book), "--out", str(Path(tmp) / f"o-{backend}-{k}"),
                       "--backend", backend, "--as-of", "2026-11-20T08:00:00Z", "--group-by", "desk", "--json"]
                t0 = _now()
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
                dt = _now() - t0
                if proc.returncode != 0:
                    return {"error": f"{backend}: exit {proc.returncode}: {proc.stderr[-800:]}"}
                best = min(best, dt)
            out[f"{backend}_s"] = best
        a = (Path(tmp) / "o-cpu-0" / "exposures.parquet").read_bytes()
        b = (Path(tmp) / "o-cuda-0" / "exposures.parquet").read_bytes()
        out["exposures_files_identical"] = a == b
        out["positions"] = n
        return out


def _guard(results: dict[str, Any], key: str, fn, *args) -> None:
    t0 = _now()
    try:
        results[key] = fn(*args)
    except Exception as exc:  # a failing section must not hide the others
        results[key] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
    results.setdefault("section_seconds", {})[key] = round(_now() - t0, 2)
    print(f"gpu_check: {key} done in {results['section_seconds'][key]} s", file=sys.stderr, flush=True)


def _markdown(r: dict[str, Any]) -> str:
    lines = [f"# GPU check ({r['started']})", "", f"- device: {r.get('device', '?')}",
             f"- host: {r.get('host', '?')}", f"- mode: {'simulated (no GPU timing)' if r['simulate'] else 'real GPU'}", ""]
    agr = r.get("agreement", {})
    if "per_measure" in agr:
        lines += ["## CPU vs GPU per position", "", "| measure | max relative difference | bitwise equal |",
                  "| --- | --- | --- |"]
        for m, v in agr["per_measure"].items():
            lines.append(f"| {m} | {v['max_rel_diff']:.3g} | {100 * v['bitwise_equal_share']:.2f}% |")
        lines += ["", f"- positions: {agr['positions']:,}; within 1e-12: {agr['within_1e-12']}; "
                      f"GPU sums bitwise run to run: {agr['sums_bitwise_run_to_run']}", ""]
    elif agr:
        lines += [f"agreement: {agr}", ""]
    res = r.get("resident")
    if isinstance(res, list):
        lines += ["## Resident greeks (GPU)", "", "| positions | host->device s | kernel s | positions/s | group sums s "
                  "| device->host s |", "| --- | --- | --- | --- | --- | --- |"]
        for row in res:
            rate = f"{row['positions_per_s'] / 1e6:,.0f} M/s" if row.get("positions_per_s") else "-"
            lines.append(f"| {row['positions']:,} | {row['host_to_device_s']:.4f} | {row['kernel_s']:.5f} | {rate} | "
                         f"{row['group_sums_s']:.5f} | {row['device_to_host_s']:.4f} |")
        lines.append("")
    elif res:
        lines += [f"resident: {res}", ""]
    for key in ("scenarios", "policy_sweep", "end_to_end"):
        if key in r:
            lines += [f"## {key}", "", "```", json.dumps({k: v for k, v in r[key].items() if k != "traceback"},
                                                          indent=1, default=str)[:3000], "```", ""]
    lines.append(f"section seconds: {r.get('section_seconds')}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("out", type=Path, help="folder for gpu_check.json and gpu_check.md")
    p.add_argument("--simulate", action="store_true", help="tiny sizes under NUMBA_ENABLE_CUDASIM=1 (tests)")
    p.add_argument("--sizes", default=None, help="resident sizes, comma-separated (default 1e6,1e7,1e8)")
    args = p.parse_args(argv)
    if args.simulate:  # before numba and the kernels are imported
        os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
        os.environ.setdefault("GPUSKEW_REDUCE_TILE", "16")  # small simulated blocks (both backends alike)
    import platform

    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "simulate": args.simulate, "host": f"{platform.node()} {platform.machine()}, "
                               f"{os.cpu_count()} CPUs, Python {platform.python_version()}"}
    try:
        _, gpu = _backends()
        results["device"] = _device_line(gpu)
    except Exception as exc:
        results["device"] = f"CUDA not usable: {exc}"
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
        (args.out / "gpu_check.md").write_text(_markdown(results))
        print(results["device"], file=sys.stderr)
        return 75
    sizes = SIZES_SIM if args.simulate else tuple(int(float(s)) for s in (args.sizes or "1e6,1e7,1e8").split(","))
    _guard(results, "agreement", section_agreement, 60 if args.simulate else 100_000)
    _guard(results, "resident", section_resident, sizes, 1 if args.simulate else 3)
    _guard(results, "scenarios", section_optional, "bench_scenarios", "gpu_section", 300 if args.simulate else 10_000_000)
    _guard(results, "policy_sweep", section_optional, "bench_backtest", "gpu_section", 8 if args.simulate else 100_000)
    _guard(results, "end_to_end", section_end_to_end, 40 if args.simulate else 1_000_000, args.simulate)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.json").write_text(json.dumps(results, indent=1, default=str))
    (args.out / "gpu_check.md").write_text(_markdown(results))
    print(_markdown(results))
    failed = [k for k, v in results.items() if isinstance(v, dict) and "error" in v]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
