"""The live state of a monitored book: events in, per-position measures and group sums out.

``LiveState(book, limits, group_by, backend)`` holds the book resident. :meth:`LiveState.apply`
applies one canonical event (DESIGN: position keeping by fills, market data by ticks, listings) and
marks what it touched dirty; :meth:`LiveState.publish` re-prices the dirty positions only, sums
every group from the full per-position arrays in the run's fixed order, and (with limits) checks
adherence and evaluates alerts with hysteresis against the previous publish.

Valuation time. Positions are valued at ``as_of``, which moves with the clock (the latest event time
with ``clock="event"``, the wall clock with ``clock="wall"``) in steps of ``time_step_s``: when the
clock is ``time_step_s`` or more past ``as_of``, ``as_of`` jumps to the clock, options and futures
that expired drop out, and every dated position is re-priced (its time to expiry changed). Between
steps only dirty positions are re-priced. Every publish is therefore exactly what ``gpuskew run``
gives on the same positions and market data at the publish's ``as_of``, bit for bit.

Determinism (a restart replays the journal through the same code): with the event clock a step is
taken before applying the first event at or past ``as_of + time_step``, a function of the event
order alone; steps taken otherwise (wall clock, the final step of ``--until-drained``) are written
to the journal as clock records by the caller and replayed with :meth:`LiveState.step_to`.
"""

from __future__ import annotations

import math
import time
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from gpuskew import schema
from gpuskew.core.book import NO_EXPIRY, Book, years_to_expiry
from gpuskew.monitor.events import Event, Fill, IndexTick, Listing, MarkTick, RateTick, us_to_datetime
from gpuskew.monitor.grouping import LiveGrouping
from gpuskew.monitor.positions import LivePositions
from gpuskew.monitor.pricer import Pricer
from gpuskew.monitor.registry import Registry

SETTLE_INVERSE = schema.SETTLEMENTS.index("inverse")
#: above this fraction of dirty rows one contiguous pass over every row is cheaper than a gather,
#: a kernel call on the subset and a scatter
DENSE_FRACTION = 0.4
#: the source named by errors about the live positions (rows: rows of the live position ledger)
STATE_SOURCE = "<monitor state: live positions>"
#: trade ids remembered for idempotent fills: the most recent ones (about 100 MB of strings at most)
MAX_TRADE_IDS = 1_000_000


class RecentTradeIds:
    """The trade ids of the last ``limit`` fills applied, oldest first: a fill whose trade id is
    among them is a repeat (ignored, ``duplicate_trade_id``). Redeliveries arrive within seconds
    or minutes (a source's acknowledgement window, a restart's replay), far inside the window; a
    producer that repeats a trade more than ``limit`` fills later gets it applied again. The
    snapshot stores the ids in this order, so a restarted monitor forgets exactly what the running
    one would have forgotten (bounded memory, and a bounded ``trades.parquet`` per snapshot)."""

    def __init__(self, ids: Iterable[str] = (), limit: int = MAX_TRADE_IDS):
        self.limit = int(limit)
        self._ids: OrderedDict[str, None] = OrderedDict()
        for trade_id in ids:
            self.add(trade_id)

    def __contains__(self, trade_id: object) -> bool:
        return trade_id in self._ids

    def add(self, trade_id: str) -> None:
        self._ids[trade_id] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def __len__(self) -> int:
        return len(self._ids)

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RecentTradeIds) and list(self._ids) == list(other._ids)


@dataclass
class Publication:
    """What one publish computed."""

    number: int  #: publishes since start
    as_of_us: int  #: valuation time, µs since the epoch
    exposures: pa.Table
    adherence: Any | None = None  #: gpuskew.adherence.AdherenceResult (with limits)
    effective: pa.Table | None = None  #: adherence + effective_status
    alerts: list[dict] = field(default_factory=list)
    repriced: int = 0  #: positions re-priced for this publish
    positions: int = 0  #: positions priced and summed
    pending: int = 0  #: positions held but waiting for market data
    timings_s: dict = field(default_factory=dict)
    warnings: list = field(default_factory=list)
    _rows: dict = field(default_factory=dict, repr=False, compare=False)

    def rows(self, name: str) -> list[dict]:
        """``to_pylist()`` of ``exposures``, ``effective`` or ``hedges`` (the adherence's), rendered once
        per publication and shared by its readers (metrics, /api/state, --publish): do not modify."""
        hit = self._rows.get(name)
        if hit is None:
            table = self.adherence.hedges if name == "hedges" else getattr(self, name)
            hit = self._rows[name] = [] if table is None else table.to_pylist()
        return hit

    @property
    def as_of(self):
        return us_to_datetime(self.as_of_us)


class LiveState:
    """A book kept resident and changed by events (see the module docstring)."""

    def __init__(self, book: Book, *, limits: Any | None = None, group_by: Sequence[str] = (),
                 backend: str = "auto", time_step_s: float = 60.0, clock: str = "event",
                 as_of_us: int | None = None, tags: Sequence[str] | None = None,
                 alert_state: Any | None = None, limits_hash: str | None = None,
                 limits_source: str | None = None):
        from gpuskew.session import MemoryAlertState, Session

        if clock not in ("event", "wall"):
            raise ValueError(f"clock must be 'event' or 'wall', got {clock!r}")
        self.book_sources = dict(book.sources)
        self.tags: tuple[str, ...] = tuple(book.tags if tags is None else tags)
        self.limits = limits
        self.clock = clock
        self.time_step_us = int(round(time_step_s * 1e6))
        self.backend_requested = backend
        #: the Session: the grouping levels (--group-by and the limits' own), the backend, and the
        #: adherence and alert step (its book is refreshed with the live tables at each publish)
        self.session = Session(book, limits, backend, alert_state if alert_state is not None else MemoryAlertState(),
                               list(group_by), limits_hash=limits_hash, limits_source=limits_source)
        self.levels: list[tuple[str, ...]] = list(self.session.levels)
        self.registry = Registry(book)
        self.positions = LivePositions(book.positions, self.tags, self.registry)
        self.grouping = LiveGrouping(self.levels, self.tags)
        reg, pos = self.registry, self.positions
        n = pos.n_rows
        self.grouping.assign_many([reg.und_names[reg.inst_und[i]] for i in pos.inst[:n]],
                                  pos.ledger.tag_values[:n])
        self.backend = self.session.backend
        self.pricer = Pricer(self.backend)
        self.seen_trades = RecentTradeIds()
        self.as_of_us: int | None = as_of_us
        self.clock_us: int | None = as_of_us
        self.expired = np.zeros(0, bool)  #: per instrument: dropped out at an earlier step
        # dirty tracking
        self._dirty_rows: list[int] = []
        self._dirty_inst: set[int] = set()
        self._dirty_und: set[int] = set()
        self._dirty_dated = False
        self._dirty_all = True
        self._priceable_version = 0
        self._structure_seen: tuple | None = None
        self._priced = np.zeros(0, bool)
        self._n_priced = 0
        self._rows_by_inst = np.zeros(0, np.int64)
        self._inst_sorted = np.zeros(0, np.int32)
        self._rows_token = 0  #: changes whenever the priced rows (and the pricer's plans) change
        #: (rows token, counts per level) and (rows token, as_of, expired counts per level)
        self._level_counts: tuple[int, list] | None = None
        self._expired_counts: tuple[int, int | None, list] | None = None
        self.publishes = 0
        self.counts: Counter = Counter()  #: applied events by type
        self.rejected: Counter = Counter()  #: rejected or ignored events by reason
        self.last_event_us: int | None = None
        self._tables_cache: dict[str, tuple[int, pa.Table]] = {}
        if as_of_us is not None:
            self._expire_upto(as_of_us)

    # ------------------------------------------------------------------------------------------
    # the clock

    def _expire_upto(self, t_us: int) -> int:
        reg = self.registry
        n = reg.n_inst
        if self.expired.shape[0] < n:
            self.expired = np.concatenate([self.expired, np.zeros(n - self.expired.shape[0], bool)])
        exp = reg.expiry[:n]
        newly = (exp != NO_EXPIRY) & (exp <= t_us) & ~self.expired[:n]
        if not newly.any():
            return 0
        self.expired[:n] |= newly
        return self.positions.expire(np.flatnonzero(newly))

    def step_to(self, t_us: int) -> None:
        """Move the valuation time to ``t_us``: expired options and futures drop out, every dated
        position is re-priced at the next publish."""
        if self.as_of_us is not None and t_us <= self.as_of_us:
            return
        self.as_of_us = int(t_us)
        if self.clock_us is None or self.clock_us < t_us:
            self.clock_us = int(t_us)
        self._expire_upto(self.as_of_us)
        self._dirty_dated = True

    def step_due(self, now_us: int) -> bool:
        """Is a step to ``now_us`` due (the clock ``time_step`` or more past as_of, or no as_of yet)?"""
        return self.as_of_us is None or now_us - self.as_of_us >= self.time_step_us

    def _advance_event_clock(self, ts_us: int) -> None:
        if self.clock_us is None or ts_us > self.clock_us:
            self.clock_us = ts_us
        if self.clock == "event" and self.step_due(self.clock_us):
            self.step_to(self.clock_us)

    # ------------------------------------------------------------------------------------------
    # events

    def apply(self, ev: Event) -> str | None:
        """Apply one event; returns None, or the reason it was rejected or ignored (counted)."""
        self._advance_event_clock(ev.ts_us)
        if isinstance(ev, Fill):
            reason = self._fill(ev)
        elif isinstance(ev, IndexTick):
            reason = self._index(ev)
        elif isinstance(ev, MarkTick):
            reason = self._mark(ev)
        elif isinstance(ev, RateTick):
            reason = self._rate(ev)
        else:
            reason = self._listing(ev)
        if reason is None:
            self.counts[ev.type] += 1
            if self.last_event_us is None or ev.ts_us > self.last_event_us:
                self.last_event_us = ev.ts_us
        else:
            self.rejected[reason] += 1
        return reason

    def _fill(self, ev: Fill) -> str | None:
        if ev.trade_id in self.seen_trades:
            return "duplicate_trade_id"
        reg = self.registry
        i = reg.inst_index.get(ev.instrument)
        if i is None:
            return "unknown_instrument"
        for k in ev.tags:
            if k not in self.tags:
                return "unknown_tag"
        if reg.expiry[i] != NO_EXPIRY and self.as_of_us is not None and reg.expiry[i] <= self.as_of_us:
            return "expired_instrument"
        pos = self.positions
        n_before = pos.n_rows
        outcome = pos.apply_fill(i, ev.quantity, ev.price, ev.tags, reg.settle[i] == SETTLE_INVERSE)
        self.seen_trades.add(ev.trade_id)
        if outcome.row >= n_before:
            self.grouping.assign(outcome.row, reg.und_names[reg.inst_und[i]], pos.tag_values(outcome.row))
        self._dirty_rows.append(outcome.row)
        return None

    def _index(self, ev: IndexTick) -> str | None:
        reg = self.registry
        if not reg.fresh(ev.key, ev.ts_us):
            return "stale"
        u = reg.underlying(ev.underlying)
        if math.isnan(reg.spot[u]):
            self._priceable_version += 1
        reg.set_spot(u, ev.spot)
        self._dirty_und.add(u)
        return None

    def _mark(self, ev: MarkTick) -> str | None:
        reg = self.registry
        i = reg.inst_index.get(ev.instrument)
        if i is None:
            return "unknown_instrument"
        if not reg.fresh(ev.key, ev.ts_us):
            return "stale"
        if ev.iv is not None and math.isnan(reg.iv[i]):
            self._priceable_version += 1
        reg.set_mark(i, ev.iv, ev.forward)
        self._dirty_inst.add(i)
        return None

    def _rate(self, ev: RateTick) -> str | None:
        reg = self.registry
        if not reg.fresh(ev.key, ev.ts_us):
            return "stale"
        u = reg.underlying(ev.underlying)
        if reg.set_rates(u, ev.rate, ev.funding_rate, ev.vol):
            self._dirty_und.add(u)
        return None

    def _listing(self, ev: Listing) -> str | None:
        reg = self.registry
        i = reg.inst_index.get(ev.instrument)
        if i is not None:
            return None if reg.same_instrument(i, ev.row) else "duplicate_instrument"
        reg.add_instrument(ev.row)
        if self.as_of_us is not None:
            self._expire_upto(self.as_of_us)  # a listing already expired is marked expired
        return None

    # ------------------------------------------------------------------------------------------
    # pricing

    def _structure(self) -> tuple:
        return (self.positions.version, self._priceable_version, self.registry.n_inst)

    def priced_rows(self) -> np.ndarray:
        """Rows priced and summed: held, on an instrument with market data, in ledger order."""
        return self.pricer.rows

    def reprice(self) -> int:
        """Re-price dirty positions (all of them on the first call); returns how many.

        What depends on the structure alone (which rows are priced, the rows of each instrument) is
        recomputed only when the structure changes; a publish with few dirty instruments then costs
        in proportion to their positions, not to the book."""
        if self.as_of_us is None:
            raise RuntimeError("no valuation time yet: no event has arrived and no --as-of was given")
        pos, reg, pricer = self.positions, self.registry, self.pricer
        n = pos.n_rows
        pricer.ensure_capacity(n)
        inst = pos.inst[:n]
        structure = self._structure()
        new_rows = np.zeros(0, np.int64)
        if structure != self._structure_seen:
            priced = pos.alive() & reg.priceable()[inst] if n else np.zeros(0, bool)
            prev = np.zeros(n, bool)
            m = min(n, self._priced.shape[0])
            prev[:m] = self._priced[:m]
            new_rows = np.flatnonzero(priced & ~prev)
            rows = np.flatnonzero(priced)
            pricer.set_rows(rows, self.grouping.codes(rows))
            self._priced = priced
            self._n_priced = int(rows.size)
            order = np.argsort(inst[rows], kind="stable")
            self._rows_by_inst = rows[order]  #: priced rows, by instrument (then row)
            self._inst_sorted = inst[rows][order]
            self._structure_seen = structure
            self._rows_token += 1
        priced = self._priced
        if self._dirty_all:
            n_dirty = self._n_priced
            dirty_rows = None
        else:
            flag = np.zeros(reg.n_inst, bool)  # per instrument (not per position)
            if self._dirty_inst:
                flag[list(self._dirty_inst)] = True
            if self._dirty_und:
                flag |= np.isin(reg.inst_und[: reg.n_inst], list(self._dirty_und))
            if self._dirty_dated:
                flag |= reg.expiry[: reg.n_inst] != NO_EXPIRY
            parts = [self._rows_of(np.flatnonzero(flag)), new_rows]
            if self._dirty_rows:
                touched = np.asarray(self._dirty_rows, dtype=np.int64)
                parts.append(touched[priced[touched]])
            candidates = np.concatenate(parts)  # all priced, a row possibly more than once
            if candidates.size > DENSE_FRACTION * n:  # a large part of the book: a mask beats a sort
                mask = np.zeros(n, bool)
                mask[candidates] = True
                n_dirty = int(np.count_nonzero(mask))
                dirty_rows = np.flatnonzero(mask)
            else:
                dirty_rows = np.unique(candidates)  # sorted, each row once
                n_dirty = int(dirty_rows.size)
        if n_dirty > DENSE_FRACTION * n:
            # most of the book (an index tick, a time step): one contiguous pass over every row, no
            # gather or scatter of per-position arrays; rows that are not priced get harmless inputs
            self._reprice_dense(n, inst, priced)
        elif n_dirty:
            rows = np.flatnonzero(priced) if dirty_rows is None else dirty_rows
            held, pos_inst = np.unique(inst[rows], return_inverse=True)
            inputs = reg.kernel_inputs(held)  # each instrument once
            inputs["T"] = years_to_expiry(inputs.pop("expiry_us"), int(self.as_of_us))
            pricer.reprice(rows, inputs, pos_inst, pos.quantity(rows), pos.entry(rows))
        self._dirty_rows.clear()
        self._dirty_inst.clear()
        self._dirty_und.clear()
        self._dirty_dated = False
        self._dirty_all = False
        return n_dirty

    def _rows_of(self, instruments: np.ndarray) -> np.ndarray:
        """The priced rows on these instruments (sorted instrument indices), unsorted."""
        if not instruments.size or not self._inst_sorted.size:
            return np.zeros(0, np.int64)
        lo = np.searchsorted(self._inst_sorted, instruments, "left")
        hi = np.searchsorted(self._inst_sorted, instruments, "right")
        lens = hi - lo
        total = int(lens.sum())
        if not total:
            return np.zeros(0, np.int64)
        starts = np.repeat(lo - (np.cumsum(lens) - lens), lens)
        return self._rows_by_inst[starts + np.arange(total)].astype(np.int64, copy=False)

    def _reprice_dense(self, n: int, inst: np.ndarray, priced: np.ndarray) -> None:
        """Price rows 0..capacity-1 in one pass (the result replaces the per-position arrays), each
        known instrument once. Rows not priced (closed, pending, beyond ``n``) point to an extra
        empty spot instrument, whose outputs no sum reads; a priced row gets exactly its own inputs,
        hence its own bits."""
        reg, pos, pricer = self.registry, self.positions, self.pricer
        cap = pricer.capacity
        m = reg.n_inst
        inputs = reg.kernel_inputs(np.arange(m, dtype=np.int64))
        inputs["T"] = years_to_expiry(inputs.pop("expiry_us"), int(self.as_of_us or 0))
        safe = {"kind": 0, "settle": 0, "cp": 0, "csize": 1.0, "strike": 0.0, "S": 1.0, "fwd": 0.0, "r": 0.0,
                "vol": 0.0, "T": 0.0}
        instruments = {name: np.append(inputs[name], np.array([value], dtype=inputs[name].dtype))
                       for name, value in safe.items()}
        pos_inst = np.full(cap, m, dtype=np.int64)
        pos_inst[:n] = np.where(priced, inst, m)
        qty = np.zeros(cap)
        qty[:n] = np.where(priced, pos.ledger.quantity[:n], 0.0)
        entry = np.zeros(cap)
        e = pos.ledger.entry[:n]
        entry[:n] = np.where(priced & ~np.isnan(e), e, 0.0)
        pricer.reprice_all(instruments, pos_inst, qty, entry)

    def mark_all_dirty(self) -> None:
        self._dirty_all = True

    def compact(self) -> np.ndarray:
        """Drop closed rows from every per-row array (before a snapshot: a restart from the snapshot
        then numbers rows, and resolves keys held on several rows, exactly as this state does).
        Returns the old row of each new row."""
        n_before = self.positions.n_rows
        keep = self.positions.compact()
        self.grouping.compact(keep)
        self.pricer.compact(keep)
        new_of_old = np.full(n_before, -1, np.int64)
        new_of_old[keep] = np.arange(keep.size)
        self._dirty_rows = [int(new_of_old[r]) for r in self._dirty_rows if new_of_old[r] >= 0]
        priced = np.zeros(n_before, bool)
        m = min(n_before, self._priced.shape[0])
        priced[:m] = self._priced[:m]
        self._priced = priced[keep]
        self._structure_seen = None
        self._rows_token += 1
        return keep

    # ------------------------------------------------------------------------------------------
    # group sums and adherence

    def exposures(self) -> pa.Table:
        """exposures.parquet of the current state (after :meth:`reprice`): sums per group, every level."""
        from gpuskew.core.engine import check_finite, exposures_table

        reg, pricer = self.registry, self.pricer
        all_tags = sorted({t for lv in self.levels for t in lv}, key=self.tags.index)
        spot_by_name = {name: float(reg.spot[u]) for name, u in reg.und_index.items()}
        token = self._rows_token
        if self._level_counts is None or self._level_counts[0] != token:  # changes with the structure only
            self._level_counts = (token, [np.bincount(lp.codes.codes, minlength=lp.codes.n_groups)
                                          for lp in pricer.plans])
        if self._expired_counts is None or self._expired_counts[:2] != (token, self.as_of_us):
            # a position's status (expired: T <= 0) moves with the valuation time alone
            status = np.asarray(self.backend.to_host(pricer.status))[pricer.rows]
            expired_mask = status == schema.STATUS_EXPIRED
            self._expired_counts = (token, self.as_of_us,
                                    [np.bincount(lp.codes.codes[expired_mask], minlength=lp.codes.n_groups)
                                     for lp in pricer.plans])
        tables = []
        for k, lp in enumerate(pricer.plans):
            lc = lp.codes
            sums = pricer.sums(k)
            if not np.isfinite(sums).all():  # raises InvalidInput naming live ledger rows (or the group)
                check_finite(sums, lambda: pricer.host_out(pricer.rows)[0], None, lc, perm=pricer.rows,
                             source=STATE_SOURCE)
            counts, expired = self._level_counts[1][k], self._expired_counts[2][k]
            tables.append(exposures_table(lc.level, all_tags, lc, sums, counts, expired, spot_by_name))
        return schema.with_units(pa.concat_tables(tables), schema.EXPOSURES)

    def table(self, name: str) -> pa.Table:
        """The registry's ``instruments``, ``underlyings`` (with an index price) or ``quotes`` table,
        cached until it changes."""
        version = self.registry.version[name]
        hit = self._tables_cache.get(name)
        if hit is not None and hit[0] == version:
            return hit[1]
        table = {"instruments": self.registry.instruments_table, "underlyings": self.registry.underlyings_table,
                 "quotes": self.registry.quotes_table}[name]()
        self._tables_cache[name] = (version, table)
        return table

    def publish(self) -> Publication:
        """Re-price what is dirty, sum, check adherence and evaluate alerts."""
        t0 = time.perf_counter()
        repriced = self.reprice()
        t1 = time.perf_counter()
        exposures = self.exposures()
        t2 = time.perf_counter()
        self.publishes += 1
        n_alive = len(self.positions.ledger)
        pub = Publication(self.publishes, int(self.as_of_us or 0), exposures, repriced=repriced,
                          positions=int(self.pricer.rows.size), pending=n_alive - int(self.pricer.rows.size))
        if self.limits is not None:
            step = self.adhere(exposures, pub.as_of, f"monitor-{self.publishes}")
            pub.adherence, pub.effective, pub.alerts = step.adherence, step.effective, step.alerts
            pub.warnings = step.summary["warnings"]
        t3 = time.perf_counter()
        pub.timings_s = {"reprice": t1 - t0, "sums": t2 - t1, "adherence": t3 - t2}
        return pub

    def adhere(self, exposures: pa.Table, when: Any, run_id: str, session: Any = None) -> Any:
        """The Session's adherence and alert step on ``exposures`` (the live market tables):
        a StepResult with adherence, effective statuses (hysteresis against the alert state) and alerts."""
        from gpuskew.core.engine import RunResult
        from gpuskew.session import StepResult

        session = session or self.session
        if session is self.session:
            session.book = Book(self.table("instruments"), self._positions_stub(), self.table("underlyings"),
                                self.table("quotes"), dict(self.book_sources), {})
        step = StepResult(RunResult(pa.table({}), exposures, {"timings_s": {}, "warnings": []}, self.levels), run_id)
        session.adhere(step, when, None)
        return step

    def _positions_stub(self) -> pa.Table:
        cols = {"instrument": pa.array([], pa.string()), "quantity": pa.array([], pa.float64())}
        cols.update({t: pa.array([], pa.string()) for t in self.tags})
        return pa.table(cols)

    # ------------------------------------------------------------------------------------------
    # the book as tables (snapshots)

    def book_tables(self) -> dict[str, pa.Table]:
        """The current state as a valid book: instruments, positions (the priced ones, in ledger
        order), underlyings (with an index price) and quotes."""
        return {"instruments": self.table("instruments"),
                "positions": self.positions.table(self.pricer.rows),
                "underlyings": self.table("underlyings"),
                "quotes": self.table("quotes")}


__all__ = ["LiveState", "MAX_TRADE_IDS", "Publication", "RecentTradeIds"]
