"""The monitor's HTTP server (aiohttp): ``/metrics``, ``/api/state``, ``/api/stream``, ``/healthz`` and
the dashboard at ``/``.

* ``/metrics``: Prometheus text exposition (:mod:`gpuskew.monitor.metrics`).
* ``/api/state``: the current state as JSON (:func:`gpuskew.monitor.view.state_view`).
* ``/api/stream``: the same JSON as server-sent events (``event: state``), pushed after each
  publish, at most every :data:`STREAM_MIN_INTERVAL_S` seconds per client (the newest state wins).
* ``/healthz``: ``{"status": "ok"}`` once the monitor has published (``starting`` before, with
  HTTP 503), with the valuation time and the age of the last publish.
* ``/`` and ``/static/...``: the dashboard, shipped in the package (gpuskew/monitor/static), no CDN.
"""

from __future__ import annotations

import asyncio
import json
import time
from importlib import resources
from typing import Any

#: seconds between two state events sent to one dashboard
STREAM_MIN_INTERVAL_S = 0.25
_TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; style-src 'self'; script-src 'self'; img-src 'self' data:"}


class Hub:
    """The latest state JSON and a version number dashboards wait on."""

    def __init__(self):
        self.text = json.dumps({"status": "starting"})
        self.version = 0
        self.status = "starting"
        self.as_of: str | None = None
        self.published_at: float | None = None
        self._changed = asyncio.Event()

    def update(self, text: str, status: str, as_of: str | None, published_at: float | None) -> None:
        self.text, self.status, self.as_of, self.published_at = text, status, as_of, published_at
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait(self, version: int, timeout: float) -> None:
        if self.version != version:
            return
        try:
            await asyncio.wait_for(self._changed.wait(), timeout)
        except asyncio.TimeoutError:
            pass


def _static(name: str) -> tuple[bytes, str] | None:
    if "/" in name or "\\" in name or name.startswith("."):
        return None
    base = resources.files("gpuskew.monitor") / "static"
    item = base / name
    if not item.is_file():
        return None
    suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
    return item.read_bytes(), _TYPES.get(suffix, "application/octet-stream")


def make_app(hub: Hub, metrics: Any) -> Any:
    """The aiohttp application."""
    from aiohttp import web

    async def index(_request):
        body, ctype = _static("index.html")
        return web.Response(body=body, content_type=ctype, charset="utf-8", headers=_HEADERS)

    async def static(request):
        found = _static(request.match_info["name"])
        if found is None:
            raise web.HTTPNotFound()
        body, ctype = found
        return web.Response(body=body, content_type=ctype, headers=_HEADERS)

    async def metrics_handler(_request):
        return web.Response(body=metrics.render(), headers={"Content-Type": metrics.content_type})

    async def state(_request):
        return web.Response(text=hub.text, content_type="application/json", headers=_HEADERS)

    async def healthz(_request):
        age = None if hub.published_at is None else round(time.time() - hub.published_at, 3)
        body = {"status": hub.status, "as_of": hub.as_of, "last_publish_age_s": age}
        return web.json_response(body, status=200 if hub.status == "ok" else 503)

    async def stream(request):
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        await resp.prepare(request)
        version = -1
        try:
            while True:
                if hub.version != version:
                    version = hub.version
                    await resp.write(f"event: state\nid: {version}\ndata: {hub.text}\n\n".encode("utf-8"))
                    await asyncio.sleep(STREAM_MIN_INTERVAL_S)
                else:
                    await hub.wait(version, 15.0)
                    if hub.version == version:
                        await resp.write(b": keep-alive\n\n")
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        return resp

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/static/{name}", static)
    app.router.add_get("/metrics", metrics_handler)
    app.router.add_get("/api/state", state)
    app.router.add_get("/api/stream", stream)
    app.router.add_get("/healthz", healthz)
    return app


async def start_server(app: Any, host: str, port: int) -> Any:
    """Start serving; returns the runner (``await runner.cleanup()`` stops it)."""
    from aiohttp import web

    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    return runner


def parse_host_port(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``:PORT`` = 127.0.0.1; port 0 = any free port)."""
    from gpuskew.errors import InvalidConfig

    host, sep, port = text.rpartition(":")
    if not sep:
        raise InvalidConfig("--http", "http", text, "expected HOST:PORT")
    try:
        p = int(port)
    except ValueError:
        p = -1
    if not 0 <= p <= 65535:
        raise InvalidConfig("--http", "http", text, "port must be 0..65535")
    return (host.strip("[]") or "127.0.0.1"), p


__all__ = ["Hub", "make_app", "start_server", "parse_host_port", "STREAM_MIN_INTERVAL_S"]
