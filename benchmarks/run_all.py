"""Run every benchmark, one after the other, each in its own process; print their markdown.

    python benchmarks/run_all.py            # the full set: 10^4..10^7 greeks, 10^6 end to end,
                                            # warm start, memory at 10^6 and 10^7, adherence, scenarios,
                                            # backtest sweep and greeks path, monitor (about half an hour)
                                            # (the 10^8 sharded run: bench_distributed.py, separately)
    python benchmarks/run_all.py --quick    # a smoke run on small books (about a minute)
    python benchmarks/run_all.py --only greeks,memory --markdown-out /tmp/bench.md --json-out

Exit code: non-zero if a benchmark failed (a cross-check disagreed, a run crashed, or the warm
start recompiled something). Targets met or missed are reported in the text, not the exit code.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import machine_info, machine_markdown  # noqa: E402

FULL = {
    "reference": ["reference_numpy.py", "--size", "1000000"],
    "greeks": ["bench_greeks.py", "--sizes", "1e4,1e5,1e6,1e7", "--repeat", "5"],
    "end_to_end": ["bench_end_to_end.py", "--size", "1e6", "--repeat", "7", "--profile",
                   "--sweep", "1e4,1e5,1e7", "--sweep-repeat", "2"],
    "warm_start": ["bench_warm_start.py", "--repeat", "5"],
    "memory": ["bench_memory.py", "--sizes", "1e6,1e7"],
    "adherence": ["bench_adherence.py", "--size", "1e6"],
    "scenarios": ["bench_scenarios.py", "--size", "1e6", "--repeat", "3"],
    "backtest": ["bench_backtest.py", "--repeat", "2"],
    "monitor": ["bench_monitor.py"],
}
QUICK = {
    "reference": ["reference_numpy.py", "--size", "20000"],
    "greeks": ["bench_greeks.py", "--sizes", "1e4,1e5", "--repeat", "3", "--min-time", "0.2",
               "--ql-sample", "2000", "--ql-engine-sample", "200"],
    "end_to_end": ["bench_end_to_end.py", "--size", "1e5", "--repeat", "1", "--sweep", "1e4",
                   "--sweep-repeat", "1"],
    "warm_start": ["bench_warm_start.py", "--repeat", "2"],
    "memory": ["bench_memory.py", "--sizes", "1e5", "--no-stages"],
    "adherence": ["bench_adherence.py", "--size", "1e5", "--repeat", "3"],
    "scenarios": ["bench_scenarios.py", "--size", "1e5", "--repeat", "1"],
    "backtest": ["bench_backtest.py", "--policies", "50", "--steps", "3600", "--positions", "1000", "--repeat", "1"],
    "monitor": ["bench_monitor.py", "--sizes", "1e4", "--seconds", "5", "--ingest-size", "1e4", "--ingest-fills",
                "2000", "--restart-size", "1e4", "--restart-fills", "1000"],
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(FULL)}")
    p.add_argument("--markdown-out", type=Path, default=None, help="also write all the markdown to this file")
    p.add_argument("--json-out", action="store_true", help="each benchmark also saves its JSON next to it")
    args = p.parse_args(argv)
    plan = QUICK if args.quick else FULL
    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(plan)
    unknown = [n for n in names if n not in plan]
    if unknown:
        p.error(f"unknown benchmark(s): {', '.join(unknown)}")

    parts = [f"# gpuskew benchmarks ({'quick' if args.quick else 'full'})", "",
             machine_markdown(machine_info()), ""]
    failed = []
    for name in names:
        cmd = [sys.executable, str(HERE / plan[name][0]), *plan[name][1:]]
        if args.json_out and name != "reference":
            cmd.append("--json-out")
        print(f"=== {name}: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        took = time.perf_counter() - t0
        print(proc.stdout, flush=True)
        print(f"=== {name}: exit {proc.returncode} after {took:.0f} s", file=sys.stderr, flush=True)
        parts += [proc.stdout.strip(), "", f"_({name}: {took:.0f} s, exit {proc.returncode})_", ""]
        if proc.returncode != 0:
            failed.append(name)
    if args.markdown_out:
        args.markdown_out.write_text("\n".join(parts) + "\n")
        print(f"(markdown written to {args.markdown_out})", file=sys.stderr)
    if failed:
        print(f"FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
