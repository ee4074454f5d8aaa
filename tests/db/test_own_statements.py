"""dbmaint's own statements stay out of every reading of pg_stat_statements, with `track = all` (nested
statements recorded too): explain, advise, capture and check read only the application's."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from dbmaint.advisor import workload
from dbmaint.config import SafetyConfig
from dbmaint.pg import db, own_statements
from dbmaint.pg.cluster import Cluster
from tests.db.conftest import Invoke
from tests.db.helpers import json_output

DB = "own"
ROLE = "dbmaint_plain"  # a role that may read statistics but not switch pg_stat_statements off
APP = [
    "SELECT count(*) FROM items WHERE category = %s",
    "SELECT * FROM items WHERE id = %s",
    "UPDATE items SET price = price + 1 WHERE id = %s",
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    server = Cluster(
        settings={
            "shared_preload_libraries": "'pg_stat_statements'",
            "pg_stat_statements.track": "all",
            "autovacuum": "off",
        }
    ).start()
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DB}")
        conn.execute(f"CREATE ROLE {ROLE} LOGIN IN ROLE pg_read_all_stats")
    with psycopg.connect(server.dsn(DB), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("CREATE EXTENSION hypopg")
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, category int, price numeric, pad text)")
        conn.execute("INSERT INTO items SELECT g, g % 500, g, repeat('x', 100) FROM generate_series(1, 200000) g")
        conn.execute("ANALYZE items")
        conn.execute(f"GRANT SELECT, UPDATE ON items TO {ROLE}")
        conn.execute("SELECT pg_stat_statements_reset()")
    yield server
    server.destroy()


def run_application(cluster: Cluster) -> None:
    with psycopg.connect(cluster.dsn(DB), autocommit=True, application_name="shop") as conn:
        for i in range(20):
            for statement in APP:
                conn.execute(statement, (i,))


def reset(cluster: Cluster) -> None:
    with psycopg.connect(cluster.dsn(DB), autocommit=True) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")  # the test's own statements stay out
        conn.execute("SELECT pg_stat_statements_reset()")


def entries(cluster: Cluster) -> list[tuple[int, str, bool, int]]:
    with psycopg.connect(cluster.dsn(DB), autocommit=True) as conn:
        conn.execute("SET pg_stat_statements.track = 'none'")
        rows = conn.execute("SELECT queryid, query, toplevel, calls FROM pg_stat_statements").fetchall()
    return [(int(q), str(t), bool(top), int(c)) for q, t, top, c in rows]


# As pg_stat_statements shows them: every constant a $n.
APP_NORMALIZED = {
    "SELECT count(*) FROM items WHERE category = $1",
    "SELECT * FROM items WHERE id = $1",
    "UPDATE items SET price = price + $2 WHERE id = $1",
}


def application_text(query: str) -> bool:
    return " ".join(query.split()) in APP_NORMALIZED


def harness_text(query: str) -> bool:
    """Transaction control, which is nobody's workload (explain's rolled-back transactions send it), and
    this test's own switch of pg_stat_statements (recorded as it runs)."""
    return query.startswith(("BEGIN", "COMMIT", "ROLLBACK", "SET pg_stat_statements.track"))


@pytest.mark.parametrize("user", ["postgres", ROLE], ids=["superuser", "plain-role"])
def test_nothing_dbmaint_sends_is_read_back_as_the_applications(
    cluster: Cluster, dbmaint: Invoke, write_config: Callable[[str], str], user: str
) -> None:
    dsn = cluster.dsn(DB, user=user)
    reset(cluster)
    run_application(cluster)
    config = write_config(
        f"[[databases]]\nname = 'app'\ndsn = '{dsn}'\n"
        "[capture]\nmin_mean_time = '0ms'\nanalyze = true\n"
        "[advisor]\nmin_calls = 1\nmin_total_time = '0s'\n"
    )
    app_calls = {q: c for q, t, top, c in entries(cluster) if application_text(t) and top}
    assert len(app_calls) == len(APP)

    explained = json_output(
        dbmaint("explain", "--config", config, "--format", "json", APP[0].replace("%s", "7")), exit_code=0
    )
    assert explained["analyzed"] is True
    for _ in range(2):
        json_output(dbmaint("advise", "--config", config, "--format", "json"), exit_code=0)
    captured = json_output(dbmaint("capture", "--config", config, "--format", "json"), exit_code=0)
    json_output(dbmaint("check", "--config", config, "--format", "json"), exit_code=1)
    with db.connection(db.Target("app", dsn), SafetyConfig()) as conn:  # what the advisor reads next time
        statements, _ = workload.from_pg_stat_statements(conn)

    assert {" ".join(s.query.split()) for s in statements if not harness_text(s.query)} == APP_NORMALIZED
    assert captured["captured"], captured
    assert all(application_text(s["query"]) for s in captured["captured"]), captured["captured"]
    # Every entry the application (or this test) did not send is recognisably dbmaint's, or a catalog read
    # an extension ran inside one of dbmaint's statements (hypopg's, nested under its what-if plans).
    for _, text, _, _ in entries(cluster):
        assert (
            application_text(text)
            or harness_text(text)
            or own_statements.is_own(text)
            or own_statements.reads_only_catalogs(text)
        ), text
    if user == "postgres":
        # dbmaint's sessions were not tracked at all: explain's EXPLAIN ANALYZE added no call to the
        # application's entry, top-level or nested.
        after = {q: c for q, t, top, c in entries(cluster) if application_text(t)}
        assert after == app_calls


def test_check_passes_when_only_dbmaints_own_statements_are_slow(
    cluster: Cluster, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    dsn = cluster.dsn(DB, user=ROLE)  # not superuser: its statements are recorded, and must be told apart
    reset(cluster)
    config = write_config(
        f"[[databases]]\nname = 'app'\ndsn = '{dsn}'\n[capture]\nmin_mean_time = '0ms'\n[advisor]\nmin_calls = 1\n"
    )
    for _ in range(2):  # the second check reads the first one's catalog queries back
        result = dbmaint("check", "--config", config, "--format", "json")
    document: Any = json.loads(result.stdout)
    item = next(i for i in document["items"] if i["check"] == "slow_queries")
    assert item["status"] == "pass", item
    assert any(own_statements.is_own(t) for _, t, _, _ in entries(cluster))  # they were recorded, and left out


def test_dbmaints_heavy_statements_take_no_place_of_the_applications_under_the_limit(cluster: Cluster) -> None:
    """The advisor reads the `max_statements` heaviest entries: dbmaint's own (a capture's EXPLAIN ANALYZE of a
    slow statement is as heavy as the statement) are left out before that limit, not after it."""
    reset(cluster)
    run_application(cluster)
    with psycopg.connect(cluster.dsn(DB, user=ROLE), autocommit=True) as conn:  # recorded: not a superuser
        conn.execute(own_statements.mark("SELECT pg_sleep(0.2)"))
        conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) SELECT pg_sleep(0.2)")
        conn.execute("/* traced */\n  explain analyze SELECT count(*) FROM items, pg_sleep(0.2)")
        conn.execute("PREPARE dbmaint_1 AS SELECT pg_sleep(0.2)")
        conn.execute("EXECUTE dbmaint_1")
    recorded = [t for _, t, _, _ in entries(cluster) if not harness_text(t)]
    assert sum(own_statements.is_own(t) for t in recorded) >= 4, recorded  # heavier than the application's

    with db.connection(db.Target("app", cluster.dsn(DB, user=ROLE)), SafetyConfig()) as conn:
        statements, _ = workload.from_pg_stat_statements(conn, limit=len(APP))
    assert {" ".join(s.query.split()) for s in statements} == APP_NORMALIZED
