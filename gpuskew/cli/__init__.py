"""The ``gpuskew`` command line (click): one short module per command.

stdout carries results (a readable table; with ``--json`` exactly one compact JSON object on one
line); logs, warnings and progress go to stderr. Exit codes: 0 ok, 1 runtime error, 2 usage or
invalid input, 3 a limit breached and ``--fail-on`` asked to fail on it, 75 CUDA required but not
usable. Configuration: flags > GPUSKEW_* environment variables > a TOML file (``--config``) >
defaults (:mod:`gpuskew.cli.options`). Nothing imports this package: it is the outermost layer.
"""

from __future__ import annotations

import os
import sys

import click

from gpuskew import __version__
from gpuskew.cli.common import handle_errors, log  # noqa: F401  (re-exported for command modules)
from gpuskew.errors import EXIT_RUNTIME


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="gpuskew")
def main() -> None:
    """gpuskew: greeks, net delta and inventory skew adherence for crypto options desks."""


def entry_point() -> None:
    """The ``gpuskew`` console script: :func:`main`, then a fast exit.

    Once the command has finished (outputs published, stdout and stderr flushed) the process ends
    with ``os._exit``: interpreter teardown with numba, llvmlite and pyarrow loaded takes ~0.2 s
    and does nothing a run needs (every file is closed and renamed into place before this point).
    Set GPUSKEW_FAST_EXIT=0 for a normal interpreter exit. The command runs without the two
    start-up probe imports of pyarrow (pandas) and numba (``scipy.linalg``) that it never uses:
    see :mod:`gpuskew.cli.startup`.
    """
    from gpuskew.cli.startup import skip_probe_imports

    try:
        with skip_probe_imports():
            main(standalone_mode=True)
        code = 0
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            code = exc.code or 0
        else:
            click.echo(str(exc.code), err=True)
            code = EXIT_RUNTIME
    if os.environ.get("GPUSKEW_FAST_EXIT", "1") == "0":
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    os._exit(code)


from gpuskew.cli import backtest as _backtest  # noqa: E402
from gpuskew.cli import calibrate as _calibrate  # noqa: E402
from gpuskew.cli import demo as _demo  # noqa: E402
from gpuskew.cli import doctor as _doctor  # noqa: E402
from gpuskew.cli import explain as _explain  # noqa: E402
from gpuskew.cli import monitor as _monitor  # noqa: E402
from gpuskew.cli import report as _report  # noqa: E402
from gpuskew.cli import run as _run  # noqa: E402
from gpuskew.cli import scenarios as _scenarios  # noqa: E402

main.add_command(_run.run)
main.add_command(_report.report)
main.add_command(_demo.demo)
main.add_command(_doctor.doctor)
main.add_command(_backtest.backtest)
main.add_command(_calibrate.calibrate)
main.add_command(_scenarios.scenarios)
main.add_command(_explain.explain)
main.add_command(_monitor.monitor)

if __name__ == "__main__":  # pragma: no cover
    entry_point()
