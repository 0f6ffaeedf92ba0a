"""Prometheus metrics of the monitor (``/metrics``) and of a run (``gpuskew run --prom-textfile``).

Per monitored group (labels ``level``, ``underlying``, ``group``: the group's tag values as
``tag=value`` pairs joined by ``,``, empty for the per-underlying level); the series are the groups
of the adherence table, i.e. the configured grouping levels, at most ``max_groups`` of them:

* ``gpuskew_net_delta_coins``: the group's managed net delta (delta or delta_pa), coins;
* ``gpuskew_target_coins``, ``gpuskew_band_lower_coins``, ``gpuskew_band_upper_coins``: target and band
  edges, coins;
* ``gpuskew_skew_ratio``: deviation over the half-width on its side (|skew| <= 1 inside the band);
* ``gpuskew_status``: effective status as a number: 0 ok, 1 warn, 2 breach, 3 critical.

Monitor only: ``gpuskew_events_total{type}``, ``gpuskew_events_rejected_total{reason}``,
``gpuskew_event_to_publish_seconds`` (histogram: from the moment a source received an event to the end
of the publish that includes it), ``gpuskew_feed_age_seconds{source}`` (seconds since the source's
last message), ``gpuskew_last_publish_timestamp_seconds`` (Unix time), and
``gpuskew_positions{state}`` (priced | pending), ``gpuskew_adherence_score``, ``gpuskew_publishes_total``,
``gpuskew_repriced_positions_total``, ``gpuskew_journal_records_total``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Any

import pyarrow as pa

from gpuskew.schema import ADHERENCE_STATUSES

#: status -> gpuskew_status value (its rank in gpuskew.schema.ADHERENCE_STATUSES)
STATUS_VALUE = {status: rank for rank, status in enumerate(ADHERENCE_STATUSES)}
#: histogram buckets of gpuskew_event_to_publish_seconds (seconds)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
#: most group series exported (the first ones in adherence-table order)
DEFAULT_MAX_GROUPS = 2000
GROUP_LABELS = ("level", "underlying", "group")


def _import_prometheus():
    try:
        import prometheus_client
    except ImportError as exc:  # pragma: no cover - depends on the install
        from gpuskew.errors import GpuskewError

        raise GpuskewError("prometheus metrics need the monitor extra: pip install 'gpuskew[monitor]' "
                           f"({exc})") from None
    return prometheus_client


def group_label(row: Mapping[str, Any], tags: list[str]) -> str:
    """``desk=options-mm,book=btc-vol`` of a group row (its non-null tags, in table order)."""
    return ",".join(f"{t}={row[t]}" for t in tags if row.get(t) is not None)


def _finite(x: Any) -> float:
    return float(x) if x is not None and math.isfinite(float(x)) else math.nan


class GroupGauges:
    """The per-group gauges, kept in step with the adherence table (series of groups that left are
    removed)."""

    def __init__(self, registry: Any, max_groups: int = DEFAULT_MAX_GROUPS):
        pc = _import_prometheus()
        self.max_groups = max_groups
        self.net = pc.Gauge("gpuskew_net_delta_coins", "Net delta of the group in its managed measure (coins)",
                            GROUP_LABELS, registry=registry)
        self.target = pc.Gauge("gpuskew_target_coins", "Target net delta of the group (coins)", GROUP_LABELS,
                               registry=registry)
        self.lower = pc.Gauge("gpuskew_band_lower_coins", "Lower band edge (coins)", GROUP_LABELS, registry=registry)
        self.upper = pc.Gauge("gpuskew_band_upper_coins", "Upper band edge (coins)", GROUP_LABELS, registry=registry)
        self.skew = pc.Gauge("gpuskew_skew_ratio", "Deviation over the half-width on its side (|skew| <= 1 in band)",
                             GROUP_LABELS, registry=registry)
        self.status = pc.Gauge("gpuskew_status", "Effective status: 0 ok, 1 warn, 2 breach, 3 critical",
                               GROUP_LABELS, registry=registry)
        self._series: set[tuple] = set()
        self.dropped = 0

    def update(self, effective: pa.Table | None, rows: list[dict] | None = None) -> None:
        """Set the gauges from ``effective`` (``rows``: its ``to_pylist()`` when the caller has it)."""
        if effective is None:
            return
        from gpuskew.schema import ADHERENCE

        tags = ADHERENCE.tag_columns(effective)
        if rows is None:
            rows = effective.to_pylist()
        self.dropped = max(0, len(rows) - self.max_groups)
        seen = set()
        for row in rows[: self.max_groups]:
            labels = (row["level"], row["underlying"], group_label(row, tags))
            seen.add(labels)
            self.net.labels(*labels).set(_finite(row["actual"]))
            self.target.labels(*labels).set(_finite(row["target"]))
            self.lower.labels(*labels).set(_finite(row["lower"]))
            self.upper.labels(*labels).set(_finite(row["upper"]))
            self.skew.labels(*labels).set(_finite(row["skew"]))
            status = row.get("effective_status") or row.get("status")
            self.status.labels(*labels).set(STATUS_VALUE.get(status, math.nan))
        for labels in self._series - seen:
            for g in (self.net, self.target, self.lower, self.upper, self.skew, self.status):
                try:
                    g.remove(*labels)
                except KeyError:
                    pass
        self._series = seen


class MonitorMetrics:
    """Every metric of a running monitor, in its own registry."""

    def __init__(self, max_groups: int = DEFAULT_MAX_GROUPS):
        pc = _import_prometheus()
        self.pc = pc
        self.registry = pc.CollectorRegistry()
        r = self.registry
        self.groups = GroupGauges(r, max_groups)
        self.events = pc.Counter("gpuskew_events", "Events applied, by type", ("type",), registry=r)
        self.rejected = pc.Counter("gpuskew_events_rejected", "Events rejected or ignored, by reason",
                                   ("reason",), registry=r)
        self.latency = pc.Histogram("gpuskew_event_to_publish_seconds",
                                    "Seconds from an event's arrival to the end of the publish that includes it",
                                    buckets=LATENCY_BUCKETS, registry=r)
        self.feed_age = pc.Gauge("gpuskew_feed_age_seconds", "Seconds since the source's last message",
                                 ("source",), registry=r)
        self.last_publish = pc.Gauge("gpuskew_last_publish_timestamp_seconds", "Unix time of the last publish",
                                     registry=r)
        self.positions = pc.Gauge("gpuskew_positions", "Positions held: priced, or pending market data",
                                  ("state",), registry=r)
        self.score = pc.Gauge("gpuskew_adherence_score", "Portfolio adherence score in [0, 1]", registry=r)
        self.publishes = pc.Counter("gpuskew_publishes", "Publishes", registry=r)
        self.publish_errors = pc.Counter("gpuskew_publish_errors", "Publishes that failed (the last good one is "
                                         "kept; see /healthz)", registry=r)
        self.repriced = pc.Counter("gpuskew_repriced_positions", "Positions re-priced", registry=r)
        self.journal = pc.Counter("gpuskew_journal_records", "Records written to the journal", registry=r)
        self.valuation = pc.Gauge("gpuskew_valuation_timestamp_seconds", "Unix time the book is valued at",
                                  registry=r)

    def watch_source(self, source_id: str, last_message: Callable[[], float | None]) -> None:
        def age() -> float:
            t = last_message()
            return math.nan if t is None else max(0.0, time.time() - t)

        self.feed_age.labels(source_id).set_function(age)

    def render(self) -> bytes:
        return self.pc.generate_latest(self.registry)

    @property
    def content_type(self) -> str:
        return self.pc.CONTENT_TYPE_LATEST


def render_run_textfile(effective: pa.Table | None, summary: Mapping[str, Any],
                        max_groups: int = DEFAULT_MAX_GROUPS) -> str:
    """Prometheus text exposition of one run, for node_exporter's textfile collector: the per-group
    gauges, ``gpuskew_adherence_score``, ``gpuskew_positions{state="priced"}`` and
    ``gpuskew_last_run_timestamp_seconds`` (the run's as_of, Unix time)."""
    pc = _import_prometheus()
    from gpuskew.timeutil import to_utc

    registry = pc.CollectorRegistry()
    GroupGauges(registry, max_groups).update(effective)
    pc.Gauge("gpuskew_last_run_timestamp_seconds", "Valuation time (as_of) of the last run, Unix time",
             registry=registry).set(to_utc(summary["as_of"]).timestamp())
    pc.Gauge("gpuskew_positions", "Positions priced by the run", ("state",),
             registry=registry).labels("priced").set(summary["counts"]["positions"])
    if "adherence" in summary:
        pc.Gauge("gpuskew_adherence_score", "Portfolio adherence score in [0, 1]",
                 registry=registry).set(summary["adherence"]["score"])
    return pc.generate_latest(registry).decode("utf-8")


__all__ = ["STATUS_VALUE", "LATENCY_BUCKETS", "DEFAULT_MAX_GROUPS", "GroupGauges", "MonitorMetrics",
           "render_run_textfile", "group_label"]
