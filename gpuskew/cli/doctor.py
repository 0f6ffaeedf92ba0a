"""`gpuskew doctor`: versions, CUDA usability and why not, cache folders."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys


def _version(dist: str) -> str:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    """Everything a support request needs, as a dict of strings."""
    from gpuskew import __version__
    from gpuskew.core.backend import AUTO_CUDA_MIN_POSITIONS, cudasim_enabled, probe_cuda
    from gpuskew.kernels._cache import cache_root, kernel_source_hash
    from gpuskew.kernels.segsum import TILE

    usable, why = probe_cuda()
    versions = {"gpuskew": __version__, "python": sys.version.split()[0]}
    for dist in ("numpy", "numba", "pyarrow", "click", "numba-cuda", "cupy-cuda12x", "cupy-cuda13x",
                 "cuda-toolkit"):
        versions[dist] = _version(dist)
    return {
        "versions": versions,
        "platform": {"machine": platform.machine(), "system": platform.platform(),
                     "processor": platform.processor() or "unknown"},
        "cuda": {"usable": str(usable), "why": why, "simulator": str(cudasim_enabled()),
                 "auto_threshold_positions": str(AUTO_CUDA_MIN_POSITIONS)},
        "cache": {"numba_cpu_kernels": str(cache_root() / f"numba-{kernel_source_hash()}"),
                  "reduce_tile": str(TILE)},
    }
