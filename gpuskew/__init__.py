"""gpuskew: inventory skew adherence for crypto market makers and options desks.

``import gpuskew`` is cheap: numba, the kernels and any GPU package load on first use.

    book = gpuskew.load_book("book/")                  # folder, or dict of Arrow-compatible tables
    result = gpuskew.compute(book, as_of="2026-11-20T08:00:00Z", backend="auto", group_by=("desk",))
    result.positions, result.exposures                 # pyarrow Tables
    result.summary                                     # dict
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_book", "compute"]

if TYPE_CHECKING:  # pragma: no cover
    from gpuskew.core.book import load_book
    from gpuskew.core.engine import compute


def __getattr__(name: str) -> Any:
    if name == "load_book":
        from gpuskew.core.book import load_book

        return load_book
    if name == "compute":
        from gpuskew.core.engine import compute

        return compute
    raise AttributeError(f"module 'gpuskew' has no attribute {name!r}")
