"""The journal (checksummed, torn tails cut, corruption refused, pruning) and the dead-letter file."""

from __future__ import annotations

import json

import pytest

from gpuskew.monitor.deadletter import DeadLetters
from gpuskew.monitor.journal import Journal, JournalCorrupt


def test_records_come_back_in_order_after_reopening(tmp_path):
    j = Journal(tmp_path)
    seqs = [j.append(f"r{i}".encode()) for i in range(5)]
    assert seqs == [1, 2, 3, 4, 5]
    assert j.synced_seq == 0  # group commit: nothing durable before sync
    assert j.sync() == 5
    j.close()
    j = Journal(tmp_path)
    assert j.last_seq == 5
    assert list(j.replay(2)) == [(3, b"r2"), (4, b"r3"), (5, b"r4")]
    assert j.append(b"r5") == 6


def test_a_torn_tail_is_cut_and_never_replayed(tmp_path):
    j = Journal(tmp_path)
    for i in range(3):
        j.append(b"x" * 10)
    j.sync()
    seg = j.segments()[-1]
    whole = seg.read_bytes()
    for i in range(2):
        j.append(b"z" * 10)
    j.close()
    full = seg.read_bytes()
    seg.write_bytes(full[: len(whole) + 20])  # records 4 and 5 cut in the middle: a write killed by kill -9
    j = Journal(tmp_path)
    assert j.truncated_bytes > 0
    assert [s for s, _ in j.replay()] == [1, 2, 3]
    assert seg.read_bytes() == whole
    assert j.append(b"y") == 4


def test_a_bad_checksum_before_the_tail_is_corruption(tmp_path):
    j = Journal(tmp_path)
    for i in range(3):
        j.append(b"payload-%d" % i)
    j.rotate()
    j.append(b"later")
    j.close()
    first = j.segments()[0]
    data = bytearray(first.read_bytes())
    data[20] ^= 0xFF  # a flipped byte inside the first record
    first.write_bytes(bytes(data))
    with pytest.raises(JournalCorrupt):
        Journal(tmp_path)


def test_rotate_and_prune_keep_every_record_after_the_snapshot(tmp_path):
    j = Journal(tmp_path)
    for i in range(4):
        j.append(b"a")
    j.rotate()
    for i in range(3):
        j.append(b"b")
    j.rotate()
    j.sync()
    assert len(j.segments()) == 3
    assert j.prune(5) == 1  # the first segment (1..4) only: 5..7 is still needed
    assert [s for s, _ in j.replay(5)] == [6, 7]
    assert j.prune(7) == 1
    assert [s for s, _ in j.replay(7)] == []  # after the snapshot at 7 (replay(0) is a gap now: raises)
    j.append(b"c")
    assert [s for s, _ in j.replay(7)] == [8]


def test_replay_refuses_a_gap_after_the_snapshot(tmp_path):
    j = Journal(tmp_path)
    for _ in range(4):
        j.append(b"a")
    j.rotate()
    for _ in range(3):
        j.append(b"b")
    j.rotate()
    j.sync()
    assert j.prune(5) == 1  # 1..4 gone
    for after in (0, 2, 3):  # a snapshot older than the pruned records: they would be skipped silently
        with pytest.raises(JournalCorrupt, match="missing"):
            list(j.replay(after))
    assert [s for s, _ in j.replay(4)] == [5, 6, 7]
    assert j.prune(7) == 1  # only the empty segment that starts at 8 is left
    with pytest.raises(JournalCorrupt, match="missing"):
        list(j.replay(5))
    assert list(j.replay(7)) == []
    with pytest.raises(JournalCorrupt, match="before seq 9"):
        list(j.replay(9))  # a snapshot newer than the journal
    j.close()


def test_dead_letters_keep_reason_detail_and_payload(tmp_path):
    dl = DeadLetters(tmp_path / "dl.jsonl")
    dl.add("file:x", "invalid_json", "not JSON", b"garbage\n")
    dl.add("nats://h/s", "unknown_instrument", "instrument 'NOPE'", {"type": "fill", "instrument": "NOPE"})
    dl.close()
    lines = [json.loads(x) for x in (tmp_path / "dl.jsonl").read_text().splitlines()]
    assert [x["reason"] for x in lines] == ["invalid_json", "unknown_instrument"]
    assert lines[0]["payload"] == "garbage"
    assert json.loads(lines[1]["payload"])["instrument"] == "NOPE"
    assert lines[0]["received"].endswith("Z") and lines[0]["source"] == "file:x"
