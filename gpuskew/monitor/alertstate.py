"""The monitor's alert state: the effective statuses of the last publish, in memory and in
``STATE/alerts/effective.parquet``, so that a restarted monitor raises no alert twice.

It is a :class:`gpuskew.session.AlertState` (the Session's adherence step reads the previous
statuses from it and records the new ones). The file is rewritten (atomically) only when a
group's effective status changed, i.e. when an alert fired or groups appeared or left: before the
alert is sent anywhere.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

from gpuskew.core.groups import group_id
from gpuskew.schema import ADHERENCE


def _statuses(table: pa.Table | None) -> dict | None:
    if table is None:
        return None
    tags = ADHERENCE.tag_columns(table)
    col = "effective_status" if "effective_status" in table.column_names else "status"
    return {group_id(r, tags): r[col] for r in table.select(["level", "underlying", *tags, col]).to_pylist()}


class PersistentAlertState:
    """Previous effective statuses, kept in memory and, when they change, in ``path`` (Parquet)."""

    def __init__(self, path: str | Path | None = None, initial: pa.Table | None = None):
        self.path = None if path is None else Path(path)
        self._last: pa.Table | None = None
        self._last_statuses: dict | None = None  #: _statuses(last), kept (not rebuilt at each publish)
        self.last = initial
        self.before: pa.Table | None = None  #: the statuses the last recorded step started from
        self.writes = 0
        if self.path is not None and self.path.is_file():
            import pyarrow.parquet as pq

            self.last = pq.read_table(self.path)

    @property
    def last(self) -> pa.Table | None:
        """The effective statuses of the last publish (or loaded)."""
        return self._last

    @last.setter
    def last(self, table: pa.Table | None) -> None:
        self._last, self._last_statuses = table, _statuses(table)

    @property
    def loaded(self) -> bool:
        return self.last is not None

    def previous(self, as_of: datetime, run_id: str) -> pa.Table | None:
        return self.last

    def already_raised(self, as_of: datetime, run_id: str) -> bool:
        return False

    def record(self, as_of: datetime, run_id: str, effective: pa.Table) -> None:
        statuses = _statuses(effective)
        changed = statuses != self._last_statuses
        self.before, self._last, self._last_statuses = self._last, effective, statuses
        if changed and self.path is not None:
            from gpuskew.io import write_parquet

            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_parquet(effective, self.path)
            self.writes += 1


class FixedAlertState:
    """An alert state that always answers ``previous`` with one table (re-evaluating a publish)."""

    def __init__(self, previous: pa.Table | None):
        self._previous = previous

    def previous(self, as_of: datetime, run_id: str) -> pa.Table | None:
        return self._previous

    def already_raised(self, as_of: datetime, run_id: str) -> bool:
        return False

    def record(self, as_of: datetime, run_id: str, effective: pa.Table) -> None:
        pass


__all__ = ["PersistentAlertState", "FixedAlertState"]
