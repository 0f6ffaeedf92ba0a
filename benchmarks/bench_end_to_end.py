"""End to end: ``gpuskew run`` on a Parquet book vs the same job by hand (pyarrow + NumPy/SciPy).

1. Writes a demo book of ``--size`` positions (default 10^6) as Parquet with
   ``gpuskew.synthetic.demo.write_demo_book`` into a temporary folder.
2. (a) ``gpuskew run BOOK --out OUT --backend cpu --group-by desk,book --as-of <demo as_of>
   --overwrite`` as a subprocess (the console script, as a user runs it), and
   (b) ``python benchmarks/by_hand.py BOOK --out OUT2 ...``: one untimed run of each first (warm
   numba cache, warm page cache), then ``--repeat`` pairs of runs, (a) and (b) alternating so that
   both see the same moments of a shared machine's noise. Reports the best time of each, their
   ratio (target, issue 11: gpuskew >= 2.5x faster) and the median of the per-pair ratios, and checks that
   both wrote the same exposures (max relative difference of every measure of every group).
3. In process: ``gpuskew.load_book`` (read, hash, validate), ``gpuskew.compute`` stages
   (``summary['timings_s']``) and the output writes, on a fresh book each time (best per stage of
   ``--repeat`` runs); and the by-hand script's own stage timings.
4. With ``--profile``: the top functions of a cProfile'd in-process ``gpuskew run`` (by own time).
5. With ``--sweep 1e4,1e5,1e7``: the comparison of 2. on books of those sizes too
   (``--sweep-repeat`` pairs each), in one table with the main size.

    python benchmarks/bench_end_to_end.py [--size 1000000] [--repeat 3] [--profile] [--sweep 1e4,1e7]
        [--json-out]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (HERE, add_common_args, best_of_cmd, gpuskew_cmd, machine_info,  # noqa: E402
                    machine_markdown, md_table, parse_sizes, run_cmd, save_json)
import reference_numpy as ref  # noqa: E402

GROUP_BY = "desk,book"


def compare_exposures(a_path: Path, b_path: Path) -> tuple[int, float]:
    """Join two exposures.parquet files on their keys; return (rows, max relative difference)."""
    import pyarrow.parquet as pq

    a = pq.read_table(a_path).to_pylist()
    b = pq.read_table(b_path).to_pylist()
    key = lambda r: (r["level"], r["underlying"], r.get("desk"), r.get("book"))  # noqa: E731
    bd = {key(r): r for r in b}
    if len(a) != len(b) or set(bd) != {key(r) for r in a}:
        raise AssertionError(f"different groups: {len(a)} vs {len(b)} rows")
    worst = 0.0
    for r in a:
        s = bd[key(r)]
        if r["n_positions"] != s["n_positions"] or r["n_expired"] != s["n_expired"]:
            raise AssertionError(f"different counts in group {key(r)}")
        x = np.array([r[m] for m in ref.MEASURES])
        y = np.array([s[m] for m in ref.MEASURES])
        worst = max(worst, float(ref.max_rel_diff(x[None, :].T, y[None, :].T).max()))
    return len(a), worst


def in_process_stages(book_dir: Path, out_dir: Path, as_of: str, repeat: int) -> dict[str, float]:
    """Best time per stage of an in-process run, each on a freshly loaded book."""
    from gpuskew import compute
    from gpuskew.io import publish_run, read_book_dir, write_json, write_parquet

    best: dict[str, float] = {}

    def keep(name: str, value: float) -> None:
        best[name] = min(best.get(name, float("inf")), value)

    for _ in range(repeat):
        t0 = time.perf_counter()
        try:  # the parts of load_book, when the internals are there
            from gpuskew.core.book import Book, _file_sha256
            from gpuskew.io.validate import validate_book

            tables, sources = read_book_dir(book_dir)
            t1 = time.perf_counter()
            hashes = {n: _file_sha256(p) for n, p in sources.items()}
            t2 = time.perf_counter()
            valid = validate_book(tables, sources)
            book = Book(valid["instruments"], valid["positions"], valid["underlyings"], valid["quotes"],
                        sources, hashes)
            t3 = time.perf_counter()
            keep("load: read parquet", t1 - t0)
            keep("load: sha256 of inputs", t2 - t1)
            keep("load: validate", t3 - t2)
        except ImportError:  # pragma: no cover
            from gpuskew import load_book

            book = load_book(book_dir)
            t3 = time.perf_counter()
            keep("load (read+hash+validate)", t3 - t0)
        result = compute(book, as_of=as_of, backend="cpu", group_by=[GROUP_BY])
        t4 = time.perf_counter()
        for stage, sec in result.summary["timings_s"].items():
            keep(f"compute: {stage}", sec)
        keep("compute (total)", t4 - t3)
        t5 = time.perf_counter()
        publish_run(out_dir, {
            "positions.parquet": lambda p: write_parquet(result.positions, p),
            "exposures.parquet": lambda p: write_parquet(result.exposures, p),
            "summary.json": lambda p: write_json(result.summary, p),
        }, overwrite=True)
        t6 = time.perf_counter()
        keep("write outputs (publish_run)", t6 - t5)
        keep("total in process", t6 - t0)
        result = book = None
    return best


def profile_run(book_dir: Path, out_dir: Path, as_of: str, top: int) -> str:
    """cProfile an in-process `gpuskew run` (after a warm-up run); the top functions by own time."""
    from gpuskew.cli import main

    argv = ["run", str(book_dir), "--out", str(out_dir), "--backend", "cpu", "--group-by", GROUP_BY,
            "--as-of", as_of, "--overwrite"]
    sink = io.StringIO()
    real = sys.stdout
    try:
        sys.stdout = sink
        main(argv, standalone_mode=False)
        prof = cProfile.Profile()
        prof.enable()
        main(argv, standalone_mode=False)
        prof.disable()
    finally:
        sys.stdout = real
    text = io.StringIO()
    pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(top)
    return text.getvalue()


def time_pairs(book: Path, work: Path, as_of: str, repeat: int) -> dict:
    """Warm-up run of each side, then ``repeat`` interleaved pairs (gpuskew, by hand) on ``book``.

    Returns the runs, the best of each side, their ratio, the median per-pair ratio, and the
    exposures comparison (groups, max relative difference).
    """
    gs_out, hand_out = work / "out-gpuskew", work / "out-by-hand"
    cmd_gs = [*gpuskew_cmd(), "run", str(book), "--out", str(gs_out), "--backend", "cpu",
              "--group-by", GROUP_BY, "--as-of", as_of, "--overwrite"]
    cmd_hand = [sys.executable, str(HERE / "by_hand.py"), str(book), "--out", str(hand_out),
                "--as-of", as_of, "--group-by", GROUP_BY]
    run_cmd(cmd_gs)  # warm-up: numba cache, page cache
    run_cmd(cmd_hand)
    floor_src, floor_out = work / f"floor-src-{book.name}", work / "out-floor"
    floor_tables(gs_out, floor_src)
    cmd_floor = [sys.executable, str(HERE / "pyarrow_floor.py"), str(book), str(floor_src), "--out",
                 str(floor_out)]
    run_cmd(cmd_floor)
    # interleaved, so that every side sees the same moments of a shared machine's noise
    all_gs, all_hand, all_floor = [], [], []
    for i in range(repeat):
        all_gs.append(run_cmd(cmd_gs)[0])
        all_hand.append(run_cmd(cmd_hand)[0])
        all_floor.append(run_cmd(cmd_floor)[0])
        print(f"... {book.name}: round {i + 1}/{repeat}: gpuskew {all_gs[-1]:.2f} s, by hand "
              f"{all_hand[-1]:.2f} s, pyarrow floor {all_floor[-1]:.2f} s", file=sys.stderr, flush=True)
    n_groups, rel = compare_exposures(gs_out / "exposures.parquet", hand_out / "exposures.parquet")
    pair_ratios = sorted(h / g for g, h in zip(all_gs, all_hand))
    shutil.rmtree(floor_src, ignore_errors=True)
    return {"gpuskew_s": min(all_gs), "gpuskew_runs_s": all_gs, "by_hand_s": min(all_hand),
            "by_hand_runs_s": all_hand, "ratio": min(all_hand) / min(all_gs),
            "median_pair_ratio": statistics.median(pair_ratios), "pair_ratios": pair_ratios,
            "floor_s": min(all_floor), "floor_runs_s": all_floor, "over_floor": min(all_gs) / min(all_floor),
            "groups": n_groups, "exposures_max_rel_diff": rel, "cmd_hand": cmd_hand}


def floor_tables(gs_out: Path, dest: Path) -> None:
    """gpuskew's output tables as Arrow IPC files in ``dest``, for benchmarks/pyarrow_floor.py."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dest.mkdir(parents=True, exist_ok=True)
    for f in sorted(gs_out.glob("*.parquet")):
        table = pq.read_table(f)
        with pa.OSFile(str(dest / f"{f.stem}.arrow"), "wb") as sink:
            with pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)


def in_process_pairs(book_dir: Path, as_of: str, repeat: int) -> dict:
    """In process, interleaved: ``load_book`` + ``compute`` (positions table included) against the
    same job in memory by hand (``by_hand.build``: read, join, price, sum, tables); best of each."""
    from datetime import datetime

    import by_hand
    from gpuskew import compute, load_book

    when = datetime.fromisoformat(as_of.replace("Z", "+00:00"))

    def gpuskew_job() -> None:
        compute(load_book(book_dir), as_of=as_of, backend="cpu", group_by=[GROUP_BY])

    def hand_job() -> None:
        by_hand.build(book_dir, when, GROUP_BY.split(","))

    gpuskew_job()  # warm-up: numba's first use, page cache
    hand_job()
    gs, hand = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        gpuskew_job()
        t1 = time.perf_counter()
        hand_job()
        t2 = time.perf_counter()
        gs.append(t1 - t0)
        hand.append(t2 - t1)
    return {"gpuskew_s": min(gs), "gpuskew_runs_s": gs, "by_hand_s": min(hand), "by_hand_runs_s": hand,
            "ratio": min(hand) / min(gs)}


def write_book(book: Path, n: int) -> tuple[float, float]:
    """Write the demo book of ``n`` positions as Parquet; (seconds, MB)."""
    from gpuskew.synthetic.demo import write_demo_book

    t0 = time.perf_counter()
    paths = write_demo_book(book, n_positions=n)
    seconds = time.perf_counter() - t0
    mb = sum(p.stat().st_size for p in paths.values()) / 1e6
    print(f"... book of {n:,} positions written in {seconds:.1f} s ({mb:.1f} MB Parquet)",
          file=sys.stderr, flush=True)
    return seconds, mb


def main(argv: list[str] | None = None) -> int:
    from gpuskew.synthetic.demo import DEMO_AS_OF

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--size", type=float, default=1e6, help="positions in the book (default 10^6)")
    p.add_argument("--workdir", type=Path, default=None, help="where to write the book (default: a temp folder)")
    p.add_argument("--profile", action="store_true", help="also cProfile an in-process gpuskew run")
    p.add_argument("--profile-top", type=int, default=25)
    p.add_argument("--sweep", default="", help="other book sizes, comma-separated (e.g. 1e4,1e5,1e7): "
                                               "the same comparison, --sweep-repeat pairs each")
    p.add_argument("--sweep-repeat", type=int, default=2)
    add_common_args(p, default_repeat=3)
    args = p.parse_args(argv)
    n = int(args.size)
    sweep_sizes = parse_sizes(args.sweep) if args.sweep else []
    as_of = DEMO_AS_OF.isoformat().replace("+00:00", "Z")
    info = machine_info()

    work = Path(tempfile.mkdtemp(prefix="gpuskew-e2e-", dir=args.workdir))
    try:
        book = work / "book"
        t_write_book, book_mb = write_book(book, n)
        main_run = time_pairs(book, work, as_of, args.repeat)
        all_gs, all_hand = main_run["gpuskew_runs_s"], main_run["by_hand_runs_s"]
        t_gs, t_hand, median_ratio = main_run["gpuskew_s"], main_run["by_hand_s"], main_run["median_pair_ratio"]
        pair_ratios, n_groups, rel = main_run["pair_ratios"], main_run["groups"], main_run["exposures_max_rel_diff"]
        cmd_hand = main_run.pop("cmd_hand")
        _, proc = run_cmd([*cmd_hand, "--timings"])
        hand_stages = json.loads(proc.stdout.strip().splitlines()[-1])
        t_imp_gs = best_of_cmd([sys.executable, "-c", "import gpuskew.cli, gpuskew.core.engine, gpuskew.core.book, "
                                "gpuskew.io, gpuskew.io.validate, pyarrow.parquet; "
                                "from gpuskew.kernels import cpu"], args.repeat, warmup=1)[0]
        t_imp_hand = best_of_cmd([sys.executable, "-c", "import numpy, pyarrow.parquet, pyarrow.compute, "
                                  "scipy.special"], args.repeat, warmup=1)[0]
        stages = in_process_stages(book, work / "out-inproc", as_of, args.repeat)
        inproc = in_process_pairs(book, as_of, args.repeat)
        prof = profile_run(book, work / "out-prof", as_of, args.profile_top) if args.profile else None
        sweep = {}
        for size in sweep_sizes:
            sized = work / f"book-{size}"
            _, mb = write_book(sized, size)
            sweep[size] = time_pairs(sized, work, as_of, args.sweep_repeat)
            sweep[size].pop("cmd_hand")
            sweep[size]["book_mb"] = mb
            shutil.rmtree(sized, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    ratio = t_hand / t_gs
    lines = [f"## End to end: {n:,}-position Parquet book ({args.repeat} interleaved pairs of runs after a "
             "warm-up run of each)",
             "", machine_markdown(info), "",
             md_table(["job", "wall time", "runs (s)"],
                      [["`gpuskew run BOOK --backend cpu --group-by desk,book`", f"{t_gs:.2f} s",
                        ", ".join(f"{x:.2f}" for x in all_gs)],
                       ["by hand: pyarrow + NumPy/SciPy (benchmarks/by_hand.py)", f"{t_hand:.2f} s",
                        ", ".join(f"{x:.2f}" for x in all_hand)],
                       ["ratio by hand / gpuskew (best / best)", f"{ratio:.2f}x", ""],
                       ["ratio, median of the pairs", f"{median_ratio:.2f}x",
                        ", ".join(f"{x:.2f}" for x in pair_ratios)]]),
             "",
             f"Target (issue 11) gpuskew >= 2.5x faster: {ratio:.2f}x ({'met' if ratio >= 2.5 else 'MISSED'}). "
             f"Both wrote the same exposures ({n_groups} groups; max relative difference {rel:.1e}). "
             f"Book: {book_mb:.1f} MB of Parquet (zstd), written in {t_write_book:.1f} s.",
             "",
             f"Interpreter start + imports: gpuskew's modules {t_imp_gs:.2f} s; by hand "
             f"(numpy, pyarrow.parquet, scipy.special) {t_imp_hand:.2f} s.",
             "",
             f"pyarrow floor (benchmarks/pyarrow_floor.py: read the book's Parquet files, write the same output "
             f"tables with gpuskew's encodings, in the same rounds): {main_run['floor_s']:.2f} s; gpuskew "
             f"{main_run['over_floor']:.2f}x of it.",
             "",
             f"In process, interleaved ({args.repeat} rounds after a warm-up): `load_book` + `compute` "
             f"{inproc['gpuskew_s']:.3f} s, the same job in memory by hand (`by_hand.build`) "
             f"{inproc['by_hand_s']:.3f} s: {inproc['ratio']:.2f}x (target (issue 11) >= 3x: "
             f"{'met' if inproc['ratio'] >= 3 else 'MISSED'}).",
             "",
             "Stages in process (gpuskew: fresh book each run, best of each stage; by hand: one run):",
             "",
             md_table(["gpuskew stage", "seconds"], [[k, f"{v:.3f}"] for k, v in stages.items()]),
             "",
             md_table(["by-hand stage", "seconds"], [[k, f"{v:.3f}"] for k, v in hand_stages.items()]
                      + [["total", f"{sum(hand_stages.values()):.3f}"]])]
    if sweep:
        sizes = sorted({n, *sweep})
        runs = {**sweep, n: main_run}
        lines += ["", f"Other sizes (best of {args.sweep_repeat} interleaved pairs after a warm-up run; "
                      f"{n:,} from the table above):", "",
                  md_table(["positions", "gpuskew run", "by hand", "ratio (best / best)", "median pair ratio",
                            "pyarrow floor", "gpuskew / floor", "exposures max rel diff"],
                           [[f"{k:,}", f"{runs[k]['gpuskew_s']:.2f} s", f"{runs[k]['by_hand_s']:.2f} s",
                             f"{runs[k]['ratio']:.2f}x", f"{runs[k]['median_pair_ratio']:.2f}x",
                             f"{runs[k]['floor_s']:.2f} s", f"{runs[k]['over_floor']:.2f}x",
                             f"{runs[k]['exposures_max_rel_diff']:.1e}"] for k in sizes])]
        big = max(sizes)
        if big >= 10_000_000:
            r = runs[big]
            lines += ["", f"Target (issue 11) at {big:,}: gpuskew within 1.5x of the pyarrow floor: "
                          f"{r['over_floor']:.2f}x ({'met' if r['over_floor'] <= 1.5 else 'MISSED'})."]
    if prof:
        lines += ["", "cProfile of an in-process `gpuskew run` (warm), top functions by own time:", "",
                  "```", prof.strip(), "```"]
    print("\n".join(lines))
    save_json(args, __file__, {"machine": info, "size": n, "repeat": args.repeat, "gpuskew_s": t_gs,
                               "gpuskew_runs_s": all_gs, "by_hand_s": t_hand, "by_hand_runs_s": all_hand,
                               "ratio": ratio, "median_pair_ratio": median_ratio, "exposures_max_rel_diff": rel, "book_mb": book_mb,
                               "import_gpuskew_s": t_imp_gs, "import_by_hand_s": t_imp_hand,
                               "stages_gpuskew": stages, "stages_by_hand": hand_stages, "in_process": inproc,
                               "floor_s": main_run["floor_s"], "over_floor": main_run["over_floor"],
                               "sweep": {str(k): v for k, v in sweep.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
