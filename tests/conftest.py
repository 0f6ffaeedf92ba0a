"""Shared test settings.

* tests/cudasim/ needs numba's CUDA simulator switched on before numba is imported, so it is left
  out of a normal run and run in its own process by tests/test_cudasim.py.
* Property tests are reproducible: the same examples on every run and machine (derandomized, no
  example database) and no deadlines on shared, noisy machines; each test chooses max_examples.
"""

import os

import pytest
from hypothesis import settings

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    collect_ignore_glob = ["cudasim/*"]

settings.register_profile("gpuskew", derandomize=True, database=None, deadline=None)
settings.load_profile("gpuskew")


@pytest.fixture(scope="session")
def demo_adherence():
    """The engine's exposures of a 2,000-position demo book, checked against the shipped example
    limits: ``(result, adherence)``."""
    import gpuskew
    from gpuskew.adherence import compute_adherence
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.policy.limits import load_example_limits

    book = gpuskew.load_book(make_demo_book(2_000))
    result = gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", group_by=["desk", "desk,book"],
                             positions_table=False)
    return result, compute_adherence(result.exposures, book.underlyings, book.instruments, book.quotes,
                                     load_example_limits(), DEMO_AS_OF)
