"""`dbmaint status`: for each job and database, what ran last, when it last did its work, and what is next;
and whether the service is running (its heartbeat in the state store)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dbmaint.config import JOB_NAMES, Config
from dbmaint.model import now
from dbmaint.service.schedule import next_fire_time, parse_cron
from dbmaint.store.history import History
from dbmaint.store.records import RunRecord, ServiceRecord

# The service writes its heartbeat every 30 s: three missed beats and it is taken for gone.
ALIVE_WITHIN = timedelta(seconds=90)


@dataclass(frozen=True)
class JobStatus:
    job: str
    database: str
    enabled: bool
    schedule: str
    timezone: str
    last: RunRecord | None
    last_success: datetime | None
    next_run_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "database": self.database,
            "enabled": self.enabled,
            "schedule": self.schedule,
            "timezone": self.timezone,
            "last_run": self.last.to_json() if self.last else None,
            "last_success": _iso(self.last_success),
            "next_run": _iso(self.next_run_at),
        }


@dataclass(frozen=True)
class ServiceStatus:
    record: ServiceRecord
    running: bool

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "host": r.host,
            "running": self.running,
            "pid": r.pid,
            "version": r.version,
            "started_at": _iso(r.started_at),
            "heartbeat_at": _iso(r.heartbeat_at),
            "stopped_at": _iso(r.stopped_at),
        }


@dataclass(frozen=True)
class StatusReport:
    services: list[ServiceStatus]
    jobs: list[JobStatus]
    scheduling_here: bool = False  # a service on this host runs: the next times are its own

    def to_json(self) -> dict[str, Any]:
        return {"services": [s.to_json() for s in self.services], "jobs": [j.to_json() for j in self.jobs]}


def process_alive(pid: int) -> bool:
    """Whether ``pid`` is a dbmaint process on this host (after a crash the pid may belong to another one)."""
    try:
        return b"dbmaint" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:  # no /proc, or not readable: existence is what can be known
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def service_running(record: ServiceRecord, host: str, moment: datetime) -> bool:
    """Not stopped, heartbeat recent, and (on this host, where it can be checked) the process alive."""
    if record.stopped_at is not None or moment - record.heartbeat_at > ALIVE_WITHIN:
        return False
    return record.host != host or process_alive(record.pid)


def gather(config: Config, databases: list[str], history: History, host: str) -> StatusReport:
    moment = now()
    services = [ServiceStatus(record, service_running(record, host, moment)) for record in history.services()]
    here_running = any(s.running and s.record.host == host for s in services)
    latest = history.latest_runs()
    successes = history.last_successes()
    states = history.schedule_states(host)
    jobs = []
    for job in JOB_NAMES:
        section = getattr(config, job)
        spec = parse_cron(section.schedule)
        for database in databases:
            state = states.get((job, database))
            if not section.enabled:
                next_run: datetime | None = None
            elif (
                here_running
                and state is not None
                and (state.schedule, state.timezone) == (spec.text, config.timezone)
                and state.next_run_at is not None
            ):
                next_run = state.next_run_at  # the service's own bookkeeping
            else:
                next_run = next_fire_time(spec, config.timezone, moment)
            jobs.append(
                JobStatus(
                    job,
                    database,
                    section.enabled,
                    spec.text,
                    config.timezone,
                    latest.get((job, database)),
                    successes.get((job, database)),
                    next_run,
                )
            )
    return StatusReport(services, jobs, here_running)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
