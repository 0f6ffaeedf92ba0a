"""gpuskew: inventory skew adherence for crypto market makers and options desks.

``import gpuskew`` is cheap: numba, pyarrow, the kernels and any GPU package load on first use.

    book = gpuskew.load_book("book/")                  # folder, or dict of Arrow-compatible tables
    result = gpuskew.compute(book, as_of="2026-11-20T08:00:00Z", backend="auto", group_by=("desk",))
    result.positions, result.exposures                 # pyarrow Tables
    result.summary                                     # dict

    session = gpuskew.Session(book, gpuskew.load_limits("limits.toml"), state=gpuskew.MemoryAlertState())
    step = session.step(as_of, market=gpuskew.MarketUpdate(underlyings=...), fills=fills_table)
    step.exposures, step.adherence, step.hedges, step.alerts
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> module that defines it (imported on first use)
_LAZY = {
    "load_book": "gpuskew.core.book",
    "Book": "gpuskew.core.book",
    "compute": "gpuskew.core.engine",
    "RunResult": "gpuskew.core.engine",
    "load_limits": "gpuskew.policy.limits",
    "Session": "gpuskew.session",
    "StepResult": "gpuskew.session",
    "MarketUpdate": "gpuskew.session",
    "MemoryAlertState": "gpuskew.session",
    "NoAlertState": "gpuskew.session",
    "ArrayAlertState": "gpuskew.session",
    "HistoryAlertState": "gpuskew.history",
    "run_scenarios": "gpuskew.scenarios.job",
    "load_scenario_config": "gpuskew.scenarios.params",
    "explain_runs": "gpuskew.scenarios.explain",
    "run_backtest": "gpuskew.backtest.run",
    "load_policies": "gpuskew.policy.grid",
    "Monitor": "gpuskew.monitor",
    "InvalidInput": "gpuskew.errors",
    "InvalidConfig": "gpuskew.errors",
    "GpuskewError": "gpuskew.errors",
}

__all__ = ["__version__", *_LAZY]

if TYPE_CHECKING:  # pragma: no cover
    from gpuskew.core.book import Book, load_book
    from gpuskew.core.engine import RunResult, compute
    from gpuskew.errors import GpuskewError, InvalidConfig, InvalidInput
    from gpuskew.history import HistoryAlertState
    from gpuskew.policy.limits import load_limits
    from gpuskew.session import ArrayAlertState, MarketUpdate, MemoryAlertState, NoAlertState, Session, StepResult


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gpuskew' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
