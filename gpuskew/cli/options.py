"""Option groups shared by the commands (declared once), and configuration files.

Precedence, the same for every command: flags > ``GPUSKEW_*`` environment variables > a TOML file
given with ``--config`` (or ``GPUSKEW_CONFIG``) > defaults. In the file, keys are the option names
as written on the command line, without the dashes (``out``, ``json``, ``limits``, ``group-by``
or ``group_by``, ``backend``...): top-level keys apply to every command that has the option, a
``[run]`` (``[report]``, ``[monitor]``...) table to that command only. A key that is no option of
any command (top level) or of its command (in a command table) is an error: a typo must not pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

F = Callable[..., Any]


def option_group(*decorators: Callable[[F], F]) -> Callable[[F], F]:
    """One decorator applying ``decorators`` in the order written (a group of options declared once)."""

    def apply(func: F) -> F:
        for d in reversed(decorators):
            func = d(func)
        return func

    return apply


def _option_names(command: click.Command) -> dict[str, str]:
    """Option name (no dashes, '-' and '_' both accepted) -> parameter name."""
    out: dict[str, str] = {}
    for p in command.params:
        if isinstance(p, click.Option) and p.expose_value:
            for opt in p.opts:
                name = opt.lstrip("-")
                out[name] = p.name
                out[name.replace("-", "_")] = p.name
    return out


def _load_config(ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--config FILE: defaults for this command's options from a TOML file (module docstring)."""
    if not value:
        return value
    from gpuskew.errors import InvalidConfig
    from gpuskew.policy.limits import read_toml

    try:
        data = read_toml(value)
    except InvalidConfig as exc:
        raise click.BadParameter(str(exc)) from exc
    root = ctx.find_root().command
    commands = getattr(root, "commands", {})
    mine = _option_names(ctx.command)
    everyone: set[str] = set()
    for cmd in commands.values():
        everyone |= set(_option_names(cmd))
    defaults: dict[str, Any] = {}
    for key, v in data.items():
        if key in commands:
            continue
        if key not in everyone:
            raise click.BadParameter(f"{value}: unknown key {key!r} (not an option of any command)")
        if key in mine:
            defaults[mine[key]] = v
    table = data.get(ctx.info_name, {})
    if not isinstance(table, dict):
        raise click.BadParameter(f"{value}: [{ctx.info_name}] must be a table")
    for key, v in table.items():
        if key not in mine:
            raise click.BadParameter(f"{value}: unknown key {ctx.info_name}.{key} (options of "
                                     f"`gpuskew {ctx.info_name}`: {', '.join(sorted(k for k in mine if '_' not in k))})")
        defaults[mine[key]] = v
    ctx.default_map = {**(ctx.default_map or {}), **defaults}
    return value


config_option = click.option(
    "--config", type=click.Path(dir_okay=False), callback=_load_config, is_eager=True, expose_value=False,
    envvar="GPUSKEW_CONFIG",
    help="TOML file of option defaults: top-level keys for every command, a [COMMAND] table for one.")

json_option = click.option(
    "--json", "as_json", is_flag=True, envvar="GPUSKEW_JSON",
    help="Print exactly one compact JSON object on one line on stdout (and nothing else there).")

backend_option = click.option(
    "--backend", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True,
    envvar="GPUSKEW_BACKEND", help="Compute backend.")

group_by_option = click.option(
    "--group-by", "group_by", multiple=True, envvar="GPUSKEW_GROUP_BY",
    help="Tag columns to group by, comma-separated (e.g. desk,book); repeat for more levels. "
         "The levels a limits file names (levels = [...]) are always computed too.")

as_of_option = click.option(
    "--as-of", "as_of", default=None, envvar="GPUSKEW_AS_OF",
    help="Valuation time, ISO 8601 (a date alone means 08:00 UTC; default: now).")

out_options = option_group(
    click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                 envvar="GPUSKEW_OUT", help="Output folder (must not be the book folder or inside it)."),
    click.option("--overwrite", is_flag=True, envvar="GPUSKEW_OVERWRITE", help="Replace outputs in an existing --out."),
)

limits_option = click.option(
    "--limits", "limits_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
    envvar="GPUSKEW_LIMITS", help="Limits file (TOML): levels, targets, bands, thresholds, hedges.")

def _history(help_text: str) -> Callable[[F], F]:
    return click.option("--history", "history", type=click.Path(file_okay=False, path_type=Path), default=None,
                        envvar="GPUSKEW_HISTORY", help=help_text)


#: --history of the commands that append to the history (run, monitor)
history_option = _history("History folder: each run is appended to it (alerts fire on transitions).")
#: --history of the commands that read it (report, calibrate)
history_read_option = _history("History folder (the one `gpuskew run --history` appends to): its runs are read, "
                               "never changed.")

strict_option = click.option(
    "--strict", is_flag=True, envvar="GPUSKEW_STRICT",
    help="Refuse (exit 2) implausible inputs and limits rules that match no group, instead of warning.")

plausibility_options = option_group(
    click.option("--max-iv", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
                 envvar="GPUSKEW_MAX_IV", help="Warn (refuse with --strict) about implied vols above this "
                                               "(annualised decimal: 5 = 500%)."),
    click.option("--max-abs-rate", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
                 envvar="GPUSKEW_MAX_ABS_RATE", help="... about |rate| or |funding_rate| above this (decimal)."),
    click.option("--max-expiry-years", type=click.FloatRange(min=0, min_open=True), default=10.0,
                 show_default=True, envvar="GPUSKEW_MAX_EXPIRY_YEARS",
                 help="... about expiries further than this many years after as_of."),
)

def _cluster_spec(_ctx: click.Context, _param: click.Parameter, value: str | None) -> str | None:
    """--cluster, checked once while the options are read (before any work): the spec without
    surrounding blanks, None for one process (nothing, '' or 'none'); a malformed spec, or a spec
    without Dask installed, is a usage error (exit 2)."""
    if value is None or str(value).strip().lower() in ("", "none"):
        return None
    import importlib.util

    from gpuskew.distributed.executor import INSTALL_ADVICE, parse_spec
    from gpuskew.errors import InvalidConfig

    spec = str(value).strip()
    try:
        parse_spec(spec)
    except InvalidConfig as exc:
        raise click.BadParameter(str(exc)) from exc
    if importlib.util.find_spec("distributed") is None:
        raise click.BadParameter(f"{spec} needs Dask, which is not installed: {INSTALL_ADVICE}")
    return spec


cluster_option = click.option(
    "--cluster", "cluster", default=None, envvar="GPUSKEW_CLUSTER", metavar="SPEC", callback=_cluster_spec,
    help="Run the work in shards on a Dask cluster: local:N (N worker processes here, one thread each), "
         "tcp://HOST:PORT (an existing scheduler) or none (one process). Needs gpuskew[distributed].")


def sweep_on(cluster: str | None) -> Any:
    """A context giving the sweep function of a job with ``--cluster`` (None without one: the job's
    own sweep in this process); gpuskew.distributed and Dask are imported only with a cluster."""
    from contextlib import nullcontext

    if cluster is None:
        return nullcontext(None)
    from gpuskew.distributed.sweep import sweep_on as on_cluster

    return on_cluster(cluster)


demo_options = option_group(
    click.option("--demo-size", type=click.IntRange(1, 200_000_000), default=20_000, show_default=True,
                 envvar="GPUSKEW_DEMO_SIZE", help="Positions in the demo book."),
    click.option("--demo-seed", type=int, default=7, show_default=True, envvar="GPUSKEW_DEMO_SEED",
                 help="Seed of the demo book."),
)


__all__ = ["config_option", "json_option", "backend_option", "group_by_option", "as_of_option", "out_options",
           "limits_option", "history_option", "history_read_option", "option_group", "strict_option",
           "plausibility_options", "demo_options", "cluster_option", "sweep_on"]
