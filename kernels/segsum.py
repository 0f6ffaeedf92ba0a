"""The fixed reduction tree shared by both backends.

A group's values are summed in tiles of ``TILE`` consecutive elements (in the group's stable
order). Each tile is reduced by the same pairwise tree, zero-padded to ``TILE``:

    for s in TILE/2, TILE/4, ..., 1:   x[t] += x[t + s]   for t < s

which is exactly what a CUDA block of ``TILE`` threads does in shared memory between
``syncthreads()`` calls. The per-tile partial sums of a group are then reduced again by the same
tree, level after level, until one value per group is left. Both backends follow this order, so
their sums are bitwise identical; no float atomics are used anywhere.
"""

#: elements per tile = threads per CUDA block of the reduction kernel (a power of two)
TILE = 256
