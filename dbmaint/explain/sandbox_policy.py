"""Which functions `dbmaint explain` may let EXPLAIN ANALYZE execute: the policy, and what SQL text calls.

A READ ONLY transaction that is rolled back does not contain everything: functions terminate sessions,
advance replication slots, reset statistics, run SQL given as text (``query_to_xml``), or run
``COPY ... TO PROGRAM`` inside plpgsql. So a statement is executed only when every function it can
reach is known harmless; otherwise it is planned without running. This module is the pure part: the
policy for one function, and the names a piece of SQL (a statement, an SQL function's body, a plpgsql
body) refers to. Resolving names and walking views, triggers and bodies is ``dbmaint.explain.sandbox``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pglast import ast as _ast
from pglast import parse_plpgsql, parse_sql
from pglast.parser import ParseError, scan

from dbmaint.explain.safety import walk

ast: Any = _ast

BUILTIN_SCHEMAS = frozenset({"pg_catalog", "information_schema"})

# Built-in VOLATILE functions that only read (or, like random(), change nothing outside the statement).
# Every other volatile built-in is refused: a new server version's new volatile function is refused until
# someone reads it and adds it here. IMMUTABLE and STABLE built-ins are allowed as declared.
VOLATILE_BUILTINS_ALLOWED = frozenset({
    "clock_timestamp", "timeofday", "random", "gen_random_uuid", "currval", "lastval",
    # nextval advances a sequence even when the transaction rolls back; explain says so in a note
    # (the INSERT of a serial column calls it through the column's default).
    "nextval",
    "pg_current_wal_lsn", "pg_current_wal_flush_lsn", "pg_current_wal_insert_lsn", "pg_is_in_recovery",
    "pg_last_wal_receive_lsn", "pg_last_wal_replay_lsn", "pg_last_xact_replay_timestamp",
    "pg_last_committed_xact", "pg_is_wal_replay_paused", "pg_get_wal_replay_pause_state",
    "pg_database_size", "pg_relation_size", "pg_table_size", "pg_indexes_size", "pg_total_relation_size",
    "pg_tablespace_size", "pg_lock_status", "pg_blocking_pids", "pg_safe_snapshot_blocking_pids",
    "pg_stat_get_xact_blocks_fetched", "pg_stat_get_xact_blocks_hit", "pg_stat_get_xact_function_calls",
    "pg_stat_get_xact_function_self_time", "pg_stat_get_xact_function_total_time", "pg_stat_get_xact_numscans",
    "pg_stat_get_xact_tuples_deleted", "pg_stat_get_xact_tuples_fetched", "pg_stat_get_xact_tuples_hot_updated",
    "pg_stat_get_xact_tuples_inserted", "pg_stat_get_xact_tuples_returned", "pg_stat_get_xact_tuples_updated",
    "pg_stat_get_recovery_prefetch", "pg_stat_have_stats", "pg_xact_status", "txid_status",
    "pg_xact_commit_timestamp", "pg_xact_commit_timestamp_origin", "pg_sequence_last_value",
    "pg_partition_tree", "pg_partition_ancestors", "pg_get_multixact_members", "pg_notification_queue_usage",
    "pg_jit_available", "pg_control_checkpoint", "pg_control_init", "pg_control_recovery", "pg_control_system",
    "pg_prepared_xact", "pg_get_backend_memory_contexts", "pg_get_shmem_allocations", "pg_current_logfile",
    "current_query", "pg_collation_actual_version", "pg_database_collation_actual_version",
    "pg_get_wal_resource_managers", "pg_show_replication_origin_status", "pg_show_all_file_settings",
    "pg_hba_file_rules", "pg_ident_file_mappings",
    # TABLESAMPLE methods and the built-in trigger functions that only shape the row being written
    "bernoulli", "system", "suppress_redundant_updates_trigger", "tsvector_update_trigger",
    "tsvector_update_trigger_column", "unique_key_recheck",
})  # fmt: skip

# Built-ins refused whatever their declared volatility: they run SQL given as text, or act on the server.
BUILTINS_DENIED = frozenset({
    "query_to_xml", "query_to_xmlschema", "query_to_xml_and_xmlschema", "cursor_to_xml", "cursor_to_xmlschema",
    "ts_stat", "ts_rewrite", "set_config", "setval", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
})  # fmt: skip

# The language handlers whose bodies dbmaint reads; a function in any other language is judged by its
# declaration alone.
READABLE_LANGUAGES = frozenset({"sql", "plpgsql"})


class Function(NamedTuple):
    """What the catalog says of one function (pg_proc)."""

    oid: int
    schema: str
    name: str
    volatility: str  # i, s or v
    security_definer: bool
    language: str
    kind: str = "f"  # f function, a aggregate, w window, p procedure
    has_sql_body: bool = False  # BEGIN ATOMIC: the body is read from the definition
    source: str = ""  # prosrc, for SQL
    definition: str = ""  # pg_get_functiondef, for plpgsql and BEGIN ATOMIC
    reached_by: str | None = None  # the operator or cast (its key in dbmaint.explain.sandbox) that led to it

    @property
    def builtin(self) -> bool:
        return self.schema in BUILTIN_SCHEMAS

    @property
    def label(self) -> str:
        return f"{self.name}()" if self.builtin or self.schema == "public" else f"{self.schema}.{self.name}()"


def judge(function: Function, *, trust_functions: bool = False) -> str | None:
    """Why ``function`` is not known to be harmless (a predicate: "is VOLATILE ..."), or None when it is.

    Its body, for SQL and plpgsql, is checked apart."""
    if function.builtin:
        if function.name in BUILTINS_DENIED:
            return "runs SQL given as text or acts on the server"
        if function.volatility == "v" and function.name not in VOLATILE_BUILTINS_ALLOWED:
            return "is a built-in not known to be read-only"
        return None
    if function.kind == "p":
        return "is a procedure"
    if trust_functions:
        return None
    if function.security_definer:
        return "runs with its owner's rights (SECURITY DEFINER)"
    if function.volatility == "v":
        return "is VOLATILE (it may change data or act outside the database)"
    return None


Name = tuple[str | None, str]  # (schema or None for unqualified, name), as written


@dataclass
class References:
    """The names a piece of SQL refers to; ``blocked`` says why it cannot be proven at all."""

    functions: set[Name] = field(default_factory=set)
    operators: set[Name] = field(default_factory=set)
    relations: set[Name] = field(default_factory=set)
    types: set[Name] = field(default_factory=set)
    blocked: str | None = None

    def update(self, other: References) -> None:
        self.functions |= other.functions
        self.operators |= other.operators
        self.relations |= other.relations
        self.types |= other.types
        self.blocked = self.blocked or other.blocked


_SQL_STATEMENTS = ("SelectStmt", "InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


def _names(fields: Any) -> Name:
    parts = [str(f.sval) for f in fields or () if isinstance(f, ast.String)]
    if not parts:
        return (None, "")
    return (parts[-2] if len(parts) > 1 else None, parts[-1])


def _range_name(node: Any) -> Name:
    return (node.schemaname, node.relname)


def references(text: str) -> References:
    """The functions, operators, relations and cast types ``text`` (one or more statements) names.

    A statement that is not a query or a data change (COPY, DO, CALL, SET ...) blocks the proof: inside a
    function body it would run with the function.
    """
    refs = References()
    try:
        statements = parse_sql(text)
    except (ParseError, RecursionError):
        refs.blocked = "its SQL cannot be read"
        return refs
    for raw in statements:
        node: Any = raw.stmt
        if isinstance(node, ast.ExplainStmt):
            node = node.query
        kind = type(node).__name__
        if kind == "CreateFunctionStmt" and node.sql_body is not None:  # BEGIN ATOMIC, as the server prints it
            refs.update(_expression_references(node.sql_body))
            continue
        if kind not in _SQL_STATEMENTS:
            refs.blocked = refs.blocked or f"it runs {kind.removesuffix('Stmt').upper()}"
            continue
        refs.update(_expression_references(node))
    return refs


def _expression_references(node: Any) -> References:
    refs = References()
    ctes: set[str] = set()
    for n in walk(node):
        if isinstance(n, ast.FuncCall):
            refs.functions.add(_names(n.funcname))
        elif isinstance(n, ast.A_Expr) and n.name:
            refs.operators.add(_names(n.name))
        elif isinstance(n, ast.RangeVar):
            refs.relations.add(_range_name(n))
        elif isinstance(n, ast.TypeCast) and n.typeName is not None:
            refs.types.add(_names(n.typeName.names))
        elif isinstance(n, ast.CommonTableExpr):
            ctes.add(n.ctename)
    # A CTE's name is not a relation of the catalog (unless qualified).
    refs.relations = {r for r in refs.relations if r[0] is not None or r[1] not in ctes}
    return refs


def written_relations(text: str) -> set[Name]:
    """The relations an INSERT, UPDATE, DELETE or MERGE in ``text`` writes (data-modifying CTEs too)."""
    try:
        statements = parse_sql(text)
    except (ParseError, RecursionError):
        return set()
    return {
        _range_name(n.relation)
        for raw in statements
        for n in walk(raw.stmt)
        if type(n).__name__ in _SQL_STATEMENTS[1:] and n.relation is not None
    }


def expression_references(expression: str) -> References:
    """An SQL expression (a plpgsql condition or value), read as ``SELECT <expression>``."""
    return references(f"SELECT {expression}")


# plpgsql statements that run SQL built at run time, or end the transaction: nothing can be proven.
_DYNAMIC = {
    "PLpgSQL_stmt_dynexecute": "EXECUTE of a string",
    "PLpgSQL_stmt_dynfors": "FOR ... IN EXECUTE",
    "PLpgSQL_stmt_call": "CALL",
    "PLpgSQL_stmt_commit": "COMMIT",
    "PLpgSQL_stmt_rollback": "ROLLBACK",
}


def plpgsql_references(definition: str) -> References:
    """What a plpgsql function's body refers to, from its ``CREATE FUNCTION`` text (pg_get_functiondef)."""
    refs = References()
    try:
        tree = parse_plpgsql(definition)
    except (ParseError, RecursionError, ValueError):
        refs.blocked = "its plpgsql body cannot be read"
        return refs
    for key, value in _json_nodes(tree):
        if key in _DYNAMIC:
            refs.blocked = refs.blocked or f"it runs {_DYNAMIC[key]}"
        elif key == "PLpgSQL_stmt_open" and isinstance(value, dict) and "dynquery" in value:
            refs.blocked = refs.blocked or "it opens a cursor FOR EXECUTE"
        elif key == "PLpgSQL_expr" and isinstance(value, dict):
            refs.update(_plpgsql_expression(str(value.get("query", "")), int(value.get("parseMode", 0))))
    return refs


def _plpgsql_expression(query: str, mode: int) -> References:
    # parseMode (PostgreSQL's RawParseMode): 0 a whole statement, 2 an expression, 3-5 an assignment
    # "target := expression" whose right-hand side is the expression.
    if mode == 0:
        return references(query)
    if mode >= 3:
        query = _assigned_expression(query)
    return expression_references(query)


def _assigned_expression(assignment: str) -> str:
    """The right-hand side of ``target := value`` (or ``target = value``), found with the scanner."""
    depth = 0
    for token in scan(assignment):
        text = assignment[token.start : token.end + 1]
        if text in ("(", "["):
            depth += 1
        elif text in (")", "]"):
            depth -= 1
        elif depth == 0 and text in (":=", "="):
            return assignment[token.end + 1 :]
    return assignment


def _json_nodes(tree: Any) -> Iterator[tuple[str, Any]]:
    stack = [tree]
    while stack:
        current = stack.pop()
        if isinstance(current, dict):
            for key, value in current.items():
                yield key, value
                stack.append(value)
        elif isinstance(current, list):
            stack.extend(current)
