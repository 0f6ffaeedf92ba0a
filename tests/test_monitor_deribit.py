"""The deribit-ws source against a local WebSocket server replaying Deribit's documented message shapes
(JSON-RPC subscribe, heartbeat test_request, user.changes trades, markprice.options, deribit_price_index,
perpetual): subscription, heartbeat answers, mapping, and the monitor end to end."""

from __future__ import annotations

import asyncio
import json

import pyarrow.parquet as pq
import pytest

from monitor_support import DeribitReplayServer, demo_book, example_limits, notification, run_monitor

pytest.importorskip("websockets")

T0 = 1795161600000  # 2026-11-20T08:00:00Z in ms


def documented_day() -> list[dict]:
    """Notifications in the shapes of Deribit's documentation pages, for a BTC book."""
    return [
        notification("deribit_price_index.btc_usd", {"timestamp": T0, "price": 97100.0, "index_name": "btc_usd"}),
        notification("perpetual.BTC-PERPETUAL.100ms", {"interest": 0.0001, "timestamp": T0 + 100,
                                                        "index_price": 97100.0}),
        notification("markprice.options.btc_usd", [
            {"timestamp": T0 + 200, "mark_price": 0.0333, "iv": 0.61, "instrument_name": "BTC-27DEC26-100000-C"}]),
        notification("user.changes.future.BTC.100ms", {
            "trades": [{"trade_seq": 1, "trade_id": "D-1", "timestamp": T0 + 300, "tick_direction": 1,
                        "state": "filled", "price": 97150.5, "order_type": "market", "order_id": "o1",
                        "mark_price": 97150.0, "liquidity": "T", "instrument_name": "BTC-PERPETUAL",
                        "index_price": 97100.0, "fee_currency": "BTC", "fee": 1.6e-7, "direction": "buy",
                        "amount": 2500}],
            "positions": [], "orders": []}),
        notification("user.changes.option.BTC.100ms", {
            "trades": [{"trade_id": "D-2", "timestamp": T0 + 400, "instrument_name": "BTC-27DEC26-100000-C",
                        "direction": "sell", "amount": 3.0, "price": 0.034, "index_price": 97100.0, "fee": 0.0003,
                        "fee_currency": "BTC", "state": "filled"},
                       {"trade_id": "D-1", "timestamp": T0 + 300, "instrument_name": "BTC-PERPETUAL",  # repeat
                        "direction": "buy", "amount": 2500, "price": 97150.5, "index_price": 97100.0}],
            "positions": [], "orders": []}),
        notification("deribit_price_index.btc_usd", {"timestamp": T0 + 500, "price": 97300.0, "index_name": "btc_usd"}),
        notification("deribit_price_index.btc_usd", {"timestamp": T0 + 450, "price": 1.0, "index_name": "btc_usd"}),
    ]


def test_source_subscribes_answers_heartbeats_and_maps_notifications():
    from gpuskew.monitor.events import parse_event
    from gpuskew.monitor.sources.deribit_ws import DeribitWsSource

    server = DeribitReplayServer(documented_day())
    try:
        known = {"BTC-PERPETUAL": {"kind": "perpetual", "settlement": "inverse", "contract_size": 10.0}}
        src = DeribitWsSource(f"deribit-ws://{server.url}?currency=BTC&desk=deribit-mm", instrument_info=known.get)
        src.stop_when_closed = True

        async def collect():
            q: asyncio.Queue = asyncio.Queue()
            await asyncio.wait_for(src.run(q, asyncio.Event()), 30)
            return [q.get_nowait().data for _ in range(q.qsize())]

        items = asyncio.run(collect())
    finally:
        server.stop()
    methods = [r["method"] for r in server.requests]
    assert "public/subscribe" in methods and "public/set_heartbeat" in methods and "public/test" in methods
    sub = next(r for r in server.requests if r["method"] == "public/subscribe")
    assert "user.changes.any.BTC.100ms" in sub["params"]["channels"]
    assert "deribit_price_index.btc_usd" in sub["params"]["channels"]
    events = [parse_event(x) for x in items]
    kinds = [e.type for e in events]
    assert kinds == ["index", "rate", "instrument", "mark", "fill", "fill", "fill", "index", "index"]
    fill = events[4]
    assert fill.instrument == "BTC-PERPETUAL" and fill.quantity == 250.0 and fill.tags == {"desk": "deribit-mm"}
    option = events[5]
    assert option.instrument == "BTC-27DEC26-100000-C" and option.quantity == -3.0
    assert option.price == pytest.approx(0.034 * 97100.0)


def test_monitor_end_to_end_on_a_deribit_feed(tmp_path):
    book = demo_book(tmp_path / "book", n=400)
    server = DeribitReplayServer(documented_day())
    try:
        proc = run_monitor(str(book), "--limits", str(example_limits()), "--source",
                           f"deribit-ws://{server.url}?currency=BTC&desk=deribit-mm&book=main",
                           "--state", str(tmp_path / "st"), "--until-drained", "--snapshot-out", str(tmp_path / "snap"),
                           "--backend", "cpu", "--json")
    finally:
        server.stop()
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert summary["events"] == {"index": 2, "rate": 1, "instrument": 1, "mark": 1, "fill": 2}
    assert summary["rejected"] == {"duplicate_trade_id": 1, "stale": 1}
    positions = pq.read_table(tmp_path / "snap" / "book" / "positions.parquet").to_pylist()
    mine = {r["instrument"]: r for r in positions if r["desk"] == "deribit-mm"}
    assert mine["BTC-PERPETUAL"]["quantity"] == 250.0 and mine["BTC-PERPETUAL"]["book"] == "main"
    assert mine["BTC-PERPETUAL"]["entry_price"] == 97150.5
    assert mine["BTC-27DEC26-100000-C"]["quantity"] == -3.0
    und = {r["underlying"]: r for r in pq.read_table(tmp_path / "snap" / "book" / "underlyings.parquet").to_pylist()}
    assert und["BTC"]["spot"] == 97300.0  # the stale 1.0 tick was ignored
    assert und["BTC"]["funding_rate"] == pytest.approx(0.0001 * 3 * 365)
    inst = {r["instrument"]: r for r in pq.read_table(tmp_path / "snap" / "book" / "instruments.parquet").to_pylist()}
    assert inst["BTC-27DEC26-100000-C"]["strike"] == 100000.0
