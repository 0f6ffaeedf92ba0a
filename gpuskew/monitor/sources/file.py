"""``file:PATH``: replay a JSON Lines file of canonical events.

``--replay-speed max`` reads as fast as the monitor takes events; ``1`` paces the events by their
``ts`` in real time (the first event at once, the next ``ts`` difference later); ``N`` paces them N
times faster. The line number is the resume cursor: after a restart the monitor skips the lines it
already journaled. Without ``--until-drained`` the file is followed like ``tail -f``.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gpuskew.errors import InvalidConfig
from gpuskew.monitor.events import EventRejected, decode, ts_to_us
from gpuskew.monitor.sources import Incoming, Source, parse_replay_speed

#: lines read between yields to the event loop at full speed
_CHUNK = 256
#: seconds between polls of a followed file
_POLL_S = 0.2


class FileSource(Source):
    kind = "file"

    def __init__(self, spec: str, replay_speed: str = "max", follow: bool = False):
        super().__init__(spec)
        self.path = Path(spec[len("file:"):])
        if not self.path.is_file():
            raise InvalidConfig("--source", "file", str(self.path), "no such file")
        self.speed = parse_replay_speed(replay_speed)
        self.follow = follow
        self.cursor = 0  #: lines already journaled (restored after a restart)

    async def run(self, queue: asyncio.Queue, stop: asyncio.Event) -> None:
        t0_event: int | None = None
        t0_wall = 0.0
        line_no = 0
        with open(self.path, "rb") as fh:
            while not stop.is_set():
                line = fh.readline()
                if not line or not line.endswith(b"\n") and self.follow:
                    if line:  # a partial last line being written: read it again later
                        fh.seek(fh.tell() - len(line))
                    self.drained = True
                    if not self.follow:
                        return
                    await asyncio.sleep(_POLL_S)
                    continue
                line_no += 1
                if line_no <= self.cursor or not line.strip():
                    continue
                data: Any = line
                if self.speed is not None:
                    try:
                        data = decode(line)
                        ts = ts_to_us(data["ts"]) if isinstance(data, dict) and "ts" in data else None
                    except EventRejected:
                        ts = None
                    if ts is not None:
                        if t0_event is None:
                            t0_event, t0_wall = ts, time.monotonic()
                        delay = t0_wall + (ts - t0_event) / 1e6 / self.speed - time.monotonic()
                        if delay > 0:
                            await asyncio.sleep(delay)
                    if not isinstance(data, dict):
                        data = line
                self.touch()
                await queue.put(Incoming(self.id, data, position=line_no))
                if line_no % _CHUNK == 0:
                    await asyncio.sleep(0)


__all__ = ["FileSource"]
