"""An independent, vectorised NumPy/SciPy implementation of gpuskew's per-position measures.

Written from the conventions stated in ``kernels/instruments.py`` and ``kernels/black76.py`` (their
docstrings), not by calling them: one boolean mask per contract kind, the Black-76 closed forms on
the options only (``scipy.special.ndtr`` for N), then the group sums with ``np.bincount``. It is the
"vectorised NumPy/SciPy" baseline of the benchmarks and a cross-check of the CPU backend.

Conventions (V = the position's USD value, S the index price, F the forward, dF/dS = F/S):

* forward F: the quoted forward / perpetual mark when > 0; else S (spot, perpetual) or S e^{rT}
  (future, option);
* options and futures with T <= 0: status expired, every measure 0;
* spot: delta = q c coins, V = delta S, delta_pa = delta;
* linear perpetual / future: n = q c coins, delta = n F / S, V = n (F - entry) if an entry price
  else 0, delta_pa = delta;
* inverse perpetual / future: N = q c USD, delta_pa = N / F; with an entry price delta = N / entry
  and V = S N (1/entry - 1/F), else delta = N / F and V = 0;
* options: Black-76 on F per coin, n = q c coins; value = n v, delta = n dv/dF (F/S),
  gamma = n d2v/dF2 (F/S)^2, vega_usd = n dv/dsigma / 100, theta_usd = -n dv/dT / 365,
  rho_usd = -n T v / 100, vanna = n d2v/dF dsigma (F/S) / 100, volga = n d2v/dsigma2 / 10^4;
  delta_pa = delta - V/S for inverse (coin-settled) options, delta for linear ones;
* value_coin = V / S, delta_usd = delta S, gamma_1pct = gamma S / 100.

Run as a script to cross-check it against the CPU backend on a demo book::

    python benchmarks/reference_numpy.py --size 1000000
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
from scipy.special import ndtr

# codes of the flat arrays (gpuskew.schema.KINDS / SETTLEMENTS order; cp = +1 call, -1 put)
SPOT, PERPETUAL, FUTURE, OPTION = 0, 1, 2, 3
LINEAR, INVERSE = 0, 1
STATUS_OK, STATUS_EXPIRED = 0, 1
DAYS_PER_YEAR = 365.0
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

MEASURES = ("value_usd", "value_coin", "delta", "delta_usd", "delta_pa", "gamma", "gamma_1pct",
            "vega_usd", "theta_usd", "rho_usd", "vanna", "volga")
N_MEASURES = len(MEASURES)
(VALUE_USD, VALUE_COIN, DELTA, DELTA_USD, DELTA_PA, GAMMA, GAMMA_1PCT, VEGA_USD, THETA_USD,
 RHO_USD, VANNA, VOLGA) = range(N_MEASURES)


def black76_block(is_call: np.ndarray, F: np.ndarray, K: np.ndarray, T: np.ndarray, r: np.ndarray,
                  vol: np.ndarray) -> tuple[np.ndarray, ...]:
    """Black-76 per coin, vectorised: (v, dv/dF, d2v/dF2, dv/dsigma, dv/dT, d2v/dFdsigma, d2v/dsigma2).

    d1 = (ln(F/K) + sigma^2 T/2) / (sigma sqrt T), d2 = d1 - sigma sqrt T, D = e^{-rT};
    call = D (F N(d1) - K N(d2)), put = D (K N(-d2) - F N(-d1)), written for both at once with
    phi = +-1: v = phi D (F N(phi d1) - K N(phi d2)), dv/dF = phi D N(phi d1).
    """
    phi = np.where(is_call, 1.0, -1.0)
    sqrt_t = np.sqrt(T)
    sd = vol * sqrt_t
    d1 = np.log(F / K)
    d1 += 0.5 * sd * sd
    d1 /= sd
    d2 = d1 - sd
    disc = np.exp(-r * T)
    pdf1 = np.exp(-0.5 * d1 * d1)
    pdf1 *= INV_SQRT_2PI
    pdisc = phi * disc
    n1 = ndtr(phi * d1)
    v = pdisc * (F * n1 - K * ndtr(phi * d2))
    dv_df = pdisc * n1
    d_pdf = disc * pdf1
    d2v_df2 = d_pdf / (F * sd)
    vega = d_pdf * F * sqrt_t
    dv_dt = -r * v + d_pdf * F * vol / (2.0 * sqrt_t)
    vanna = -d_pdf * d2 / vol
    volga = vega * d1 * d2 / vol
    return v, dv_df, d2v_df2, vega, dv_dt, vanna, volga


def position_measures(kind: np.ndarray, settle: np.ndarray, cp: np.ndarray, qty: np.ndarray,
                      csize: np.ndarray, strike: np.ndarray, T: np.ndarray, S: np.ndarray,
                      fwd: np.ndarray, r: np.ndarray, vol: np.ndarray, entry: np.ndarray,
                      out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Every measure of every position: returns (out (12 x n float64, rows in MEASURES order),
    status (n int8)). Same inputs as ``gpuskew.kernels.cpu.position_greeks`` (Book.flat() + T)."""
    n = qty.shape[0]
    if out is None:
        out = np.empty((N_MEASURES, n))
    out[...] = 0.0
    status = np.zeros(n, dtype=np.int8)
    is_opt = kind == OPTION
    dated = is_opt | (kind == FUTURE)
    expired = dated & (T <= 0.0)
    status[expired] = STATUS_EXPIRED

    size = qty * csize
    value, delta, delta_pa, gamma = out[VALUE_USD], out[DELTA], out[DELTA_PA], out[GAMMA]

    # spot
    i = np.flatnonzero(kind == SPOT)
    value[i] = size[i] * S[i]
    delta[i] = size[i]
    delta_pa[i] = size[i]

    # the forward of every live perpetual, future and option
    live = ~expired
    priced = np.flatnonzero(live & (kind != SPOT))
    F = fwd[priced]
    need = F <= 0.0
    if need.any():
        j = priced[need]
        F[need] = np.where(kind[j] == PERPETUAL, S[j], S[j] * np.exp(r[j] * T[j]))
    kp = kind[priced]
    Fall = np.zeros(n)
    Fall[priced] = F

    # linear perpetuals and futures: size in coins
    i = priced[(kp != OPTION) & (settle[priced] == LINEAR)]
    d = size[i] * Fall[i] / S[i]
    delta[i] = d
    delta_pa[i] = d
    e = i[entry[i] > 0.0]
    value[e] = size[e] * (Fall[e] - entry[e])

    # inverse perpetuals and futures: size is a USD notional
    i = priced[(kp != OPTION) & (settle[priced] == INVERSE)]
    dpa = size[i] / Fall[i]
    delta_pa[i] = dpa
    delta[i] = dpa
    e = i[entry[i] > 0.0]
    delta[e] = size[e] / entry[e]
    value[e] = S[e] * size[e] * (1.0 / entry[e] - 1.0 / Fall[e])

    # options
    i = priced[kp == OPTION]
    Fo, So, To, no = Fall[i], S[i], T[i], size[i]
    v, dv_df, d2v_df2, vega, dv_dt, vanna, volga = black76_block(cp[i] > 0, Fo, strike[i], To,
                                                                  r[i], vol[i])
    g = Fo / So
    val = no * v
    dlt = no * dv_df * g
    value[i] = val
    delta[i] = dlt
    gamma[i] = no * d2v_df2 * g * g
    out[VEGA_USD, i] = no * vega / 100.0
    out[THETA_USD, i] = -no * dv_dt / DAYS_PER_YEAR
    out[RHO_USD, i] = -no * To * v / 100.0
    out[VANNA, i] = no * vanna * g / 100.0
    out[VOLGA, i] = no * volga / 10000.0
    inv = settle[i] == INVERSE
    delta_pa[i] = np.where(inv, dlt - val / So, dlt)

    # measures derived from the above, for every position (0 where expired)
    np.divide(value, S, out=out[VALUE_COIN])
    np.multiply(delta, S, out=out[DELTA_USD])
    np.multiply(gamma, S, out=out[GAMMA_1PCT])
    out[GAMMA_1PCT] /= 100.0
    return out, status


def group_sums(out: np.ndarray, codes: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum of every measure per group: (n_measures x n_groups), one ``np.bincount`` per measure."""
    return np.stack([np.bincount(codes, weights=out[m], minlength=n_groups)
                     for m in range(out.shape[0])]) if out.shape[0] else np.zeros((0, n_groups))


def flat_inputs(flat, T: np.ndarray) -> tuple[np.ndarray, ...]:
    """The 12 input arrays of the kernels, from a ``gpuskew.core.book.FlatPositions`` and T."""
    return (flat.kind, flat.settle, flat.cp, flat.qty, flat.csize, flat.strike, T, flat.S, flat.fwd,
            flat.r, flat.vol, flat.entry)


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per row, max over elements of |a - b| / max(|a|, |b|) (0 where both are 0)."""
    a = np.atleast_2d(a)
    b = np.atleast_2d(b)
    scale = np.maximum(np.abs(a), np.abs(b))
    diff = np.abs(a - b)
    rel = np.divide(diff, scale, out=np.zeros_like(diff), where=scale > 0)
    rel[~np.isfinite(a) | ~np.isfinite(b)] = np.inf
    return rel.max(axis=1) if rel.shape[1] else np.zeros(rel.shape[0])


def cross_check(flat, T: np.ndarray, out_kernel: np.ndarray, status_kernel: np.ndarray,
                out_ref: np.ndarray | None = None, status_ref: np.ndarray | None = None
                ) -> dict[str, float]:
    """Max relative difference per measure between the kernels' output and this reference."""
    if out_ref is None:
        out_ref, status_ref = position_measures(*flat_inputs(flat, T))
    if not np.array_equal(status_ref, status_kernel):
        raise AssertionError(f"status differs on {int((status_ref != status_kernel).sum())} positions")
    rel = max_rel_diff(out_kernel, out_ref)
    return dict(zip(MEASURES, rel.tolist()))


def _kernel_run(flat, T):
    from gpuskew.kernels import cpu

    out = np.empty((N_MEASURES, len(flat)))
    status = np.empty(len(flat), dtype=np.int8)
    cpu.position_greeks(*flat_inputs(flat, T), out, status)
    return out, status


def main(argv: list[str] | None = None) -> int:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import md_table

    from gpuskew.core.book import load_book
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.core.engine import as_of_micros

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=int, default=1_000_000, help="positions of the demo book")
    p.add_argument("--rtol", type=float, default=1e-9)
    args = p.parse_args(argv)

    book = load_book(make_demo_book(args.size))
    flat = book.flat()
    T = flat.time_to_expiry(as_of_micros(DEMO_AS_OF))
    out_k, st_k = _kernel_run(flat, T)
    rel = cross_check(flat, T, out_k, st_k)
    worst = max(rel.values())
    print(f"reference_numpy vs gpuskew CPU kernel on a {args.size:,}-position demo book: "
          f"max relative difference {worst:.3e} (tolerance {args.rtol:g})")
    print(md_table(["measure", "max rel diff"], [[k, f"{v:.2e}"] for k, v in rel.items()]))
    if worst > args.rtol:
        print("FAIL: the reference and the CPU backend disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
