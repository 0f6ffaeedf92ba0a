"""Shared helpers for the numerical-core tests (Black-76, instruments, kernel properties).

Two ways to evaluate the per-position measures, with the same keyword interface:

* :func:`kernel_measures` - the compiled CPU kernel ``gpuskew.kernels.cpu.position_greeks`` (what
  users get);
* :func:`python_measures` - the scalar ``position_measures`` called as plain Python (the
  ``register_jitable`` function is the undecorated Python function).

Both take the kernel's inputs as keyword arguments (scalars or 1-d arrays, broadcast together) and
return ``(measures, status)``: a dict measure name -> float64 array (in ``gpuskew.schema.MEASURES``
order) and the int8 status array.
"""

from __future__ import annotations

import numpy as np

from gpuskew.kernels import instruments as ins
from gpuskew.kernels.cpu import position_greeks
from gpuskew.schema import MEASURE_NAMES, N_MEASURES

#: Hypothesis settings shared by the property tests: moderate, reproducible (no example database,
#: derandomized), no deadline (the first call may compile or load the numba cache).
HYPOTHESIS_SETTINGS = dict(max_examples=200, deadline=None, derandomize=True, database=None)

#: keyword -> (numpy dtype, default) of every kernel input, in the kernel's argument order
INPUTS: dict[str, tuple[type, float]] = {
    "kind": (np.int8, ins.KIND_OPTION),
    "settle": (np.int8, ins.SETTLE_LINEAR),
    "cp": (np.int8, 0),
    "qty": (np.float64, 1.0),
    "csize": (np.float64, 1.0),
    "strike": (np.float64, 0.0),
    "T": (np.float64, 0.0),
    "S": (np.float64, 100.0),
    "fwd": (np.float64, 0.0),
    "r": (np.float64, 0.0),
    "vol": (np.float64, 0.0),
    "entry": (np.float64, 0.0),
}


def _columns(kw: dict) -> dict[str, np.ndarray]:
    unknown = set(kw) - set(INPUTS)
    if unknown:
        raise TypeError(f"unknown kernel inputs: {sorted(unknown)}")
    raw = {name: np.asarray(kw.get(name, default)) for name, (_, default) in INPUTS.items()}
    shape = np.broadcast_shapes(*(a.shape for a in raw.values()), (1,))
    if len(shape) != 1:
        raise ValueError("kernel inputs must be scalars or 1-d arrays")
    return {name: np.ascontiguousarray(np.broadcast_to(raw[name], shape), dtype=INPUTS[name][0])
            for name in INPUTS}


def _as_dict(out: np.ndarray) -> dict[str, np.ndarray]:
    assert out.shape[0] == N_MEASURES == ins.N_MEASURES
    return {name: out[m].copy() for m, name in enumerate(MEASURE_NAMES)}


def kernel_measures(**kw) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Run the compiled ``position_greeks`` on the positions given as keyword arrays."""
    cols = _columns(kw)
    n = cols["qty"].shape[0]
    out = np.full((N_MEASURES, n), np.nan, dtype=np.float64)
    status = np.full(n, -1, dtype=np.int8)
    position_greeks(*cols.values(), out, status)
    return _as_dict(out), status


def python_measures(**kw) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The same, calling the scalar ``position_measures`` as plain Python, position by position."""
    cols = _columns(kw)
    n = cols["qty"].shape[0]
    out = np.full((N_MEASURES, n), np.nan, dtype=np.float64)
    status = np.full(n, -1, dtype=np.int8)
    args = {name: [a.item() for a in col] for name, col in cols.items()}
    for i in range(n):
        status[i] = ins.position_measures(*(args[name][i] for name in INPUTS), out, i)
    return _as_dict(out), status


#: both evaluation paths, for ``pytest.mark.parametrize``
PATHS = {"kernel": kernel_measures, "python": python_measures}


def forward(S, r, T):
    """F = S exp(r T), the forward the kernel uses for options and futures without a quote."""
    return np.asarray(S, dtype=np.float64) * np.exp(np.asarray(r) * np.asarray(T))


def assert_close(name, got, expected, rtol, atol, context=None):
    """Elementwise |got - expected| <= atol + rtol |expected|, with a readable worst-case report."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    atol = np.broadcast_to(np.asarray(atol, dtype=np.float64), expected.shape)
    err = np.abs(got - expected)
    bound = atol + rtol * np.abs(expected)
    bad = ~(err <= bound)  # also catches NaN
    if bad.any():
        idx = np.flatnonzero(bad.ravel())
        worst = idx[np.argmax((err.ravel()[idx] / np.maximum(bound.ravel()[idx], 1e-300)))]
        lines = [f"{name}: {idx.size} of {expected.size} outside rtol={rtol:g} (+atol); "
                 f"worst #{worst}: got {got.ravel()[worst]!r}, "
                 f"expected {expected.ravel()[worst]!r}, "
                 f"err {err.ravel()[worst]:.3g}, bound {bound.ravel()[worst]:.3g}"]
        if context:
            shown = (f"{k}={np.ravel(v)[worst] if np.size(v) > 1 else v!r}"
                     for k, v in context.items())
            lines.append("inputs: " + ", ".join(shown))
        raise AssertionError("\n".join(lines))

