"""Thread safety of the parallel CPU kernels (numba issue 9288).

numba runs ``parallel=True`` kernels on a *threading layer*: ``tbb``, ``omp`` or ``workqueue``.
``workqueue`` is the only one always present (a pip install without the ``tbb`` wheel or an OpenMP
runtime, e.g. on macOS, has nothing else) and it is not thread-safe: when two Python threads of one
process are inside parallel kernels at the same time it aborts the whole process (SIGABRT,
"Numba workqueue threading layer is terminating: Concurrent access has been detected"). That
happens as soon as gpuskew is called from several threads: a ``ThreadPoolExecutor``, a Dask
worker with more than one thread, a web server.

Every CPU kernel launch of gpuskew goes through :func:`launch_guard`: it serialises launches with
one process-wide lock unless the threading layer in use is known to be thread-safe (``tbb`` or
``omp``, as reported by ``numba.threading_layer()`` after the first launch; before it, the lock is
taken). Serialising costs nothing a run needs: each kernel already uses every core through
``prange``. Dask workers started by gpuskew (``--cluster local:N``) are processes with one thread
each, so the lock is never contended there.

``GPUSKEW_NUMBA_THREAD_GUARD=0`` switches the guard off (only to show, in a test, that the abort is
real and that the guard is what prevents it).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: threading layers that may be entered by several threads at once
THREADSAFE_LAYERS = frozenset({"tbb", "omp"})

_LOCK = threading.RLock()
_layer_is_threadsafe: bool | None = None  # None until a parallel kernel has run in this process


def guard_enabled() -> bool:
    """False only when ``GPUSKEW_NUMBA_THREAD_GUARD=0`` (read at every launch)."""
    return os.environ.get("GPUSKEW_NUMBA_THREAD_GUARD", "1") != "0"


def active_layer() -> str | None:
    """The threading layer numba uses in this process, or None before the first parallel launch."""
    import numba

    try:
        return str(numba.threading_layer())
    except ValueError:  # no parallel kernel has run yet
        return None


def needs_lock() -> bool:
    """True unless the active layer is known to be thread-safe (or the guard is off)."""
    if not guard_enabled():
        return False
    return _layer_is_threadsafe is not True


@contextmanager
def launch_guard() -> Iterator[None]:
    """Hold this around a call of a ``parallel=True`` kernel: at most one thread of the process is
    inside a kernel at a time unless the threading layer is thread-safe."""
    global _layer_is_threadsafe
    if not needs_lock():
        yield
        return
    with _LOCK:
        yield
        if _layer_is_threadsafe is None:
            layer = active_layer()
            if layer is not None:
                _layer_is_threadsafe = layer in THREADSAFE_LAYERS
