"""``gpuskew monitor``: a live risk process around the Session.

The book stays resident; fills and market ticks arrive from sources (:mod:`.sources`: JSON Lines
files, NATS JetStream, Deribit's WebSocket API), are journaled (:mod:`.journal`) and applied to the
live state (:mod:`.state`): position keeping (:mod:`gpuskew.core.ledger`), market data
(:mod:`.registry`), dirty-only re-pricing with the run's kernel and group sums in the run's fixed
order (:mod:`.pricer`, :mod:`.grouping`), adherence and alerts through the Session. Snapshots
(:mod:`.snapshot`) and the journal make restarts exact; :mod:`.output` writes ``--snapshot-out``;
:mod:`.metrics`, :mod:`.http` (dashboard in ``static/``) and :mod:`.publisher` publish.
:mod:`.service` is the process loop; :mod:`.events` and :mod:`.deribit` the event formats.

Nothing here is imported by ``import gpuskew`` or ``gpuskew run``; the optional dependencies
(nats-py, websockets, prometheus-client, aiohttp: ``pip install 'gpuskew[monitor]'``) are imported
only by the parts that use them.
"""

from __future__ import annotations

__all__ = ["LiveState", "Monitor", "MonitorConfig"]


def __getattr__(name: str):
    if name == "LiveState":
        from gpuskew.monitor.state import LiveState

        return LiveState
    if name in ("Monitor", "MonitorConfig"):
        from gpuskew.monitor import service

        return getattr(service, name)
    raise AttributeError(f"module 'gpuskew.monitor' has no attribute {name!r}")
