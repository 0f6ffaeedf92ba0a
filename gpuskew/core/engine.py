"""The risk run: book + market + as_of -> per-position measures -> group sums.

One kernel pass computes every measure of every position (kernels/instruments.py); group sums use
the fixed reduction tree (reduction.py), the same on both backends. Static columns and reduction
plans are kept with the book on the device between runs (``Book._cache``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import __version__
from gpuskew import schema
from gpuskew.core.backend import Backend, resolve_backend
from gpuskew.core.book import Book, FlatPositions
from gpuskew.errors import InvalidInput
from gpuskew.core.groups import Grouping, group_positions, parse_levels
from gpuskew.core.reduction import plan_segmented_sum
from gpuskew.timeutil import iso_z, to_micros, to_utc

#: columns of positions.parquet taken from the instrument / market join
POSITION_CONTEXT = ("underlying", "kind", "settlement", "option_type", "strike", "expiry",
                    "contract_size", "spot", "time_to_expiry")


@dataclass
class RunResult:
    """Outputs of one run: ``positions`` and ``exposures`` (pyarrow Tables) and ``summary`` (dict)."""

    positions: pa.Table
    exposures: pa.Table
    summary: dict
    levels: list[tuple[str, ...]] = field(default_factory=list)

    def __repr__(self) -> str:
        s = self.summary
        levels = ", ".join(",".join(lv) for lv in self.levels) or "underlying only"
        return (f"<gpuskew.RunResult {s['as_of']}: {s['counts']['positions']:,} positions, "
                f"{self.exposures.num_rows} groups ({levels}), backend {s['backend']['used']}>")

    def _repr_html_(self) -> str:
        import html

        totals = "".join(f"<tr><td>{html.escape(u)}</td><td>{t['delta']:,.4f}</td><td>{t['delta_usd']:,.0f}</td></tr>"
                         for u, t in self.summary["totals"].items())
        return (f"<b>{html.escape(repr(self))}</b><table><tr><th>underlying</th><th>delta (coins)</th>"
                f"<th>delta (USD)</th></tr>{totals}</table>")


def parse_as_of(as_of: str | datetime | None) -> datetime:
    """UTC valuation time: ISO 8601 string or datetime (naive = UTC); None = now."""
    if as_of is None:
        return datetime.now(timezone.utc)
    return to_utc(as_of, source="--as-of")


#: microseconds since the epoch of a valuation time: :func:`gpuskew.timeutil.to_micros` itself (the
#: name the jobs and benchmarks import)
as_of_micros = to_micros


class _Timer:
    def __init__(self, progress: Callable[[str], None] | None):
        self.timings: dict[str, float] = {}
        self.progress = progress
        self._t = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = round(now - self._t, 6)
        self._t = now
        if self.progress:
            self.progress(stage)


#: columns of the held instruments and of the positions that do not change with the market: kept
#: on the device by the engine (each held instrument priced once, then every position on it)
HELD_STATIC_COLUMNS = ("h_kind", "h_settle", "h_cp", "h_csize", "h_strike", "pos_inst", "qty", "entry")
#: market columns per held instrument: moved to the device on every run (a few thousand values)
HELD_MARKET_COLUMNS = ("h_S", "h_fwd", "h_r", "h_vol")


def _device_state(book: Book, backend: Backend, flat: FlatPositions) -> dict:
    """Static columns (held instruments and positions) on the backend's device, cached with the
    book (and shared with the books :meth:`Book.with_market` derives from it)."""
    key = ("static", backend.name)
    if key not in book._cache:
        book._cache[key] = {name: backend.to_device(getattr(flat, name)) for name in HELD_STATIC_COLUMNS}
    return book._cache[key]


def level_grouping(book: Book, flat: FlatPositions, level: tuple[str, ...]) -> Grouping:
    key = ("grouping", level)
    if key not in book._cache:
        book._cache[key] = group_positions(flat.underlying_code, flat.underlying_names,
                                           book.positions, level)
    return book._cache[key]


def device_plan(book: Book, backend: Backend, grouping: Grouping) -> tuple[Any, list]:
    key = ("plan", backend.name, grouping.level)
    if key not in book._cache:
        plan = plan_segmented_sum(grouping.codes, grouping.n_groups)
        book._cache[key] = (plan, backend.plan_to_device(plan))
    return book._cache[key]


def check_finite(sums: np.ndarray, out_host: Callable[[], np.ndarray], book: Book | None,
                 grouping: Grouping | None = None, perm: np.ndarray | None = None,
                 names: Sequence[str] = schema.MEASURE_NAMES, what: str = "inputs give a non-finite result",
                 source: str | None = None) -> None:
    """Never let NaN or inf reach an aggregate silently: name the positions that produced them, or,
    when every position is finite but a group's sum overflows, the group.

    ``out_host()``: the per-position values (rows ``names``, one column per position; ``perm[c]``
    the book row of column c when the columns are not in book order; ``grouping.codes`` then per
    column too). ``source``: the name errors carry (default: the book's positions source; ``book``
    may be None when ``source`` is given)."""
    if np.isfinite(sums).all():
        return
    values = out_host()
    bad_cols = ~np.isfinite(values)
    cols = np.flatnonzero(bad_cols.any(axis=0))
    rows = np.sort(perm[cols]) if perm is not None else cols
    if source is None:
        source = book.sources.get("positions", "positions") if book is not None else "positions"
    if rows.size:
        measure = names[int(np.flatnonzero(bad_cols.any(axis=1))[0])] if len(names) == values.shape[0] else None
        raise nonfinite_positions_error(source, measure, rows.tolist(), int(rows.size), what)
    m, g = (int(x[0]) for x in np.nonzero(~np.isfinite(sums)))
    where = ""
    members = np.zeros(0, dtype=np.int64)
    if grouping is not None and g < grouping.n_groups:
        where = " (group " + ", ".join(f"{k}={grouping.keys[k][g]}" for k in grouping.keys) + ")"
        members = np.flatnonzero(grouping.codes == g)
        if perm is not None:
            members = np.sort(perm[members])
    raise group_overflow_error(source, names[m] if m < len(names) else None, where, members.tolist(),
                               int(members.size))


def nonfinite_positions_error(source: str, measure: str | None, rows: Sequence[int], n_bad: int,
                              what: str = "inputs give a non-finite result") -> InvalidInput:
    """The error for positions whose values are not finite (``rows``: book rows, 0-based; also raised
    by a sharded run's coordinator, :mod:`gpuskew.distributed`)."""
    return InvalidInput(source, measure, f"{what} (overflow: check quantity, contract_size, spot, strike, iv and "
                                         "forward of these positions)", rows=list(rows), n_bad=n_bad)


def group_overflow_error(source: str, measure: str | None, where: str, rows: Sequence[int],
                         n_bad: int) -> InvalidInput:
    """The error for a group sum that overflows although every position is finite (``where``: the
    group, as `` (group underlying=..., ...)``)."""
    return InvalidInput(source, measure, f"every position is finite but their sum per group overflows{where}: check "
                                         "the quantities and contract sizes of its positions", rows=list(rows),
                        n_bad=n_bad)


def exposures_table(level: tuple[str, ...], all_tags: list[str], grouping: Grouping,
                     sums: np.ndarray, counts: np.ndarray, expired: np.ndarray,
                     spot_by_name: dict[str, float]) -> pa.Table:
    n = grouping.n_groups
    cols: dict[str, pa.Array] = {
        "level": pa.array([",".join(level) if level else "underlying"] * n, pa.string()),
        "underlying": pa.array(grouping.keys["underlying"], pa.string()),
    }
    for tag in all_tags:
        cols[tag] = pa.array(grouping.keys[tag] if tag in level else [None] * n, pa.string())
    cols["spot"] = pa.array([spot_by_name[u] for u in grouping.keys["underlying"]], pa.float64())
    cols["n_positions"] = pa.array(counts, pa.int64())
    cols["n_expired"] = pa.array(expired, pa.int64())
    for m, name in enumerate(schema.MEASURE_NAMES):
        cols[name] = pa.array(sums[m], pa.float64())
    return pa.table(cols)


def _dictionary(indices: np.ndarray, values: pa.Array) -> pa.DictionaryArray:
    """A dictionary-encoded string column from int indices into ``values`` (no string copies)."""
    return pa.DictionaryArray.from_arrays(pa.array(indices.astype(np.int32, copy=False)), values)


def _per_position(inst_column: pa.ChunkedArray, instrument_index: np.ndarray) -> pa.Array:
    """An instruments column repeated per position: strings as a dictionary column (encoded once
    over the few thousand instruments, then indexed per position), numbers by take."""
    if pa.types.is_string(inst_column.type):
        enc = pc.dictionary_encode(inst_column.combine_chunks())
        codes = enc.indices.fill_null(-1).to_numpy(zero_copy_only=False)[instrument_index]
        indices = pa.array(np.maximum(codes, 0).astype(np.int32), mask=codes < 0)  # null stays null
        return pa.DictionaryArray.from_arrays(indices, enc.dictionary)
    return pc.take(inst_column, pa.array(instrument_index))


def _positions_table(book: Book, flat: FlatPositions, T: np.ndarray, out: np.ndarray,
                     status: np.ndarray) -> pa.Table:
    """positions.parquet: the input position columns, the instrument and market context, every
    measure and the status. String columns are dictionary-encoded (categorical): the instrument
    and context columns come from the per-position instrument index without copying strings, which
    makes the table cheap to build and the Parquet file fast to write."""
    inst = book.instruments
    p = flat.instrument_index
    cols: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name in book.positions.column_names:
        col = book.positions[name]
        if name == "instrument":
            col = _dictionary(p, inst["instrument"].combine_chunks())
        elif pa.types.is_string(col.type):
            col = pc.dictionary_encode(col)
        cols[name] = col
    for name in ("underlying", "kind", "settlement", "option_type", "strike", "expiry", "contract_size"):
        if name not in cols:
            cols[name] = _per_position(inst[name], p)
    cols["spot"] = pa.array(flat.S, pa.float64())
    cols["time_to_expiry"] = pa.array(T, pa.float64())
    # the market inputs of each position (what `gpuskew explain` needs to move from one run to the next)
    cols["rate"] = pa.array(flat.r, pa.float64())
    cols["iv"] = pa.array(flat.vol, pa.float64(), mask=flat.kind != schema.KINDS.index("option"))
    cols["forward"] = pa.array(flat.fwd, pa.float64(), mask=flat.fwd <= 0.0)
    for m, name in enumerate(schema.MEASURE_NAMES):
        cols[name] = pa.array(out[m], pa.float64())
    cols["status"] = _dictionary(status, pa.array(schema.STATUS_NAMES, pa.string()))
    return schema.with_units(pa.table(cols), schema.POSITIONS_OUT)


def _summary(book: Book, chosen: Backend, requested: str, when: datetime, levels: list[tuple[str, ...]],
             tables: list[pa.Table], exposures: pa.Table, n_expired: int, timings: dict) -> dict:
    """summary.json of a run: version, backend and why, as_of, inputs and their hashes, counts,
    warnings, stage timings and the totals per underlying."""
    warnings = []
    if n_expired:
        warnings.append(f"{n_expired} position(s) on expired options/futures were not priced "
                        "(status 'expired', zero greeks)")
    under = exposures.filter(pc.equal(exposures["level"], "underlying")).to_pylist()
    level_names = [",".join(lv) or "underlying" for lv in [()] + levels]
    totals = ("spot", "delta", "delta_pa", "delta_usd", "gamma_1pct", "vega_usd", "theta_usd", "value_usd",
              "n_positions")
    return {
        "version": __version__,
        "as_of": iso_z(when),
        "backend": {"requested": requested, "used": chosen.name, "device": chosen.device,
                    "reason": chosen.reason},
        "inputs": {name: {"source": book.sources[name], "hash": content_hash}  # what the run id hashes
                   for name, content_hash in book.content_hashes().items()},
        "counts": {"positions": len(book), "instruments": book.instruments.num_rows,
                   "underlyings": book.underlyings.num_rows, "expired": n_expired,
                   "groups": {name: t.num_rows for name, t in zip(level_names, tables)}},
        "group_by": [list(lv) for lv in levels],
        "warnings": warnings,
        "timings_s": timings,
        "totals": {row["underlying"]: {k: row[k] for k in totals} for row in under},
    }


@dataclass
class Priced:
    """Every measure of every position on the backend: ``out`` (N_MEASURES x n, on the backend's
    device), ``status`` (host int8), ``h_T`` (host, years to expiry per held instrument; ``T`` per
    position, gathered on first use) and the flat view priced."""

    out: Any
    status: np.ndarray
    h_T: np.ndarray
    flat: FlatPositions
    when: datetime

    @cached_property
    def T(self) -> np.ndarray:
        """Years to expiry per position."""
        return self.h_T[self.flat.pos_inst]


@dataclass
class GroupSums:
    """Sums of every measure per group of one level, in the fixed reduction order:
    ``sums`` (N_MEASURES x n_groups, float64), group keys in ``grouping.keys``, position counts."""

    level: tuple[str, ...]
    grouping: Grouping
    sums: np.ndarray
    counts: np.ndarray
    expired: np.ndarray


def device_columns(book: Book, when: datetime, chosen: Backend) -> tuple[dict[str, Any], np.ndarray]:
    """The kernel arguments of a pricing pass on ``chosen``'s device (static columns uploaded once
    and kept with the book, then the market columns and T per held instrument), and T on the host."""
    flat = book.flat()
    h_T = flat.held_time_to_expiry(to_micros(when))
    cols = dict(_device_state(book, chosen, flat))
    for name in HELD_MARKET_COLUMNS:
        cols[name] = chosen.to_device(getattr(flat, name))
    cols["h_T"] = chosen.to_device(h_T)
    return cols, h_T


def price_positions(book: Book, when: datetime, chosen: Backend,
                    columns: tuple[dict[str, Any], np.ndarray] | None = None) -> Priced:
    """One kernel pass over every position of ``book`` at ``when`` on backend ``chosen`` (static
    columns stay on the device with the book; only the market columns and T move). ``columns``:
    what :func:`device_columns` returned for the same book and ``when``, if already uploaded."""
    flat = book.flat()
    cols, h_T = columns if columns is not None else device_columns(book, when, chosen)
    out_dev, status_dev = chosen.held_greeks(cols)
    status = np.asarray(chosen.to_host(status_dev))
    return Priced(out_dev, status, h_T, flat, when)


def sum_groups(book: Book, priced: Priced, chosen: Backend, levels: Sequence[tuple[str, ...]]) -> list[GroupSums]:
    """Group sums of every level (the per-underlying level ``()`` first), by the fixed tree;
    raises InvalidInput naming the positions when a sum is not finite."""
    expired_mask = priced.status == schema.STATUS_EXPIRED
    out: list[GroupSums] = []
    for level in [()] + [lv for lv in levels if lv != ()]:
        grouping = level_grouping(book, priced.flat, level)
        plan, dev_plan = device_plan(book, chosen, grouping)
        sums = chosen.segmented_sum(priced.out, plan, dev_plan)
        check_finite(sums, lambda: np.asarray(chosen.to_host(priced.out)), book, grouping)
        counts = np.bincount(grouping.codes, minlength=grouping.n_groups)
        expired = np.bincount(grouping.codes[expired_mask], minlength=grouping.n_groups)
        out.append(GroupSums(level, grouping, sums, counts, expired))
    return out


def as_backend(backend: str | Backend, n_positions: int) -> Backend:
    """A Backend instance: ``backend`` itself, or the one :func:`resolve_backend` picks."""
    return backend if isinstance(backend, Backend) else resolve_backend(backend, n_positions)


def compute(book: Book, as_of: str | datetime | None = None, backend: str | Backend = "auto",
            group_by: str | Sequence[str] | Sequence[Sequence[str]] | None = (),
            progress: Callable[[str], None] | None = None, positions_table: bool = True,
            on_positions: Callable[[pa.Table], None] | None = None) -> RunResult:
    """Price every position of ``book`` at ``as_of`` and sum per underlying and per ``group_by``.

    ``backend``: 'auto' | 'cpu' | 'cuda', or a resolved :class:`Backend` (kept by a Session).
    ``group_by``: tag columns, e.g. "desk,book" (one level) or ["desk", "desk,book"] (two levels);
    the per-underlying level is always there. Returns a :class:`RunResult`;
    ``positions_table=False`` skips building the per-position table; ``on_positions(table)`` is
    called with it as soon as it is built, before the group sums (the CLI writes it in the
    background meanwhile).
    """
    if not isinstance(book, Book):
        from collections.abc import Mapping as _Mapping
        from pathlib import Path as _Path

        from gpuskew.core.book import load_book

        if not isinstance(book, (_Mapping, str, _Path)):
            raise TypeError(f"compute() takes a Book (gpuskew.load_book), a book folder or a mapping of the "
                            f"four tables, got {type(book).__name__}")
        book = load_book(book)
    timer = _Timer(progress)
    when = parse_as_of(as_of)
    levels = parse_levels(group_by, book.tags)
    chosen = as_backend(backend, len(book))
    book.flat()
    timer.lap("prepare")
    columns = device_columns(book, when, chosen)
    chosen.synchronize()
    timer.lap("to_device")
    priced = price_positions(book, when, chosen, columns)
    chosen.synchronize()
    timer.lap("greeks")

    positions = pa.table({})
    if positions_table:  # first: a caller may start writing it while the group sums run
        out = np.asarray(chosen.to_host(priced.out))
        positions = _positions_table(book, priced.flat, priced.T, out, priced.status)
        if on_positions is not None:
            on_positions(positions)
    timer.lap("tables")

    all_tags = sorted({t for lv in levels for t in lv}, key=lambda t: book.tags.index(t))
    spot_by_name = dict(zip(priced.flat.underlying_names, priced.flat.underlying_spot.tolist()))
    groups = sum_groups(book, priced, chosen, levels)
    tables = [exposures_table(g.level, all_tags, g.grouping, g.sums, g.counts, g.expired, spot_by_name)
              for g in groups]
    exposures = schema.with_units(pa.concat_tables(tables), schema.EXPOSURES)
    chosen.synchronize()
    timer.lap("group_sums")

    n_expired = int((priced.status == schema.STATUS_EXPIRED).sum())
    summary = _summary(book, chosen, backend if isinstance(backend, str) else chosen.name, when, levels,
                       tables, exposures, n_expired, timer.timings)
    return RunResult(positions, exposures, summary, levels)
