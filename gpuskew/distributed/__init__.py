"""Beyond one machine: sharded runs and sweeps on a Dask cluster, with the same bits as one process.

* :mod:`~gpuskew.distributed.executor`: ``--cluster SPEC`` (``local:N``, ``tcp://HOST:PORT``, none)
  or any ``concurrent.futures.Executor`` -> :class:`Cluster`;
* :mod:`~gpuskew.distributed.plan`: shards of the positions that reproduce the one-process
  reduction (whole chunks, whole underlyings);
* :mod:`~gpuskew.distributed.shard`: the task a worker runs per shard (read, validate, price,
  level-0 tile sums, its part of positions.parquet);
* :mod:`~gpuskew.distributed.reduce`: the coordinator's reduction, in the fixed tree order;
* :mod:`~gpuskew.distributed.job`: a Session step over the shards (:func:`sharded_step`), then
  adherence through the Session's own code;
* :mod:`~gpuskew.distributed.sweep`: shared inputs scattered once, items sent out in blocks
  (``run_sweep_sharded``: the backtest's policy sweep in blocks of policies).

Dask is optional (``pip install 'gpuskew[distributed]'``) and imported only by
:func:`open_cluster` for a Dask spec. Docs: docs/distributed.md.
"""

from gpuskew.distributed.executor import Cluster, ClusterUnavailable, open_cluster, parse_spec
from gpuskew.distributed.job import ShardedBook, ShardedStepResult, open_sharded_book, sharded_step
from gpuskew.distributed.plan import Shard, plan_shards
from gpuskew.distributed.sweep import block_bounds, block_size, map_blocks

__all__ = ["Cluster", "ClusterUnavailable", "open_cluster", "parse_spec", "ShardedBook", "ShardedStepResult",
           "open_sharded_book", "sharded_step", "Shard", "plan_shards", "block_bounds", "block_size", "map_blocks",
           "run_sharded", "sharded_step_into"]


def run_sharded(book_dir, cluster=None, out=None, *, as_of=None, backend="auto", group_by=(), limits=None,
                state=None, overwrite=False, positions="parquet", shard_positions=None,
                strict=False):  # type: ignore[no-untyped-def]
    """``gpuskew run BOOK_DIR --cluster SPEC`` in Python: one sharded step of ``book_dir`` on
    ``cluster`` (a spec, an Executor or a distributed.Client), written to ``out`` when given (the
    shards write their parts of the positions straight into the run's output stage; ``positions``:
    parquet, arrow or none). ``limits``: a limits file path (or None). Returns the
    :class:`ShardedStepResult`."""
    from gpuskew.io import OutputStage
    from gpuskew.session import Session

    sharded = open_sharded_book(book_dir)
    parsed, limits_hash = None, None
    if limits is not None:
        from gpuskew.io.dataset import file_sha256
        from gpuskew.policy.limits import load_limits

        parsed = load_limits(limits)
        limits_hash = file_sha256(limits)
    session = Session(sharded.book, parsed, backend, state, group_by, limits_hash=limits_hash,
                      limits_source=None if limits is None else str(limits), strict=strict)
    if out is None:
        with open_cluster(cluster) as handle:
            return sharded_step(session, sharded, handle, as_of, shard_positions=shard_positions)
    with OutputStage(out, overwrite) as stage:
        step = sharded_step_into(session, sharded, cluster, as_of, stage, positions, shard_positions=shard_positions)
        step.write(out, overwrite=overwrite, positions=positions, stage=stage)
    return step


def sharded_step_into(session, sharded, cluster, as_of, stage, positions="parquet", *, shard_positions=None,
                      progress=None):  # type: ignore[no-untyped-def]
    """:func:`sharded_step` of ``session`` on ``cluster`` (a spec, an Executor or a
    distributed.Client; open for the step only) whose shards write their parts of the positions
    (``positions``: parquet, arrow or none) straight into ``stage`` (the run's
    :class:`~gpuskew.io.OutputStage`, on a filesystem the workers share); the caller then writes the
    step with ``stage`` (``gpuskew run --cluster`` and :func:`run_sharded`)."""
    from gpuskew.session import position_file

    folder = None if positions == "none" else stage.tmp / position_file(positions)
    with open_cluster(cluster) as handle:
        return sharded_step(session, sharded, handle, as_of, positions_dir=folder,
                            positions_format="parquet" if folder is None else positions,
                            shard_positions=shard_positions, progress=progress)
