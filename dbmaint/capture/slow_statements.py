"""Slow-query capture: one pass over pg_stat_statements, deltas since the last pass, and plans as history.

Each pass reads every statement's cumulative counters, subtracts those of the previous pass (kept in the
state store; a counter that went down means pg_stat_statements was reset), and takes the statements whose
mean time since the last pass is over the threshold, worst first, at most ``max_per_pass``. For each, a
plan is captured safely within a time budget: a generic plan for $n statements (estimates), or, where
configured and only for read-only queries with representative values, EXPLAIN ANALYZE in a READ ONLY
transaction. Data-modifying statements are only ever planned, never run. A plan whose shape changed and
whose cost grew is flagged as a regression. auto_explain's JSON plans from the server log, real plans of
real executions, are stored too.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from dbmaint.advisor import workload
from dbmaint.config import Config
from dbmaint.errors import DbmaintError
from dbmaint.explain import plan_analysis
from dbmaint.model import JobReport, now
from dbmaint.pg import stopping
from dbmaint.pg.catalog import catalog
from dbmaint.sql import sqlshape
from dbmaint.store.history import History

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass
class Captured:
    queryid: int
    query: str
    calls: int  # since the last pass
    mean_ms: float
    total_ms: float
    plan_source: str | None = None
    problems: list[str] = field(default_factory=list)
    regression: str | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "queryid": self.queryid,
            "query": self.query,
            "calls": self.calls,
            "mean_ms": round(self.mean_ms, 3),
            "total_ms": round(self.total_ms, 3),
            "plan": self.plan_source,
            "problems": self.problems,
            "regression": self.regression,
            "note": self.note,
        }


@dataclass
class CaptureReport:
    job: JobReport
    statements_seen: int = 0
    captured: list[Captured] = field(default_factory=list)
    auto_explain_plans: int = 0

    def to_json(self) -> dict[str, Any]:
        document = self.job.to_json()
        document.pop("actions")
        document["statements_seen"] = self.statements_seen
        document["captured"] = [c.to_json() for c in self.captured]
        document["auto_explain_plans"] = self.auto_explain_plans
        return document


@dataclass(frozen=True)
class Delta:
    statement: workload.Statement
    calls: int
    total_ms: float

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0


def deltas(current: Sequence[workload.Statement], previous: dict[int, Any]) -> list[Delta]:
    """Counters since the previous pass; a statement seen for the first time, or whose counters went
    down (pg_stat_statements_reset), counts from zero."""
    found = []
    for statement in current:
        if statement.queryid is None:
            continue
        before = previous.get(statement.queryid)
        calls, total = statement.calls, statement.total_time_ms
        if before is not None and before.last_calls <= calls and before.last_total_ms <= total:
            calls, total = calls - before.last_calls, total - before.last_total_ms
        if calls > 0:
            found.append(Delta(statement, calls, total))
    return found


def slow(found: Sequence[Delta], threshold_ms: float, limit: int) -> list[Delta]:
    """Over the threshold on average since the last pass, the most total time first."""
    over = [d for d in found if d.mean_ms > threshold_ms and application_statement(d.statement.query)]
    return sorted(over, key=lambda d: d.total_ms, reverse=True)[:limit]


# The statements of an application's workload: a query or DML. Others (VACUUM, CREATE INDEX, PREPARE,
# EXPLAIN, COPY) are not the application's slow statements even when they are slow.
_WORKLOAD_STATEMENTS = ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


def application_statement(query: str) -> bool:
    """A statement of the application's workload: one query or DML statement (not SELECT INTO), reading at
    least one table outside the system catalogs. dbmaint's own queries read only pg_catalog (every catalog
    name it uses is qualified), so they are left out here too. One that explain will not run (it calls
    pg_sleep or lo_import, say) is still the application's: it is captured, and its note says why no plan."""
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    from dbmaint.explain import safety

    try:
        parsed = parse_sql(query)
        if len(parsed) != 1:
            return False
        node = parsed[0].stmt
        if type(node).__name__ not in _WORKLOAD_STATEMENTS or getattr(node, "intoClause", None) is not None:
            return False
        tables = [n for n in safety.walk(node) if isinstance(n, ast.RangeVar)]
    except (ParseError, RecursionError):
        return False
    system = ("pg_catalog", "information_schema")
    return any(t.schemaname not in system and not str(t.relname).startswith("pg_") for t in tables)


def regression(previous: Any, analysis: plan_analysis.PlanAnalysis, factor: float) -> str | None:
    """A plan that changed shape and got more expensive than the last one captured for the statement."""
    if previous is None or previous.signature == analysis.shape_signature():
        return None
    if analysis.total_cost > factor * previous.total_cost:
        return (
            f"plan changed since {previous.captured_at:%Y-%m-%d %H:%M} UTC and its estimated cost grew "
            f"{analysis.total_cost / max(previous.total_cost, 0.01):.1f}x ({previous.total_cost:,.0f} -> "
            f"{analysis.total_cost:,.0f})"
        )
    return None


def run(conn: Connection, report: JobReport, config: Config, history: History) -> CaptureReport:
    """One capture pass; ``report`` is the job's history record (started by the caller)."""
    settings = config.capture
    result = CaptureReport(report)
    current, note = workload.from_pg_stat_statements(conn, limit=1_000_000)
    current = workload.by_queryid(current)  # the store keys a database's statements by query id
    if note and not current:
        report.skip(note)
        return result
    result.statements_seen = len(current)
    started = time.monotonic()
    previous = history.counters(report.database)
    chosen = slow(deltas(current, previous), settings.min_mean_time * 1000, settings.max_per_pass)
    history.save_counters(
        report.database,
        previous,
        [
            {"queryid": s.queryid, "query": s.query, "last_calls": s.calls, "last_total_ms": s.total_time_ms,
             # pglast's fingerprint, computed once: only a statement new to the store needs it
             "fingerprint": workload.fingerprint(s.query) if s.queryid not in previous else None}
            for s in current
            if s.queryid is not None
        ],
        now(),
    )  # fmt: skip
    history.settle()  # the samples and plans below refer to the run by its id
    assert report.run_id is not None
    relations = None  # the catalog, read once per pass and only when a plan needs it
    for delta in chosen:
        stopping.check()  # a stop (SIGTERM) ends the pass here rather than being taken for a failed EXPLAIN
        captured = Captured(
            delta.statement.queryid or 0, delta.statement.query, delta.calls, delta.mean_ms, delta.total_ms
        )
        result.captured.append(captured)
        history.add_sample(
            report.run_id, report.database,
            {"queryid": captured.queryid, "captured_at": now(), "calls": delta.calls, "total_ms": delta.total_ms,
             "mean_ms": delta.mean_ms, "cumulative_mean_ms": delta.statement.mean_time_ms},
        )  # fmt: skip
        if time.monotonic() - started > settings.time_budget:
            captured.note = "no plan: the pass's time budget (capture.time_budget) was spent"
            continue
        if relations is None:
            relations = catalog(conn)
        _capture_plan(conn, captured, config, history, report, relations)
    if settings.auto_explain_log:
        result.auto_explain_plans = _auto_explain(
            Path(settings.auto_explain_log), conn.info.dbname, config, history, report
        )
    report.finish()
    return result


def _capture_plan(
    conn: Connection,
    captured: Captured,
    config: Config,
    history: History,
    report: JobReport,
    relations: sqlshape.Catalog,
) -> None:
    from dbmaint.explain import runner

    settings = config.capture
    # Never --analyze-writes: a data-modifying statement is only ever planned here.
    request = runner.Request(
        sqlshape.repair_normalized(captured.query), analyze=settings.analyze, analyze_writes=False,
        timeout_s=settings.statement_timeout, lock_timeout_s=config.safety.lock_timeout, role=config.explain.role,
        advisor=config.advisor,
    )  # fmt: skip
    try:
        found = runner.explain(conn, request, relations=relations)
    except DbmaintError as exc:
        captured.note = f"no plan: {exc}"
        return
    except psycopg.OperationalError:
        raise
    captured.plan_source = "analyze" if found.analyzed else "estimate"
    _store_plan(captured, found.analysis, found.plan, captured.plan_source, config, history, report)


def _store_plan(
    captured: Captured,
    analysis: plan_analysis.PlanAnalysis,
    plan: Any,
    source: str,
    config: Config,
    history: History,
    report: JobReport,
) -> None:
    assert report.run_id is not None
    previous = history.latest_plan(report.database, captured.queryid)
    captured.regression = regression(previous, analysis, config.capture.regression_factor)
    captured.problems = [f"{p.severity} {p.kind}: {p.detail}" for p in analysis.problems if p.severity != "info"]
    history.add_plan(
        report.run_id, report.database,
        {"queryid": captured.queryid, "captured_at": now(), "source": source,
         "signature": analysis.shape_signature(), "total_cost": analysis.total_cost,
         "execution_ms": analysis.execution_ms, "plan": json.dumps(plan),
         "problems": json.dumps([p.to_json() for p in analysis.problems]), "regression": captured.regression},
    )  # fmt: skip


def _auto_explain(path: Path, dbname: str, config: Config, history: History, report: JobReport) -> int:
    """auto_explain's JSON plans (real executions) for the statements this database knows by query id."""
    from dbmaint.advisor import server_log

    try:
        entries = server_log.read_log(path).statements
    except DbmaintError as exc:
        report.warnings.append(str(exc))
        return 0
    stored = 0
    for entry in entries:
        if entry.kind != "auto_explain" or entry.plan is None or entry.query_id is None:
            continue
        if entry.database not in (None, dbname):
            continue  # another database's statement: its query id means nothing here
        captured = Captured(entry.query_id, entry.query, 1, entry.duration_ms or 0.0, entry.duration_ms or 0.0)
        document = {"Plan": entry.plan, "Execution Time": entry.duration_ms}
        latest = history.latest_plan(report.database, entry.query_id)
        if latest is not None and latest.source == "auto_explain" and json.loads(latest.plan) == document:
            continue  # the same log read again on the next pass
        analysis = plan_analysis.analyse(document, query=entry.query)
        _store_plan(captured, analysis, document, "auto_explain", config, history, report)
        stored += 1
    return stored
