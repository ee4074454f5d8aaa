"""Whether `dbmaint explain` may run a statement, and how (docs/contract.md rule 10), read with PostgreSQL's parser.

* read:    a plain query; EXPLAIN ANALYZE runs it in a READ ONLY transaction.
* write:   INSERT, UPDATE, DELETE, MERGE, SELECT ... FOR UPDATE, data-modifying CTEs: EXPLAIN ANALYZE only
           when asked, inside a transaction that is always rolled back, with lock_timeout.
* refused: what EXPLAIN cannot take, or whose effects a rollback cannot undo (DDL, COPY, VACUUM, CALL,
           DO, several statements, dblink and file or HTTP functions, session-level advisory locks ...).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pglast import ast as _ast
from pglast import parse_sql
from pglast.parser import ParseError, scan

from dbmaint.sql.syntax import syntax_message

ast: Any = _ast  # pglast annotates every attribute Optional; the grammar guarantees them

Kind = Literal["read", "write", "refused"]

# Functions whose effects survive a rollback, or that reach outside the database.
_UNSAFE_FUNCTIONS = {
    "dblink", "dblink_exec", "dblink_send_query", "dblink_open", "dblink_fetch", "dblink_connect",
    "dblink_connect_u", "lo_import", "lo_export", "pg_file_write", "pg_file_rename", "pg_file_unlink",
    "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile", "pg_switch_wal",
    "pg_create_restore_point", "pg_promote", "pg_logical_emit_message", "pg_advisory_lock",
    "pg_advisory_lock_shared", "pg_try_advisory_lock", "pg_try_advisory_lock_shared", "pg_stat_reset",
    "pg_stat_reset_shared", "pg_stat_reset_single_table_counters", "pg_stat_statements_reset",
    "pg_create_physical_replication_slot", "pg_create_logical_replication_slot", "pg_drop_replication_slot",
    "pg_replication_origin_create", "pg_import_system_collations", "pg_sleep", "pg_sleep_for", "pg_sleep_until",
    "http", "http_get", "http_post", "http_put", "http_patch", "http_delete", "http_head",
}  # fmt: skip
_SEQUENCE_FUNCTIONS = {"nextval", "setval"}
_WRITES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


@dataclass(frozen=True)
class Verdict:
    kind: Kind
    reason: str  # for refused: why; otherwise what it is
    notes: tuple[str, ...] = field(default=())
    statement: str = ""  # the statement to explain (an EXPLAIN given by the user is unwrapped)


class SyntaxProblem(ValueError):
    """Not valid SQL; str() is one line with the parser's message."""


def classify(text: str) -> Verdict:
    try:
        statements = parse_sql(text)
    except ParseError as exc:
        raise SyntaxProblem(syntax_message(exc)) from None
    except RecursionError:
        raise SyntaxProblem("the statement is nested too deeply to read") from None
    if not statements:
        raise SyntaxProblem("no statement given")
    if len(statements) > 1:
        return Verdict("refused", f"{len(statements)} statements given: explain one statement at a time")
    raw = statements[0]
    node = raw.stmt
    statement = text.strip().rstrip(";")
    if isinstance(node, ast.ExplainStmt):  # "EXPLAIN SELECT ...": explain the inner statement
        from pglast.stream import RawStream  # the printer costs ~10 ms at start-up: only needed here

        node = node.query
        statement = RawStream()(node)  # the parser's own text of it (statements carry no location)
    return _verdict(node, statement)


def _verdict(node: Any, statement: str) -> Verdict:
    name = type(node).__name__
    if name == "CreateTableAsStmt":
        return Verdict("refused", "CREATE TABLE AS / SELECT INTO creates a table: explain its SELECT instead")
    if name == "SelectStmt" and node.intoClause is not None:
        return Verdict("refused", "SELECT INTO creates a table: explain the SELECT without INTO")
    if name not in ("SelectStmt", *_WRITES):
        return Verdict("refused", f"{_describe(name)} cannot be explained safely: only SELECT, INSERT, UPDATE, "
                                  "DELETE and MERGE are (DDL, COPY, VACUUM, CALL and DO run for real)")  # fmt: skip
    unsafe = sorted({f for f in _functions(node) if f in _UNSAFE_FUNCTIONS})
    if unsafe:
        return Verdict(
            "refused",
            f"calls {', '.join(unsafe)}(), whose effects a rollback cannot undo (or that waits or reaches "
            "outside the database)",
        )
    notes = []
    if _SEQUENCE_FUNCTIONS & set(_functions(node)):
        notes.append("it calls nextval()/setval(): sequences advance even when the transaction rolls back")
    writes = name in _WRITES or _writing_cte(node) or _locks_rows(node)
    if writes:
        if name == "InsertStmt" or "InsertStmt" in _cte_kinds(node):
            notes.append("an INSERT explained with ANALYZE still advances the table's sequences (serial/identity)")
        what = "SELECT ... FOR UPDATE/SHARE (locks rows)" if _locks_rows(node) and name == "SelectStmt" else name
        return Verdict("write", _describe(what), tuple(notes), statement)
    return Verdict("read", "query", tuple(notes), statement)


def _describe(name: str) -> str:
    return name.removesuffix("Stmt").replace("Create", "CREATE ").strip().upper() if name.endswith("Stmt") else name


def walk(node: Any) -> Iterator[Any]:
    """Every parse node under ``node`` (iterative: deep expressions exceed Python's recursion limit)."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(current)
        elif isinstance(current, ast.Node):
            yield current
            stack.extend(getattr(current, attribute) for attribute in current)


def _functions(node: Any) -> list[str]:
    return [
        str(n.funcname[-1].sval).lower()
        for n in walk(node)
        if isinstance(n, ast.FuncCall) and n.funcname and isinstance(n.funcname[-1], ast.String)
    ]


def _cte_kinds(node: Any) -> set[str]:
    return {type(n.ctequery).__name__ for n in walk(node) if isinstance(n, ast.CommonTableExpr)}


def _writing_cte(node: Any) -> bool:
    return bool(_cte_kinds(node) & set(_WRITES))


def _locks_rows(node: Any) -> bool:
    return any(isinstance(n, ast.SelectStmt) and n.lockingClause for n in walk(node))


def highest_param(text: str) -> int:
    """The highest $n in a statement (0 without parameters), found with the parser's scanner."""
    highest = 0
    for token in scan(text):
        if token.name == "PARAM":
            highest = max(highest, int(text[token.start + 1 : token.end + 1]))
    return highest
