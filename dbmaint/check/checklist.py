"""`dbmaint check`: the database checklist of docs/contract.md section 5, evaluated live.

Each item is pass, fail or unknown (the evidence could not be had: an extension is missing, a privilege),
with the evidence in one sentence. A deploy pipeline gates on the exit status: 1 when any item fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

import psycopg

from dbmaint import model
from dbmaint.advisor import recommend, workload
from dbmaint.config import Config
from dbmaint.maintenance import vacuum_analysis
from dbmaint.pg import collect, db
from dbmaint.sql import sqlshape
from dbmaint.store.history import History

Connection = psycopg.Connection[tuple[Any, ...]]
Status = Literal["pass", "fail", "unknown"]
# "Far past its thresholds": twice the point at which autovacuum itself would have started.
FAR_PAST = 2.0
RECENT_RUN = timedelta(hours=48)


@dataclass(frozen=True)
class Item:
    check: str
    status: Status
    evidence: str

    def to_json(self) -> dict[str, str]:
        return {"check": self.check, "status": self.status, "evidence": self.evidence}


@dataclass(frozen=True)
class CheckReport:
    database: str
    items: tuple[Item, ...]

    @property
    def status(self) -> Status:
        statuses = {item.status for item in self.items}
        return "fail" if "fail" in statuses else "unknown" if "unknown" in statuses else "pass"

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "status": self.status, "items": [i.to_json() for i in self.items]}


def run(
    conn: Connection, database: str, config: Config, history: History, advice: recommend.AdviceReport | None = None
) -> CheckReport:
    """The checklist; ``advice`` when the caller has just run the advisor (it is not run twice)."""
    if advice is None:
        advice = recommend.advise(conn, database, config, recommend.Sources())
    findings = advice.findings
    items = [
        primary_keys(findings),
        foreign_keys(findings),
        indexed_columns(advice),
        _slow_queries(conn, config),
        connections(collect.server_load(conn).active_connections, config.safety.max_active_connections),
        _vacuum_scheduled(database, config, history),
        _autovacuum(conn, config),
    ]
    return CheckReport(database, tuple(items))


def _names(found: Sequence[model.Finding], limit: int = 5) -> str:
    names = [f"{f.table}" + (f" ({', '.join(f.columns)})" if f.columns else "") for f in found]
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def primary_keys(findings: Sequence[model.Finding]) -> Item:
    missing = [f for f in findings if f.kind == "missing_primary_key"]
    if missing:
        return Item("primary_keys", "fail", f"{len(missing)} table(s) without a primary key: {_names(missing)}")
    return Item("primary_keys", "pass", "every table has a primary key")


def foreign_keys(findings: Sequence[model.Finding]) -> Item:
    unindexed = [f for f in findings if f.kind == "unindexed_foreign_key"]
    if unindexed:
        return Item("foreign_keys_indexed", "fail", f"{len(unindexed)} unindexed foreign key(s): {_names(unindexed)}")
    return Item("foreign_keys_indexed", "pass", "every foreign key leads an index")


def indexed_columns(advice: recommend.AdviceReport) -> Item:
    if not advice.verified:
        return Item("queried_columns_indexed", "unknown", "hypopg is not installed: no recommendation can be verified")
    if advice.recommendations:
        shown = "; ".join(r.definition for r in advice.recommendations[:3])
        more = f" and {len(advice.recommendations) - 3} more" if len(advice.recommendations) > 3 else ""
        return Item(
            "queried_columns_indexed",
            "fail",
            f"{len(advice.recommendations)} verified index(es) missing: {shown}{more}",
        )
    return Item(
        "queried_columns_indexed", "pass", f"no verified recommendation for {advice.analysed} analysed statement(s)"
    )


def _slow_queries(conn: Connection, config: Config) -> Item:
    statements, note = workload.from_pg_stat_statements(conn, limit=5000)
    if note and not statements:
        return Item("slow_queries", "unknown", note)
    return slow_queries(statements, config.capture.min_mean_time * 1000, config.advisor.min_calls)


def slow_queries(statements: Sequence[workload.Statement], threshold_ms: float, min_calls: int = 1) -> Item:
    """Queries and DML over the threshold on average; one-off statements (a migration, a bulk load) are
    not the workload: fewer than ``min_calls`` calls do not count, as for the advisor."""
    slow = [s for s in statements if s.mean_time_ms > threshold_ms and s.calls >= min_calls and _is_query(s.query)]
    if slow:
        worst = max(slow, key=lambda s: s.mean_time_ms)
        return Item(
            "slow_queries", "fail",
            f"{len(slow)} statement(s) average over {threshold_ms:.0f} ms; worst {worst.mean_time_ms:,.0f} ms "
            f"over {worst.calls} calls: {' '.join(worst.query.split())[:120]}",
        )  # fmt: skip
    return Item("slow_queries", "pass", f"no statement averages over {threshold_ms:.0f} ms")


def _is_query(text: str) -> bool:
    """Queries and DML; a slow VACUUM or CREATE INDEX (track_utility) is not a slow query."""
    try:
        return sqlshape.analyse(text, sqlshape.Catalog({})).kind in ("select", "insert", "update", "delete")
    except sqlshape.ShapeError:
        return False


def connections(active: int, limit: int) -> Item:
    status: Status = "fail" if active >= limit else "pass"
    return Item("active_connections", status, f"{active} active client connection(s), limit {limit}")


def _vacuum_scheduled(database: str, config: Config, history: History) -> Item:
    runs = history.recent_runs(limit=1, job="vacuum", database=database)
    return vacuum_scheduled(config.vacuum.enabled, runs[0] if runs else None, model.now())


def vacuum_scheduled(enabled: bool, last: Any, now: Any) -> Item:
    if not enabled:
        return Item("vacuum_scheduled", "fail", "the vacuum job is disabled (vacuum.enabled = false)")
    if last is None:
        return Item("vacuum_scheduled", "unknown", "enabled, but no dbmaint vacuum run is recorded in the state store")
    ago = now - last.started_at
    status: Status = "pass" if ago <= RECENT_RUN and last.status in ("ok", "partial", "skipped") else "fail"
    return Item(
        "vacuum_scheduled", status,
        f"last dbmaint vacuum run {ago.total_seconds() / 3600:.1f} h ago ({last.status})",
    )  # fmt: skip


def _autovacuum(conn: Connection, config: Config) -> Item:
    settings = {name: db.fetch_value(conn, "SELECT pg_catalog.current_setting(%s)", (name,))
                for name in ("autovacuum", "track_counts")}  # fmt: skip
    far = dataclasses.replace(config.vacuum, trigger_fraction=FAR_PAST)
    plans = vacuum_analysis.plan(collect.vacuum_tables(conn), collect.autovacuum_settings(conn), far)
    return autovacuum(settings, plans)


def autovacuum(settings: dict[str, Any], plans: Sequence[vacuum_analysis.TablePlan]) -> Item:
    off = [name for name, value in settings.items() if value != "on"]
    if off:
        return Item("autovacuum_keeps_up", "fail", f"{', '.join(off)} is off")
    risky = [p for p in plans if p.freeze]
    behind = [p for p in plans if p.vacuum and not p.freeze]
    if risky:
        names = ", ".join(p.table.qualified_name for p in risky[:5])
        return Item("autovacuum_keeps_up", "fail", f"{len(risky)} table(s) at wraparound risk: {names}")
    if behind:
        names = "; ".join(f"{p.table.qualified_name} ({p.reason})" for p in behind[:3])
        return Item("autovacuum_keeps_up", "fail", f"{len(behind)} table(s) far past autovacuum's trigger: {names}")
    return Item("autovacuum_keeps_up", "pass", "autovacuum is on; no table is far past its trigger or near wraparound")
