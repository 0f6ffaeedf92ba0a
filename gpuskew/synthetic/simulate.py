"""Intraday simulation of the demo book: a drifting market and trading that moves the inventory.

``gpuskew run --demo --demo-steps N --history DIR`` runs N intraday risk runs on it, so that the
adherence report has something real to show out of the box. Each step, ``interval_minutes`` apart:

* market: every underlying's index price follows a driftless geometric Brownian motion with its own
  vol (S <- S exp(sigma sqrt(dt) Z - sigma^2 dt / 2), dt in ACT/365 years), scaled up by
  ``vol_scale`` so that a few hours show moves a risk manager would watch; forwards and perpetual
  marks move with S; implied vols take small random steps;
* client flow: a few per cent of the option positions trade (quantities change), and now and then a
  block trade leans one way, pushing a desk's delta out of its band;
* the desk reacts with a lag: the hedges proposed at one step are executed at the next with
  probability ``hedge_fill_probability`` (as new positions in the hedge instrument, at its mark).

Everything is seeded: the same arguments give the same path.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.schema import SECONDS_PER_YEAR


@dataclass
class DemoSimulation:
    """A mutable demo book stepped through time; see the module docstring."""

    tables: dict[str, pa.Table]
    start: datetime
    seed: int = 7
    interval_minutes: float = 15.0
    vol_scale: float = 3.0
    flow_fraction: float = 0.03
    block_probability: float = 0.25
    hedge_fill_probability: float = 0.7
    step_index: int = 0
    _rng: np.random.Generator = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)
        self.tables = dict(self.tables)

    @property
    def as_of(self) -> datetime:
        return self.start + timedelta(minutes=self.interval_minutes * self.step_index)

    def steps(self, n_steps: int) -> Iterator[tuple[datetime, dict[str, pa.Table]]]:
        """Yield (as_of, tables) for ``n_steps`` runs; the first is the book as given."""
        for k in range(n_steps):
            if k:
                self.advance()
            yield self.as_of, dict(self.tables)

    # -- one step -----------------------------------------------------------------------------
    def advance(self) -> None:
        """Move the clock one interval: market moves, then client flow."""
        self.step_index += 1
        self._move_market()
        self._client_flow()

    def _move_market(self) -> None:
        und = self.tables["underlyings"]
        dt = self.interval_minutes * 60.0 / SECONDS_PER_YEAR
        vol = und["vol"].fill_null(0.0).to_numpy() * self.vol_scale
        z = self._rng.standard_normal(und.num_rows)
        ratio = np.exp(vol * math.sqrt(dt) * z - 0.5 * vol * vol * dt)
        spot = und["spot"].to_numpy() * ratio
        self.tables["underlyings"] = und.set_column(und.column_names.index("spot"), "spot", pa.array(spot))
        # forwards and marks move with their underlying; implied vols take small steps
        inst = self.tables["instruments"]
        quotes = self.tables["quotes"]
        q_und = pc.take(inst["underlying"], pc.index_in(quotes["instrument"], value_set=inst["instrument"]))
        q_ratio = ratio[pc.index_in(q_und, value_set=und["underlying"]).to_numpy()]
        fwd = pc.multiply(quotes["forward"], pa.array(q_ratio))
        iv = quotes["iv"].to_numpy(zero_copy_only=False)
        iv = np.where(np.isnan(iv), np.nan, np.clip(iv * np.exp(0.01 * self._rng.standard_normal(iv.size)), 0.05, 5))
        quotes = quotes.set_column(quotes.column_names.index("forward"), "forward", fwd)
        quotes = quotes.set_column(quotes.column_names.index("iv"), "iv", pa.array(iv, from_pandas=True))
        self.tables["quotes"] = quotes

    def _client_flow(self) -> None:
        pos = self.tables["positions"]
        kind = pc.take(self.tables["instruments"]["kind"],
                       pc.index_in(pos["instrument"], value_set=self.tables["instruments"]["instrument"]))
        is_option = pc.equal(kind, "option").to_numpy(zero_copy_only=False)
        qty = pos["quantity"].to_numpy().copy()
        options = np.flatnonzero(is_option)
        if options.size:
            picked = self._rng.choice(options, size=max(1, int(self.flow_fraction * options.size)), replace=False)
            qty[picked] += np.round(self._rng.normal(0, 2.0, picked.size), 1)
            if self._rng.random() < self.block_probability:
                desk = pos["desk"][int(self._rng.choice(options))].as_py() if "desk" in pos.column_names else None
                on_desk = None if desk is None else pc.equal(pos["desk"], desk).to_numpy(zero_copy_only=False)
                same = options if on_desk is None else options[on_desk[options]]
                block = self._rng.choice(same, size=max(1, same.size // 20), replace=False)
                qty[block] += self._rng.choice([-1.0, 1.0]) * np.round(self._rng.uniform(5, 40, block.size), 1)
        self.tables["positions"] = pos.set_column(pos.column_names.index("quantity"), "quantity", pa.array(qty))

    # -- the desk's reaction ---------------------------------------------------------------------
    def execute_hedges(self, hedges: pa.Table) -> int:
        """Fill each proposed hedge of the coarsest tag level with probability
        ``hedge_fill_probability``: a new position in the hedge instrument, at its mark, tagged like
        the group's first position on the same underlying. Returns the number of fills."""
        if hedges is None or hedges.num_rows == 0:
            return 0
        # proposals at different levels are alternatives: the desk acts on its coarsest level
        levels = [lv for lv in set(hedges["level"].to_pylist()) if lv != "underlying"]
        if not levels:
            return 0
        coarsest = min(levels, key=lambda lv: (lv.count(","), lv))
        hedges = hedges.filter(pc.equal(hedges["level"], coarsest))
        pos = self.tables["positions"]
        tags = [c for c in pos.column_names if c not in ("instrument", "quantity", "entry_price")
                and pa.types.is_string(pos.schema.field(c).type)]
        marks = dict(zip(self.tables["quotes"]["instrument"].to_pylist(),
                         self.tables["quotes"]["forward"].to_pylist()))
        spots = dict(zip(self.tables["underlyings"]["underlying"].to_pylist(),
                         self.tables["underlyings"]["spot"].to_pylist()))
        pos_underlying = pc.take(self.tables["instruments"]["underlying"],
                                 pc.index_in(pos["instrument"], value_set=self.tables["instruments"]["instrument"]))
        rows = []
        for h in hedges.to_pylist():
            if self._rng.random() >= self.hedge_fill_probability or not h.get("contracts"):
                continue
            mask = pc.equal(pos_underlying, h["underlying"])
            for tag in tags:
                if h.get(tag) is not None:
                    mask = pc.and_(mask, pc.equal(pos[tag], h[tag]))
            first = pos.filter(mask).slice(0, 1).to_pylist()
            row = {tag: (first[0][tag] if first else h.get(tag)) for tag in tags}
            price = marks.get(h["hedge_instrument"]) or spots.get(h["underlying"])
            row.update(instrument=h["hedge_instrument"], quantity=float(h["contracts"]), entry_price=price)
            rows.append(row)
        if rows:
            extra = pa.Table.from_pylist(rows, schema=pos.schema)
            self.tables["positions"] = pa.concat_tables([pos, extra])
        return len(rows)
