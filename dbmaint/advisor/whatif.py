"""The planner's opinion of indexes that do not exist yet (hypopg), for statements with or without $n.

Everything here is read-only: the session is ``default_transaction_read_only``, statements are only
ever EXPLAINed without ANALYZE, and hypothetical indexes live in this backend's memory alone.

Statements copied from pg_stat_statements carry $1, $2 ... PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN),
so each is PREPAREd (parameter types inferred by the server, or taken from the columns they are
compared with), EXPLAINed with EXECUTE under ``plan_cache_mode = force_generic_plan`` with NULL
arguments, and DEALLOCATEd. A generic plan prices ``col > $1`` at a fixed third of the table, which
misleads for ranges; when a statement has a range on a parameter, values from pg_stats (a selective
histogram bound, a typical value for equalities) are planned as a custom plan instead.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Mapping
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from dbmaint.advisor.candidates import Candidate, Plannable
from dbmaint.pg import db, own_statements, stopping
from dbmaint.pg.prepared import Prepared, deallocate

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]
_PREPARED = "dbmaint_whatif"
# Several statements in one string (one round trip), each marked as dbmaint's, not only the first.
_SEPARATOR = (";\n" + own_statements.MARKER).encode()


class PlanError(Exception):
    """The statement cannot be planned; str() says why in one line."""


class WhatIf:
    """Costs of statements under sets of hypothetical indexes, cached: nothing is planned twice."""

    def __init__(self, conn: Connection, hypopg_schema: str | None, *, statement_timeout: float = 5.0) -> None:
        self.conn = conn
        self.hypopg = hypopg_schema
        self._costs: dict[tuple[str, frozenset[Candidate]], float] = {}
        self._cached_only_costs: dict[tuple[str, frozenset[Candidate]], float] = {}
        self._buffers: str | None = None
        self._cached_only_mode = False
        self._sizes: dict[Candidate, int] = {}
        self._defined: dict[Candidate, int] = {}  # the hypothetical indexes the session holds now, by oid
        self._bodies: dict[Candidate, str] = {}
        self._plan_texts: dict[str, list[bytes]] = {}
        self.plans = 0
        db.set_settings(
            conn,
            {
                "default_transaction_read_only": "on",
                "plan_cache_mode": "force_generic_plan",
                "statement_timeout": str(round(statement_timeout * 1000)),
            },
        )

    @property
    def available(self) -> bool:
        return self.hypopg is not None

    def cost(self, statement: Plannable, indexes: Iterable[Candidate] = (), *, cached_only: bool = False) -> float:
        """Total estimated cost of the statement's plan with these hypothetical indexes present.

        ``cached_only``: planned as if only shared_buffers held pages (effective_cache_size set to it),
        not the gigabytes of OS cache the default assumes, which make many index scans look cheap.
        """
        key = (statement.key, frozenset(indexes))
        costs = self._cached_only_costs if cached_only else self._costs
        if key not in costs:
            self._cache_mode(cached_only)
            costs[key] = self._define_and_plan(key[1], statement)
        return costs[key]

    def _cache_mode(self, cached_only: bool) -> None:
        """Switch effective_cache_size only when the mode changes: the robust plans come in a run."""
        if cached_only != self._cached_only_mode:
            if cached_only:
                db.set_settings(self.conn, {"effective_cache_size": self._shared_buffers()})
            else:
                self.conn.execute("RESET effective_cache_size")
            self._cached_only_mode = cached_only

    def _shared_buffers(self) -> str:
        if self._buffers is None:
            self._buffers = str(db.fetch_value(self.conn, "SELECT pg_catalog.current_setting('shared_buffers')"))
        return self._buffers

    def size(self, candidate: Candidate) -> int:
        """hypopg's estimate of the index's size on disk."""
        if candidate not in self._sizes:
            self._define(frozenset(self._defined) | {candidate})
            value = db.fetch_value(
                self.conn, self._fn("SELECT {}.hypopg_relation_size(%s)"), (self._defined[candidate],)
            )
            self._sizes[candidate] = int(value or 0)
        return self._sizes[candidate]

    def _fn(self, template: str) -> sql.Composed:
        assert self.hypopg is not None
        return sql.SQL(template).format(sql.Identifier(self.hypopg))

    def _define_and_plan(self, wanted: frozenset[Candidate], statement: Plannable) -> float:
        """The statement's cost with exactly ``wanted`` defined, in one round trip: the difference from the
        last plan's set is dropped and created (greedy plans a statement with and without one candidate),
        then PREPARE, EXPLAIN EXECUTE and DEALLOCATE (thousands of plans in a run)."""
        stopping.check()  # a stop must not wait for all of them
        self.plans += 1
        define, create = self._definition(wanted)
        try:
            cursor = self.conn.execute(_SEPARATOR.join([*define, *self._plan_steps(statement)]))
        except psycopg.Error:
            # Which part failed, told apart by doing them one at a time (the message says which).
            self._forget_all()
            self._deallocate()
            self._define(wanted)
            return self._plan(statement)
        oids = self._read_definition(cursor, define, create)
        while cursor.statusmessage != "EXPLAIN" and cursor.nextset():
            pass
        row = cursor.fetchone()
        self._defined_now(wanted, create, oids)
        assert row is not None
        return plan_cost(row[0][0]["Plan"])

    def _definition(self, wanted: frozenset[Candidate]) -> tuple[list[bytes], list[Candidate]]:
        """Statements that turn the session's hypothetical indexes into ``wanted``, and those created."""
        drop = [oid for candidate, oid in self._defined.items() if candidate not in wanted]
        create = sorted(wanted - self._defined.keys(), key=self._body)  # an order of their own, cached
        hypopg = sql.Identifier(self.hypopg or "")
        steps = []
        if drop:
            steps.append(
                sql.SQL("SELECT pg_catalog.count({}.hypopg_drop_index(o)) FROM pg_catalog.unnest({}::oid[]) o")
                .format(hypopg, sql.Literal(drop))
                .as_bytes(self.conn)
            )
        if create:
            steps.append(
                sql.SQL(
                    "SELECT h.indexrelid FROM pg_catalog.unnest({}::text[]) WITH ORDINALITY AS u(body, n), "
                    "LATERAL {}.hypopg_create_index(u.body) h ORDER BY u.n"
                )
                .format(sql.Literal([self._body(candidate) for candidate in create]), hypopg)
                .as_bytes(self.conn)
            )
        return steps, create

    def _body(self, candidate: Candidate) -> str:
        if candidate not in self._bodies:
            self._bodies[candidate] = candidate.body().as_string(self.conn)
        return self._bodies[candidate]

    @staticmethod
    def _read_definition(cursor: psycopg.Cursor[Any], define: list[bytes], create: list[Candidate]) -> list[int]:
        """The new indexes' oids: the result of the last definition step (the first result is current)."""
        if not create:
            return []
        for _ in range(len(define) - 1):
            cursor.nextset()
        oids = [int(row[0]) for row in cursor.fetchall()]
        cursor.nextset()
        return oids

    def _defined_now(self, wanted: frozenset[Candidate], create: list[Candidate], oids: list[int]) -> None:
        for candidate in self._defined.keys() - wanted:
            del self._defined[candidate]
        self._defined.update(zip(create, oids, strict=True))

    def _define(self, wanted: frozenset[Candidate]) -> None:
        """Make the session's hypothetical indexes exactly ``wanted``, on their own."""
        define, create = self._definition(wanted)
        if not define:
            return
        try:
            cursor = self.conn.execute(_SEPARATOR.join(define))
            oids = self._read_definition(cursor, define, create)
        except psycopg.Error as exc:
            self._forget_all()
            described = ", ".join(c.describe() for c in create) or "dropping hypothetical indexes"
            raise PlanError(f"hypothetical index {described}: {db.first_line(str(exc))}") from None
        self._defined_now(wanted, create, oids)

    def _forget_all(self) -> None:
        """After a failure the session's hypothetical indexes are unknown: none, from a clean slate."""
        self._defined.clear()
        if not self.conn.closed:
            self.conn.execute(self._fn("SELECT {}.hypopg_reset()"))

    def _plan_steps(self, statement: Plannable) -> list[bytes]:
        """PREPARE, EXPLAIN EXECUTE, DEALLOCATE (composed once per statement: it is planned many times)."""
        if statement.key in self._plan_texts:
            return self._plan_texts[statement.key]
        types = [statement.param_types.get(n, "unknown") for n in range(1, statement.params + 1)]
        arguments = [statement.custom_values.get(n) for n in range(1, statement.params + 1)]
        custom = bool(statement.custom_values) and all(a is not None for a in arguments)
        prepared = Prepared(_PREPARED, statement.text, types)
        execute = sql.SQL("EXPLAIN (FORMAT JSON) ") + prepared.execute(arguments)
        steps: list[sql.Composable] = [prepared.prepare(), execute, prepared.deallocate()]
        if custom:  # a failure rolls the setting back with the implicit transaction of the whole string
            steps[1:1] = [sql.SQL("SELECT pg_catalog.set_config('plan_cache_mode', 'force_custom_plan', false)")]
            steps.append(sql.SQL("SELECT pg_catalog.set_config('plan_cache_mode', 'force_generic_plan', false)"))
        self._plan_texts[statement.key] = [step.as_bytes(self.conn) for step in steps]
        return self._plan_texts[statement.key]

    def _plan(self, statement: Plannable) -> float:
        """The statement's cost with the hypothetical indexes now defined; PlanError says why it has none."""
        try:
            cursor = self.conn.execute(_SEPARATOR.join(self._plan_steps(statement)))
            while cursor.statusmessage != "EXPLAIN" and cursor.nextset():
                pass
            row = cursor.fetchone()
        except pgerrors.IndeterminateDatatype:
            self._deallocate()
            raise PlanError("the type of a parameter cannot be determined") from None
        except psycopg.Error as exc:
            self._deallocate()
            raise PlanError(db.first_line(str(exc))) from None
        assert row is not None
        return plan_cost(row[0][0]["Plan"])

    def _deallocate(self) -> None:
        """PREPARE outlives the failure of what followed it in the same string."""
        if self.conn.closed:
            return
        with contextlib.suppress(pgerrors.InvalidSqlStatementName):  # the PREPARE itself failed
            self.conn.execute(deallocate(_PREPARED))


# Between a LIMIT and the scan it stops early: these keep the scan's order and pass its rows on.
_ORDER_KEEPING = ("Gather Merge", "Incremental Sort", "Result")


def plan_cost(plan: Mapping[str, Any]) -> float:
    """The plan's total cost, except that a LIMIT stopping a filtered walk of an index early costs the whole
    walk. The planner prices ``ORDER BY b LIMIT n`` over an index on b with a filter on a as the fraction
    of the index it expects to read before n rows pass, as if the matching rows were spread evenly; where
    they lie elsewhere it reads all of it (the plan problem "wrong index for ORDER BY ... LIMIT"). An index
    must not be recommended on that bet: an index on created_at made a shop's "an account's latest orders
    in one status" 20x cheaper on the estimate and 1.9x slower in reality."""
    total = float(plan["Total Cost"])
    if plan.get("Node Type") != "Limit" or not plan.get("Plans"):
        return total
    below = plan["Plans"][0]
    scan = below
    while scan.get("Node Type") in _ORDER_KEEPING and scan.get("Plans"):
        scan = scan["Plans"][0]
    if scan.get("Node Type") in ("Index Scan", "Index Only Scan") and "Filter" in scan:
        return max(total, float(below["Total Cost"]))
    return total
