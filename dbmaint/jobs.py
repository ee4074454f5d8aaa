"""The use cases: one pass of a job over one database. The CLI and the scheduler both call these.

Each job follows the same path: connect, guard (primary only, one runner, server not overloaded),
collect, analyse, then act through the Executor, recording everything in history.
"""

from __future__ import annotations

import logging
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, Any

import psycopg

from dbmaint import model
from dbmaint.config import JOB_NAMES, Config, ReindexConfig, VacuumConfig
from dbmaint.errors import DatabaseError, DbmaintError
from dbmaint.maintenance import actions, reindex_analysis, vacuum_analysis
from dbmaint.model import Action, JobReport, RunStatus
from dbmaint.pg import collect, db, facts, stopping
from dbmaint.store.recorder import RunRecorder

if TYPE_CHECKING:  # the store imports SQLAlchemy: only the jobs that read history load it
    from dbmaint.store.history import History

log = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]
MIN_SERVER_VERSION = 140000


@contextmanager
def guarded(
    target: db.Target,
    config: Config,
    history: RunRecorder,
    job: str,
    *,
    dry_run: bool,
    read_only: bool = False,
    scheduled_for: datetime | None = None,
) -> Iterator[tuple[JobReport, Connection | None]]:
    """Open the job's connection and apply the safety rules that come before any action.

    Yields the report and the connection, or ``None`` for the connection when the job must not act
    (standby, another runner, overload); the report then already says why. A real run is recorded in
    history before anything else happens, so even a skip leaves a trace.
    """
    report = JobReport(database=target.name, job=job, dry_run=dry_run, scheduled_for=scheduled_for)
    if not dry_run:
        history.prune(config.state.retention)
        history.close_abandoned_runs(socket.gethostname())
        history.start_run(report, host=socket.gethostname())
    yielded = False
    try:
        with db.connection(target, config.safety) as conn:
            report.server = db.server_identity(conn)
            reason = _refusal(conn, config, job, dry_run, read_only)
            if reason is not None:
                report.skip(reason)
                yielded = True
                yield report, None
            else:
                yielded = True
                yield report, conn
                report.finish()
    except Exception as exc:
        if stopping.requested():
            # Our own cancellation (SIGTERM) surfaces wherever the job was (connecting, a query, a history
            # write): the run was interrupted.
            _end_early(report, history, "interrupted", stopping.reason())
        elif isinstance(exc, psycopg.OperationalError | DatabaseError):
            # Connection lost, or a catalog query failed (privilege, lock_timeout): this database's run
            # fails with the reason and the next database still gets its turn.
            lost = db.connection_lost(exc)
            _end_early(report, history, "failed", f"connection lost: {db.first_line(str(exc))}" if lost else str(exc))
        else:
            reason = str(exc) if isinstance(exc, DbmaintError) else f"unexpected {type(exc).__name__}: {exc}"
            _end_early(report, history, "failed", db.first_line(reason))
            raise
        if not yielded:
            # It ended before the job began (the connect itself was stopped or lost): the job sees no
            # connection and returns the report, which already says why.
            yield report, None
    except BaseException:
        _end_early(report, history, "failed", None)
        raise
    else:
        history.finish_run(report)


def _end_early(report: JobReport, history: RunRecorder, status: RunStatus, reason: str | None) -> None:
    """The run ends before its actions did: what had not run is recorded as such, then the run."""
    report.status = status
    report.reason = reason or report.reason or "interrupted by an unexpected error"
    for action in report.actions:
        if action.status in ("planned", "started"):
            action.status, action.detail = "skipped", f"not run: the job stopped early ({report.reason})"
        # Also an action that ended (done, failed) while the error came before its row was updated.
        history.finish_action(action)
    report.finish()
    history.finish_run(report)


def _refusal(conn: Connection, config: Config, job: str, dry_run: bool, read_only: bool = False) -> str | None:
    version = conn.info.server_version
    if version < MIN_SERVER_VERSION:
        return f"unsupported: PostgreSQL {version // 10000} (dbmaint needs 14 or later)"
    if db.is_in_recovery(conn):
        # A read-only job (capture) is as useful on a standby, which serves queries of its own.
        return None if read_only else "standby"
    if dry_run:
        return None  # a dry run changes nothing, so it neither takes the lock nor waits for a quiet server
    if not actions.try_job_lock(conn, job):
        return f"another dbmaint {job} run holds the lock on this database"
    return actions.load_reason(conn, config.safety)


def vacuum(
    target: db.Target,
    config: Config,
    history: RunRecorder,
    *,
    dry_run: bool = False,
    scheduled_for: datetime | None = None,
) -> JobReport:
    """One need-based VACUUM ANALYZE pass over ``target``."""
    settings = config.vacuum
    with guarded(target, config, history, "vacuum", dry_run=dry_run, scheduled_for=scheduled_for) as (report, conn):
        if conn is None:
            return report
        plans = vacuum_analysis.plan(collect.vacuum_tables(conn), collect.autovacuum_settings(conn), settings)
        report.actions = [
            Action(
                object=p.table.qualified_name,
                statement=vacuum_analysis.statement(p, conn.info.server_version),
                reason=p.reason,
                kind="vacuum" if p.vacuum else "analyze",
                relid=p.table.relid,
                size_before=p.table.size_bytes,
                detail=None,
            )
            for p in plans
        ]
        for action, table_plan in zip(report.actions, plans, strict=True):
            if not table_plan.table.can_maintain:
                # Work that is needed and cannot be done: the run says so (partial or skipped), never ok.
                action.status = "skipped"
                action.detail = (
                    "insufficient privilege: only its owner, the database owner or a superuser may vacuum it"
                )
        database_stats = vacuum_analysis.database_stats_statement(plans, conn.info.server_version)
        if database_stats is not None:
            report.actions.append(
                Action(
                    object=target.name,
                    statement=database_stats,
                    reason="advance the database's frozen XID once, after the tables",
                    kind="database_stats",
                )
            )
        dead_before = {p.table.relid: p.table.n_dead_tup for p in plans}
        if dry_run:
            return report
        planned = _record_skips(history, report)
        if not planned:
            return report
        watch = DeadRowsWatch(history, dead_before)
        _executor(target, config, report, history, settings, jobs=settings.jobs, after=watch.after).run(conn, planned)
        watch.read(conn)  # the last ones
        if watch.kept:
            report.warnings.append(_xmin_warning(conn, watch.kept))
    return report


def _executor(
    target: db.Target,
    config: Config,
    report: JobReport,
    history: RunRecorder,
    settings: VacuumConfig | ReindexConfig,
    *,
    jobs: int = 1,
    after: Callable[[Connection, Action], None] | None = None,
) -> actions.Executor:
    """The job's executor: its window opened at the scheduled time (now, for a run by hand); its retries
    are the job's own settings. A scheduled run that starts late keeps only what is left of its window."""
    late = (model.now() - report.scheduled_for).total_seconds() if report.scheduled_for is not None else 0.0
    return actions.Executor(
        target, config.safety, report, history,
        window=actions.Window.starting_now(settings.window - max(0.0, late), settings.grace),
        retries=settings.retries, retry_delay=settings.retry_delay, jobs=jobs, after=after,
    )  # fmt: skip


def _record_skips(history: RunRecorder, report: JobReport) -> list[Action]:
    """Record the actions decided against before any statement runs; return the ones to run."""
    for action in report.actions:
        if action.status == "skipped":
            history.record_skipped(report, action)
    return [a for a in report.actions if a.status == "planned"]


class DeadRowsWatch:
    """What VACUUM could not remove, held back by the xmin horizon: read in one query for the tables
    vacuumed since the last reading, at most once a second, not one query per table. Soon enough after
    each VACUUM that traffic has not filled a table again (a long pass reads after each long VACUUM);
    once for a quick pass of many small tables. The actions concerned say so in history."""

    READ_EVERY_S = 1.0

    def __init__(self, history: RunRecorder, dead_before: dict[int, int]) -> None:
        self.history = history
        self.dead_before = dead_before
        self.kept: list[str] = []
        self._waiting: list[Action] = []
        self._read_at = time.monotonic()
        self._lock = threading.Lock()  # the executor's workers call after() side by side

    def after(self, conn: Connection, action: Action) -> None:
        """The executor's hook, on the connection that ran the action."""
        if action.status == "done" and action.kind == "vacuum" and action.relid is not None:
            with self._lock:
                self._waiting.append(action)
        if time.monotonic() - self._read_at >= self.READ_EVERY_S:
            self.read(conn)

    def read(self, conn: Connection) -> None:
        with self._lock:
            batch, self._waiting, self._read_at = self._waiting, [], time.monotonic()
        remaining = collect.dead_tuples(conn, [a.relid for a in batch if a.relid is not None])
        for action in batch:
            left, before = remaining.get(action.relid or 0, 0), self.dead_before.get(action.relid or 0, 0)
            if left > 0 and left >= 0.2 * before:
                action.detail = f"{left:,} dead rows could not be removed yet (still visible to an old snapshot)"
                self.history.finish_action(action)
                with self._lock:
                    self.kept.append(action.object)


def _xmin_warning(conn: Connection, tables: list[str]) -> str:
    holders = collect.xmin_holders(conn)
    names = ", ".join(tables[:5]) + (f" and {len(tables) - 5} more" if len(tables) > 5 else "")
    if not holders:
        return f"dead rows remain in {names}; nothing visible holds back the xmin horizon now"
    return f"dead rows remain in {names}: the xmin horizon is held back by {holders[0].describe()}"


def reindex(
    target: db.Target,
    config: Config,
    history: History,
    *,
    dry_run: bool = False,
    scheduled_for: datetime | None = None,
) -> JobReport:
    """One REINDEX CONCURRENTLY pass over bloated indexes, after dropping failed-build leftovers."""
    settings = config.reindex
    with guarded(target, config, history, "reindex", dry_run=dry_run, scheduled_for=scheduled_for) as (report, conn):
        if conn is None:
            return report
        to_drop, report.findings = reindex_analysis.leftovers(collect.invalid_indexes(conn))
        indexes = collect.index_bloat_inputs(conn)
        decisions = reindex_analysis.decide(
            indexes,
            settings,
            exact=_exact_bloat(conn, indexes, settings),
            last_rebuilt=history.last_done(
                target.name, "reindex", [i.qualified_name for i in indexes], server=report.server
            ),
            free_bytes=_free_disk(conn),
            now=model.now(),
        )
        report.actions = [_drop_action(index) for index in to_drop]
        for decision in decisions:
            index = decision.index
            action = Action(
                object=index.qualified_name,
                statement=reindex_analysis.reindex_statement(index),
                reason=decision.reason,
                kind="reindex",
                relid=index.table_oid,
                size_before=index.size_bytes,
                identity=(index.schema, index.name),
            )
            if not decision.rebuild:
                action.status, action.detail, action.decided = "skipped", decision.blocker, True
            report.actions.append(action)
        rebuilds = [a for a in report.actions if a.kind == "reindex" and a.status == "planned"]
        waiting_for = _old_transaction(conn, config) if rebuilds else None
        if waiting_for is not None:  # a dry run says it too: it is what the real run would do now
            for action in rebuilds:
                action.status, action.detail = "skipped", waiting_for
        if dry_run:
            return report
        planned = _record_skips(history, report)
        if not planned:
            return report
        executor = _executor(target, config, report, history, settings, after=_record_size_after)
        executor.run(conn, planned)
        # A REINDEX CONCURRENTLY that failed, was cancelled or gave up on a lock leaves an invalid _ccnew
        # index behind, even when a retry then succeeded: drop those now (if the drop cannot get its lock
        # either, the next run will).
        failed_tables = {a.relid for a in planned if a.kind == "reindex" and (a.status != "done" or a.attempts > 1)}
        cleanup = [
            _drop_action(index)
            for table_oid in failed_tables
            for index in reindex_analysis.leftovers(collect.invalid_indexes(conn, table_oid))[0]
        ]
        report.actions.extend(cleanup)
        executor.run(conn, cleanup)
    return report


# A transaction open this long will likely outlast lock_timeout too (an idle-in-transaction session, a report).
OLD_TRANSACTION_S = 60.0


def _old_transaction(conn: Connection, config: Config) -> str | None:
    """Why no REINDEX CONCURRENTLY can finish now, or None. Each one waits, after building its new index, for
    the transactions of this database older than it to end; one open for minutes outlasts lock_timeout, and
    every rebuild (and retry) would build its index in full, then throw it away."""
    threshold = max(OLD_TRANSACTION_S, config.safety.lock_timeout)
    for holder in collect.xmin_holders(conn):
        if holder.kind == "session" and holder.held_s is not None and holder.held_s >= threshold:
            return (
                f"REINDEX CONCURRENTLY would wait for {holder.describe()}, a transaction open for "
                f"{holder.held_s:,.0f} s, longer than lock_timeout: left for the next run"
            )
    return None


def _drop_action(index: facts.InvalidIndex) -> Action:
    return Action(
        object=index.qualified_name,
        statement=reindex_analysis.drop_statement(index),
        reason=f"invalid leftover of a failed REINDEX CONCURRENTLY on {index.table_name}",
        kind="drop_invalid",
        relid=index.table_oid,
        size_before=index.size_bytes,
    )


def _record_size_after(conn: Connection, action: Action) -> None:
    if action.kind == "reindex" and action.status == "done":
        assert action.identity is not None
        action.size_after = collect.index_size(conn, *action.identity)
    elif action.kind == "drop_invalid" and action.status == "done":
        action.size_after = 0


def _exact_bloat(
    conn: Connection, indexes: list[facts.IndexStats], settings: ReindexConfig
) -> dict[int, reindex_analysis.Bloat]:
    """pgstattuple's exact figure for the btree indexes that may be candidates, when it is installed."""
    schema = collect.extension_schema(conn, "pgstattuple") if settings.use_pgstattuple else None
    if schema is None:
        return {}
    exact = {}
    for index in indexes:
        if index.method != "btree" or index.size_bytes < settings.min_size or not index.is_valid:
            continue
        estimate = reindex_analysis.estimate_bloat(index)
        if estimate is not None and estimate.ratio < settings.min_bloat_ratio / 2:
            continue  # clearly healthy: not worth reading the whole index
        pages = collect.index_pages(conn, schema, index.index_oid)
        if pages is not None:
            exact[index.index_oid] = reindex_analysis.bloat_from_pages(index, pages)
    return exact


def _free_disk(conn: Connection) -> dict[int, int]:
    """Free bytes per tablespace, known only when the server runs on this host and its paths are visible."""
    host = conn.info.host
    if not (host.startswith("/") or host in ("localhost", "127.0.0.1", "::1")):
        return {}
    free = {}
    for oid, path in collect.tablespace_paths(conn).items():
        try:
            free[oid] = shutil.disk_usage(path).free
        except OSError:
            continue
    return free


def capture(target: db.Target, config: Config, history: History, *, scheduled_for: datetime | None = None) -> Any:
    """One slow-query capture pass (read-only: it runs on standbys too, for their own queries)."""
    from dbmaint.capture import slow_statements

    guard = guarded(target, config, history, "capture", dry_run=False, read_only=True, scheduled_for=scheduled_for)
    with guard as (report, conn):
        if conn is None:
            return slow_statements.CaptureReport(report)
        return slow_statements.run(conn, report, config, history)
    return slow_statements.CaptureReport(report)  # the pass ended early (lost connection, stop): the report says why


def advisor(target: db.Target, config: Config, history: History, *, scheduled_for: datetime | None = None) -> JobReport:
    """The periodic index advice from the real workload (pg_stat_statements), kept in history.

    Each recommended index becomes a 'proposed' action holding its CREATE INDEX CONCURRENTLY, and each
    finding a line of the run's warnings. Nothing is created here: indexes reach production through a
    reviewed migration (``dbmaint advise --write-migration``). Primary only, like the other jobs: a
    standby's statistics describe its own read traffic, and one node's advice is enough.
    """
    from psycopg import sql

    from dbmaint.advisor import recommend

    with guarded(target, config, history, "advisor", dry_run=False, scheduled_for=scheduled_for) as (report, conn):
        if conn is None:
            return report
        advice = recommend.advise(conn, target.name, config, recommend.Sources())
        report.warnings = [*advice.notes, *(f"{f.kind.replace('_', ' ')}: {f.detail}" for f in advice.findings)]
        for recommendation in advice.recommendations:
            action = Action(
                object=recommendation.table,
                statement=sql.Composed([sql.SQL(recommendation.definition)]),
                reason=recommendation.reason,
                kind="create_index",
                status="proposed",
                detail="proposed: not created by the service (dbmaint advise --write-migration writes it)",
                size_after=recommendation.estimated_size_bytes,
            )
            report.actions.append(action)
            history.record_skipped(report, action)
    return report


# Each job's use case, by the name config.toml's [schedule] and history know it by.
USE_CASES: dict[str, Callable[..., Any]] = {
    "vacuum": vacuum,
    "reindex": reindex,
    "capture": capture,
    "advisor": advisor,
}
assert tuple(USE_CASES) == JOB_NAMES
