"""The monitor process: sources -> journal -> live state -> publish, in one asyncio loop.

Each turn of the loop takes every event waiting (up to ``max_batch``: bursts coalesce into one
publish), and then:

1. parses each message into a canonical event (a malformed one goes to the dead-letter file);
2. appends the events to the journal and fsyncs it once (group commit), with the dead letters;
3. acknowledges the messages to their sources (only now: a crash before this loses nothing that
   was acknowledged, and a redelivery after it is harmless);
4. applies the events to the :class:`~gpuskew.monitor.state.LiveState` (position keeping, market
   data; rejections are counted and dead-lettered);
5. publishes: re-prices the dirty positions, sums the groups, checks adherence, fires alerts, and
   updates /metrics, /api/state and the dashboard, ``--alerts-out``, ``--publish`` and (every
   ``history_every_s``) ``--history``.

Every ``snapshot_every_s`` the state is written as a snapshot (:mod:`gpuskew.monitor.snapshot`) and
the journal segments it covers are removed. A restart loads the latest snapshot and replays the
journal after it. SIGUSR1 writes ``--snapshot-out``; SIGTERM and SIGINT stop cleanly (a last
snapshot). With ``--until-drained`` the monitor stops once every source is drained, after a final
publish at the clock's time and ``--snapshot-out``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpuskew.errors import InvalidConfig
from gpuskew.monitor.events import IGNORED_REASONS, EventRejected, decode, encode, parse_event, ts_to_us, us_to_iso


@dataclass
class MonitorConfig:
    """Options of ``gpuskew monitor`` (see its --help)."""

    book_dir: Path
    limits_path: Path | None
    sources: list[str]
    state_dir: Path
    group_by: tuple[str, ...] = ()
    http: str | None = None
    history: Path | None = None
    alerts_out: Path | None = None
    backend: str = "auto"
    clock: str = "event"
    until_drained: bool = False
    snapshot_out: Path | None = None
    replay_speed: str = "max"
    publish: str | None = None
    as_of: str | None = None
    time_step_s: float = 60.0
    snapshot_every_s: float = 300.0
    history_every_s: float = 60.0
    max_batch: int = 5000
    max_metric_groups: int = 2000
    extra: dict = field(default_factory=dict)


def _now_us() -> int:
    return time.time_ns() // 1000


_PREFIXES: dict[str, bytes] = {}


def _envelope(source: str, position: int | None, event: bytes) -> bytes:
    """A journal record: ``{"s": source, "p": position, "e": event}``."""
    prefix = _PREFIXES.get(source)
    if prefix is None:
        prefix = _PREFIXES[source] = b'{"s":' + json.dumps(source).encode() + b',"p":'
    return b"".join((prefix, b"null" if position is None else str(int(position)).encode(), b',"e":', event, b"}"))


def _json_bytes(data: Any, obj: Any) -> bytes:
    """The event's JSON for the journal: the received bytes themselves when they are UTF-8 JSON text
    (they were just decoded, so they are valid), else ``obj`` encoded."""
    if isinstance(data, (bytes, bytearray)):
        raw = bytes(data).strip()
        if raw[:1] == b"{" and b"\x00" not in raw:
            return raw
    return encode(obj)


def _clock_record(t_us: int) -> bytes:
    return b'{"clock":' + str(int(t_us)).encode() + b"}"


class Monitor:
    """One monitor process (see the module docstring)."""

    def __init__(self, config: MonitorConfig, log: Callable[[str], None] = print):
        self.cfg = config
        self.log = log
        self.state: Any = None  #: gpuskew.monitor.state.LiveState, once open
        self.journal: Any = None  #: gpuskew.monitor.journal.Journal
        self.dead: Any = None  #: gpuskew.monitor.deadletter.DeadLetters
        self.alert_state: Any = None
        self.limits: Any = None
        self.cursors: dict[str, int] = {}
        self.sources: list = []
        self.last_pub: Any = None
        self.publish_error: str | None = None  #: why the latest publish failed (None: it succeeded)
        self.metrics: Any = None
        self.hub: Any = None
        self.publisher: Any = None
        self.alert_feed: Any = None
        self.http_address: str | None = None
        self._lock_fd: int | None = None
        self._stop: Any = None
        self._snapshot_requested = False
        self._last_snapshot = time.monotonic()
        self._last_snapshot_seq = 0
        self._last_history = 0.0
        self.replayed = 0
        self.snapshot_out_written: dict | None = None
        self.started = time.time()

    # ------------------------------------------------------------------------------------------
    # start-up

    def _lock(self) -> None:
        import fcntl

        self.cfg.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.cfg.state_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InvalidConfig("--state", "state", str(self.cfg.state_dir),
                                "another monitor is running on this state folder") from None
        self._lock_fd = fd

    def open_state(self) -> None:
        """Load the latest snapshot (or the book) and replay the journal after it."""
        from gpuskew.io.dataset import file_sha256
        from gpuskew.monitor import snapshot
        from gpuskew.monitor.deadletter import DeadLetters
        from gpuskew.monitor.journal import Journal
        from gpuskew.monitor.state import LiveState

        cfg = self.cfg
        self._lock()
        limits = None
        if cfg.limits_path is not None:
            from gpuskew.policy.limits import load_limits

            limits = load_limits(cfg.limits_path)
        self.limits = limits
        from gpuskew.monitor.alertstate import PersistentAlertState

        self.alert_state = PersistentAlertState(cfg.state_dir / "alerts" / "effective.parquet")
        kwargs = dict(limits=limits, group_by=cfg.group_by, backend=cfg.backend, time_step_s=cfg.time_step_s,
                      clock=cfg.clock, alert_state=self.alert_state, limits_hash=file_sha256(cfg.limits_path) if cfg.limits_path else None,
                      limits_source=str(cfg.limits_path) if cfg.limits_path else None)
        self.journal = Journal(cfg.state_dir / "journal")
        if self.journal.truncated_bytes:
            self.log(f"journal: cut a torn record of {self.journal.truncated_bytes} bytes at the end "
                     "(never acknowledged)")
        self.dead = DeadLetters(cfg.state_dir / "deadletter.jsonl")
        t0 = time.perf_counter()
        snap = snapshot.latest_snapshot(cfg.state_dir)
        if snap is not None:
            state, meta = snapshot.load(snap, **kwargs)
            self.cursors = {k: int(v) for k, v in meta.get("cursors", {}).items()}
            after = int(meta["seq"])
            self.log(f"state: snapshot {snap.name} ({len(state.positions.ledger):,} positions; BOOK_DIR not read)")
        else:
            from gpuskew.core.book import load_book

            as_of_us = ts_to_us(cfg.as_of) if cfg.as_of else None
            state = LiveState(load_book(cfg.book_dir), as_of_us=as_of_us, **kwargs)
            after = 0
            self.log(f"state: new, from {cfg.book_dir} ({len(state.positions.ledger):,} positions)")
        self.state = state
        n = 0
        for _seq, payload in self.journal.replay(after):
            record = json.loads(payload)
            if "clock" in record:
                state.step_to(int(record["clock"]))
                continue
            try:
                state.apply(parse_event(record["e"]))
            except EventRejected:
                pass
            if record.get("p") is not None:
                self.cursors[record["s"]] = max(self.cursors.get(record["s"], 0), int(record["p"]))
            n += 1
        self.replayed = n
        if n:
            self.log(f"journal: replayed {n:,} events after seq {after} in {time.perf_counter() - t0:.2f} s")
        self._load_alert_state()
        if snap is None or n:
            self._save_snapshot()
        _freeze_heap()

    def _load_alert_state(self) -> None:
        """Without a saved alert state, start from the history's latest run (if --history)."""
        if not self.alert_state.loaded and self.cfg.history and self.state.as_of_us is not None:
            from gpuskew.history import previous_adherence
            from gpuskew.monitor.events import us_to_datetime

            self.alert_state.last = previous_adherence(self.cfg.history, us_to_datetime(self.state.as_of_us + 1))

    def _save_snapshot(self) -> None:
        from gpuskew.monitor import snapshot

        seq = self.journal.sync()
        snapshot.save(self.state, self.cfg.state_dir, seq, self.cursors)
        self.journal.rotate()
        # up to the oldest snapshot kept: a restart that falls back to it still finds its journal tail
        self.journal.prune(snapshot.oldest_kept_seq(self.cfg.state_dir))
        self._last_snapshot = time.monotonic()
        self._last_snapshot_seq = seq
        _freeze_heap()

    # ------------------------------------------------------------------------------------------
    # the loop

    def _make_sources(self) -> None:
        from gpuskew.monitor.sources import make_source

        cfg = self.cfg
        for spec in cfg.sources:
            src = make_source(spec, replay_speed=cfg.replay_speed, follow=not cfg.until_drained,
                              instrument_info=lambda name: self.state.registry.info(name))
            if hasattr(src, "cursor"):
                src.cursor = self.cursors.get(spec, 0)
            if hasattr(src, "stop_when_closed"):
                src.stop_when_closed = cfg.until_drained
            self.sources.append(src)

    async def _step_wall_clock(self, force: bool = False) -> None:
        now = _now_us()
        if self.state.clock == "wall" and (force or self.state.step_due(now)):
            self.journal.append(_clock_record(now))
            self.state.step_to(now)

    async def process(self, batch: list) -> None:
        """Journal, acknowledge, apply and publish one batch (see the module docstring)."""
        state, journal, dead, metrics = self.state, self.journal, self.dead, self.metrics
        as_of_before = state.as_of_us
        await self._step_wall_clock()
        parsed = []
        applied: Counter = Counter()
        rejected: Counter = Counter()
        for item in batch:
            try:
                obj = item.data if isinstance(item.data, dict) else decode(item.data)
                ev = parse_event(obj)
            except EventRejected as exc:
                dead.add(item.source, exc.reason, exc.detail, item.data)
                state.rejected[exc.reason] += 1
                rejected[exc.reason] += 1
                continue
            journal.append(_envelope(item.source, item.position, _json_bytes(item.data, obj)))
            parsed.append((item, ev))
        journal.sync()
        dead.sync()
        metrics.journal.inc(len(parsed))
        last_ack: dict = {}  # acknowledgements are cumulative: the last message of each source
        for item in batch:
            if item.ack is not None:
                last_ack[item.source] = item.ack
        for ack in last_ack.values():
            await ack()
        for item, ev in parsed:
            reason = state.apply(ev)
            if reason is None:
                applied[ev.type] += 1
            else:
                rejected[reason] += 1
                if reason not in IGNORED_REASONS:
                    dead.add(item.source, reason, _apply_detail(reason, ev), ev.raw)
            if item.position is not None:
                self.cursors[item.source] = item.position
        dead.sync()
        for kind, n in applied.items():
            metrics.events.labels(kind).inc(n)
        for reason, n in rejected.items():
            metrics.rejected.labels(reason).inc(n)
        if state.as_of_us is not None and (batch or state.as_of_us != as_of_before or self.last_pub is None):
            await self.publish(batch)

    async def publish(self, batch: Sequence[Any] = ()) -> Any:
        """Publish the current state; a publish that fails (a group sum that overflows, a market
        tick that makes a position non-finite) keeps the last good publish, marks the health and
        /api/state as ``error`` with the message, and the monitor keeps consuming (the next event
        may fix it). Returns the publication in force."""
        from gpuskew.errors import InvalidInput

        try:
            pub = self.state.publish()
        except InvalidInput as exc:
            self._publish_failed(exc)
            return self.last_pub
        if self.publish_error is not None:
            self.log("publish: recovered")
        self.publish_error = None
        self.last_pub = pub
        now = time.monotonic()
        m = self.metrics
        for item in batch:
            m.latency.observe(now - item.received)
        m.groups.update(pub.effective, pub.rows("effective") if pub.effective is not None else None)
        m.positions.labels("priced").set(pub.positions)
        m.positions.labels("pending").set(pub.pending)
        m.last_publish.set(time.time())
        m.valuation.set(pub.as_of_us / 1e6)
        m.publishes.inc()
        m.repriced.inc(pub.repriced)
        if pub.adherence is not None:
            m.score.set(pub.adherence.score)
        if pub.alerts:
            self._write_alerts(pub.alerts)
            self.alert_feed.extend(pub.alerts)
            from gpuskew.adherence.alerts import summarise_alerts

            self.log(f"{us_to_iso(pub.as_of_us)} " + summarise_alerts(pub.alerts))
        self._update_hub(pub)
        if self.publisher is not None:
            await self.publisher.publish(pub)
        if self.cfg.history and time.monotonic() - self._last_history >= self.cfg.history_every_s:
            self._append_history(pub)
        return pub

    def _publish_failed(self, exc: Exception) -> None:
        message = str(exc)
        if message != self.publish_error:
            self.log(f"publish failed (keeping the last good publish, consuming on): {message}")
        self.publish_error = message
        self.metrics.publish_errors.inc()
        if self.hub is not None:
            self._update_hub(self.last_pub)

    def _write_alerts(self, alerts: list[dict]) -> None:
        if not self.cfg.alerts_out:
            return
        from gpuskew.adherence.alerts import dumps_alerts_jsonl

        path = Path(self.cfg.alerts_out)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(dumps_alerts_jsonl(alerts))
            fh.flush()
            os.fsync(fh.fileno())

    def _append_history(self, pub: Any) -> None:
        from gpuskew.history import append_run

        self._last_history = time.monotonic()
        tables = {"exposures": pub.exposures}
        if pub.adherence is not None:
            from gpuskew.adherence.alerts import alerts_table

            tables["adherence"] = pub.effective
            tables["hedges"] = pub.adherence.hedges
            if pub.alerts:
                tables["alerts"] = alerts_table(pub.alerts)
        rid = hashlib.sha256(f"monitor:{pub.as_of_us}:{self.journal.synced_seq}".encode()).hexdigest()[:16]
        append_run(Path(str(self.cfg.history)), pub.as_of, tables, rid)

    def feeds(self) -> list[dict]:
        now = time.time()
        return [{"source": s.id, "kind": s.kind, "drained": s.drained, "error": s.error,
                 "age_s": None if s.last_message is None else round(now - s.last_message, 3)} for s in self.sources]

    def _update_hub(self, pub: Any) -> None:
        if self.hub is None:
            return
        from gpuskew.monitor.view import dumps, state_view

        state = self.state
        status = "ok" if self.publish_error is None else "error"
        extra = {"journal_seq": self.journal.synced_seq, "dead_letters": self.dead.count, "started_at": self.started}
        if self.publish_error is not None:
            extra["error"] = self.publish_error
        text = dumps(state_view(pub, feeds=self.feeds(), alerts=self.alert_feed, counts=state.counts,
                                rejected=state.rejected, clock=state.clock, status=status, extra=extra))
        as_of = None if pub is None else us_to_iso(pub.as_of_us)
        self.hub.update(text, status, as_of, self.hub.published_at if self.publish_error else time.time())

    def write_snapshot_out(self) -> None:
        if not self.cfg.snapshot_out:
            self.log("SIGUSR1: no --snapshot-out folder given; nothing written")
            return
        if self.last_pub is None:
            self.log("snapshot-out: nothing published yet; nothing written")
            return
        if self.publish_error is not None:
            self.log(f"snapshot-out: the last publish failed ({self.publish_error}); nothing written")
            return
        from gpuskew.monitor.output import write_snapshot_out

        self.snapshot_out_written = write_snapshot_out(
            self.state, self.last_pub, self.cfg.snapshot_out, previous=self.alert_state.before,
            extra={"journal_seq": self.journal.synced_seq, "state": str(self.cfg.state_dir)})
        self.log(f"snapshot-out: {self.cfg.snapshot_out} (as_of {us_to_iso(self.last_pub.as_of_us)})")

    async def _serve(self) -> Any:
        from gpuskew.monitor.http import Hub, make_app, parse_host_port, start_server

        host, port = parse_host_port(str(self.cfg.http))
        self.hub = Hub()
        runner = await start_server(make_app(self.hub, self.metrics), host, port)
        bound = runner.addresses[0] if runner.addresses else (host, port)
        self.http_address = f"{bound[0]}:{bound[1]}"
        self.log(f"http: dashboard on http://{self.http_address}/ (metrics /metrics, state /api/state)")
        return runner

    async def run(self) -> dict:
        """Run until drained (``--until-drained``) or stopped; returns the closing summary."""
        from gpuskew.monitor.metrics import MonitorMetrics
        from gpuskew.monitor.view import AlertFeed

        cfg = self.cfg
        self.metrics = MonitorMetrics(cfg.max_metric_groups)
        self.alert_feed = AlertFeed()
        self.open_state()
        self._make_sources()
        for src in self.sources:
            self.metrics.watch_source(src.id, lambda s=src: s.last_message)
        for reason in self.state.rejected:
            self.metrics.rejected.labels(reason).inc(0)
        runner = await self._serve() if cfg.http else None
        if cfg.publish:
            from gpuskew.monitor.publisher import NatsPublisher

            self.publisher = NatsPublisher(cfg.publish)
            await self.publisher.connect()
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGUSR1, self._request_snapshot)
        queue: asyncio.Queue = asyncio.Queue(maxsize=max(1000, 4 * cfg.max_batch))
        source_stop = asyncio.Event()
        tasks = {asyncio.create_task(src.run(queue, source_stop)): src for src in self.sources}
        await self._step_wall_clock(force=self.state.as_of_us is None)
        if self.state.as_of_us is not None:
            self.journal.sync()
            await self.publish()
        try:
            while not self._stop.is_set():
                try:
                    item = await asyncio.wait_for(queue.get(), timeout=0.05)
                    batch = [item]
                except asyncio.TimeoutError:
                    batch = []
                while len(batch) < cfg.max_batch and not queue.empty():
                    batch.append(queue.get_nowait())
                due = self.state.clock == "wall" and self.state.step_due(_now_us())
                if batch or due:
                    await self.process(batch)
                for task, src in list(tasks.items()):
                    if task.done():
                        exc = task.exception()
                        del tasks[task]
                        if exc is not None:
                            raise RuntimeError(f"source {src.id} failed: {type(exc).__name__}: {exc}") from exc
                        src.drained = True
                if self._snapshot_requested:
                    self._snapshot_requested = False
                    self.write_snapshot_out()
                if time.monotonic() - self._last_snapshot >= cfg.snapshot_every_s \
                        and self.journal.synced_seq != self._last_snapshot_seq:
                    self._save_snapshot()
                if cfg.until_drained and not batch and queue.empty() and all(s.drained for s in self.sources):
                    break
            await self._finish()
        finally:
            source_stop.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for src in self.sources:
                await src.close()
            if self.publisher is not None:
                await self.publisher.close()
            if runner is not None:
                await runner.cleanup()
            self.close()
        return self.summary()

    def _request_snapshot(self) -> None:
        self._snapshot_requested = True

    async def _finish(self) -> None:
        state = self.state
        if self.cfg.until_drained and state.clock_us is not None and state.as_of_us is not None \
                and state.clock_us > state.as_of_us:
            self.journal.append(_clock_record(state.clock_us))
            self.journal.sync()
            state.step_to(state.clock_us)
            await self.publish()
        elif self.last_pub is None and state.as_of_us is not None:
            await self.publish()
        if self.cfg.until_drained:
            self.write_snapshot_out()
        if self.cfg.history and self.last_pub is not None:
            self._append_history(self.last_pub)
        self._save_snapshot()

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()
        if self.dead is not None:
            self.dead.close()
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def summary(self) -> dict:
        pub, state = self.last_pub, self.state
        out = {
            "status": "ok" if self.publish_error is None else "error",
            "as_of": None if pub is None else us_to_iso(pub.as_of_us),
            "events": dict(state.counts),
            "rejected": dict(state.rejected),
            "dead_letters": self.dead.count if self.dead else 0,
            "positions": 0 if pub is None else pub.positions,
            "pending": 0 if pub is None else pub.pending,
            "publishes": state.publishes,
            "replayed": self.replayed,
            "journal_seq": self.journal.synced_seq if self.journal else 0,
            "state": str(self.cfg.state_dir),
            "snapshot_out": None if not self.snapshot_out_written else str(self.cfg.snapshot_out),
        }
        if self.publish_error is not None:
            out["error"] = self.publish_error
        if pub is not None and pub.adherence is not None:
            from gpuskew.session import worst_statuses

            out["worst_status"] = worst_statuses(pub.effective)
            out["adherence_score"] = pub.adherence.score
        return out


def _freeze_heap() -> None:
    """Move every object alive now (the book: millions of strings and tuples of the ledger) out of
    the cyclic garbage collector's reach: a full collection over them takes seconds and would stall
    publishing. Objects created later are collected as usual."""
    import gc

    gc.collect()
    gc.freeze()


def _apply_detail(reason: str, ev: Any) -> str:
    what = getattr(ev, "instrument", None) or getattr(ev, "underlying", None) or ""
    return {"unknown_instrument": f"instrument {what!r} is not in the instruments table (list it first)",
            "unknown_tag": f"fill tags {sorted(getattr(ev, 'tags', {}))} include a tag the book does not have",
            "expired_instrument": f"instrument {what!r} expired before the valuation time",
            "duplicate_instrument": f"instrument {what!r} is already listed with other terms"}.get(reason, reason)


__all__ = ["Monitor", "MonitorConfig"]
