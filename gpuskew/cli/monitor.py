"""``gpuskew monitor``: keep a book resident, apply fills and ticks as they arrive, publish adherence live.

Start-up: the latest snapshot in --state (else BOOK_DIR) plus a replay of the journal after it.
Then events from every --source are journaled (fsynced before they are acknowledged), applied and
published: /metrics, /api/state and the dashboard with --http, --alerts-out, --publish, --history.
SIGUSR1 writes --snapshot-out; SIGTERM/SIGINT stop cleanly. With --until-drained the command ends
once every source is drained (after a final publish and --snapshot-out); --json then prints one
line summarising the session. Needs the monitor extra: pip install 'gpuskew[monitor]'.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from gpuskew.cli.common import command, emit_json, handle_errors, log
from gpuskew.cli.options import (backend_option, config_option, group_by_option, history_option, json_option,
                                 limits_option)


@command()
@click.argument("book_dir", type=click.Path(file_okay=False, path_type=Path))
@limits_option
@group_by_option
@click.option("--source", "sources", multiple=True, envvar="GPUSKEW_MONITOR_SOURCE",
              help="Event source, repeatable: file:PATH (JSON Lines), nats://HOST:PORT/SUBJECT[?stream=NAME] "
                   "(JetStream durable consumer), deribit-ws://HOST:PORT[?currency=BTC,ETH&desk=...].")
@click.option("--state", "state_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              envvar="GPUSKEW_MONITOR_STATE", help="State folder: journal, snapshots, dead letters, alert state.")
@click.option("--http", "http", default=None, envvar="GPUSKEW_MONITOR_HTTP",
              help="Serve the dashboard, /metrics, /api/state and /healthz on HOST:PORT (port 0: any free port).")
@history_option
@click.option("--alerts-out", "alerts_out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_MONITOR_ALERTS_OUT", help="Append every alert to this JSON Lines file.")
@backend_option
@click.option("--clock", type=click.Choice(["event", "wall"]), default="event", show_default=True,
              envvar="GPUSKEW_MONITOR_CLOCK",
              help="Valuation clock: the latest event time (replays, tests) or the wall clock (live).")
@click.option("--until-drained", is_flag=True, help="Stop once every source is drained (end of file; nothing "
                                                    "pending on the bus for 2 s), after a final publish.")
@click.option("--snapshot-out", "snapshot_out", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="GPUSKEW_MONITOR_SNAPSHOT_OUT",
              help="On SIGUSR1 and at the end with --until-drained: write DIR/book (the state as a book) and "
                   "DIR/run (what `gpuskew run` writes for it).")
@click.option("--replay-speed", default="max", show_default=True, envvar="GPUSKEW_MONITOR_REPLAY_SPEED",
              help="file: sources: 'max', or N times real time by the events' ts (1 = real time).")
@click.option("--publish", "publish", default=None, envvar="GPUSKEW_MONITOR_PUBLISH",
              help="nats://HOST:PORT/PREFIX: send alerts, hedge proposals and adherence per underlying.")
@click.option("--as-of", "as_of", default=None, envvar="GPUSKEW_AS_OF",
              help="Initial valuation time of a new state (default: the first event's ts; now with --clock wall).")
@click.option("--time-step", "time_step", type=click.FloatRange(min=0), default=60.0, show_default=True,
              envvar="GPUSKEW_MONITOR_TIME_STEP",
              help="Seconds the clock may run ahead of the valuation time before every dated position is "
                   "re-priced at the clock's time (expired contracts then drop out).")
@click.option("--snapshot-every", "snapshot_every", type=click.FloatRange(min=1), default=300.0, show_default=True,
              envvar="GPUSKEW_MONITOR_SNAPSHOT_EVERY", help="Seconds between state snapshots (journal pruned).")
@click.option("--history-every", "history_every", type=click.FloatRange(min=0), default=60.0, show_default=True,
              envvar="GPUSKEW_MONITOR_HISTORY_EVERY", help="Seconds between runs appended to --history.")
@click.option("--max-batch", "max_batch", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              envvar="GPUSKEW_MONITOR_MAX_BATCH", help="Most events coalesced into one publish.")
@click.option("--max-metric-groups", "max_metric_groups", type=click.IntRange(1, 1_000_000), default=2000,
              show_default=True, help="Most groups exported as /metrics series.")
@json_option
@config_option
@handle_errors
def monitor(book_dir: Path, limits_path: Path | None, group_by: tuple[str, ...], sources: tuple[str, ...],
            state_dir: Path, http: str | None, history: Path | None, alerts_out: Path | None, backend: str, clock: str,
            until_drained: bool, snapshot_out: Path | None, replay_speed: str, publish: str | None, as_of: str | None,
            time_step: float, snapshot_every: float, history_every: float, max_batch: int, max_metric_groups: int,
            as_json: bool) -> None:
    """Monitor a book live: fills and ticks in, adherence, alerts and hedges out."""
    if limits_path is None:
        raise click.UsageError("--limits is required")
    if not sources:
        raise click.UsageError("give at least one --source")
    # numba's OpenMP threads spin-wait between kernel launches by default; a monitor launches small
    # kernels many times a second next to its own event loop: let idle threads sleep
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import asyncio

    from gpuskew.monitor.service import Monitor, MonitorConfig
    from gpuskew.monitor.sources import parse_replay_speed

    parse_replay_speed(replay_speed)
    if as_of is not None:
        from gpuskew.timeutil import to_utc

        as_of = to_utc(as_of, source="--as-of").isoformat()
    config = MonitorConfig(book_dir=book_dir, limits_path=limits_path, sources=list(sources), state_dir=state_dir,
                           group_by=tuple(group_by), http=http, history=history, alerts_out=alerts_out,
                           backend=backend, clock=clock, until_drained=until_drained, snapshot_out=snapshot_out,
                           replay_speed=replay_speed, publish=publish, as_of=as_of, time_step_s=time_step,
                           snapshot_every_s=snapshot_every, history_every_s=history_every, max_batch=max_batch,
                           max_metric_groups=max_metric_groups)
    summary = asyncio.run(Monitor(config, log=log).run())
    log(f"monitor stopped: {summary['publishes']:,} publishes, events {summary['events']}, "
        f"rejected {summary['rejected']}; state in {state_dir}")
    if as_json:
        emit_json(summary)
