"""Device-side numerical core of gpuskew: the only place with per-position math.

Scalar functions in :mod:`gpuskew.kernels.black76` and :mod:`gpuskew.kernels.instruments` are plain
Python decorated with :func:`numba.extending.register_jitable`, so one definition compiles for the
CPU (:mod:`gpuskew.kernels.cpu`, ``numba.njit``) and for CUDA (:mod:`gpuskew.kernels.cuda`,
``numba.cuda.jit``), and runs as plain Python under numba's CUDA simulator.
"""
