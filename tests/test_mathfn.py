"""kernels/mathfn.py: exp, log and erfc in plain arithmetic, against exact arithmetic (mpmath), and
the same bits compiled (numba, CPU) as run as Python (what the CUDA simulator runs)."""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from numba import njit

from gpuskew.kernels import mathfn

mpmath.mp.prec = 200


def _ulps(got: float, exact: mpmath.mpf) -> float:
    """|got - exact| in units of the last place of the correctly rounded result."""
    want = float(exact)
    if want == 0.0:
        return 0.0 if got == 0.0 else math.inf
    ulp = math.ulp(want)
    return float(abs(mpmath.mpf(got) - exact) / ulp)


@njit(error_model="numpy")
def _compiled(fn_id, xs, out):
    for i in range(xs.shape[0]):
        if fn_id == 0:
            out[i] = mathfn.exp(xs[i])
        elif fn_id == 1:
            out[i] = mathfn.log(xs[i])
        else:
            out[i] = mathfn.erfc(xs[i])


FUNCS = {0: (mathfn.exp, mpmath.exp), 1: (mathfn.log, mpmath.log), 2: (mathfn.erfc, mpmath.erfc)}


def _points(fn_id: int) -> np.ndarray:
    rng = np.random.default_rng(fn_id)
    if fn_id == 0:
        xs = np.concatenate([rng.uniform(-745, 709.7, 4000), rng.uniform(-1, 1, 2000), rng.normal(0, 1e-3, 500),
                             [0.0, -0.0, 1.0, -1.0, 0.5 * math.log(2), 709.78, -708.3, -744.0, 1e-300]])
    elif fn_id == 1:
        xs = np.concatenate([np.exp(rng.uniform(-700, 700, 3000)), rng.uniform(0.5, 2.0, 3000),
                             1.0 + rng.normal(0, 1e-6, 500), [1.0, 2.0, 0.5, math.sqrt(2), 1e-300, 1e300]])
    else:
        # Black-76 uses erfc(-d / sqrt 2) for |d| up to ~38: arguments in [-27, 27]; both tails
        xs = np.concatenate([rng.uniform(-6, 27, 5000), rng.uniform(-1.3, 1.3, 3000),
                             [0.0, 0.25, -0.25, 0.84375, -0.84375, 1.25, -1.25, mathfn._RA_RB, 6.0, -6.0, 26.5, 27.9]])
    return xs.astype(np.float64)


@pytest.mark.parametrize("fn_id,max_ulps", [(0, 1.0), (1, 1.0), (2, 4.0)])
def test_accuracy_against_exact_arithmetic(fn_id, max_ulps):
    fn, exact = FUNCS[fn_id]
    xs = _points(fn_id)
    worst = max(_ulps(fn(float(x)), exact(mpmath.mpf(float(x)))) for x in xs)
    assert worst <= max_ulps, worst


def test_erfc_relative_accuracy_deep_in_the_tail():
    """erfc(x) for x up to 26.5 (N(-37.5), still a normal float64): relative 4e-16, where 1 - erf
    would be 0."""
    for x in np.linspace(5.0, 26.5, 400):
        exact = mpmath.erfc(mpmath.mpf(float(x)))
        assert abs(mpmath.mpf(mathfn.erfc(float(x))) - exact) <= 4e-16 * exact


@pytest.mark.parametrize("fn_id", [0, 1, 2])
def test_compiled_and_python_give_the_same_bits(fn_id):
    fn, _ = FUNCS[fn_id]
    xs = _points(fn_id)
    out = np.empty_like(xs)
    _compiled(fn_id, xs, out)
    py = np.array([fn(float(x)) for x in xs])
    np.testing.assert_array_equal(out.view(np.int64), py.view(np.int64))


def test_special_values():
    assert mathfn.exp(-800.0) == 0.0 and mathfn.exp(800.0) == math.inf and math.isnan(mathfn.exp(math.nan))
    assert mathfn.exp(0.0) == 1.0 and mathfn.log(1.0) == 0.0
    assert mathfn.log(0.0) == -math.inf and math.isnan(mathfn.log(-1.0))
    assert mathfn.erfc(0.0) == 1.0 and mathfn.erfc(40.0) == 0.0 and mathfn.erfc(-40.0) == 2.0
    # subnormal results of exp are rounded once, like libm's
    for x in (-709.0, -720.0, -740.0, -744.4):
        assert mathfn.exp(x) == float(mpmath.exp(mpmath.mpf(x)))


def test_the_checks_catch_a_wrong_coefficient(monkeypatch):
    """A test that cannot fail is a defect: a coefficient off by 1e-9 relative is caught."""
    monkeypatch.setattr(mathfn, "_EP2", mathfn._EP2 * (1 + 1e-9))
    xs = _points(0)[:300]
    worst = max(_ulps(mathfn.exp(float(x)), mpmath.exp(mpmath.mpf(float(x)))) for x in xs)
    assert worst > 1.0
