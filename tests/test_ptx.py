"""Every CUDA kernel compiles to PTX for sm_80 and sm_90 (numba.cuda.compile_ptx).

This needs NVVM from the CUDA toolkit wheels (``pip install 'numba-cuda[cu12]'``, installed by
.ci/run); it catches typing errors that the CUDA simulator accepts. No GPU is needed: numba-cuda
asks the current device's compute capability when it compiles a device function called from a
kernel, so the test answers that question with the target's capability.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0"):
    pytest.skip("PTX compilation is not available under the CUDA simulator", allow_module_level=True)

cuda = pytest.importorskip("numba.cuda", reason="numba-cuda is not installed (pip install 'numba-cuda[cu12]')")
from numba import float64, int8, int32, int64  # noqa: E402

TARGETS = [(8, 0), (9, 0)]

VEC_F = float64[::1]
VEC_I8 = int8[::1]
VEC_I64 = int64[::1]
VEC_I32 = int32[::1]
MAT_F = float64[:, ::1]
ARR3_F = float64[:, :, ::1]
ARR4_F = float64[:, :, :, ::1]

SIGNATURES = {
    "position_greeks": (VEC_I8, VEC_I8, VEC_I8) + (VEC_F,) * 9 + (MAT_F, VEC_I8),
    "tile_sums": (MAT_F, VEC_I64, VEC_I64, VEC_I64, MAT_F),
    # params, S, vol, fund, wealth, delta, delta_pa, gamma, vanna, zak, target, und, dt, trace_slot, out, trace
    "policy_sweep": (ARR3_F,) + (ARR3_F,) * 3 + (ARR3_F,) * 5 + (ARR4_F, ARR4_F, VEC_I64, VEC_F, VEC_I64, MAT_F,
                                                                  ARR3_F),
    # kind, cp; strike, T, S, fwd, r, vol; ucode; moves, vol_case, vparams, qv
    "instrument_scenario_values": (VEC_I8, VEC_I8) + (VEC_F,) * 6 + (VEC_I32, MAT_F, VEC_I8, MAT_F, MAT_F),
    # pos_inst; qty, entry; kind, settle; csize, T, S, vol; ucode; greeks, moves, vol_case, qv, pnl, taylor
    "scenario_pnl": (VEC_I64, VEC_F, VEC_F, VEC_I8, VEC_I8) + (VEC_F,) * 4 + (VEC_I32, MAT_F, MAT_F, VEC_I8, MAT_F,
                                                                           MAT_F, MAT_F),
    # kind, cp; strike, T, S, fwd, r, vol; q; status
    "instrument_pricing": (VEC_I8, VEC_I8) + (VEC_F,) * 6 + (MAT_F, VEC_I8),
    # inst; qty, entry; kind, settle; csize, T, S; q; inst_status; out; status
    "positions_from_instruments": (VEC_I64, VEC_F, VEC_F, VEC_I8, VEC_I8, VEC_F, VEC_F, VEC_F, MAT_F, VEC_I8, MAT_F,
                                   VEC_I8),
}


def _nvvm_available() -> tuple[bool, str]:
    try:
        from numba.cuda.cudadrv import nvvm

        nvvm.NVVM()
        return True, ""
    except Exception as exc:  # library missing
        return False, f"NVVM library not found ({type(exc).__name__}: {exc}); pip install 'numba-cuda[cu12]'"


@pytest.fixture(scope="module")
def kernels_module():
    ok, why = _nvvm_available()
    if not ok:
        pytest.skip(why)
    from gpuskew.kernels import cuda as kcuda

    return kcuda


def test_every_kernel_has_a_signature(kernels_module):
    assert set(kernels_module.KERNEL_SOURCES) == set(SIGNATURES)


@pytest.mark.parametrize("cc", TARGETS, ids=lambda cc: f"sm_{cc[0]}{cc[1]}")
@pytest.mark.parametrize("name", sorted(SIGNATURES))
def test_kernel_compiles_to_ptx(kernels_module, monkeypatch, name, cc):
    import numba.cuda.dispatcher as dispatcher

    monkeypatch.setattr(dispatcher, "get_current_device", lambda: SimpleNamespace(compute_capability=cc))
    ptx, restype = cuda.compile_ptx(kernels_module.KERNEL_SOURCES[name], SIGNATURES[name], cc=cc)
    assert f".target sm_{cc[0]}{cc[1]}" in ptx
    assert ".entry" in ptx
    # no float atomics anywhere: the reductions are deterministic trees
    assert "atom.global.add.f64" not in ptx and "atom.add.f64" not in ptx
    if name == "tile_sums":
        assert "bar.sync" in ptx  # syncthreads
        assert ".shared" in ptx
