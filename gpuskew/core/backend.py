"""Backends: 'auto' | 'cpu' | 'cuda' -> an array module plus kernel launchers.

* ``cpu``: NumPy arrays, numba ``njit(parallel=True, cache=True)`` kernels (kernels/cpu.py).
* ``cuda``: CuPy device arrays and ``numba.cuda`` kernels (kernels/cuda.py). Under numba's CUDA
  simulator (``NUMBA_ENABLE_CUDASIM=1``) the same kernels run on NumPy arrays, thread by thread.
* ``auto``: CUDA when a usable device exists *and* the book has at least
  :data:`AUTO_CUDA_MIN_POSITIONS` positions, else the CPU; the choice and the reason are recorded.

Nothing here imports CuPy or touches a device until a backend is resolved.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from gpuskew.errors import CudaUnavailable
from gpuskew.core.reduction import SegmentedSumPlan

#: Below this many positions 'auto' stays on the CPU. On the 2-core CPU path a 10^5-position book
#: takes a few milliseconds of kernel time; a GPU run of the same book pays host->device copies of
#: ~12 input columns (~10 MB), the reduction's kernel launches and, on the first call of a process,
#: tens of milliseconds of context creation and PTX JIT, so it only wins from a few 10^5 rows up.
AUTO_CUDA_MIN_POSITIONS = 200_000

INSTALL_ADVICE = ("install the CUDA extra matching your driver: pip install 'gpuskew[cuda12]' "
                  "(or 'gpuskew[cuda13]'), on a machine with an NVIDIA GPU and driver")

BACKEND_NAMES = ("auto", "cpu", "cuda")


def cudasim_enabled() -> bool:
    """True when numba's CUDA simulator is switched on (NUMBA_ENABLE_CUDASIM=1)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def probe_cuda() -> tuple[bool, str]:
    """Can the CUDA backend run here? Returns (usable, reason).

    Cheapest question first: whether CuPy and numba-cuda are installed at all is answered from
    the import system's metadata (``importlib.util.find_spec``) without importing anything; only
    then are ``numba.cuda`` and CuPy imported and a device looked for (importing ``numba.cuda``
    alone costs ~0.2 s, wasted on every machine without CuPy)."""
    if cudasim_enabled():
        return True, "numba CUDA simulator (NUMBA_ENABLE_CUDASIM=1): kernels run on the CPU"
    import importlib.util

    for module, what in (("cupy", "CuPy is not installed"), ("numba_cuda", "numba-cuda is not installed")):
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found and not (module == "numba_cuda" and importlib.util.find_spec("numba.cuda") is not None):
            return False, f"{what}; {INSTALL_ADVICE}"
    try:
        from numba import cuda
    except Exception as exc:  # pragma: no cover - depends on the install
        return False, f"numba.cuda does not import ({exc}); {INSTALL_ADVICE}"
    try:
        import cupy
    except Exception as exc:
        return False, f"CuPy is not installed ({type(exc).__name__}); {INSTALL_ADVICE}"
    try:
        if not cuda.is_available():
            return False, f"no usable CUDA driver or device; {INSTALL_ADVICE}"
        count = cupy.cuda.runtime.getDeviceCount()
        if count < 1:
            return False, "CUDA driver present but no device"
        dev = cuda.get_current_device()
        name = dev.name.decode() if isinstance(dev.name, bytes) else str(dev.name)
        return True, f"CUDA device 0: {name}, compute capability {dev.compute_capability}"
    except Exception as exc:
        return False, f"CUDA probe failed ({type(exc).__name__}: {exc}); {INSTALL_ADVICE}"


class Backend:
    """Array module plus kernel launchers; subclasses set ``name`` and the launchers."""

    name = "?"
    xp: Any = np

    def __init__(self, reason: str):
        self.reason = reason

    # -- data movement (identity on the CPU and under the simulator) -----------------------------
    def to_device(self, a: np.ndarray) -> Any:
        return a

    def to_host(self, a: Any) -> np.ndarray:
        return a

    def synchronize(self) -> None:
        pass

    @property
    def device(self) -> str:
        return "cpu"

    # -- kernels ---------------------------------------------------------------------------------
    def _launch_greeks(self, *args: Any) -> None:
        raise NotImplementedError

    def _launch_tile_sums(self, values: Any, index: Any, tile_start: Any, tile_len: Any, out: Any) -> None:
        raise NotImplementedError

    def position_greeks(self, cols: dict[str, Any]) -> tuple[Any, Any]:
        """Every measure of every position in one pass: returns (out (N_MEASURES x n), status (n))."""
        from gpuskew.kernels.instruments import N_MEASURES

        xp = self.xp
        n = cols["qty"].shape[0]
        out = xp.empty((N_MEASURES, n), dtype=np.float64)
        status = xp.empty(n, dtype=np.int8)
        self._launch_greeks(cols["kind"], cols["settle"], cols["cp"], cols["qty"], cols["csize"],
                            cols["strike"], cols["T"], cols["S"], cols["fwd"], cols["r"], cols["vol"],
                            cols["entry"], out, status)
        return out, status

    def _launch_instrument_pricing(self, *args: Any) -> None:
        raise NotImplementedError

    def _launch_positions_from_instruments(self, *args: Any) -> None:
        raise NotImplementedError

    def held_greeks(self, cols: dict[str, Any]) -> tuple[Any, Any]:
        """Every measure of every position, each held instrument priced once: ``cols`` holds the
        held instruments' columns (``h_kind``, ``h_cp``, ``h_strike``, ``h_T``, ``h_S``, ``h_fwd``,
        ``h_r``, ``h_vol``, ``h_settle``, ``h_csize``) and the positions' (``pos_inst``, ``qty``,
        ``entry``). The same bits as :meth:`position_greeks` on the per-position columns. Returns
        (out (N_MEASURES x n), status (n))."""
        from gpuskew.kernels.instruments import N_MEASURES, N_QUANTITIES

        xp = self.xp
        m = cols["h_kind"].shape[0]
        n = cols["qty"].shape[0]
        q = xp.empty((N_QUANTITIES, m), dtype=np.float64)
        inst_status = xp.empty(m, dtype=np.int8)
        self._launch_instrument_pricing(cols["h_kind"], cols["h_cp"], cols["h_strike"], cols["h_T"], cols["h_S"],
                                        cols["h_fwd"], cols["h_r"], cols["h_vol"], q, inst_status)
        out = xp.empty((N_MEASURES, n), dtype=np.float64)
        status = xp.empty(n, dtype=np.int8)
        self._launch_positions_from_instruments(cols["pos_inst"], cols["qty"], cols["entry"], cols["h_kind"],
                                                cols["h_settle"], cols["h_csize"], cols["h_T"], cols["h_S"], q,
                                                inst_status, out, status)
        return out, status

    def segmented_sum(self, values: Any, plan: SegmentedSumPlan, device_plan: list | None = None) -> np.ndarray:
        """Sums per group (host array, n_measures x n_groups) by the fixed tree of the plan."""
        n_measures = values.shape[0]
        if plan.n_groups == 0:
            return np.zeros((n_measures, 0))
        levels = device_plan if device_plan is not None else self.plan_to_device(plan)
        current = values
        for index, tile_start, tile_len in levels:
            out = self.xp.empty((n_measures, tile_start.shape[0]), dtype=np.float64)
            self._launch_tile_sums(current, index, tile_start, tile_len, out)
            current = out
        return np.asarray(self.to_host(current))

    def plan_to_device(self, plan: SegmentedSumPlan) -> list:
        """The plan's index arrays on the device (kept with the book between runs)."""
        return [(self.to_device(lv.index), self.to_device(lv.tile_start), self.to_device(lv.tile_len))
                for lv in plan.levels]


class CpuBackend(Backend):
    name = "cpu"

    def __init__(self, reason: str):
        super().__init__(reason)
        from gpuskew.kernels import cpu

        # every parallel kernel of kernels/cpu.py serialises its launches from several threads
        # unless numba's threading layer is thread-safe (kernels/threads.py)
        self._k = cpu

    def _launch_greeks(self, *args: Any) -> None:
        self._k.position_greeks(*args)

    def _launch_instrument_pricing(self, *args: Any) -> None:
        self._k.instrument_pricing(*args)

    def _launch_positions_from_instruments(self, *args: Any) -> None:
        self._k.positions_from_instruments(*args)

    def _launch_tile_sums(self, *args: Any) -> None:
        self._k.tile_sums(*args)


class CudaBackend(Backend):
    name = "cuda"

    def __init__(self, reason: str):
        super().__init__(reason)
        from gpuskew.kernels import cuda as kcuda

        self._k = kcuda
        self.simulated = cudasim_enabled()
        if self.simulated:
            self.xp = np
        else:  # pragma: no cover - needs a GPU
            import cupy

            self.xp = cupy

    @property
    def device(self) -> str:
        return "cuda-simulator" if self.simulated else "cuda"

    def to_device(self, a: np.ndarray) -> Any:
        if self.simulated:
            # the simulator copies every kernel argument back after a launch: it needs writable arrays
            return a if a.flags.writeable else a.copy()
        return self.xp.asarray(a)  # pragma: no cover - needs a GPU

    def to_host(self, a: Any) -> np.ndarray:
        if self.simulated:
            return a
        return self.xp.asnumpy(a)  # pragma: no cover - needs a GPU

    def synchronize(self) -> None:
        if not self.simulated:  # pragma: no cover - needs a GPU
            self.xp.cuda.get_current_stream().synchronize()

    def _launch_greeks(self, *args: Any) -> None:
        self._k.launch_position_greeks(*args)

    def _launch_instrument_pricing(self, *args: Any) -> None:
        self._k.launch_instrument_pricing(*args)

    def _launch_positions_from_instruments(self, *args: Any) -> None:
        self._k.launch_positions_from_instruments(*args)

    def _launch_tile_sums(self, *args: Any) -> None:
        self._k.launch_tile_sums(*args)


def resolve_backend(requested: str, n_positions: int) -> Backend:
    """Pick the backend for a book of ``n_positions``. 'cuda' without a usable device raises
    :class:`CudaUnavailable` (CLI exit code 75) with install advice; 'auto' falls back quietly and
    records why."""
    if requested not in BACKEND_NAMES:
        raise ValueError(f"backend must be one of {', '.join(BACKEND_NAMES)}, got {requested!r}")
    if requested == "cpu":
        return CpuBackend("requested: cpu")
    if requested == "cuda":
        usable, why = probe_cuda()
        if not usable:
            advice = "" if INSTALL_ADVICE in why else f"; {INSTALL_ADVICE}"
            raise CudaUnavailable(f"backend 'cuda' requested but CUDA is not usable: {why}{advice}")
        return CudaBackend(f"requested: cuda ({why})")
    if cudasim_enabled():
        return CpuBackend("auto: the CUDA simulator is not a device; using the CPU")
    if n_positions < AUTO_CUDA_MIN_POSITIONS:
        return CpuBackend(f"auto: {n_positions} positions < {AUTO_CUDA_MIN_POSITIONS} "
                          "(below this the CPU is faster than copies + launches on a GPU)")
    usable, why = probe_cuda()
    if usable:
        return CudaBackend(f"auto: {why}")
    return CpuBackend(f"auto: CUDA not usable ({why}); using the CPU")
