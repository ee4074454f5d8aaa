"""Names production databases hold and fixtures rarely do: a schema with a double quote and a space, a
63-byte table name with unicode, mixed case and quotes, columns named with reserved words, spaces and
non-ASCII letters, an index name of 63 bytes. Through vacuum, reindex, advise and its migration (alembic
upgrade and downgrade), explain and capture: every statement quotes them, nothing fails on them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from psycopg import sql

from tests.db.conftest import Database, Invoke
from tests.db.helpers import alembic_config, json_output

SCHEMA = 'Weird "Schema" ü'
TABLE = ('Ordér "Lines" of Year' + "_" * 63).encode()[:63].decode()  # exactly 63 bytes
INDEX = ("Idx Ü " + "x" * 63)[:61]  # 62 bytes with the Ü
assert len(TABLE.encode()) == 63 and len(INDEX.encode()) == 62
RELATION = sql.Identifier(SCHEMA, TABLE)
# Columns: reserved words, a space and mixed case, a non-ASCII letter.
COLUMNS = ("select", "User Id", "ünï", "user")


def create(database: Database, *, rows: int = 200_000) -> None:
    with database.connect() as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(SCHEMA)))
        conn.execute(
            sql.SQL('CREATE TABLE {} (id int PRIMARY KEY, "select" int, "User Id" int, "ünï" text, "user" int)').format(
                RELATION
            )
        )
        conn.execute(
            sql.SQL(
                "INSERT INTO {} SELECT g, mod(g, 1000), mod(g, 20000), md5(g::text), mod(g, 5)"
                " FROM generate_series(1, %s) g"
            ).format(RELATION),
            (rows,),
        )
        conn.execute(
            sql.SQL("CREATE INDEX {} ON {} ({})").format(sql.Identifier(INDEX), RELATION, sql.Identifier("ünï"))
        )
        conn.execute(sql.SQL("ANALYZE {}").format(RELATION))


def qualified() -> str:
    return RELATION.as_string(None)


def run_workload(database: Database, times: int = 12) -> str:
    query = sql.SQL('SELECT "select", "ünï" FROM {} WHERE "User Id" = %s').format(RELATION)
    with database.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for i in range(times):
            conn.execute(query, (i * 37,))
    return query.as_string(None).replace("%s", "$1")


def document(result: Any) -> dict[str, Any]:
    found = json_output(result, exit_code=0)
    assert isinstance(found, dict)
    return found


def test_vacuum_and_reindex(database: Database, dbmaint: Invoke, write_config: Callable[[str], str]) -> None:
    create(database)
    database.execute(sql.SQL("DELETE FROM {} WHERE mod(id, 10) <> 0").format(RELATION).as_string(None))

    vacuum = document(dbmaint("vacuum", "--dsn", database.dsn, "--format", "json"))
    done = [a for a in vacuum["actions"] if a["status"] == "done"]
    assert [a["statement"] for a in done] == [f"VACUUM (ANALYZE, SKIP_LOCKED) {qualified()}"], vacuum["actions"]
    assert (
        database.value(
            "SELECT n_dead_tup FROM pg_stat_user_tables WHERE schemaname = %s AND relname = %s", (SCHEMA, TABLE)
        )
        == 0
    )

    config = write_config('[reindex]\nmin_size = "1MB"\nmin_bloat_ratio = 0.3\n')
    reindex = document(dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"))
    statements = {a["statement"] for a in reindex["actions"] if a["status"] == "done"}
    index = sql.Identifier(SCHEMA, INDEX).as_string(None)
    assert f"REINDEX INDEX CONCURRENTLY {index}" in statements, reindex["actions"]


def test_advise_and_its_migration(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str], migrations: Path
) -> None:
    database.execute("CREATE EXTENSION pg_stat_statements", "CREATE EXTENSION hypopg")
    create(database)
    run_workload(database)
    config = write_config('[advisor]\nmin_total_time = "0s"\n')
    versions = migrations / "versions"
    advice = document(
        dbmaint(
            "advise", "--config", config, "--dsn", database.dsn, "--write-migration", "--versions-dir", str(versions),
            "--format", "json",
        )
    )  # fmt: skip
    (recommendation,) = [r for r in advice["recommendations"] if r["table"] == f"{SCHEMA}.{TABLE}"]
    assert recommendation["columns"][0] == "User Id"
    assert recommendation["definition"].startswith("CREATE INDEX CONCURRENTLY ")
    assert f' ON {qualified()} ("User Id"' in recommendation["definition"]
    name = recommendation["name"]
    assert len(name.encode()) <= 63

    def built() -> bool:
        return bool(
            database.value(
                "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE c.relname = %s AND c.relnamespace = %s::regnamespace AND i.indisvalid",
                (name, sql.Identifier(SCHEMA).as_string(None)),
            )
        )

    alembic = alembic_config(migrations, database.dsn)
    command.upgrade(alembic, "head")
    assert built()
    command.downgrade(alembic, "base")
    assert not built()
    assert database.value(sql.SQL("SELECT count(*) FROM {}").format(RELATION).as_string(None)) == 200_000


def test_explain_and_capture(database: Database, dbmaint: Invoke, write_config: Callable[[str], str]) -> None:
    database.execute("CREATE EXTENSION pg_stat_statements")
    create(database)
    text = run_workload(database, times=3)

    literal = sql.SQL('SELECT "select", "ünï" FROM {} WHERE "User Id" = 42').format(RELATION).as_string(None)
    explained = document(dbmaint("explain", literal, "--dsn", database.dsn, "--format", "json"))
    (problem,) = [p for p in explained["problems"] if p["kind"] == "seq_scan_filter"]
    assert problem["fix"] == f'CREATE INDEX CONCURRENTLY ON {qualified()} ("User Id")'
    database.execute(problem["fix"])  # the fix as printed is valid SQL for these names
    assert (
        database.value("SELECT count(*) FROM pg_index WHERE indrelid = %s::regclass", (qualified(),)) == 3
    )  # the primary key, INDEX, and the fix's

    config = write_config('[capture]\nmin_mean_time = "0ms"\n')
    captured = document(dbmaint("capture", "--config", config, "--dsn", database.dsn, "--format", "json"))
    assert captured["status"] == "ok", captured
    assert text in [c["query"] for c in captured["captured"]]
