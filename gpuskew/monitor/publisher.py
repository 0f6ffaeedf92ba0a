"""``--publish nats://HOST:PORT/PREFIX``: alerts, hedge proposals and adherence as NATS messages.

Subjects, per underlying (its name with characters NATS does not allow in a token replaced by ``_``):

* ``PREFIX.alerts.<UNDERLYING>``: every alert (the alerts.jsonl object), when it fires;
* ``PREFIX.hedges.<UNDERLYING>``: every hedge proposal (a hedges.parquet row) when it is new or
  changed since the previous publish, so an execution system can act once on each;
* ``PREFIX.adherence.<UNDERLYING>``: at each publish, ``{"as_of": ..., "groups": [adherence rows]}``.

Messages are compact JSON (:func:`gpuskew.monitor.view.dumps`). Core NATS publishes (no
acknowledgement): a consumer that must not miss one should capture the subjects in a JetStream
stream of its own.
"""

from __future__ import annotations

import re
from typing import Any

from gpuskew.core.groups import GroupId, group_id
from gpuskew.errors import InvalidConfig
from gpuskew.monitor.events import us_to_iso
from gpuskew.monitor.sources import split_spec
from gpuskew.monitor.view import _group, _rows, dumps

_BAD = re.compile(r"[^A-Za-z0-9_\-]")


def token(name: str) -> str:
    """A subject token for a name: characters other than letters, digits, ``_`` and ``-`` -> ``_``."""
    return _BAD.sub("_", str(name)) or "_"


class NatsPublisher:
    """Publishes a monitor's output (see the module docstring)."""

    def __init__(self, spec: str):
        scheme, self.host, port, path, _ = split_spec(spec)
        if scheme != "nats":
            raise InvalidConfig("--publish", "publish", spec, "expected nats://HOST:PORT/PREFIX")
        self.port = port or 4222
        self.prefix = ".".join(token(p) for p in path.strip("/").split("/") if p) or "gpuskew"
        self.nc: Any = None
        self._hedges: dict[GroupId, str] = {}
        self.published = 0

    async def connect(self) -> None:
        import nats

        self.nc = await nats.connect(f"nats://{self.host}:{self.port}", name="gpuskew-monitor publisher",
                                     max_reconnect_attempts=-1)

    async def _send(self, kind: str, underlying: str, payload: Any) -> None:
        await self.nc.publish(f"{self.prefix}.{kind}.{token(underlying)}", dumps(payload).encode("utf-8"))
        self.published += 1

    async def publish(self, pub: Any) -> None:
        """Send the alerts, the new or changed hedge proposals and the adherence of ``pub``."""
        if self.nc is None or pub.effective is None:
            return
        from gpuskew.schema import ADHERENCE, HEDGES

        for alert in pub.alerts:
            await self._send("alerts", alert["group"]["underlying"], alert)
        htags = HEDGES.tag_columns(pub.adherence.hedges)
        current: dict[GroupId, str] = {}
        for row in _rows(pub, "hedges"):
            key = group_id(row, htags)
            text = dumps({k: v for k, v in row.items() if k != "as_of"})
            current[key] = text
            if self._hedges.get(key) != text:
                await self._send("hedges", row["underlying"], row)
        self._hedges = current
        atags = ADHERENCE.tag_columns(pub.effective)
        by_underlying: dict[str, list] = {}
        for row in _rows(pub, "effective"):
            row = dict(row)
            row["group"] = _group(row, atags)
            by_underlying.setdefault(row["underlying"], []).append(row)
        for underlying, rows in by_underlying.items():
            await self._send("adherence", underlying, {"as_of": us_to_iso(pub.as_of_us), "groups": rows})

    async def close(self) -> None:
        if self.nc is not None:
            try:
                await self.nc.flush(timeout=2)
                await self.nc.close()
            except Exception:  # pragma: no cover
                pass
            self.nc = None


__all__ = ["NatsPublisher", "token"]
