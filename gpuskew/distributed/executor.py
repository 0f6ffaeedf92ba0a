"""The executor seam: where the shard and sweep tasks of a job run.

``--cluster SPEC`` (CLI) or ``cluster=`` (Python) takes:

* nothing, ``""`` or ``"none"``: one process, as without this package;
* ``"local:N"``: a Dask ``LocalCluster`` of N worker processes with one thread each, on 127.0.0.1,
  started for the job and closed after it (workers are processes with one thread each: numba's
  parallel kernels are never entered by two threads of one process, see
  :mod:`gpuskew.kernels.threads`; the machine's cores are shared out between the workers' kernel
  threads, :func:`worker_threads_env`);
* ``"tcp://HOST:PORT"`` (or ``tls://``): an existing Dask scheduler (``dask scheduler`` +
  ``dask worker``, dask-jobqueue, dask-kubernetes, dask-cuda's ``LocalCUDACluster``); the
  workers need gpuskew installed and, for files, the same paths (a shared filesystem);
* in Python, any :class:`concurrent.futures.Executor` (Dask's ``Client.get_executor()``, a
  ``ProcessPoolExecutor``, a ``ThreadPoolExecutor``) or a ``distributed.Client``.

Dask is an optional dependency (``pip install 'gpuskew[distributed]'``), imported only here and
only when a Dask spec is given. The workers of a spec are warmed up first (:func:`warm_worker`:
imports and numba's cached kernels loaded on every worker at once). Dask tasks are submitted with
``pure=False`` (they write files) and ``retries`` (:data:`TASK_RETRIES`); a worker that dies
mid-task has its task rescheduled by the scheduler itself.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from gpuskew.errors import GpuskewError, InvalidConfig

#: how often Dask re-runs a task that raised (a worker that died is handled by the scheduler)
TASK_RETRIES = 2
#: seconds to wait for an existing scheduler
CONNECT_TIMEOUT_S = 30

INSTALL_ADVICE = "install the distributed extra: pip install 'gpuskew[distributed]'"

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx)://\S+$")


class ClusterUnavailable(GpuskewError):
    """The cluster cannot be started or reached (exit code 1: a runtime condition, not bad input)."""


@dataclass
class Cluster:
    """An open executor: ``executor`` is None for one process; ``client`` is the Dask client when
    there is one (used to scatter shared inputs once); ``workers`` its worker count when known."""

    executor: Executor | None
    description: str
    client: Any = None
    workers: int | None = None

    def share(self, obj: Any) -> Any:
        """``obj`` sent once to every worker (a Dask future to pass to tasks), or ``obj`` itself
        without a Dask client (a process pool pickles it with each task; threads share it)."""
        if self.client is None:
            return obj
        return self.client.scatter(obj, broadcast=True, hash=False)

    def map(self, fn: Callable[..., Any], calls: Sequence[tuple[Any, ...]]) -> list[Any]:
        """``[fn(*args) for args in calls]`` on the executor (here without one), results in call
        order; on the first failure the tasks not yet started are cancelled and it is re-raised."""
        if self.executor is None:
            return [fn(*args) for args in calls]
        futures = [self.executor.submit(fn, *args) for args in calls]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise

    def worker_count(self) -> int:
        """Workers now connected (Dask), the pool size where known, else 1."""
        if self.client is not None:
            return max(1, len(self.client.scheduler_info().get("workers", {})))
        return self.workers or getattr(self.executor, "_max_workers", None) or 1


def parse_spec(spec: str | None) -> tuple[str, int | str | None]:
    """``("none", None)``, ``("local", N)`` or ``("address", "tcp://...")``; InvalidConfig otherwise."""
    text = (spec or "").strip()
    if text.lower() in ("", "none"):
        return "none", None
    m = _LOCAL.match(text)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise InvalidConfig("--cluster", "cluster", spec, "local:N needs N >= 1 worker processes")
        return "local", n
    if _ADDRESS.match(text):
        return "address", text
    raise InvalidConfig("--cluster", "cluster", spec, "expected local:N (N worker processes here), "
                                                      "tcp://HOST:PORT (a Dask scheduler) or none")


def _import_dask() -> Any:
    try:
        import distributed
    except ImportError as exc:
        raise ClusterUnavailable(f"--cluster needs Dask ({exc}); {INSTALL_ADVICE}") from exc
    return distributed


def worker_threads_env(workers: int) -> dict[str, str]:
    """Environment of the workers of a local cluster: the machine's cores shared out between them
    (numba's kernel threads, Arrow's and OpenMP's pools), so that N processes do not each start a
    thread per core. Variables already set by the user are kept."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    share = str(max(1, cores // max(1, workers)))
    return {name: os.environ.get(name, share) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}


def warm_worker() -> str:
    """Run a tiny book through the engine on a worker: imports and numba's cached kernels loaded
    (about a second in a fresh process), so that its first shard task does not pay for them."""
    import gpuskew
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book

    gpuskew.compute(gpuskew.load_book(make_demo_book(64, seed=1)), as_of=DEMO_AS_OF, backend="cpu",
                    group_by=["desk"], positions_table=False)
    return "ok"


def _warm(client: Any) -> None:
    client.run(warm_worker)


@contextmanager
def open_cluster(spec: str | Executor | Any | None) -> Iterator[Cluster]:
    """The executor for ``spec`` (module docstring), closed on leaving the block when this function
    started it (a LocalCluster, a client to a scheduler); an executor or client given by the caller
    is left open."""
    if isinstance(spec, Executor):
        yield Cluster(spec, f"executor {type(spec).__name__}", client=getattr(spec, "_client", None))
        return
    if spec is not None and not isinstance(spec, str):
        if hasattr(spec, "get_executor") and hasattr(spec, "scatter"):  # a distributed.Client
            yield Cluster(spec.get_executor(retries=TASK_RETRIES, pure=False), f"dask client {spec.scheduler.address}",
                          client=spec)
            return
        raise TypeError(f"cluster must be a spec string, a concurrent.futures.Executor or a distributed.Client, "
                        f"got {type(spec).__name__}")
    kind, value = parse_spec(spec)
    if kind == "none":
        yield Cluster(None, "one process", workers=1)
        return
    distributed = _import_dask()
    if kind == "local":
        import logging

        n = int(value)  # type: ignore[arg-type]
        cluster = distributed.LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                           dashboard_address=":0", silence_logs=logging.ERROR,
                                           env=worker_threads_env(n))
        try:
            with distributed.Client(cluster) as client:
                _warm(client)
                yield Cluster(client.get_executor(retries=TASK_RETRIES, pure=False),
                              f"local:{n} (dask LocalCluster, {n} processes x 1 thread, 127.0.0.1)",
                              client=client, workers=n)
        finally:
            cluster.close()
        return
    try:
        client = distributed.Client(str(value), timeout=CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError) as exc:
        raise ClusterUnavailable(f"cannot reach the Dask scheduler at {value}: {exc}") from exc
    try:
        _warm(client)
        yield Cluster(client.get_executor(retries=TASK_RETRIES, pure=False), f"dask scheduler {value}", client=client)
    finally:
        client.close()
