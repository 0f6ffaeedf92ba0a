"""The daily P&L explain of ``gpuskew report``: consecutive runs of the history, explained.

Each run appended by ``gpuskew run --history`` carries an ``explain_inputs`` table (one row per
instrument and group cell: :mod:`gpuskew.core.explain_inputs`). For every two consecutive runs
of the period that both have one, the P&L between them is explained per underlying with the
earlier run's greeks (:func:`gpuskew.scenarios.explain.explain_tables`); the explains of the run
pairs ending on the same UTC day are added up into that day's row, and the day's residual is
closed again so that its terms add up to its actual exactly. Runs without explain inputs (a
history written by an older gpuskew) are skipped: the pair spans them.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew.history import read_history
from gpuskew.core.explain_inputs import EXPLAIN_INPUTS
from gpuskew.schema import TIMESTAMP

__all__ = ["DAILY_COLUMNS", "daily_explain", "explain_html"]

#: columns of explain_daily.parquet after date and underlying (USD, as in explain.parquet)
DAILY_COLUMNS: tuple[str, ...] = ("actual", "delta", "gamma", "vega", "theta", "vanna", "volga", "rho",
                                  "new_trades", "residual")


def _runs(cells: pa.Table) -> list[tuple[_dt.datetime, pa.Table]]:
    """One table per run time (several runs at one as_of: the largest run_id, as the report)."""
    times = cells["as_of"].cast(TIMESTAMP)
    out = []
    for t in sorted(set(times.to_pylist())):
        at = cells.filter(pc.equal(times, pa.scalar(t, TIMESTAMP)))
        best = max(at["run_id"].to_pylist())
        out.append((t, at.filter(pc.equal(at["run_id"], best)).drop(["as_of", "run_id"])))
    return out


def daily_explain(history_dir: str | Path, start: _dt.datetime | None = None,
                  end: _dt.datetime | None = None) -> pa.Table | None:
    """explain_daily: one row per (UTC day, underlying) with the explain terms (USD) of the run
    pairs ending that day, ``pairs`` and ``residual_flag``; None when fewer than two runs of the
    period carry explain inputs."""
    from gpuskew.scenarios.explain import RESIDUAL_FLOOR_USD, RESIDUAL_THRESHOLD, close_residual, explain_tables

    cells = read_history(history_dir, EXPLAIN_INPUTS, start, end)
    if cells.num_rows == 0 or "as_of" not in cells.column_names:
        return None
    runs = _runs(cells)
    if len(runs) < 2:
        return None
    acc: dict[tuple[_dt.date, str], np.ndarray] = {}
    pairs: dict[tuple[_dt.date, str], int] = {}
    for (t0, a), (t1, b) in zip(runs, runs[1:]):
        groups, _ = explain_tables(a, b, t0, t1, [])
        for row in groups.to_pylist():
            key = (t1.date(), row["underlying"])
            acc[key] = acc.get(key, np.zeros(len(DAILY_COLUMNS))) + np.array([row[c] for c in DAILY_COLUMNS])
            pairs[key] = pairs.get(key, 0) + 1
    keys = sorted(acc)
    values = np.stack([acc[k] for k in keys]).T
    actual, terms, residual = close_residual(values[0], values[1:-1])
    cols: dict[str, Any] = {"date": pa.array([k[0] for k in keys], pa.date32()),
                            "underlying": pa.array([k[1] for k in keys], pa.string()),
                            "pairs": pa.array([pairs[k] for k in keys], pa.int64()),
                            "actual": pa.array(actual)}
    for k, c in enumerate(DAILY_COLUMNS[1:-1]):
        cols[c] = pa.array(terms[k])
    cols["residual"] = pa.array(residual)
    cols["residual_flag"] = pa.array((np.abs(residual) > RESIDUAL_THRESHOLD * np.abs(actual))
                                     & (np.abs(residual) > RESIDUAL_FLOOR_USD))
    fields = [pa.field("date", pa.date32(), metadata={"unit": "UTC", "doc": "day the run pairs end on"}),
              pa.field("underlying", pa.string(), metadata={"unit": "", "doc": "underlying"}),
              pa.field("pairs", pa.int64(), metadata={"unit": "count", "doc": "consecutive run pairs explained"})]
    fields += [pa.field(c, pa.float64(), metadata={"unit": "USD", "doc": f"{c} term of the day's P&L explain"})
               for c in DAILY_COLUMNS]
    fields.append(pa.field("residual_flag", pa.bool_(), metadata={"unit": "", "doc": "|residual| large against |actual|"}))
    return pa.table([cols[f.name] for f in fields], schema=pa.schema(fields))


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "&#9888;" if v else ""
    if isinstance(v, float):
        return "&ndash;" if not math.isfinite(v) else f"{v:,.0f}"
    return html.escape(str(v))


def explain_html(table: pa.Table | None) -> str:
    """The report's section: a table of the daily explain per underlying (or a note why none)."""
    if table is None:
        return ("<h2>Daily P&amp;L explain</h2><p>Needs two or more runs appended with this version of "
                "<code>gpuskew run --history</code> (they carry the explain inputs).</p>")
    cols = ("date", "underlying", "pairs", *DAILY_COLUMNS, "residual_flag")
    head = "".join(f'<th class="num">{html.escape(c)}</th>' if c not in ("date", "underlying") else
                   f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f'<td class="num">{_cell(r[c])}</td>' if c not in ("date", "underlying")
                                     else f"<td>{_cell(r[c])}</td>" for c in cols) + "</tr>"
                   for r in table.to_pylist())
    return (
        "<h2>Daily P&amp;L explain</h2>"
        "<p>Per underlying and UTC day, the change of value between consecutive runs, split with the "
        "earlier run's greeks: delta dS + gamma dS&sup2;/2 + vega dv + theta dt + vanna dS dv + volga "
        "dv&sup2;/2 + rho dr, new trades (new, closed, resized, expired positions) and a residual; the "
        "terms add up to actual exactly (USD). Positions are compared per instrument and group cell: "
        "trades that leave a cell's net quantity and mean entry unchanged show in the residual. "
        "&#9888; marks a residual larger than 5% of actual.</p>"
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>')
