"""Read-only collection: catalog and statistics views -> typed records. No decisions are made here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from dbmaint import db
from dbmaint.catalog import (  # the readers explain needs live there, apart: they start fast
    ColumnStats,
    IndexDefinition,
    catalog,
    column_stats,
    extension_schema,
    index_definitions,
)
from dbmaint.errors import DatabaseError


@dataclass(frozen=True)
class TableStats:
    relid: int
    schema: str
    name: str
    is_catalog: bool
    reltuples: float
    relpages: int
    relallvisible: int
    size_bytes: int
    reloptions: list[str]
    xid_age: int
    mxid_age: int
    n_live_tup: int
    n_dead_tup: int
    n_mod_since_analyze: int
    n_ins_since_vacuum: int
    last_vacuum: datetime | None
    last_analyze: datetime | None
    can_maintain: bool

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Setting:
    name: str
    setting: str


@dataclass(frozen=True)
class ServerLoad:
    active_connections: int
    replication_lag_s: float | None


@dataclass(frozen=True)
class XminHolder:
    kind: str
    holder: str
    xmin_age: int | None
    held_s: float | None

    def describe(self) -> str:
        age = f", xmin age {self.xmin_age:,}" if self.xmin_age is not None else ""
        return f"{self.kind} {self.holder}{age}"


@dataclass(frozen=True)
class DeadTuples:
    n_dead_tup: int


def vacuum_tables(conn: psycopg.Connection[Any]) -> list[TableStats]:
    return db.fetch(conn, "vacuum_tables", TableStats)


def autovacuum_settings(conn: psycopg.Connection[Any]) -> dict[str, float]:
    return {row.name: float(row.setting) for row in db.fetch(conn, "autovacuum_settings", Setting)}


def server_load(conn: psycopg.Connection[Any]) -> ServerLoad:
    return db.fetch(conn, "server_load", ServerLoad)[0]


def xmin_holders(conn: psycopg.Connection[Any]) -> list[XminHolder]:
    return db.fetch(conn, "xmin_holders", XminHolder)


def dead_tuples(conn: psycopg.Connection[Any], relid: int) -> int:
    # A fresh statistics snapshot: VACUUM has just reported its counts.
    conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
    rows = db.fetch(conn, "table_dead_tuples", DeadTuples, {"relid": relid})
    return rows[0].n_dead_tup if rows else 0


@dataclass(frozen=True)
class DeadTupleLeader:
    table_name: str
    n_dead_tup: int


@dataclass(frozen=True)
class DatabaseHealth:
    xid_age: int
    multixact_age: int
    in_recovery: bool


def dead_tuple_leaders(conn: psycopg.Connection[Any], top: int) -> list[DeadTupleLeader]:
    """The ``top`` tables with the most dead rows."""
    return db.fetch(conn, "health_dead_tuples", DeadTupleLeader, {"top": top})


def database_health(conn: psycopg.Connection[Any]) -> DatabaseHealth:
    return db.fetch(conn, "health_database", DatabaseHealth)[0]


@dataclass(frozen=True)
class IndexStats:
    index_oid: int
    table_oid: int
    schema: str
    name: str
    table_name: str
    method: str
    relpages: int
    reltuples: float
    size_bytes: int
    reloptions: list[str]
    is_valid: bool
    is_catalog: bool
    is_exclusion: bool
    block_size: int
    missing_stats: int
    data_width: float
    max_null_frac: float
    tablespace_oid: int

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class InvalidIndex:
    index_oid: int
    schema: str
    name: str
    table_name: str
    table_oid: int
    size_bytes: int
    is_concurrent_leftover: bool
    build_running: bool

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class _Size:
    size_bytes: int


@dataclass(frozen=True)
class IndexPages:
    """pgstatindex()'s page accounting: deleted and empty pages count in index_size but hold nothing."""

    index_size: int
    internal_pages: int
    leaf_pages: int
    avg_leaf_density: float | None


@dataclass(frozen=True)
class _TablespacePath:
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


@dataclass(frozen=True)
class SchemaTable:
    """A user table; a partitioned one with the rows, pages and writes of all its partitions."""

    relid: int
    schema: str
    name: str
    is_partitioned: bool
    is_partition: bool
    partitions: int
    reltuples: float
    relpages: int
    size_bytes: int
    n_tup_upd: int
    n_tup_del: int
    has_primary_key: bool
    partition_key: list[str]
    extension_member: bool

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class SchemaIndex:
    """An index as the advisor compares it; ``key_columns`` names an expression column "(expression)"."""

    index_oid: int
    table_oid: int
    schema: str
    name: str
    table_name: str
    method: str
    is_partitioned: bool
    is_partition: bool  # attached to a partitioned index: dropped only with its parent
    is_valid: bool
    is_ready: bool
    is_unique: bool
    nulls_not_distinct: bool
    key_attnums: list[int]  # 0 for an expression
    key_columns: list[str]
    opclasses: list[int]
    collations: list[int]
    options: list[int]  # indoption: DESC, NULLS FIRST
    include_columns: list[str]
    expressions: str | None  # node trees without parse locations, comparable between indexes
    predicate: str | None  # likewise
    key_not_null: bool
    key_default_sorting: bool  # default operator classes and collations, ascending
    constraint_name: str | None
    constraint_type: str | None  # p, u or x
    referenced_by_foreign_key: bool
    is_replica_identity: bool
    idx_scan: int
    size_bytes: int
    created_at: datetime | None
    build_running: bool
    extension_member: bool

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}"


@dataclass(frozen=True)
class SchemaForeignKey:
    constraint_oid: int
    name: str
    schema: str
    table_name: str
    table_oid: int
    columns: list[str]
    attnums: list[int]
    referenced_schema: str
    referenced_table: str
    referenced_oid: int

    @property
    def table(self) -> str:
        return f"{self.schema}.{self.table_name}"

    @property
    def referenced(self) -> str:
        return f"{self.referenced_schema}.{self.referenced_table}"


@dataclass(frozen=True)
class StatsWindow:
    stats_reset: datetime | None  # None: never reset, counting since the database was created
    database_created: datetime | None  # None: not visible to this role
    collected_at: datetime


@dataclass(frozen=True)
class SchemaFacts:
    """Everything the schema findings are decided from, read in one go."""

    tables: tuple[SchemaTable, ...]
    indexes: tuple[SchemaIndex, ...]
    foreign_keys: tuple[SchemaForeignKey, ...]
    definitions: dict[int, IndexDefinition]  # by index OID, for the indexes that needed one and were free
    stats_reset: datetime | None
    collected_at: datetime
    database_created: datetime | None = None


def advisor_tables(conn: psycopg.Connection[Any]) -> list[SchemaTable]:
    return db.fetch(conn, "advisor_tables", SchemaTable)


def advisor_indexes(conn: psycopg.Connection[Any]) -> list[SchemaIndex]:
    return db.fetch(conn, "advisor_indexes", SchemaIndex)


def advisor_foreign_keys(conn: psycopg.Connection[Any]) -> list[SchemaForeignKey]:
    return db.fetch(conn, "advisor_foreign_keys", SchemaForeignKey)


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


@dataclass(frozen=True)
class _Created:
    created: datetime | None


def collect_schema(conn: psycopg.Connection[Any]) -> SchemaFacts:
    """The facts for ``dbmaint.analyse.findings.findings``; every query is read-only and never waits for a lock."""
    window = stats_window(conn)
    indexes = advisor_indexes(conn)
    # Printed definitions only where the catalog's own text is not enough: expressions, predicates, re-creation.
    wanted = [i.index_oid for i in indexes if i.expressions is not None or i.predicate is not None or not i.is_valid]
    return SchemaFacts(
        tables=tuple(advisor_tables(conn)),
        indexes=tuple(indexes),
        foreign_keys=tuple(advisor_foreign_keys(conn)),
        definitions=index_definitions(conn, wanted),
        stats_reset=window.stats_reset,
        database_created=window.database_created,
        collected_at=window.collected_at,
    )


__all__ = ["ColumnStats", "IndexDefinition", "catalog", "column_stats", "extension_schema", "index_definitions"]
