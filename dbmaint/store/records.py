"""What the state store gives back: runs, the service's schedule state and liveness, captured plans."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any


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
