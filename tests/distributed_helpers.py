"""Helpers for the distributed tests that worker processes import (tests/ is on their sys.path: Dask's
and multiprocessing's spawned workers start with the parent's sys.path) or that run in a subprocess."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA_FILES = ("exposures.parquet", "adherence.parquet", "hedges.parquet", "alerts.jsonl")


class KillOnce(Executor):
    """Runs tasks on ``inner``; the task of shard ``index`` kills its own worker process (SIGKILL)
    after computing its result, the first time (``marker`` records the killed pid)."""

    def __init__(self, inner: Executor, marker: Path, index: int):
        self.inner, self.marker, self.index = inner, str(marker), index

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future:
        return self.inner.submit(kill_once, self.marker, self.index, fn, *args)


def kill_once(marker: str, index: int, fn: Any, *args: Any) -> Any:
    result = fn(*args)
    if getattr(args[0], "index", None) == index and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    return result


def block_squares(shared: np.ndarray, start: int, stop: int) -> np.ndarray:
    """A sweep block: a function of the shared array and a block of items."""
    return shared[start:stop] ** 2 + np.sqrt(shared[start:stop])


def decoded(table: pa.Table) -> dict[str, Any]:
    """Columns as plain values (dictionaries decoded, float columns as their bits)."""
    out = {}
    for name in table.column_names:
        col = table[name]
        if pa.types.is_dictionary(col.type):
            col = col.cast(col.type.value_type)
        if pa.types.is_floating(col.type):
            out[name] = (np.asarray(col.is_null()).tolist(),
                         col.fill_null(0.0).to_numpy().astype(np.float64).view(np.int64).tolist())
        else:
            out[name] = col.to_pylist()
    return out


def same_positions(a: str | Path, b: str | Path) -> bool:
    """positions.parquet (a file or a dataset folder) of two runs: the same rows, bit for bit."""
    ta, tb = pq.read_table(a), pq.read_table(b)
    return ta.column_names == tb.column_names and decoded(ta) == decoded(tb)


def data_file_hashes(out: str | Path) -> dict[str, str]:
    return {n: hashlib.sha256((Path(out) / n).read_bytes()).hexdigest() for n in DATA_FILES
            if (Path(out) / n).exists()}


def chunk_check(work: str) -> dict:
    """Run in a subprocess with a small GPUSKEW_REDUCE_TILE / GPUSKEW_REDUCE_CHUNK: books of a few
    thousand positions span many chunks, so shards cut inside files (CHUNK-aligned ranges). Compares
    a process pool's sharded runs with one process, and a bad row split across shards."""
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    import gpuskew
    from gpuskew.core import reduction
    from gpuskew.distributed import open_cluster, open_sharded_book, sharded_step
    from gpuskew.errors import InvalidInput
    from gpuskew.policy.limits import example_limits_path, load_limits
    from gpuskew.session import Session
    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_book, write_demo_dataset

    root = Path(work)
    books = {"file": root / "book_file", "dataset": root / "book_dataset"}
    write_demo_book(books["file"], n_positions=3000, seed=5)
    write_demo_dataset(books["dataset"], n_positions=3000, seed=5, chunk=1000)
    limits = load_limits(example_limits_path())
    levels = ["desk", "desk,book"]
    report: dict[str, Any] = {"chunk": reduction.CHUNK}
    with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool, open_cluster(pool) as cluster:
        for name, folder in books.items():
            one = Session(gpuskew.load_book(folder), limits, "cpu", None, levels, limits_hash="h")
            one_step = one.step(DEMO_AS_OF)
            one_step.write(root / f"one_{name}")
            sharded = open_sharded_book(folder)
            session = Session(sharded.book, limits, "cpu", None, levels, limits_hash="h")
            step = sharded_step(session, sharded, cluster, DEMO_AS_OF, positions_dir=root / f"parts_{name}",
                                shard_positions=2 * reduction.CHUNK)
            step.write(root / f"sharded_{name}")
            from gpuskew.distributed import plan_shards

            shards = plan_shards(sharded.dataset, 2 * reduction.CHUNK, reduction.CHUNK)
            report[name] = {
                "same_data": data_file_hashes(root / f"one_{name}") == data_file_hashes(root / f"sharded_{name}"),
                "same_positions": same_positions(root / f"one_{name}" / "positions.parquet",
                                                 root / f"sharded_{name}" / "positions.parquet"),
                "same_run_id": step.run_id == one_step.run_id,
                "shards": len(shards),
                "split_files": sum(not f.whole_file for s in shards for f in s.fragments),
                "processes": len({r.worker for r in step.info.results}),
            }
        # a bad row in each of two shards of one file: the whole file's message, as one process
        bad = root / "book_bad"
        write_demo_book(bad, n_positions=3000, seed=5)
        table = pq.read_table(bad / "positions.parquet")
        q = table["quantity"].to_numpy().copy()
        q[[1500, 2900]] = np.nan
        table = table.set_column(table.schema.get_field_index("quantity"), "quantity", pa.array(q))
        pq.write_table(table, bad / "positions.parquet", row_group_size=256)
        messages = []
        try:
            gpuskew.load_book(bad)
        except InvalidInput as exc:
            messages.append(str(exc))
        sharded = open_sharded_book(bad)
        session = Session(sharded.book, limits, "cpu", None, levels)
        try:
            sharded_step(session, sharded, cluster, DEMO_AS_OF, shard_positions=2 * reduction.CHUNK)
        except InvalidInput as exc:
            messages.append(str(exc))
        report["bad"] = messages
    return report


if __name__ == "__main__":
    print(json.dumps(chunk_check(sys.argv[1])))


def extra_rows(book: Any, priced: Any, backend: Any, params: float) -> Any:
    """An ``extra`` of sharded_step: per-position rows that are not measures (a stand-in for scenario
    P&L): value x params, delta squared."""
    from gpuskew.kernels.instruments import M_DELTA, M_VALUE_USD

    out = backend.to_host(priced.out)
    return np.ascontiguousarray(np.stack([out[M_VALUE_USD] * params, out[M_DELTA] ** 2]))
