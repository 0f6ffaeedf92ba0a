"""A seeded, realistic, Deribit-like demo book for ``--demo``, tests and benchmarks.

The universe (instruments, underlyings, quotes) depends only on ``as_of``; the positions depend on
``seed`` and ``n_positions`` too. Everything per position is vectorised with NumPy (loops run over
instruments and (desk, product) cells only), so ten million positions take seconds.

Universe, at the default ``as_of`` (:data:`DEMO_AS_OF`, Friday 2026-11-20 08:00 UTC):

* underlyings BTC, ETH, SOL, XRP (index price, USD rate, vol, annualised funding) and USDC cash;
* Deribit expiries at 08:00 UTC: 3 dailies, 4 Friday weeklies, 3 monthlies (last Friday), 4
  quarterlies (last Friday of Mar/Jun/Sep/Dec), plus a few options that expired the day before
  ``as_of`` (to exercise the ``expired`` status);
* BTC/ETH options coin-settled (inverse, x1), e.g. ``BTC-25DEC26-100000-C``; SOL/XRP options
  USDC-settled (linear, x10 / x1000), e.g. ``SOL_USDC-25DEC26-200-C``, ``XRP_USDC-27NOV26-2d3-P``
  (Deribit writes a decimal point in a strike as ``d``);
* perpetuals ``BTC-PERPETUAL`` ($10), ``ETH-PERPETUAL`` ($1) inverse and ``*_USDC-PERPETUAL``
  linear; inverse dated futures ``BTC-25DEC26`` ($10), ``ETH-25DEC26`` ($1) on the monthly and
  quarterly expiries, and a few linear ``BTC_USDC-26MAR27``-style futures;
* spot holdings ``BTC``, ``ETH``, ``SOL``, ``XRP`` and ``USDC`` cash.

Quotes: option implied vols from a smile ``iv = atm(T) * (1 + skew*k + curv*k^2)`` with
``k = ln(K/F)/sqrt(T)``, clipped to [0.15, 3.0]; forwards ``F = S*exp((r + basis)*T)``;
perpetual marks ``S*(1 + premium)`` with the premium of one 8-hour funding period.

Positions carry the tags ``desk``, ``book`` and ``account``; desks are biased per product
(options-mm: options hedged with perps; vol-arb: options; delta-one: perps and futures;
treasury: spot and USDC).
"""

from __future__ import annotations

import calendar
import math
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew.schema import INPUT_TABLES, SECONDS_PER_YEAR, TIMESTAMP
from gpuskew.timeutil import to_utc

__all__ = [
    "DEMO_AS_OF",
    "DEMO_FORMATS",
    "TAG_COLUMNS",
    "make_demo_book",
    "write_demo_book",
    "write_demo_dataset",
    "DATASET_CHUNK",
    "demo_universe_summary",
]

#: Default valuation time of the demo book: Friday 2026-11-20 08:00:00 UTC (a Deribit expiry time).
DEMO_AS_OF: datetime = datetime(2026, 11, 20, 8, 0, 0, tzinfo=timezone.utc)
#: File formats :func:`write_demo_book` writes, and their extensions.
DEMO_FORMATS: dict[str, str] = {"parquet": ".parquet", "csv": ".csv", "arrow": ".arrow"}
#: Tag columns added to the positions table.
TAG_COLUMNS: tuple[str, ...] = ("desk", "book", "account")

_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_US_PER_S = 1_000_000

# --------------------------------------------------------------------------------------------
# Market: one row per underlying. funding_8h is a Deribit 8-hour funding rate; the table holds
# it annualised (x 3 x 365). basis is the annualised futures basis over the USD rate; skew and
# curv shape the smile in k = ln(K/F)/sqrt(T).
# --------------------------------------------------------------------------------------------
_COINS: dict[str, dict[str, float]] = {
    "BTC": dict(spot=97_000.0, rate=0.045, vol=0.50, funding_8h=0.00010, basis=0.030,
                skew=-0.060, curv=0.12),
    "ETH": dict(spot=3_400.0, rate=0.045, vol=0.65, funding_8h=0.00008, basis=0.035,
                skew=-0.080, curv=0.14),
    "SOL": dict(spot=190.0, rate=0.043, vol=0.85, funding_8h=-0.00005, basis=0.020,
                skew=-0.040, curv=0.16),
    "XRP": dict(spot=2.30, rate=0.047, vol=0.90, funding_8h=0.00015, basis=0.010,
                skew=0.020, curv=0.18),
}
_CASH = "USDC"
_UNDERLYINGS: tuple[str, ...] = (*_COINS, _CASH)
_COIN_SHARE = {"BTC": 0.45, "ETH": 0.30, "SOL": 0.15, "XRP": 0.10}

# Deribit-like contract specs.
_OPTION_SIZE = {"BTC": 1.0, "ETH": 1.0, "SOL": 10.0, "XRP": 1000.0}
_OPTION_LOTS_PER_CONTRACT = {"BTC": 10, "ETH": 1, "SOL": 1, "XRP": 1}  # BTC 0.1, others 1
_INVERSE_SIZE = {"BTC": 10.0, "ETH": 1.0}  # USD per contract, perpetual and dated future
_LINEAR_SIZE = {"BTC": 0.001, "ETH": 0.01, "SOL": 0.1, "XRP": 1.0}  # coins per contract
_TICKS_PER_USD = {"BTC": 2, "ETH": 20, "SOL": 100, "XRP": 10_000}  # tick 0.5 / 0.05 / 0.01 / 0.0001
_SPOT_LOTS_PER_COIN = {"BTC": 10_000, "ETH": 1_000, "SOL": 100, "XRP": 1, "USDC": 100}

# Median USD notional of one position, by product class and coin.
_CLS_OPTION, _CLS_PERP, _CLS_FUTURE, _CLS_SPOT = 0, 1, 2, 3
_N_CLASSES = 4
_MEDIAN_USD = {
    _CLS_OPTION: {"BTC": 150e3, "ETH": 100e3, "SOL": 40e3, "XRP": 30e3},
    _CLS_PERP: {"BTC": 400e3, "ETH": 250e3, "SOL": 80e3, "XRP": 60e3},
    _CLS_FUTURE: {"BTC": 500e3, "ETH": 300e3, "SOL": 80e3, "XRP": 60e3},
    _CLS_SPOT: {"BTC": 1.0e6, "ETH": 600e3, "SOL": 150e3, "XRP": 100e3, "USDC": 2.0e6},
}
_NOTIONAL_LOG_SIGMA = 1.0

# Desks: share of positions, product mix (option, perp, future, spot), size multiplier per
# product, probability that a position is short, books.
_DESKS: tuple[str, ...] = ("options-mm", "delta-one", "vol-arb", "treasury")
_DESK_SHARE = np.array([0.45, 0.30, 0.20, 0.05])
_DESK_MIX = np.array([
    [0.82, 0.15, 0.03, 0.00],  # options-mm: options, hedged in perps
    [0.00, 0.60, 0.35, 0.05],  # delta-one: perps and futures
    [0.90, 0.06, 0.04, 0.00],  # vol-arb: options
    [0.00, 0.08, 0.02, 0.90],  # treasury: spot and USDC
])
_DESK_SIZE = np.array([
    [1.0, 1.5, 1.5, 1.0],
    [1.0, 3.0, 3.0, 1.0],
    [1.5, 1.0, 1.0, 1.0],
    [1.0, 2.0, 2.0, 3.0],
])
_DESK_SHORT = np.array([
    [0.55, 0.50, 0.50, 0.05],
    [0.50, 0.50, 0.50, 0.20],
    [0.50, 0.50, 0.50, 0.05],
    [0.50, 0.60, 0.60, 0.02],
])
_BOOKS: dict[str, tuple[str, ...]] = {
    "options-mm": ("btc-vol", "eth-vol", "alts-vol"),
    "delta-one": ("perp-mm", "basis", "alts-d1"),
    "vol-arb": ("term-structure", "skew", "dispersion"),
    "treasury": ("collateral", "stablecoins", "hedges"),
}
_ACCOUNTS_PER_BOOK: dict[str, int] = {
    "btc-vol": 4, "eth-vol": 3, "alts-vol": 2,
    "perp-mm": 4, "basis": 3, "alts-d1": 2,
    "term-structure": 2, "skew": 2, "dispersion": 2,
    "collateral": 3, "stablecoins": 2, "hedges": 2,
}
# Share of option positions on the options that expired the day before as_of.
_EXPIRED_OPTION_SHARE = 0.003


def _book_probs(desk: str, und: str, cls: int) -> tuple[float, float, float]:
    """Probability of each of the desk's three books for a position in ``und`` of class ``cls``."""
    if desk == "options-mm":
        return {"BTC": (1.0, 0.0, 0.0), "ETH": (0.0, 1.0, 0.0)}.get(und, (0.0, 0.0, 1.0))
    if desk == "delta-one":
        if und in ("SOL", "XRP"):
            return (0.0, 0.0, 1.0)
        return (0.0, 1.0, 0.0) if cls == _CLS_FUTURE else (0.85, 0.15, 0.0)
    if desk == "vol-arb":
        return (0.0, 0.0, 1.0) if und in ("SOL", "XRP") else (0.55, 0.45, 0.0)
    # treasury
    if cls in (_CLS_PERP, _CLS_FUTURE):
        return (0.0, 0.0, 1.0)
    return (0.0, 1.0, 0.0) if und == _CASH else (1.0, 0.0, 0.0)


# --------------------------------------------------------------------------------------------
# Expiries
# --------------------------------------------------------------------------------------------

def _as_utc(as_of: datetime) -> datetime:
    if not isinstance(as_of, datetime):
        raise TypeError(f"as_of must be a datetime, got {type(as_of).__name__}")
    return to_utc(as_of)


def _at8(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, 8, 0, 0, tzinfo=timezone.utc)


def _last_friday(year: int, month: int) -> datetime:
    last = calendar.monthrange(year, month)[1]
    d = datetime(year, month, last, tzinfo=timezone.utc)
    return _at8(year, month, last - (d.weekday() - 4) % 7)


def _expiries(as_of: datetime) -> dict[str, list[datetime]]:
    """Deribit expiry cycles (08:00 UTC) strictly after ``as_of``, and the expired one."""
    day0 = _at8(as_of.year, as_of.month, as_of.day)
    days = [day0 + timedelta(days=i) for i in range(0, 40)]
    dailies = [d for d in days if d > as_of][:3]
    weeklies = [d for d in days if d > as_of and d.weekday() == 4][:4]
    months = [(as_of.year + (as_of.month - 1 + i) // 12, (as_of.month - 1 + i) % 12 + 1)
              for i in range(0, 16)]
    monthlies = [e for e in (_last_friday(y, m) for y, m in months) if e > as_of][:3]
    quarterlies = [e for e in (_last_friday(y, m) for y, m in months if m % 3 == 0)
                   if e > as_of][:4]
    expired = [day0 - timedelta(days=1) if day0 <= as_of else day0 - timedelta(days=2)]
    return {"daily": dailies, "weekly": weeklies, "monthly": monthlies,
            "quarterly": quarterlies, "expired": expired}


def _exp_code(d: datetime) -> str:
    return f"{d.day}{_MONTHS[d.month - 1]}{d.year % 100:02d}"


def _strike_code(k: float) -> str:
    s = f"{k:.10g}"
    return s.replace(".", "d")


def _nice_ceil(x: float) -> float:
    """Smallest number of the 1 / 2.5 / 5 x 10^n ladder that is >= x."""
    e = math.floor(math.log10(x))
    for m in (1.0, 2.5, 5.0, 10.0):
        v = m * 10.0**e
        if v >= x * (1 - 1e-12):
            return v
    return 10.0 ** (e + 1)  # pragma: no cover


def _strike_grid(fwd: float, vol: float, t: float) -> np.ndarray:
    """Deribit-like strikes around ``fwd``: log-moneyness +-w with w ~ 3.2 sigma sqrt(T) (at most
    ln 2, at least 6%), step from the 1/2.5/5 ladder within +-w/2, twice coarser on the wings
    (which are rounded outwards to that coarser step)."""
    w = min(math.log(2.0), max(0.06, 3.2 * vol * math.sqrt(max(t, 1.0 / 365.0))))
    step = _nice_ceil(fwd * w / 20.0)
    coarse = 2.0 * step
    lo, hi = fwd * math.exp(-w), fwd * math.exp(w)
    ilo, ihi = fwd * math.exp(-w / 2), fwd * math.exp(w / 2)
    inner = np.arange(math.ceil(ilo / step), math.floor(ihi / step) + 1) * step
    outer = np.arange(math.floor(lo / coarse), math.ceil(hi / coarse) + 1) * coarse
    outer = outer[(outer < ilo) | (outer > ihi)]
    strikes = np.unique(np.round(np.concatenate([inner, outer]), 8))
    return strikes[strikes > 0]


def _atm_vol(base: float, t: float) -> float:
    """ATM term structure: 0.92 x base at the front, rising to ~1.06 x base at one year."""
    return base * (0.92 + 0.15 * (1.0 - math.exp(-max(t, 0.0) / 0.35)))


# --------------------------------------------------------------------------------------------
# Universe
# --------------------------------------------------------------------------------------------

class _Universe:
    """Instruments, underlyings and quotes as plain columns, plus per-instrument sizing data."""

    def __init__(self, as_of: datetime):
        self.as_of = as_of
        cols: dict[str, list[Any]] = {k: [] for k in (
            "instrument", "underlying", "kind", "settlement", "option_type", "strike", "expiry",
            "contract_size", "cls", "t", "fwd", "iv", "usd_per_contract", "lots_per_contract",
            "ticks_per_usd", "popularity", "expired")}
        self.cols = cols
        cyc = _expiries(as_of)
        self.cycles = cyc

        def t_of(e: datetime) -> float:
            return (e - as_of).total_seconds() / SECONDS_PER_YEAR

        def add(name, und, kind, settle, cls, *, otype=None, strike=None, expiry=None, size=1.0,
                fwd=None, iv=None, upc=1.0, lpc=1, tpu=1, pop=1.0, expired=False):
            cols["instrument"].append(name)
            cols["underlying"].append(und)
            cols["kind"].append(kind)
            cols["settlement"].append(settle)
            cols["option_type"].append(otype)
            cols["strike"].append(strike)
            cols["expiry"].append(None if expiry is None else int(expiry.timestamp()) * _US_PER_S)
            cols["contract_size"].append(float(size))
            cols["cls"].append(cls)
            cols["t"].append(0.0 if expiry is None else t_of(expiry))
            cols["fwd"].append(fwd)
            cols["iv"].append(iv)
            cols["usd_per_contract"].append(float(upc))
            cols["lots_per_contract"].append(int(lpc))
            cols["ticks_per_usd"].append(int(tpu))
            cols["popularity"].append(float(pop))
            cols["expired"].append(bool(expired))

        live = sorted(set(cyc["daily"] + cyc["weekly"] + cyc["monthly"] + cyc["quarterly"]))
        alt_opt = sorted(set(cyc["daily"] + cyc["weekly"] + cyc["monthly"] + cyc["quarterly"][:2]))
        fut_exp = sorted(set(cyc["monthly"] + cyc["quarterly"]))
        lin_fut_exp = cyc["quarterly"][:2]

        for und in _UNDERLYINGS:
            if und == _CASH:
                add(_CASH, _CASH, "spot", "linear", _CLS_SPOT, upc=1.0,
                    lpc=_SPOT_LOTS_PER_COIN[_CASH])
                continue
            c = _COINS[und]
            s, r, vol = c["spot"], c["rate"], c["vol"]
            tpu = _TICKS_PER_USD[und]

            def fwd_of(t: float, c=c, s=s, r=r) -> float:
                f = s * math.exp((r + c["basis"]) * max(t, 0.0))
                return float(np.round(f * 100.0) / 100.0) if s > 50 else round(f, 6)

            # spot holding
            add(und, und, "spot", "linear", _CLS_SPOT, upc=s, lpc=_SPOT_LOTS_PER_COIN[und])
            # perpetuals: mark = S * (1 + one 8h funding period of premium)
            mark = s * (1.0 + c["funding_8h"])
            mark = math.floor(mark * tpu + 0.5) / tpu
            if und in _INVERSE_SIZE:
                add(f"{und}-PERPETUAL", und, "perpetual", "inverse", _CLS_PERP,
                    size=_INVERSE_SIZE[und], fwd=mark, upc=_INVERSE_SIZE[und], tpu=tpu,
                    pop=0.62 if und == "BTC" else 0.60)
            add(f"{und}_USDC-PERPETUAL", und, "perpetual", "linear", _CLS_PERP,
                size=_LINEAR_SIZE[und], fwd=mark, upc=_LINEAR_SIZE[und] * s, tpu=tpu,
                pop=0.38 if und in _INVERSE_SIZE else 1.0)
            # dated futures
            if und in _INVERSE_SIZE:
                for e in fut_exp:
                    t = t_of(e)
                    add(f"{und}-{_exp_code(e)}", und, "future", "inverse", _CLS_FUTURE,
                        expiry=e, size=_INVERSE_SIZE[und], fwd=fwd_of(t),
                        upc=_INVERSE_SIZE[und], tpu=tpu, pop=math.exp(-t / 0.3) + 0.1)
                for e in lin_fut_exp:
                    t = t_of(e)
                    add(f"{und}_USDC-{_exp_code(e)}", und, "future", "linear", _CLS_FUTURE,
                        expiry=e, size=_LINEAR_SIZE[und], fwd=fwd_of(t),
                        upc=_LINEAR_SIZE[und] * s, tpu=tpu, pop=0.3 * (math.exp(-t / 0.3) + 0.1))
            # options
            inverse = und in ("BTC", "ETH")
            prefix = und if inverse else f"{und}_USDC"
            settle = "inverse" if inverse else "linear"
            size = _OPTION_SIZE[und]
            exps = [(e, False) for e in (live if inverse else alt_opt)]
            if inverse:
                exps = [(e, True) for e in cyc["expired"]] + exps
            for e, expired in exps:
                t = t_of(e)
                code = _exp_code(e)
                if expired:
                    f = s
                    step = _nice_ceil(s * 0.02)
                    atm_k = round(s / step) * step
                    strikes = np.array([atm_k - step, atm_k + step]) if und == "BTC" else \
                        np.array([atm_k])
                else:
                    f = fwd_of(t)
                    strikes = _strike_grid(f, vol, t)
                atm = _atm_vol(vol, t)
                for k in strikes.tolist():
                    if expired:
                        iv = atm
                        pop = 1.0
                    else:
                        km = math.log(k / f) / math.sqrt(t)
                        iv = atm * (1.0 + c["skew"] * km + c["curv"] * km * km)
                        iv = float(min(3.0, max(0.15, round(iv, 4))))
                        d = math.log(k / f) / (atm * math.sqrt(t))
                        pop = math.exp(-abs(d) / 0.8)
                    for otype in ("call", "put"):
                        add(f"{prefix}-{code}-{_strike_code(k)}-{otype[0].upper()}", und,
                            "option", settle, _CLS_OPTION, otype=otype, strike=float(k),
                            expiry=e, size=size, fwd=f, iv=iv, upc=size * s,
                            lpc=_OPTION_LOTS_PER_CONTRACT[und], pop=pop, expired=expired)

        self.n = len(cols["instrument"])
        self.und_idx = np.array([_UNDERLYINGS.index(u) for u in cols["underlying"]], np.int64)
        self.cls = np.array(cols["cls"], np.int64)
        self.t = np.array(cols["t"], np.float64)
        self.popularity = np.array(cols["popularity"], np.float64)
        self.expired = np.array(cols["expired"], bool)
        self.usd_per_contract = np.array(cols["usd_per_contract"], np.float64)
        self.lots_per_contract = np.array(cols["lots_per_contract"], np.float64)
        self.ticks_per_usd = np.array(cols["ticks_per_usd"], np.float64)
        self.mark = np.array([np.nan if v is None else v for v in cols["fwd"]], np.float64)
        self.median_usd = np.array(
            [_MEDIAN_USD[c][u] for c, u in zip(cols["cls"], cols["underlying"])], np.float64)
        self.vol = np.array([_COINS[u]["vol"] if u in _COINS else 0.0
                             for u in cols["underlying"]], np.float64)
        self.names = pa.array(cols["instrument"], pa.string())

    # ---- tables ------------------------------------------------------------------------------
    def instruments(self) -> pa.Table:
        c = self.cols
        arrays = {
            "instrument": self.names,
            "underlying": pa.array(c["underlying"], pa.string()),
            "kind": pa.array(c["kind"], pa.string()),
            "settlement": pa.array(c["settlement"], pa.string()),
            "option_type": pa.array(c["option_type"], pa.string()),
            "strike": pa.array(c["strike"], pa.float64()),
            "expiry": pa.array(c["expiry"], pa.int64()).cast(TIMESTAMP),
            "contract_size": pa.array(c["contract_size"], pa.float64()),
        }
        return _table("instruments", arrays)

    def underlyings(self) -> pa.Table:
        names = list(_UNDERLYINGS)
        spot = [_COINS[u]["spot"] if u in _COINS else 1.0 for u in names]
        rate = [_COINS[u]["rate"] if u in _COINS else 0.0 for u in names]
        vol = [_COINS[u]["vol"] if u in _COINS else None for u in names]
        funding = [round(_COINS[u]["funding_8h"] * 3 * 365, 10) if u in _COINS else None
                   for u in names]
        arrays = {
            "underlying": pa.array(names, pa.string()),
            "spot": pa.array(spot, pa.float64()),
            "rate": pa.array(rate, pa.float64()),
            "vol": pa.array(vol, pa.float64()),
            "funding_rate": pa.array(funding, pa.float64()),
        }
        return _table("underlyings", arrays)

    def quotes(self) -> pa.Table:
        c = self.cols
        rows = [i for i in range(self.n) if c["kind"][i] != "spot"]
        arrays = {
            "instrument": pa.array([c["instrument"][i] for i in rows], pa.string()),
            "iv": pa.array([c["iv"][i] for i in rows], pa.float64()),
            "forward": pa.array([c["fwd"][i] for i in rows], pa.float64()),
        }
        return _table("quotes", arrays)

    # ---- positions ---------------------------------------------------------------------------
    def instrument_probs(self, desk: int, cls: int) -> tuple[np.ndarray, np.ndarray]:
        """Candidates of class ``cls`` and the probability that a ``desk`` position holds each."""
        cand = np.flatnonzero(self.cls == cls)
        und = self.und_idx[cand]
        pop = self.popularity[cand].copy()
        if cls == _CLS_OPTION:
            t = self.t[cand]
            # options-mm trades the front; vol-arb spreads along the curve
            tau = 0.15 if _DESKS[desk] == "options-mm" else 0.5
            floor = 0.15 if _DESKS[desk] == "options-mm" else 0.3
            pop *= np.exp(-np.maximum(t, 0.0) / tau) + floor
            share = np.array([_COIN_SHARE.get(u, 0.0) for u in _UNDERLYINGS])
            w = np.zeros_like(pop)
            live = ~self.expired[cand]
            for ui in np.unique(und):
                m = live & (und == ui)
                if m.any():
                    w[m] = share[ui] * pop[m] / pop[m].sum()
            w *= (1.0 - _EXPIRED_OPTION_SHARE) / w.sum()
            exp_m = self.expired[cand]
            if exp_m.any():
                w[exp_m] = _EXPIRED_OPTION_SHARE * pop[exp_m] / pop[exp_m].sum()
        elif cls == _CLS_SPOT:
            spot_share = ({"USDC": 0.35, "BTC": 0.30, "ETH": 0.20, "SOL": 0.10, "XRP": 0.05}
                          if _DESKS[desk] == "treasury" else
                          {"USDC": 0.0, "BTC": 0.40, "ETH": 0.30, "SOL": 0.20, "XRP": 0.10})
            w = np.array([spot_share[_UNDERLYINGS[u]] for u in und])
        else:
            share = np.array([_COIN_SHARE.get(u, 0.0) for u in _UNDERLYINGS])
            w = np.zeros_like(pop)
            for ui in np.unique(und):
                m = und == ui
                w[m] = share[ui] * pop[m] / pop[m].sum()
        return cand, w / w.sum()


def _table(name: str, arrays: Mapping[str, pa.Array | pa.ChunkedArray]) -> pa.Table:
    fields = [pa.field(col.name, col.type) for col in INPUT_TABLES[name]]
    fields += [pa.field(k, pa.string()) for k in arrays if k not in {f.name for f in fields}]
    return pa.Table.from_arrays([arrays[f.name] for f in fields], schema=pa.schema(fields))


def _sample_rows(rng: np.random.Generator, group: np.ndarray, probs: np.ndarray) -> np.ndarray:
    """For each row ``i`` draw a category from the distribution ``probs[group[i]]`` (vectorised).

    Rows are spaced 2 apart on one axis and searched once; a category of zero probability is
    never drawn.
    """
    g, k = probs.shape
    tot = probs.sum(axis=1, keepdims=True)
    cum = np.cumsum(probs / np.where(tot > 0, tot, 1.0), axis=1)
    for r in range(g):  # the last positive category absorbs rounding (and u -> 1)
        pos = np.flatnonzero(probs[r] > 0)
        if pos.size:
            cum[r, pos[-1]:] = 1.5
    bps = (2.0 * np.arange(g)[:, None] + cum).ravel()
    x = 2.0 * group + rng.random(group.size)
    idx = np.searchsorted(bps, x, side="right") - group * k
    return idx


def _position_arrays(u: _Universe, n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cell_p = (_DESK_SHARE[:, None] * _DESK_MIX).ravel()
    counts = rng.multinomial(n, cell_p / cell_p.sum())

    # global book and account numbering (desk order, then book order)
    book_names: list[str] = []
    acct_names: list[str] = []
    book_first_acct: list[int] = []
    for d in _DESKS:
        for b in _BOOKS[d]:
            book_names.append(b)
            book_first_acct.append(len(acct_names))
            acct_names += [f"{b}-{j + 1:02d}" for j in range(_ACCOUNTS_PER_BOOK[b])]
    max_acct = max(_ACCOUNTS_PER_BOOK.values())
    acct_p = np.zeros((len(book_names), max_acct))
    for bi, b in enumerate(book_names):
        na = _ACCOUNTS_PER_BOOK[b]
        acct_p[bi, :na] = 1.0 / np.arange(1, na + 1)  # a main account and smaller ones

    inst_parts, qty_parts, entry_parts, desk_parts, book_parts = [], [], [], [], []
    for cell, m in enumerate(counts.tolist()):
        if m == 0:
            continue
        desk, cls = divmod(cell, _N_CLASSES)
        cand, p = u.instrument_probs(desk, cls)
        inst = cand[rng.choice(cand.size, size=m, p=p)].astype(np.int32)
        # size: lognormal USD notional -> whole lots of contracts, signed
        notional = u.median_usd[inst] * _DESK_SIZE[desk, cls]
        notional *= np.exp(_NOTIONAL_LOG_SIGMA * rng.standard_normal(m))
        lpc = u.lots_per_contract[inst]
        lots = np.maximum(np.rint(notional / u.usd_per_contract[inst] * lpc), 1.0)
        del notional
        short = rng.random(m) < _DESK_SHORT[desk, cls]
        qty = np.where(short, -lots, lots) / lpc
        del lots, short
        # entry price near the mark: about three days of the coin's vol
        if cls in (_CLS_PERP, _CLS_FUTURE):
            sd = u.vol[inst] * math.sqrt(3.0 / 365.0)
            entry = u.mark[inst] * np.exp(sd * rng.standard_normal(m))
            tpu = u.ticks_per_usd[inst]
            entry = np.maximum(np.rint(entry * tpu), 1.0) / tpu
        else:
            entry = np.full(m, np.nan)
        # book from (desk, underlying, class)
        bprobs = np.array([_book_probs(_DESKS[desk], und, cls) for und in _UNDERLYINGS])
        local = _sample_rows(rng, u.und_idx[inst], bprobs)
        book = (sum(len(_BOOKS[d]) for d in _DESKS[:desk]) + local).astype(np.int16)
        inst_parts.append(inst)
        qty_parts.append(qty)
        entry_parts.append(entry)
        desk_parts.append(np.full(m, desk, np.int8))
        book_parts.append(book)

    if inst_parts:
        inst = np.concatenate(inst_parts)
        qty = np.concatenate(qty_parts)
        entry = np.concatenate(entry_parts)
        desk = np.concatenate(desk_parts)
        book = np.concatenate(book_parts)
    else:
        inst = np.zeros(0, np.int32)
        qty = entry = np.zeros(0)
        desk = np.zeros(0, np.int8)
        book = np.zeros(0, np.int16)
    del inst_parts, qty_parts, entry_parts, desk_parts, book_parts
    acct = (np.asarray(book_first_acct, np.int64)[book]
            + _sample_rows(rng, book.astype(np.int64), acct_p)).astype(np.int32)

    # a position report: sorted by account (desk, book order), then instrument
    key = acct.astype(np.int64) * (u.n + 1) + inst
    order = np.argsort(key, kind="stable")
    del key
    return {
        "inst": inst[order], "quantity": qty[order], "entry_price": entry[order],
        "desk": desk[order], "book": book[order], "account": acct[order],
        "desk_names": np.array(_DESKS, object), "book_names": np.array(book_names, object),
        "account_names": np.array(acct_names, object),
    }


_CHUNK = 1 << 23  # rows per Arrow chunk of a string column built by take()


def _take_strings(dictionary: pa.Array, idx: np.ndarray) -> pa.ChunkedArray:
    """``dictionary[idx]`` as plain strings, chunked so no chunk's offsets overflow int32."""
    chunks = [dictionary.take(pa.array(idx[i:i + _CHUNK])) for i in range(0, idx.size, _CHUNK)]
    if not chunks:
        chunks = [pa.array([], pa.string())]
    return pa.chunked_array(chunks, pa.string())


def _positions_table(u: _Universe, pos: dict[str, np.ndarray]) -> pa.Table:
    entry = pos["entry_price"]
    arrays = {
        "instrument": _take_strings(u.names, pos["inst"]),
        "quantity": pa.array(pos["quantity"], pa.float64()),
        "entry_price": pa.array(entry, pa.float64(), mask=np.isnan(entry)),
        "desk": _take_strings(pa.array(pos["desk_names"].tolist(), pa.string()), pos["desk"]),
        "book": _take_strings(pa.array(pos["book_names"].tolist(), pa.string()), pos["book"]),
        "account": _take_strings(pa.array(pos["account_names"].tolist(), pa.string()),
                                 pos["account"]),
    }
    return _table("positions", arrays)


def make_demo_book(n_positions: int = 20_000, seed: int = 7,
                   as_of: datetime = DEMO_AS_OF) -> dict[str, pa.Table]:
    """A realistic Deribit-like book valued at ``as_of``: the four input tables by name.

    ``instruments``, ``positions`` (with tag columns ``desk``, ``book``, ``account``),
    ``underlyings`` and ``quotes``, with the columns and Arrow types of :mod:`gpuskew.schema`.
    The universe depends on ``as_of`` only; positions on ``seed`` and ``n_positions``. The same
    arguments always give identical tables.
    """
    n = int(n_positions)
    if n < 0:
        raise ValueError(f"n_positions must be >= 0, got {n_positions}")
    u = _Universe(_as_utc(as_of))
    pos = _position_arrays(u, n, int(seed))
    return {
        "instruments": u.instruments(),
        "positions": _positions_table(u, pos),
        "underlyings": u.underlyings(),
        "quotes": u.quotes(),
    }


def _write_table(table: pa.Table, path: Path, fmt: str) -> None:
    """``table`` as ``fmt`` at ``path``, atomically (:func:`gpuskew.io.atomic.write_atomic`: a
    unique temporary name, fsync, rename)."""
    from gpuskew.io.atomic import write_atomic

    def write(f: Any) -> None:
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, f, compression="zstd")
        elif fmt == "csv":
            import pyarrow.csv as pcsv

            pcsv.write_csv(table, f)
        else:
            with pa.ipc.new_file(f, table.schema) as w:
                w.write_table(table)

    write_atomic(path, write)


def write_demo_book(book_dir: Path, n_positions: int = 20_000, seed: int = 7,
                    as_of: datetime = DEMO_AS_OF, fmt: str = "parquet",
                    progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """Write :func:`make_demo_book` into ``book_dir`` (created) as ``<table>.<fmt>`` files.

    ``fmt`` is ``parquet`` (zstd), ``csv`` or ``arrow`` (Arrow IPC file). Each file is written to a
    temporary name and renamed into place; the same arguments give byte-identical files.
    Returns the path of each table by name. ``progress("demo")`` is called once the book is built,
    ``progress("write")`` once it is written.
    """
    if fmt not in DEMO_FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(DEMO_FORMATS)}, got {fmt!r}")
    book_dir = Path(book_dir)
    book_dir.mkdir(parents=True, exist_ok=True)
    tables = make_demo_book(n_positions=n_positions, seed=seed, as_of=as_of)
    if progress:
        progress("demo")
    paths: dict[str, Path] = {}
    for name in INPUT_TABLES:
        path = book_dir / f"{name}{DEMO_FORMATS[fmt]}"
        _write_table(tables[name], path, fmt)
        paths[name] = path
    if progress:
        progress("write")
    return paths


#: positions generated (and held in memory) at a time by :func:`write_demo_dataset`
DATASET_CHUNK = 1 << 22


def _chunk_seed(seed: int, k: int) -> Any:
    """Seed of chunk ``k`` of a partitioned demo book: chunk 0 uses ``seed`` itself (a book of one
    chunk holds the positions of ``make_demo_book(n, seed)``), the others independent streams."""
    return seed if k == 0 else np.random.SeedSequence([seed, k])


def write_demo_dataset(book_dir: Path, n_positions: int = 20_000, seed: int = 7,
                       as_of: datetime = DEMO_AS_OF, chunk: int = DATASET_CHUNK,
                       progress: Callable[[str], None] | None = None) -> dict[str, Path]:
    """The demo book with its positions as a partitioned Parquet dataset, generated ``chunk``
    positions at a time (so 10^8 positions never sit in memory at once).

    ``book_dir/positions/underlying=<U>/part-<k>.parquet`` holds the positions of underlying U of
    chunk k (zstd); the other three tables are written beside it as in :func:`write_demo_book`.
    The rows of chunk k are those of ``make_demo_book(chunk, seed_k)`` (chunk 0: ``seed``; the last
    chunk smaller), so a book of one chunk holds exactly the positions of
    ``make_demo_book(n_positions, seed)``, grouped by underlying. Files are written atomically (a
    temporary name, then renamed); the same arguments give byte-identical files. Returns the
    paths of the three tables and of the positions folder. ``progress("demo")`` is called once
    every chunk is written, then ``progress("write")``.
    """
    import pyarrow.compute as pc

    n = int(n_positions)
    if n < 0:
        raise ValueError(f"n_positions must be >= 0, got {n_positions}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    book_dir = Path(book_dir)
    folder = book_dir / "positions"
    folder.mkdir(parents=True, exist_ok=True)
    u = _Universe(_as_utc(as_of))
    tables = {"instruments": u.instruments(), "underlyings": u.underlyings(), "quotes": u.quotes()}
    und_of_inst = u.und_idx
    n_chunks = max(1, -(-n // chunk))
    width = max(5, len(str(n_chunks - 1)))
    written: set[Path] = set()
    for k in range(n_chunks):
        m = min(chunk, n - k * chunk)
        pos = _position_arrays(u, m, _chunk_seed(int(seed), k))
        table = _positions_table(u, pos)
        und = und_of_inst[pos["inst"]]
        del pos
        for ui, name in enumerate(_UNDERLYINGS):
            rows = np.flatnonzero(und == ui)
            if rows.size == 0:
                continue
            part = folder / f"underlying={name}"
            part.mkdir(exist_ok=True)
            path = part / f"part-{k:0{width}d}.parquet"
            _write_table(pc.take(table, pa.array(rows)), path, "parquet")
            written.add(path)
        del table, und
    for old in folder.glob("underlying=*/part-*.parquet"):  # parts of an earlier, larger demo book
        if old not in written:
            old.unlink()
    if progress:
        progress("demo")
    paths: dict[str, Path] = {}
    for name in ("instruments", "underlyings", "quotes"):
        path = book_dir / f"{name}.parquet"
        _write_table(tables[name], path, "parquet")
        paths[name] = path
    paths["positions"] = folder
    if progress:
        progress("write")
    return paths


def demo_universe_summary(tables: Mapping[str, pa.Table],
                          as_of: datetime | None = None) -> dict[str, Any]:
    """Counts of a book's universe, for logs and the README.

    Instruments by kind, by ``kind/settlement`` (options also split by call/put) and by underlying;
    positions by kind, underlying and desk; distinct expiries; and, when ``as_of`` is given, the
    options (and positions in them) expired at ``as_of``.
    """
    inst = tables["instruments"]
    pos = tables["positions"]
    kinds = inst.column("kind").to_pylist()
    settles = inst.column("settlement").to_pylist()
    otypes = inst.column("option_type").to_pylist()
    unds = inst.column("underlying").to_pylist()
    names = inst.column("instrument").to_pylist()
    expiries = inst.column("expiry").to_pylist()
    by_ks = Counter(f"{k}/{s}" + (f"/{o}" if o else "") for k, s, o in zip(kinds, settles, otypes))
    out: dict[str, Any] = {
        "n_instruments": inst.num_rows,
        "n_positions": pos.num_rows,
        "n_underlyings": tables["underlyings"].num_rows,
        "n_quotes": tables["quotes"].num_rows,
        "instruments_by_kind": dict(sorted(Counter(kinds).items())),
        "instruments_by_kind_settlement": dict(sorted(by_ks.items())),
        "instruments_by_underlying": dict(sorted(Counter(unds).items())),
        "n_expiries": len({e for e in expiries if e is not None}),
    }
    # per position counts through the instrument index (vectorised: value_counts then map)
    vc = pos.column("instrument").value_counts()
    held = dict(zip(vc.field("values").to_pylist(), vc.field("counts").to_pylist()))
    kind_of = dict(zip(names, kinds))
    und_of = dict(zip(names, unds))
    pk: Counter[str] = Counter()
    pu: Counter[str] = Counter()
    for name, cnt in held.items():
        pk[kind_of.get(name, "unknown")] += cnt
        pu[und_of.get(name, "unknown")] += cnt
    out["positions_by_kind"] = dict(sorted(pk.items()))
    out["positions_by_underlying"] = dict(sorted(pu.items()))
    if "desk" in pos.column_names:
        dvc = pos.column("desk").value_counts()
        out["positions_by_desk"] = dict(sorted(zip(dvc.field("values").to_pylist(),
                                                   dvc.field("counts").to_pylist())))
        for tag in ("book", "account"):
            if tag in pos.column_names:
                out[f"n_{tag}s"] = len(pos.column(tag).unique())
    if as_of is not None:
        cut = _as_utc(as_of)
        expired = {n for n, k, e in zip(names, kinds, expiries)
                   if k == "option" and e is not None and e <= cut}
        out["expired_options"] = len(expired)
        out["positions_in_expired_options"] = sum(held.get(n, 0) for n in expired)
    return out
