"""Small books, policies and markets for the backtest tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pyarrow as pa

import gpuskew

AS_OF = datetime(2026, 11, 20, 8, 0, tzinfo=timezone.utc)
OPTION = "BTC_USDC-20DEC26-100000-C"
PERP = "BTC_USDC-PERPETUAL"


def bs_tables(quantity: float = -100.0, vol: float = 0.6, spot: float = 100_000.0, funding: float = 0.0,
              expiry_days: float = 30.0, strike: float = 100_000.0, extra_positions: list | None = None) -> dict:
    """A Black-Scholes world: one linear (USDC-settled) call on BTC, r = 0, flat vol."""
    expiry = AS_OF + timedelta(days=expiry_days)
    instruments = pa.table({
        "instrument": [OPTION, PERP, "BTC"],
        "underlying": ["BTC", "BTC", "BTC"],
        "kind": ["option", "perpetual", "spot"],
        "settlement": ["linear", "linear", "linear"],
        "option_type": ["call", None, None],
        "strike": pa.array([strike, None, None], pa.float64()),
        "expiry": pa.array([expiry, None, None], pa.timestamp("us", tz="UTC")),
        "contract_size": [1.0, 0.001, 1.0],
    })
    rows = [(OPTION, quantity, "opt")] + list(extra_positions or [])
    positions = pa.table({"instrument": [r[0] for r in rows], "quantity": pa.array([r[1] for r in rows], pa.float64()),
                          "desk": [r[2] for r in rows]})
    underlyings = pa.table({"underlying": ["BTC"], "spot": [spot], "rate": [0.0], "vol": [vol],
                            "funding_rate": [funding]})
    quotes = pa.table({"instrument": [OPTION], "iv": [vol], "forward": pa.array([None], pa.float64())})
    return {"instruments": instruments, "positions": positions, "underlyings": underlyings, "quotes": quotes}


def bs_book(**kw) -> gpuskew.Book:
    return gpuskew.load_book(bs_tables(**kw))


def hedge_entry(kind: str = "spot", fee: float = 0.0, half_spread: float = 0.0, lot_size: float = 1e-9,
                impact: float = 0.0) -> dict:
    name = "BTC" if kind == "spot" else PERP
    return {"instrument": name, "fee": fee, "half_spread": half_spread, "impact": impact,
            "lot_size": lot_size if kind == "spot" else max(lot_size, 1.0)}


def policies(band, hedge: dict | None = None, kind: str = "spot", **costs) -> dict:
    """A policies mapping: one band (or a list: an axis) on every group, hedged with spot or the
    linear perpetual."""
    return {"defaults": {"band": band, "hedge": hedge or {"mode": "to_target"}},
            "hedge_instrument": [hedge_entry(kind, **costs)]}


def gbm_market(book, steps: int, step_seconds: float, paths: int, seed: int = 1, vol: float = 0.6, **extra):
    from gpuskew.synthetic.markets import synthetic_market

    cfg = {"market": {"steps": steps, "step_seconds": step_seconds, "paths": paths, "seed": seed},
           "underlying": {"BTC": {"model": "gbm", "vol": vol, **extra}}}
    market, _ = synthetic_market(cfg, book, AS_OF)
    return market
