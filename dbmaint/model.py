"""The records that flow from analysis through the actions to history and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from psycopg import sql

Status = Literal["planned", "started", "done", "skipped", "failed", "interrupted", "proposed"]
# missed: a scheduled run that did not happen (the service was down past its misfire grace).
RunStatus = Literal["running", "ok", "partial", "failed", "skipped", "interrupted", "missed"]

MAX_IDENTIFIER_BYTES = 63  # PostgreSQL's NAMEDATALEN - 1; longer names are silently truncated


def now() -> datetime:
    return datetime.now(UTC)


def render(statement: sql.Composable) -> str:
    """A statement as text, exactly as it is sent (identifiers quoted by psycopg)."""
    return statement.as_string(None)


@dataclass
class Action:
    """One maintenance statement on one object, with why it is wanted and what became of it."""

    object: str
    statement: sql.Composed
    reason: str
    kind: str
    relid: int | None = None
    identity: tuple[str, str] | None = None  # (schema, name) of the object, for follow-up queries
    status: Status = "planned"
    duration_s: float | None = None
    detail: str | None = None
    size_before: int | None = None
    size_after: int | None = None
    attempts: int = 0
    history_id: int | None = None
    recorded: bool = field(default=False, repr=False)  # given to the state store (maybe still in memory there)
    # Skipped by the analysis itself (e.g. an index whose bloat cannot be known): reported, never
    # attempted, and not a reason to call the run partial.
    decided: bool = False

    @property
    def sql(self) -> str:
        return render(self.statement)

    def to_json(self) -> dict[str, Any]:
        return {
            "object": self.object,
            "kind": self.kind,
            "statement": self.sql,
            "reason": self.reason,
            "status": self.status,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "detail": self.detail,
            "size_before": self.size_before,
            "size_after": self.size_after,
        }


NO_PRIVILEGE = (
    "nothing maintained: every table was skipped for lack of privilege (on PostgreSQL 15 only a table's "
    "owner, the database's owner or a superuser may VACUUM or REINDEX it: run dbmaint as that role, or "
    "GRANT the owning role to dbmaint's)"
)


@dataclass
class JobReport:
    """What one job did (or would do, in a dry run) on one database."""

    database: str
    job: str
    dry_run: bool = False
    status: RunStatus = "running"
    started_at: datetime = field(default_factory=now)
    finished_at: datetime | None = None
    actions: list[Action] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    reason: str | None = None
    run_id: int | None = None
    recorded: bool = field(default=False, repr=False)  # given to the state store (maybe still in memory there)
    scheduled_for: datetime | None = None  # the scheduled time this run answers (service runs only)
    server: str | None = None  # the server's system_identifier, once connected

    def finish(self) -> JobReport:
        if self.status == "running":
            statuses = {a.status for a in self.actions if not a.decided}
            # A dry run's "planned" stands for the "done" the real run would record: its status is the same.
            worked = bool(statuses & {"done", "planned"})
            if "interrupted" in statuses:
                self.status = "interrupted"
                detail = next(a.detail for a in self.actions if a.status == "interrupted")
                self.reason = self.reason or detail or "dbmaint was stopped while this run was going"
            elif "failed" in statuses:
                self.status = "partial" if worked else "failed"
            elif "skipped" in statuses and not worked and self._all_refused():
                # Nothing maintained, and not for a passing reason (a lock, the window): a failure to fix.
                self.status = "failed"
                self.reason = self.reason or NO_PRIVILEGE
            elif "skipped" in statuses:
                self.status = "partial" if worked else "skipped"
            else:
                self.status = "ok"
            if self.status == "skipped" and self.reason is None:
                self.reason = "; ".join(sorted({a.detail or "skipped" for a in self.actions if not a.decided}))
        self.finished_at = now()
        return self

    def _all_refused(self) -> bool:
        open_ = [a for a in self.actions if not a.decided and a.status == "skipped"]
        return bool(open_) and all((a.detail or "").startswith("insufficient privilege") for a in open_)

    def skip(self, reason: str) -> JobReport:
        self.status = "skipped"
        self.reason = reason
        return self.finish()

    @property
    def failed(self) -> bool:
        return any(a.status == "failed" for a in self.actions) or self.status == "failed"

    def to_json(self) -> dict[str, Any]:
        return {
            "database": self.database,
            "server": self.server,
            "job": self.job,
            "dry_run": self.dry_run,
            "status": self.status,
            "reason": self.reason,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "actions": [a.to_json() for a in self.actions],
            "findings": self.findings,
            "warnings": self.warnings,
        }


@dataclass(frozen=True)
class Finding:
    """A problem the advisor found in the schema or its statistics (no workload needed)."""

    # missing_primary_key, unindexed_foreign_key, duplicate_index, redundant_index, unused_index, invalid_index
    kind: str
    table: str  # schema-qualified
    detail: str  # one finished sentence: what, and the evidence
    columns: tuple[str, ...] = ()
    index: str | None = None  # schema-qualified, for index findings
    fix: str | None = None  # the SQL or the step that resolves it
    rank: float = 0.0  # higher first, within a kind
    index_oid: int | None = None  # for index findings: the index itself, for a revision that drops it

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "table": self.table,
            "columns": list(self.columns),
            "index": self.index,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class QueryBenefit:
    """One statement a recommended index helps, with its planner cost without and with the index."""

    query: str
    queryid: int | None
    calls: int
    cost_before: float
    cost_after: float


@dataclass(frozen=True)
class IndexRecommendation:
    """An index worth creating, and the evidence for it."""

    schema: str
    table_name: str
    columns: tuple[str, ...]
    name: str
    definition: str  # CREATE INDEX CONCURRENTLY ... as it would be run
    reason: str
    include: tuple[str, ...] = ()
    where: str | None = None  # partial index predicate, as SQL text
    # Per key column "", "DESC", "NULLS FIRST" or "DESC NULLS LAST"; empty when all are ascending.
    directions: tuple[str, ...] = ()
    # On a partitioned table: built partition by partition (CONCURRENTLY is refused on the parent).
    partitioned: bool = False
    queries: tuple[QueryBenefit, ...] = ()
    cost_before: float = 0.0  # workload cost (sum of cost x calls over the statements it affects)
    cost_after: float = 0.0
    estimated_size_bytes: int = 0
    verified: bool = False  # True when hypothetical indexes proved the gain on the planner
    closes: tuple[str, ...] = ()  # findings it resolves, e.g. an unindexed foreign key

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}"

    def to_json(self) -> dict[str, Any]:
        return {
            "table": self.table,
            "columns": list(self.columns),
            "include": list(self.include),
            "where": self.where,
            "directions": list(self.directions),
            "partitioned": self.partitioned,
            "name": self.name,
            "definition": self.definition,
            "reason": self.reason,
            "queries": [
                {
                    "queryid": q.queryid,
                    "query": q.query,
                    "calls": q.calls,
                    "cost_before": round(q.cost_before, 2),
                    "cost_after": round(q.cost_after, 2),
                }
                for q in self.queries
            ],
            "cost_before": round(self.cost_before, 2),
            "cost_after": round(self.cost_after, 2),
            "estimated_size_bytes": self.estimated_size_bytes,
            "verified": self.verified,
            "closes": list(self.closes),
        }
