"""Every measure `gpuskew.compute` writes, against exact arithmetic.

mpmath at 40 digits prices each position again from the documented definitions (design section 2
and the units of ``gpuskew.schema.MEASURES``) and takes the greeks as derivatives of that exact
value (``mp.diff``), not from closed forms: delta = dV/dS with F moving with S (dF/dS = F/S),
gamma = d2V/dS2, vega per vol point, theta per calendar day with F and vol fixed, rho per 1% rate
with F fixed, vanna = d(delta)/d(vol point), volga = d(vega_usd)/d(vol point). The kernel's
numbers must agree to 1e-12 relative plus 1e-15 of the position's natural scale (notional, size,
size/S: for measures that cancel to nearly zero or underflow), on the random every-kind book and on an extreme options book
(strikes 0.05x-20x the forward, vols 5%-400%, one hour to eight years, rates -5% to 25%).
"""

from __future__ import annotations

from datetime import timedelta

import mpmath as mp
import numpy as np
import pytest

import gpuskew
from scenario_helpers import AS_OF, _inst_row, every_kind_book, mp_black76, mp_forward, tables

MEASURES = ("value_usd", "value_coin", "delta", "delta_usd", "delta_pa", "gamma", "gamma_1pct", "vega_usd",
            "theta_usd", "rho_usd", "vanna", "volga")
RTOL = mp.mpf("1e-12")
FLOOR = mp.mpf("1e-15")
#: measures above this fraction of their natural scale count in the worst relative error
SIGNIFICANT = mp.mpf("1e-12")


def _exact(row: dict, market: dict) -> dict[str, mp.mpf]:
    """The twelve measures of one position row of the positions table, in mpmath."""
    S = mp.mpf(row["spot"])
    T = mp.mpf(row["time_to_expiry"])
    r = mp.mpf(market["rate"])
    size = mp.mpf(row["quantity"]) * mp.mpf(row["contract_size"])
    kind, settle = row["kind"], row["settlement"]
    entry = row["entry_price"] or 0.0
    zero = {m: mp.mpf(0) for m in MEASURES}
    if kind in ("option", "future") and T <= 0:
        return zero
    F = mp_forward(kind, S, r, T, market["forward"])
    k = F / S  # F moves with S

    if kind == "spot":
        value, delta, delta_pa = size * S, size, size
        out = dict(zero, value_usd=value, delta=delta, delta_pa=delta_pa)
    elif kind == "option":
        K, vol = mp.mpf(row["strike"]), mp.mpf(market["iv"])
        call = row["option_type"] == "call"

        def V(s, v=vol, t=T, rr=r):
            return size * mp_black76(call, k * s, K, t, rr, v)

        value = V(S)
        delta = mp.diff(lambda s: V(s), S)
        gamma = mp.diff(lambda s: V(s), S, 2)
        vega = mp.diff(lambda v: V(S, v), vol) / 100
        theta = -mp.diff(lambda t: V(S, vol, t), T) / 365
        rho = mp.diff(lambda rr: V(S, vol, T, rr), r) / 100
        vanna = mp.diff(lambda s, v: V(s, v), (S, vol), (1, 1)) / 100
        volga = mp.diff(lambda v: V(S, v), vol, 2) / 10000
        delta_pa = delta - value / S if settle == "inverse" else delta
        out = dict(value_usd=value, delta=delta, delta_pa=delta_pa, gamma=gamma, vega_usd=vega,
                   theta_usd=theta, rho_usd=rho, vanna=vanna, volga=volga)
    elif settle == "linear":  # size in coins; value = unrealised P&L against the entry price
        value = size * (F - mp.mpf(entry)) if entry > 0 else mp.mpf(0)
        delta = size * k  # d/dS of n (kS - F0); the exposure also without an entry price
        out = dict(zero, value_usd=value, delta=delta, delta_pa=delta)
    else:  # inverse: size is a USD notional; V = S N (1/F0 - 1/F)
        if entry > 0:
            value = S * size * (1 / mp.mpf(entry) - 1 / F)
            delta = mp.diff(lambda s: s * size * (1 / mp.mpf(entry) - 1 / (k * s)), S)
        else:
            value, delta = mp.mpf(0), size / F
        out = dict(zero, value_usd=value, delta=delta, delta_pa=size / F)
    out = dict(zero, **out)
    out["value_coin"] = out["value_usd"] / S
    out["delta_usd"] = out["delta"] * S
    out["gamma_1pct"] = out["gamma"] * S / 100
    return out


def _scales(row: dict, market: dict) -> dict[str, mp.mpf]:
    """Natural size of each measure of a position (for the absolute floor of the tolerance)."""
    S = mp.mpf(row["spot"])
    size = abs(mp.mpf(row["quantity"]) * mp.mpf(row["contract_size"]))
    if row["kind"] != "option" and row["settlement"] == "inverse":
        size = size / S  # a USD notional: in coins
    usd, coins = size * S, size
    return dict(value_usd=usd, value_coin=coins, delta=coins, delta_usd=usd, delta_pa=coins, gamma=coins / S,
                gamma_1pct=coins, vega_usd=usd, theta_usd=usd, rho_usd=usd, vanna=coins, volga=usd)


def _check(tabs: dict) -> float:
    result = gpuskew.compute(gpuskew.load_book(tabs), as_of=AS_OF, backend="cpu")
    quotes = {q["instrument"]: q for q in tabs["quotes"].to_pylist()}
    rates = dict(zip(tabs["underlyings"]["underlying"].to_pylist(), tabs["underlyings"]["rate"].to_pylist()))
    worst = 0.0
    for row in result.positions.to_pylist():
        q = quotes.get(row["instrument"], {})
        market = {"rate": rates[row["underlying"]], "iv": q.get("iv"), "forward": q.get("forward")}
        exact, scale = _exact(row, market), _scales(row, market)
        for m in MEASURES:
            got, want = mp.mpf(row[m]), exact[m]
            err = abs(got - want)
            assert err <= RTOL * abs(want) + FLOOR * scale[m], (m, row["instrument"], row[m], want)
            if abs(want) > SIGNIFICANT * scale[m]:
                worst = max(worst, float(err / abs(want)))
    return worst


@pytest.mark.parametrize("seed", [3, 4])
def test_every_kind_book_matches_exact_arithmetic(seed):
    # the worst relative error is a short-dated out-of-the-money put's value (K N(-d2) - F N(-d1)
    # cancels): 2.5e-13 of the value with kernels/mathfn's erfc (1.7e-12 with libm's, before)
    assert _check(every_kind_book(seed, n_options=40)) < 1e-12


def test_extreme_options_match_exact_arithmetic():
    rng = np.random.default_rng(11)
    S, rate = 97_000.0, 0.25
    inst, pos, quo = [], [], []
    for k in range(160):
        hours = float(np.exp(rng.uniform(np.log(1.0), np.log(8 * 365 * 24))))
        K = S * float(np.exp(rng.uniform(np.log(0.05), np.log(20.0))))
        vol = float(np.exp(rng.uniform(np.log(0.05), np.log(4.0))))
        cp = "call" if k % 2 else "put"
        settle = "inverse" if k % 4 < 2 else "linear"
        name = f"X{k}"
        inst.append(_inst_row(name, "BTC", "option", settle, cp, K, AS_OF + timedelta(hours=hours),
                              1.0 if settle == "inverse" else 0.1))
        quo.append(dict(instrument=name, iv=vol, forward=S * float(rng.uniform(0.97, 1.05)) if k % 3 == 0 else None))
        pos.append(dict(instrument=name, quantity=float(rng.uniform(-500, 500)), entry_price=None, desk="d"))
    for name, r in (("neg", -0.05), ("pos", rate)):
        tabs = tables(inst, pos, quo, {"BTC": dict(spot=S, rate=r)})
        # values above 1e-12 of their scale: within 1e-12 relative (4.3e-13 measured, an inverse
        # option's delta_pa = delta - V/S); below it, the 1e-15-of-scale floor binds (underflow)
        assert _check(tabs) < 1e-12, name
