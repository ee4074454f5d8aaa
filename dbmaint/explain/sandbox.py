"""Proving, before EXPLAIN ANALYZE executes a statement, that everything it can run is harmless.

Every function the statement reaches is found and judged (``analyse.sandbox.judge``): those it calls by
name (every overload of the name: the parser cannot pick one), behind its operators and casts, in the
views it reads (their rules, as the server resolved them), the row security policies of its tables, and,
for a write, the triggers, defaults, CHECK constraints and rules of the tables written (and of those a
foreign key's cascade writes). Then, recursively, what the SQL and plpgsql functions among them call. A
function in another language is judged by its declaration; a body that runs SQL built at run time cannot
be proven. Only catalog reads: nothing here runs the statement or any function it names.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import psycopg

from dbmaint.explain import sandbox_policy
from dbmaint.explain.sandbox_policy import Function, Name, References
from dbmaint.pg import db

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]
_MAX_ROUNDS = 50  # a chain of views and functions this deep is not proven (each round is one level)


class _Relation(NamedTuple):
    oid: int
    schema: str
    name: str
    kind: str
    written: bool
    view_definition: str | None
    expressions: list[str]  # policies; for a written table also defaults and CHECK constraints
    trigger_functions: list[int]
    has_write_rules: bool


def _key(name: Name, *, cast: bool = False) -> str:
    """How sandbox_functions.sql names the operator or cast type that led to a function."""
    schema, bare = name
    return ("type:" if cast else "") + (f"{schema}.{bare}" if schema else bare)


class _Search:
    """One proof: what has been seen, and through what, so that a refusal can say how it was reached."""

    def __init__(self, conn: Connection, trust_functions: bool) -> None:
        self.conn = conn
        self.trust_functions = trust_functions
        self.via: dict[int, str] = {}  # function oid -> what led to it (a function's label, a view)
        self.functions_seen: set[int] = set()
        self.relations_seen: set[int] = set()
        self.pending_functions: set[int] = set()
        self.pending_names: set[Name] = set()
        self.pending_operators: set[Name] = set()
        self.pending_types: set[Name] = set()
        self.name_via: dict[Name, str] = {}
        self.operator_via: dict[str, str] = {}  # _key of an operator or cast type -> what used it
        self.names_seen: set[Name] = set()  # relation names already resolved

    def refs(self, refs: References, via: str, *, written: set[Name] | None = None) -> str | None:
        """Names found in SQL text: functions, operators and casts resolved later, in one query; relations now."""
        if refs.blocked and not self.trust_functions:  # trusted: SQL built at run time is the user's word too
            return f"{via} {refs.blocked.removeprefix('it ')}" if via != "the statement" else refs.blocked
        for name in refs.functions:
            if name not in self.name_via:
                self.name_via[name] = via
                self.pending_names.add(name)
        for names, pending, cast in ((refs.operators, self.pending_operators, False),
                                     (refs.types, self.pending_types, True)):  # fmt: skip
            for name in names:
                key = _key(name, cast=cast)
                if key not in self.operator_via:
                    self.operator_via[key] = via
                    pending.add(name)
        fresh = sorted((r for r in refs.relations if r not in self.names_seen), key=str)
        self.names_seen.update(fresh)
        if fresh:
            return self.relations(fresh, written or set())
        return None

    def _functions_found(self, oids: Any, via: str) -> None:
        for oid in oids:
            if oid is not None and oid not in self.functions_seen and oid not in self.pending_functions:
                self.pending_functions.add(oid)
                self.via.setdefault(oid, via)

    def relations(self, names: list[Name], written: set[Name]) -> str | None:
        rows = db.fetch(
            self.conn,
            "sandbox_relations",
            _Relation,
            {
                "schemas": [s for s, _ in names],
                "names": [n for _, n in names],
                "written": [n in written for n in names],
            },
        )
        for relation in rows:
            if relation.oid in self.relations_seen and not relation.written:
                continue
            self.relations_seen.add(relation.oid)
            label = f"{relation.schema}.{relation.name}"
            if relation.kind == "f" and not self.trust_functions:
                return f"it reads the foreign table {label}, which reaches outside the database"
            if relation.has_write_rules:
                return f"the rules of {label} rewrite what is written to it"
            self._functions_found(relation.trigger_functions, f"a trigger of {label}")
            if relation.view_definition:
                reason = self.refs(sandbox_policy.references(relation.view_definition), f"the view {label}")
                if reason:
                    return reason
            for expression in relation.expressions:
                reason = self.refs(sandbox_policy.expression_references(expression), f"the table {label}")
                if reason:
                    return reason
        return None

    def judge_pending(self) -> str | None:
        names = sorted(self.pending_names, key=str)
        operators = sorted(self.pending_operators, key=str)
        types = sorted(self.pending_types, key=str)
        oids = sorted(self.pending_functions)
        for pending in (self.pending_names, self.pending_operators, self.pending_types, self.pending_functions):
            pending.clear()
        rows = db.fetch(
            self.conn,
            "sandbox_functions",
            Function,
            {
                "schemas": [s for s, _ in names],
                "names": [n for _, n in names],
                "oids": oids,
                "operator_schemas": [s for s, _ in operators],
                "operator_names": [n for _, n in operators],
                "type_schemas": [s for s, _ in types],
                "type_names": [n for _, n in types],
            },
        )
        for function in rows:
            if function.oid in self.functions_seen:
                continue
            self.functions_seen.add(function.oid)
            via = (
                self.via.get(function.oid)
                or (self.operator_via.get(function.reached_by) if function.reached_by else None)
                or self._named_via(function, names)
            )
            reason = sandbox_policy.judge(function, trust_functions=self.trust_functions)
            if reason is not None:
                subject = function.label if via == "the statement" else f"{via} calls {function.label}, which"
                return f"{subject} {reason}"
            if function.builtin or function.language not in sandbox_policy.READABLE_LANGUAGES:
                continue
            if function.language == "plpgsql":
                body = sandbox_policy.plpgsql_references(function.definition)
            else:
                body = sandbox_policy.references(function.definition if function.has_sql_body else function.source)
            blocked = self.refs(body, function.label)
            if blocked:
                return blocked
        return None

    def _named_via(self, function: Function, names: list[Name]) -> str:
        for schema, name in names:
            if name == function.name and schema in (None, function.schema):
                return self.name_via.get((schema, name), "the statement")
        return "the statement"

    def run(self) -> str | None:
        for _ in range(_MAX_ROUNDS):
            if not (self.pending_names or self.pending_functions or self.pending_operators or self.pending_types):
                return None
            reason = self.judge_pending()
            if reason:
                return reason
        return "its views and functions nest too deeply to be proven"


def unproven(conn: Connection, statement: str, *, trust_functions: bool = False) -> str | None:
    """Why executing ``statement`` is not proven harmless, or None when every function it reaches is.

    ``trust_functions`` takes user functions at their word (any volatility, SECURITY DEFINER, SQL built at
    run time, foreign tables); built-ins refused by the policy stay refused wherever they are called.
    """
    search = _Search(conn, trust_functions)
    refs = sandbox_policy.references(statement)
    reason = search.refs(refs, "the statement", written=sandbox_policy.written_relations(statement))
    if reason is None:
        reason = search.run()
    if reason is not None:
        log.debug("not executed: %s", reason)
    return reason
