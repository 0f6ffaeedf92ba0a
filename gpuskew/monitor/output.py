"""``--snapshot-out DIR``: the current state as ``DIR/book/`` (a valid book folder) and ``DIR/run/``
(exactly the files ``gpuskew run DIR/book --as-of AS_OF`` writes, computed by the monitor).

``DIR/book`` is written first (instruments, positions, underlyings, quotes as Parquet), then read
back with :func:`gpuskew.core.book.load_book` (which validates it). ``DIR/run`` holds the
monitor's own numbers in the run's tables: positions.parquet (the monitor's per-position measures
with the book's columns, as the engine lays them out), exposures.parquet (the monitor's group sums),
and with limits adherence.parquet (with the monitor's effective statuses), hedges.parquet and
alerts.jsonl (the alerts of this publish), and summary.json (last; ``as_of`` is the valuation
time). Each folder appears atomically (:func:`gpuskew.io.publish_run`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.io import publish_run, write_parquet
from gpuskew.monitor.state import LiveState, Publication

BOOK_FILES = tuple(f"{n}.parquet" for n in schema.INPUT_TABLES)


def _adherence_summary(pub: Publication, history: Any) -> dict:
    """summary.json's ``adherence`` block, as :func:`gpuskew.session.risk_run` builds it."""
    from gpuskew.session import worst_statuses

    statuses = pub.effective["effective_status"].to_pylist()
    adh = pub.adherence
    return {
        "score": adh.score,
        "score_level": adh.score_level,
        "groups": pub.effective.num_rows,
        "status_counts": {s: statuses.count(s) for s in ("ok", "warn", "breach", "critical")},
        "worst_status_by_underlying": worst_statuses(pub.effective),
        "alerts": len(pub.alerts),
        "hedges_proposed": adh.hedges.num_rows,
        "history": str(history) if history else None,
        "previous_run_found": True,
    }


def write_snapshot_out(state: LiveState, pub: Publication, out_dir: str | Path, *,
                       limits_path: str | Path | None = None, history: Any = None) -> dict[str, Path]:
    """Write ``out_dir/book`` and ``out_dir/run`` for ``pub`` (the publish of the current state)."""
    from gpuskew.core.book import load_book
    from gpuskew.core.engine import RunResult, _positions_table, _summary
    from gpuskew.session import RUN_FILES, RiskRun, _file_hash, output_writers

    out_dir = Path(out_dir)
    book_dir, run_dir = out_dir / "book", out_dir / "run"
    tables = state.book_tables()
    publish_run(book_dir, {f"{n}.parquet": (lambda p, t=tables[n]: write_parquet(t, p)) for n in schema.INPUT_TABLES},
                overwrite=True, stale=BOOK_FILES)
    book = load_book(book_dir)
    flat = book.flat()
    rows = state.pricer.rows
    out, status = state.pricer.host_out(rows)
    positions = _positions_table(book, flat, state.pricer.T[rows], out, status)
    levels = list(state.levels)
    names = ["underlying"] + [",".join(lv) for lv in levels]
    level_tables = [pub.exposures.filter(pc.equal(pub.exposures["level"], n)) for n in names]
    n_expired = int(np.count_nonzero(status == schema.STATUS_EXPIRED))
    timings = {k: round(v, 6) for k, v in pub.timings_s.items()}
    summary = _summary(book, state.backend, state.backend_requested, pub.as_of, levels, level_tables,
                       pub.exposures, n_expired, timings)
    summary["limits"] = {"source": str(limits_path) if limits_path else None, "hash": _file_hash(limits_path)}
    summary["monitor"] = {"publish": pub.number, "positions_pending": pub.pending}
    run = RiskRun(RunResult(positions, pub.exposures, summary, levels))
    if pub.adherence is not None:
        summary["adherence"] = _adherence_summary(pub, history)
        run.adherence, run.effective, run.alerts = pub.adherence, pub.effective, pub.alerts
    summary["outputs"] = {"folder": str(run_dir)}
    publish_run(run_dir, output_writers(run), overwrite=True, stale=RUN_FILES)
    return {"book": book_dir, "run": run_dir}


__all__ = ["write_snapshot_out", "BOOK_FILES"]
