"""The Session: the one step every job runs.

    session = Session(book, limits, backend="auto", state=MemoryAlertState(), group_by=["desk"])
    step = session.step(as_of, market=MarketUpdate(underlyings=...), fills=fills_table)
    step.exposures, step.adherence, step.hedges, step.alerts, step.summary
    step.write(out_dir)                     # exactly what `gpuskew run` writes

A Session holds the resident book (its flat arrays, and the static columns on the device with the
CUDA backend), the backend, the parsed limits and the alert state. One step: apply market moves and
fills (without reloading or re-validating the book: only the update is checked), price every
position in one kernel pass, sum per group in the fixed order, then adherence, alerts, hedges and
quotes. ``gpuskew run`` is one step; ``--demo-steps``, ``gpuskew backtest`` and ``gpuskew monitor``
are loops of steps, so the same state gives the same bits in every job.

Alert state is pluggable (:class:`AlertState`): the history files (batch runs,
:class:`gpuskew.history.HistoryAlertState`), memory (:class:`MemoryAlertState`: the monitor, the
demo loop) or arrays (:class:`ArrayAlertState`: backtests).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.core.book import Book
from gpuskew.core.engine import GroupSums, RunResult, as_backend, compute, parse_as_of, price_positions, sum_groups
from gpuskew.core.groups import group_id, parse_levels
from gpuskew.core.ledger import PositionLedger
from gpuskew.errors import InvalidConfig, InvalidInput
from gpuskew.timeutil import iso_z

if TYPE_CHECKING:  # annotations only: the limits come parsed
    from gpuskew.policy.limits import Limits

#: output files of a run, in the order they are published (summary.json last: the commit marker)
RUN_FILES = ("positions.parquet", "positions.arrow", "exposures.parquet", "adherence.parquet", "hedges.parquet",
             "alerts.jsonl", "summary.json")
#: formats of the per-position output: Parquet, Arrow IPC (fastest to write and to memory-map), none
POSITION_FORMATS = ("parquet", "arrow", "none")

_SEVERITY = {s: i for i, s in enumerate(schema.ADHERENCE_STATUSES)}


# ---------------------------------------------------------------------------------------------
# alert state


class AlertState(Protocol):
    """Where a Session finds the previous step's effective statuses (for alert transitions and
    hysteresis) and records the current ones."""

    def previous(self, as_of: datetime, run_id: str) -> pa.Table | None:
        """Adherence rows of the step before ``as_of`` (with ``effective_status``), or None."""

    def already_raised(self, as_of: datetime, run_id: str) -> bool:
        """True when this exact step (same as_of and run id) was completed before: its alerts were
        raised then and must not be raised again."""

    def record(self, as_of: datetime, run_id: str, effective: pa.Table) -> None:
        """Remember this step's effective statuses."""


class NoAlertState:
    """No memory: every group not ok is raised (a batch run without a history)."""

    def previous(self, as_of: datetime, run_id: str) -> pa.Table | None:
        return None

    def already_raised(self, as_of: datetime, run_id: str) -> bool:
        return False

    def record(self, as_of: datetime, run_id: str, effective: pa.Table) -> None:
        pass


class MemoryAlertState:
    """The previous step's effective statuses in memory (a monitor, a demo loop)."""

    def __init__(self) -> None:
        self.last: pa.Table | None = None
        self.last_key: tuple[datetime, str] | None = None

    def previous(self, as_of: datetime, run_id: str) -> pa.Table | None:
        if self.last_key == (as_of, run_id):
            return self._before
        return self.last

    def already_raised(self, as_of: datetime, run_id: str) -> bool:
        return self.last_key == (as_of, run_id)

    def record(self, as_of: datetime, run_id: str, effective: pa.Table) -> None:
        if self.last_key != (as_of, run_id):
            self._before = self.last
        self.last, self.last_key = effective, (as_of, run_id)

    _before: pa.Table | None = None


class ArrayAlertState:
    """Effective statuses as an int8 array over a fixed list of groups (backtests: a status per
    group per path, no tables). ``ids``: the groups' :func:`gpuskew.core.groups.group_id`."""

    def __init__(self, ids: Sequence[tuple]):
        self.ids = list(ids)
        self._pos = {gid: i for i, gid in enumerate(self.ids)}
        self.status = np.zeros(len(self.ids), dtype=np.int8)
        self._seen = False

    def previous(self, as_of: datetime, run_id: str) -> pa.Table | None:
        if not self._seen:
            return None
        return pa.table({"level": [g[0] for g in self.ids], "underlying": [g[1] for g in self.ids],
                         **_tag_columns(self.ids),
                         "effective_status": [schema.ADHERENCE_STATUSES[s] for s in self.status]})

    def already_raised(self, as_of: datetime, run_id: str) -> bool:
        return False

    def record(self, as_of: datetime, run_id: str, effective: pa.Table) -> None:
        tags = schema.ADHERENCE.tag_columns(effective)
        for row in effective.select(["level", "underlying", *tags, "effective_status"]).to_pylist():
            i = self._pos.get(group_id(row, tags))
            if i is not None:
                self.status[i] = _SEVERITY[row["effective_status"]]
        self._seen = True


def _tag_columns(ids: Sequence[tuple]) -> dict[str, list]:
    names = sorted({t for g in ids for t, _ in g[2]})
    return {n: [dict(g[2]).get(n) for g in ids] for n in names}


# ---------------------------------------------------------------------------------------------
# inputs of a step


@dataclass
class MarketUpdate:
    """New market data for a step: partial tables merged into the book's by key.

    ``underlyings``: rows with ``underlying`` and any of spot, rate, vol, funding_rate;
    ``quotes``: rows with ``instrument`` and any of iv, forward. A null keeps the current value; a
    key not in the book is added.
    """

    underlyings: pa.Table | None = None
    quotes: pa.Table | None = None


def _merge(current: pa.Table, update: pa.Table | None, key: str) -> pa.Table:
    """``current`` with the rows of ``update`` merged in by ``key``: a non-null value of an update
    row replaces the current one (the last update row of a key wins); update rows of new keys are
    appended, columns they lack null."""
    if update is None or update.num_rows == 0:
        return current
    source = f"<{key} update>"
    if key not in update.column_names:
        raise InvalidInput(source, key, "missing required column")
    unknown = [c for c in update.column_names if c not in current.column_names]
    if unknown:
        raise InvalidInput(source, unknown[0], "not a column of the table it updates")
    idx = np.asarray(pc.index_in(update.column(key), value_set=current.column(key)).fill_null(-1),
                     dtype=np.int64)
    matched = idx >= 0
    cols = {}
    for name in current.column_names:
        col = current.column(name).combine_chunks()
        if name != key and name in update.column_names:
            upd = update.column(name).cast(col.type).combine_chunks()
            valid = np.asarray(upd.is_valid(), dtype=bool) & matched
            take = np.full(len(col), -1, dtype=np.int64)
            take[idx[valid]] = np.flatnonzero(valid)
            has = take >= 0
            if has.any():
                col = pc.if_else(pa.array(has), upd.take(pa.array(np.where(has, take, 0))), col)
        cols[name] = col
    merged = pa.table(cols, schema=current.schema)
    fresh = update.filter(pa.array(~matched))
    if fresh.num_rows:
        keys = fresh.column(key).to_pylist()
        last = sorted({k: i for i, k in enumerate(keys)}.values())
        fresh = fresh.take(pa.array(last, pa.int64()))
        extra = {f.name: (fresh.column(f.name).cast(f.type) if f.name in fresh.column_names
                          else pa.nulls(fresh.num_rows, f.type)) for f in merged.schema}
        merged = pa.concat_tables([merged, pa.table(extra, schema=merged.schema)])
    return merged


# ---------------------------------------------------------------------------------------------
# result of a step


@dataclass
class StepResult:
    """Everything one step produced."""

    result: RunResult
    run_id: str
    adherence: Any | None = None  #: gpuskew.adherence.AdherenceResult, with limits
    effective: pa.Table | None = None  #: adherence table + effective_status (after hysteresis)
    alerts: list[dict] = field(default_factory=list)
    #: alerts this step would raise but that were raised already by the same step (a retry)
    alerts_already_raised: int = 0
    #: hedge fills executed before this step, where known (the demo loop): the history's executions
    executions: pa.Table | None = None

    @property
    def summary(self) -> dict:
        return self.result.summary

    @property
    def positions(self) -> pa.Table:
        return self.result.positions

    @property
    def exposures(self) -> pa.Table:
        return self.result.exposures

    @property
    def hedges(self) -> pa.Table | None:
        return None if self.adherence is None else self.adherence.hedges

    @property
    def as_of(self) -> str:
        return self.summary["as_of"]

    def output_files(self, positions: str = "parquet") -> dict[str, Callable[[Path], None]]:
        """The files of a run folder and how to write each (for :func:`gpuskew.io.publish_run`);
        ``positions``: ``parquet`` (positions.parquet), ``arrow`` (positions.arrow) or ``none``."""
        from gpuskew.io import write_json, write_parquet

        files: dict[str, Callable[[Path], None]] = {}
        if positions != "none":
            files[position_file(positions)] = position_writer(self.result.positions, positions)
        files["exposures.parquet"] = lambda p: write_parquet(self.result.exposures, p)
        if self.adherence is not None:
            from gpuskew.adherence.alerts import write_alerts_jsonl

            effective, hedges = self.effective, self.adherence.hedges
            files["adherence.parquet"] = lambda p: write_parquet(effective, p)
            files["hedges.parquet"] = lambda p: write_parquet(hedges, p)
            files["alerts.jsonl"] = lambda p: write_alerts_jsonl(self.alerts, p)
        self.summary.setdefault("outputs", {})["files"] = [n for n in RUN_FILES if n in files or n == "summary.json"]
        files["summary.json"] = lambda p: write_json(self.summary, p)
        return files

    def write(self, out_dir: str | Path, overwrite: bool = False, positions: str = "parquet",
              stage: Any = None) -> list[Path]:
        """Write the run folder atomically (summary.json last). ``stage``: a
        :class:`gpuskew.io.OutputStage` already holding some files (the positions written in the
        background while the step went on): the rest is added to it and it is published."""
        from gpuskew.io import publish_run

        self.summary.setdefault("outputs", {})["folder"] = str(out_dir)
        self.summary["outputs"]["positions"] = positions
        files = self.output_files(positions)
        if stage is None:
            return publish_run(out_dir, files, overwrite=overwrite, stale=RUN_FILES)
        for name, writer in files.items():
            if name not in stage.names:
                stage.write(name, writer)
        return stage.publish(RUN_FILES)

    def history_tables(self) -> dict[str, pa.Table]:
        """The tables a history stores for this step (and the explain inputs of its positions:
        gpuskew.core.explain_inputs)."""
        from gpuskew.adherence.alerts import alerts_table

        tables: dict[str, pa.Table] = {"exposures": self.result.exposures}
        from gpuskew.core.explain_inputs import EXPLAIN_INPUTS, explain_inputs_table

        # per instrument and group cell: what the report's daily P&L explain needs
        cells = explain_inputs_table(self.result.positions, self.result.levels)
        if cells is not None:
            tables[EXPLAIN_INPUTS] = cells
        if self.adherence is not None and self.effective is not None:
            tables["hedges"] = self.adherence.hedges
            if self.alerts:
                tables["alerts"] = alerts_table(self.alerts)
            tables["adherence"] = self.effective
        return tables

    def __repr__(self) -> str:
        s = self.summary
        adh = s.get("adherence")
        extra = f", score {adh['score']:.3f}, {adh['alerts']} alert(s)" if adh else ""
        return (f"<gpuskew.StepResult {s['as_of']}: {s['counts']['positions']:,} positions, "
                f"{self.exposures.num_rows} groups, backend {s['backend']['used']}{extra}>")

    def _repr_html_(self) -> str:
        import html

        return f"<b>{html.escape(repr(self))}</b>"


def position_file(fmt: str) -> str:
    """The file name of the per-position output in format ``fmt`` (parquet or arrow)."""
    if fmt not in POSITION_FORMATS[:2]:
        raise ValueError(f"positions format must be one of {', '.join(POSITION_FORMATS)}, got {fmt!r}")
    return f"positions.{fmt}"


def position_writer(table: pa.Table, fmt: str) -> Callable[[Path], None]:
    """How to write the positions table in format ``fmt`` (atomic, deterministic)."""
    from gpuskew.io import write_arrow, write_parquet

    return (lambda p: write_parquet(table, p)) if fmt == "parquet" else (lambda p: write_arrow(table, p))


# ---------------------------------------------------------------------------------------------
# run identity


def run_id(book: Book, as_of: datetime, levels: Sequence[tuple[str, ...]], limits_hash: str | None) -> str:
    """Deterministic id of a run: a hash of its as_of, the content of its four input tables (not
    where they were read from), the limits file's content and the grouping levels. The same run
    appended twice doubles nothing; the same bytes read from another folder are the same run; a run
    with other levels is another run."""
    material = json.dumps({"as_of": iso_z(as_of), "inputs": book.content_hashes(), "limits": limits_hash,
                           "levels": [list(lv) for lv in levels]}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def worst_statuses(effective: pa.Table) -> dict[str, str]:
    """Worst effective status per underlying over all its monitored groups."""
    worst: dict[str, str] = {}
    for und, status in zip(effective["underlying"].to_pylist(), effective["effective_status"].to_pylist()):
        if status is None:
            continue
        if und not in worst or _SEVERITY[status] > _SEVERITY[worst[und]]:
            worst[und] = status
    return dict(sorted(worst.items()))


# ---------------------------------------------------------------------------------------------
# plausibility


@dataclass(frozen=True)
class Plausibility:
    """Bounds beyond which an input is probably a unit mistake (an iv of 50 meant as 50%): warned
    about loudly, refused with ``strict``."""

    max_iv: float = 5.0  #: implied vol, annualised decimal (5 = 500%)
    max_abs_rate: float = 1.0  #: |rate| and |funding_rate|, annualised decimal
    max_expiry_years: float = 10.0  #: expiry beyond as_of, years


def plausibility_warnings(book: Book, as_of: datetime,
                          bounds: Plausibility) -> list[tuple[str, str, str, list[int]]]:
    """``(table, column, message, rows)`` for every input beyond ``bounds`` (rows 0-based)."""
    out: list[tuple[str, str, str, list[int]]] = []
    iv = book.quotes.column("iv").to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(iv > bounds.max_iv)
    if bad.size:
        out.append(("quotes", "iv", f"iv above {bounds.max_iv:g} (= {bounds.max_iv:.0%}): is it in percent "
                                    "instead of a decimal (0.65 = 65%)?", bad.tolist()))
    for col in ("rate", "funding_rate"):
        v = book.underlyings.column(col).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(np.abs(v) > bounds.max_abs_rate)
        if bad.size:
            out.append(("underlyings", col, f"|{col}| above {bounds.max_abs_rate:g} (annualised decimal: "
                                            "0.05 = 5%)", bad.tolist()))
    exp = book.instruments.column("expiry")
    years = pc.divide(pc.cast(pc.subtract(exp, pa.scalar(as_of, schema.TIMESTAMP)), pa.int64()), 1e6 * schema.SECONDS_PER_YEAR)
    v = years.to_numpy(zero_copy_only=False).astype(np.float64)
    bad = np.flatnonzero(v > bounds.max_expiry_years)
    if bad.size:
        out.append(("instruments", "expiry", f"expiry more than {bounds.max_expiry_years:g} years after as_of",
                    bad.tolist()))
    return out


# ---------------------------------------------------------------------------------------------
# the Session


class Session:
    """The resident book and what each step needs; see the module docstring.

    ``book``: a validated :class:`Book`; ``limits``: parsed limits (None: exposures only);
    ``backend``: 'auto' | 'cpu' | 'cuda' or a Backend; ``state``: an :class:`AlertState` (default
    :class:`NoAlertState`); ``group_by``: levels to compute besides those the limits manage;
    ``limits_hash``: the limits file's content hash (run ids); ``strict``: refuse implausible
    inputs and limits rules that match no group instead of warning.
    """

    def __init__(self, book: Book, limits: Limits | None = None, backend: Any = "auto",
                 state: AlertState | None = None, group_by: Any = (), *, limits_hash: str | None = None,
                 limits_source: str | None = None, strict: bool = False,
                 plausibility: Plausibility = Plausibility()):
        self.book = book
        self.limits = limits
        self.requested_backend = backend if isinstance(backend, str) else backend.name
        self._backend = backend
        self.state: AlertState = state if state is not None else NoAlertState()
        self.strict = strict
        self.plausibility = plausibility
        self.limits_hash = limits_hash
        self.limits_source = limits_source
        levels = parse_levels(group_by, book.tags)
        if limits is not None:
            for lv in limits.levels:
                unknown = [t for t in lv if t not in book.tags]
                if unknown:
                    raise InvalidConfig(limits.source, "levels", ",".join(lv),
                                        f"{unknown[0]!r} is not a tag column of the positions "
                                        f"(tags: {', '.join(book.tags) or 'none'})")
                if lv not in levels:
                    levels.append(lv)
            self._check_match_keys()
        self.levels: list[tuple[str, ...]] = levels
        self._ledger: PositionLedger | None = None
        self._ledger_positions: pa.Table | None = None

    # -- resources -------------------------------------------------------------------------------
    @property
    def backend(self):
        """The resolved Backend (resolved on first use, then kept with the resident arrays)."""
        if isinstance(self._backend, str):
            self._backend = as_backend(self._backend, len(self.book))
        return self._backend

    def _check_match_keys(self) -> None:
        assert self.limits is not None
        allowed = {"level", "underlying", *self.book.tags}
        for g in self.limits.groups:
            for k, _ in g.match:
                if k not in allowed:
                    raise InvalidConfig(self.limits.source, f"group[{g.index}].match.{k}", k,
                                        "not a match key: use level, underlying or a tag column of the "
                                        f"positions ({', '.join(self.book.tags) or 'no tags'})")

    # -- updates ---------------------------------------------------------------------------------
    def apply_market(self, market: MarketUpdate) -> None:
        """Merge new market data into the resident book (only the update is validated)."""
        und = _merge(self.book.underlyings, market.underlyings, "underlying")
        quo = _merge(self.book.quotes, market.quotes, "instrument")
        self.book = self.book.with_market(und, quo)

    def apply_fills(self, fills: pa.Table | Sequence[Mapping[str, Any]]) -> dict[str, int]:
        """Apply fills (``instrument``, ``quantity`` contracts signed, ``price`` USD, tag columns)
        to the resident book by the position-keeping rules of :mod:`gpuskew.core.ledger`.
        Returns counts by action. Each fill is checked (known instrument, finite nonzero
        quantity, positive price); the book is not validated again."""
        table = fills if isinstance(fills, pa.Table) else pa.Table.from_pylist(list(fills))
        if table.num_rows == 0:
            return {}
        tags = list(self.book.tags)
        for name in ("instrument", "quantity", "price"):
            if name not in table.column_names:
                raise InvalidInput("<fills>", name, "missing required column")
        inst = self.book.instruments
        known = pc.index_in(table.column("instrument"), value_set=inst.column("instrument"))
        missing = np.flatnonzero(np.asarray(pc.is_null(known)))
        if missing.size:
            raise InvalidInput("<fills>", "instrument", "fill on an unknown instrument", rows=missing.tolist(),
                               values=table.column("instrument").take(pa.array(missing)).to_pylist())
        inverse = pc.equal(inst.column("settlement"), "inverse").to_numpy(zero_copy_only=False)
        idx = known.to_numpy(zero_copy_only=False)
        qty = table.column("quantity").cast(pa.float64()).to_numpy(zero_copy_only=False)
        price = table.column("price").cast(pa.float64()).to_numpy(zero_copy_only=False)
        bad = np.flatnonzero(~(np.isfinite(qty) & (qty != 0) & np.isfinite(price) & (price > 0)))
        if bad.size:
            raise InvalidInput("<fills>", "quantity", "a fill needs a finite nonzero quantity and a finite "
                                                      "price > 0", rows=bad.tolist())
        ledger = self._ledger
        if ledger is None or self._ledger_positions is not self.book.positions:
            ledger = self._ledger = PositionLedger.from_table(self.book.positions, tags)
        tag_values = {t: table.column(t).to_pylist() if t in table.column_names else [None] * table.num_rows
                      for t in tags}
        names = table.column("instrument").to_pylist()
        counts: dict[str, int] = {}
        for i in range(table.num_rows):
            out = ledger.apply(names[i], float(qty[i]), float(price[i]),
                                     {t: tag_values[t][i] for t in tags}, bool(inverse[idx[i]]))
            counts[out.action] = counts.get(out.action, 0) + 1
        ledger.settle()
        if 2 * len(ledger) < ledger.n_rows:  # mostly closed rows: renumber (amortised, rare)
            ledger.compact()
        positions = ledger.to_table()
        self.book = self.book.with_positions(positions)
        self._ledger_positions = self.book.positions
        return counts

    # -- steps -----------------------------------------------------------------------------------
    def group_sums(self, as_of: Any, market: MarketUpdate | None = None) -> list[GroupSums]:
        """The lean step for many repricings (backtests): group sums of every measure, per level, in
        the fixed order, without output tables, adherence or alerts."""
        if market is not None:
            self.apply_market(market)
        priced = price_positions(self.book, parse_as_of(as_of), self.backend)
        return sum_groups(self.book, priced, self.backend, self.levels)

    def step(self, as_of: Any = None, market: MarketUpdate | None = None,
             fills: pa.Table | Sequence[Mapping[str, Any]] | None = None,
             progress: Callable[[str], None] | None = None, positions_table: bool = True,
             on_positions: Callable[[pa.Table], None] | None = None) -> StepResult:
        """One step: apply ``market`` and ``fills``, price, group, adherence, alerts, hedges, quotes.

        ``on_positions(table)`` is called with the per-position table as soon as it is built,
        before the group sums and adherence (the CLI starts writing it there, in the background).
        Fills are applied before the market: new positions drop the flat view, so the market then
        lands on a book that flattens once (the same columns as moving the market first)."""
        if fills is not None:
            self.apply_fills(fills)
        if market is not None:
            self.apply_market(market)
        when = parse_as_of(as_of)
        warnings = self.plausibility_warnings(when)
        result = compute(self.book, as_of=when, backend=self.backend, group_by=self.levels, progress=progress,
                         positions_table=positions_table, on_positions=on_positions)
        return self.finish(StepResult(result, ""), when, warnings, progress)

    def finish(self, step: StepResult, when: datetime, warnings: Sequence[str] = (),
               progress: Callable[[str], None] | None = None) -> StepResult:
        """The rest of a step once its exposures are computed (here, or by the shards of a cluster:
        :mod:`gpuskew.distributed`): summary fields, run id, then adherence, alerts, hedges and
        quotes with limits. ``warnings``: from :meth:`plausibility_warnings`."""
        summary = step.summary
        summary["backend"]["requested"] = self.requested_backend
        summary["warnings"].extend(warnings)
        summary["limits"] = {"source": self.limits_source, "hash": self.limits_hash}
        step.run_id = summary["run_id"] = run_id(self.book, when, self.levels, self.limits_hash)
        if self.limits is not None:
            self.adhere(step, when, progress)
        return step

    def plausibility_warnings(self, when: datetime) -> list[str]:
        """Warnings about implausible inputs at ``when`` (raises InvalidInput with ``strict``)."""
        found = [InvalidInput(self.book.sources.get(table, table), column, rule, rows=rows)
                 for table, column, rule, rows in plausibility_warnings(self.book, when, self.plausibility)]
        if found and self.strict:
            first = found[0]
            raise InvalidInput(first.source, first.column, first.rule + " (--strict refuses it)",
                               rows=first.rows, n_bad=first.n_bad)
        return [f"implausible input: {e.source}, column '{e.column}': {e.rule}; "
                f"rows {', '.join(str(r) for r in e.row_numbers)}{' ...' if e.n_bad > len(e.rows) else ''}"
                for e in found]

    def adhere(self, step: StepResult, when: datetime, progress: Callable[[str], None] | None = None) -> None:
        """Adherence, alerts (through the alert state), hedges and quotes of a step whose exposures
        are computed (``step.result``): fills ``step.adherence``, ``step.effective``, ``step.alerts``
        and the summary's ``adherence`` section. Jobs that price positions their own way (the
        monitor's dirty-only repricing) call it on the exposures they built."""
        from gpuskew.adherence import compute_adherence
        from gpuskew.adherence.alerts import evaluate_alerts

        limits = self.limits
        assert limits is not None
        summary = step.summary
        t0 = time.perf_counter()
        adh = compute_adherence(step.exposures, self.book.underlyings, self.book.instruments, self.book.quotes,
                                limits, when)
        unmatched = unmatched_rules(limits, step.exposures)
        if unmatched:
            if self.strict:
                raise InvalidConfig(limits.source, unmatched[0]["rule"], unmatched[0]["match"],
                                    "matches no group of this run (--strict refuses it)")
            summary["warnings"].extend(f"limits rule {u['rule']} ({u['match']}) matches no group of this run"
                                       for u in unmatched)
        retry = self.state.already_raised(when, step.run_id)
        previous = self.state.previous(when, step.run_id)
        alerts, effective = evaluate_alerts(
            adh.table, previous, thresholds=lambda row: limits.policy_for(row).thresholds,
            hysteresis=lambda row: limits.policy_for(row).hysteresis, as_of=when, hedges=adh.hedges)
        if retry:
            step.alerts_already_raised, alerts = len(alerts), []
        self.state.record(when, step.run_id, effective)
        summary["timings_s"]["adherence"] = round(time.perf_counter() - t0, 6)
        if progress:
            progress("adherence")
        statuses = effective["effective_status"].to_pylist()
        summary["adherence"] = {
            "score": adh.score,
            "score_level": adh.score_level,
            "groups": effective.num_rows,
            "status_counts": {s: statuses.count(s) for s in schema.ADHERENCE_STATUSES},
            "worst_status_by_underlying": worst_statuses(effective),
            "alerts": len(alerts),
            "alerts_already_raised": step.alerts_already_raised,
            "hedges_proposed": adh.hedges.num_rows,
            "previous_run_found": previous is not None,
            "unmatched_rules": unmatched,
        }
        step.adherence, step.effective, step.alerts = adh, effective, alerts


def unmatched_rules(limits: Any, exposures: pa.Table) -> list[dict]:
    """The ``[[group]]`` rules and ``[underlying.X]`` sections of ``limits`` that match no group of
    ``exposures``: ``[{"rule": "group[3]", "match": "desk=options-mm"}, ...]``."""
    from gpuskew.core.groups import GroupIndex

    groups = GroupIndex(exposures, schema.EXPOSURES)
    rows = [groups.row(i) for i in range(len(groups))]
    out = []
    for g in limits.groups:
        if not any(g.matches(r) for r in rows):
            out.append({"rule": f"group[{g.index}]",
                        "match": ", ".join(f"{k}={'|'.join(v)}" for k, v in g.match)})
    present = {r["underlying"] for r in rows}
    for name in limits.underlyings:
        if name not in present:
            out.append({"rule": f"underlying.{name}", "match": f"underlying={name}"})
    return out


__all__ = ["Session", "StepResult", "MarketUpdate", "POSITION_FORMATS", "position_file", "position_writer", "AlertState", "NoAlertState", "MemoryAlertState",
           "ArrayAlertState", "Plausibility", "plausibility_warnings", "run_id", "worst_statuses",
           "unmatched_rules", "RUN_FILES"]
