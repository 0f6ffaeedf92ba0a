"""``nats://HOST:PORT/SUBJECT[?stream=NAME&durable=NAME&ack_wait=S]``: a NATS JetStream durable consumer.

The monitor creates the stream (``stream``, default ``GPUSKEW``, capturing SUBJECT) if it does not
exist, and a durable push consumer (``durable``, default ``gpuskew-monitor``) with cumulative acks
(AckAll: acknowledging the last message of a journaled batch acknowledges the batch; redelivery of
what was not acknowledged after ``ack_wait`` seconds, default 30). Messages are delivered as they are published
(no pull request holds them back), at most :data:`MAX_ACK_PENDING` unacknowledged. Every message
is one canonical event (JSON). A message is acknowledged only after the monitor has
written it to its journal and fsynced: a monitor killed before that gets it again (JetStream
redelivers unacknowledged messages after ``ack_wait``), and redeliveries are harmless (fills are
idempotent by trade_id, a market tick no newer than the last applied changes nothing). The
consumer counts as drained once it has had nothing pending (no message waiting, none awaiting
acknowledgement) for :data:`DRAIN_IDLE_S` seconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gpuskew.errors import InvalidConfig
from gpuskew.monitor.sources import DRAIN_IDLE_S, Incoming, Source, split_spec

DEFAULT_STREAM = "GPUSKEW"
DEFAULT_DURABLE = "gpuskew-monitor"
#: messages per pull request (kept for compatibility of specs; delivery is pushed)
DEFAULT_BATCH = 1000
#: most messages delivered and not yet acknowledged
MAX_ACK_PENDING = 50_000
#: seconds a delivered message may stay unacknowledged before JetStream redelivers it
ACK_WAIT_S = 30.0


def subject_of(path: str) -> str:
    subject = path.lstrip("/").replace("/", ".")
    if not subject:
        raise InvalidConfig("--source", "subject", path, "nats://HOST:PORT/SUBJECT needs a subject")
    return subject


class NatsSource(Source):
    kind = "nats"

    def __init__(self, spec: str):
        super().__init__(spec)
        _, self.host, port, path, query = split_spec(spec)
        self.port = port or 4222
        self.subject = subject_of(path)
        self.stream = query.get("stream") or DEFAULT_STREAM
        self.durable = query.get("durable") or DEFAULT_DURABLE
        try:
            self.batch = int(query.get("batch") or DEFAULT_BATCH)
            self.ack_wait = float(query.get("ack_wait") or ACK_WAIT_S)
        except ValueError:
            raise InvalidConfig("--source", "batch/ack_wait", spec, "batch must be an integer, ack_wait "
                                                                     "a number of seconds") from None
        self.nc: Any = None
        self.inflight = 0  #: delivered to the monitor, not yet acknowledged
        self.sub = None
        self._idle_since = 0.0
        self._delivered = 0  #: messages delivered to the monitor
        self._acked = 0  #: of those, acknowledged (cumulatively)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    async def _connect(self, queue: asyncio.Queue):
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, StreamConfig
        from nats.js.errors import NotFoundError

        self.nc = await nats.connect(self.url, name=f"gpuskew-monitor {self.subject}", max_reconnect_attempts=-1)
        js = self.nc.jetstream()
        try:
            await js.stream_info(self.stream)
        except NotFoundError:
            await js.add_stream(StreamConfig(name=self.stream, subjects=[self.subject]))
        config = ConsumerConfig(durable_name=self.durable, ack_policy=AckPolicy.ALL,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait,
                                max_ack_pending=MAX_ACK_PENDING)

        async def on_message(msg) -> None:
            self.inflight += 1
            self.touch()
            self._idle_since = time.monotonic()
            # no position: JetStream keeps the consumer's place itself (and parsing the metadata costs)
            self._delivered += 1
            await queue.put(Incoming(self.id, msg.data, ack=self._ack(msg, self._delivered)))

        self.sub = await js.subscribe(self.subject, durable=self.durable, stream=self.stream, manual_ack=True,
                                      config=config, cb=on_message, pending_msgs_limit=4 * MAX_ACK_PENDING,
                                      pending_bytes_limit=1 << 30)
        return js

    def _ack(self, msg, number: int):
        """Acknowledge ``msg`` and, by the consumer's AckAll policy, every message delivered before it."""
        async def ack() -> None:
            if number <= self._acked:
                return
            await msg.ack()
            self._acked = number
            self.inflight = self._delivered - self._acked
        return ack

    async def run(self, queue: asyncio.Queue, stop: asyncio.Event) -> None:
        js = await self._connect(queue)
        self._idle_since = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.25)
            if self.inflight == 0 and time.monotonic() - self._idle_since >= DRAIN_IDLE_S:
                info = await js.consumer_info(self.stream, self.durable)
                self.drained = info.num_pending == 0 and info.num_ack_pending == 0
            elif self.inflight:
                self._idle_since = time.monotonic()

    async def close(self) -> None:
        if self.nc is not None:
            try:  # not drain(): a pending pull request would hold it for its 30 s timeout; every message
                await self.nc.close()  # journaled is acknowledged already, the others are redelivered
            except Exception:  # pragma: no cover - closing anyway
                pass
            self.nc = None


__all__ = ["NatsSource", "DEFAULT_STREAM", "DEFAULT_DURABLE", "subject_of"]
