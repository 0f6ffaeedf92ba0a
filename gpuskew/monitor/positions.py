"""Live positions: the book's :class:`~gpuskew.core.ledger.PositionLedger` plus, per ledger row, the
index of its instrument in the :class:`~gpuskew.monitor.registry.Registry`.

Rows keep the ledger's numbering (removed rows stay until :meth:`LivePositions.compact`), so the
live rows, in row order, are exactly the rows of ``ledger.to_table()``: the order ``gpuskew run``
sums positions in on the monitor's snapshot book. ``version`` changes whenever the set of live rows
changes (a position opened, closed or expired): group codes and reduction plans depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pyarrow as pa

from gpuskew.core.ledger import CLOSED, FillOutcome, PositionLedger
from gpuskew.monitor.registry import Registry


class LivePositions:
    """Positions keyed by (instrument, tag values); see the module docstring."""

    def __init__(self, positions: pa.Table, tags: Sequence[str], registry: Registry):
        self.ledger = PositionLedger.from_table(positions, tags)
        self.tags: tuple[str, ...] = tuple(tags)
        self.registry = registry
        names = self.ledger.instrument
        self.inst = np.fromiter((registry.inst_index[n] for n in names), dtype=np.int32, count=len(names))
        self.version = 0

    @property
    def n_rows(self) -> int:
        return self.ledger.n_rows

    def alive(self) -> np.ndarray:
        """Boolean per row: the position is held."""
        return self.ledger.alive[: self.ledger.n_rows]

    def apply_fill(self, inst: int, quantity: float, price: float, tags: Mapping[str, str | None],
                   inverse: bool) -> FillOutcome:
        """Apply a fill to the position of (instrument ``inst``, ``tags``)."""
        n_before = self.ledger.n_rows
        outcome = self.ledger.apply(self.registry.inst_names[inst], quantity, price, tags, inverse)
        if outcome.row >= n_before:  # a new row
            if self.inst.shape[0] <= outcome.row:
                new = np.zeros(max(16, 2 * self.inst.shape[0], outcome.row + 1), np.int32)
                new[: self.inst.shape[0]] = self.inst
                self.inst = new
            self.inst[outcome.row] = inst
            self.version += 1
        elif outcome.action == CLOSED:
            self.version += 1
        return outcome

    def expire(self, instruments: np.ndarray) -> int:
        """Remove every live position on these instrument indices; returns how many."""
        n = self.ledger.n_rows
        hit = self.alive() & np.isin(self.inst[:n], instruments)
        if not hit.any():
            return 0
        names = sorted({self.registry.inst_names[i] for i in np.unique(self.inst[:n][hit])})
        removed = self.ledger.expire(names)
        self.version += 1
        return removed

    def quantity(self, rows: np.ndarray) -> np.ndarray:
        return self.ledger.quantity[rows]

    def entry(self, rows: np.ndarray) -> np.ndarray:
        """Entry prices as the kernel reads them (0 = none)."""
        e = self.ledger.entry[rows]
        return np.where(np.isnan(e), 0.0, e)

    def tag_values(self, row: int) -> tuple:
        return self.ledger.tag_values[row]

    def compact(self) -> np.ndarray:
        """Drop removed rows (see :meth:`PositionLedger.compact`); returns the old row of each new row."""
        keep = self.ledger.compact()
        self.inst = self.inst[keep].copy()
        self.version += 1
        return keep

    def table(self, rows: np.ndarray | None = None) -> pa.Table:
        """A positions table of ``rows`` (default: every live row), in row order: instrument,
        quantity, entry_price (null where none), then the tags."""
        if rows is None:
            rows = np.flatnonzero(self.alive())
        led = self.ledger
        entry = led.entry[rows]
        cols: dict[str, pa.Array] = {
            "instrument": pa.array([led.instrument[i] for i in rows], pa.string()),
            "quantity": pa.array(led.quantity[rows], pa.float64()),
            "entry_price": pa.array(entry, pa.float64(), mask=np.isnan(entry)),
        }
        for j, t in enumerate(self.tags):
            cols[t] = pa.array([led.tag_values[i][j] for i in rows], pa.string())
        return pa.table(cols)


__all__ = ["LivePositions"]
