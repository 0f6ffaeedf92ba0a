"""The history: an append-only store of every run's tables, partitioned by date, committed whole."""

from gpuskew.history.state import HistoryAlertState, append_step  # noqa: F401
from gpuskew.history.store import *  # noqa: F401,F403
from gpuskew.history.store import __all__ as _store_all

__all__ = ["HistoryAlertState", "append_step", *_store_all]
