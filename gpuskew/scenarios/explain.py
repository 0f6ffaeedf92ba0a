"""P&L explain between two runs: the change of value of every group split into its greeks.

    result = explain_runs("runs/0800", "runs/0815", levels=[("desk",)])
    result.groups          # explain.parquet: one row per group
    result.positions       # explain_positions.parquet: one row per position

Positions are matched by (instrument, tag values); when a book holds several rows with the same
key, the k-th row of one run is matched with the k-th row of the other (``occurrence``).

For a position held unchanged (same quantity, same entry price, priced in both runs)::

    actual = V1 - V0 = delta dS + gamma dS^2/2 + vega dv + theta dt + vanna dS dv + volga dv^2/2
                       + rho dr + residual

with the greeks of the earlier run (section "P&L explain" of docs/scenarios.md):

* dS: the index move S1 - S0 for spot holdings; for everything priced on a forward (options,
  perpetuals, futures) the spot-equivalent move of its forward, S0 (F1 / F0 - 1): the greeks are
  sensitivities to S with F moving in proportion, so this carries the forward's own drift (carry,
  basis) into the delta and gamma terms and leaves Black-76's forward second-order exact;
* dv = 100 (sigma1 - sigma0) vol points (options); dt = days between the two as_of; dr = 100 (r1 -
  r0) percentage points;
* a perpetual or future held without an entry price is worth 0 in a run; here it takes the earlier
  run's forward F0 as its entry, so V0 = 0 and V1 = n (F1 - F0) (linear) or S1 N (1/F0 - 1/F1)
  (inverse), through ``kernels/instruments.position_value``.

New, closed, resized (quantity or entry changed) and expired positions go whole into
``new_trades`` = V1 - V0 (a new position's V1, minus a closed one's V0): without trade prices the
P&L of a trade cannot be told apart from the market's. ``residual`` closes the sum exactly:
every value of an explain is put on one binary grid g = 2^e USD, the smallest that keeps any sum
of the table below 2^52 g (g is about 2.2e-16 times the table's total magnitude: ~1e-6 USD for
a 10^10 USD book), where float64 additions are exact. So, per position and per group,
``delta + gamma + vega + theta + vanna + volga + rho + new_trades + residual == actual`` holds
bit for bit, in any order (:func:`close_residual`). Group sums use the fixed reduction tree.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.core.explain_inputs import CONTEXT as _CONTEXT, SUMMED as _SUMMED
from gpuskew.errors import InvalidInput
from gpuskew.timeutil import iso_z, to_utc

#: explain terms, in the order they are added (residual last)
TERMS: tuple[str, ...] = ("delta", "gamma", "vega", "theta", "vanna", "volga", "rho", "new_trades", "residual")
#: columns of every table, actual first
TERM_COLUMNS: tuple[str, ...] = ("actual", *TERMS)
#: a group's residual is flagged when |residual| > RESIDUAL_THRESHOLD |actual| and > RESIDUAL_FLOOR_USD
RESIDUAL_THRESHOLD: float = 0.05
RESIDUAL_FLOOR_USD: float = 1.0
#: columns an explain input (positions.parquet of a run, or the history's explain_inputs) must hold
#: (the columns the history's explain_inputs keeps: core.explain_inputs SUMMED and CONTEXT)
REQUIRED_COLUMNS: tuple[str, ...] = ("instrument", "quantity", *_CONTEXT,
                                     *(c for c in _SUMMED if c != "quantity"))
#: change of a position between the runs
CHANGES: tuple[str, ...] = ("held", "new", "closed", "resized", "expired")
_KEY_SEP = "\x1f"


@dataclass
class RunSnapshot:
    """What explain reads of one run: its positions (explain inputs), as_of and grouping levels."""

    positions: pa.Table
    as_of: datetime
    levels: list[tuple[str, ...]]
    source: str


@dataclass
class ExplainResult:
    """``groups`` (explain.parquet), ``positions`` (explain_positions.parquet) and ``summary``."""

    groups: pa.Table
    positions: pa.Table
    summary: dict
    levels: list[tuple[str, ...]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# reading a run folder


def load_run(folder: str | Path) -> RunSnapshot:
    """Read the positions (``positions.parquet``, else ``positions.arrow``) and ``summary.json``
    of a ``gpuskew run`` output folder."""
    from gpuskew.io import read_table

    folder = Path(folder)
    if not folder.is_dir():
        raise InvalidInput(str(folder), None, "not a folder (give two output folders of `gpuskew run`)")
    summary_path = folder / "summary.json"
    if not summary_path.is_file():
        raise InvalidInput(str(summary_path), None, "missing: a run folder holds summary.json and its positions")
    pos_path = next((folder / n for n in ("positions.parquet", "positions.arrow") if (folder / n).is_file()), None)
    if pos_path is None:
        raise InvalidInput(str(folder / "positions.parquet"), None,
                           "missing (nor positions.arrow): explain needs the run's positions; a run with "
                           "`--positions none` cannot be explained")
    try:
        summary = json.loads(summary_path.read_text("utf-8"))
        as_of = to_utc(summary["as_of"], source=str(summary_path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(str(summary_path), "as_of", f"unreadable run summary ({exc})") from exc
    table = read_table(pos_path)  # InvalidInput naming the file when unreadable
    check_inputs(table, str(pos_path))
    levels = [tuple(lv) for lv in summary.get("group_by", []) if lv]
    return RunSnapshot(table, as_of, levels, str(folder))


def check_inputs(table: pa.Table, source: str) -> None:
    """Every column explain needs is there (a run written before gpuskew wrote iv, rate and forward
    into positions.parquet cannot be explained)."""
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise InvalidInput(source, missing[0], f"missing column(s) {', '.join(missing)} needed by explain "
                                               "(re-run `gpuskew run` with this version of gpuskew)")


# ---------------------------------------------------------------------------------------------
# the arithmetic


def exact_grid(actual: np.ndarray, terms: np.ndarray) -> float:
    """The common grid g = 2^e (USD) of an explain: the smallest power of two with
    sum(|actual| + sum |terms|) <= 2^52 g, so that every partial sum of values on the grid, in any
    order and any grouping, is a multiple of g below 2^53 g: float64 adds them exactly."""
    bound = float(np.sum(np.abs(actual)) + np.sum(np.abs(terms))) if actual.size else 0.0
    if not np.isfinite(bound):
        raise ArithmeticError("explain: a non-finite value reached the explain terms")
    if bound == 0.0:
        return 2.0 ** -1074
    e = int(np.ceil(np.log2(bound * (1.0 + 1e-9)))) - 52
    return float(2.0 ** max(e, -1074))


def on_grid(x: np.ndarray, grid: float) -> np.ndarray:
    """``x`` rounded to the nearest multiple of ``grid`` (a power of two: scaling is exact)."""
    return np.round(x / grid) * grid


def close_residual(actual: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Put ``actual`` and ``terms`` (k x n) on their :func:`exact_grid` and close the sum:
    returns (actual, terms, residual) with residual = actual - sum(terms), every addition exact, so
    ``terms[0] + ... + terms[k-1] + residual == actual`` holds in float64, in any order. The
    rounding moves each value by at most g / 2 (g ~ 2.2e-16 x the table's total magnitude)."""
    g = exact_grid(actual, terms)
    a = on_grid(actual, g)
    t = on_grid(terms, g)
    r = a - t.sum(axis=0) if t.size else a.copy()
    check = np.zeros_like(a)
    for row in t:
        check = check + row
    if not np.array_equal(check + r, a):  # pragma: no cover - exact by construction
        raise ArithmeticError("explain: the terms did not add up to actual exactly")
    return a, t, r


def _tags(tables: Sequence[pa.Table]) -> list[str]:
    seen: list[str] = []
    for t in tables:
        for c in schema.POSITIONS_OUT.tag_columns(t):
            if c not in seen:
                seen.append(c)
    return seen


def _string_column(table: pa.Table, name: str) -> pa.Array:
    """A string column as a plain (not dictionary) string array; all null if absent."""
    if name not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    col = table[name].combine_chunks() if isinstance(table[name], pa.ChunkedArray) else table[name]
    if pa.types.is_dictionary(col.type):
        col = col.cast(col.type.value_type)
    return col.cast(pa.string())


def _strings(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(_string_column(table, name).to_pylist(), dtype=object)


def _keys(table: pa.Table, tags: Sequence[str]) -> tuple[pa.Array, np.ndarray]:
    """The match key of every row, ``instrument, tags..., #occurrence`` joined as one string, and
    the occurrence (k-th row of its (instrument, tags) in the table, from 0)."""
    n = table.num_rows
    parts = [_string_column(table, "instrument")] + [_string_column(table, t) for t in tags]
    parts = [pc.fill_null(p, "\x00") for p in parts]
    base = pc.binary_join_element_wise(*parts, _KEY_SEP) if n else pa.array([], pa.string())
    occ = np.zeros(n, dtype=np.int64)
    if n:
        codes = pc.dictionary_encode(base).indices.to_numpy()
        order = np.argsort(codes, kind="stable")
        sorted_codes = codes[order]
        start = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
        run_start = np.repeat(start, np.diff(np.r_[start, n]))
        occ[order] = np.arange(n) - run_start
    key = pc.binary_join_element_wise(base, pa.array(occ).cast(pa.string()), _KEY_SEP + "#") if n else base
    return key, occ


def _floats(table: pa.Table, name: str, default: float = 0.0) -> np.ndarray:
    if name not in table.column_names:
        return np.full(table.num_rows, default)
    return table[name].fill_null(default).to_numpy().astype(np.float64)


def _codes(table: pa.Table, name: str, vocabulary: Sequence[str]) -> np.ndarray:
    idx = pc.index_in(_string_column(table, name), value_set=pa.array(list(vocabulary), pa.string()))
    return idx.fill_null(-1).to_numpy().astype(np.int8)


@dataclass
class _Side:
    """One run's explain inputs as arrays."""

    n: int
    key: pa.Array
    occurrence: np.ndarray
    instrument: np.ndarray
    underlying: np.ndarray
    tags: dict[str, np.ndarray]
    kind: np.ndarray
    settle: np.ndarray
    cp: np.ndarray
    qty: np.ndarray
    csize: np.ndarray
    strike: np.ndarray
    entry: np.ndarray
    T: np.ndarray
    S: np.ndarray
    fq: np.ndarray
    r: np.ndarray
    vol: np.ndarray
    expired: np.ndarray
    g: dict[str, np.ndarray]  # value_usd and the greeks

    @classmethod
    def of(cls, table: pa.Table, tags: Sequence[str]) -> _Side:
        from gpuskew.kernels.instruments import CALL, PUT

        key, occ = _keys(table, tags)
        ot = _codes(table, "option_type", schema.OPTION_TYPES)
        kind = _codes(table, "kind", schema.KINDS)
        is_opt = kind == schema.KINDS.index("option")
        return cls(
            n=table.num_rows, key=key, occurrence=occ, instrument=_strings(table, "instrument"),
            underlying=_strings(table, "underlying"), tags={t: _strings(table, t) for t in tags},
            kind=kind, settle=_codes(table, "settlement", schema.SETTLEMENTS),
            cp=np.where(is_opt, np.where(ot == 0, CALL, PUT), 0).astype(np.int8),
            qty=_floats(table, "quantity"), csize=_floats(table, "contract_size"), strike=_floats(table, "strike"),
            entry=_floats(table, "entry_price"), T=_floats(table, "time_to_expiry"), S=_floats(table, "spot"),
            fq=_floats(table, "forward"), r=_floats(table, "rate"), vol=_floats(table, "iv"),
            expired=pc.equal(_string_column(table, "status"), "expired").fill_null(False).to_numpy(zero_copy_only=False),
            g={c: _floats(table, c) for c in ("value_usd", "delta", "gamma", "vega_usd", "theta_usd", "rho_usd",
                                              "vanna", "volga")},
        )

    def forwards(self) -> np.ndarray:
        from gpuskew.kernels import cpu

        out = np.empty(self.n)
        if self.n:
            cpu.forwards(np.ascontiguousarray(self.kind), self.S, self.r, self.T, self.fq, out)
        return out


def _take(a: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a[idx])


def explain_rows(before: pa.Table, after: pa.Table, dt_days: float) -> tuple[pa.Table, list[str]]:
    """Per-row explain of two explain-input tables (rows of both runs: matched, new, closed).

    Returns the explain_positions table (declared columns) and the tag columns."""
    from gpuskew.kernels import cpu
    from gpuskew.kernels.instruments import KIND_FUTURE, KIND_PERPETUAL, KIND_SPOT
    from gpuskew.kernels.scenarios import explain_terms

    tags = _tags([before, after])
    a, b = _Side.of(before, tags), _Side.of(after, tags)
    ia = pc.index_in(b.key, value_set=a.key).fill_null(-1).to_numpy().astype(np.int64) if b.n \
        else np.zeros(0, dtype=np.int64)
    matched_b = np.flatnonzero(ia >= 0)
    ma = ia[matched_b]
    closed_a = np.setdiff1d(np.arange(a.n), ma, assume_unique=True)
    new_b = np.flatnonzero(ia < 0)

    # matched rows: forwards, the no-entry perpetual/future rule, the moves
    F0 = a.forwards()[ma]
    F1 = b.forwards()[matched_b]
    kind = a.kind[ma]
    no_entry = ((kind == KIND_PERPETUAL) | (kind == KIND_FUTURE)) & (a.entry[ma] <= 0) & (b.entry[matched_b] <= 0)
    v0 = a.g["value_usd"][ma].copy()
    v1 = b.g["value_usd"][matched_b].copy()
    if no_entry.any():
        k = np.flatnonzero(no_entry)
        j = matched_b[k]
        out = np.empty(k.size)
        cpu.position_values(_take(b.kind, j), _take(b.settle, j), _take(b.cp, j), _take(b.qty, j), _take(b.csize, j),
                            _take(b.strike, j), _take(b.T, j), _take(b.S, j), _take(F1, k), _take(b.r, j),
                            _take(b.vol, j), _take(F0, k), out)
        v0[k] = 0.0
        v1[k] = out
    exp0, exp1 = a.expired[ma], b.expired[matched_b]
    resized = (a.qty[ma] != b.qty[matched_b]) | ((a.entry[ma] != b.entry[matched_b]) & ~no_entry)
    held = ~resized & ~(exp1 & ~exp0)
    change = np.where(held, "held", np.where(exp1 & ~exp0 & ~resized, "expired", "resized")).astype(object)
    S0, S1 = a.S[ma], b.S[matched_b]
    with np.errstate(divide="ignore", invalid="ignore"):
        dS = np.where(kind == KIND_SPOT, S1 - S0, np.where(F0 != 0, S0 * (F1 / F0 - 1.0), 0.0))
    is_opt = kind == schema.KINDS.index("option")
    dv = np.where(is_opt, 100.0 * (b.vol[matched_b] - a.vol[ma]), 0.0)
    dr = 100.0 * (b.r[matched_b] - a.r[ma])
    g0 = {c: v[ma] for c, v in a.g.items()}
    terms = explain_terms(g0["delta"], g0["gamma"], g0["vega_usd"], g0["theta_usd"], g0["rho_usd"], g0["vanna"],
                          g0["volga"], dS, dv, dt_days, dr)
    terms = [np.where(held, t, 0.0) for t in terms]
    actual_m = v1 - v0
    new_trades_m = np.where(held, 0.0, actual_m)

    # new and closed rows: all of it is new_trades
    actual_new = b.g["value_usd"][new_b]
    actual_closed = -a.g["value_usd"][closed_a]
    n_m, n_new, n_closed = matched_b.size, new_b.size, closed_a.size
    z = lambda k: np.zeros(k)  # noqa: E731
    actual = np.concatenate([actual_m, actual_new, actual_closed])
    cols = {name: np.concatenate([t, z(n_new), z(n_closed)]) for name, t in zip(TERMS[:7], terms)}
    cols["new_trades"] = np.concatenate([new_trades_m, actual_new, actual_closed])
    stack = np.stack([cols[t] for t in TERMS[:8]]) if actual.size else np.zeros((8, 0))
    cols["actual"], stack, cols["residual"] = close_residual(actual, stack)
    for k, t in enumerate(TERMS[:8]):
        cols[t] = stack[k]

    def pick(name: str) -> np.ndarray:
        sa, sb = getattr(a, name), getattr(b, name)
        return np.concatenate([sb[matched_b], sb[new_b], sa[closed_a]])

    kind_names = np.array(schema.KINDS + ("?",), dtype=object)
    table_cols: dict[str, Any] = {
        "instrument": pick("instrument"),
        "occurrence": np.concatenate([b.occurrence[matched_b], b.occurrence[new_b], a.occurrence[closed_a]]),
        "underlying": pick("underlying"),
        "kind": kind_names[pick("kind")],
        "change": np.concatenate([change, np.full(n_new, "new", object), np.full(n_closed, "closed", object)]),
        "quantity_from": pa.array(np.concatenate([a.qty[ma], z(n_new), a.qty[closed_a]]),
                                  mask=np.r_[np.zeros(n_m, bool), np.ones(n_new, bool), np.zeros(n_closed, bool)]),
        "quantity_to": pa.array(np.concatenate([b.qty[matched_b], b.qty[new_b], z(n_closed)]),
                                mask=np.r_[np.zeros(n_m + n_new, bool), np.ones(n_closed, bool)]),
    }
    for t in tags:
        table_cols[t] = np.concatenate([b.tags[t][matched_b], b.tags[t][new_b], a.tags[t][closed_a]])
    for c in TERM_COLUMNS:
        table_cols[c] = cols[c]
    spec = schema.EXPLAIN_POSITIONS.arrow_schema(tags)
    arrays = [table_cols[f.name] if isinstance(table_cols[f.name], pa.Array)
              else pa.array(table_cols[f.name].tolist() if table_cols[f.name].dtype == object
                            else table_cols[f.name], f.type) for f in spec]
    return pa.table(arrays, schema=spec), tags


def group_explain(rows: pa.Table, tags: Sequence[str], levels: Sequence[tuple[str, ...]],
                  from_as_of: datetime, to_as_of: datetime,
                  threshold: float = RESIDUAL_THRESHOLD, floor_usd: float = RESIDUAL_FLOOR_USD) -> pa.Table:
    """explain.parquet: the per-row terms summed per group (fixed reduction tree), per level
    (the per-underlying level first); residuals closed again per group; the residual flag."""
    from gpuskew.core.backend import CpuBackend
    from gpuskew.core.groups import group_positions
    from gpuskew.core.reduction import plan_segmented_sum

    und = rows["underlying"]
    if pa.types.is_dictionary(und.type):
        und = und.cast(und.type.value_type)
    if und.null_count:
        raise ValueError("explain rows without an underlying")
    names = sorted(pc.unique(und).to_pylist())
    ucode = pc.index_in(und, value_set=pa.array(names, und.type)).to_numpy().astype(np.int32)
    values = np.ascontiguousarray(np.stack([rows[c].to_numpy() for c in TERM_COLUMNS])) if rows.num_rows \
        else np.zeros((len(TERM_COLUMNS), 0))
    changed = (np.asarray(rows["change"].to_pylist(), dtype=object) != "held") if rows.num_rows else np.zeros(0, bool)
    backend = CpuBackend("explain: host-side sums")
    used = {t for lv in levels for t in lv}
    tags = [t for t in tags if t in used]  # the tag columns of the levels, in the positions' order
    spec = schema.EXPLAIN.arrow_schema(tags)
    tables = []
    for level in [()] + [tuple(lv) for lv in levels]:
        grouping = group_positions(ucode, names, rows, level)
        plan = plan_segmented_sum(grouping.codes, grouping.n_groups)
        sums = backend.segmented_sum(values, plan)
        # the rows are on one binary grid small enough that every sum is exact: the group sums of
        # the terms and the residual add up to the group's actual exactly
        actual, terms, residual = sums[0], sums[1:len(TERMS)], sums[len(TERMS)]
        ng = grouping.n_groups
        cols: dict[str, Any] = {"level": [",".join(level) if level else "underlying"] * ng,
                                "underlying": grouping.keys["underlying"]}
        for t in tags:
            cols[t] = grouping.keys[t] if t in level else [None] * ng
        cols["from_as_of"] = [from_as_of] * ng
        cols["to_as_of"] = [to_as_of] * ng
        cols["n_changed"] = np.bincount(grouping.codes[changed], minlength=ng)
        cols["n_matched"] = np.bincount(grouping.codes, minlength=ng) - cols["n_changed"]
        cols["actual"] = actual
        for k, t in enumerate(TERMS[:-1]):
            cols[t] = terms[k]
        cols["residual"] = residual
        cols["residual_flag"] = (np.abs(residual) > threshold * np.abs(actual)) & (np.abs(residual) > floor_usd)
        tables.append(pa.table([pa.array(cols[f.name], f.type) for f in spec], schema=spec))
    return pa.concat_tables(tables) if tables else spec.empty_table()


def explain_tables(before: pa.Table, after: pa.Table, from_as_of: datetime, to_as_of: datetime,
                   levels: Sequence[tuple[str, ...]], threshold: float = RESIDUAL_THRESHOLD,
                   floor_usd: float = RESIDUAL_FLOOR_USD) -> tuple[pa.Table, pa.Table]:
    """(groups, rows) of the explain between two explain-input tables."""
    dt_days = (to_as_of - from_as_of).total_seconds() / 86_400.0
    rows, tags = explain_rows(before, after, dt_days)
    return group_explain(rows, tags, levels, from_as_of, to_as_of, threshold, floor_usd), rows


def explain_runs(run_from: str | Path, run_to: str | Path, levels: Sequence[tuple[str, ...]] | None = None,
                 threshold: float = RESIDUAL_THRESHOLD, floor_usd: float = RESIDUAL_FLOOR_USD) -> ExplainResult:
    """Explain the P&L from the run folder ``run_from`` to ``run_to`` (levels: the later run's
    grouping unless given)."""
    a, b = load_run(run_from), load_run(run_to)
    if b.as_of < a.as_of:
        raise InvalidInput(b.source, "as_of", f"the later run ({iso_z(b.as_of)}) is before the earlier one "
                                              f"({iso_z(a.as_of)}): give RUN_FROM first")
    lv = [tuple(x) for x in (b.levels if levels is None else levels)]
    tags = _tags([a.positions, b.positions])
    for level in lv:
        for t in level:
            if t not in tags:
                raise InvalidInput("--group-by", t, f"not a tag column of the runs' positions; tags: "
                                                    f"{', '.join(tags) or 'none'}")
    groups, rows = explain_tables(a.positions, b.positions, a.as_of, b.as_of, lv, threshold, floor_usd)
    summary = explain_summary(groups, rows, a.as_of, b.as_of, lv, threshold, floor_usd)
    summary["inputs"] = {"from": a.source, "to": b.source}
    return ExplainResult(groups, rows, summary, lv)


def explain_summary(groups: pa.Table, rows: pa.Table, from_as_of: datetime, to_as_of: datetime,
                    levels: Sequence[tuple[str, ...]], threshold: float, floor_usd: float) -> dict:
    """summary.json of an explain: counts of changes, totals per underlying, flagged groups."""
    from gpuskew import __version__

    change = rows["change"].to_pylist()
    under = groups.filter(pc.equal(groups["level"], "underlying")).to_pylist()
    return {
        "version": __version__,
        "from_as_of": iso_z(from_as_of), "to_as_of": iso_z(to_as_of),
        "days": (to_as_of - from_as_of).total_seconds() / 86_400.0,
        "group_by": [list(lv) for lv in levels],
        "counts": {"rows": rows.num_rows, **{c: change.count(c) for c in CHANGES}, "groups": groups.num_rows,
                   "flagged": int(pc.sum(groups["residual_flag"].cast(pa.int64())).as_py() or 0)},
        "residual_flag": {"threshold": threshold, "floor_usd": floor_usd,
                          "rule": "|residual| > threshold * |actual| and |residual| > floor_usd"},
        "identity": "actual = delta + gamma + vega + theta + vanna + volga + rho + new_trades + residual, "
                    "exactly in float64 (every value on one binary grid where additions are exact)",
        "totals": {row["underlying"]: {c: row[c] for c in (*TERM_COLUMNS, "residual_flag")} for row in under},
    }
