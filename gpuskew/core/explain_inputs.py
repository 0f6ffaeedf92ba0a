"""What the history keeps of each run so that ``gpuskew report`` can explain the P&L between runs.

The history stores group tables only (exposures, adherence, hedges, alerts). Explaining P&L needs
more: every position's greeks and market inputs in both runs, matched position by position. A run
of 10^6 positions every 15 minutes cannot afford a per-position copy, so a run appends one small
table, ``explain_inputs``: one row per *cell* = (instrument, the tag columns of the run's grouping
levels, whether an entry price is held), with

* the sums over the cell's positions of ``quantity``, ``value_usd`` and every greek the explain
  uses (``delta``, ``gamma``, ``vega_usd``, ``theta_usd``, ``rho_usd``, ``vanna``, ``volga``);
* the instrument's context and market inputs (``underlying``, ``kind``, ``settlement``,
  ``option_type``, ``strike``, ``contract_size``, ``spot``, ``time_to_expiry``, ``rate``, ``iv``,
  ``forward``, ``status``), the same for every position of the cell;
* ``entry_price``: the cell's |quantity|-weighted mean entry price (null for cells without one),
  and ``entry_held`` ("yes" / "no"), a string column that keeps the two kinds of cell of one
  instrument apart when runs are matched (it acts as a tag).

Greeks add up over positions and every position of a cell sees the same market move, so the
explain of a cell is the sum of its positions' explains, with one limit, stated in the report:
a cell whose net quantity and mean entry did not change is "held", even if trades inside it
offset each other; such trades then show in the residual instead of ``new_trades``. Every
grouping level of the run is a sum of cells, so the report explains every level exactly as the
per-position explain would, up to that limit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["EXPLAIN_INPUTS", "SUMMED", "CONTEXT", "explain_inputs_table"]

#: the history dataset name
EXPLAIN_INPUTS: str = "explain_inputs"
#: columns summed over the positions of a cell
SUMMED: tuple[str, ...] = ("quantity", "value_usd", "delta", "gamma", "vega_usd", "theta_usd", "rho_usd",
                           "vanna", "volga")
#: per-instrument columns (the same for every position of a cell)
CONTEXT: tuple[str, ...] = ("underlying", "kind", "settlement", "option_type", "strike", "contract_size", "spot",
                            "time_to_expiry", "rate", "iv", "forward", "status")


def _plain(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col


def explain_inputs_table(positions: pa.Table, levels: Sequence[Sequence[str]]) -> pa.Table | None:
    """The cells of a run's ``positions`` table (see the module docstring); None when the table
    lacks a column the explain needs (a run without a positions table)."""
    needed = ("instrument", "entry_price", *SUMMED, *CONTEXT)
    if any(c not in positions.column_names for c in needed if c != "entry_price"):
        return None
    tags = [t for t in dict.fromkeys(t for lv in levels for t in lv) if t in positions.column_names]
    n = positions.num_rows
    entry = positions["entry_price"].fill_null(0.0).to_numpy() if "entry_price" in positions.column_names \
        else np.zeros(n)
    qty = positions["quantity"].to_numpy()
    keys = {"instrument": _plain(positions["instrument"]), **{t: _plain(positions[t]) for t in tags},
            "_has_entry": pa.array(entry > 0.0)}
    work = pa.table({**keys, **{c: positions[c] for c in SUMMED},
                     "_abs_q": pa.array(np.abs(qty)), "_abs_q_entry": pa.array(np.abs(qty) * entry),
                     "_row": pa.array(np.arange(n, dtype=np.int64))})
    aggs = [(c, "sum") for c in (*SUMMED, "_abs_q", "_abs_q_entry")] + [("_row", "min")]
    grouped = work.group_by(list(keys), use_threads=False).aggregate(aggs)
    first = grouped["_row_min"]
    out: dict[str, pa.Array] = {"instrument": grouped["instrument"]}
    for t in tags:
        out[t] = grouped[t]
    for c in SUMMED:
        out[c] = grouped[f"{c}_sum"]
    abs_q = grouped["_abs_q_sum"].to_numpy()
    has = grouped["_has_entry"].to_numpy(zero_copy_only=False)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_entry = grouped["_abs_q_entry_sum"].to_numpy() / abs_q
    out["entry_price"] = pa.array(mean_entry, pa.float64(), mask=~has | ~(abs_q > 0))
    out["entry_held"] = pa.array(np.where(has, "yes", "no"), pa.string())
    for c in CONTEXT:
        out[c] = _plain(pc.take(positions[c], first))
    table = pa.table(out)
    return table.sort_by([("instrument", "ascending"), *[(t, "ascending") for t in tags],
                          ("entry_held", "ascending")])
