"""Prometheus metrics for the service, in the text format at ``[metrics] listen``.

Run figures are read from history at each scrape (so they survive restarts and always match
``dbmaint history``); what maintenance watches (dead tuples, transaction-ID age, index bloat) comes
from the health samples the scheduler takes every ``[metrics] refresh``.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbmaint import __version__
from dbmaint.errors import ConfigError, StateStoreError
from dbmaint.store.history import History

log = logging.getLogger(__name__)

RUN_STATUSES = ("ok", "partial", "failed", "skipped", "interrupted", "missed", "running")
ACTION_RESULTS = ("done", "skipped", "failed", "interrupted", "proposed")

METRIC_NAMES = frozenset(
    {
        "dbmaint_last_run_start_timestamp_seconds",
        "dbmaint_last_run_duration_seconds",
        "dbmaint_last_run_status",
        "dbmaint_last_success_timestamp_seconds",
        "dbmaint_last_run_actions",
        "dbmaint_next_run_timestamp_seconds",
        "dbmaint_schedule_period_seconds",
        "dbmaint_table_dead_tuples",
        "dbmaint_oldest_xid_age",
        "dbmaint_oldest_multixact_age",
        "dbmaint_index_bloat_bytes",
        "dbmaint_index_bloat_ratio",
        "dbmaint_slow_statements",
        "dbmaint_database_up",
        "dbmaint_database_in_recovery",
        "dbmaint_health_sample_timestamp_seconds",
        "dbmaint_info",
        "dbmaint_service_start_time_seconds",
        "dbmaint_state_store_up",
    }
)


@dataclass(frozen=True)
class ScheduledJob:
    job: str
    database: str
    next_run_at: datetime | None
    period_s: float


@dataclass(frozen=True)
class IndexBloat:
    index: str
    bytes: int
    ratio: float


@dataclass
class HealthSample:
    """One database's maintenance figures at one moment; ``up`` False when it could not be read."""

    database: str
    taken_at: datetime
    up: bool
    in_recovery: bool = False
    xid_age: int | None = None
    multixact_age: int | None = None
    dead_tuples: list[tuple[str, int]] = field(default_factory=list)
    # None: not read this time (it is read less often than the rest); [] read, and nothing bloated.
    index_bloat: list[IndexBloat] | None = None


class ServiceMetrics:
    """A Prometheus collector: history, the schedule and the latest health samples, read at scrape time."""

    def __init__(self, history: History, schedule: Callable[[], Sequence[ScheduledJob]], started_at: datetime):
        self.history = history
        self.schedule = schedule
        self.started_at = started_at
        self._health: dict[str, HealthSample] = {}
        self._lock = threading.Lock()

    def update_health(self, sample: HealthSample) -> None:
        with self._lock:
            previous = self._health.get(sample.database)
            if sample.up and sample.index_bloat is None and previous is not None:
                sample.index_bloat = previous.index_bloat  # not read this time: the last reading stands
            self._health[sample.database] = sample

    def forget_databases(self, keep: set[str]) -> None:
        with self._lock:
            self._health = {name: s for name, s in self._health.items() if name in keep}

    def describe(self) -> list[Any]:
        return []  # names are not fixed in advance (they come from history); skip the registry's check

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, documentation, labels=list(labels))

        info = gauge("dbmaint_info", "dbmaint's version and host.", ("version", "host"))
        info.add_metric([__version__, socket.gethostname()], 1)
        yield info
        started = gauge("dbmaint_service_start_time_seconds", "When this service started (Unix time).")
        started.add_metric([], self.started_at.timestamp())
        yield started
        yield from self._runs(gauge)
        yield from self._scheduled(gauge)
        yield from self._health_families(gauge)

    def _runs(self, gauge: Callable[..., Any]) -> Iterator[Any]:
        store_up = gauge("dbmaint_state_store_up", "1 when the state store (history) could be read.")
        try:
            latest = self.history.latest_runs()
            successes = self.history.last_successes()
            slow = self.history.slow_counts()
        except StateStoreError as exc:
            log.warning("metrics: %s", exc)
            store_up.add_metric([], 0)
            yield store_up
            return
        store_up.add_metric([], 1)
        yield store_up
        labels = ("task", "database")  # not "job": that is Prometheus's own target label
        start = gauge("dbmaint_last_run_start_timestamp_seconds", "Start of the last run (Unix time).", labels)
        duration = gauge("dbmaint_last_run_duration_seconds", "Duration of the last finished run.", labels)
        status = gauge("dbmaint_last_run_status", "1 for the last run's status, 0 for the others.", (*labels, "status"))
        actions = gauge("dbmaint_last_run_actions", "Actions of the last run by result.", (*labels, "result"))
        success = gauge(
            "dbmaint_last_success_timestamp_seconds", "End of the last run that did its work (ok or partial).", labels
        )
        for (job, database), run in sorted(latest.items()):
            start.add_metric([job, database], run.started_at.timestamp())
            if run.duration_s is not None:
                duration.add_metric([job, database], run.duration_s)
            for name in RUN_STATUSES:
                status.add_metric([job, database, name], 1.0 if run.status == name else 0.0)
            counts = run.action_counts
            for result in ACTION_RESULTS:
                actions.add_metric([job, database, result], counts[result])
        for (job, database), when in sorted(successes.items()):
            success.add_metric([job, database], when.timestamp())
        slow_family = gauge(
            "dbmaint_slow_statements", "Slow statements recorded by the last capture pass.", ("database",)
        )
        for database, count in sorted(slow.items()):
            slow_family.add_metric([database], count)
        yield from (start, duration, status, actions, success, slow_family)

    def _scheduled(self, gauge: Callable[..., Any]) -> Iterator[Any]:
        labels = ("task", "database")
        next_run = gauge("dbmaint_next_run_timestamp_seconds", "When the job runs next (Unix time).", labels)
        period = gauge("dbmaint_schedule_period_seconds", "Longest gap between two scheduled runs of the job.", labels)
        for item in self.schedule():
            if item.next_run_at is not None:
                next_run.add_metric([item.job, item.database], item.next_run_at.timestamp())
            period.add_metric([item.job, item.database], item.period_s)
        yield from (next_run, period)

    def _health_families(self, gauge: Callable[..., Any]) -> Iterator[Any]:
        with self._lock:
            samples = sorted(self._health.values(), key=lambda s: s.database)
        db_label = ("database",)
        up = gauge("dbmaint_database_up", "1 when the last health sample could read the database.", db_label)
        recovery = gauge("dbmaint_database_in_recovery", "1 on a standby.", db_label)
        taken = gauge("dbmaint_health_sample_timestamp_seconds", "When the health figures were read.", db_label)
        xid = gauge("dbmaint_oldest_xid_age", "age(datfrozenxid) of the database: wraparound distance.", db_label)
        mxid = gauge("dbmaint_oldest_multixact_age", "mxid_age(datminmxid) of the database.", db_label)
        dead = gauge("dbmaint_table_dead_tuples", "Dead rows of the worst tables.", ("database", "table"))
        bloat = gauge(
            "dbmaint_index_bloat_bytes", "Estimated reclaimable bytes of the worst indexes.", ("database", "index")
        )
        ratio = gauge("dbmaint_index_bloat_ratio", "Estimated bloat share of the worst indexes.", ("database", "index"))
        for sample in samples:
            up.add_metric([sample.database], 1.0 if sample.up else 0.0)
            taken.add_metric([sample.database], sample.taken_at.timestamp())
            if not sample.up:
                continue
            recovery.add_metric([sample.database], 1.0 if sample.in_recovery else 0.0)
            if sample.xid_age is not None:
                xid.add_metric([sample.database], sample.xid_age)
            if sample.multixact_age is not None:
                mxid.add_metric([sample.database], sample.multixact_age)
            for table, count in sample.dead_tuples:
                dead.add_metric([sample.database, table], count)
            for item in sample.index_bloat or []:
                bloat.add_metric([sample.database, item.index], item.bytes)
                ratio.add_metric([sample.database, item.index], item.ratio)
        yield from (up, recovery, taken, xid, mxid, dead, bloat, ratio)


def serve(listen: str, collector: ServiceMetrics) -> Any:
    """Start the /metrics endpoint in a thread of its own; ``ConfigError`` when the address is unusable."""
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.platform_collector import PlatformCollector
    from prometheus_client.process_collector import ProcessCollector

    from dbmaint.config import parse_listen

    host, port = parse_listen(listen)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"metrics.listen {listen}: cannot listen there: {exc.strerror or exc}") from None
    log.info("metrics at http://%s/metrics", listen)
    return server
