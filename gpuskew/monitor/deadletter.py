"""Dead letters: events the monitor could not use, with the reason, in ``STATE/deadletter.jsonl``.

One JSON object per line: ``received`` (UTC, ISO 8601), ``source``, ``reason`` (the label of
``gpuskew_events_rejected_total``), ``detail`` (one line for people) and ``payload`` (the message
as received, as text, cut at :data:`MAX_PAYLOAD_CHARS`). The file is append-only; it is flushed
and fsynced with the journal, before the messages are acknowledged. A malformed event never
stops the monitor.
"""

from __future__ import annotations

import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from gpuskew.timeutil import iso_z

#: longest payload kept, in characters
MAX_PAYLOAD_CHARS = 65_536


def _text(data: Any) -> str:
    if isinstance(data, (bytes, bytearray, memoryview)):
        text = bytes(data).decode("utf-8", errors="replace")
    elif isinstance(data, str):
        text = data
    else:
        try:
            text = json.dumps(data, ensure_ascii=False, default=str)
        except (TypeError, ValueError):
            text = repr(data)
    return text.rstrip("\n")[:MAX_PAYLOAD_CHARS]


class DeadLetters:
    """Appends dead letters to a JSON Lines file."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(self.path, "a", encoding="utf-8")
        self.count = 0
        self._dirty = False

    def add(self, source: str, reason: str, detail: str, payload: Any) -> None:
        record = {"received": iso_z(datetime.now(timezone.utc)), "source": source,
                  "reason": reason, "detail": detail, "payload": _text(payload)}
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.count += 1
        self._dirty = True

    def sync(self) -> None:
        if self._dirty:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._dirty = False

    def close(self) -> None:
        self.sync()
        self._fh.close()


__all__ = ["DeadLetters", "MAX_PAYLOAD_CHARS"]
