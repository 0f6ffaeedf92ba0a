"""Snapshots of the live state in the state folder, and restarts from them.

``STATE/snapshots/<seq, 16 digits>/`` holds the state after journal record ``seq``:

* ``instruments.parquet``, ``underlyings.parquet`` (spot null while none arrived), ``quotes.parquet``;
* ``positions.parquet``: every held position (pending ones too), in ledger order, after compaction;
* ``trades.parquet``: the trade ids remembered (the most recent ones, oldest first: fills are
  idempotent by trade_id across restarts, :class:`~gpuskew.monitor.state.RecentTradeIds`);
* ``meta.json`` (written last: the commit marker): seq, valuation time, clock, the last applied
  time of each market key, source cursors, tags and grouping levels.

A snapshot folder is written beside its final name and renamed into place (gpuskew.io.publish_run):
a reader never sees half of one, and none is ever deleted to be rewritten: a snapshot at a seq that
already has a complete one is the same state (a function of the journal), so only its meta.json is
replaced, atomically, if a counter of events refused before the journal moved. The journal is pruned
only up to the oldest snapshot kept (:func:`oldest_kept_seq`), so falling back to it loses nothing. Restart = latest complete snapshot + every journal record after
its seq (:func:`restore`). The state is compacted before it is written, so that the restarted
state numbers rows (and resolves keys held on several rows) exactly as the running one.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from gpuskew.core.book import Book
from gpuskew.io import publish_run, write_json, write_parquet
from gpuskew.monitor.state import LiveState, RecentTradeIds

#: snapshot format version (meta.json ``format``)
FORMAT = 1
#: complete snapshots kept (older ones are removed after a new one is written)
KEEP_SNAPSHOTS = 2
META = "meta.json"


def snapshots_dir(state_dir: str | Path) -> Path:
    return Path(state_dir) / "snapshots"


def latest_snapshot(state_dir: str | Path) -> Path | None:
    """The newest complete snapshot folder (with its meta.json), or None."""
    folder = snapshots_dir(state_dir)
    if not folder.is_dir():
        return None
    done = [p for p in folder.iterdir() if p.is_dir() and p.name.isdigit() and (p / META).is_file()]
    return max(done, key=lambda p: int(p.name)) if done else None


def kept_seqs(state_dir: str | Path) -> list[int]:
    """The seqs of the complete snapshots, oldest first."""
    folder = snapshots_dir(state_dir)
    if not folder.is_dir():
        return []
    return sorted(int(p.name) for p in folder.iterdir() if p.is_dir() and p.name.isdigit() and (p / META).is_file())


def oldest_kept_seq(state_dir: str | Path) -> int:
    """The seq of the oldest complete snapshot (0: none): the journal is needed after it."""
    seqs = kept_seqs(state_dir)
    return seqs[0] if seqs else 0


def save(state: LiveState, state_dir: str | Path, seq: int, cursors: Mapping[str, Any]) -> Path:
    """Compact ``state`` and write it as the snapshot after journal record ``seq`` (at a seq that has
    a complete snapshot already: only its meta.json is refreshed, see the module docstring)."""
    reg = state.registry
    meta = {
        "format": FORMAT,
        "seq": int(seq),
        "as_of_us": state.as_of_us,
        "clock_us": state.clock_us,
        "last_event_us": state.last_event_us,
        "tags": list(state.tags),
        "levels": [list(lv) for lv in state.levels],
        "market_ts": [[list(k), v] for k, v in sorted(reg.last_ts.items())],
        "cursors": dict(cursors),
        "counts": dict(state.counts),
        "rejected": dict(state.rejected),
    }
    root = snapshots_dir(state_dir)
    final = root / f"{int(seq):016d}"
    if (final / META).is_file():
        if json.loads((final / META).read_text()) != json.loads(json.dumps(meta)):
            write_json(meta, final / META)
        return final
    state.compact()
    tables = {
        "instruments.parquet": reg.instruments_table(),
        "underlyings.parquet": reg.underlyings_table(only_priced=False),
        "quotes.parquet": reg.quotes_table(),
        "positions.parquet": state.positions.table(),
        "trades.parquet": pa.table({"trade_id": pa.array(list(state.seen_trades), pa.string())}),
    }
    files: dict[str, Callable[[Path], None]] = {name: _parquet_writer(t) for name, t in tables.items()}
    files[META] = lambda p: write_json(meta, p)
    root.mkdir(parents=True, exist_ok=True)
    if final.exists():  # a folder without meta.json is no snapshot (never published): nothing to lose
        shutil.rmtree(final)
    publish_run(final, files, overwrite=False)
    for old in sorted((p for p in root.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))[
            :-KEEP_SNAPSHOTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _parquet_writer(table: pa.Table) -> Callable[[Path], None]:
    return lambda path: write_parquet(table, path)


def load(folder: Path, **state_kwargs: Any) -> tuple[LiveState, dict]:
    """A :class:`LiveState` from a snapshot folder, and its meta."""
    meta = json.loads((folder / META).read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: snapshot format {meta.get('format')!r}, expected {FORMAT}")
    tables = {n: pq.read_table(folder / f"{n}.parquet") for n in ("instruments", "positions", "underlyings", "quotes")}
    sources = {n: str(folder / f"{n}.parquet") for n in tables}
    book = Book(tables["instruments"], tables["positions"], tables["underlyings"], tables["quotes"], sources,
                {n: "snapshot" for n in tables})
    state = LiveState(book, as_of_us=meta["as_of_us"], tags=meta["tags"], **state_kwargs)
    state.clock_us = meta["clock_us"]
    state.last_event_us = meta.get("last_event_us")
    state.registry.last_ts = {tuple(k): int(v) for k, v in meta["market_ts"]}
    state.seen_trades = RecentTradeIds(pq.read_table(folder / "trades.parquet").column("trade_id").to_pylist(),
                                       state.seen_trades.limit)
    state.counts.update(meta.get("counts", {}))
    state.rejected.update(meta.get("rejected", {}))
    return state, meta


__all__ = ["FORMAT", "KEEP_SNAPSHOTS", "kept_seqs", "latest_snapshot", "load", "oldest_kept_seq", "save",
           "snapshots_dir"]
