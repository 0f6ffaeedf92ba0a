"""Group codes: positions -> dense int32 group ids per grouping level.

A *level* is a tuple of tag columns, e.g. ``()`` (per underlying) or ``("desk", "book")`` (per
underlying, desk and book). Every level includes the underlying: a net delta in coins only adds
up within one underlying. Group ids are ordered by underlying name, then tag values (sorted,
null last), so outputs do not depend on the row order of the input.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

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
