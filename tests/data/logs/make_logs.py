"""Regenerate the server log fixtures of tests/unit/test_logs.py from a real PostgreSQL server.

Run from the repository root: ``/tmp/venv/bin/python tests/data/logs/make_logs.py``. It starts a
throwaway cluster that writes the same log in the stderr, csvlog and jsonlog formats, runs a fixed
script of statements, and copies the three files here. Durations, pids and timestamps change on every
run, so the exact values asserted in the tests must be updated after a regeneration.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
from pathlib import Path
from typing import Any

import psycopg

from dbmaint.pg.cluster import Cluster

HERE = Path(__file__).resolve().parent
# The output name of each format, by the extension PostgreSQL gives it.
OUTPUTS = {"postgresql.log": "stderr.log", "postgresql.csv": "postgresql.csv", "postgresql.json": "postgresql.json"}

SETTINGS = {
    "logging_collector": "on",
    "log_destination": "'stderr,csvlog,jsonlog'",
    "log_directory": "'log'",
    "log_filename": "'postgresql.log'",  # csvlog and jsonlog replace the .log suffix
    "log_line_prefix": "'%m [%p] %q%u@%d '",  # Debian's default
    "log_timezone": "'UTC'",
    "log_min_duration_statement": "0",
    "log_checkpoints": "off",
    "shared_preload_libraries": "'auto_explain'",
    "auto_explain.log_min_duration": "-1",  # switched on per session below
    "compute_query_id": "on",  # csvlog and jsonlog then carry pg_stat_statements' queryid
    "autovacuum": "off",
}

Conn = psycopg.Connection[tuple[Any, ...]]


def setup(cluster: Cluster) -> None:
    """The schema, set up without logging its statements: the fixtures stay small."""
    quiet = "-c log_min_duration_statement=-1"
    with psycopg.connect(cluster.dsn(), autocommit=True, options=quiet) as conn:
        conn.execute("CREATE ROLE clerk LOGIN")
        conn.execute("CREATE DATABASE shop OWNER clerk")
    with psycopg.connect(cluster.dsn("shop"), autocommit=True, options=quiet) as conn:
        conn.execute("SET ROLE clerk")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 1000) g")
        conn.execute("ANALYZE items")


def cancelled(conn: Conn, query: str, params: tuple[Any, ...] | None = None) -> None:
    try:
        conn.execute(query, params)
    except psycopg.errors.QueryCanceled:
        pass
    else:
        raise AssertionError(f"{query} was not cancelled")


def application_workload(app: Conn, admin: Conn) -> None:
    """The statements of the fixtures; two sessions alternate so that their pids interleave."""
    app.execute("SELECT count(*) FROM items")  # simple protocol
    app.execute("SELECT name FROM items WHERE id = %s", (42,))  # extended protocol: parse, bind, execute
    admin.execute("SELECT 1")
    app.execute("SELECT name FROM items WHERE id = %s", (43,), prepare=True)  # a named prepared statement
    app.execute("SELECT id FROM items WHERE name = %s AND id > %s", ("O'Reilly", 7))
    app.execute("SELECT id,\n       name\n  FROM items\n WHERE id < 5\n ORDER BY id")  # multi-line
    app.execute("SET statement_timeout = '100ms'")
    cancelled(app, "SELECT pg_sleep(5)")
    app.execute("SET log_parameter_max_length_on_error = -1")  # parameters of a failing statement
    cancelled(app, "SELECT pg_sleep(%s)", (5,))
    app.execute("RESET statement_timeout")
    threading.Timer(0.3, app.cancel).start()
    cancelled(app, "SELECT pg_sleep(5) AS cancelled_by_user")
    with contextlib.suppress(psycopg.errors.UndefinedTable):  # an error that is not a cancellation
        app.execute("SELECT * FROM no_such_table")
    admin.execute("SET log_statement = 'all'")  # a log_statement line as well as the duration line
    admin.execute("SELECT 2")
    admin.execute("SELECT id FROM items WHERE id = %s", (3,))  # logged as execute, then a bare duration
    admin.execute("SET log_statement = 'none'")


def auto_explain_workload(admin: Conn) -> None:
    """auto_explain's settings are superuser-only, so these plans come from the admin session."""
    admin.execute("SET auto_explain.log_min_duration = 0")
    admin.execute("SET auto_explain.log_format = 'json'")
    admin.execute("SELECT count(*) FROM items WHERE id > 990", prepare=False)
    admin.execute("SELECT name\n  FROM items\n WHERE id = %s", (7,))
    admin.execute("SET auto_explain.log_format = 'text'")
    admin.execute("SELECT name FROM items WHERE name LIKE 'item 9%'\n ORDER BY name")
    admin.execute("SET auto_explain.log_min_duration = -1")


def main() -> None:
    cluster = Cluster(settings=SETTINGS).start()
    try:
        setup(cluster)
        with (
            psycopg.connect(cluster.dsn("shop", user="clerk"), autocommit=True, application_name="shop-web") as app,
            psycopg.connect(cluster.dsn("shop"), autocommit=True, application_name="make_logs") as admin,
        ):
            application_workload(app, admin)
            auto_explain_workload(admin)
        cluster.stop()  # the collector has written everything once the server is down
        for source, target in OUTPUTS.items():
            shutil.copyfile(cluster.datadir / "log" / source, HERE / target)
            print(f"{HERE / target}: {(HERE / target).stat().st_size} bytes")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
