"""Sharded runs on a local Dask cluster: time against workers, peak memory per worker, bits against
one process, Dask's per-task overhead, and a projected curve for 8-64 workers (on paper).

    python benchmarks/bench_distributed.py [--size 1e7] [--check-size 1e7] [--workers 1,2]
                                           [--book DIR] [--keep] [--json-out]

1. writes the partitioned demo book (``gpuskew demo DIR --demo-size N --partitioned``: generated a
   few million positions at a time; reused when ``--book`` already holds one of that size);
2. runs ``gpuskew run DIR --cluster local:W --backend cpu --group-by desk,book --limits <example>``
   as a subprocess for each W in ``--workers`` (wall time, the coordinator's peak RSS via
   ``os.wait4``, each worker's peak RSS as its shard tasks report it (``ru_maxrss``) and as a psutil
   poll of the worker processes sees it);
3. at sizes up to ``--check-size``, the same command without ``--cluster`` (one process reading the
   whole dataset): its exposures, adherence, hedges and alerts files must be byte-identical to the
   sharded run's (the target: bitwise the same bits);
4. Dask's per-task overhead on a LocalCluster(2): no-op tasks in bulk (throughput) and one at a time
   (round trip), and the cluster's start time;
5. a projection for 8-64 workers from the measured per-worker shard rate, the coordinator's fixed
   time, the reduction's time per position and the per-task overhead: on paper, stated as such
   (it assumes each worker has its own cores and disk bandwidth, which one machine does not).

Targets (issue 12): 10^8 positions on local:2 with peak memory per worker <= 4 GiB; exposures equal
to a one-process run on the same data (checked at 10^7 here). The 10^8 run takes long on 2 shared
cores: pass ``--size 1e8 --check-size 1e7`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (add_common_args, gpuskew_cmd, machine_info, machine_markdown, md_table,  # noqa: E402
                    parse_sizes, save_json, subprocess_env)

GIB = 1024**3
DATA_FILES = ("exposures.parquet", "adherence.parquet", "hedges.parquet", "alerts.jsonl")


def _noop(x: int) -> int:
    return x


class WorkerPoller:
    """Peak RSS of each descendant process of ``pid`` (the Dask workers of a local cluster)."""

    def __init__(self, pid: int, interval: float = 0.2):
        import psutil

        self.root = psutil.Process(pid)
        self.interval = interval
        self.peaks: dict[int, int] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            try:
                self.root_peak = max(getattr(self, "root_peak", 0), self.root.memory_info().rss)
                for child in self.root.children(recursive=True):
                    try:
                        rss = child.memory_info().rss
                    except psutil.Error:
                        continue
                    self.peaks[child.pid] = max(self.peaks.get(child.pid, 0), rss)
            except psutil.Error:
                pass
            self._stop.wait(self.interval)

    def stop(self) -> dict[int, int]:
        self._stop.set()
        self.thread.join()
        return self.peaks


def run_gpuskew(book: Path, out: Path, cluster: str | None, extra_env: dict[str, str]) -> dict:
    """One ``gpuskew run`` subprocess: wall time, coordinator peak RSS, workers' peaks, summary."""
    from gpuskew.policy.limits import example_limits_path

    if out.exists():
        shutil.rmtree(out)
    cmd = [*gpuskew_cmd(), "run", str(book), "--out", str(out), "--as-of", "2026-11-20T08:00:00Z", "--backend",
           "cpu", "--group-by", "desk,book", "--limits", str(example_limits_path()), "--json"]
    if cluster:
        cmd += ["--cluster", cluster]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=subprocess_env(extra_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    poller = WorkerPoller(proc.pid)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - t0
    peaks = poller.stop()
    if proc.returncode != 0:
        raise RuntimeError(f"gpuskew run failed ({proc.returncode}):\n{stderr[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {"wall_s": wall, "load_avg_1m_at_start": load, "summary": summary, "json": json.loads(stdout.strip().splitlines()[-1]),
            "poll_peaks": sorted(peaks.values(), reverse=True),
            "coordinator_poll_peak": getattr(poller, "root_peak", 0)}


def same_files(a: Path, b: Path) -> dict[str, bool]:
    return {n: (a / n).read_bytes() == (b / n).read_bytes() for n in DATA_FILES if (a / n).exists()}


def task_overhead(n_bulk: int, n_serial: int) -> dict:
    """Dask's per-task overhead on a LocalCluster(2) of processes: bulk throughput and round trip."""
    import logging

    import distributed

    t0 = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        start = time.perf_counter() - t0
        client.gather(client.map(_noop, range(50), pure=False))  # warm-up
        t = time.perf_counter()
        client.gather(client.map(_noop, range(n_bulk), pure=False))
        bulk = (time.perf_counter() - t) / n_bulk
        t = time.perf_counter()
        for i in range(n_serial):
            client.submit(_noop, i, pure=False).result()
        serial = (time.perf_counter() - t) / n_serial
    return {"cluster_start_s": start, "bulk_s_per_task": bulk, "round_trip_s": serial, "bulk_tasks": n_bulk,
            "serial_tasks": n_serial}


def projection(n: int, rate_per_worker: float, fixed_s: float, overhead_s: float, chunk: int,
               workers: list[int]) -> list[list]:
    """Projected wall time of a sharded run of ``n`` positions on W workers (on paper): shards of the
    default size (``gpuskew.distributed.plan.default_shard_positions``: n / 4W rounded up to whole
    chunks, 1 to 4 chunks), T = fixed + ceil(S / W) x shard / rate + S x overhead (the
    coordinator's reduction, a few hundred thousand tiles at 10^8, is in fixed)."""
    from gpuskew.distributed.plan import default_shard_positions

    rows = []
    for w in workers:
        shard = default_shard_positions(chunk, n, w)
        s = math.ceil(n / shard)
        t = fixed_s + math.ceil(s / w) * shard / rate_per_worker + s * overhead_s
        rows.append([w, s, shard, round(t, 1), round(n / t / 1e6, 2)])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default="1e7", help="positions of the sharded runs (default 1e7)")
    parser.add_argument("--check-size", default="1e7",
                        help="largest size at which one process also runs, for the bitwise check (default 1e7)")
    parser.add_argument("--workers", default="1,2", help="local cluster sizes to time (default 1,2)")
    parser.add_argument("--book", default=None,
                        help="folder for the partitioned book (kept; reused if its size matches)")
    parser.add_argument("--keep", action="store_true", help="keep the run folders")
    parser.add_argument("--bulk-tasks", type=int, default=2000)
    parser.add_argument("--project", default="8,16,32,64", help="worker counts of the projection")
    add_common_args(parser, default_repeat=1)
    args = parser.parse_args()
    n = parse_sizes(args.size)[0]
    check = parse_sizes(args.check_size)[0]
    workers = parse_sizes(args.workers)
    work = Path(tempfile.mkdtemp(prefix="gpuskew-bench-dist-"))
    book = Path(args.book) if args.book else work / "book"
    info = machine_info(probe_gpu=False)
    print("# Sharded runs on a local Dask cluster\n")
    print(machine_markdown(info) + "\n")
    results: dict = {"machine": info, "size": n, "workers": {}, "check": None}
    try:
        import pyarrow.parquet as pq

        have = sum(pq.read_metadata(p).num_rows for p in (book / "positions").rglob("*.parquet")) \
            if (book / "positions").is_dir() else -1
        if have != n:
            print(f"writing the partitioned demo book of {n:,} positions to {book} ...", file=sys.stderr)
            t = time.perf_counter()
            subprocess.run([*gpuskew_cmd(), "demo", str(book), "--demo-size", str(n), "--partitioned"], check=True,
                           env=subprocess_env(), capture_output=True)
            results["write_book_s"] = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in book.rglob("*") if p.is_file()) / 1e6
        files = len(list((book / "positions").rglob("*.parquet")))
        print(f"book: {n:,} positions in {files} Parquet files, {size_mb:,.0f} MB"
              + (f" (written in {results['write_book_s']:.0f} s)" if "write_book_s" in results else "") + "\n")
        rows = []
        for w in workers:
            print(f"local:{w} ...", file=sys.stderr)
            r = run_gpuskew(book, work / f"run_{w}", f"local:{w}", {})
            d = r["summary"]["distributed"]
            timings = r["summary"]["timings_s"]
            results["workers"][w] = {k: v for k, v in r.items() if k != "json"}
            worker_peaks = r["poll_peaks"][:w]
            rows.append([f"local:{w}", d["shards"], d["largest_shard"], round(r["wall_s"], 1),
                         round(timings["shards"], 1), round(n / r["wall_s"] / 1e6, 2),
                         round(d["task_seconds"]["mean"], 2),
                         round(d["peak_worker_rss_bytes"] / GIB, 2),
                         round(max(worker_peaks, default=0) / GIB, 2),
                         round(r["coordinator_poll_peak"] / GIB, 2), round(r["load_avg_1m_at_start"], 1)])
        print("## Time against workers\n")
        print(md_table(["cluster", "shards", "largest shard", "wall s (end to end)", "shard tasks s",
                        "M positions/s", "mean task s", "peak RSS per worker GiB (ru_maxrss)",
                        "peak RSS per worker GiB (poll)", "coordinator peak RSS GiB (poll)",
                        "load avg at start"], rows))
        print("\nEnd to end: process start, the cluster's start, reading and validating the reference tables, "
              "the shard tasks (read, validate, price, tile sums, each its part of positions.parquet), the "
              "reduction, adherence and publishing.\n")
        if n <= check:
            print("one process ...", file=sys.stderr)
            one = run_gpuskew(book, work / "run_one", None, {})
            w_max = max(workers)
            same = same_files(work / "run_one", work / f"run_{w_max}")
            results["check"] = {"one_process_wall_s": one["wall_s"], "same": same}
            print("## Bits against one process\n")
            print(f"One process (`gpuskew run` reading the whole dataset, no `--cluster`): {one['wall_s']:.1f} s "
                  f"wall (load average {one['load_avg_1m_at_start']:.1f} at its start). Files byte-identical to local:{w_max}: "
                  + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in same.items()) + "\n")
            if not all(same.values()):
                raise SystemExit("the sharded run's files differ from one process")
        else:
            print(f"(one-process check skipped: {n:,} > --check-size {check:,})\n")
        print("Dask per-task overhead ...", file=sys.stderr)
        ov = task_overhead(args.bulk_tasks, 100)
        results["overhead"] = ov
        print("## Dask's per-task overhead (LocalCluster, 2 processes x 1 thread, 127.0.0.1)\n")
        print(md_table(["measure", "value"], [
            ["cluster start (s)", round(ov["cluster_start_s"], 2)],
            [f"no-op tasks in bulk ({ov['bulk_tasks']}), ms per task", round(ov["bulk_s_per_task"] * 1e3, 3)],
            [f"one task at a time ({ov['serial_tasks']}), ms round trip", round(ov["round_trip_s"] * 1e3, 3)],
        ]))
        # projection from the largest measured run
        w_max = max(workers)
        r = results["workers"][w_max]
        d = r["summary"]["distributed"]
        timings = r["summary"]["timings_s"]
        rate = d["largest_shard"] / max(d["task_seconds"]["max"], 1e-9)
        fixed = r["wall_s"] - timings["shards"]
        overhead = max(ov["bulk_s_per_task"], ov["round_trip_s"])
        proj = projection(10**8, rate, fixed, overhead, d["chunk"], parse_sizes(args.project))
        results["projection"] = {"rate_per_worker": rate, "fixed_s": fixed, "overhead_s": overhead,
                                 "rows": proj}
        print("\n## Projected curve for 10^8 positions, 8-64 workers (on paper, not measured)\n")
        print(f"From the local:{w_max} run: {rate / 1e6:.2f} M positions/s per worker per shard task "
              f"(largest shard / slowest task), {fixed:.1f} s fixed (process and cluster start, reference "
              f"tables, the reduction, adherence, publishing), {overhead * 1e3:.2f} ms per task (the larger of "
              "the two overheads above). "
              "Assumes every worker has its own cores and disk bandwidth and the positions on a shared "
              "filesystem that keeps up, which one machine does not give; shards of the default size "
              "(n / 4W in whole chunks of 2^20, 1 to 4 chunks).\n")
        print(md_table(["workers", "shards", "positions per shard", "projected wall s", "M positions/s"], proj))
        save_json(args, __file__, results)
    finally:
        if not args.keep:
            shutil.rmtree(work / "run_one", ignore_errors=True)
            for w in workers:
                shutil.rmtree(work / f"run_{w}", ignore_errors=True)
            if not args.book:
                shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
