"""``gpuskew demo``: write the seeded demo book as files (shows the input format)."""

from __future__ import annotations

from pathlib import Path

import click

from gpuskew.cli.common import handle_errors, safe, stderr_is_tty
from gpuskew.cli.options import config_option, demo_options


@click.command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@demo_options
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "arrow"]), default="parquet",
              show_default=True, help="File format of the four tables.")
@config_option
@handle_errors
def demo(book_dir: Path, demo_size: int, demo_seed: int, fmt: str) -> None:
    """Write the seeded demo book to BOOK_DIR as files (shows the input format)."""
    from gpuskew.cli.progress import ProgressBar
    from gpuskew.synthetic.demo import write_demo_book

    with ProgressBar(["demo", "write"], enabled=stderr_is_tty()) as progress:
        paths = write_demo_book(book_dir, n_positions=demo_size, seed=demo_seed, fmt=fmt, progress=progress)
    for name, path in paths.items():
        click.echo(f"{name}: {safe(path)}")
