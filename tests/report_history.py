"""A state store with weeks of history, made through the History API as the jobs and the service make it.

For ``dbmaint report``'s tests and its README screenshot: per database a daily vacuum, a weekly reindex with
sizes before and after, a capture pass every 15 minutes with its slow statements, a weekly advisor run with a
recommendation and findings, an hourly health sample; one vacuum run that failed, one partial. Names with
markup in them (a table, a statement) check that the page shows them as text. The clock the store reads is
the generator's, so every record carries its own time.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from unittest import mock

from psycopg import sql

from dbmaint.model import Action, JobReport, RunStatus
from dbmaint.store.health import HealthFigure
from dbmaint.store.history import History

HOSTILE_TABLE = "public.\"</script><script>document.title='pwned'</script>\""
HOSTILE_QUERY = "SELECT * FROM events WHERE payload = '</script><img src=x onerror=alert(1)>'"
STATEMENTS = {
    1001: "SELECT * FROM orders WHERE customer_id = $1 ORDER BY created_at DESC LIMIT $2",
    1002: "UPDATE stock SET quantity = quantity - $1 WHERE sku = $2",
    1003: HOSTILE_QUERY,
}
TABLES = ("public.orders", "public.order_items", "public.stock", HOSTILE_TABLE)
INDEXES = {"public.orders_pkey": 180_000_000, "public.order_items_order_id_idx": 90_000_000}
FAILED_VACUUM_REASON = "connection lost: terminating connection due to administrator command"


@dataclass
class Made:
    """What was recorded, per database: for the tests to compare the page with."""

    runs: dict[str, int] = field(default_factory=dict)
    failed_runs: dict[str, int] = field(default_factory=dict)
    last_xid_age: dict[str, int] = field(default_factory=dict)
    health_samples: dict[str, int] = field(default_factory=dict)
    rebuilds: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)  # index, before, after
    capture_passes: dict[str, int] = field(default_factory=dict)
    recommendation: str = ""


class Clock:
    def __init__(self, start: datetime) -> None:
        self.at = start

    def __call__(self) -> datetime:
        return self.at


@contextmanager
def store_clock(clock: Clock) -> Iterator[None]:
    """The store stamps actions with its own now(): here, the generator's."""
    with mock.patch("dbmaint.store.history.now", clock):
        yield


def generate(
    history: History, databases: tuple[str, ...] = ("app", "sales"), *, days: int = 16, until: datetime | None = None
) -> Made:
    until = until or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = until - timedelta(days=days)
    made = Made()
    clock = Clock(start)
    with store_clock(clock):
        for position, database in enumerate(databases):
            _database(history, database, position, start, until, clock, made)
    return made


def _database(
    history: History, database: str, position: int, start: datetime, until: datetime, clock: Clock, made: Made
) -> None:
    rng = random.Random(position + 7)
    made.runs[database] = made.failed_runs[database] = made.health_samples[database] = 0
    made.capture_passes[database] = 0
    made.rebuilds[database] = []
    sizes = {name: size * (1 + position) for name, size in INDEXES.items()}
    counters = {queryid: (0, 0.0) for queryid in STATEMENTS}
    xid_base = 40_000_000 * (position + 1)
    moment = start
    day = 0
    while moment < until:
        # An hourly health sample: dead rows pile up through the day, the ages climb until the vacuum.
        hours_since_vacuum = (moment.hour - 3) % 24
        xid_age = xid_base + int((moment - start).total_seconds() // 3600) * 90_000
        figures = [HealthFigure("database", database, xid_age=xid_age, mxid_age=xid_age // 20)]
        for number, table in enumerate(TABLES):
            figures.append(
                HealthFigure(
                    "table",
                    table,
                    xid_age=xid_age - number * 2_000_000,
                    mxid_age=1_000 * number,
                    dead_tuples=(number + 1) * 4_000 * hours_since_vacuum + rng.randrange(500),
                    live_tuples=1_000_000 // (number + 1),
                    size_bytes=200_000_000 // (number + 1),
                )
            )
        for index, size in sizes.items():
            figures.append(
                HealthFigure("index", index, size_bytes=size, bloat_bytes=size // 3, bloat_ratio=round(1 / 3, 4))
            )
        clock.at = moment
        history.record_health(database, moment, figures)
        made.health_samples[database] += 1
        made.last_xid_age[database] = xid_age
        for quarter in range(4):  # capture every 15 minutes
            _capture(history, database, moment + timedelta(minutes=15 * quarter, seconds=2), counters, rng, clock)
            made.runs[database] += 1
            made.capture_passes[database] += 1
        if moment.hour == 3:
            failed = _vacuum(history, database, moment, day, position, rng, clock)
            made.runs[database] += 1
            made.failed_runs[database] += failed
        if moment.hour == 4 and day % 7 == 3:
            for index, before, after in _reindex(history, database, moment, sizes, clock):
                made.rebuilds[database].append((index, before, after))
            made.runs[database] += 1
        if moment.hour == 5 and day % 7 == 4:
            made.recommendation = _advisor(history, database, moment, clock)
            made.runs[database] += 1
        for index in sizes:  # indexes bloat as the week goes on
            sizes[index] = int(sizes[index] * 1.002)
        moment += timedelta(hours=1)
        if moment.hour == 0:
            day += 1


def _run(history: History, database: str, job: str, started: datetime, clock: Clock) -> JobReport:
    clock.at = started
    report = JobReport(database=database, job=job, started_at=started, scheduled_for=started)
    history.start_run(report, host="db1")
    return report


def _end(
    history: History, report: JobReport, finished: datetime, clock: Clock, status: RunStatus | None = None
) -> None:
    clock.at = finished
    report.finished_at = finished
    report.status = status or ("ok" if all(a.status in ("done", "proposed") for a in report.actions) else "partial")
    history.finish_run(report)


def _action(history: History, report: JobReport, obj: str, kind: str, statement: str, **values: object) -> Action:
    action = Action(object=obj, statement=sql.Composed([sql.SQL(statement)]), reason="needed", kind=kind)
    for name, value in values.items():
        setattr(action, name, value)
    history.start_action(report, action)
    return action


def _capture(
    history: History,
    database: str,
    when: datetime,
    counters: dict[int, tuple[int, float]],
    rng: random.Random,
    clock: Clock,
) -> None:
    report = _run(history, database, "capture", when, clock)
    known = history.counters(database)
    passes: list[dict[str, object]] = []
    seen = []
    for queryid, text in STATEMENTS.items():
        calls = rng.randrange(20, 400) * (1 + (queryid % 3))
        mean = (150.0 + 40 * (queryid % 5)) * (1 + 0.5 * (when.hour in (9, 10, 11, 14, 15)))
        total_calls, total_ms = counters[queryid]
        counters[queryid] = (total_calls + calls, total_ms + calls * mean)
        seen.append(
            {"queryid": queryid, "query": text, "last_calls": counters[queryid][0],
             "last_total_ms": counters[queryid][1], "fingerprint": None}
        )  # fmt: skip
        passes.append(
            {"queryid": queryid, "captured_at": when, "calls": calls, "total_ms": calls * mean, "mean_ms": mean,
             "cumulative_mean_ms": counters[queryid][1] / counters[queryid][0]}
        )  # fmt: skip
    history.save_counters(database, known, seen, when)
    history.settle()
    assert report.run_id is not None
    for sample in passes:
        history.add_sample(report.run_id, database, sample)
    _end(history, report, when + timedelta(seconds=1 + rng.random() * 2), clock)


def _vacuum(
    history: History, database: str, moment: datetime, day: int, position: int, rng: random.Random, clock: Clock
) -> int:
    report = _run(history, database, "vacuum", moment, clock)
    if day == 5 + position:  # the server restarted under this one
        report.reason = FAILED_VACUUM_REASON
        _end(history, report, moment + timedelta(seconds=12), clock, status="failed")
        return 1
    elapsed = 0.0
    for number, table in enumerate(TABLES):
        clock.at = moment + timedelta(seconds=elapsed)
        action = _action(history, report, table, "vacuum", f"VACUUM (ANALYZE, SKIP_LOCKED) {table}")
        report.actions.append(action)
        action.duration_s = 20 + rng.random() * 60 + number * 10
        elapsed += action.duration_s
        action.status = "failed" if (day == 9 and number == 1) else "done"
        action.detail = "canceling statement due to lock timeout" if action.status == "failed" else None
        history.finish_action(action)
    _end(history, report, moment + timedelta(seconds=elapsed + 1), clock)
    return 0


def _reindex(
    history: History, database: str, moment: datetime, sizes: dict[str, int], clock: Clock
) -> list[tuple[str, int, int]]:
    report = _run(history, database, "reindex", moment, clock)
    done = []
    elapsed = 0.0
    for index, before in sizes.items():
        clock.at = moment + timedelta(seconds=elapsed)
        action = _action(history, report, index, "reindex", f"REINDEX INDEX CONCURRENTLY {index}", size_before=before)
        report.actions.append(action)
        after = int(before * 0.62)
        action.status, action.size_after, action.duration_s = "done", after, 300.0 + before / 1_000_000
        elapsed += action.duration_s
        history.finish_action(action)
        sizes[index] = after
        done.append((index, before, after))
    _end(history, report, moment + timedelta(seconds=elapsed + 1), clock)
    return done


def _advisor(history: History, database: str, moment: datetime, clock: Clock) -> str:
    report = _run(history, database, "advisor", moment, clock)
    statement = "CREATE INDEX CONCURRENTLY orders_customer_id_created_at_idx ON public.orders (customer_id, created_at)"
    action = Action(
        object="public.orders", statement=sql.Composed([sql.SQL(statement)]),
        reason="2 statements filter orders by customer_id and read the newest first", kind="create_index",
        status="proposed", detail="proposed: not created by the service", size_after=41_000_000,
    )  # fmt: skip
    report.actions.append(action)
    history.record_skipped(report, action)
    report.warnings = ["unindexed foreign key: public.order_items (order_id) references public.orders"]
    _end(history, report, moment + timedelta(seconds=95), clock)
    return statement
