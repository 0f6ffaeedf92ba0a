"""Group identity: positions -> dense int32 group codes per level, and :class:`GroupIndex`, the one
identity of a group row in every group table.

A *level* is a tuple of tag columns, e.g. ``()`` (per underlying) or ``("desk", "book")`` (per
underlying, desk and book). Every level includes the underlying: a net delta in coins only adds
up within one underlying. Group ids are ordered by underlying name, then tag values (sorted,
null last), so outputs do not depend on the row order of the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.errors import InvalidInput

#: dense keys up to this many combinations are counted with bincount (O(n)), else np.unique
DENSE_KEY_LIMIT = 1 << 24


@dataclass(frozen=True)
class Grouping:
    """Group ids of one level: ``codes[i]`` is the group of position i; ``keys[name][g]`` the
    value of key column ``name`` (underlying first, then tags) for group g."""

    level: tuple[str, ...]
    codes: np.ndarray  #: int32, one per position
    n_groups: int
    keys: dict[str, list]


def parse_levels(group_by: str | Sequence[str] | Sequence[Sequence[str]] | None,
                 tags: Sequence[str]) -> list[tuple[str, ...]]:
    """Normalise ``group_by`` into levels: "desk,book" -> [("desk", "book")];
    ["desk", "desk,book"] -> [("desk",), ("desk", "book")]. Unknown tags raise InvalidInput."""
    if not group_by:
        return []
    items: Iterable = [group_by] if isinstance(group_by, str) else group_by
    levels: list[tuple[str, ...]] = []
    for item in items:
        cols = tuple(c.strip() for c in (item.split(",") if isinstance(item, str) else item) if c.strip())
        for c in cols:
            if c not in tags:
                raise InvalidInput("--group-by", c, "not a tag column of positions (string column "
                                   f"other than instrument); tags: {', '.join(tags) or 'none'}")
        if cols and cols not in levels:
            levels.append(cols)
    return levels


def _sorted_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """Dictionary-encode a string column with a sorted dictionary; null gets the last code."""
    encoded = pc.dictionary_encode(column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column)
    values = encoded.dictionary
    rank = np.empty(len(values), dtype=np.int64)
    rank[pc.array_sort_indices(values).to_numpy()] = np.arange(len(values))
    idx = encoded.indices.fill_null(len(values)).to_numpy()
    rank = np.append(rank, len(values))
    names = sorted(values.to_pylist()) + [None]
    return rank[idx], names


def group_positions(underlying_code: np.ndarray, underlying_names: list[str],
                    positions: pa.Table, level: tuple[str, ...]) -> Grouping:
    """Dense group ids of ``level`` for every position."""
    key = underlying_code.astype(np.int64)
    cards = [len(underlying_names)]
    parts: list[tuple[np.ndarray, list]] = []
    for col in level:
        codes, names = _sorted_codes(positions[col])
        parts.append((codes, names))
        cards.append(len(names))
        key = key * len(names) + codes
    total = int(np.prod(np.array(cards, dtype=np.float64)))
    if total <= DENSE_KEY_LIMIT:
        present = np.flatnonzero(np.bincount(key, minlength=total)) if key.size else np.zeros(0, np.int64)
        lookup = np.full(total, -1, dtype=np.int64)
        lookup[present] = np.arange(present.size)
        codes = lookup[key] if key.size else np.zeros(0, np.int64)
        uniq = present
    else:
        uniq, codes = np.unique(key, return_inverse=True)
    # decode group keys from the mixed-radix key
    keys: dict[str, list] = {}
    rem = uniq.copy()
    decoded = []
    for (col, (_, names)), card in zip(reversed(list(zip(level, parts))), reversed(cards[1:])):
        decoded.append((col, [names[i] for i in (rem % card)]))
        rem //= card
    keys["underlying"] = [underlying_names[i] for i in rem]
    for col, vals in reversed(decoded):
        keys[col] = vals
    return Grouping(level, codes.astype(np.int32), int(uniq.size), keys)


# ---------------------------------------------------------------------------------------------
# The identity of a group row in any group table (exposures, adherence, hedges, alerts, report).

#: (level, underlying, ((tag, value), ...) sorted by tag, null tags left out): the same group has
#: the same id whichever tag columns a table happens to carry (a table read from the history may
#: hold more tag columns than the run that wrote a row).
GroupId = tuple


def group_id(row: Mapping[str, Any], tags: Sequence[str]) -> GroupId:
    """The :data:`GroupId` of a row (a mapping with ``level``, ``underlying`` and tag values)."""
    pairs = tuple(sorted((t, str(row[t])) for t in tags if row.get(t) is not None))
    return (row.get("level"), row.get("underlying"), pairs)


def group_sort_key(gid: GroupId) -> tuple:
    """Order of groups in reports and alerts: underlying, then the per-underlying total first,
    then level and tag values."""
    level, underlying, pairs = gid
    return (str(underlying), level != "underlying", str(level), pairs)


class GroupIndex:
    """The groups of a group table, in row order: ``ids[i]`` is row i's :data:`GroupId`.

    ``spec`` (a :class:`gpuskew.schema.TableSpec`) tells which columns are tags. Lookups by id
    (``position``), the key values of a row (``row``), and codes for the group *across
    underlyings* (``portfolio_codes``: same level and tag values; used to add up a group's value
    over all its underlyings).
    """

    def __init__(self, table: pa.Table, spec: Any):
        self.tags: list[str] = spec.tag_columns(table)
        cols = ["level", "underlying", *self.tags]
        present = [c for c in cols if c in table.column_names]
        data = {c: table.column(c).to_pylist() for c in present}
        n = table.num_rows
        self._rows = [{c: data[c][i] if c in data else None for c in cols} for i in range(n)]
        self.ids: list[GroupId] = [group_id(r, self.tags) for r in self._rows]
        self._pos = {gid: i for i, gid in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def row(self, i: int) -> dict:
        """``{"level": ..., "underlying": ..., tag: value, ...}`` of row i (what limits match on)."""
        return dict(self._rows[i])

    def position(self, gid: GroupId) -> int | None:
        return self._pos.get(gid)

    def portfolio_codes(self) -> np.ndarray:
        """int64 code per row for (level, tag values), first-seen order: the group across its
        underlyings."""
        codes: dict[tuple, int] = {}
        return np.array([codes.setdefault((gid[0], gid[2]), len(codes)) for gid in self.ids], dtype=np.int64)
