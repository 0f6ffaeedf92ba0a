"""Peak resident memory of ``gpuskew run --demo --demo-size N --out <tmp> --backend cpu``.

For each size in ``--sizes`` (default 10^6 and 10^7) the command runs as a subprocess; its peak
RSS is read two ways: ``ru_maxrss`` of that child (``os.wait4``, exact, kernel-side) and a psutil
poll every ``--interval`` s (a lower bound; also gives the time of the peak). Target: < 6 GiB at
10^7 positions.

With ``--stages`` (default on) the same steps run in a fresh child process with a polling thread,
and the peak RSS of each step is reported (make_demo_book, load_book, each compute stage, building
and writing the outputs) along with the sizes of the big objects: where the memory goes.

    python benchmarks/bench_memory.py [--sizes 1e6,1e7] [--no-stages] [--json-out]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (add_common_args, gpuskew_cmd, machine_info, machine_markdown,  # noqa: E402
                    md_table, parse_sizes, save_json)

GIB = 1024**3
MIB = 1024**2


class Poller:
    """Max RSS of a process (and its children) sampled in a thread."""

    def __init__(self, pid: int, interval: float):
        import psutil

        self.proc = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.peak_at = 0.0
        self.t0 = time.perf_counter()
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _rss(self) -> int:
        import psutil

        total = 0
        try:
            procs = [self.proc, *self.proc.children(recursive=True)]
        except psutil.Error:
            return 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            rss = self._rss()
            if rss > self.peak:
                self.peak = rss
                self.peak_at = time.perf_counter() - self.t0
            self._stop.wait(self.interval)

    def reset(self) -> int:
        """Return the peak since the last reset and start again from the current RSS."""
        peak = max(self.peak, self._rss())
        self.peak = 0
        return peak

    def start(self) -> "Poller":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def measure_run(n: int, interval: float) -> dict:
    """Peak RSS of one `gpuskew run --demo` subprocess."""
    work = Path(tempfile.mkdtemp(prefix="gpuskew-mem-"))
    try:
        cmd = [*gpuskew_cmd(), "run", "--demo", "--demo-size", str(n), "--out", str(work / "out"),
               "--backend", "cpu", "--overwrite"]
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        poll = Poller(proc.pid, interval).start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        poll.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if proc.returncode != 0:
            raise RuntimeError(f"gpuskew run failed ({proc.returncode}): {err[-2000:]}")
        out_mb = sum(p.stat().st_size for p in (work / "out").iterdir()) / 1e6
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return {"positions": n, "ru_maxrss_bytes": usage.ru_maxrss * 1024, "polled_peak_bytes": poll.peak,
            "polled_peak_at_s": poll.peak_at, "wall_s": wall, "outputs_mb": out_mb}


def child_stages(n: int, interval: float) -> None:
    """In this fresh process: the steps of `gpuskew run --demo` with the peak RSS of each."""
    poll = Poller(os.getpid(), interval).start()
    steps: list[tuple[str, float, float, float]] = []  # name, seconds, peak GiB, rss after GiB
    t = [time.perf_counter()]

    def step(name: str) -> None:
        now = time.perf_counter()
        peak = poll.reset()
        steps.append((name, now - t[0], peak / GIB, poll.proc.memory_info().rss / GIB))
        t[0] = time.perf_counter()

    import numpy  # noqa: F401
    import pyarrow  # noqa: F401

    from gpuskew.core.book import load_book
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.core.engine import compute
    from gpuskew.io import publish_run
    from gpuskew.session import StepResult
    from gpuskew.kernels import cpu  # noqa: F401
    step("imports")
    tables = make_demo_book(n_positions=n, seed=7, as_of=DEMO_AS_OF)
    sizes = {"input tables (Arrow)": sum(tb.nbytes for tb in tables.values())}
    step("make_demo_book")
    book = load_book(tables)
    del tables
    sizes["validated tables (Arrow)"] = sum(tb.nbytes for tb in book.tables.values())
    step("load_book (validate)")
    result = compute(book, as_of=DEMO_AS_OF.isoformat(), backend="cpu",
                     progress=lambda stage: step(f"compute: {stage}"))
    flat = book.flat()
    sizes["Book.flat() arrays"] = sum(getattr(flat, f).nbytes for f in flat.__dataclass_fields__
                                      if hasattr(getattr(flat, f), "nbytes"))
    sizes["positions table (Arrow)"] = result.positions.nbytes
    sizes["12 x n measures (float64)"] = 12 * n * 8
    out = Path(tempfile.mkdtemp(prefix="gpuskew-mem-child-"))
    try:
        publish_run(out / "o", StepResult(result, run_id="bench").output_files(), overwrite=True)
        step("write outputs")
    finally:
        shutil.rmtree(out, ignore_errors=True)
    poll.stop()
    print(json.dumps({"steps": steps, "sizes_bytes": sizes}))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="1e6,1e7")
    p.add_argument("--interval", type=float, default=0.01, help="psutil polling interval (s)")
    p.add_argument("--no-stages", action="store_true", help="skip the per-step breakdown")
    p.add_argument("--stages-size", type=float, default=None,
                   help="book size of the per-step breakdown (default: the largest of --sizes)")
    p.add_argument("--child-stages", type=int, default=None, help=argparse.SUPPRESS)
    add_common_args(p, default_repeat=1)
    args = p.parse_args(argv)
    if args.child_stages is not None:
        child_stages(args.child_stages, args.interval)
        return 0

    info = machine_info(probe_gpu=False)
    sizes = parse_sizes(args.sizes)
    rows = []
    for n in sizes:
        runs = []
        for _ in range(max(1, args.repeat)):
            print(f"... gpuskew run --demo --demo-size {n:,}", file=sys.stderr, flush=True)
            runs.append(measure_run(n, args.interval))
        best = min(runs, key=lambda r: r["ru_maxrss_bytes"])
        best["all_ru_maxrss_gib"] = [r["ru_maxrss_bytes"] / GIB for r in runs]
        rows.append(best)
    stages = None
    if not args.no_stages and sizes:
        m = int(args.stages_size or max(sizes))
        print(f"... per-step breakdown at {m:,}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, __file__, "--child-stages", str(m), "--interval",
                               str(args.interval)], capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        stages = json.loads(proc.stdout.strip().splitlines()[-1])
        stages["positions"] = m

    lines = ["## Peak memory of `gpuskew run --demo --backend cpu`"
             + (f" (lowest of {args.repeat} runs)" if args.repeat > 1 else ""), "",
             machine_markdown(info), "",
             md_table(["positions", "peak RSS (ru_maxrss)", "peak RSS (psutil poll)", "peak at", "wall time",
                       "outputs"],
                      [[r["positions"], f"{r['ru_maxrss_bytes'] / GIB:.2f} GiB",
                        f"{r['polled_peak_bytes'] / GIB:.2f} GiB", f"{r['polled_peak_at_s']:.1f} s",
                        f"{r['wall_s']:.1f} s", f"{r['outputs_mb']:.0f} MB"] for r in rows])]
    big = [r for r in rows if r["positions"] == 10_000_000]
    if big:
        gib = big[0]["ru_maxrss_bytes"] / GIB
        lines += ["", f"Target < 6 GiB at 10^7 positions: {gib:.2f} GiB ({'met' if gib < 6 else 'MISSED'})."]
    if stages:
        lines += ["", f"Per step, in one fresh process at {stages['positions']:,} positions (peak RSS during the "
                  "step, RSS after it):", "",
                  md_table(["step", "seconds", "peak RSS", "RSS after"],
                           [[s, f"{sec:.2f}", f"{pk:.2f} GiB", f"{after:.2f} GiB"]
                            for s, sec, pk, after in stages["steps"]]),
                  "", "Sizes of the big objects: " + "; ".join(f"{k} {v / GIB:.2f} GiB"
                                                               for k, v in stages["sizes_bytes"].items()) + "."]
    print("\n".join(lines))
    save_json(args, __file__, {"machine": info, "rows": rows, "stages": stages})
    return 0


if __name__ == "__main__":
    sys.exit(main())
