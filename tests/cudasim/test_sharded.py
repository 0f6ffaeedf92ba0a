"""A sharded run whose shards price on the CUDA backend (simulated: a GPU worker's path) gives the
bits of one CPU process: the shards' level-0 tiles come from the CUDA tile kernel, the coordinator
runs the upper levels on the CPU."""

from __future__ import annotations

import numpy as np

import gpuskew
from gpuskew.distributed import open_cluster, open_sharded_book, sharded_step
from gpuskew.session import Session
from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset


def test_shards_on_the_simulated_cuda_backend_equal_one_cpu_process(tmp_path):
    write_demo_dataset(tmp_path / "b", n_positions=400, seed=6)
    sharded = open_sharded_book(tmp_path / "b")
    session = Session(sharded.book, None, "cuda", None, ["desk,book"])
    with open_cluster(None) as cluster:
        step = sharded_step(session, sharded, cluster, DEMO_AS_OF, positions_dir=tmp_path / "parts",
                            shard_positions=1)
    assert step.summary["backend"]["used"] == "cuda" and step.summary["backend"]["device"] == "cuda-simulator"
    assert step.summary["distributed"]["shards"] == 5
    one = gpuskew.compute(gpuskew.load_book(tmp_path / "b"), as_of=DEMO_AS_OF, backend="cpu", group_by=["desk,book"])
    assert step.exposures.drop(["delta"]).equals(one.exposures.drop(["delta"]))
    np.testing.assert_array_equal(step.exposures["delta"].to_numpy().view(np.int64),
                                  one.exposures["delta"].to_numpy().view(np.int64))
    step.write(tmp_path / "run")
    import pyarrow.parquet as pq

    parts = pq.read_table(tmp_path / "run" / "positions.parquet")
    for name in ("delta", "gamma", "vega_usd", "value_usd"):
        np.testing.assert_array_equal(parts[name].to_numpy().view(np.int64),
                                      one.positions[name].to_numpy().view(np.int64))
