"""Intraday simulation of the demo book: a drifting market and trading that moves the inventory.

``gpuskew run --demo --demo-steps N`` runs N steps of one :class:`gpuskew.session.Session` on it,
``interval_minutes`` apart, so that the adherence report has something real to show out of the
box. The book stays resident: each step only brings a :class:`~gpuskew.session.MarketUpdate` and
fills (:mod:`gpuskew.core.ledger` keeps the positions):

* market: every underlying's index price follows a driftless geometric Brownian motion with its own
  vol (S <- S exp(sigma sqrt(dt) Z - sigma^2 dt / 2), dt in ACT/365 years), scaled up by
  ``vol_scale`` so that a few hours show moves a risk manager would watch; forwards and perpetual
  marks move with S; implied vols take small random steps;
* client flow: a few per cent of the option positions trade (fills at the Black-76 value per coin,
  :func:`gpuskew.kernels.black76.black76`), and now and then a block trade leans one way, pushing a
  desk's delta out of its band;
* the desk reacts with a lag: the hedges proposed at one step are filled at the next with
  probability ``hedge_fill_probability`` (fills in the hedge instrument at its mark, tagged like the
  group's first position on the underlying); :attr:`executions` records them (the report's
  "executed" column).

Everything is seeded: the same arguments give the same path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.schema import SECONDS_PER_YEAR


@dataclass
class DemoSimulation:
    """Market moves and fills for a resident demo book; see the module docstring."""

    start: datetime
    seed: int = 7
    interval_minutes: float = 15.0
    vol_scale: float = 3.0
    flow_fraction: float = 0.03
    block_probability: float = 0.25
    hedge_fill_probability: float = 0.7
    step_index: int = 0
    #: hedge fills of the last step: level, underlying, tags, hedge_instrument, contracts, coin_delta
    executions: pa.Table | None = None
    _rng: np.random.Generator = field(init=False, repr=False)
    _pending: list = field(default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    @property
    def as_of(self) -> datetime:
        return self.start + timedelta(minutes=self.interval_minutes * self.step_index)

    def advance(self, book) -> tuple[datetime, object, pa.Table | None]:
        """Move the clock one interval: ``(as_of, market update, fills)`` for the next step of a
        Session holding ``book`` (the market moves, the client flow and the hedges the desk fills)."""
        from gpuskew.session import MarketUpdate

        self.step_index += 1
        underlyings, quotes, ratio = self._move_market(book)
        fills = [self._client_flow(book, quotes), self._hedge_fills(book, quotes)]
        fills = [f for f in fills if f is not None and f.num_rows]
        table = pa.concat_tables(fills, promote_options="default") if fills else None
        return self.as_of, MarketUpdate(underlyings=underlyings, quotes=quotes), table

    # -- market ------------------------------------------------------------------------------------
    def _move_market(self, book) -> tuple[pa.Table, pa.Table, np.ndarray]:
        und = book.underlyings
        dt = self.interval_minutes * 60.0 / SECONDS_PER_YEAR
        vol = und["vol"].fill_null(0.0).to_numpy() * self.vol_scale
        z = self._rng.standard_normal(und.num_rows)
        ratio = np.exp(vol * math.sqrt(dt) * z - 0.5 * vol * vol * dt)
        spot = und["spot"].to_numpy() * ratio
        underlyings = pa.table({"underlying": und["underlying"], "spot": pa.array(spot)})
        inst, quotes = book.instruments, book.quotes
        q_und = pc.take(inst["underlying"], pc.index_in(quotes["instrument"], value_set=inst["instrument"]))
        q_ratio = ratio[pc.index_in(q_und, value_set=und["underlying"]).to_numpy()]
        fwd = pc.multiply(quotes["forward"], pa.array(q_ratio))
        iv = quotes["iv"].to_numpy(zero_copy_only=False)
        iv = np.where(np.isnan(iv), np.nan, np.clip(iv * np.exp(0.01 * self._rng.standard_normal(iv.size)), 0.05, 5))
        new_quotes = pa.table({"instrument": quotes["instrument"], "iv": pa.array(iv, from_pandas=True),
                               "forward": fwd})
        return underlyings, new_quotes, ratio

    # -- client flow ---------------------------------------------------------------------------------
    def _option_prices(self, book, quotes: pa.Table, rows: np.ndarray) -> np.ndarray:
        """Black-76 value per coin (USD) of the option positions ``rows``, at the new quotes
        (``kernels.cpu.position_values`` of one coin, r = 0; T at least 1e-6 years; the index price
        without a forward quote, vol 0.5 without an iv); at least F * 1e-4."""
        from gpuskew.kernels import cpu, instruments as ki
        from gpuskew.timeutil import to_micros

        inst = book.instruments
        names = book.positions["instrument"].take(pa.array(rows))
        i = pc.index_in(names, value_set=inst["instrument"]).to_numpy()
        n = rows.size
        cp = np.where(pc.equal(inst["option_type"].take(pa.array(i)), "call").fill_null(False)
                      .to_numpy(zero_copy_only=False), ki.CALL, ki.PUT).astype(np.int8)
        strike = inst["strike"].take(pa.array(i)).fill_null(0.0).to_numpy(zero_copy_only=False).astype(np.float64)
        expiry = inst["expiry"].take(pa.array(i)).cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
        T = np.maximum((expiry.to_numpy(zero_copy_only=False) - to_micros(self.as_of)) / 1e6 / SECONDS_PER_YEAR, 1e-6)
        q = pc.index_in(names, value_set=quotes["instrument"])
        iv = pc.take(quotes["iv"], q).to_numpy(zero_copy_only=False)
        fwd = pc.take(quotes["forward"], q).to_numpy(zero_copy_only=False)
        und = book.underlyings
        spot = und["spot"].to_numpy()[pc.index_in(inst["underlying"].take(pa.array(i)),
                                                  value_set=und["underlying"]).to_numpy()]
        # a missing or zero quote takes the default (nulls read as NaN)
        F = np.where(np.isnan(fwd) | (fwd == 0), spot, fwd).astype(np.float64)
        vol = np.where(np.isnan(iv) | (iv == 0), 0.5, iv).astype(np.float64)
        out = np.empty(n)
        cpu.position_values(np.full(n, ki.KIND_OPTION, np.int8), np.full(n, ki.SETTLE_LINEAR, np.int8), cp,
                            np.ones(n), np.ones(n), strike, T, spot, F, np.zeros(n), vol, np.zeros(n), out)
        return np.maximum(out, F * 1e-4)

    def _client_flow(self, book, quotes: pa.Table) -> pa.Table | None:
        pos = book.positions
        kind = pc.take(book.instruments["kind"], pc.index_in(pos["instrument"], value_set=book.instruments["instrument"]))
        options = np.flatnonzero(pc.equal(kind, "option").to_numpy(zero_copy_only=False))
        if not options.size:
            return None
        picked = self._rng.choice(options, size=max(1, int(self.flow_fraction * options.size)), replace=False)
        dq = np.round(self._rng.normal(0, 2.0, picked.size), 1)
        rows, qty = [picked], [dq]
        if self._rng.random() < self.block_probability and "desk" in pos.column_names:
            desk = pos["desk"][int(self._rng.choice(options))].as_py()
            on_desk = pc.equal(pos["desk"], desk).to_numpy(zero_copy_only=False)
            same = options[on_desk[options]]
            block = self._rng.choice(same, size=max(1, same.size // 20), replace=False)
            rows.append(block)
            qty.append(self._rng.choice([-1.0, 1.0]) * np.round(self._rng.uniform(5, 40, block.size), 1))
        rows_a, qty_a = np.concatenate(rows), np.concatenate(qty)
        keep = qty_a != 0
        rows_a, qty_a = rows_a[keep], qty_a[keep]
        if not rows_a.size:
            return None
        fills = pos.take(pa.array(rows_a)).drop_columns([c for c in ("quantity", "entry_price") if c in pos.column_names])
        fills = fills.append_column("quantity", pa.array(qty_a)).append_column(
            "price", pa.array(self._option_prices(book, quotes, rows_a)))
        return fills

    # -- the desk's reaction ---------------------------------------------------------------------------
    def propose(self, hedges: pa.Table | None) -> None:
        """Remember this step's proposed hedges: the desk fills them at the next step."""
        self._pending = [] if hedges is None or hedges.num_rows == 0 else hedges.to_pylist()

    def _hedge_fills(self, book, quotes: pa.Table) -> pa.Table | None:
        """Fill each pending hedge of the coarsest tag level with probability
        ``hedge_fill_probability``."""
        from gpuskew.io.validate import tag_columns

        pending, self._pending = self._pending, []
        self.executions = None
        levels = [lv for lv in {h["level"] for h in pending} if lv != "underlying"]
        if not levels:
            return None
        coarsest = min(levels, key=lambda lv: (lv.count(","), lv))
        pos = book.positions
        tags = tag_columns(pos)
        marks = dict(zip(quotes["instrument"].to_pylist(), quotes["forward"].to_pylist()))
        spots = dict(zip(book.underlyings["underlying"].to_pylist(), book.underlyings["spot"].to_pylist()))
        pos_und = pc.take(book.instruments["underlying"], pc.index_in(pos["instrument"],
                                                                      value_set=book.instruments["instrument"]))
        rows, executed = [], []
        for h in pending:
            if h["level"] != coarsest or self._rng.random() >= self.hedge_fill_probability or not h.get("contracts"):
                continue
            mask = pc.equal(pos_und, h["underlying"])
            for tag in tags:
                if h.get(tag) is not None:
                    mask = pc.and_(mask, pc.equal(pos[tag], h[tag]))
            first = pos.filter(mask).slice(0, 1).to_pylist()
            row = {tag: (first[0][tag] if first else h.get(tag)) for tag in tags}
            price = marks.get(h["hedge_instrument"]) or spots.get(h["underlying"])
            row.update(instrument=h["hedge_instrument"], quantity=float(h["contracts"]), price=float(price))
            rows.append(row)
            executed.append({"level": h["level"], "underlying": h["underlying"],
                             **{t: h.get(t) for t in tags if t in h}, "hedge_instrument": h["hedge_instrument"],
                             "contracts": float(h["contracts"]), "coin_delta": float(h["coin_delta"])})
        if not rows:
            return None
        self.executions = pa.Table.from_pylist(executed)
        schema = pa.schema([pa.field(t, pa.string()) for t in tags]
                           + [pa.field("instrument", pa.string()), pa.field("quantity", pa.float64()),
                              pa.field("price", pa.float64())])
        return pa.Table.from_pylist(rows, schema=schema)
