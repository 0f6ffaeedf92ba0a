"""The history as a Session's alert state (batch runs: one process per run).

The previous step is the latest committed run strictly before this one's as_of; a run already
committed with the same as_of and run id (a scheduler's retry) has raised its alerts already. The
history records a step when the run is appended (:func:`append_step`), after its output folder is
published: a run that fails leaves no trace in the history.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import pyarrow as pa

from gpuskew.history.store import append_run, has_run, previous_adherence


class HistoryAlertState:
    """:class:`gpuskew.session.AlertState` over a history folder."""

    def __init__(self, history_dir: str | Path):
        self.history_dir = Path(history_dir)

    def previous(self, as_of: _dt.datetime, run_id: str) -> pa.Table | None:
        return previous_adherence(self.history_dir, as_of, exclude_run=run_id)

    def already_raised(self, as_of: _dt.datetime, run_id: str) -> bool:
        return has_run(self.history_dir, as_of, run_id)

    def record(self, as_of: _dt.datetime, run_id: str, effective: pa.Table) -> None:
        """Nothing yet: :func:`append_step` records the run once its outputs are published."""


def append_step(history_dir: str | Path, step) -> list[Path]:
    """Append a :class:`gpuskew.session.StepResult` to the history (all or nothing); returns the
    files written (empty when the history holds the run already)."""
    return append_run(history_dir, step.as_of, step.history_tables(), step.run_id)


__all__ = ["HistoryAlertState", "append_step"]
