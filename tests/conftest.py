"""Shared test settings.

tests/cudasim/ needs numba's CUDA simulator switched on before numba is imported, so it is left
out of a normal run and run in its own process by tests/test_cudasim.py.
"""

import os

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") in ("", "0"):
    collect_ignore_glob = ["cudasim/*"]
