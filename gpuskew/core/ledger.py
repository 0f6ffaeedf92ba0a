"""Position keeping: fills change a book's positions (DESIGN section 4).

A position is the key (instrument, tag values). A fill adds its signed quantity (contracts, + buys)
to the position of its key, creating the position if there is none. Entry price (average cost):

* a fill that opens a position, or adds to it on the same side, averages the prices:
  arithmetically for linear contracts, ``entry = (q0 p0 + dq p) / (q0 + dq)``, and harmonically for
  inverse ones (their P&L is linear in 1/price), ``entry = (q0 + dq) / (q0 / p0 + dq / p)``;
  a position held without an entry price keeps none when added to;
* a fill that reduces the position keeps the entry;
* a fill that crosses zero takes the fill price for what remains;
* a position that reaches zero is removed; options and futures drop out at expiry
  (:meth:`PositionLedger.expire`).

Order: the book's rows keep their order; a new key is appended after them, in the order of its
first fill; a removed position leaves no gap (:meth:`PositionLedger.to_table`). The same sequence of
fills on the same book gives the same table, so a monitor's snapshot and a backtest step see the
same positions in the same order (which fixes the order of every group sum).

Several rows of a book may share a key (a book is not required to be netted): fills go to the first
of them. Tags absent from a fill are null.

Cost: a ledger built from a table keeps that table; :meth:`PositionLedger.to_table` takes its live
rows with Arrow (``take``) and builds only the rows fills appended from Python values, so a step
with a few fills on a large book costs a few array passes, not a Python loop over every row.
Between batches of fills, :meth:`PositionLedger.settle` points each key at its first live row (what
:meth:`PositionLedger.compact` gives) without renumbering the rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

#: what a fill did to its position
OPENED, ADDED, REDUCED, CLOSED, FLIPPED = "opened", "added", "reduced", "closed", "flipped"


def averaged_entry(q0: float, p0: float, dq: float, p: float, inverse: bool) -> float:
    """Entry price after adding ``dq`` contracts at ``p`` to ``q0`` held at ``p0`` (same side;
    USD): arithmetic mean weighted by contracts for linear contracts, harmonic for inverse ones.
    ``p0`` NaN (no entry price) gives NaN."""
    if inverse:
        return (q0 + dq) / (q0 / p0 + dq / p)
    return (q0 * p0 + dq * p) / (q0 + dq)


@dataclass(frozen=True)
class FillOutcome:
    """Result of one fill: the row it touched (in the ledger's current numbering) and what it did."""

    row: int
    action: str
    quantity: float
    entry_price: float


class PositionLedger:
    """Mutable positions of a book: quantities and entry prices per key (see the module docstring).

    ``tags``: the tag columns, in order. Rows are addressed by index; removed rows stay in the arrays
    (``alive`` False) until :meth:`compact` (:meth:`to_table` leaves them out).
    """

    def __init__(self, tags: Sequence[str] = ()):
        self.tags: tuple[str, ...] = tuple(tags)
        self.instrument: list[str] = []
        self.tag_values: list[tuple] = []
        self.quantity = np.zeros(0)
        self.entry = np.zeros(0)  #: NaN = no entry price
        self.alive = np.zeros(0, dtype=bool)
        self._index: dict[tuple, int] = {}
        # for settle(), only when rows 0.._n_indexed-1 repeat a key (a book that is not netted):
        # the rows removed since the last settle; per key, the rows appended since the index was
        # built and one of its rows below _n_indexed (-1: none); built on first need, the rows
        # below _n_indexed sorted by key (the first row of their key) to find a key's rows
        self._dups = False
        self._n_indexed = 0
        self._removed: list[int] = []
        self._appended: dict[tuple, list[int]] = {}
        self._anchor: dict[tuple, int] = {}
        self._groups: tuple[np.ndarray, np.ndarray] | None = None  #: (first row of the key, argsort)
        #: instrument and tag columns (their Arrow types) of the table rows 0.._n_base-1 came from
        self._base: pa.Table | None = None
        self._n_base = 0
        self._n = 0

    # -- construction ------------------------------------------------------------------------
    @classmethod
    def from_table(cls, positions: pa.Table, tags: Sequence[str]) -> PositionLedger:
        """A ledger holding a validated positions table (``instrument``, ``quantity``, optional
        ``entry_price``, the ``tags`` columns)."""
        ledger = cls(tags)
        n = positions.num_rows
        ledger.instrument = positions.column("instrument").to_pylist()
        cols = [positions.column(t).to_pylist() for t in ledger.tags]
        ledger.tag_values = list(zip(*cols)) if cols else [()] * n
        ledger.quantity = positions.column("quantity").to_numpy(zero_copy_only=False).astype(np.float64).copy()
        if "entry_price" in positions.column_names:
            ledger.entry = positions.column("entry_price").fill_null(math.nan).to_numpy(
                zero_copy_only=False).astype(np.float64).copy()
        else:
            ledger.entry = np.full(n, math.nan)
        ledger.alive = np.ones(n, dtype=bool)
        ledger._n = n
        ledger._base = positions.select(["instrument", *ledger.tags])
        ledger._n_base = n
        ledger._build_index()
        return ledger

    def _build_index(self) -> None:
        """Each key to its first row (all rows alive)."""
        keys = zip(reversed(self.instrument[: self._n]), reversed(self.tag_values[: self._n]))
        self._index = dict(zip(keys, range(self._n - 1, -1, -1)))  # the first row of a key wins
        self._dups = len(self._index) < self._n
        self._n_indexed = self._n
        self._removed, self._appended, self._anchor, self._groups = [], {}, {}, None

    def __len__(self) -> int:
        """Live positions."""
        return int(self.alive[: self._n].sum())

    @property
    def n_rows(self) -> int:
        """Rows, removed ones included (until :meth:`compact`)."""
        return self._n

    def _grow(self) -> None:
        cap = max(16, 2 * self.quantity.shape[0])
        for name, fill in (("quantity", 0.0), ("entry", math.nan), ("alive", False)):
            old = getattr(self, name)
            new = np.full(cap, fill, dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def key(self, instrument: str, tags: Mapping[str, str | None] | None = None) -> tuple:
        tags = tags or {}
        return (instrument, tuple(None if tags.get(t) is None else str(tags.get(t)) for t in self.tags))

    def row_of(self, instrument: str, tags: Mapping[str, str | None] | None = None) -> int | None:
        """The live row of a key, or None."""
        i = self._index.get(self.key(instrument, tags))
        return i if i is not None and self.alive[i] else None

    # -- fills ---------------------------------------------------------------------------------
    def apply(self, instrument: str, quantity: float, price: float,
              tags: Mapping[str, str | None] | None = None, inverse: bool = False) -> FillOutcome:
        """Apply one fill: ``quantity`` contracts (signed, + buys) at ``price`` (USD, > 0) to the
        position of (instrument, tags); ``inverse`` selects the harmonic average."""
        if not (math.isfinite(quantity) and quantity != 0.0 and math.isfinite(price) and price > 0):
            raise ValueError(f"a fill needs a finite, nonzero quantity and a finite price > 0, "
                             f"got {quantity!r} at {price!r}")
        k = self.key(instrument, tags)
        i = self._index.get(k)
        if i is None or not self.alive[i]:
            if self._n == self.quantity.shape[0]:
                self._grow()
            i = self._n
            self._n += 1
            self.instrument.append(k[0])
            self.tag_values.append(k[1])
            if self._dups:
                if k not in self._appended:
                    old = self._index.get(k, -1)
                    self._anchor[k] = old if old < self._n_indexed else -1
                self._appended.setdefault(k, []).append(i)
            self._index[k] = i
            self.quantity[i] = quantity
            self.entry[i] = price
            self.alive[i] = True
            return FillOutcome(i, OPENED, quantity, price)
        q0 = float(self.quantity[i])
        p0 = float(self.entry[i])
        q1 = q0 + quantity
        if q0 * quantity > 0:
            action, entry = ADDED, (price if q0 == 0.0 else averaged_entry(q0, p0, quantity, price, inverse))
        elif q1 == 0.0:
            action, entry = CLOSED, p0
        elif q0 * q1 > 0:
            action, entry = REDUCED, p0
        else:
            action, entry = FLIPPED, price
        self.quantity[i] = q1
        self.entry[i] = entry
        if q1 == 0.0:
            self.alive[i] = False
            if self._dups:
                self._removed.append(i)
        return FillOutcome(i, action, q1, entry)

    def expire(self, instruments: Sequence[str]) -> int:
        """Remove every live position on these (expired) instruments; returns how many."""
        names = set(instruments)
        n = 0
        for i in range(self._n):
            if self.alive[i] and self.instrument[i] in names:
                self.alive[i] = False
                if self._dups:
                    self._removed.append(i)
                n += 1
        return n

    # -- output ----------------------------------------------------------------------------------
    def settle(self) -> None:
        """Point every key at its first live row, as :meth:`compact` would, without renumbering:
        what a batch of fills ends with (a later fill on a key of several rows goes to the first
        one still held). Costs the keys whose rows were removed since the last call; nothing at all
        for a netted book (a key has at most one live row there, and the index points at it)."""
        if not self._removed:
            return
        if self._groups is None:
            m = self._n_indexed
            keys = list(zip(self.instrument[:m], self.tag_values[:m]))
            firsts = dict(zip(reversed(keys), range(m - 1, -1, -1)))
            first = np.fromiter((firsts[k] for k in keys), dtype=np.int64, count=m)
            order = np.argsort(first, kind="stable")
            self._groups = (first, order)
        first, order = self._groups
        done: set[tuple] = set()
        for r in self._removed:
            k = (self.instrument[r], self.tag_values[r])
            if k in done:
                continue
            done.add(k)
            anchor = r if r < self._n_indexed else self._anchor.get(k, -1)
            rows: list[int] = []
            if anchor >= 0:
                f = first[anchor]
                lo, hi = np.searchsorted(first, [f, f + 1], sorter=order)
                rows = order[lo:hi].tolist()
            rows += self._appended.get(k, [])
            live = next((i for i in rows if self.alive[i]), None)
            if live is not None:
                self._index[k] = live
        self._removed = []

    def compact(self) -> np.ndarray:
        """Drop removed rows (order of the others kept); returns the old row index of each new row."""
        keep = np.flatnonzero(self.alive[: self._n])
        if keep.size == self._n:
            self.settle()
            return keep
        self.instrument = [self.instrument[i] for i in keep]
        self.tag_values = [self.tag_values[i] for i in keep]
        self.quantity = self.quantity[keep].copy()
        self.entry = self.entry[keep].copy()
        self.alive = np.ones(keep.size, dtype=bool)
        base_keep = keep[keep < self._n_base]
        if self._base is not None:
            self._base = self._base.take(pa.array(base_keep, pa.int64()))
        self._n_base = int(base_keep.size)
        self._n = int(keep.size)
        self._build_index()
        return keep

    def to_table(self) -> pa.Table:
        """The live positions as a positions table: instrument, quantity, entry_price (null where
        none), then the tag columns (rows from the source table keep its column types; a
        dictionary tag column stays one dictionary-encoded chunk)."""
        keep = np.flatnonzero(self.alive[: self._n])
        entry = self.entry[keep]
        split = int(np.searchsorted(keep, self._n_base))
        new_rows = keep[split:]
        names = ["instrument", *self.tags]
        new_values = [[self.instrument[i] for i in new_rows],
                      *([self.tag_values[i][j] for i in new_rows] for j in range(len(self.tags)))]
        ids: dict[str, pa.ChunkedArray] = {}
        if self._base is None:
            for name, values in zip(names, new_values):
                ids[name] = pa.chunked_array([pa.array(values, pa.string())])
        else:
            base = self._base if split == self._n_base else self._base.take(pa.array(keep[:split], pa.int64()))
            for name, values in zip(names, new_values):
                col = base.column(name)
                if values:
                    col = pa.chunked_array([*col.chunks, pa.array(values, pa.string()).cast(col.type)], col.type)
                ids[name] = col
        cols: dict[str, Any] = {
            "instrument": ids["instrument"],
            "quantity": pa.array(self.quantity[keep], pa.float64()),
            "entry_price": pa.array(entry, pa.float64(), mask=np.isnan(entry)),
        }
        for t in self.tags:
            cols[t] = ids[t]
        table = pa.table(cols)
        if any(pa.types.is_dictionary(f.type) for f in table.schema):
            table = table.unify_dictionaries()
        return table.combine_chunks()


__all__ = ["PositionLedger", "FillOutcome", "averaged_entry", "OPENED", "ADDED", "REDUCED", "CLOSED", "FLIPPED"]
