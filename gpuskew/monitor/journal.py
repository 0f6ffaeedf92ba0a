"""The monitor's write-ahead journal: append-only, checksummed, fsynced before anything is acknowledged.

Layout: ``STATE/journal/seg-<first seq, 16 digits>.log`` segment files. A record is

    length (uint32 LE) | crc32 (uint32 LE) of seq + payload | seq (uint64 LE) | payload (length bytes)

with consecutive sequence numbers from 1. :meth:`Journal.append` buffers records, :meth:`Journal.sync`
writes and fsyncs them in one call (group commit: one fsync for a whole batch of events); a source
acknowledges its messages only after ``sync`` returned. A process killed mid-write leaves at most a
torn record at the end of the last segment: :meth:`Journal.open` cuts it off (those records were
never acknowledged). A bad checksum anywhere else is corruption and raises :class:`JournalCorrupt`.

After a snapshot that holds everything up to seq N, :meth:`Journal.rotate` starts a new segment and
:meth:`Journal.prune` removes the segments whose records are all <= N.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gpuskew.errors import GpuskewError
from gpuskew.io.atomic import fsync_dir

_HEADER = struct.Struct("<IIQ")
_SEQ = struct.Struct("<Q")
#: largest payload accepted (bytes): a bigger one is refused before it reaches the journal
MAX_RECORD_BYTES = 16 << 20


class JournalCorrupt(GpuskewError):
    """A journal record other than the torn tail failed its checksum."""


def _segment_name(first_seq: int) -> str:
    return f"seg-{first_seq:016d}.log"


def _first_seq(path: Path) -> int:
    return int(path.stem.split("-", 1)[1])


def _crc(seq: int, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(_SEQ.pack(seq))) & 0xFFFFFFFF


def _scan(path: Path) -> Iterator[tuple[int, int, bytes]]:
    """(end offset, seq, payload) of each valid record; stops at the first invalid one."""
    with open(path, "rb") as fh:
        data = fh.read()
    pos = 0
    n = len(data)
    while pos + _HEADER.size <= n:
        length, crc, seq = _HEADER.unpack_from(data, pos)
        end = pos + _HEADER.size + length
        if length > MAX_RECORD_BYTES or end > n:
            return
        payload = data[pos + _HEADER.size:end]
        if _crc(seq, payload) != crc:
            return
        yield end, seq, payload
        pos = end


class Journal:
    """Append-only journal in ``folder`` (see the module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._buffer: list[bytes] = []
        self._fh: Any = None
        self.last_seq = 0  #: last sequence number written (buffered ones included)
        self.synced_seq = 0  #: last sequence number known to be on disk
        self.truncated_bytes = 0  #: bytes of a torn tail cut off at open
        self._open()

    # -- opening -------------------------------------------------------------------------------
    def segments(self) -> list[Path]:
        return sorted(self.folder.glob("seg-*.log"), key=_first_seq)

    def _open(self) -> None:
        segs = self.segments()
        last = 0
        for i, seg in enumerate(segs):
            expected = _first_seq(seg)
            end = 0
            for end, seq, _ in _scan(seg):
                if seq != expected:
                    raise JournalCorrupt(f"journal {seg}: record seq {seq}, expected {expected}")
                expected += 1
            size = seg.stat().st_size
            if end != size:
                if i != len(segs) - 1:
                    raise JournalCorrupt(f"journal {seg}: bad record at byte {end} of {size} "
                                         "(not the end of the last segment)")
                with open(seg, "r+b") as fh:  # a torn tail: never acknowledged
                    fh.truncate(end)
                    fh.flush()
                    os.fsync(fh.fileno())
                self.truncated_bytes = size - end
            if i + 1 < len(segs) and _first_seq(segs[i + 1]) != expected:
                raise JournalCorrupt(f"journal {segs[i + 1]}: starts at seq {_first_seq(segs[i + 1])}, "
                                     f"expected {expected}")
            last = expected - 1
        self.last_seq = self.synced_seq = last
        if segs:
            self._fh = open(segs[-1], "ab")
        else:
            self._new_segment()

    def _new_segment(self) -> None:
        if self._fh is not None:
            self._fh.close()
        path = self.folder / _segment_name(self.last_seq + 1)
        self._fh = open(path, "ab")
        fsync_dir(self.folder)

    # -- writing ---------------------------------------------------------------------------------
    def append(self, payload: bytes) -> int:
        """Buffer one record; returns its sequence number (durable only after :meth:`sync`)."""
        if len(payload) > MAX_RECORD_BYTES:
            raise ValueError(f"journal record of {len(payload)} bytes > {MAX_RECORD_BYTES}")
        self.last_seq += 1
        seq = self.last_seq
        self._buffer.append(_HEADER.pack(len(payload), _crc(seq, payload), seq))
        self._buffer.append(payload)
        return seq

    def sync(self) -> int:
        """Write the buffered records and fsync: one write and one fsync for the whole batch.
        Returns the last durable sequence number."""
        if self._buffer:
            self._fh.write(b"".join(self._buffer))
            self._buffer.clear()
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self.synced_seq = self.last_seq
        return self.synced_seq

    def rotate(self) -> None:
        """Start a new segment (after a snapshot): the next record opens it."""
        self.sync()
        if self._fh is not None and self._fh.tell() > 0:
            self._new_segment()

    def prune(self, upto_seq: int) -> int:
        """Remove segments whose records are all <= ``upto_seq``; returns how many."""
        segs = self.segments()
        removed = 0
        for seg, nxt in zip(segs, segs[1:]):
            if _first_seq(nxt) - 1 <= upto_seq:
                seg.unlink()
                removed += 1
        if removed:
            fsync_dir(self.folder)
        return removed

    def close(self) -> None:
        if self._fh is not None:
            self.sync()
            self._fh.close()
            self._fh = None

    # -- reading ---------------------------------------------------------------------------------
    def replay(self, after_seq: int = 0) -> Iterator[tuple[int, bytes]]:
        """(seq, payload) of every durable record with seq > ``after_seq``, in order; raises
        :class:`JournalCorrupt` when records after ``after_seq`` are missing (pruned or lost: a
        restart from that point would silently skip acknowledged events)."""
        self.sync()
        last = self.synced_seq
        if last < after_seq:
            raise JournalCorrupt(f"journal {self.folder}: ends at seq {last}, before seq {after_seq} "
                                 "(the snapshot's): records are missing")
        expected = after_seq + 1
        segs = self.segments()
        for i, seg in enumerate(segs):
            if i + 1 < len(segs) and _first_seq(segs[i + 1]) - 1 <= after_seq:
                continue
            for _, seq, payload in _scan(seg):
                if seq > after_seq:
                    if seq != expected:
                        raise JournalCorrupt(f"journal {seg}: record seq {seq} after seq {expected - 1}: "
                                             f"records {expected}..{seq - 1} are missing")
                    expected += 1
                    yield seq, payload
        if expected - 1 < last:
            raise JournalCorrupt(f"journal {self.folder}: records {expected}..{last} are missing")


__all__ = ["Journal", "JournalCorrupt", "MAX_RECORD_BYTES"]
