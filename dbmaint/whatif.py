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

import itertools
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from dbmaint import db, stopping

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]
_PREPARED = "dbmaint_whatif"


@dataclass(frozen=True)
class Candidate:
    """A btree index that could exist: key columns, INCLUDE columns, and an optional partial predicate."""

    schema: str
    table: str
    columns: tuple[str, ...]
    include: tuple[str, ...] = ()
    where: str | None = None
    # Per key column "", "DESC", "NULLS FIRST" or "DESC NULLS LAST"; empty when every column is ascending.
    directions: tuple[str, ...] = ()

    @property
    def qualified_table(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def name(self) -> str:
        """The conventional name, table_col1_col2_idx (kept unique against the catalog by the advisor)."""
        return f"{self.table}_{'_'.join(self.columns)}_idx"[:63]

    def body(self, *, concurrently: bool = False, name: bool = False) -> sql.Composed:
        """CREATE INDEX [CONCURRENTLY] [name] ON table (cols) [INCLUDE (...)] [WHERE ...]."""
        parts: list[sql.Composable] = [sql.SQL("CREATE INDEX ")]
        if concurrently:
            parts.append(sql.SQL("CONCURRENTLY "))
        if name:
            parts.append(sql.SQL("{} ").format(sql.Identifier(self.name)))
        parts.append(
            sql.SQL("ON {} ({})").format(
                sql.Identifier(self.schema, self.table), sql.SQL(", ").join(self._key_columns())
            )
        )
        if self.include:
            parts.append(sql.SQL(" INCLUDE ({})").format(sql.SQL(", ").join(map(sql.Identifier, self.include))))
        if self.where:
            parts.append(sql.SQL(" WHERE ") + sql.SQL(self.where))
        return sql.Composed(parts)

    def describe(self) -> str:
        return self.body().as_string(None)

    def _key_columns(self) -> list[sql.Composable]:
        keys: list[sql.Composable] = []
        for column, direction in itertools.zip_longest(self.columns, self.directions, fillvalue=""):
            if direction not in DIRECTIONS:
                raise ValueError(f"not an index column ordering: {direction!r}")
            keys.append(sql.Identifier(column) + sql.SQL(f" {direction}" if direction else ""))
        return keys


DIRECTIONS = ("", "DESC", "NULLS FIRST", "DESC NULLS LAST")


@dataclass(frozen=True)
class Plannable:
    """A statement ready for EXPLAIN: its text, and how to bind its $n parameters."""

    key: str  # stable identity for caches (the text)
    text: str
    params: int  # highest $n
    param_types: Mapping[int, str] = field(default_factory=dict)
    # $n -> a representative value (text) to plan a custom plan with; empty: generic plan.
    custom_values: Mapping[int, str] = field(default_factory=dict)


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
            created = [self._create(candidate) for candidate in sorted(key[1], key=repr)]
            try:
                self._cache_mode(cached_only)
                costs[key] = self._plan(statement)
            finally:
                if created:
                    self._reset()
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
            oid = self._create(candidate)
            try:
                value = db.fetch_value(self.conn, self._fn("SELECT {}.hypopg_relation_size(%s)"), (oid,))
                self._sizes[candidate] = int(value or 0)
            finally:
                self._reset()
        return self._sizes[candidate]

    def _fn(self, template: str) -> sql.Composed:
        assert self.hypopg is not None
        return sql.SQL(template).format(sql.Identifier(self.hypopg))

    def _create(self, candidate: Candidate) -> int:
        statement = candidate.body().as_string(self.conn)
        try:
            row = self.conn.execute(self._fn("SELECT indexrelid FROM {}.hypopg_create_index(%s)"), (statement,))
            value = row.fetchone()
        except psycopg.Error as exc:
            raise PlanError(f"hypothetical index {statement}: {db.first_line(str(exc))}") from None
        assert value is not None
        return int(value[0])

    def _reset(self) -> None:
        self.conn.execute(self._fn("SELECT {}.hypopg_reset()"))

    def _plan(self, statement: Plannable) -> float:
        stopping.check()  # thousands of plans in a run: a stop must not wait for all of them
        self.plans += 1
        name = sql.Identifier(_PREPARED)
        types = [statement.param_types.get(n, "unknown") for n in range(1, statement.params + 1)]
        prepare = sql.SQL("PREPARE {} {} AS ").format(
            name,
            sql.SQL("({})").format(sql.SQL(", ").join(map(sql.SQL, types))) if types else sql.SQL(""),
        ) + sql.SQL(statement.text)
        try:
            self.conn.execute(prepare)
        except pgerrors.IndeterminateDatatype:
            raise PlanError("the type of a parameter cannot be determined") from None
        except psycopg.Error as exc:
            raise PlanError(db.first_line(str(exc))) from None
        try:
            arguments = [statement.custom_values.get(n) for n in range(1, statement.params + 1)]
            custom = bool(statement.custom_values) and all(a is not None for a in arguments)
            if custom:
                db.set_settings(self.conn, {"plan_cache_mode": "force_custom_plan"})
            execute = sql.SQL("EXPLAIN (FORMAT JSON) EXECUTE {}").format(name)
            if statement.params:
                execute += sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(a) for a in arguments))
            row = self.conn.execute(execute).fetchone()
        except psycopg.Error as exc:
            raise PlanError(db.first_line(str(exc))) from None
        finally:
            if not self.conn.closed:
                self.conn.execute(sql.SQL("DEALLOCATE {}").format(name))
                db.set_settings(self.conn, {"plan_cache_mode": "force_generic_plan"})
        assert row is not None
        return float(row[0][0]["Plan"]["Total Cost"])
