"""What every command shares: stderr logging, safe terminal text, error handling and exit codes.

stdout carries results (a readable table; with ``--json`` exactly one compact JSON object on one
line and nothing else); logs, warnings and progress go to stderr. Exit codes: 0 ok, 1 runtime
error, 2 usage or invalid input, 3 a limit breached and ``--fail-on`` asked to fail on it, 75
CUDA required but not usable. With ``--json`` an error also prints its JSON line
(``{"status": "error", "exit_code": 2, "error": ...}``) so that the status always agrees with the
exit code.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from gpuskew.errors import EXIT_INVALID, EXIT_RUNTIME, GpuskewError, InvalidInput

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def safe(text: object, newlines: bool = True) -> str:
    """``text`` fit for a terminal: control characters (ESC, BEL, C1, ...) written as ``\\xNN`` so
    that text from inputs can never drive the terminal (retitle it, move the cursor)."""
    s = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))
    return s if newlines else s.replace("\n", "\\n")


def log(message: str) -> None:
    """A log line on stderr (control characters escaped)."""
    click.echo(f"gpuskew: {safe(message)}", err=True)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()


def check_out_target(out_dir: Path, book_dir: Path | None, overwrite: bool, names) -> Path:
    """Refuse, before any work, an --out that cannot be written: the book folder itself or a folder
    inside it (its input files would be overwritten), and what :func:`gpuskew.io.check_output_free`
    refuses (the filesystem root, a file, a folder holding outputs without --overwrite). Returns the
    absolute output path."""
    from gpuskew.io import check_output_free

    out = Path(os.path.abspath(out_dir))
    if book_dir is not None:
        book = Path(os.path.abspath(book_dir))
        if out == book or book in out.parents:
            raise InvalidInput(str(out_dir), None, f"--out is the book folder {book_dir} or inside it: the run "
                                                   "would overwrite or mix with its inputs; choose another folder")
        if out.is_dir() and out.resolve() == book.resolve():
            raise InvalidInput(str(out_dir), None, f"--out is the book folder {book_dir} (through a link)")
    check_output_free(out, overwrite, names)
    return out


def emit_json(obj: dict) -> None:
    """The one JSON line of ``--json`` on stdout (compact, sorted keys, no NaN)."""
    from gpuskew.io.atomic import dumps_json

    click.echo(dumps_json(obj, compact=True))


def _wants_json() -> bool:
    ctx = click.get_current_context(silent=True)
    return bool(ctx is not None and ctx.params.get("as_json"))


class Command(click.Command):
    """A command whose usage errors found while its options are parsed (a bad ``--cluster`` spec, a
    value outside a choice) also print the JSON error line when ``--json`` is asked for (on the
    command line, in GPUSKEW_JSON or a --config file), as errors raised while it runs do."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        given = list(args)  # click's parser consumes the list
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as exc:
            if _json_asked(self, ctx, given):
                emit_json({"status": "error", "exit_code": EXIT_INVALID, "error": exc.format_message()})
            raise


def _json_asked(command: click.Command, ctx: click.Context, args: list[str]) -> bool:
    """Whether ``--json`` is on for a command whose arguments failed to parse (best effort)."""
    param = next((p for p in command.params if p.name == "as_json"), None)
    if param is None:
        return False
    try:
        opts, _, _ = command.make_parser(ctx).parse_args(args=list(args))
        value = opts.get("as_json")
        if value is None:
            value = param.resolve_envvar_value(ctx)
        if value is None:
            value = ctx.lookup_default("as_json")
        return bool(value is not None and param.type_cast_value(ctx, value))
    except (click.ClickException, ValueError, TypeError):
        return False


def command(**kwargs: Any) -> Callable[[Callable[..., Any]], click.Command]:
    """``click.command`` with :class:`Command` (every gpuskew command is declared with it)."""
    return click.command(cls=Command, **kwargs)


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Map domain errors to their exit codes, with one clear line on stderr and no traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GpuskewError as exc:
            _fail(str(exc), exc.exit_code, "error")
        except click.exceptions.Exit:
            raise
        except click.UsageError as exc:
            if _wants_json():
                emit_json({"status": "error", "exit_code": EXIT_INVALID, "error": exc.format_message()})
            raise
        except (click.ClickException, click.Abort):
            raise
        except Exception as exc:  # runtime error: exit 1, traceback only when asked
            if os.environ.get("GPUSKEW_DEBUG"):
                raise
            _fail(f"{type(exc).__name__}: {exc} (set GPUSKEW_DEBUG=1 for a traceback)", EXIT_RUNTIME,
                  "runtime error")

    return wrapper


def _fail(message: str, code: int, label: str) -> None:
    click.echo(f"gpuskew: {label}: {safe(message)}", err=True)
    if _wants_json():
        emit_json({"status": "error", "exit_code": code, "error": message})
    sys.exit(code)


__all__ = ["safe", "log", "stderr_is_tty", "emit_json", "handle_errors", "Command", "command"]
