"""`dbmaint advise --verify`: the planner's estimate checked against real executions, on a staging copy.

The selected indexes are built for real (CREATE INDEX CONCURRENTLY), the affected read-only statements
are timed with EXPLAIN ANALYZE before and after, and an index that does not make a statement it was
chosen for faster, or that makes any timed statement slower, is dropped again. Both are reported.
Statements run in READ ONLY transactions with a statement_timeout; $n get representative values.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbmaint.advisor.candidates import Plannable
from dbmaint.errors import UsageError
from dbmaint.model import IndexRecommendation
from dbmaint.pg import db
from dbmaint.pg.prepared import Prepared

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]

MIN_SPEEDUP = 0.10  # a kept index makes at least one of its statements this much faster
MAX_SLOWDOWN = 1.5  # and no timed statement more than this many times slower
_PREPARED = "dbmaint_verify"


@dataclass(frozen=True)
class Timing:
    query: str
    before_ms: float
    after_ms: float


@dataclass(frozen=True)
class Verdict:
    index: str
    kept: bool
    reason: str
    timings: tuple[Timing, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kept": self.kept,
            "reason": self.reason,
            "timings": [
                {"query": t.query, "before_ms": round(t.before_ms, 3), "after_ms": round(t.after_ms, 3)}
                for t in self.timings
            ],
        }


def refuse_on_production(conn: Connection, force: bool) -> None:
    """--verify builds and drops indexes: meant for a staging copy, refused on a primary with replicas."""
    if db.is_in_recovery(conn):
        raise UsageError("--verify builds indexes, which a standby cannot: run it on a staging copy")
    replicas = db.fetch_value(
        conn,
        "SELECT (SELECT count(*) FROM pg_catalog.pg_stat_replication)"
        " + (SELECT count(*) FROM pg_catalog.pg_replication_slots)",
    )
    if replicas and not force:
        raise UsageError(
            "--verify builds and drops indexes and runs the statements: this server has replicas or "
            "replication slots, so it looks like a production primary; run it on a staging copy, or add --force"
        )


def execution_ms(conn: Connection, statement: Plannable, timeout_s: float) -> float | None:
    """The statement's execution time from EXPLAIN ANALYZE (best of two, warm), or None if it cannot run."""
    arguments = [statement.custom_values.get(n) for n in range(1, statement.params + 1)]
    if any(a is None for a in arguments):
        return None  # no representative value for a parameter: an empty run would prove nothing
    prepared = Prepared(_PREPARED, statement.text)
    prepare = prepared.prepare()
    explain = sql.SQL("EXPLAIN (ANALYZE, FORMAT JSON) ") + prepared.execute(arguments)
    best: float | None = None
    try:
        conn.execute(prepare)
        for _ in range(2):
            with conn.transaction():
                db.set_settings(
                    conn,
                    {"transaction_read_only": "on", "statement_timeout": str(round(timeout_s * 1000)),
                     "plan_cache_mode": "force_custom_plan"},
                    local=True,
                )  # fmt: skip
                row = conn.execute(explain).fetchone()
            assert row is not None
            elapsed = float(row[0][0]["Execution Time"])
            best = elapsed if best is None else min(best, elapsed)
    except psycopg.Error as exc:
        log.info("cannot time %s: %s", statement.text[:80], db.first_line(str(exc)))
        return None
    finally:
        # Only ours: DEALLOCATE ALL would also drop the statements psycopg prepares for itself.
        with contextlib.suppress(psycopg.Error):
            conn.execute(prepared.deallocate())
    return best


def judge(recommendation: IndexRecommendation, own: Sequence[Timing], others: Sequence[Timing]) -> Verdict:
    """Keep the index when one of its statements got faster enough and no timed statement got much slower."""
    slower = [t for t in (*own, *others) if t.before_ms > 0 and t.after_ms > MAX_SLOWDOWN * t.before_ms]
    if slower:
        worst = max(slower, key=lambda t: t.after_ms / t.before_ms)
        return Verdict(
            recommendation.name, False,
            f"made a statement {worst.after_ms / worst.before_ms:.1f}x slower "
            f"({worst.before_ms:.1f} -> {worst.after_ms:.1f} ms): {' '.join(worst.query.split())[:100]}",
            tuple(own),
        )  # fmt: skip
    faster = [t for t in own if t.after_ms <= (1 - MIN_SPEEDUP) * t.before_ms]
    if not own:
        return Verdict(recommendation.name, False, "none of its statements could be timed", ())
    if not faster:
        return Verdict(
            recommendation.name, False, f"no statement it was chosen for got {MIN_SPEEDUP:.0%} faster", tuple(own)
        )
    best = max(faster, key=lambda t: t.before_ms / max(t.after_ms, 0.001))
    return Verdict(
        recommendation.name, True,
        f"{len(faster)} statement(s) faster, best {best.before_ms:.1f} -> {best.after_ms:.1f} ms",
        tuple(own),
    )  # fmt: skip


def verify(
    conn: Connection,
    recommendations: Sequence[IndexRecommendation],
    statements: Mapping[str, Plannable],
    helps: Mapping[str, Iterable[str]],
    tables: Mapping[str, set[tuple[str, str]]],
    *,
    lock_timeout_s: float,
    statement_timeout_s: float = 30.0,
) -> list[Verdict]:
    """Build, time, judge, and drop the indexes that do not deliver.

    ``helps``: index name -> keys of the statements it was chosen for; ``tables``: statement key -> the
    tables it reads. A slowdown counts against the indexes on the tables of the slowed statement.
    """
    before = {key: execution_ms(conn, s, statement_timeout_s) for key, s in statements.items()}
    built = []
    for recommendation in recommendations:
        db.set_settings(conn, {"lock_timeout": str(round(lock_timeout_s * 1000)), "statement_timeout": "0"})
        try:
            conn.execute(recommendation.definition)
            built.append(recommendation)
        except psycopg.Error as exc:
            log.warning("could not build %s: %s", recommendation.name, db.first_line(str(exc)))
            _drop(conn, recommendation)  # an interrupted concurrent build leaves an invalid index
    after = {key: execution_ms(conn, s, statement_timeout_s) for key, s in statements.items()}
    timings = {
        key: Timing(statements[key].text, b, a)
        for key, b in before.items()
        if b is not None and (a := after.get(key)) is not None
    }
    verdicts = []
    for recommendation in recommendations:
        if recommendation not in built:
            verdicts.append(Verdict(recommendation.name, False, "could not be built", ()))
            continue
        own_keys = set(helps.get(recommendation.name, ()))
        table = (recommendation.schema, recommendation.table_name)
        own = [t for k, t in timings.items() if k in own_keys]
        others = [t for k, t in timings.items() if k not in own_keys and table in tables.get(k, set())]
        verdict = judge(recommendation, own, others)
        if not verdict.kept:
            _drop(conn, recommendation)
        verdicts.append(verdict)
    return verdicts


def _drop(conn: Connection, recommendation: IndexRecommendation) -> None:
    # DROP INDEX CONCURRENTLY is refused on a partitioned index (verify runs on staging, not production).
    verb = "DROP INDEX IF EXISTS {}" if recommendation.partitioned else "DROP INDEX CONCURRENTLY IF EXISTS {}"
    statement = sql.SQL(verb).format(sql.Identifier(recommendation.schema, recommendation.name))
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        log.warning("could not drop %s: %s", recommendation.name, db.first_line(str(exc)))
