"""A statement of dbmaint's prepared under its own name, to be planned or run through EXECUTE.

PostgreSQL 15 has no EXPLAIN (GENERIC_PLAN): a statement with $n is PREPAREd (with the parameter types
given, or "unknown" for the server to infer), EXPLAINed through EXECUTE with the arguments, and
DEALLOCATEd by name (never DEALLOCATE ALL, which would also drop what psycopg prepares for itself).
explain, the what-if planner and --verify compose their statements here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql


@dataclass(frozen=True)
class Prepared:
    name: str
    text: str
    types: Sequence[str] = ()  # one per $n, in order; empty: the server infers them all

    def prepare(self) -> sql.Composed:
        types = sql.SQL("({}) ").format(sql.SQL(", ").join(map(sql.SQL, self.types))) if self.types else sql.SQL("")
        return sql.SQL("PREPARE {} {}AS ").format(sql.Identifier(self.name), types) + sql.SQL(self.text)

    def execute(self, arguments: Sequence[str | None] = ()) -> sql.Composed:
        """EXECUTE with the arguments as literals (None is NULL: a generic plan does not look at them)."""
        execute = sql.SQL("EXECUTE {}").format(sql.Identifier(self.name))
        if arguments:
            execute += sql.SQL("({})").format(sql.SQL(", ").join(sql.Literal(a) for a in arguments))
        return execute

    def deallocate(self) -> sql.Composed:
        return deallocate(self.name)


def deallocate(name: str) -> sql.Composed:
    """Only this statement: what failed before it was prepared, or after, is cleaned up by name."""
    return sql.SQL("DEALLOCATE {}").format(sql.Identifier(name))
