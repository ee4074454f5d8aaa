"""What the advisor weighs: an index that could exist, the rules that find them in a statement's column
uses, and a statement ready to be planned with it.

Candidates per statement and table, in the order a btree serves them best: equality columns first
(most distinct first), then the sort column(s), then one range column; single columns for every
predicate and join key; an INCLUDE variant when a few more columns make an index-only scan; a partial
index when a predicate on a constant is selective.

Pure: composing an index's definition needs ``psycopg.sql`` (quoting), never a connection.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from psycopg import sql

from dbmaint.sql.identifiers import quote_ident
from dbmaint.sql.sqlshape import ColumnUse, Shape


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


# --- the candidates of a statement ----------------------------------------------------------------

MAX_KEY_COLUMNS = 4
MAX_INCLUDE_COLUMNS = 3


@dataclass(frozen=True)
class TableFacts:
    """What the candidate rules need to know about a table."""

    schema: str
    name: str
    reltuples: float
    existing: tuple[tuple[str, ...], ...]  # key columns of its valid, non-partial btree indexes
    n_distinct: Mapping[str, float] = field(default_factory=dict)  # column -> distinct values (pg_stats)
    common_values: Mapping[str, Mapping[str, float]] = field(default_factory=dict)  # column -> value -> freq
    write_share: float = 0.0  # writes / (reads + writes) from pg_stat_user_tables
    # Share of rows a predicate on the column kept, measured by pg_qualstats (when installed).
    measured_selectivity: Mapping[str, float] = field(default_factory=dict)


def _distinct(facts: TableFacts | None, column: str) -> float:
    """How selective an equality on the column is, as distinct values: measured when pg_qualstats has
    seen it (1 / share of rows kept), else from pg_stats.n_distinct."""
    if facts is None:
        return 0.0
    measured = facts.measured_selectivity.get(column)
    if measured is not None:
        return 1.0 / max(measured, 1e-9)
    value = facts.n_distinct.get(column, 0.0)
    return value if value >= 0 else -value * max(facts.reltuples, 1.0)  # negative: a fraction of rows


def _scan_orderings(orderings: Mapping[str, str]) -> dict[str, str]:
    """The index column orderings that serve ORDER BY's, read forward or backward.

    A btree read backward gives every column the opposite direction and nulls placement, so orderings
    that all agree (ASC, or DESC) need none, and mixed ones (``a DESC, b``) are stated with the first
    column ascending: ``(a, b DESC NULLS LAST)`` serves ``ORDER BY a DESC, b`` read backward.
    """
    values = list(orderings.values())
    if not values or all(v == "" for v in values) or all(v == "DESC" for v in values):
        return {}
    if values[0].startswith("DESC"):
        orderings = {column: _reversed_ordering(v) for column, v in orderings.items()}
    return dict(orderings)


def _reversed_ordering(ordering: str) -> str:
    descending = ordering.startswith("DESC")
    nulls_first = "NULLS FIRST" in ordering or (descending and "NULLS LAST" not in ordering)
    descending, nulls_first = not descending, not nulls_first
    if descending:
        return "DESC" if nulls_first else "DESC NULLS LAST"
    return "NULLS FIRST" if nulls_first else ""


# A partial index is for a column with at most this many distinct values (pg_stats).
PARTIAL_MAX_DISTINCT = 100


def _n_distinct(facts: TableFacts, column: str) -> float:
    value = facts.n_distinct.get(column, 0.0)
    return value if value >= 0 else -value * max(facts.reltuples, 1.0)


def _unique(columns: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(columns))


def _served(columns: tuple[str, ...], facts: TableFacts | None) -> bool:
    """An existing index already leads with exactly these columns."""
    return facts is not None and any(index[: len(columns)] == columns for index in facts.existing)


def candidates_for(shape: Shape, tables: Mapping[tuple[str, str], TableFacts]) -> set[Candidate]:
    """Every index worth pricing for one statement."""
    found: set[Candidate] = set()
    by_table: dict[tuple[str, str], list[ColumnUse]] = {}
    for use in shape.uses:
        by_table.setdefault((use.schema, use.table), []).append(use)
    sort_tables = {(u.schema, u.table) for u in shape.uses if u.role == "order"}
    for key, uses in by_table.items():
        facts = tables.get(key)
        found |= _table_candidates(key, uses, facts, sortable=len(sort_tables) == 1 and key in sort_tables)
    return {c for c in found if c.columns and (c.directions or not _served(c.columns, tables.get((c.schema, c.table))))}


def _table_candidates(
    key: tuple[str, str], uses: Sequence[ColumnUse], facts: TableFacts | None, *, sortable: bool
) -> set[Candidate]:
    schema, table = key

    orderings: dict[str, str] = {}
    for use in uses:
        if use.role == "order" and sortable:
            orderings.setdefault(use.column, use.ordering)
    directed = _scan_orderings(orderings)

    def make(columns: Iterable[str], include: Iterable[str] = (), where: str | None = None) -> Candidate:
        keys = _unique(columns)[:MAX_KEY_COLUMNS]
        directions = tuple(directed.get(c, "") for c in keys)
        return Candidate(
            schema,
            table,
            keys,
            tuple(c for c in _unique(include) if c not in keys),
            where,
            directions if any(directions) else (),
        )

    equality = [u for u in uses if u.role == "eq" and u.constant != "NULL"]
    eq_columns = sorted(_unique(u.column for u in equality), key=lambda c: -_distinct(facts, c))
    ranges = _unique(u.column for u in uses if u.role == "range")
    joins = _unique(u.column for u in uses if u.role == "join")
    order = _unique(u.column for u in uses if u.role == "order") if sortable else ()
    groups = _unique(u.column for u in uses if u.role == "group")
    reads = _unique(u.column for u in uses)

    result = {make([c]) for c in (*eq_columns, *ranges, *joins, *order[:1], *groups[:1])}
    composite = [*eq_columns, *order, *ranges[:1]]
    for columns in (eq_columns, [*eq_columns, *order], [*eq_columns, *ranges[:1]], composite):
        if len(columns) > 1:
            result.add(make(columns))
    for join in joins:  # the inner side of a nested loop: the join key with the equalities
        if eq_columns:
            result.add(make([*eq_columns, join]))
            result.add(make([join, *eq_columns]))
    if groups and eq_columns:
        result.add(make([*eq_columns, *groups]))
    best = make(composite) if composite else None
    if best is not None:
        extra = [c for c in reads if c not in best.columns]
        if 0 < len(extra) <= MAX_INCLUDE_COLUMNS:  # a few more columns turn it into an index-only scan
            result.add(make(best.columns, include=extra))
        result |= _partial_candidates(make, equality, eq_columns, order, ranges, facts)
    return result


def _partial_candidates(
    make: Callable[..., Candidate],
    equality: Sequence[ColumnUse],
    eq_columns: Sequence[str],
    order: Sequence[str],
    ranges: Sequence[str],
    facts: TableFacts | None,
) -> set[Candidate]:
    """col = 'constant' with a rare constant: index only those rows, keyed by the other columns."""
    result = set()
    for use in equality:
        if use.constant is None or facts is None:
            continue
        frequencies = facts.common_values.get(use.column, {})
        frequency = frequencies.get(use.constant.strip("'"), min(frequencies.values(), default=1.0))
        others = [c for c in (*eq_columns, *order, *ranges[:1]) if c != use.column]
        # A status, a kind, a flag: a column of few values whose rare one is queried. Not `user_id = 5`
        # from an example statement: a partial index per user is no advice.
        few_values = 0 < _n_distinct(facts, use.column) <= PARTIAL_MAX_DISTINCT
        if frequency <= 0.2 and others and few_values:
            result.add(make(others, where=f"{quote_ident(use.column)} = {use.constant}"))
    return result
