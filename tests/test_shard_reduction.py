"""The shard plan and the coordinator's reduction without a cluster: for random books cut into
random files and shards, the shards' level-0 tiles reduced by the coordinator give the one-process
group sums bit for bit (Hypothesis), and the plan's cuts keep every (group, chunk) in one shard."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gpuskew.core import reduction
from gpuskew.core.backend import CpuBackend
from gpuskew.core.reduction import plan_segmented_sum
from gpuskew.distributed.plan import allowed_cuts, plan_shards, underlying_cuts
from gpuskew.distributed.reduce import reduce_level
from gpuskew.distributed.shard import level_partial
from gpuskew.io.dataset import DatasetFile, PositionsDataset
from gpuskew.kernels.segsum import TILE

CHUNK = 2 * TILE


def _book(draw_sizes: list[int], n_tags: int, seed: int, labelled: bool):
    """Files of the given sizes, each of one underlying (consecutive files may share one), positions
    with a random tag: global codes ordered as group_positions orders (underlying, tag)."""
    rng = np.random.default_rng(seed)
    unders = np.sort(rng.integers(0, 3, len(draw_sizes)))
    files = tuple(DatasetFile(f"/x/{k}", f"underlying=U{u}/part-{k:03d}.parquet", size, (size,),
                              (("underlying", f"U{u}"),) if labelled else ())
                  for k, (u, size) in enumerate(zip(unders, draw_sizes)))
    dataset = PositionsDataset("/x", files, True)
    und = np.repeat(unders, draw_sizes)
    tag = rng.integers(0, n_tags, und.size)
    key = und * n_tags + tag
    present = np.unique(key)
    codes = np.searchsorted(present, key).astype(np.int32)
    values = rng.normal(size=(3, und.size)) * 10.0 ** rng.integers(-8, 8, (3, und.size))
    return dataset, und, tag, codes, present.size, values


@settings(max_examples=30, suppress_health_check=[HealthCheck.function_scoped_fixture])  # CHUNK: same patch
@given(sizes=st.lists(st.integers(0, 3 * CHUNK), min_size=1, max_size=7), n_tags=st.integers(1, 5),
       target=st.integers(1, 4 * CHUNK), labelled=st.booleans(), seed=st.integers(0, 2**16))
def test_shards_reduced_by_the_coordinator_equal_one_process_bitwise(monkeypatch, sizes, n_tags, target, labelled,
                                                                     seed):
    monkeypatch.setattr(reduction, "CHUNK", CHUNK)
    dataset, und, tag, codes, n_groups, values = _book(sizes, n_tags, seed, labelled)
    backend = CpuBackend("test")
    one = backend.segmented_sum(values, plan_segmented_sum(codes, n_groups)) if n_groups else np.zeros((3, 0))
    partials = []
    shards = plan_shards(dataset, target, CHUNK)
    assert [s.start for s in shards[1:]] == [s.stop for s in shards[:-1]]  # contiguous, in order
    assert sum(s.rows for s in shards) == und.size and all(s.rows <= max(target, CHUNK) for s in shards)
    for shard in shards:
        pos = shard.positions()
        local_key = und[pos] * n_tags + tag[pos]
        present, local = np.unique(local_key, return_inverse=True)
        keys = {"underlying": [f"U{k // n_tags}" for k in present], "tag": [f"t{k % n_tags}" for k in present]}
        partials.append(level_partial(local.astype(np.int32), present.size, keys, pos,
                                      np.ascontiguousarray(values[:, pos]), backend, np.zeros(pos.size, bool), CHUNK))
    reduced = reduce_level(("tag",), partials, ["U0", "U1", "U2"])
    assert reduced.grouping.n_groups == n_groups
    if n_groups == 0:  # an empty book: no shard, no group
        assert not shards and reduced.sums.shape[1] == 0
        return
    np.testing.assert_array_equal(reduced.sums.view(np.int64), one.view(np.int64))
    np.testing.assert_array_equal(reduced.counts, np.bincount(codes, minlength=n_groups))


def test_a_shard_cut_that_splits_a_chunk_of_one_underlying_changes_the_bits(monkeypatch):
    """The guard of the plan: cutting inside a chunk where one group continues (not allowed) gives
    other tiles, hence other bits, so the equality above is not an accident of the data."""
    monkeypatch.setattr(reduction, "CHUNK", CHUNK)
    dataset, und, tag, codes, n_groups, values = _book([3 * CHUNK], 1, 3, True)
    backend = CpuBackend("test")
    one = backend.segmented_sum(values, plan_segmented_sum(codes, n_groups))
    partials = []
    for a, b in ((0, CHUNK // 2 + 1), (CHUNK // 2 + 1, und.size)):  # a cut inside chunk 0
        pos = np.arange(a, b)
        keys = {"underlying": [f"U{und[0]}"], "tag": ["t0"]}
        partials.append(level_partial(np.zeros(pos.size, np.int32), 1, keys, pos,
                                      np.ascontiguousarray(values[:, pos]), backend, np.zeros(pos.size, bool), CHUNK))
    bad = reduce_level(("tag",), partials, ["U0", "U1", "U2"]).sums
    assert not np.array_equal(bad.view(np.int64), one.view(np.int64))


def test_plan_cuts_at_underlying_boundaries_and_chunk_multiples_only():
    files = tuple(DatasetFile(f"/x/{k}", f"underlying={u}/p{k}.parquet", n, (n,), (("underlying", u),))
                  for k, (u, n) in enumerate([("A", 700), ("A", 300), ("B", 50), ("C", 2000)]))
    ds = PositionsDataset("/x", files, True)
    assert underlying_cuts(ds).tolist() == [1000, 1050, 3050]
    assert allowed_cuts(ds, 512).tolist() == [512, 1000, 1024, 1050, 1536, 2048, 2560, 3050]
    shards = plan_shards(ds, 1100, 512)
    assert [(s.start, s.stop) for s in shards] == [(0, 1050), (1050, 2048), (2048, 3050)]
    assert [[(f.file_index, f.start, f.stop, f.offset) for f in s.fragments] for s in shards][:2] == [
        [(0, 0, 700, 0), (1, 0, 300, 700), (2, 0, 50, 1000)], [(3, 0, 998, 1050)]]
    # without partition folders: chunk multiples only; a target below one chunk still cuts at chunks
    plain = PositionsDataset("/x", tuple(DatasetFile(f.path, f.relative, f.rows, f.row_groups) for f in files), True)
    assert [(s.start, s.stop) for s in plan_shards(plain, 1, 512)][:3] == [(0, 512), (512, 1024), (1024, 1536)]
    assert plan_shards(PositionsDataset("/x", (DatasetFile("/x/e", "e.parquet", 0),), True), 10, 512) == []
    with pytest.raises(ValueError):
        plan_shards(ds, 0, 512)


def test_the_shards_hash_the_files_they_read_and_give_the_one_process_run_id(tmp_path):
    """Each file's sha256 comes from the shard holding its first row (not from the coordinator
    reading every file again); the content hash, hence the run id, is the one-process one."""
    import gpuskew
    from gpuskew.distributed import open_cluster, open_sharded_book, sharded_step
    from gpuskew.io.dataset import file_sha256
    from gpuskew.session import Session
    from gpuskew.synthetic.demo import DEMO_AS_OF, write_demo_dataset

    write_demo_dataset(tmp_path / "book", n_positions=3000, seed=5, chunk=1000)
    one = Session(gpuskew.load_book(tmp_path / "book"), None, "cpu", None, ["desk"]).step(DEMO_AS_OF)
    sharded = open_sharded_book(tmp_path / "book")
    with open_cluster(None) as cluster:
        step = sharded_step(Session(sharded.book, None, "cpu", None, ["desk"]), sharded, cluster, DEMO_AS_OF,
                            shard_positions=1)
    files = sharded.dataset.files
    assert len(files) > len({f.underlying for f in files})  # some shard holds several files
    hashed = [(i, h) for r in step.info.results for i, h in r.file_hashes.items()]
    assert sorted(hashed) == [(i, file_sha256(f.path)) for i, f in enumerate(files)]
    assert step.run_id == one.run_id
