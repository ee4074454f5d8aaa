"""The built size of a candidate index, from the catalog (see analyse.index_size for the model).

One catalog read per table (cached for the advisor's run), and for a partial index one plain EXPLAIN of
``SELECT FROM table WHERE predicate`` for the share of rows it keeps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from dbmaint.advisor import index_size
from dbmaint.advisor.index_size import Column, IndexShape
from dbmaint.pg import db

Connection = psycopg.Connection[tuple[Any, ...]]


@dataclass(frozen=True)
class _Leaf:
    schema: str
    name: str


@dataclass(frozen=True)
class _ColumnRow:
    name: str
    typlen: int
    typalign: str
    avg_width: float
    null_frac: float
    n_distinct: float
    common_freqs: list[float]
    equal_image: bool
    reltuples: float


class Sizer:
    """Estimates of btree sizes on one connection; table facts read once each."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._columns: dict[tuple[str, str], dict[str, Column]] = {}
        self._rows: dict[tuple[str, str], float] = {}
        self._leaves: dict[tuple[str, str], list[_Leaf]] = {}

    def size(
        self,
        schema: str,
        table: str,
        columns: tuple[str, ...],
        include: tuple[str, ...] = (),
        where: str | None = None,
        *,
        unique: bool = False,
    ) -> int:
        if (schema, table) not in self._leaves:
            self._leaves[(schema, table)] = db.fetch(
                self.conn, "partition_leaves", _Leaf, {"schema": schema, "table": table}
            )
        leaves = self._leaves[(schema, table)]
        if leaves:  # a partitioned index is its partitions' indexes, each sized on its own statistics
            return sum(self.size(leaf.schema, leaf.name, columns, include, where, unique=unique) for leaf in leaves)
        known = self._facts(schema, table, (*columns, *include))
        rows = self._rows.get((schema, table), 0.0)
        if where is not None:
            rows *= self._kept_share(schema, table, where, rows)
        missing = [c for c in (*columns, *include) if c not in known]
        if missing:  # an expression or a column unknown to the catalog: assume a wide unique key
            known = {**known, **{c: Column(c, -1, "i", 32.0) for c in missing}}
        shape = IndexShape(
            keys=[known[c] for c in columns], include=[known[c] for c in include], unique=unique, rows=rows
        )
        return index_size.estimate(shape)

    def _facts(self, schema: str, table: str, columns: tuple[str, ...]) -> dict[str, Column]:
        cached = self._columns.setdefault((schema, table), {})
        wanted = [c for c in columns if c not in cached]
        if wanted:
            rows = db.fetch(
                self.conn, "index_size_columns", _ColumnRow, {"schema": schema, "table": table, "columns": wanted}
            )
            for row in rows:
                self._rows[(schema, table)] = row.reltuples
                cached[row.name] = Column(
                    row.name, row.typlen, row.typalign, row.avg_width, row.null_frac, row.n_distinct,
                    tuple(row.common_freqs), row.equal_image,
                )  # fmt: skip
        return cached

    def _kept_share(self, schema: str, table: str, where: str, rows: float) -> float:
        """The planner's estimate of the share of rows ``where`` keeps (plain EXPLAIN: nothing runs)."""
        if rows <= 0:
            return 1.0
        statement = sql.SQL("EXPLAIN (FORMAT JSON) SELECT FROM {} WHERE {}").format(
            sql.Identifier(schema, table), sql.SQL(where)
        )
        try:
            plan = db.fetch_value(self.conn, statement)
        except psycopg.Error:
            return 1.0
        document = json.loads(plan) if isinstance(plan, str) else plan
        return float(min(1.0, max(document[0]["Plan"]["Plan Rows"] / rows, 0.0)))
