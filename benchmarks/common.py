"""Shared helpers of the benchmarks: machine description, best-of-k timers, markdown tables, JSON.

Every benchmark prints its results as markdown on stdout. With ``--json-out`` it also saves them as
JSON (by default next to the script, ``benchmarks/<name>.json``; those files are git-ignored: only
the tables in README.md / RESULTS.md are committed).

The machine these run on is shared and noisy: every figure is the best of k runs (k is printed).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# ------------------------------------------------------------------------------------------------
# machine
# ------------------------------------------------------------------------------------------------

def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _cpu_flags() -> str:
    """The SIMD level the CPU reports (avx512f / avx2 / sse4_2), for the record."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    for f in ("avx512f", "avx2", "avx", "sse4_2"):
                        if f in flags:
                            return f
    except OSError:
        pass
    return "unknown"


def _ram_gib() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024**2
    except OSError:
        pass
    try:
        import psutil

        return psutil.virtual_memory().total / 1024**3
    except Exception:  # pragma: no cover
        return float("nan")


def _version(module: str) -> str:
    try:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "?"))
    except Exception:
        return "not installed"


def machine_info(probe_gpu: bool = True) -> dict[str, Any]:
    """CPU model, cores, RAM, library versions, numba threads and whether a CUDA device exists."""
    info: dict[str, Any] = {
        "cpu": _cpu_model(),
        "simd": _cpu_flags(),
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "ram_gib": round(_ram_gib(), 1),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "numpy": _version("numpy"),
        "numba": _version("numba"),
        "pyarrow": _version("pyarrow"),
        "scipy": _version("scipy"),
        "gpuskew": _version("gpuskew"),
    }
    try:
        import QuantLib

        info["QuantLib"] = QuantLib.__version__
    except Exception:
        info["QuantLib"] = "not installed"
    try:
        import numba

        info["numba_threads"] = numba.config.NUMBA_NUM_THREADS
    except Exception:  # pragma: no cover
        pass
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:  # pragma: no cover
        pass
    if probe_gpu:
        usable, why = gpu_available()
        info["cuda_device"] = usable
        info["cuda_reason"] = why
    return info


def gpu_available() -> tuple[bool, str]:
    """(True, description) only for a real CUDA device; the simulator does not count."""
    from gpuskew.core.backend import cudasim_enabled, probe_cuda

    if cudasim_enabled():
        return False, "NUMBA_ENABLE_CUDASIM=1: the CUDA simulator is not a device"
    return probe_cuda()


def machine_markdown(info: dict[str, Any]) -> str:
    lines = [
        f"- CPU: {info['cpu']} ({info['simd']}), {info['cores']} logical cores "
        f"({info.get('cores_usable')} usable), {info['ram_gib']} GiB RAM; {info['os']}",
        f"- Python {info['python']}, NumPy {info['numpy']}, numba {info['numba']} "
        f"({info.get('numba_threads', '?')} threads), pyarrow {info['pyarrow']}, SciPy {info['scipy']}, "
        f"QuantLib {info['QuantLib']}, gpuskew {info['gpuskew']}",
    ]
    if "cuda_device" in info:
        lines.append(f"- CUDA device: {'yes' if info['cuda_device'] else 'no'} ({info['cuda_reason']})")
    if "load_avg_1m" in info:
        lines.append(f"- load average (1 min) when the benchmark started: {info['load_avg_1m']}")
    if BYTECODE_NOTE:
        lines.append(f"- {BYTECODE_NOTE}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# timing
# ------------------------------------------------------------------------------------------------

def best_of(fn: Callable[[], Any], repeat: int = 3, warmup: int = 0,
            setup: Callable[[], Any] | None = None, min_total_s: float = 0.0,
            max_repeat: int = 200) -> tuple[float, list[float]]:
    """Best wall time (s) of ``repeat`` calls of ``fn()`` after ``warmup`` untimed calls.

    With ``min_total_s``, short calls are repeated more (up to ``max_repeat`` calls) until the timed
    calls add up to that much: on a shared, noisy machine the best of many short runs is the
    steady figure. ``setup()`` (untimed) runs before each call. The garbage collector runs once before
    the first call and is disabled during each timed call.
    """
    for _ in range(warmup):
        if setup:
            setup()
        fn()
    times: list[float] = []
    gc.collect()  # once: a full collection costs ~0.1 s with numba's objects loaded
    while len(times) < repeat or (sum(times) < min_total_s and len(times) < max_repeat):
        if setup:
            setup()
        gc.disable()
        try:
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        finally:
            gc.enable()
    return min(times), times


#: Where timed subprocesses keep Python's bytecode cache when this environment turns it off.
PYCACHE_PREFIX = Path(tempfile.gettempdir()) / "gpuskew-bench-pycache"
#: What machine_markdown says about the bytecode cache ("" when nothing was changed).
BYTECODE_NOTE = (f"Python bytecode cache: this environment sets PYTHONDONTWRITEBYTECODE; timed "
                 f"subprocesses (both sides of every comparison) keep .pyc files in {PYCACHE_PREFIX} "
                 "instead, as an installed package has them"
                 if os.environ.get("PYTHONDONTWRITEBYTECODE") else "")


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a timed subprocess: this one plus ``extra``, with bytecode caching on.

    Some machines (this workplace's among them) set PYTHONDONTWRITEBYTECODE=1, so every process
    compiles a project's own ``.py`` files again (gpuskew's ~25 modules: ~0.05 s, by_hand.py's
    two: less), which no installed package does. The subprocesses here write and read ``.pyc``
    files under :data:`PYCACHE_PREFIX` (outside the source tree) instead.
    """
    env = dict(os.environ)
    if env.get("PYTHONDONTWRITEBYTECODE"):
        del env["PYTHONDONTWRITEBYTECODE"]
        env.setdefault("PYTHONPYCACHEPREFIX", str(PYCACHE_PREFIX))
    if extra:
        env.update(extra)
    return env


def run_cmd(cmd: Sequence[str], env: dict[str, str] | None = None, check: bool = True,
            cwd: str | Path | None = None) -> tuple[float, subprocess.CompletedProcess]:
    """Run ``cmd`` once (environment: :func:`subprocess_env`); return (wall seconds, completed
    process with captured text output)."""
    full_env = subprocess_env(env)
    t0 = time.perf_counter()
    proc = subprocess.run(list(cmd), env=full_env, capture_output=True, text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
                           f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}")
    return wall, proc


def best_of_cmd(cmd: Sequence[str], repeat: int = 3, warmup: int = 1,
                env: dict[str, str] | None = None) -> tuple[float, list[float]]:
    """Best wall time of ``repeat`` runs of a subprocess after ``warmup`` untimed runs."""
    for _ in range(warmup):
        run_cmd(cmd, env)
    times = [run_cmd(cmd, env)[0] for _ in range(repeat)]
    return min(times), times


def gpuskew_cmd() -> list[str]:
    """The ``gpuskew`` console script of this interpreter's environment (else ``python -m``)."""
    exe = Path(sys.executable).parent / "gpuskew"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("gpuskew")
    return [found] if found else [sys.executable, "-m", "gpuskew.cli"]


# ------------------------------------------------------------------------------------------------
# output
# ------------------------------------------------------------------------------------------------

def fmt_num(x: Any, digits: int = 3) -> str:
    """Readable numbers: 12,345,678 / 1.23e+07 / 0.0123 ; strings pass through."""
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}"
    x = float(x)
    if x != x:
        return "-"
    ax = abs(x)
    if ax == 0:
        return "0"
    if ax >= 1e5:
        return f"{x:,.0f}"
    if ax >= 100:
        return f"{x:,.1f}"
    if ax >= 1e-3:
        return f"{x:.{digits}g}" if ax < 1 else f"{x:.{digits}g}".rstrip(".")
    return f"{x:.2e}"


def fmt_rate(per_s: float) -> str:
    """Positions per second as 'M/s' or 'k/s'."""
    if per_s >= 1e6:
        return f"{per_s / 1e6:.1f} M/s"
    if per_s >= 1e3:
        return f"{per_s / 1e3:.1f} k/s"
    return f"{per_s:.0f} /s"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; numbers formatted with :func:`fmt_num`."""
    cells = [[fmt_num(c) for c in row] for row in rows]
    head = "| " + " | ".join(headers) + " |"
    sep = "| " + " | ".join("---" for _ in headers) + " |"
    body = ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join([head, sep, *body])


def add_common_args(parser: argparse.ArgumentParser, default_repeat: int = 3) -> None:
    parser.add_argument("--repeat", type=int, default=default_repeat,
                        help=f"timed runs per measurement; the best is reported (default {default_repeat})")
    parser.add_argument("--json-out", nargs="?", const="", default=None, metavar="PATH",
                        help="also save the results as JSON (default path: next to the script)")


def save_json(args: argparse.Namespace, script: str, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON if ``--json-out`` was given."""
    if args.json_out is None:
        return
    path = Path(args.json_out) if args.json_out else HERE / f"{Path(script).stem}.json"
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    print(f"\n(results saved to {path})")


def parse_sizes(text: str) -> list[int]:
    """'1e4,1e5,1000000' -> [10000, 100000, 1000000]."""
    return [int(float(s)) for s in text.split(",") if s.strip()]


def rss_mib() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 1024**2
