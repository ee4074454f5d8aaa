"""Slow-query capture in the store: the counters of the last pass, samples, plans, the slowest statements."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import DataError, IntegrityError, SQLAlchemyError

from dbmaint.errors import StateStoreError
from dbmaint.model import now
from dbmaint.store.base import Store, _masked, _refused, _short
from dbmaint.store.records import Counters, PlanRecord, _aware
from dbmaint.store.schema import plans, runs, samples, statements


class CaptureStore(Store):
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
        rows = self._read(query.limit(1))
        return str(rows[0].query) if rows else None

    def latest_plan(self, database: str, queryid: int) -> PlanRecord | None:
        query = (
            sa.select(plans)
            .where(plans.c.database == database, plans.c.queryid == queryid)
            .order_by(plans.c.captured_at.desc(), plans.c.id.desc())
            .limit(1)
        )
        found = self._read(query)
        if not found:
            return None
        row = found[0]
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
