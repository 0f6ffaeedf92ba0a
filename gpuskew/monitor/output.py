"""``--snapshot-out DIR``: the current state as ``DIR/book/`` (a valid book folder) and ``DIR/run/``
(the files ``gpuskew run DIR/book --as-of AS_OF`` writes, holding the monitor's own numbers).

``DIR/book`` is written first (instruments, positions, underlyings, quotes as Parquet: the priced
positions in ledger order), then read back with :func:`gpuskew.core.book.load_book`, which
validates it. ``DIR/run`` is a :class:`gpuskew.session.StepResult` written by its own ``write``
(the run's file set, summary.json last): positions.parquet and exposures.parquet hold the monitor's
per-position measures and group sums; adherence, hedges and alerts come from the Session's
adherence step on those sums, evaluated against the statuses the monitor's last publish started
from, so they are the monitor's effective statuses and alerts. summary.json carries ``as_of`` (the
valuation time) and a ``monitor`` block. Each folder appears atomically.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from gpuskew import schema
from gpuskew.io import publish_run
from gpuskew.monitor.state import LiveState, Publication

BOOK_FILES = tuple(f"{n}.parquet" for n in schema.INPUT_TABLES)


def write_snapshot_out(state: LiveState, pub: Publication, out_dir: str | Path, *, previous: Any = None,
                       extra: dict | None = None) -> dict[str, Path]:
    """Write ``out_dir/book`` and ``out_dir/run`` for ``pub``, the publish of the current state.
    ``previous``: the effective statuses ``pub`` was evaluated against (the alert state's ``before``)."""
    from gpuskew.core.book import load_book
    from gpuskew.core.engine import RunResult, _positions_table, _summary
    from gpuskew.monitor.alertstate import FixedAlertState
    from gpuskew.session import Session, StepResult, run_id

    out_dir = Path(out_dir)
    book_dir, run_dir = out_dir / "book", out_dir / "run"
    tables = state.book_tables()
    from gpuskew.monitor.snapshot import _parquet_writer

    publish_run(book_dir, {f"{n}.parquet": _parquet_writer(tables[n]) for n in schema.INPUT_TABLES},
                overwrite=True, stale=BOOK_FILES)
    book = load_book(book_dir)
    live = state.session
    session = Session(book, state.limits, state.backend, FixedAlertState(previous), list(state.levels),
                      limits_hash=live.limits_hash, limits_source=live.limits_source)
    rows = state.pricer.rows
    out, status = state.pricer.host_out(rows)
    positions = _positions_table(book, book.flat(), state.pricer.T[rows], out, status)
    levels = list(session.levels)
    names = ["underlying"] + [",".join(lv) for lv in levels]
    level_tables = [pub.exposures.filter(pc.equal(pub.exposures["level"], n)) for n in names]
    n_expired = int(np.count_nonzero(status == schema.STATUS_EXPIRED))
    summary = _summary(book, state.backend, state.backend_requested, pub.as_of, levels, level_tables,
                       pub.exposures, n_expired, {k: round(v, 6) for k, v in pub.timings_s.items()})
    summary["warnings"].extend(session.plausibility_warnings(pub.as_of))
    summary["limits"] = {"source": live.limits_source, "hash": live.limits_hash}
    rid = run_id(book, pub.as_of, levels, live.limits_hash)
    summary["run_id"] = rid
    summary["monitor"] = {"publish": pub.number, "positions_pending": pub.pending, **(extra or {})}
    step = StepResult(RunResult(positions, pub.exposures, summary, levels), rid)
    if state.limits is not None:
        session.adhere(step, pub.as_of, None)
    step.write(run_dir, overwrite=True)
    return {"book": book_dir, "run": run_dir}


__all__ = ["write_snapshot_out", "BOOK_FILES"]
