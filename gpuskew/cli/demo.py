"""``gpuskew demo``: write the seeded demo book as files (shows the input format)."""

from __future__ import annotations

from pathlib import Path

import click

from gpuskew.cli.common import command, handle_errors, safe, stderr_is_tty
from gpuskew.cli.options import config_option, demo_options


@command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@demo_options
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "arrow"]), default="parquet",
              show_default=True, help="File format of the four tables.")
@click.option("--partitioned", is_flag=True,
              help="Write the positions as a partitioned Parquet dataset (BOOK_DIR/positions/underlying=X/"
                   "part-K.parquet), generated a few million positions at a time: for books larger than memory.")
@config_option
@handle_errors
def demo(book_dir: Path, demo_size: int, demo_seed: int, fmt: str, partitioned: bool) -> None:
    """Write the seeded demo book to BOOK_DIR as files (shows the input format)."""
    from gpuskew.cli.progress import ProgressBar
    from gpuskew.synthetic.demo import write_demo_book, write_demo_dataset

    if partitioned and fmt != "parquet":
        raise click.UsageError("--partitioned writes Parquet: drop --format or use --format parquet")
    with ProgressBar(["demo", "write"], enabled=stderr_is_tty()) as progress:
        if partitioned:
            paths = write_demo_dataset(book_dir, n_positions=demo_size, seed=demo_seed, progress=progress)
        else:
            paths = write_demo_book(book_dir, n_positions=demo_size, seed=demo_seed, fmt=fmt, progress=progress)
    for name, path in paths.items():
        click.echo(f"{name}: {safe(path)}")
