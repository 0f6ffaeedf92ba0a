"""exp, log and erfc in plain arithmetic: one source for the CPU, CUDA and the CUDA simulator.

Why: the CPU's libm and CUDA's libdevice round differently, so a formula evaluated with them gives
a CPU and a GPU a few ulps apart. These versions use only +, -, *, /, polynomial and rational
approximations, floor, integer shifts and two bit casts, without data-dependent branches (every
range is computed and the result chosen by :func:`select`): every target evaluates the same IEEE
operations in the same order (a real GPU may still contract ``a * b + c`` into a fused
multiply-add: numba-cuda's NVVM does by default), and a loop over them vectorises. Black-76
(:mod:`black76`) and the policy kernel (:mod:`policy`) take their exp, log and erfc from here; the
CPU pricing kernels run Black-76's over blocks of options in one vectorised loop (kernels/cpu.py).

The approximations are those of Sun's fdlibm (``e_exp.c``, ``e_log.c``, ``s_erf.c``, version 5.3;
"Copyright (C) 1993 by Sun Microsystems, Inc. All rights reserved. Developed at SunPro, a Sun
Microsystems, Inc. business. Permission to use, copy, modify, and distribute this software is
freely granted, provided that this notice is preserved."), with their published coefficients;
fdlibm's branches are replaced by selects and its bit twiddling by the casts below. Accuracy
(tests/test_mathfn.py, against mpmath): exp and log within 1 ulp, erfc within a few ulp over the
whole range used by Black-76 (N(x) = erfc(-x/sqrt 2)/2 to |x| = 38, the edge of float64).
"""

from __future__ import annotations

import math
import struct

from numba import types
from numba.core.extending import intrinsic, overload, register_jitable

# ---------------------------------------------------------------------------------------------
# bit casts: a Python version (the CUDA simulator runs the scalar functions as Python) and an
# LLVM bitcast for the compiled targets (CPU and CUDA), chosen by numba's overload mechanism.


def f64_bits(x: float) -> int:
    """The IEEE-754 bits of a float64, as a signed int64."""
    return struct.unpack("<q", struct.pack("<d", x))[0]


def bits_f64(k: int) -> float:
    """The float64 whose IEEE-754 bits are the int64 ``k``."""
    return struct.unpack("<d", struct.pack("<q", int(k)))[0]


@intrinsic
def _f64_bits(typingctx, x):  # noqa: ANN001 - numba intrinsic protocol
    def codegen(context, builder, signature, args):  # noqa: ANN001
        return builder.bitcast(args[0], context.get_value_type(types.int64))

    return types.int64(types.float64), codegen


@intrinsic
def _bits_f64(typingctx, k):  # noqa: ANN001 - numba intrinsic protocol
    def codegen(context, builder, signature, args):  # noqa: ANN001
        return builder.bitcast(args[0], context.get_value_type(types.float64))

    return types.float64(types.int64), codegen


@overload(f64_bits)
def _overload_f64_bits(x):  # noqa: ANN001
    return lambda x: _f64_bits(x)


@overload(bits_f64)
def _overload_bits_f64(k):  # noqa: ANN001
    return lambda k: _bits_f64(k)


def select(cond: bool, a, b):  # noqa: ANN001, ANN201 - a float or an int, as a and b
    """``a if cond else b`` without a branch: compiled, one LLVM ``select`` (so a function made of
    them is one basic block: it inlines and vectorises cheaply); in Python, the expression."""
    return a if cond else b


@intrinsic
def _select(typingctx, cond, a, b):  # noqa: ANN001 - numba intrinsic protocol
    ty = typingctx.unify_types(a, b)

    def codegen(context, builder, signature, args):  # noqa: ANN001
        c = context.cast(builder, args[0], signature.args[0], types.boolean)
        x = context.cast(builder, args[1], signature.args[1], ty)
        y = context.cast(builder, args[2], signature.args[2], ty)
        return builder.select(c, x, y)

    return ty(cond, a, b), codegen


@overload(select)
def _overload_select(cond, a, b):  # noqa: ANN001
    return lambda cond, a, b: _select(cond, a, b)


# ---------------------------------------------------------------------------------------------
# exp (fdlibm e_exp.c)

#: ln 2 split so that k * LN2_HI is exact for |k| < 2^11
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
_EP1 = 1.66666666666666019037e-01
_EP2 = -2.77777777770155933842e-03
_EP3 = 6.61375632143793436117e-05
_EP4 = -1.65339022054652515390e-06
_EP5 = 4.13813679705723846039e-08
#: beyond these exp overflows to inf / underflows to 0
EXP_MAX = 7.09782712893383973096e+02
EXP_MIN = -7.45133219101941108420e+02


@register_jitable
def pow2i(k: int) -> float:
    """2^k for an integer -1022 <= k <= 1023 (a normal float64), built from its bits."""
    return bits_f64((k + 1023) << 52)


@register_jitable
def exp(x: float) -> float:
    """e^x, within 1 ulp; 0 below EXP_MIN, inf above EXP_MAX, NaN for NaN.

    x = k ln2 + r with |r| <= ln2/2 (Cody-Waite reduction), e^r by fdlibm's rational form
    1 + 2r / (R(r) - r) around a degree-10 Remez polynomial, then scaled by 2^k in two steps so
    that results in the subnormal range are rounded once, like libm's."""
    xc = select(x == x, x, 0.0)  # NaN: any finite lane, the result is selected below
    xc = min(max(xc, -746.0), 710.0)
    kf = math.floor(xc * INV_LN2 + 0.5)
    hi = xc - kf * LN2_HI
    lo = kf * LN2_LO
    r = hi - lo
    rr = r * r
    c = r - rr * (_EP1 + rr * (_EP2 + rr * (_EP3 + rr * (_EP4 + rr * _EP5))))
    y = 1.0 - ((lo - (r * c) / (2.0 - c)) - hi)
    k = int(kf)
    k1 = k // 2
    y = y * pow2i(k1) * pow2i(k - k1)
    y = select(x < EXP_MIN, 0.0, y)
    y = select(x > EXP_MAX, math.inf, y)
    return select(x != x, x + x, y)


# ---------------------------------------------------------------------------------------------
# log (fdlibm e_log.c)

_LG1 = 6.666666666666735130e-01
_LG2 = 3.999999999940941908e-01
_LG3 = 2.857142874366239149e-01
_LG4 = 2.222219843214978396e-01
_LG5 = 1.818357216161805012e-01
_LG6 = 1.531383769920937332e-01
_LG7 = 1.479819860511658591e-01
_MANTISSA = (1 << 52) - 1
#: bits of sqrt(2)'s mantissa: above it the mantissa is halved so that m is in [sqrt(2)/2, sqrt(2))
_SQRT2_MANTISSA = 0x6A09E667F3BCD


@register_jitable
def log(x: float) -> float:
    """Natural logarithm of a positive normal float64, within 1 ulp (NaN below 0, -inf at 0).

    x = 2^k m with m in [sqrt(2)/2, sqrt(2)) (from the bits), f = m - 1, s = f / (2 + f), and
    log(1 + f) = 2s + 2s^3/3 + ... summed by fdlibm's degree-14 polynomial in s."""
    bits = f64_bits(select(x > 0.0, x, 1.0))  # x <= 0 or NaN: any positive lane, selected below
    mant = bits & _MANTISSA
    k = (bits >> 52) - 1023
    big = mant > _SQRT2_MANTISSA
    k = select(big, k + 1, k)
    m = bits_f64(mant | (select(big, 1022, 1023) << 52))
    f = m - 1.0
    s = f / (2.0 + f)
    z = s * s
    w = z * z
    t1 = w * (_LG2 + w * (_LG4 + w * _LG6))
    t2 = z * (_LG1 + w * (_LG3 + w * (_LG5 + w * _LG7)))
    hfsq = 0.5 * f * f
    kf = float(k)
    y = kf * LN2_HI - ((hfsq - (s * (hfsq + t1 + t2) + kf * LN2_LO)) - f)
    y = select(x == 0.0, -math.inf, y)
    y = select(x == math.inf, math.inf, y)
    return select(x >= 0.0, y, math.nan)


# ---------------------------------------------------------------------------------------------
# erfc (fdlibm s_erf.c)

_ERX = 8.45062911510467529297e-01
# |x| < 0.84375
_PP0 = 1.28379167095512558561e-01
_PP1 = -3.25042107247001499370e-01
_PP2 = -2.84817495755985104766e-02
_PP3 = -5.77027029648944159157e-03
_PP4 = -2.37630166566501626084e-05
_QQ1 = 3.97917223959155352819e-01
_QQ2 = 6.50222499887672944485e-02
_QQ3 = 5.08130628187576562776e-03
_QQ4 = 1.32494738004321644526e-04
_QQ5 = -3.96022827877536812320e-06
# 0.84375 <= |x| < 1.25
_PA0 = -2.36211856075265944077e-03
_PA1 = 4.14856118683748331666e-01
_PA2 = -3.72207876035701323847e-01
_PA3 = 3.18346619901161753674e-01
_PA4 = -1.10894694282396677476e-01
_PA5 = 3.54783043256182359371e-02
_PA6 = -2.16637559486879084300e-03
_QA1 = 1.06420880400844228286e-01
_QA2 = 5.40397917702171048937e-01
_QA3 = 7.18286544141962662868e-02
_QA4 = 1.26171219808761642112e-01
_QA5 = 1.36370839120290507362e-02
_QA6 = 1.19844998467991074170e-02
# 1.25 <= |x| < 1/0.35
_RA0 = -9.86494403484714822705e-03
_RA1 = -6.93858572707181764372e-01
_RA2 = -1.05586262253232909814e+01
_RA3 = -6.23753324503260060396e+01
_RA4 = -1.62396669462573470355e+02
_RA5 = -1.84605092906711035994e+02
_RA6 = -8.12874355063065934246e+01
_RA7 = -9.81432934416914548592e+00
_SA1 = 1.96512716674392571292e+01
_SA2 = 1.37657754143519042600e+02
_SA3 = 4.34565877475229228821e+02
_SA4 = 6.45387271733267880336e+02
_SA5 = 4.29008140027567833386e+02
_SA6 = 1.08635005541779435134e+02
_SA7 = 6.57024977031928170135e+00
_SA8 = -6.04244152148580987438e-02
# 1/0.35 <= |x| < 28
_RB0 = -9.86494292470009928597e-03
_RB1 = -7.99283237680523006574e-01
_RB2 = -1.77579549177547519889e+01
_RB3 = -1.60636384855821916062e+02
_RB4 = -6.37566443368389627722e+02
_RB5 = -1.02509513161107724954e+03
_RB6 = -4.83519191608651397019e+02
_SB1 = 3.03380607434824582924e+01
_SB2 = 3.25792512996573918826e+02
_SB3 = 1.53672958608443695994e+03
_SB4 = 3.19985821950859553908e+03
_SB5 = 2.55305040643316442583e+03
_SB6 = 4.74528541206955367215e+02
_SB7 = -2.24409524465858183362e+01
#: fdlibm's switch from the ra/sa to the rb/sb rational (high word 0x4006DB6D: about 1/0.35)
_RA_RB = 2.8571414947509766
#: 2^27 + 1: Veltkamp's splitter (the high half of a float64 in 26 bits, exactly)
_SPLIT = 134217729.0


@register_jitable
def erfc(x: float) -> float:
    """The complementary error function erfc(x) = 1 - erf(x), accurate in both tails (a few ulp).

    fdlibm's four ranges on |x| (below 0.84375: 1 - erf by a rational in x^2; to 1.25: a rational
    in |x| - 1 around erf(1); to 28: exp(-x^2 - 0.5625) exp(R/S) / |x| with rationals in 1/x^2,
    x^2 computed without rounding error through a 26-bit split of x; beyond: 0 or 2), all
    computed, one selected."""
    x0 = x
    x = select(x == x, x, 0.0)  # NaN: any finite lane, the result is selected below
    ax = abs(x)
    neg = x < 0.0
    # the rational of each range (fdlibm's), all computed; the selected one divided once
    z = x * x  # |x| < 0.84375: in x^2
    r = _PP0 + z * (_PP1 + z * (_PP2 + z * (_PP3 + z * _PP4)))
    s = 1.0 + z * (_QQ1 + z * (_QQ2 + z * (_QQ3 + z * (_QQ4 + z * _QQ5))))
    s1 = ax - 1.0  # 0.84375 <= |x| < 1.25: in |x| - 1
    p = _PA0 + s1 * (_PA1 + s1 * (_PA2 + s1 * (_PA3 + s1 * (_PA4 + s1 * (_PA5 + s1 * _PA6)))))
    q = 1.0 + s1 * (_QA1 + s1 * (_QA2 + s1 * (_QA3 + s1 * (_QA4 + s1 * (_QA5 + s1 * _QA6)))))
    # 1.25 <= |x| < 28: in 1/x^2 (the argument clamped so that no lane overflows or divides by 0)
    xa = min(max(ax, 1.25), 28.0)
    s2 = 1.0 / (xa * xa)
    ra = _RA0 + s2 * (_RA1 + s2 * (_RA2 + s2 * (_RA3 + s2 * (_RA4 + s2 * (_RA5 + s2 * (_RA6 + s2 * _RA7))))))
    sa = 1.0 + s2 * (_SA1 + s2 * (_SA2 + s2 * (_SA3 + s2 * (_SA4 + s2 * (_SA5 + s2 * (_SA6 + s2 * (_SA7 + s2 * _SA8)))))))
    rb = _RB0 + s2 * (_RB1 + s2 * (_RB2 + s2 * (_RB3 + s2 * (_RB4 + s2 * (_RB5 + s2 * _RB6)))))
    sb = 1.0 + s2 * (_SB1 + s2 * (_SB2 + s2 * (_SB3 + s2 * (_SB4 + s2 * (_SB5 + s2 * (_SB6 + s2 * _SB7))))))
    is_small = ax < 0.84375
    is_mid = ax < 1.25
    is_ra = xa < _RA_RB
    num = select(is_small, r, select(is_mid, p, select(is_ra, ra, rb)))
    den = select(is_small, s, select(is_mid, q, select(is_ra, sa, sb)))
    y = num / den
    # |x| < 0.84375
    small_tiny = 1.0 - (x + x * y)  # x < 1/4 (negative x included, as in fdlibm)
    small = 0.5 - (x * y + (x - 0.5))
    small = select(x < 0.25, small_tiny, small)
    # 0.84375 <= |x| < 1.25
    mid = select(neg, 1.0 + (_ERX + y), 1.0 - _ERX - y)
    # 1.25 <= |x| < 28
    rs = y
    c = _SPLIT * xa
    zh = c - (c - xa)  # the high 26 bits of xa: zh * zh is exact
    tail = exp(-zh * zh - 0.5625) * exp((zh - xa) * (zh + xa) + rs) / xa
    tail = select(neg, 2.0 - tail, tail)
    tail = select(ax >= 28.0, select(neg, 2.0, 0.0), tail)
    out = select(is_small, small, select(is_mid, mid, tail))
    return select(x0 == x0, out, x0 + x0)


__all__ = ["exp", "log", "erfc", "pow2i", "select", "f64_bits", "bits_f64", "EXP_MAX", "EXP_MIN"]
