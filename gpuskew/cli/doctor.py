"""``gpuskew doctor``: versions, CUDA usability and why not, cache folders."""

from __future__ import annotations

import sys

import click

from gpuskew.cli.common import command, emit_json, handle_errors


def _version(dist: str) -> str:
    import importlib.metadata as md

    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return "not installed"


def collect() -> dict:
    """Everything a support request needs, as a dict of strings."""
    import platform

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


@command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output (one JSON line).")
@handle_errors
def doctor(as_json: bool) -> None:
    """Versions, whether CUDA is usable (and why not), and the cache folders."""
    info = collect()
    if as_json:
        emit_json(info)
        return
    for key, value in info.items():
        if isinstance(value, dict):
            click.echo(f"{key}:")
            for k, v in value.items():
                click.echo(f"  {k}: {v}")
        else:
            click.echo(f"{key}: {value}")
