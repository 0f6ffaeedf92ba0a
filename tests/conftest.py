"""Shared test settings.

* tests/cudasim/ needs numba's CUDA simulator switched on before numba is imported, so it is left
  out of a normal run and run in its own process by tests/test_cudasim.py.
* Property tests are reproducible: the same examples on every run and machine (derandomized, no
  example database) and no deadlines on shared, noisy machines; each test chooses max_examples.
"""

import os

from hypothesis import settings

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    collect_ignore_glob = ["cudasim/*"]

settings.register_profile("gpuskew", derandomize=True, database=None, deadline=None)
settings.load_profile("gpuskew")
