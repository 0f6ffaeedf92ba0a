"""The pyarrow floor of a ``gpuskew run``: read the book's Parquet files and write the same output
tables with the same writer settings, nothing else (issue 11: gpuskew within 1.5x of this at 10^7).

The output tables are handed over as Arrow IPC files (memory-mapped: no decoding cost), taken from
a ``gpuskew run`` of the same book; each is written as Parquet with ``gpuskew.io.atomic.write_parquet``
(gpuskew's encodings) into ``--out``.

    python benchmarks/pyarrow_floor.py BOOK_DIR TABLES_DIR --out DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("book", type=Path)
    p.add_argument("tables", type=Path, help="folder of NAME.arrow files: the tables to write as NAME.parquet")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    from gpuskew.io.atomic import write_parquet

    rows = sum(pq.read_table(f).num_rows for f in sorted(args.book.glob("*.parquet")))
    args.out.mkdir(parents=True, exist_ok=True)
    for f in sorted(args.tables.glob("*.arrow")):
        with pa.memory_map(str(f)) as source:
            table = pa.ipc.open_file(source).read_all()
        write_parquet(table, args.out / f"{f.stem}.parquet")
    return 0 if rows >= 0 else 1


if __name__ == "__main__":
    sys.exit(main())
