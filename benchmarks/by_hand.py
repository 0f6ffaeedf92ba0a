"""The job of ``gpuskew run BOOK --out OUT --group-by desk,book``, done "by hand" with pyarrow and
NumPy/SciPy: the baseline of bench_end_to_end.py.

Reads the four Parquet tables of a book folder, joins positions with instruments, underlyings and
quotes (hash lookups with ``pyarrow.compute.index_in`` + ``take``), prices every position with the
vectorised reference (reference_numpy.py), sums every measure per underlying and per
(underlying, desk, book) with ``np.bincount``, and writes ``positions.parquet`` (the input columns,
the instrument/market context, the 12 measures and a status), ``exposures.parquet`` and a small
``summary.json``, Parquet with pyarrow's default options (Snappy). It does not validate its inputs, hash them, or
write atomically (gpuskew does all three).

    python benchmarks/by_hand.py BOOK_DIR --out OUT_DIR --as-of 2026-11-20T08:00:00Z --group-by desk,book
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_numpy as ref  # noqa: E402

KINDS = ("spot", "perpetual", "future", "option")
SETTLEMENTS = ("linear", "inverse")
SECONDS_PER_YEAR = 31_536_000.0
STATUS_NAMES = ("ok", "expired")


def _codes(col, vocab) -> np.ndarray:
    return pc.index_in(col, value_set=pa.array(vocab)).fill_null(-1).to_numpy().astype(np.int8)


def _f64(col, default=0.0) -> np.ndarray:
    return col.fill_null(default).to_numpy().astype(np.float64, copy=False)


def _dense(col: pa.ChunkedArray) -> tuple[np.ndarray, list]:
    """Codes of a string column in sorted order of its values (null last) and the values."""
    enc = pc.dictionary_encode(col.combine_chunks())
    values = enc.dictionary.to_pylist()
    order = np.argsort(np.array(values, dtype=object)) if values else np.zeros(0, np.int64)
    rank = np.empty(len(values) + 1, np.int64)
    rank[order] = np.arange(len(values))
    rank[len(values)] = len(values)
    return rank[enc.indices.fill_null(len(values)).to_numpy()], sorted(values) + [None]


def build(book: Path, as_of: datetime, group_by: list[str], t: dict | None = None) -> dict:
    """The job in memory: read the book, join, price, sum, build the tables (no writes).

    Returns the positions table, the exposures table, the statuses and the positions count;
    ``t`` (if given) receives the time after each stage."""
    t = {} if t is None else t
    read = {name: pq.read_table(book / f"{name}.parquet")
            for name in ("instruments", "positions", "underlyings", "quotes")}
    inst, pos, und, quo = read["instruments"], read["positions"], read["underlyings"], read["quotes"]
    t["read"] = time.perf_counter()

    # per instrument: codes and market data
    kind_i = _codes(inst["kind"], KINDS)
    settle_i = _codes(inst["settlement"], SETTLEMENTS)
    cp_i = np.where(kind_i == ref.OPTION,
                    np.where(_codes(inst["option_type"], ("call", "put")) == 0, 1, -1), 0).astype(np.int8)
    strike_i = _f64(inst["strike"])
    csize_i = _f64(inst["contract_size"])
    expiry_i = pc.cast(inst["expiry"], pa.int64()).fill_null(0).to_numpy()
    has_exp_i = inst["expiry"].is_valid().to_numpy(zero_copy_only=False)
    und_names = sorted(und["underlying"].to_pylist())
    und_rows = pc.index_in(pa.array(und_names), value_set=und["underlying"]).to_numpy()
    spot_u = _f64(und["spot"])[und_rows]
    rate_u = _f64(und["rate"])[und_rows]
    uc_i = pc.index_in(inst["underlying"], value_set=pa.array(und_names)).to_numpy()
    q = pc.index_in(inst["instrument"], value_set=quo["instrument"]).fill_null(-1).to_numpy()
    iv_i = np.append(_f64(quo["iv"]), 0.0)[q]
    fwd_i = np.append(_f64(quo["forward"]), 0.0)[q]

    # join: position -> instrument row
    p = pc.index_in(pos["instrument"], value_set=inst["instrument"]).to_numpy()
    ucode = uc_i[p]
    as_of_us = int(as_of.timestamp() * 1_000_000)
    has_exp = has_exp_i[p]
    T = np.where(has_exp, (expiry_i[p] - as_of_us) / 1e6 / SECONDS_PER_YEAR, 0.0)
    kind = kind_i[p]
    is_opt = kind == ref.OPTION
    entry = _f64(pos["entry_price"]) if "entry_price" in pos.column_names else np.zeros(len(p))
    S = spot_u[ucode]
    inputs = (kind, settle_i[p], cp_i[p], _f64(pos["quantity"]), csize_i[p],
              np.where(is_opt, strike_i[p], 0.0), T, S, fwd_i[p], rate_u[ucode],
              np.where(is_opt, iv_i[p], 0.0), entry)
    t["join"] = time.perf_counter()

    out_arr, status = ref.position_measures(*inputs)
    t["greeks"] = time.perf_counter()

    # group sums: per underlying, then per (underlying, *group_by)
    expired = status == ref.STATUS_EXPIRED
    levels = [()] + ([tuple(group_by)] if group_by else [])
    tag_codes = {tag: _dense(pos[tag]) for tag in group_by}
    parts = []
    for level in levels:
        key = ucode.astype(np.int64)
        for tag in level:
            codes, names = tag_codes[tag]
            key = key * len(names) + codes
        uniq, inv = np.unique(key, return_inverse=True)
        g = uniq.size
        sums = ref.group_sums(out_arr, inv, g)
        cols = {"level": pa.array([",".join(level) or "underlying"] * g)}
        rest = uniq.copy()
        keys = {}
        for tag in reversed(level):
            codes, names = tag_codes[tag]
            keys[tag] = [names[i] for i in (rest % len(names)).tolist()]
            rest //= len(names)
        cols["underlying"] = pa.array([und_names[i] for i in rest.tolist()])
        for tag in group_by:
            cols[tag] = pa.array(keys[tag] if tag in level else [None] * g, pa.string())
        cols["spot"] = pa.array(spot_u[rest])
        cols["n_positions"] = pa.array(np.bincount(inv, minlength=g))
        cols["n_expired"] = pa.array(np.bincount(inv[expired], minlength=g))
        for m, name in enumerate(ref.MEASURES):
            cols[name] = pa.array(sums[m])
        parts.append(pa.table(cols))
    exposures = pa.concat_tables(parts)
    t["group_sums"] = time.perf_counter()

    # positions table: inputs + instrument/market context + measures + status
    take = pa.array(p)
    table = pos
    for name in ("underlying", "kind", "settlement", "option_type", "strike", "expiry", "contract_size"):
        table = table.append_column(name, pc.take(inst[name], take))
    table = table.append_column("spot", pa.array(S))
    table = table.append_column("time_to_expiry", pa.array(T))
    for m, name in enumerate(ref.MEASURES):
        table = table.append_column(name, pa.array(out_arr[m]))
    table = table.append_column("status", pc.take(pa.array(STATUS_NAMES), pa.array(status.astype(np.int32))))
    t["tables"] = time.perf_counter()
    return {"positions": table, "exposures": exposures, "expired": expired, "n": len(p)}


def run(book: Path, out: Path, as_of: datetime, group_by: list[str]) -> dict:
    """``build``, then write positions.parquet, exposures.parquet and summary.json; stage timings."""
    t = {"start": time.perf_counter()}
    built = build(book, as_of, group_by, t)
    table, exposures, expired = built["positions"], built["exposures"], built["expired"]
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "positions.parquet")  # pyarrow's defaults (Snappy, dictionary, statistics)
    pq.write_table(exposures, out / "exposures.parquet")
    under = exposures.filter(pc.equal(exposures["level"], "underlying")).to_pylist()
    summary = {"as_of": as_of.isoformat(), "positions": built["n"], "expired": int(expired.sum()),
               "totals": {r["underlying"]: {k: r[k] for k in ("delta", "delta_pa", "delta_usd")}
                          for r in under}}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    t["write"] = time.perf_counter()
    stages = ("start", "read", "join", "greeks", "group_sums", "tables", "write")
    return {s: round(t[s] - t[prev], 6) for prev, s in zip(stages, stages[1:])}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("book", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--as-of", required=True, help="ISO 8601 valuation time (UTC if naive)")
    p.add_argument("--group-by", default="desk,book")
    p.add_argument("--timings", action="store_true", help="print stage timings as JSON on stdout")
    args = p.parse_args(argv)
    as_of = datetime.fromisoformat(args.as_of.replace("Z", "+00:00"))
    if as_of.tzinfo is None:
        as_of = as_of.replace(tzinfo=timezone.utc)
    timings = run(args.book, args.out, as_of, [c for c in args.group_by.split(",") if c])
    if args.timings:
        print(json.dumps(timings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
