"""The history: an append-only store of every run's tables, partitioned by date."""

from gpuskew.history.store import *  # noqa: F401,F403
from gpuskew.history.store import __all__  # noqa: F401
