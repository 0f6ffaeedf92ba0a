"""Plain-text tables for a terminal (no dependency): right-aligned numbers, thousands separators.

Every cell is made safe for a terminal (control characters escaped: text from inputs can never
drive it), and the tag columns shown are the table's own (no hard-coded desk/book).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pyarrow as pa

from gpuskew.cli.common import safe


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
                     else ("" if data[c][i] is None else safe(data[c][i], newlines=False)) for c in cols])
    widths = [max(len(r[k]) for r in rows) for k in range(len(cols))]
    lines = []
    if title:
        lines.append(safe(title))
    for n, r in enumerate(rows):
        cells = [r[k].rjust(widths[k]) if numeric[cols[k]] else r[k].ljust(widths[k]) for k in range(len(cols))]
        lines.append("  ".join(cells).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


EXPOSURE_DISPLAY = ("underlying", "n_positions", "n_expired", "delta", "delta_pa", "delta_usd",
                    "gamma_1pct", "vega_usd", "theta_usd", "value_usd")
ADHERENCE_DISPLAY = ("measure", "actual", "target", "lower", "upper", "skew", "effective_status")
_DELTA_DIGITS = {"delta": 4, "delta_pa": 4, "gamma_1pct": 4}


def print_exposures(exposures: pa.Table, levels) -> None:
    """The per-underlying totals, then one table per grouping level, on stdout."""
    import click
    import pyarrow.compute as pc

    under = exposures.filter(pc.equal(exposures["level"], "underlying"))
    click.echo(render_table(under, EXPOSURE_DISPLAY, digits=_DELTA_DIGITS,
                            title="Net exposure per underlying (delta, delta_pa in coins; others USD)"))
    for level in levels:
        name = ",".join(level)
        rows = exposures.filter(pc.equal(exposures["level"], name))
        cols = ("underlying",) + tuple(level) + EXPOSURE_DISPLAY[1:]
        click.echo("")
        click.echo(render_table(rows, cols, digits=_DELTA_DIGITS, title=f"Net exposure per underlying and {name}"))


def print_adherence(step) -> None:
    """The adherence table and the proposed hedges of a Session step, on stdout."""
    import click

    from gpuskew.schema import ADHERENCE

    table = step.effective
    tags = ADHERENCE.tag_columns(table)
    cols = ("level", "underlying", *tags, *ADHERENCE_DISPLAY)
    click.echo("")
    click.echo(render_table(table, cols, digits={"skew": 2},
                            title=f"Skew adherence (coins; score {step.summary['adherence']['score']:.3f})"))
    hedges = step.adherence.hedges
    if hedges.num_rows:
        click.echo("")
        click.echo(render_table(hedges, ("level", "underlying", *tags, "hedge_instrument", "side", "contracts",
                                         "coin_delta", "post_trade_deviation", "est_cost_usd"),
                                title="Proposed hedges"))
