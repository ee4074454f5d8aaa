"""The workload the advisor weighs: statements with how often they run and how long they take.

Sources: pg_stat_statements (calls and total time as weights), statements running long right now
(pg_stat_activity: the slowest ones, which pg_stat_statements records only if they ever complete),
statements given on the command line or in a file, and a server log (slow and cancelled statements).
The same statement from several sources is counted once, by pglast's fingerprint.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg
from pglast import parser as pg_parser

from dbmaint.errors import DatabaseError, UsageError
from dbmaint.pg import collect, db, own_statements
from dbmaint.sql.syntax import syntax_message

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]

# A statement cancelled by statement_timeout never reports its duration: it ran at least this long.
CANCELLED_STAND_IN_MS = 30_000.0


@dataclass(frozen=True)
class Statement:
    query: str
    calls: int
    total_time_ms: float
    source: str  # pg_stat_statements, activity, command line, file, log
    queryid: int | None = None

    @property
    def mean_time_ms(self) -> float:
        return self.total_time_ms / self.calls if self.calls else 0.0


@dataclass
class Workload:
    statements: list[Statement] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # e.g. "pg_stat_statements is not installed: ..."

    def add(self, statements: Iterable[Statement]) -> None:
        self.statements.extend(statements)


@dataclass(frozen=True)
class _StatRow:
    queryid: int | None
    query: str
    calls: int
    total_time_ms: float
    mean_time_ms: float
    rows: int


@dataclass(frozen=True)
class _Running:
    query: str
    running_ms: float


def from_pg_stat_statements(conn: Connection, limit: int = 5000) -> tuple[list[Statement], str | None]:
    """The recorded statements, heaviest first; or a note saying why there are none."""
    schema = collect.extension_schema(conn, "pg_stat_statements")
    if schema is None:
        return [], (
            "pg_stat_statements is not installed in this database: the workload comes only from -s, -f and "
            "--log (to enable it: shared_preload_libraries = 'pg_stat_statements', restart, "
            "CREATE EXTENSION pg_stat_statements)"
        )
    try:
        rows = db.fetch(conn, "pg_stat_statements", _StatRow, {"limit": limit}, identifiers={"schema": schema})
    except DatabaseError as exc:  # not preloaded (55000), or a privilege: the rest of the advice stands
        return [], f"{exc}".replace("could not read pg stat statements", "pg_stat_statements could not be read", 1)
    visible = [row for row in rows if row.query and not row.query.startswith("<insufficient privilege>")]
    hidden = len(rows) - len(visible)
    statements = [
        Statement(row.query, row.calls, row.total_time_ms, "pg_stat_statements", row.queryid)
        for row in visible
        if not (own_statements.is_own(row.query) or own_statements.reads_only_catalogs(row.query))
    ]
    note = f"{hidden} statements of other users are hidden (grant pg_read_all_stats to see them)" if hidden else None
    return statements, note


def from_activity(conn: Connection, threshold_s: float) -> list[Statement]:
    rows = db.fetch(conn, "long_running", _Running, {"threshold_s": threshold_s})
    return [
        Statement(r.query, 1, r.running_ms, "activity") for r in rows if r.query and not own_statements.is_own(r.query)
    ]


def from_text(sql_text: str, source: str) -> list[Statement]:
    """Statements given by a developer: each counts as one call."""
    try:
        parts = [part.strip() for part in pg_parser.split(sql_text)]
    except pg_parser.ParseError as exc:
        raise UsageError(f"{source}: {syntax_message(exc)}") from None
    return [Statement(part, 1, 0.0, source) for part in parts if part]


def from_file(path: Path) -> list[Statement]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {path}: not UTF-8 text") from None
    return from_text(text, f"file {path}")


def from_log(path: Path) -> list[Statement]:
    """Slow statements (log_min_duration_statement, auto_explain) and cancelled ones from a server log."""
    from dbmaint.advisor import server_log

    result = server_log.read_log(path)
    statements = []
    for entry in result.statements:
        if own_statements.is_own(entry.query):
            continue
        duration = entry.duration_ms if entry.duration_ms is not None else CANCELLED_STAND_IN_MS
        statements.append(Statement(entry.query, 1, duration, f"log {path.name} ({entry.kind})"))
    return statements


# Cached: a recorded statement is fingerprinted when the workload is merged and again as the what-if
# planner's key, 1 ms each (a parse into Python objects).
@functools.lru_cache(maxsize=4096)
def fingerprint(query: str) -> str:
    """pglast's fingerprint, plus the relations the statement names exactly as written.

    The fingerprint alone ignores schemas and runs of digits in names, so it would merge
    tenant_a.orders with tenant_b.orders, or orders_2023 with orders_2024: different statements, each
    wanting its own index.
    """
    from pglast import ast, parse_sql

    from dbmaint.explain.safety import walk

    try:
        names = sorted(
            f"{n.schemaname or ''}.{n.relname}" for n in walk(parse_sql(query)) if isinstance(n, ast.RangeVar)
        )
        return f"{pg_parser.fingerprint(query)}:{','.join(names)}"
    except (pg_parser.ParseError, RecursionError):
        return query


def by_queryid(statements: Sequence[Statement]) -> list[Statement]:
    """One entry per query id: pg_stat_statements keeps one per user, database, query id and top-level flag,
    so a statement run by three roles (or also nested, with track = all) arrives three times. Counters add
    up; the text is the heaviest entry's. Statements without a query id are kept as they are."""
    by_id: dict[int, Statement] = {}
    rest: list[Statement] = []
    for statement in statements:
        if statement.queryid is None:
            rest.append(statement)
            continue
        seen = by_id.get(statement.queryid)
        by_id[statement.queryid] = (
            statement
            if seen is None
            else replace(
                seen, calls=seen.calls + statement.calls, total_time_ms=seen.total_time_ms + statement.total_time_ms
            )
        )
    return sorted([*by_id.values(), *rest], key=lambda s: s.total_time_ms, reverse=True)


def merged(statements: Sequence[Statement]) -> list[Statement]:
    """One entry per distinct statement (by fingerprint): calls and time added up, heaviest first."""
    by_print: dict[str, Statement] = {}
    for statement in statements:
        key = fingerprint(statement.query)
        seen = by_print.get(key)
        if seen is None:
            by_print[key] = statement
        else:
            by_print[key] = replace(
                seen,
                calls=seen.calls + statement.calls,
                total_time_ms=seen.total_time_ms + statement.total_time_ms,
                queryid=seen.queryid or statement.queryid,
            )
    return sorted(by_print.values(), key=lambda s: s.total_time_ms, reverse=True)
