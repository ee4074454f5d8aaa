"""What the advisor weighs: an index that could exist, and a statement ready to be planned with it.

Pure values: composing an index's definition needs ``psycopg.sql`` (quoting), never a connection.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from psycopg import sql


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

    @cached_property
    def _hash(self) -> int:
        return hash((self.schema, self.table, self.columns, self.include, self.where, self.directions))

    def __hash__(self) -> int:
        # Sets of candidates key the what-if planner's caches, hashed millions of times in a run: the
        # fields' hash once per candidate (a cached_property writes the instance's dict, frozen or not).
        return self._hash

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
