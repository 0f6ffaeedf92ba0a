"""Event sources: small adapters that turn a feed into canonical events for the monitor.

A source spec names the adapter:

* ``file:PATH`` - JSON Lines, replayed (``--replay-speed max|1|N``): :mod:`.file`;
* ``nats://HOST:PORT/SUBJECT[?stream=NAME&durable=NAME]`` - a NATS JetStream durable push consumer
  (the stream is created if it does not exist): :mod:`.nats`;
* ``deribit-ws://HOST:PORT[/PATH][?currency=BTC,ETH&tls=1&TAG=VALUE...]`` - Deribit's JSON-RPC
  WebSocket notifications: :mod:`.deribit_ws`.

Every source runs as an asyncio task that puts :class:`Incoming` items on the monitor's queue. An
item is acknowledged (``ack``) only after the monitor has written it to the journal and fsynced;
acknowledgements are cumulative (acknowledging an item acknowledges every earlier item of its
source), so the monitor acknowledges the last item of each source in a batch.
A source reports ``drained`` when it has nothing more for now (end of file; a consumer with
nothing pending for 2 seconds; a closed WebSocket): ``--until-drained`` stops once all are.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from gpuskew.errors import InvalidConfig

#: seconds with nothing pending after which a bus source counts as drained
DRAIN_IDLE_S = 2.0


@dataclass(slots=True)
class Incoming:
    """One message from a source: ``data`` (the JSON text of one event, or an already decoded
    object), where it came from, and how to acknowledge it."""

    source: str
    data: bytes | str | dict
    position: int | None = None  #: file line number or stream sequence (resume cursor)
    received: float = field(default_factory=time.monotonic)
    ack: Callable[[], Awaitable[Any]] | None = None


class Source:
    """Base class: ``id`` (the spec as given), ``drained``, ``last_message`` (wall time of the last
    message, for the feed-age metric) and :meth:`run`."""

    kind = "?"

    def __init__(self, spec: str):
        self.id = spec
        self.drained = False
        self.last_message: float | None = None
        self.error: str | None = None

    async def run(self, queue: asyncio.Queue, stop: asyncio.Event) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    async def close(self) -> None:
        pass

    def touch(self) -> None:
        self.last_message = time.time()
        self.drained = False


def split_spec(spec: str) -> tuple[str, str, int | None, str, dict[str, str]]:
    """(scheme, host, port, path, query) of a ``scheme://host:port/path?query`` spec."""
    parts = urlsplit(spec)
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    try:
        port = parts.port
    except ValueError as exc:
        raise InvalidConfig("--source", "port", spec, str(exc)) from None
    return parts.scheme, parts.hostname or "127.0.0.1", port, parts.path, query


def make_source(spec: str, *, replay_speed: str = "max", follow: bool = False,
                instrument_info: Callable[[str], dict | None] | None = None) -> Source:
    """The source for a spec (see the module docstring); raises InvalidConfig for a bad spec."""
    if spec.startswith("file:"):
        from gpuskew.monitor.sources.file import FileSource

        return FileSource(spec, replay_speed=replay_speed, follow=follow)
    if spec.startswith("nats://"):
        from gpuskew.monitor.sources.nats import NatsSource

        return NatsSource(spec)
    if spec.startswith("deribit-ws://") or spec.startswith("deribit-wss://"):
        from gpuskew.monitor.sources.deribit_ws import DeribitWsSource

        return DeribitWsSource(spec, instrument_info=instrument_info)
    raise InvalidConfig("--source", "spec", spec,
                        "expected file:PATH, nats://HOST:PORT/SUBJECT or deribit-ws://HOST:PORT")


def parse_replay_speed(text: str) -> float | None:
    """``max`` -> None (as fast as possible); ``1`` real time; ``N`` N times real time."""
    if str(text).strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        speed = -1.0
    if not speed > 0:
        raise InvalidConfig("--replay-speed", "replay-speed", text, "must be 'max' or a number > 0")
    return speed


__all__ = ["DRAIN_IDLE_S", "Incoming", "Source", "make_source", "parse_replay_speed", "split_spec"]
