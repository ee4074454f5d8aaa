"""Catalog readers for statements: relations and their columns, column statistics, extensions, index
definitions. Apart from collect.py, whose many records cost import time: dbmaint explain needs only these.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg

from dbmaint.pg import db

if TYPE_CHECKING:
    from dbmaint.pg.facts import IndexDefinition
    from dbmaint.sql import sqlshape


class _Schema(NamedTuple):
    schema: str


def extension_schema(conn: psycopg.Connection[Any], name: str) -> str | None:
    rows = db.fetch(conn, "extension_schema", _Schema, {"name": name})
    return rows[0].schema if rows else None


# A pg_get_indexdef() that loses the race with a new ACCESS EXCLUSIVE request gives up after this long.
DEFINITION_LOCK_TIMEOUT_MS = "50"


def index_definitions(conn: psycopg.Connection[Any], index_oids: list[int]) -> dict[int, IndexDefinition]:
    """Printed definitions of these indexes, leaving out any whose table is locked (they are display only).

    Meant for an autocommit connection: the short lock_timeout is local to a transaction of its own.
    """
    if not index_oids:
        return {}
    try:
        return _definitions_nowait(conn, index_oids)
    except psycopg.errors.LockNotAvailable:
        pass  # a lock request came in after the query looked: try them one by one, losing only that table's
    found: dict[int, IndexDefinition] = {}
    for oid in index_oids:
        try:
            found.update(_definitions_nowait(conn, [oid]))
        except psycopg.errors.LockNotAvailable:
            continue
    return found


def _definitions_nowait(conn: psycopg.Connection[Any], index_oids: list[int]) -> dict[int, IndexDefinition]:
    with conn.transaction():
        db.set_settings(conn, {"lock_timeout": DEFINITION_LOCK_TIMEOUT_MS}, local=True)
        from dbmaint.pg.facts import IndexDefinition  # 16 record classes (~15 ms): a lazy import

        rows = db.fetch(conn, "advisor_index_definitions", IndexDefinition, {"index_oids": index_oids})
    return {row.index_oid: row for row in rows}


# --- relations and column statistics, for reading statements (advisor, explain) ------------------------


class _RelationRow(NamedTuple):
    schema: str
    name: str
    kind: str
    columns: dict[str, str]
    view_definition: str | None


def catalog(conn: psycopg.Connection[Any], names: Collection[str] | None = None) -> sqlshape.Catalog:
    """Every relation a statement may name, with columns and view definitions, and the search_path; with
    ``names`` only the relations of those names, unless one is a view (its definition names others: then
    every relation, as without)."""
    from dbmaint.sql import sqlshape

    rows = db.fetch(conn, "advisor_relations", _RelationRow, {"names": None if names is None else sorted(names)})
    if names is not None and any(r.kind == "v" for r in rows):
        rows = db.fetch(conn, "advisor_relations", _RelationRow, {"names": None})
    relations = {
        (r.schema, r.name): sqlshape.Relation(r.schema, r.name, r.kind, r.columns, r.view_definition) for r in rows
    }
    search_path = db.fetch_value(conn, "SELECT pg_catalog.current_schemas(false)") or ["public"]
    return sqlshape.Catalog(relations, tuple(search_path))


class ColumnStats(NamedTuple):
    histogram: list[str] | None
    most_common: str | None
    most_common_freq: float
    least_common: str | None = None


def column_stats(conn: psycopg.Connection[Any], schema: str, table: str, column: str) -> ColumnStats | None:
    rows = db.fetch(conn, "advisor_histogram", ColumnStats, {"schema": schema, "table": table, "column": column})
    return rows[0] if rows else None
