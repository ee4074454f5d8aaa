"""Read-only collection: catalog and statistics views -> typed records. No decisions are made here."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import psycopg

from dbmaint.errors import DatabaseError
from dbmaint.pg import db
from dbmaint.pg.catalog import (  # the readers explain needs live there, apart: they start fast
    ColumnStats,
    catalog,
    column_stats,
    extension_schema,
    index_definitions,
)
from dbmaint.pg.facts import (
    DatabaseHealth,
    DeadTupleLeader,
    DeadTuples,
    IndexPages,
    IndexStats,
    InvalidIndex,
    SchemaFacts,
    SchemaForeignKey,
    SchemaIndex,
    SchemaTable,
    ServerLoad,
    Setting,
    StatsWindow,
    TableStats,
    XminHolder,
)


def vacuum_tables(conn: psycopg.Connection[Any]) -> list[TableStats]:
    return db.fetch(conn, "vacuum_tables", TableStats)


def autovacuum_settings(conn: psycopg.Connection[Any]) -> dict[str, float]:
    return {row.name: float(row.setting) for row in db.fetch(conn, "autovacuum_settings", Setting)}


def server_load(conn: psycopg.Connection[Any]) -> ServerLoad:
    return db.fetch(conn, "server_load", ServerLoad)[0]


def xmin_holders(conn: psycopg.Connection[Any]) -> list[XminHolder]:
    return db.fetch(conn, "xmin_holders", XminHolder)


def dead_tuples(conn: psycopg.Connection[Any], relids: Sequence[int]) -> dict[int, int]:
    """Dead rows left in each table (by relid), as the statistics have them now."""
    if not relids:
        return {}
    return {
        row.relid: row.n_dead_tup for row in db.fetch(conn, "table_dead_tuples", DeadTuples, {"relids": list(relids)})
    }


def dead_tuple_leaders(conn: psycopg.Connection[Any], top: int) -> list[DeadTupleLeader]:
    """The ``top`` tables with the most dead rows."""
    return db.fetch(conn, "health_dead_tuples", DeadTupleLeader, {"top": top})


def database_health(conn: psycopg.Connection[Any]) -> DatabaseHealth:
    return db.fetch(conn, "health_database", DatabaseHealth)[0]


class _Size(NamedTuple):
    size_bytes: int


class _TablespacePath(NamedTuple):
    tablespace_oid: int
    path: str | None


def index_bloat_inputs(conn: psycopg.Connection[Any]) -> list[IndexStats]:
    return db.fetch(conn, "index_bloat_inputs", IndexStats)


def invalid_indexes(conn: psycopg.Connection[Any], table_oid: int | None = None) -> list[InvalidIndex]:
    return db.fetch(conn, "invalid_indexes", InvalidIndex, {"table_oid": table_oid})


def index_size(conn: psycopg.Connection[Any], schema: str, name: str) -> int | None:
    rows = db.fetch(conn, "index_size", _Size, {"schema": schema, "name": name})
    return rows[0].size_bytes if rows else None


def index_pages(conn: psycopg.Connection[Any], pgstattuple_schema: str, index_oid: int) -> IndexPages | None:
    """A btree index's pages from pgstattuple, or None when they cannot be had (privilege, lock)."""
    try:
        rows = db.fetch(
            conn, "pgstatindex", IndexPages, {"index_oid": index_oid}, identifiers={"schema": pgstattuple_schema}
        )
    except (psycopg.Error, DatabaseError):
        return None
    if not rows or rows[0].avg_leaf_density != rows[0].avg_leaf_density:  # NaN: an empty index
        return None
    return rows[0]


def tablespace_paths(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """Tablespace directories, when this role may see them (data_directory needs pg_read_all_settings)."""
    try:
        rows = db.fetch(conn, "tablespace_paths", _TablespacePath)
    except (psycopg.Error, DatabaseError):
        return {}
    return {row.tablespace_oid: row.path for row in rows if row.path}


# --- Schema facts for the index advisor's findings (missing keys, unindexed foreign keys, index hygiene) ---


def advisor_tables(conn: psycopg.Connection[Any], names: Collection[str] | None = None) -> list[SchemaTable]:
    return db.fetch(conn, "advisor_tables", SchemaTable, _names(names))


def advisor_indexes(conn: psycopg.Connection[Any], names: Collection[str] | None = None) -> list[SchemaIndex]:
    return db.fetch(conn, "advisor_indexes", SchemaIndex, _names(names))


def advisor_foreign_keys(conn: psycopg.Connection[Any], names: Collection[str] | None = None) -> list[SchemaForeignKey]:
    return db.fetch(conn, "advisor_foreign_keys", SchemaForeignKey, _names(names))


def _names(names: Collection[str] | None) -> dict[str, Any]:
    """The %(names)s of a query that reads every table, or (a list) only the tables of those names."""
    return {"names": None if names is None else sorted(names)}


def stats_window(conn: psycopg.Connection[Any]) -> StatsWindow:
    window = db.fetch(conn, "advisor_stats_window", StatsWindow)[0]
    if window.stats_reset is not None:
        return window
    allowed = db.fetch_value(
        conn, "SELECT pg_catalog.has_function_privilege('pg_catalog.pg_stat_file(text, boolean)', 'EXECUTE')"
    )
    if not allowed:
        return window  # without the privilege the counting start stays unknown: nothing is called unused
    created = db.fetch(conn, "database_created", _Created)
    return StatsWindow(window.stats_reset, created[0].created if created else None, window.collected_at)


class _Created(NamedTuple):
    created: datetime | None


class _Named(NamedTuple):
    name: str


def collect_schema(conn: psycopg.Connection[Any], names: Collection[str] | None = None) -> SchemaFacts:
    """The facts for ``dbmaint.advisor.schema_findings.findings``, of every table or only of the tables of
    those ``names`` and of the tables referencing them (an unindexed foreign key there slows a DELETE of a
    named table); every query is read-only and never waits for a lock."""
    if names is not None:
        names = {*names, *(row.name for row in db.fetch(conn, "advisor_referencing_tables", _Named, _names(names)))}
    window = stats_window(conn)
    indexes = advisor_indexes(conn, names)
    # Printed definitions only where the catalog's own text is not enough: expressions, predicates, re-creation.
    wanted = [i.index_oid for i in indexes if i.expressions is not None or i.predicate is not None or not i.is_valid]
    return SchemaFacts(
        tables=tuple(advisor_tables(conn, names)),
        indexes=tuple(indexes),
        foreign_keys=tuple(advisor_foreign_keys(conn, names)),
        definitions=index_definitions(conn, wanted),
        stats_reset=window.stats_reset,
        database_created=window.database_created,
        collected_at=window.collected_at,
    )


__all__ = ["ColumnStats", "catalog", "column_stats", "extension_schema", "index_definitions"]
