"""``nats://HOST:PORT/SUBJECT[?stream=NAME&durable=NAME&ack_wait=S]``: a NATS JetStream durable consumer.

The monitor creates the stream (``stream``, default ``GPUSKEW``, capturing SUBJECT) if it does not
exist, and a durable push consumer (``durable``, default ``gpuskew-monitor``) with explicit acks:
when the monitor acknowledges the last message of a journaled batch, the source acknowledges every
message delivered to it up to that one, each by itself (redelivery of what was not acknowledged
after ``ack_wait`` seconds, default 30). Not AckAll: JetStream's AckAll acknowledges every message
of a lower *stream* sequence, and after a restart the messages the killed process had received
but not journaled are redelivered only after newer ones, so acknowledging a newer message would
drop them. A durable consumer that exists with another ack policy is refused (InvalidConfig).
Messages are delivered as they are published (push: no pull request holds them back), at most
:data:`MAX_ACK_PENDING` unacknowledged. A ``batch`` query parameter (older specs) is accepted and
ignored. Every message
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
from collections import deque
from typing import Any

from gpuskew.errors import InvalidConfig
from gpuskew.monitor.sources import DRAIN_IDLE_S, Incoming, Source, split_spec

DEFAULT_STREAM = "GPUSKEW"
DEFAULT_DURABLE = "gpuskew-monitor"
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
            self.ack_wait = float(query.get("ack_wait") or ACK_WAIT_S)
        except ValueError:
            raise InvalidConfig("--source", "ack_wait", spec, "ack_wait must be a number of seconds") from None
        self.nc: Any = None
        self.inflight = 0  #: delivered to the monitor, not yet acknowledged
        self.sub = None
        self._idle_since = 0.0
        self._delivered = 0  #: messages delivered to the monitor
        self._acked = 0  #: of those, acknowledged (cumulatively)
        self._unacked: deque = deque()  #: (delivery number, message) not yet acknowledged, in delivery order

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
        try:
            existing = await js.consumer_info(self.stream, self.durable)
        except NotFoundError:
            existing = None
        if existing is not None and existing.config.ack_policy != AckPolicy.EXPLICIT:
            raise InvalidConfig("--source", "durable", self.durable,
                                f"the durable consumer {self.durable!r} of stream {self.stream!r} exists with ack "
                                f"policy {existing.config.ack_policy}, which can acknowledge messages never "
                                "journaled; delete it (nats consumer rm) or name another durable=")
        config = ConsumerConfig(durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=self.ack_wait,
                                max_ack_pending=MAX_ACK_PENDING)

        async def on_message(msg) -> None:
            self.inflight += 1
            self.touch()
            self._idle_since = time.monotonic()
            # no position: JetStream keeps the consumer's place itself (and parsing the metadata costs)
            self._delivered += 1
            self._unacked.append((self._delivered, msg))
            await queue.put(Incoming(self.id, msg.data, ack=self._ack(self._delivered)))

        self.sub = await js.subscribe(self.subject, durable=self.durable, stream=self.stream, manual_ack=True,
                                      config=config, cb=on_message, pending_msgs_limit=4 * MAX_ACK_PENDING,
                                      pending_bytes_limit=1 << 30)
        return js

    def _ack(self, number: int):
        """Acknowledge the ``number``-th message delivered and every message delivered before it, each
        explicitly (the queue is in delivery order: all of them are journaled)."""
        async def ack() -> None:
            while self._unacked and self._unacked[0][0] <= number:
                _, msg = self._unacked.popleft()
                await msg.ack()
            self._acked = max(self._acked, number)
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
            try:  # not drain(): every message journaled is acknowledged already; the ones delivered
                await self.nc.close()  # and not journaled are redelivered after ack_wait
            except Exception:  # pragma: no cover - closing anyway
                pass
            self.nc = None


__all__ = ["NatsSource", "DEFAULT_STREAM", "DEFAULT_DURABLE", "subject_of"]
