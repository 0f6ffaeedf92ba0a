"""Keep the command line's start-up free of two imports it never uses.

Two third-party libraries import a large package only to *probe* for it:

* pyarrow imports pandas (0.15-0.3 s) the first time it converts any Python or NumPy value
  (``pa.array``, ``pa.scalar``, a compute call with a Python scalar), to learn whether the value
  might be a pandas object;
* numba's CPU target imports ``scipy.linalg`` (0.1-0.25 s) when it loads its first compiled
  function, even from the on-disk cache, to learn whether ``np.dot`` and friends can call BLAS.

The ``gpuskew`` process passes no pandas object to pyarrow and its kernels call no BLAS, so
both probes are pure start-up cost: together about a quarter of a warm ``gpuskew run``. Inside
:func:`skip_probe_imports` those two imports fail with ``ModuleNotFoundError`` and each library
takes its "not installed" branch. Only the console script uses it (:func:`gpuskew.cli.entry_point`);
the Python API (``gpuskew.load_book``, ``gpuskew.compute``) never does, so notebooks and
schedulers that pass pandas DataFrames keep pyarrow's pandas support.

Once the block ends, both packages import normally again; pyarrow retries pandas whenever a
conversion truly needs it (``to_pandas``), and numba keeps no BLAS for the rest of the process
(which compiles nothing that uses it). ``GPUSKEW_SKIP_PROBE_IMPORTS=0`` turns the block off (for
an environment where some other package would need one of the two during a command).
"""

from __future__ import annotations

import importlib.abc
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

#: packages imported only as probes during a command's start-up (see the module docstring)
PROBED_MODULES: tuple[str, ...] = ("pandas", "scipy.linalg")


class _RefuseProbes(importlib.abc.MetaPathFinder):
    """A meta-path finder that refuses :data:`PROBED_MODULES` (and nothing else)."""

    def find_spec(self, fullname, path=None, target=None):  # noqa: ANN001 - importlib protocol
        if fullname in PROBED_MODULES:
            raise ModuleNotFoundError(f"{fullname} is not imported by the gpuskew command line",
                                      name=fullname)
        return None


@contextmanager
def skip_probe_imports() -> Iterator[None]:
    """Within the block, importing pandas or ``scipy.linalg`` fails unless already imported (or
    unless the environment sets ``GPUSKEW_SKIP_PROBE_IMPORTS=0``)."""
    if (os.environ.get("GPUSKEW_SKIP_PROBE_IMPORTS", "1") == "0"
            or all(name in sys.modules for name in PROBED_MODULES)):
        yield
        return
    finder = _RefuseProbes()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
