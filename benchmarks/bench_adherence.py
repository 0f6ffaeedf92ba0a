"""Cost of the adherence layer over the greeks pass (issue 3 target: under 10% extra).

On a mixed demo book of N positions (default 10^6), grouped per underlying, desk and desk+book, with
the shipped example limits, in one process, best of k:

* greeks pass: ``gpuskew.compute(book, positions_table=False)``: every measure of every position
  and the group sums (the work a risk run needs before adherence);
* adherence: ``compute_adherence`` (targets, bands, skew, statuses, score, hedge proposals, quote
  skew) plus ``evaluate_alerts`` against a previous run (hysteresis, suggested actions).

The adherence layer works per group, not per position, so its cost does not grow with N.

    python benchmarks/bench_adherence.py --size 1e6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import add_common_args, best_of, machine_info, machine_markdown, md_table, save_json  # noqa: E402

GROUP_BY = ["desk", "desk,book"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=float, default=1e6, help="positions in the demo book (default 1e6)")
    add_common_args(p, default_repeat=7)
    args = p.parse_args(argv)
    n = int(args.size)

    import gpuskew
    from gpuskew.adherence import compute_adherence
    from gpuskew.adherence.alerts import evaluate_alerts
    from gpuskew.synthetic.demo import DEMO_AS_OF, make_demo_book
    from gpuskew.policy.limits import load_example_limits

    info = machine_info()
    book = gpuskew.load_book(make_demo_book(n_positions=n))
    limits = load_example_limits()

    def greeks():
        return gpuskew.compute(book, as_of=DEMO_AS_OF, backend="cpu", group_by=GROUP_BY,
                               positions_table=False)

    result = greeks()

    def adherence():
        adh = compute_adherence(result.exposures, book.underlyings, book.instruments, book.quotes,
                                limits, DEMO_AS_OF)
        return evaluate_alerts(adh.table, adh.table, thresholds=lambda row: limits.policy_for(row).thresholds,
                               hysteresis=lambda row: limits.policy_for(row).hysteresis,
                               as_of=DEMO_AS_OF, hedges=adh.hedges), adh

    (alerts, _), adh = adherence()
    t_greeks, _ = best_of(greeks, repeat=args.repeat, warmup=1)
    t_adh, _ = best_of(adherence, repeat=args.repeat, warmup=1)
    ratio = t_adh / t_greeks
    print(f"## Adherence cost over the greeks pass: {n:,}-position demo book (best of {args.repeat})\n")
    print(machine_markdown(info))
    print()
    print(md_table(["step", "seconds", "share of the greeks pass"], [
        ["greeks pass: compute (every measure, group sums; no positions table)", f"{t_greeks:.4f}", "100%"],
        [f"adherence + hedges + quote skew + alerts ({adh.table.num_rows} groups, "
         f"{adh.hedges.num_rows} hedges)", f"{t_adh:.4f}", f"{100 * ratio:.1f}%"],
    ]))
    verdict = "met" if ratio < 0.10 else "MISSED"
    print(f"\nTarget under 10% extra: {100 * ratio:.1f}% ({verdict}).")
    save_json(args, __file__, {"machine": info, "size": n, "greeks_s": t_greeks, "adherence_s": t_adh,
                               "ratio": ratio, "groups": adh.table.num_rows, "hedges": adh.hedges.num_rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
