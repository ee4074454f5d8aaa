"""The state store: every run and every action, recorded before it acts; the service's state and slow-query
capture beside them (``service_state``, ``capture``); ``base`` holds the connection and its retries."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from dbmaint.model import Action, JobReport, now
from dbmaint.store.capture import CaptureStore
from dbmaint.store.health import HealthStore, prune_health
from dbmaint.store.records import RunRecord, _aware
from dbmaint.store.schema import actions, plans, runs, samples, statements
from dbmaint.store.service_state import ServiceState

log = logging.getLogger(__name__)


class History(ServiceState, CaptureStore, HealthStore):
    """Thread-safe: parallel vacuum workers record their actions through one store."""

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

    def runs_since(self, since: datetime, database: str | None = None) -> list[RunRecord]:
        """Every run started since ``since`` (of one database, or all), newest first."""
        conditions = [runs.c.started_at >= since]
        if database:
            conditions.append(runs.c.database == database)
        return self._runs(conditions, None)

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
                prune_health(conn, cutoff)
                return int(conn.execute(runs.delete().where(runs.c.started_at < cutoff)).rowcount or 0)

        with self._lock:
            return int(self._housekeeping(lambda: self._with_retries(delete), "old runs not pruned") or 0)
