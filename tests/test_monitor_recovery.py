"""The monitor survives events that would make measures non-finite, and always comes back up:
an overflowing fill is refused before it is journaled (dead letter ``nonfinite``); a publish that
fails anyway keeps the last good one, reports ``error`` and consumes on; a restart replays the
journal and starts. Snapshots never lose acknowledged records (journal pruning, gap detection)."""

from __future__ import annotations

import asyncio
import json

import pytest

from monitor_support import demo_book, write_jsonl

pytest.importorskip("aiohttp")
pytest.importorskip("prometheus_client")


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    return demo_book(tmp_path_factory.mktemp("book") / "book", n=300, seed=5)


def _events(book):
    from gpuskew.core.book import load_book
    from gpuskew.monitor.sample import sample_day
    from gpuskew.synthetic.demo import DEMO_AS_OF

    return sample_day(load_book(book).tables, DEMO_AS_OF, n_events=200, seed=3)


def _monitor(book, state_dir, source, **kw):
    from gpuskew.monitor.service import Monitor, MonitorConfig

    cfg = MonitorConfig(book_dir=book, limits_path=None, sources=[f"file:{source}"], state_dir=state_dir,
                        backend="cpu", until_drained=True, **kw)
    logs: list[str] = []
    return Monitor(cfg, log=logs.append), logs


def _run(book, state_dir, source, **kw):
    mon, logs = _monitor(book, state_dir, source, **kw)
    return asyncio.run(mon.run()), mon, logs


def _ts(events, k):
    return events[k]["ts"]


def test_an_overflowing_fill_is_dead_lettered_before_the_journal_and_a_restart_comes_up(book, tmp_path):
    events = _events(book)
    huge = {"type": "fill", "ts": _ts(events, 100), "trade_id": "huge-1", "instrument": "BTC-PERPETUAL",
            "quantity": 1e307, "price": 97000.0}
    source = write_jsonl(tmp_path / "day.jsonl", events[:101] + [huge] + events[101:])
    state = tmp_path / "st"
    summary, mon, _ = _run(book, state, source)
    assert summary["status"] == "ok" and "error" not in summary
    assert summary["rejected"]["nonfinite"] == 1
    dead = [json.loads(x) for x in (state / "deadletter.jsonl").read_text().splitlines()]
    assert [d["reason"] for d in dead] == ["nonfinite"]
    # never journaled: a restart (replaying everything after the snapshot) comes up, and so does one
    # that replays the whole journal
    from gpuskew.monitor.journal import Journal

    j = Journal(state / "journal")
    assert not any(b"huge-1" in payload for _, payload in j.replay(0))
    # a journal that holds such a fill (written by an older version) still replays: it is skipped
    j.append(json.dumps({"s": f"file:{source}", "p": None, "e": dict(huge, trade_id="huge-2")}).encode())
    j.close()
    again, _, _ = _run(book, state, source)
    assert again["status"] == "ok" and again["events"] == summary["events"] and again["replayed"] == 1


def test_a_publish_that_fails_keeps_the_last_good_one_and_a_restart_replaying_it_comes_up(book, tmp_path):
    events = _events(book)
    bad_rate = {"type": "rate", "ts": _ts(events, 150), "underlying": "BTC", "rate": -1e6}  # exp(r T) overflows
    source = write_jsonl(tmp_path / "day.jsonl", events[:151] + [bad_rate])
    state = tmp_path / "st"
    summary, mon, logs = _run(book, state, source, max_batch=50)
    assert summary["status"] == "error" and "non-finite" in summary["error"]
    assert "<monitor state: live positions>" in summary["error"]
    assert mon.last_pub is not None and summary["publishes"] >= 1  # the last good publish is kept
    assert mon.metrics.publish_errors._value.get() >= 1
    assert any("publish failed" in line for line in logs)
    # restart: the snapshot holds the bad rate; the monitor comes up (in error) and a good tick heals it
    fixed = {"type": "rate", "ts": _ts(events, 199), "underlying": "BTC", "rate": 0.01}
    write_jsonl(source, events[:151] + [bad_rate] + events[151:] + [fixed])
    again, mon2, _ = _run(book, state, source, max_batch=50)
    assert again["status"] == "ok" and "error" not in again
    assert again["as_of"] is not None and again["publishes"] >= 1


def test_a_failed_publish_reports_error_on_the_hub(book, tmp_path):
    from gpuskew.errors import InvalidInput
    from gpuskew.monitor.http import Hub
    from gpuskew.monitor.metrics import MonitorMetrics
    from gpuskew.monitor.view import AlertFeed

    events = _events(book)
    mon, _ = _monitor(book, tmp_path / "st", write_jsonl(tmp_path / "e.jsonl", events[:10]))

    async def go():
        mon.metrics, mon.alert_feed, mon.hub = MonitorMetrics(100), AlertFeed(), Hub()
        mon.open_state()
        try:
            mon.state.step_to(mon.state.clock_us or 1)
            good = await mon.publish()
            assert mon.hub.status == "ok" and good is mon.last_pub

            def boom():
                raise InvalidInput("<monitor state: live positions>", "value_usd", "overflow", rows=[3], n_bad=1)

            mon.state.publish = boom
            assert await mon.publish() is good
            assert mon.hub.status == "error"
            view = json.loads(mon.hub.text)
            assert view["status"] == "error" and "overflow" in view["error"] and view["as_of"] is not None
        finally:
            mon.close()

    asyncio.run(go())


def test_resaving_a_snapshot_at_the_same_seq_never_deletes_it(book, tmp_path):
    from gpuskew.core.book import load_book
    from gpuskew.monitor import snapshot
    from gpuskew.monitor.state import LiveState
    from gpuskew.synthetic.demo import DEMO_AS_OF

    state = LiveState(load_book(book), backend="cpu", as_of_us=int(DEMO_AS_OF.timestamp()) * 1_000_000)
    folder = snapshot.save(state, tmp_path, 7, {})
    inodes = {p.name: p.stat().st_ino for p in folder.iterdir()}
    state.rejected["invalid_json"] += 2  # refused before the journal: the only thing that moves at one seq
    assert snapshot.save(state, tmp_path, 7, {}) == folder
    assert {p.name: p.stat().st_ino for p in folder.iterdir() if p.name != "meta.json"} == \
        {k: v for k, v in inodes.items() if k != "meta.json"}  # the tables were not rewritten
    assert json.loads((folder / "meta.json").read_text())["rejected"] == {"invalid_json": 2}
    snapshot.save(state, tmp_path, 9, {})
    snapshot.save(state, tmp_path, 12, {})
    assert snapshot.kept_seqs(tmp_path) == [9, 12] and snapshot.oldest_kept_seq(tmp_path) == 9


def test_the_journal_is_kept_back_to_the_oldest_snapshot(book, tmp_path):
    """A crash that loses the newest snapshot falls back to the older one: its journal tail is there."""
    import shutil

    from gpuskew.monitor import snapshot

    events = _events(book)
    state = tmp_path / "st"
    first, _, _ = _run(book, state, write_jsonl(tmp_path / "a.jsonl", events[:80]))
    source = write_jsonl(tmp_path / "a.jsonl", events)  # the file grows: the restart resumes after line 80
    full, _, _ = _run(book, state, source)
    seqs = sorted(int(p.name) for p in snapshot.snapshots_dir(state).iterdir())
    assert len(seqs) == 2 and seqs[0] < seqs[1]
    shutil.rmtree(snapshot.snapshots_dir(state) / f"{seqs[1]:016d}")  # the newest snapshot is lost
    again, _, _ = _run(book, state, source)
    assert again["replayed"] > 0
    assert again["events"] == full["events"] and again["journal_seq"] == full["journal_seq"]
