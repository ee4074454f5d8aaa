"""The state store: every run and every action, recorded before it acts (SQLAlchemy; SQLite or PostgreSQL).

A store that is busy (another writer holds SQLite's lock) or briefly away does not stop maintenance: the
records of a run are written in order, and while the store cannot take them they wait in memory and go
in with the next write that succeeds; only a run's end insists (``StoreBusy`` retried, then
``StateStoreError``)."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from dbmaint.errors import ConfigError, StateStoreDataError, StateStoreError
from dbmaint.model import Action, JobReport, now

log = logging.getLogger(__name__)

# SQLite waits this long for another writer's lock before a write fails: longer than any plausible
# writer (Python's default is 5 s, shorter than a `dbmaint history` export or a backup's lock).
SQLITE_BUSY_TIMEOUT_S = 60.0
# A failed write is tried again after these pauses (a PostgreSQL store restarting, a lock just missed).
WRITE_RETRY_DELAYS_S = (0.5, 2.0, 5.0)
# Records a service keeps in memory while its store answers reads but refuses writes (a read-only or full
# disk): months of nightly runs. Past it the service stops rather than drop one.
MAX_HELD_RECORDS = 100_000
HELD_RECORDS_LOGGED_EVERY = 100


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Aware datetimes stored as UTC: SQLite keeps no offset, so a time in another zone (APScheduler hands
    back times in the configured zone) would otherwise be read back hours off."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("dbmaint stores aware datetimes only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return _aware(value)


metadata = sa.MetaData()

runs = sa.Table(
    "dbmaint_runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(32), nullable=False),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("finished_at", UTCDateTime()),
    sa.Column("host", sa.String(255)),
    sa.Column("warnings", sa.Text),
    # The scheduled time a service run answers (NULL for runs by hand): a restart must never run it twice.
    sa.Column("scheduled_for", UTCDateTime()),
    # The process that ran it: a run left running by a process that is gone is closed as interrupted.
    sa.Column("pid", sa.Integer),
    # The PostgreSQL server it ran on (pg_control_system()'s system_identifier): two clusters with a
    # database of the same name never share a history (nor reindex's min_interval).
    sa.Column("server", sa.String(32)),
    sa.Index("dbmaint_runs_job_database_started", "job", "database", "started_at"),
)

# Columns added after the first release: added in place to an older store (create_all only makes tables).
_ADDED_COLUMNS = {"dbmaint_runs": ["scheduled_for", "pid", "server"]}

# The service's schedule, per host: each job's next due time survives a restart, so a run the host was
# down for is still run (within the misfire grace) or recorded as missed, and never run twice.
schedules = sa.Table(
    "dbmaint_schedules",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("job", sa.String(32), primary_key=True),
    sa.Column("database", sa.String(128), primary_key=True),
    sa.Column("schedule", sa.String(128), nullable=False),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("next_run_at", UTCDateTime()),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
)

# One row per host running the service: `dbmaint status` tells a live service from a stopped one.
services = sa.Table(
    "dbmaint_services",
    metadata,
    sa.Column("host", sa.String(255), primary_key=True),
    sa.Column("pid", sa.Integer, nullable=False),
    sa.Column("version", sa.String(32), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("heartbeat_at", UTCDateTime(), nullable=False),
    sa.Column("stopped_at", UTCDateTime()),
)

actions = sa.Table(
    "dbmaint_actions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dbmaint_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("object", sa.Text, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("statement", sa.Text, nullable=False),
    sa.Column("reason", sa.Text),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("duration_s", sa.Float),
    sa.Column("detail", sa.Text),
    sa.Column("size_before", sa.BigInteger),
    sa.Column("size_after", sa.BigInteger),
    sa.Index("dbmaint_actions_run", "run_id"),
    sa.Index("dbmaint_actions_object", "object", "kind"),
)


# Slow-query capture: the statements, their counters per pass, and their plans over time.
statements = sa.Table(
    "dbmaint_statements",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("queryid", sa.BigInteger, nullable=False),
    sa.Column("fingerprint", sa.String(64)),
    sa.Column("query", sa.Text, nullable=False),
    sa.Column("first_seen", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    # pg_stat_statements' cumulative counters at the last pass: the next pass's deltas start here.
    sa.Column("last_calls", sa.BigInteger, nullable=False, default=0),
    sa.Column("last_total_ms", sa.Float, nullable=False, default=0.0),
    sa.UniqueConstraint("database", "queryid", name="dbmaint_statements_database_queryid"),
)

samples = sa.Table(
    "dbmaint_statement_samples",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dbmaint_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("queryid", sa.BigInteger, nullable=False),
    sa.Column("captured_at", UTCDateTime(), nullable=False),
    sa.Column("calls", sa.BigInteger, nullable=False),  # since the previous pass
    sa.Column("total_ms", sa.Float, nullable=False),
    sa.Column("mean_ms", sa.Float, nullable=False),
    sa.Column("cumulative_mean_ms", sa.Float, nullable=False),
    sa.Index("dbmaint_samples_statement", "database", "queryid", "captured_at"),
)

plans = sa.Table(
    "dbmaint_plans",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("dbmaint_runs.id", ondelete="CASCADE"), nullable=False),
    sa.Column("database", sa.String(128), nullable=False),
    sa.Column("queryid", sa.BigInteger, nullable=False),
    sa.Column("captured_at", UTCDateTime(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),  # generic, analyze, auto_explain
    sa.Column("signature", sa.String(64), nullable=False),
    sa.Column("total_cost", sa.Float, nullable=False),
    sa.Column("execution_ms", sa.Float),
    sa.Column("plan", sa.Text, nullable=False),  # PostgreSQL's JSON
    sa.Column("problems", sa.Text, nullable=False),  # JSON list
    sa.Column("regression", sa.Text),  # why this plan is a regression, if it is
    sa.Index("dbmaint_plans_statement", "database", "queryid", "captured_at"),
)


@dataclass(frozen=True)
class Counters:
    queryid: int
    last_calls: int
    last_total_ms: float


@dataclass(frozen=True)
class PlanRecord:
    queryid: int
    captured_at: datetime
    source: str
    signature: str
    total_cost: float
    execution_ms: float | None
    plan: str
    problems: str
    regression: str | None


@dataclass(frozen=True)
class RunRecord:
    id: int
    job: str
    database: str
    status: str
    reason: str | None
    started_at: datetime
    finished_at: datetime | None
    host: str | None
    warnings: str | None
    done: int
    skipped: int
    failed: int
    interrupted: int = 0
    proposed: int = 0
    scheduled_for: datetime | None = None
    server: str | None = None

    @property
    def action_counts(self) -> dict[str, int]:
        """The run's actions by how they ended."""
        return {
            "done": self.done,
            "skipped": self.skipped,
            "failed": self.failed,
            "interrupted": self.interrupted,
            "proposed": self.proposed,
        }

    @property
    def duration_s(self) -> float | None:
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "job": self.job,
            "database": self.database,
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "scheduled_for": self.scheduled_for.isoformat() if self.scheduled_for else None,
            "host": self.host,
            "server": self.server,
            "actions": self.action_counts,
        }


@dataclass(frozen=True)
class ScheduleState:
    job: str
    database: str
    schedule: str
    timezone: str
    next_run_at: datetime | None


@dataclass(frozen=True)
class ServiceRecord:
    host: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None


def _aware(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything dbmaint stores is UTC.
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class History:
    """Thread-safe: parallel vacuum workers record their actions through one store."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        # A run's records not yet written (the store was busy or away), oldest first.
        self._pending: list[Callable[[sa.Connection], Callable[[], None] | None]] = []
        self._abandoned_closed = False
        # The service's mode: a run's last record the store refuses while it still answers reads waits in
        # memory for the next write, instead of failing (a command by hand fails and says so).
        self.hold_refused_writes = False
        try:
            parsed = make_url(url)
            sqlite_file = parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:")
            if sqlite_file:
                Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
            if parsed.drivername in ("postgresql", "postgres"):
                parsed = parsed.set(drivername="postgresql+psycopg")
            # pre_ping: a PostgreSQL store that restarted costs a reconnect, not a failed write.
            options: dict[str, Any] = {"pool_pre_ping": True}
            if parsed.drivername.startswith("sqlite"):
                options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
            if sqlite_file:
                # A SQLite file opened per transaction (microseconds): an open handle between them would
                # keep the service's disk from being remounted read-only, and hold a file a DBA removed.
                # (An in-memory store lives only as long as its one connection: it keeps the default pool.)
                options["poolclass"] = NullPool
            self.engine = sa.create_engine(parsed, future=True, **options)
            self._with_retries(self._create_tables, "open")
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"invalid state store URL {_masked(url)}: {exc}") from None
        except (ImportError, NoSuchModuleError):  # mysql://, oracle://: no driver, and not supported anyway
            raise ConfigError(
                f"unsupported state store URL {_masked(url)}: use sqlite:///PATH or postgresql://..."
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            raise StateStoreError(f"cannot open the state store {_masked(url)}: {_short(exc)}") from None

    def _write(self, statement: Any) -> Any:
        with self._lock:
            return self._with_retries(lambda: self._execute(statement))

    def _execute(self, statement: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(statement)

    def _create_tables(self) -> None:
        metadata.create_all(self.engine)
        _add_missing_columns(self.engine)

    def _with_retries(self, work: Callable[[], Any], what: str = "write to") -> Any:
        for delay in (*WRITE_RETRY_DELAYS_S, None):
            try:
                return work()
            except (IntegrityError, DataError) as exc:  # the data, not the store: trying again cannot help
                raise _refused(self.url, exc) from None
            except SQLAlchemyError as exc:
                if delay is None or _read_only(exc):
                    raise StateStoreError(f"cannot {what} the state store {_masked(self.url)}: {_short(exc)}") from None
                log.warning("state store %s: %s; trying again in %g s", _masked(self.url), _short(exc), delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _record(self, op: Callable[[sa.Connection], Callable[[], None] | None], *, final: bool = False) -> None:
        """Write one of a run's records after those still waiting, each in a transaction of its own.

        ``op`` runs in the transaction and may return what to do once it committed (keep an inserted id).
        When the store cannot take it (busy past its timeout, away), it waits in memory with the others
        and goes in with the next record; a run's last record (``final``) is retried, then fails.
        """
        with self._lock:
            self._pending.append(op)
            try:
                (self._with_retries if final else _once)(self._flush_pending)
            except (SQLAlchemyError, StateStoreError) as exc:
                holding = self.hold_refused_writes and len(self._pending) <= MAX_HELD_RECORDS
                if final and holding and self.answers_reads():
                    log.error(
                        "state store %s answers but refuses writes (%s): %d record(s) kept in memory, written "
                        "as soon as it takes them", _masked(self.url), _short(exc), len(self._pending),
                    )  # fmt: skip
                    return
                if final:
                    raise StateStoreError(
                        f"cannot write to the state store {_masked(self.url)}: {_short(exc)} "
                        f"({len(self._pending)} record(s) of this run not written)"
                    ) from None
                held = len(self._pending)
                if held == 1 or held % HELD_RECORDS_LOGGED_EVERY == 0:  # a pass over 500 tables: not 1,000 lines
                    log.warning(
                        "state store %s cannot take records now (%s): %d kept in memory, written with the next",
                        _masked(self.url), _short(exc), held,
                    )  # fmt: skip

    def answers_reads(self) -> bool:
        """Whether the store is there at all: a store that reads but refuses writes (a read-only or full
        disk) may take them again, one that does not answer is lost."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(runs.c.id).limit(1)).all()
        except SQLAlchemyError:
            return False
        return True

    @property
    def held_records(self) -> int:
        return len(self._pending)

    def settle(self) -> None:
        """Every record still waiting in memory is written now (retried, then ``StateStoreError``)."""
        self._record(lambda conn: None, final=True)

    def _flush_pending(self) -> None:
        while self._pending:
            with self.engine.begin() as conn:
                committed = self._pending[0](conn)
            self._pending.pop(0)
            if committed is not None:
                committed()

    def start_run(self, report: JobReport, host: str | None = None) -> int | None:
        values = {
            "job": report.job,
            "database": report.database,
            "status": "running",
            "started_at": report.started_at,
            "host": host,
            "scheduled_for": report.scheduled_for,
            "pid": os.getpid(),
        }

        def insert(conn: sa.Connection) -> Callable[[], None]:
            key = conn.execute(runs.insert().values(**values)).inserted_primary_key
            assert key is not None
            run_id = int(key[0])
            return lambda: setattr(report, "run_id", run_id)

        report.recorded = True
        self._record(insert)
        return report.run_id

    def finish_run(self, report: JobReport) -> None:
        if not report.recorded:
            return
        values = {
            "status": report.status,
            "reason": report.reason,
            "finished_at": report.finished_at or now(),
            "warnings": "\n".join(report.warnings) or None,
            "server": report.server,
        }

        def update(conn: sa.Connection) -> None:
            conn.execute(runs.update().where(runs.c.id == report.run_id).values(**values))

        self._record(update, final=True)

    def start_action(self, report: JobReport, action: Action) -> None:
        """Recorded as 'started' before the statement is sent, so a crash leaves a trace."""
        if not report.recorded:
            return
        values = {
            "object": action.object,
            "kind": action.kind,
            "statement": action.sql,
            "reason": action.reason,
            "status": "started",
            "started_at": now(),
            "size_before": action.size_before,
        }

        def insert(conn: sa.Connection) -> Callable[[], None]:
            key = conn.execute(actions.insert().values(run_id=report.run_id, **values)).inserted_primary_key
            assert key is not None
            action_id = int(key[0])
            return lambda: setattr(action, "history_id", action_id)

        action.recorded = True
        self._record(insert)

    def finish_action(self, action: Action) -> None:
        if not action.recorded:
            return
        values = {
            "status": action.status,
            "duration_s": action.duration_s,
            "detail": action.detail,
            "size_before": action.size_before,
            "size_after": action.size_after,
        }

        def update(conn: sa.Connection) -> None:
            conn.execute(actions.update().where(actions.c.id == action.history_id).values(**values))

        self._record(update)

    def close_abandoned_runs(self, host: str) -> int:
        """Runs of this host still marked running whose process is gone (killed, the host rebooted):
        closed as interrupted, their started actions too. Once per store object; a live process's run is
        left alone."""
        if self._abandoned_closed:
            return 0
        self._abandoned_closed = True
        rows = self._read(
            sa.select(runs.c.id, runs.c.pid).where(
                runs.c.host == host, runs.c.status == "running", runs.c.pid.is_not(None)
            )
        )
        gone = [run_id for run_id, pid in rows if not _dbmaint_alive(int(pid))]
        if not gone:
            return 0
        reason = "the dbmaint process running it ended without recording the end (killed, or the host restarted)"

        def close() -> bool:
            self._write(
                runs.update().where(runs.c.id.in_(gone)).values(status="interrupted", reason=reason, finished_at=now())
            )
            self._write(
                actions.update()
                .where(actions.c.run_id.in_(gone), actions.c.status == "started")
                .values(status="interrupted", detail=reason)
            )
            return True

        if not self._housekeeping(close, "runs left running by a gone process not closed yet"):
            self._abandoned_closed = False  # the next run tries again
            return 0
        log.warning("%d run(s) left running by a dbmaint process that is gone: recorded as interrupted", len(gone))
        return len(gone)

    def record_skipped(self, report: JobReport, action: Action) -> None:
        """An action settled without running (window closed, deferred, only proposed) still leaves its line."""
        self.start_action(report, action)
        self.finish_action(action)

    def last_done(self, database: str, kind: str, objects: list[str], server: str | None = None) -> dict[str, datetime]:
        """When each object last had a successful action of this kind (on this server, when known: runs
        recorded before servers were, count for any)."""
        if not objects:
            return {}
        same_server = sa.true() if server is None else sa.or_(runs.c.server == server, runs.c.server.is_(None))
        query = (
            sa.select(actions.c.object, sa.func.max(actions.c.started_at))
            .join(runs, runs.c.id == actions.c.run_id)
            .where(runs.c.database == database, actions.c.kind == kind, actions.c.status == "done", same_server)
            .where(actions.c.object.in_(objects))
            .group_by(actions.c.object)
        )
        return {obj: _aware(when) for obj, when in self._read(query) if when is not None}  # type: ignore[misc]

    def recent_runs(self, *, limit: int = 20, job: str | None = None, database: str | None = None) -> list[RunRecord]:
        conditions = [runs.c.job == job] if job else []
        if database:
            conditions.append(runs.c.database == database)
        return self._runs(conditions, limit)

    def latest_runs(self) -> dict[tuple[str, str], RunRecord]:
        """The last run of each (job, database)."""
        latest = sa.select(sa.func.max(runs.c.id)).group_by(runs.c.job, runs.c.database)
        return {(r.job, r.database): r for r in self._runs([runs.c.id.in_(latest.scalar_subquery())], None)}

    def last_successes(self) -> dict[tuple[str, str], datetime]:
        """When each (job, database) last finished a run that did its work (ok, or partial)."""
        query = (
            sa.select(runs.c.job, runs.c.database, sa.func.max(runs.c.finished_at))
            .where(runs.c.status.in_(("ok", "partial")))
            .group_by(runs.c.job, runs.c.database)
        )
        rows = self._read(query)
        return {(job, database): _aware(when) for job, database, when in rows if when is not None}  # type: ignore[misc]

    def _read(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query).all())
        except SQLAlchemyError as exc:
            raise StateStoreError(f"cannot read the state store {_masked(self.url)}: {_short(exc)}") from None

    def _runs(self, conditions: list[Any], limit: int | None) -> list[RunRecord]:
        counts = (
            sa.select(
                actions.c.run_id,
                sa.func.sum(sa.case((actions.c.status == "done", 1), else_=0)).label("done"),
                sa.func.sum(sa.case((actions.c.status == "skipped", 1), else_=0)).label("skipped"),
                sa.func.sum(sa.case((actions.c.status == "failed", 1), else_=0)).label("failed"),
                sa.func.sum(sa.case((actions.c.status == "interrupted", 1), else_=0)).label("interrupted"),
                sa.func.sum(sa.case((actions.c.status == "proposed", 1), else_=0)).label("proposed"),
            )
            .group_by(actions.c.run_id)
            .subquery()
        )
        query = sa.select(
            runs, counts.c.done, counts.c.skipped, counts.c.failed, counts.c.interrupted, counts.c.proposed
        ).outerjoin(counts, counts.c.run_id == runs.c.id)
        query = query.where(*conditions).order_by(runs.c.started_at.desc(), runs.c.id.desc()).limit(limit)
        return [
            RunRecord(
                id=r.id,
                job=r.job,
                database=r.database,
                status=r.status,
                reason=r.reason,
                started_at=_aware(r.started_at) or now(),
                finished_at=_aware(r.finished_at),
                host=r.host,
                warnings=r.warnings,
                done=int(r.done or 0),
                skipped=int(r.skipped or 0),
                failed=int(r.failed or 0),
                interrupted=int(r.interrupted or 0),
                proposed=int(r.proposed or 0),
                scheduled_for=_aware(r.scheduled_for),
                server=r.server,
            )
            for r in self._read(query)
        ]

    # --- the service: schedule state, missed and interrupted runs, liveness ---------------------------

    def schedule_states(self, host: str) -> dict[tuple[str, str], ScheduleState]:
        rows = self._read(sa.select(schedules).where(schedules.c.host == host))
        return {
            (r.job, r.database): ScheduleState(r.job, r.database, r.schedule, r.timezone, _aware(r.next_run_at))
            for r in rows
        }

    def save_schedule(self, host: str, state: ScheduleState) -> None:
        """Upsert one job's schedule and next due time (delete + insert: portable across SQLite and PostgreSQL)."""
        key = (schedules.c.host == host, schedules.c.job == state.job, schedules.c.database == state.database)
        values = {
            "host": host,
            "job": state.job,
            "database": state.database,
            "schedule": state.schedule,
            "timezone": state.timezone,
            "next_run_at": state.next_run_at,
            "updated_at": now(),
        }

        def upsert(conn: sa.Connection) -> None:
            conn.execute(schedules.delete().where(*key))
            conn.execute(schedules.insert().values(**values))

        self._record(upsert, final=True)

    def forget_schedules(self, host: str, keep: set[tuple[str, str]]) -> None:
        """Drop the schedule rows of jobs no longer configured on this host."""
        for job, database in set(self.schedule_states(host)) - keep:
            self._write(
                schedules.delete().where(
                    schedules.c.host == host, schedules.c.job == job, schedules.c.database == database
                )
            )

    def has_run(self, host: str, job: str, database: str, scheduled_for: datetime) -> bool:
        """Whether this host already answered this due time (a restart must not run it again); another host's
        run (a standby's skip, in a shared store) does not count. Nor does an interrupted run: the service
        takes it up again when it is back within the misfire grace."""
        query = (
            sa.select(runs.c.id)
            .where(runs.c.host == host, runs.c.job == job, runs.c.database == database)
            .where(runs.c.scheduled_for == scheduled_for, runs.c.status != "interrupted")
            .limit(1)
        )
        return bool(self._read(query))

    def last_interrupted(self, host: str) -> dict[tuple[str, str], datetime]:
        """Per (job, database): the due time of this host's latest service run, where that run was interrupted."""
        latest = (
            sa.select(runs.c.job, runs.c.database, sa.func.max(runs.c.scheduled_for).label("due"))
            .where(runs.c.host == host, runs.c.scheduled_for.is_not(None))
            .group_by(runs.c.job, runs.c.database)
            .subquery()
        )
        query = sa.select(runs.c.job, runs.c.database, runs.c.scheduled_for).join(
            latest,
            sa.and_(
                runs.c.job == latest.c.job, runs.c.database == latest.c.database, runs.c.scheduled_for == latest.c.due
            ),
        )
        other = runs.alias("answered")
        answered = sa.select(other.c.id).where(
            other.c.host == host,
            other.c.job == runs.c.job,
            other.c.database == runs.c.database,
            other.c.scheduled_for == runs.c.scheduled_for,
            other.c.status != "interrupted",
        )
        # Interrupted, and not taken up since (a resumed run shares the due time).
        query = query.where(runs.c.host == host, runs.c.status == "interrupted", ~answered.exists())
        return {(job, database): _aware(due) for job, database, due in self._read(query) if due is not None}  # type: ignore[misc]

    def record_not_run(
        self, job: str, database: str, status: str, reason: str, scheduled_for: datetime, host: str
    ) -> int | None:
        """A scheduled run that did not happen (missed, or skipped because the last one is still going):
        a run row of its own, so history and alerts show the gap. Its id, or None while it waits in memory."""
        when = now()
        row = runs.insert().values(
            job=job,
            database=database,
            status=status,
            reason=reason,
            started_at=when,
            finished_at=when,
            host=host,
            scheduled_for=scheduled_for,
        )
        written: list[int] = []

        def insert(conn: sa.Connection) -> None:
            key = conn.execute(row).inserted_primary_key
            assert key is not None
            written.append(int(key[0]))

        self._record(insert, final=True)
        return written[0] if written else None

    def interrupt_running(self, host: str, since: datetime, reason: str) -> int:
        """Runs this service started that are still marked running when it must exit: say why they ended.
        Service runs are the ones with a due time: a `dbmaint vacuum` by hand on the same host is left alone."""
        ours = (runs.c.host == host, runs.c.started_at >= since, runs.c.scheduled_for.is_not(None))
        result = self._write(
            runs.update()
            .where(*ours, runs.c.status == "running")
            .values(status="interrupted", reason=reason, finished_at=now())
        )
        self._write(
            actions.update()
            .where(actions.c.status == "started")
            .where(actions.c.run_id.in_(sa.select(runs.c.id).where(*ours)))
            .values(status="interrupted", detail=reason)
        )
        return int(result.rowcount or 0)

    def service_started(self, host: str, pid: int, version: str) -> datetime:
        started = now()
        self._write(services.delete().where(services.c.host == host))
        self._write(
            services.insert().values(host=host, pid=pid, version=version, started_at=started, heartbeat_at=started)
        )
        return started

    def heartbeat(self, host: str, pid: int) -> None:
        self._write(services.update().where(services.c.host == host, services.c.pid == pid).values(heartbeat_at=now()))

    def service_stopped(self, host: str, pid: int) -> None:
        self._write(services.update().where(services.c.host == host, services.c.pid == pid).values(stopped_at=now()))

    def services(self) -> list[ServiceRecord]:
        return [
            ServiceRecord(
                r.host,
                r.pid,
                r.version,
                _aware(r.started_at) or now(),
                _aware(r.heartbeat_at) or now(),
                _aware(r.stopped_at),
            )
            for r in self._read(sa.select(services).order_by(services.c.host))
        ]

    def slow_counts(self) -> dict[str, int]:
        """Per database: how many slow statements the last finished capture pass recorded."""
        last = (
            sa.select(sa.func.max(runs.c.id))
            .where(runs.c.job == "capture", runs.c.status.in_(("ok", "partial")))
            .group_by(runs.c.database)
        )
        query = (
            sa.select(runs.c.database, sa.func.count(samples.c.id))
            .select_from(runs.outerjoin(samples, samples.c.run_id == runs.c.id))
            .where(runs.c.id.in_(last.scalar_subquery()))
            .group_by(runs.c.database)
        )
        return {database: int(count) for database, count in self._read(query)}

    def run(self, run_id: int) -> RunRecord | None:
        found = self._runs([runs.c.id == run_id], 1)
        return found[0] if found else None

    def run_actions(self, run_id: int) -> list[dict[str, Any]]:
        query = sa.select(actions).where(actions.c.run_id == run_id).order_by(actions.c.id)
        return [dict(row._mapping) for row in self._read(query)]

    def prune(self, retention_s: float) -> int:
        """Delete runs (and their actions) older than the retention period; returns how many runs went."""
        cutoff = now() - timedelta(seconds=retention_s)
        old = sa.select(runs.c.id).where(runs.c.started_at < cutoff)

        def delete() -> int:
            with self.engine.begin() as conn:
                conn.execute(actions.delete().where(actions.c.run_id.in_(old)))
                conn.execute(samples.delete().where(samples.c.run_id.in_(old)))
                conn.execute(plans.delete().where(plans.c.run_id.in_(old)))
                conn.execute(statements.delete().where(statements.c.last_seen < cutoff))
                return int(conn.execute(runs.delete().where(runs.c.started_at < cutoff)).rowcount or 0)

        with self._lock:
            return int(self._housekeeping(lambda: self._with_retries(delete), "old runs not pruned") or 0)

    def _housekeeping(self, work: Callable[[], Any], skipped: str) -> Any:
        """Upkeep the run does not depend on: a service whose store refuses writes but answers goes on
        without it (the next run does it), anything else raises."""
        try:
            return work()
        except StateStoreError as exc:
            if not (self.hold_refused_writes and self.answers_reads()):
                raise
            log.warning("%s: %s", skipped, exc)
            return None

    # --- slow-query capture ---------------------------------------------------------------------------

    def counters(self, database: str) -> dict[int, Counters]:
        query = sa.select(statements.c.queryid, statements.c.last_calls, statements.c.last_total_ms).where(
            statements.c.database == database
        )
        return {row.queryid: Counters(row.queryid, row.last_calls, row.last_total_ms) for row in self._read(query)}

    def save_counters(
        self, database: str, known: Mapping[int, Counters], seen: list[dict[str, Any]], when: datetime
    ) -> None:
        """Upsert every statement's cumulative counters in one transaction (thousands per pass); ``known`` is
        what ``counters`` returned at the start of the pass. Unchanged counters are not rewritten."""
        new = [row for row in seen if row["queryid"] not in known]
        old = [
            row
            for row in seen
            if row["queryid"] in known
            and (known[row["queryid"]].last_calls, known[row["queryid"]].last_total_ms)
            != (row["last_calls"], row["last_total_ms"])
        ]
        with self._lock:
            try:
                with self.engine.begin() as conn:
                    if new:
                        conn.execute(
                            statements.insert(),
                            [{**row, "database": database, "first_seen": when, "last_seen": when} for row in new],
                        )
                    if old:
                        conn.execute(
                            statements.update()
                            .where(statements.c.database == database, statements.c.queryid == sa.bindparam("qid"))
                            .values(
                                last_calls=sa.bindparam("last_calls"),
                                last_total_ms=sa.bindparam("last_total_ms"),
                                last_seen=when,
                                query=sa.bindparam("query_text"),
                            ),
                            [
                                {
                                    "qid": r["queryid"],
                                    "last_calls": r["last_calls"],
                                    "last_total_ms": r["last_total_ms"],
                                    "query_text": r["query"],
                                }
                                for r in old
                            ],
                        )
            except (IntegrityError, DataError) as exc:
                raise _refused(self.url, exc) from None
            except SQLAlchemyError as exc:
                raise StateStoreError(f"cannot write to the state store {_masked(self.url)}: {_short(exc)}") from None

    def add_sample(self, run_id: int, database: str, sample: dict[str, Any]) -> None:
        self._write(samples.insert().values(run_id=run_id, database=database, **sample))

    def add_plan(self, run_id: int, database: str, plan: dict[str, Any]) -> None:
        self._write(plans.insert().values(run_id=run_id, database=database, **plan))

    def captured_text(self, database: str, queryid: int) -> str | None:
        """The text of a captured statement, as pg_stat_statements gave it."""
        query = sa.select(statements.c.query).where(statements.c.database == database, statements.c.queryid == queryid)
        with self._reading(), self.engine.connect() as conn:
            text: str | None = conn.execute(query).scalar()
        return text

    @contextlib.contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except SQLAlchemyError as exc:
            raise StateStoreError(f"cannot read the state store {_masked(self.url)}: {_short(exc)}") from None

    def latest_plan(self, database: str, queryid: int) -> PlanRecord | None:
        query = (
            sa.select(plans)
            .where(plans.c.database == database, plans.c.queryid == queryid)
            .order_by(plans.c.captured_at.desc(), plans.c.id.desc())
            .limit(1)
        )
        with self._reading(), self.engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        return PlanRecord(
            row.queryid,
            _aware(row.captured_at) or now(),
            row.source,
            row.signature,
            row.total_cost,
            row.execution_ms,
            row.plan,
            row.problems,
            row.regression,
        )

    def slow_statements(self, database: str | None, limit: int) -> list[dict[str, Any]]:
        """Captured statements, worst first (by the latest pass's mean time), with their latest plan."""
        latest_sample = (
            sa.select(samples.c.database, samples.c.queryid, sa.func.max(samples.c.id).label("sample_id"))
            .group_by(samples.c.database, samples.c.queryid)
            .subquery()
        )
        query = (
            sa.select(
                statements,
                samples.c.captured_at,
                samples.c.calls,
                samples.c.mean_ms,
                samples.c.cumulative_mean_ms,
                samples.c.total_ms,
            )
            .join(
                latest_sample,
                sa.and_(
                    latest_sample.c.database == statements.c.database, latest_sample.c.queryid == statements.c.queryid
                ),
            )
            .join(samples, samples.c.id == latest_sample.c.sample_id)
            .order_by(samples.c.mean_ms.desc())
            .limit(limit)
        )
        if database:
            query = query.where(statements.c.database == database)
        with self.engine.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        for row in rows:
            plan = self.latest_plan(row["database"], row["queryid"])
            row["plan"] = plan
            row["captured_at"] = _aware(row["captured_at"])
        return rows

    def close(self) -> None:
        self.engine.dispose()


def _once(work: Callable[[], Any]) -> Any:
    return work()


def _dbmaint_alive(pid: int) -> bool:
    """Whether ``pid`` is a running dbmaint process (a pid reused by another program is not)."""
    if pid == os.getpid():
        return True
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return b"dbmaint" in cmdline.read()
    except FileNotFoundError:
        return False
    except OSError:
        return True  # cannot tell (another user's process, no /proc): leave the run alone


def _add_missing_columns(engine: sa.Engine) -> None:
    inspector = sa.inspect(engine)
    for table_name, names in _ADDED_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table_name)}
        table = metadata.tables[table_name]
        for name in names:
            if name not in present:
                column = table.c[name]
                kind = column.type.compile(dialect=engine.dialect)
                # IF NOT EXISTS (PostgreSQL): two services upgrading one store at once must both start.
                guard = "IF NOT EXISTS " if engine.dialect.name == "postgresql" else ""
                with engine.begin() as conn:
                    conn.execute(sa.text(f"ALTER TABLE {table_name} ADD COLUMN {guard}{name} {kind}"))


def masked_url(url: str) -> str:
    """The state store URL with its password hidden."""
    return _masked(url)


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _refused(url: str, exc: BaseException) -> StateStoreDataError:
    return StateStoreDataError(f"the state store {_masked(url)} refused this run's data: {_short(exc)}")


def _read_only(exc: SQLAlchemyError) -> bool:
    """A store that refuses writes for good (a read-only disk, a PostgreSQL store now a standby): waiting
    seconds for it, as for a busy one, cannot help."""
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlite_errorname", None) == "SQLITE_READONLY" or (
        getattr(original, "sqlstate", None) == "25006"  # read_only_sql_transaction
    )


def _short(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
