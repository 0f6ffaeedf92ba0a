"""Domain errors, each mapped to a CLI exit code (README "Exit codes")."""

from __future__ import annotations

from collections.abc import Sequence

#: exit codes of the CLI
EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_INVALID = 2
EXIT_LIMIT_BREACHED = 3
EXIT_CUDA_UNAVAILABLE = 75


class GpuskewError(Exception):
    """Base class; ``exit_code`` is what the CLI exits with."""

    exit_code = EXIT_RUNTIME


class InvalidInput(GpuskewError):
    """Bad input data: names the file (or table), the column, the first offending rows and the rule.

    ``rows`` are 0-based indices of the data rows as read (header excluded); the message shows them
    as a person counts rows in a spreadsheet's data: from 1 (``row_numbers``).
    """

    exit_code = EXIT_INVALID

    def __init__(self, source: str, column: str | None, rule: str,
                 rows: Sequence[int] = (), n_bad: int | None = None, values: Sequence[object] = ()):
        self.source = source
        self.column = column
        self.rule = rule
        self.rows = [int(r) for r in rows[:5]]
        self.n_bad = len(rows) if n_bad is None else n_bad
        self.values = list(values[:5])
        where = f"{source}"
        if column:
            where += f", column '{column}'"
        msg = f"invalid input: {where}: {rule}"
        if self.rows:
            shown = ", ".join(str(r) for r in self.row_numbers)
            more = f", first {len(self.rows)} of {self.n_bad}" if self.n_bad > len(self.rows) else ""
            word = "row" if len(self.rows) == 1 and self.n_bad == 1 else "rows"
            msg += f"; {word} {shown} (data rows counted from 1{more})"
            if self.values:
                msg += f"; values {', '.join(repr(v) for v in self.values)}"
        super().__init__(msg)


    @property
    def row_numbers(self) -> list[int]:
        """The offending rows counted from 1 (the first data row is row 1)."""
        return [r + 1 for r in self.rows]


class InvalidConfig(GpuskewError):
    """Bad configuration (limits file, flags): names the key path, the value and the rule."""

    exit_code = EXIT_INVALID

    def __init__(self, source: str, key: str, value: object, rule: str):
        import reprlib

        self.source, self.key, self.value, self.rule = source, key, value, rule
        short = reprlib.Repr()
        short.maxlevel, short.maxstring, short.maxlong, short.maxlist, short.maxdict, short.maxother = 3, 60, 40, 6, 6, 60
        shown = short.repr(value)
        super().__init__(f"invalid configuration: {source}: {key} = {shown}: {rule}")


class CudaUnavailable(GpuskewError):
    """backend='cuda' was asked for but no usable CUDA device/toolkit is present."""

    exit_code = EXIT_CUDA_UNAVAILABLE
