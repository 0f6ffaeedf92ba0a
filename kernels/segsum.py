"""The fixed reduction tree shared by both backends.

A group's values are summed in tiles of ``TILE`` consecutive elements (in the group's stable
order). Each tile is reduced by the same pairwise tree, zero-padded to ``TILE``:

    for s in TILE/2, TILE/4, ..., 1:   x[t] += x[t + s]   for t < s

which is exactly what a CUDA block of ``TILE/2`` threads does: each thread adds its two elements
t and t + TILE/2 as it loads them (the first step of the tree), then the block halves the
shared-memory array between ``syncthreads()`` calls. The per-tile partial sums of a group are
then reduced again by the same tree, level after level, until one value per group is left. Both
backends follow this order, so their sums are bitwise identical; no float atomics are used.

``TILE`` is 256 unless the environment variable ``GPUSKEW_REDUCE_TILE`` (a power of two from 2 to
2048) says otherwise when the kernels are imported. The tests set a small tile so that numba's CUDA
simulator (one Python thread per CUDA thread) stays fast; both backends always use the same value.
"""

import os


def _tile_from_env() -> int:
    text = os.environ.get("GPUSKEW_REDUCE_TILE", "256")
    try:
        tile = int(text)
    except ValueError:
        tile = -1
    if tile < 2 or tile > 2048 or tile & (tile - 1):
        raise ValueError(f"GPUSKEW_REDUCE_TILE must be a power of two from 2 to 2048, got {text!r}")
    return tile


#: elements per tile (a power of two); the CUDA reduction block has TILE // 2 threads
TILE = _tile_from_env()
#: threads per block of the CUDA reduction kernel
HALF_TILE = TILE // 2
