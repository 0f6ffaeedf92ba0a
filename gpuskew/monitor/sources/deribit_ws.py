"""``deribit-ws://HOST:PORT[/PATH][?currency=BTC,ETH&channels=...&interval=100ms&tls=1&TAG=VALUE]``:
Deribit's JSON-RPC 2.0 WebSocket API (https://docs.deribit.com/articles/notifications).

On connecting, the source authenticates with ``public/auth`` (grant_type client_credentials) when
the environment has GPUSKEW_DERIBIT_CLIENT_ID and GPUSKEW_DERIBIT_CLIENT_SECRET, enables
heartbeats (``public/set_heartbeat``, answering each ``test_request`` with ``public/test``) and
subscribes to the channels of :func:`gpuskew.monitor.deribit.default_channels` (or ``channels``,
comma-separated). Notifications are mapped to canonical events by
:class:`gpuskew.monitor.deribit.DeribitMapper`; any other query parameter is a tag added to every
fill (``desk=deribit-mm``: a Deribit connection is one account). The path defaults to
``/ws/api/v2``; ``tls=1`` (or the ``deribit-wss://`` scheme) uses ``wss://``. A lost connection is
re-established with back-off, except with ``--until-drained``, where a closed connection, or two
seconds without a message, means drained.

Limitation: there is no catch-up after a disconnect. Notifications are not replayed by Deribit, so
trades done while the connection was down are not seen (fetching them would need the private
trade-history API with authentication, which this source does not call); market data resumes with
the next tick. Positions can drift from the exchange's until they are reconciled (for example by
restarting from a fresh BOOK_DIR export).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Callable

from gpuskew.monitor.deribit import DeribitMapper, default_channels, subscribe_request
from gpuskew.monitor.sources import DRAIN_IDLE_S, Incoming, Source, split_spec

_RESERVED = {"currency", "channels", "interval", "tls"}
#: seconds between heartbeats asked of the server
HEARTBEAT_S = 10


class DeribitWsSource(Source):
    kind = "deribit-ws"

    def __init__(self, spec: str, instrument_info: Callable[[str], dict | None] | None = None):
        super().__init__(spec)
        scheme, self.host, port, path, query = split_spec(spec)
        self.tls = scheme == "deribit-wss" or query.get("tls") in ("1", "true", "yes")
        self.port = port or (443 if self.tls else 80)
        self.path = path or "/ws/api/v2"
        currencies = [c for c in (query.get("currency") or "BTC").split(",") if c]
        interval = query.get("interval") or "100ms"
        self.channels = ([c for c in query["channels"].split(",") if c] if query.get("channels")
                         else default_channels(currencies, interval))
        tags = {k: v for k, v in query.items() if k not in _RESERVED}
        self.mapper = DeribitMapper(instrument_info, tags)
        self.stop_when_closed = False
        self._id = 0

    @property
    def url(self) -> str:
        return f"{'wss' if self.tls else 'ws'}://{self.host}:{self.port}{self.path}"

    def _request(self, method: str, params: dict) -> str:
        self._id += 1
        return json.dumps({"jsonrpc": "2.0", "id": self._id, "method": method, "params": params})

    async def _session(self, ws, queue: asyncio.Queue, stop: asyncio.Event) -> None:
        client_id = os.environ.get("GPUSKEW_DERIBIT_CLIENT_ID")
        secret = os.environ.get("GPUSKEW_DERIBIT_CLIENT_SECRET")
        private = bool(client_id and secret)
        if private:
            await ws.send(self._request("public/auth", {"grant_type": "client_credentials", "client_id": client_id,
                                                        "client_secret": secret}))
        await ws.send(self._request("public/set_heartbeat", {"interval": HEARTBEAT_S}))
        self._id += 1
        await ws.send(json.dumps(subscribe_request(self.channels, self._id, private=private)))
        last = time.monotonic()
        while not stop.is_set():
            try:
                text = await asyncio.wait_for(ws.recv(), timeout=0.25)
            except asyncio.TimeoutError:
                if self.stop_when_closed and time.monotonic() - last >= DRAIN_IDLE_S:
                    self.drained = True
                continue
            last = time.monotonic()
            try:
                message = json.loads(text)
            except ValueError:
                await queue.put(Incoming(self.id, text if isinstance(text, str) else bytes(text)))
                continue
            if message.get("method") == "heartbeat":
                if (message.get("params") or {}).get("type") == "test_request":
                    await ws.send(self._request("public/test", {}))
                continue
            events = self.mapper.map(message)
            if events:
                self.touch()
            for event in events:
                await queue.put(Incoming(self.id, event))

    async def run(self, queue: asyncio.Queue, stop: asyncio.Event) -> None:
        import websockets

        backoff = 0.5
        while not stop.is_set():
            try:
                async with websockets.connect(self.url, max_size=1 << 24) as ws:
                    backoff = 0.5
                    await self._session(ws, queue, stop)
                    return
            except (OSError, websockets.exceptions.WebSocketException) as exc:
                self.error = f"{type(exc).__name__}: {exc}"
                if self.stop_when_closed:
                    self.drained = True
                    return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


__all__ = ["DeribitWsSource", "HEARTBEAT_S"]
