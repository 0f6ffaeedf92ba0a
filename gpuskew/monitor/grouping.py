"""Live group identity: per grouping level, a key id per position row, and the dense group codes
``gpuskew run`` would give the same positions.

A row's key at a level is (underlying, the level's tag values); it never changes (a row *is* an
instrument and its tags). :meth:`LiveGrouping.codes` turns the key ids of the priced rows into dense
codes ordered as :func:`gpuskew.core.groups.group_positions` orders groups: by underlying name,
then each tag's values sorted, null last; only combinations present get a code. With those codes
and the rows in ledger order, :func:`gpuskew.core.reduction.plan_segmented_sum` gives the same
plan, so the same sums bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpuskew.core.groups import Grouping


def _sort_key(key: tuple) -> tuple:
    """(underlying, tag values...) -> sort key: strings ascending, None last."""
    return (key[0],) + tuple((v is None, "" if v is None else v) for v in key[1:])


class LiveGrouping:
    """Key ids per row for each level (the per-underlying level ``()`` first)."""

    def __init__(self, levels: Sequence[tuple[str, ...]], tags: Sequence[str]):
        self.levels: list[tuple[str, ...]] = [()] + [tuple(lv) for lv in levels if lv]
        self._tag_pos = [[list(tags).index(t) for t in lv] for lv in self.levels]
        self._ids = [np.zeros(0, np.int32) for _ in self.levels]
        self._keys: list[list[tuple]] = [[] for _ in self.levels]
        self._index: list[dict[tuple, int]] = [{} for _ in self.levels]

    def assign(self, row: int, underlying: str, tag_values: tuple) -> None:
        """Record the keys of a new row (rows are assigned in increasing order)."""
        for k, pos in enumerate(self._tag_pos):
            key = (underlying,) + tuple(tag_values[p] for p in pos)
            kid = self._index[k].get(key)
            if kid is None:
                kid = len(self._keys[k])
                self._keys[k].append(key)
                self._index[k][key] = kid
            ids = self._ids[k]
            if ids.shape[0] <= row:
                new = np.zeros(max(16, 2 * ids.shape[0], row + 1), np.int32)
                new[: ids.shape[0]] = ids
                self._ids[k] = ids = new
            ids[row] = kid

    def assign_many(self, underlyings: Sequence[str], tag_values: Sequence[tuple]) -> None:
        """Keys of rows 0..n-1 at once (at start-up)."""
        n = len(underlyings)
        for k, pos in enumerate(self._tag_pos):
            index, keys = self._index[k], self._keys[k]
            ids = np.empty(max(n, 16), np.int32)
            for r in range(n):
                tv = tag_values[r]
                key = (underlyings[r],) + tuple(tv[p] for p in pos)
                kid = index.get(key)
                if kid is None:
                    kid = len(keys)
                    keys.append(key)
                    index[key] = kid
                ids[r] = kid
            self._ids[k] = ids

    def compact(self, keep: np.ndarray) -> None:
        """Renumber rows after :meth:`LivePositions.compact` (``keep``: old row of each new row)."""
        for k in range(len(self.levels)):
            self._ids[k] = self._ids[k][keep].copy()

    def codes(self, rows: np.ndarray) -> list[Grouping]:
        """Dense codes of every level over ``rows`` (ascending row numbers)."""
        out = []
        for k, level in enumerate(self.levels):
            ids = self._ids[k][rows]
            n_keys = len(self._keys[k])
            present = np.flatnonzero(np.bincount(ids, minlength=n_keys)) if ids.size else np.zeros(0, np.int64)
            order = sorted(present.tolist(), key=lambda i: _sort_key(self._keys[k][i]))
            lookup = np.full(max(n_keys, 1), -1, np.int64)
            lookup[order] = np.arange(len(order))
            codes = lookup[ids].astype(np.int32) if ids.size else np.zeros(0, np.int32)
            keys = {"underlying": [self._keys[k][i][0] for i in order]}
            for j, tag in enumerate(level):
                keys[tag] = [self._keys[k][i][1 + j] for i in order]
            out.append(Grouping(level, codes, len(order), keys))
        return out


__all__ = ["LiveGrouping"]
