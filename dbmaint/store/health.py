"""Health samples in the state store, and the reads over a period that ``dbmaint report`` charts.

The service writes one health sample an hour per database (``dbmaint.service.health_history``): the
database's transaction-ID and multixact ages and the worst few tables and indexes of that moment, a bounded
number of rows that the runs' retention prunes. Beside them, what the report reads over its period from
the rest of history: the index rebuilds with their sizes, and the slow statements' figures per capture pass.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa

from dbmaint.store.base import Store
from dbmaint.store.records import _aware
from dbmaint.store.schema import actions, health_samples, runs, samples, statements

HEALTH_KINDS = ("database", "table", "index")


@dataclass(frozen=True)
class HealthFigure:
    """One row of a sample: the database itself, a table or an index; a figure it does not have is None."""

    kind: str  # one of HEALTH_KINDS
    object: str  # schema.name; the database's name for its own row
    xid_age: int | None = None
    mxid_age: int | None = None
    dead_tuples: int | None = None
    live_tuples: int | None = None
    size_bytes: int | None = None
    bloat_bytes: int | None = None  # indexes: estimated reclaimable bytes
    bloat_ratio: float | None = None


@dataclass(frozen=True)
class HealthReading:
    """One sample of one database: every figure taken at that moment."""

    database: str
    sampled_at: datetime
    figures: tuple[HealthFigure, ...]


@dataclass(frozen=True)
class Rebuild:
    """A REINDEX action of history, with the index's size before and after (None where it failed)."""

    run_id: int
    started_at: datetime
    index: str
    status: str
    size_before: int | None
    size_after: int | None
    duration_s: float | None


@dataclass(frozen=True)
class StatementSample:
    """A slow statement's figures in one capture pass (since the previous pass)."""

    queryid: int
    query: str | None  # None once the statement itself was pruned
    captured_at: datetime
    calls: int
    mean_ms: float
    total_ms: float


class HealthStore(Store):
    def record_health(self, database: str, sampled_at: datetime, figures: Sequence[HealthFigure]) -> None:
        """One sample: every figure in one transaction (a chart never shows half a sample)."""
        rows = [{"database": database, "sampled_at": sampled_at, **asdict(figure)} for figure in figures]
        if not rows:
            return

        def insert() -> None:
            with self.engine.begin() as conn:
                conn.execute(health_samples.insert(), rows)  # executemany: no limit on bound variables

        with self._lock:
            self._with_retries(insert)

    def last_health_sample(self, database: str) -> datetime | None:
        query = sa.select(sa.func.max(health_samples.c.sampled_at)).where(health_samples.c.database == database)
        rows = self._read(query)
        return _aware(rows[0][0]) if rows else None

    def health_readings(self, database: str, since: datetime) -> list[HealthReading]:
        """The samples of ``database`` since ``since``, oldest first."""
        query = (
            sa.select(health_samples)
            .where(health_samples.c.database == database, health_samples.c.sampled_at >= since)
            .order_by(health_samples.c.sampled_at, health_samples.c.id)
        )
        readings: list[HealthReading] = []
        current: list[HealthFigure] = []
        when: datetime | None = None
        for row in self._read(query):
            sampled_at = _aware(row.sampled_at)
            assert sampled_at is not None
            if when is not None and sampled_at != when:
                readings.append(HealthReading(database, when, tuple(current)))
                current = []
            when = sampled_at
            current.append(
                HealthFigure(
                    kind=row.kind,
                    object=row.object,
                    xid_age=row.xid_age,
                    mxid_age=row.mxid_age,
                    dead_tuples=row.dead_tuples,
                    live_tuples=row.live_tuples,
                    size_bytes=row.size_bytes,
                    bloat_bytes=row.bloat_bytes,
                    bloat_ratio=row.bloat_ratio,
                )
            )
        if when is not None:
            readings.append(HealthReading(database, when, tuple(current)))
        return readings

    def rebuilds(self, database: str, since: datetime) -> list[Rebuild]:
        """The REINDEX actions on ``database`` since ``since``, oldest first."""
        query = (
            sa.select(
                actions.c.run_id,
                actions.c.started_at,
                actions.c.object,
                actions.c.status,
                actions.c.size_before,
                actions.c.size_after,
                actions.c.duration_s,
            )
            .join(runs, runs.c.id == actions.c.run_id)
            .where(runs.c.database == database, actions.c.kind == "reindex", actions.c.started_at >= since)
            .order_by(actions.c.started_at, actions.c.id)
        )
        return [
            Rebuild(
                int(r.run_id),
                _aware(r.started_at) or since,
                r.object,
                r.status,
                r.size_before,
                r.size_after,
                r.duration_s,
            )
            for r in self._read(query)
        ]

    def statement_samples(self, database: str, since: datetime, top: int) -> list[StatementSample]:
        """Per capture pass since ``since``, the figures of the ``top`` statements that took the most time
        in the period, oldest first."""
        in_period = (samples.c.database == database, samples.c.captured_at >= since)
        worst = (
            sa.select(samples.c.queryid)
            .where(*in_period)
            .group_by(samples.c.queryid)
            .order_by(sa.func.sum(samples.c.total_ms).desc(), samples.c.queryid)
            .limit(top)
        )
        query = (
            sa.select(
                samples.c.queryid,
                statements.c.query,
                samples.c.captured_at,
                samples.c.calls,
                samples.c.mean_ms,
                samples.c.total_ms,
            )
            .outerjoin(
                statements,
                sa.and_(statements.c.database == samples.c.database, statements.c.queryid == samples.c.queryid),
            )
            .where(*in_period, samples.c.queryid.in_(worst.scalar_subquery()))
            .order_by(samples.c.captured_at, samples.c.id)
        )
        return [
            StatementSample(
                int(r.queryid),
                r.query,
                _aware(r.captured_at) or since,
                int(r.calls),
                float(r.mean_ms),
                float(r.total_ms),
            )
            for r in self._read(query)
        ]


def prune_health(conn: sa.Connection, cutoff: datetime) -> None:
    """Samples older than the retention go with the runs of their time."""
    conn.execute(health_samples.delete().where(health_samples.c.sampled_at < cutoff))
