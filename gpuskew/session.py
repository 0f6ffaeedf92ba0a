"""One risk run end to end: greeks and exposures, then (with limits) adherence, hedges, quote skew
and alerts, then the output files and the history. The CLI's ``run`` is a thin shell over this.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from gpuskew.core.book import Book
from gpuskew.core.engine import RunResult, compute, parse_as_of

#: output files of a run, in the order they are published (summary.json last: the commit marker)
RUN_FILES = ("positions.parquet", "exposures.parquet", "adherence.parquet", "hedges.parquet",
             "alerts.jsonl", "summary.json")


@dataclass
class RiskRun:
    """Everything one run produced."""

    result: RunResult
    adherence: Any | None = None  #: gpuskew.adherence.AdherenceResult, with limits
    effective: pa.Table | None = None  #: adherence table + effective_status (after hysteresis)
    alerts: list[dict] = field(default_factory=list)

    @property
    def summary(self) -> dict:
        return self.result.summary


def _file_hash(path: str | Path | None) -> str | None:
    if not path:
        return None
    return "sha256:" + hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_id(summary: dict, limits_hash: str | None) -> str:
    """Deterministic id of a run: a hash of as_of, the input hashes and the limits (so appending
    the same run to a history twice doubles nothing)."""
    material = json.dumps({"as_of": summary["as_of"], "limits": limits_hash,
                           "inputs": {k: [v["source"], v["hash"]] for k, v in summary["inputs"].items()}},
                          sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def worst_statuses(effective: pa.Table) -> dict[str, str]:
    """Worst effective status per underlying over all its monitored groups."""
    from gpuskew.adherence.alerts import severity

    worst: dict[str, str] = {}
    for und, status in zip(effective["underlying"].to_pylist(), effective["effective_status"].to_pylist()):
        if status is None:
            continue
        if und not in worst or severity(status) > severity(worst[und]):
            worst[und] = status
    return dict(sorted(worst.items()))


def risk_run(book: Book, *, as_of: str | datetime | None, backend: str = "auto",
             group_by: Sequence[str] = (), limits: Any | None = None, limits_path: str | Path | None = None,
             history: str | Path | None = None, progress: Callable[[str], None] | None = None) -> RiskRun:
    """Price ``book``, sum per group and, with ``limits``, check adherence against the previous run
    in ``history`` (for alert transitions and hysteresis)."""
    when = parse_as_of(as_of)
    result = compute(book, as_of=when, backend=backend, group_by=list(group_by), progress=progress)
    run = RiskRun(result)
    summary = result.summary
    summary["limits"] = {"source": str(limits_path) if limits_path else None, "hash": _file_hash(limits_path)}
    if limits is None:
        return run
    from gpuskew.adherence import compute_adherence
    from gpuskew.adherence.alerts import evaluate_alerts
    from gpuskew.history import previous_adherence

    t0 = time.perf_counter()
    adh = compute_adherence(result.exposures, book.underlyings, book.instruments, book.quotes, limits, when)
    previous = previous_adherence(history, when) if history else None
    alerts, effective = evaluate_alerts(
        adh.table, previous, thresholds=lambda row: limits.policy_for(row).thresholds,
        hysteresis=lambda row: limits.policy_for(row).hysteresis, as_of=when, hedges=adh.hedges)
    summary["timings_s"]["adherence"] = round(time.perf_counter() - t0, 6)
    if progress:
        progress("adherence")
    statuses = effective["effective_status"].to_pylist()
    summary["adherence"] = {
        "score": adh.score,
        "score_level": adh.score_level,
        "groups": effective.num_rows,
        "status_counts": {s: statuses.count(s) for s in ("ok", "warn", "breach", "critical")},
        "worst_status_by_underlying": worst_statuses(effective),
        "alerts": len(alerts),
        "hedges_proposed": adh.hedges.num_rows,
        "history": str(history) if history else None,
        "previous_run_found": previous is not None,
    }
    run.adherence, run.effective, run.alerts = adh, effective, alerts
    return run


def output_writers(run: RiskRun) -> dict[str, Callable[[Path], None]]:
    """The files of a run folder and how to write each (for gpuskew.io.publish_run)."""
    from gpuskew.io import write_json, write_parquet

    res = run.result
    files: dict[str, Callable[[Path], None]] = {
        "positions.parquet": lambda p: write_parquet(res.positions, p),
        "exposures.parquet": lambda p: write_parquet(res.exposures, p),
    }
    if run.adherence is not None:
        from gpuskew.adherence.alerts import write_alerts_jsonl

        files["adherence.parquet"] = lambda p: write_parquet(run.effective, p)
        files["hedges.parquet"] = lambda p: write_parquet(run.adherence.hedges, p)
        files["alerts.jsonl"] = lambda p: write_alerts_jsonl(run.alerts, p)
    run.summary.setdefault("outputs", {})["files"] = [n for n in RUN_FILES if n in files or n == "summary.json"]
    files["summary.json"] = lambda p: write_json(run.summary, p)
    return files


def append_to_history(history: str | Path, run: RiskRun) -> list[Path]:
    """Append this run's exposures, hedges, alerts and adherence to the history datasets, and the
    explain inputs of its positions (gpuskew.history.explain_inputs)."""
    from gpuskew.adherence.alerts import alerts_table
    from gpuskew.history import append_run

    when = parse_as_of(run.summary["as_of"])
    tables: dict[str, pa.Table] = {"exposures": run.result.exposures}
    from gpuskew.history.explain_inputs import EXPLAIN_INPUTS, explain_inputs_table

    cells = explain_inputs_table(run.result.positions, run.result.levels)  # for the report's daily explain
    if cells is not None:
        tables[EXPLAIN_INPUTS] = cells
    if run.adherence is not None:
        tables["hedges"] = run.adherence.hedges
        if run.alerts:
            tables["alerts"] = alerts_table(run.alerts)
        tables["adherence"] = run.effective
    rid = run_id(run.summary, run.summary.get("limits", {}).get("hash"))
    run.summary["run_id"] = rid
    return append_run(history, when, tables, rid)
