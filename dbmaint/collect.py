"""Read-only collection: catalog and statistics views -> typed records. No decisions are made here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from dbmaint import db
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
class _Schema:
    schema: str


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


def extension_schema(conn: psycopg.Connection[Any], name: str) -> str | None:
    rows = db.fetch(conn, "extension_schema", _Schema, {"name": name})
    return rows[0].schema if rows else None


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
