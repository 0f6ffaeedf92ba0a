"""Plain-text tables for a terminal (no dependency): right-aligned numbers, thousands separators."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyarrow as pa


def format_number(value: object, digits: int = 2) -> str:
    """1234567.891 -> '1,234,567.89'; None -> ''; ints stay ints."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 10 ** -digits:
            return f"{value:.{digits}e}"
        return f"{value:,.{digits}f}"
    return str(value)


def render_table(table: pa.Table, columns: Sequence[str], digits: dict[str, int] | None = None,
                 title: str | None = None) -> str:
    """Render ``columns`` of ``table`` as aligned text lines."""
    digits = digits or {}
    cols = [c for c in columns if c in table.column_names]
    rows = [[c for c in cols]]
    data = {c: table[c].to_pylist() for c in cols}
    numeric = {c: pa.types.is_integer(table.schema.field(c).type) or pa.types.is_floating(table.schema.field(c).type)
               for c in cols}
    for i in range(table.num_rows):
        rows.append([format_number(data[c][i], digits.get(c, 2)) if numeric[c]
                     else ("" if data[c][i] is None else str(data[c][i])) for c in cols])
    widths = [max(len(r[k]) for r in rows) for k in range(len(cols))]
    lines = []
    if title:
        lines.append(title)
    for n, r in enumerate(rows):
        cells = [r[k].rjust(widths[k]) if numeric[cols[k]] else r[k].ljust(widths[k]) for k in range(len(cols))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)
