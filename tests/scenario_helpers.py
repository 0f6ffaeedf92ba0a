"""Small hand-made books for the scenario and explain tests, and an independent mpmath revaluation.

:func:`every_kind_book` builds a random book holding every contract type (spot; linear and inverse
perpetuals and futures with and without an entry price, with and without a quoted forward; linear
and inverse calls and puts; an expired option and future) on two underlyings, with desk/book
tags. :func:`mp_value` prices one position with mpmath (Black-76 and the section-2 formulas of
the design, written here again from the documentation, not imported from gpuskew).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import mpmath as mp
import numpy as np
import pyarrow as pa

AS_OF = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
SECONDS_PER_YEAR = 31_536_000.0

UNDERLYINGS = {"BTC": dict(spot=97_000.0, rate=0.045), "ETH": dict(spot=3_400.0, rate=0.03)}


def _inst_row(name, und, kind, settlement, option_type=None, strike=None, expiry=None, contract_size=1.0):
    return dict(instrument=name, underlying=und, kind=kind, settlement=settlement, option_type=option_type,
                strike=strike, expiry=expiry, contract_size=contract_size)


def tables(instruments: list[dict], positions: list[dict], quotes: list[dict],
           underlyings: dict[str, dict] | None = None) -> dict[str, pa.Table]:
    """The four tables of a book from rows (dicts)."""
    und = underlyings or UNDERLYINGS
    inst = pa.Table.from_pylist(instruments, schema=pa.schema([
        ("instrument", pa.string()), ("underlying", pa.string()), ("kind", pa.string()),
        ("settlement", pa.string()), ("option_type", pa.string()), ("strike", pa.float64()),
        ("expiry", pa.timestamp("us", tz="UTC")), ("contract_size", pa.float64())]))
    tags = sorted({k for p in positions for k in p} - {"instrument", "quantity", "entry_price"})
    pos = pa.Table.from_pylist(positions, schema=pa.schema(
        [("instrument", pa.string()), ("quantity", pa.float64()), ("entry_price", pa.float64())]
        + [(t, pa.string()) for t in tags]))
    unds = pa.table({"underlying": list(und), "spot": [v["spot"] for v in und.values()],
                     "rate": [v.get("rate", 0.0) for v in und.values()]})
    quo = pa.Table.from_pylist(quotes, schema=pa.schema([("instrument", pa.string()), ("iv", pa.float64()),
                                                         ("forward", pa.float64())]))
    return {"instruments": inst, "positions": pos, "underlyings": unds, "quotes": quo}


def every_kind_book(seed: int = 0, n_options: int = 24) -> dict[str, pa.Table]:
    """A random book with every contract type on BTC and ETH (see the module docstring)."""
    rng = np.random.default_rng(seed)
    inst, pos, quo = [], [], []
    desks = ["a", "b", "c"]

    def hold(name, qty, entry=None):
        pos.append(dict(instrument=name, quantity=float(qty), entry_price=entry,
                        desk=desks[int(rng.integers(3))], book=f"b{int(rng.integers(2))}",
                        account=f"acc{len(pos)}"))  # a unique key per position

    for und, u in UNDERLYINGS.items():
        S = u["spot"]
        inst.append(_inst_row(und, und, "spot", "linear"))
        hold(und, rng.uniform(-50, 50))
        # perpetuals: linear (coins), inverse (USD notional), with and without a mark / entry
        inst.append(_inst_row(f"{und}-PERP-L", und, "perpetual", "linear", contract_size=0.1))
        inst.append(_inst_row(f"{und}-PERP-I", und, "perpetual", "inverse", contract_size=10.0))
        quo.append(dict(instrument=f"{und}-PERP-I", iv=None, forward=S * 1.0004))
        hold(f"{und}-PERP-L", rng.uniform(-500, 500))
        hold(f"{und}-PERP-L", rng.uniform(-500, 500), entry=S * rng.uniform(0.9, 1.1))
        hold(f"{und}-PERP-I", rng.uniform(-1e5, 1e5))
        hold(f"{und}-PERP-I", rng.uniform(-1e5, 1e5), entry=S * rng.uniform(0.9, 1.1))
        for k, days in enumerate((9, 100)):
            exp = AS_OF + timedelta(days=days)
            for settle, size in (("linear", 0.01), ("inverse", 10.0)):
                name = f"{und}-F{k}-{settle[0].upper()}"
                inst.append(_inst_row(name, und, "future", settle, expiry=exp, contract_size=size))
                if k == 1:  # a quoted forward on the long-dated ones
                    quo.append(dict(instrument=name, iv=None, forward=S * 1.012))
                hold(name, rng.uniform(-1000, 1000))
                hold(name, rng.uniform(-1000, 1000), entry=S * rng.uniform(0.9, 1.1))
        # expired future and option
        inst.append(_inst_row(f"{und}-FX", und, "future", "inverse", expiry=AS_OF - timedelta(days=1),
                              contract_size=10.0))
        hold(f"{und}-FX", 100.0, entry=S)
        inst.append(_inst_row(f"{und}-OX", und, "option", "inverse", "call", S, AS_OF - timedelta(hours=1)))
        quo.append(dict(instrument=f"{und}-OX", iv=0.5, forward=None))
        hold(f"{und}-OX", -3.0)
        for k in range(n_options // 2):
            days = float(rng.choice([0.3, 2, 9, 29.5, 30.5, 45, 120, 400]))
            K = S * float(np.exp(rng.normal(0, 0.25)))
            cp = "call" if rng.random() < 0.5 else "put"
            settle = "inverse" if rng.random() < 0.5 else "linear"
            name = f"{und}-O{k}-{cp[0]}-{settle[0]}"
            inst.append(_inst_row(name, und, "option", settle, cp, K, AS_OF + timedelta(days=days),
                                  1.0 if settle == "inverse" else 0.1))
            quo.append(dict(instrument=name, iv=float(rng.uniform(0.2, 1.4)),
                            forward=S * 1.01 if rng.random() < 0.3 else None))
            hold(name, rng.uniform(-200, 200))
    return tables(inst, pos, quo)


# ---------------------------------------------------------------------------------------------
# exact arithmetic

mp.mp.dps = 40


def mp_black76(is_call: bool, F, K, T, r, vol):
    F, K, T, r, vol = (mp.mpf(x) for x in (F, K, T, r, vol))
    sd = vol * mp.sqrt(T)
    d1 = (mp.log(F / K) + sd * sd / 2) / sd
    d2 = d1 - sd
    disc = mp.exp(-r * T)
    N = lambda x: mp.ncdf(x)  # noqa: E731
    return disc * (F * N(d1) - K * N(d2)) if is_call else disc * (K * N(-d2) - F * N(-d1))


def mp_position_value(kind, settlement, option_type, qty, csize, K, T, S, F, r, vol, entry):
    """USD value of one position (design section 2), entry 0 = none (value 0 for perps/futures)."""
    size = mp.mpf(qty) * mp.mpf(csize)
    S, F = mp.mpf(S), mp.mpf(F)
    if kind == "spot":
        return size * S
    if kind in ("option", "future") and T <= 0:
        return mp.mpf(0)
    if kind == "option":
        return size * mp_black76(option_type == "call", F, K, T, r, vol)
    if entry <= 0:
        return mp.mpf(0)
    if settlement == "linear":
        return size * (F - mp.mpf(entry))
    return S * size * (1 / mp.mpf(entry) - 1 / F)


def mp_forward(kind, S, r, T, quoted):
    if quoted and quoted > 0:
        return mp.mpf(quoted)
    if kind in ("spot", "perpetual"):
        return mp.mpf(S)
    return mp.mpf(S) * mp.exp(mp.mpf(r) * mp.mpf(T))


def mp_shocked_vol(vol, T, case, up=0.5, down=0.25, floor=0.5, short=0.30, long=0.13):
    """Deribit's vol shock, written from the support article (see kernels/scenarios.py)."""
    vol = mp.mpf(vol)
    if case == "same":
        return vol
    dte = max(mp.mpf(T) * 365, 1)
    p = mp.mpf(short) if dte < 30 else mp.mpf(long)
    s = (30 / dte) ** p
    if case == "up":
        return max(vol * (1 + mp.mpf(up) * s), mp.mpf(floor))
    return vol * (1 - mp.mpf(down) * s)
