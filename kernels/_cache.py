"""Where numba caches compiled CPU kernels.

Numba's on-disk cache is keyed on the source file of the jitted function only, so an edit of a
scalar function in another module would not invalidate it. The cache therefore lives in a folder
named after a hash of every source file in this package (and numba's version): any change of the
math gets a fresh cache, and a scheduler's second run recompiles nothing.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def kernel_source_hash() -> str:
    """sha256 (first 16 hex digits) of this package's .py sources, numba's version and the
    reduction tile: numba freezes module globals such as TILE into the compiled code, and its own
    cache check does not look at them."""
    import numba

    from .segsum import TILE

    digest = hashlib.sha256(f"{numba.__version__} tile={TILE}".encode())
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_root() -> Path:
    """Base cache folder: $GPUSKEW_CACHE_DIR, else $NUMBA_CACHE_DIR, else $XDG_CACHE_HOME/gpuskew
    (default ~/.cache/gpuskew)."""
    for var in ("GPUSKEW_CACHE_DIR", "NUMBA_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "gpuskew"


def configure_numba_cache() -> Path:
    """Point numba's cache at ``cache_root()/numba-<hash>`` and return that folder."""
    import numba

    folder = cache_root() / f"numba-{kernel_source_hash()}"
    setattr(numba.config, "CACHE_DIR", str(folder))  # numba reads it when it caches a kernel
    return folder
