"""The service's state in the store: schedules and next due times, missed and interrupted runs, liveness."""

from __future__ import annotations

import logging
import os
from datetime import datetime

import sqlalchemy as sa

from dbmaint.model import now
from dbmaint.store.base import Store
from dbmaint.store.records import ScheduleState, ServiceRecord, _aware
from dbmaint.store.schema import actions, runs, schedules, services

log = logging.getLogger(__name__)


class ServiceState(Store):
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
