"""One database's failure is that database's failure: every multi-database command does all the others,
reports each in its place (text and JSON), and exits with the worst status."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmaint.pg.cluster import Cluster, free_port
from tests.db.conftest import PASSWORD_USER, Database, Invoke
from tests.db.helpers import json_output

DEAD = "dead"


def _dirty(db: Database) -> None:
    db.execute(
        "CREATE TABLE items (id int PRIMARY KEY, note text)",
        "INSERT INTO items SELECT g, 'x' FROM generate_series(1, 5000) g",
        "ANALYZE items",
        "DELETE FROM items WHERE id % 2 = 0",
    )


@pytest.fixture
def four(pg: Cluster) -> Iterator[list[Database]]:
    """Three live databases, each with a table that needs a vacuum."""
    live = []
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for i in range(3):
            name = f"multi_{i}"
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
            live.append(Database(pg, name))
    for db in live:
        _dirty(db)
    yield live
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for db in live:
            conn.execute(f"DROP DATABASE IF EXISTS {db.name} WITH (FORCE)")


def _config(write_config: Callable[[str], str], entries: list[tuple[str, str]]) -> str:
    lines = []
    for name, dsn in entries:
        lines += ["[[databases]]", f'name = "{name}"', f'dsn = "{dsn}"']
    return write_config("\n".join(lines) + "\n")


def _dead_port(four: list[Database], write_config: Callable[[str], str]) -> str:
    """The third of four databases is on a port where nothing listens."""
    entries = [(db.name, db.dsn) for db in four]
    entries.insert(2, (DEAD, f"host=127.0.0.1 port={free_port()} dbname=app user=postgres connect_timeout=3"))
    return _config(write_config, entries)


def _names(document: Any) -> list[str]:
    assert isinstance(document, list), document
    return [entry["database"] for entry in document]


@pytest.mark.parametrize(
    "command",
    [["vacuum"], ["vacuum", "--dry-run"], ["reindex"], ["reindex", "--dry-run"], ["capture"], ["advise"], ["check"]],
)
def test_a_dead_port_among_four_fails_alone(
    four: list[Database], dbmaint: Invoke, write_config: Callable[[str], str], command: list[str]
) -> None:
    config = _dead_port(four, write_config)
    result = dbmaint(*command, "--config", config, "--format", "json")
    assert result.exit_code == 3, result.output  # cannot connect, the worst status met
    document = json.loads(result.stdout)
    assert _names(document) == [four[0].name, four[1].name, DEAD, four[2].name]
    dead = document[2]
    assert dead["status"] in ("failed", "error"), dead
    assert "connect" in json.dumps(dead), dead
    for entry in (document[0], document[1], document[3]):
        assert entry.get("status") not in ("failed", "error"), entry
    assert f"dbmaint: {DEAD}: " in result.stderr
    assert "Traceback" not in result.output

    text = dbmaint(*command, "--config", config)
    assert text.exit_code == 3
    for db in four:
        assert db.name in text.stdout, text.stdout  # the fourth database is done and shown too
    assert DEAD in text.stdout


def test_the_vacuum_after_the_dead_database_is_done_and_recorded(
    four: list[Database], dbmaint: Invoke, write_config: Callable[[str], str], state_url: str
) -> None:
    config = _dead_port(four, write_config)
    result = dbmaint("vacuum", "--config", config)
    assert result.exit_code == 3
    for db in four:  # the dead rows of every live database are gone, the last one's included
        assert db.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'items'") == 0
    with sqlite3.connect(state_url.removeprefix("sqlite:///")) as store:
        runs = dict(store.execute("SELECT database, status FROM dbmaint_runs WHERE job = 'vacuum'").fetchall())
    assert runs == {four[0].name: "ok", four[1].name: "ok", DEAD: "failed", four[2].name: "ok"}


def test_a_dropped_database_and_a_wrong_password_fail_alone(
    pg: Cluster, four: list[Database], dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    dropped = "multi_dropped"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {dropped}")
    dropped_dsn = pg.dsn(dropped)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {dropped}")
    wrong_password = f"host=127.0.0.1 port={pg.port} dbname={four[0].name} user={PASSWORD_USER} password=wrong"
    entries = [
        (four[0].name, four[0].dsn),
        ("gone", dropped_dsn),
        ("badpw", wrong_password),
        (four[1].name, four[1].dsn),
    ]
    config = _config(write_config, entries)
    for command in (["vacuum", "--dry-run"], ["check"]):
        result = dbmaint(*command, "--config", config, "--format", "json")
        assert result.exit_code == 3, result.output
        document = json.loads(result.stdout)
        assert _names(document) == [four[0].name, "gone", "badpw", four[1].name]
        assert "multi_dropped" in json.dumps(document[1])
        assert "does not exist" in json.dumps(document[1])
        assert "password" in json.dumps(document[2])
        assert document[3].get("status") not in ("failed", "error")


def test_one_database_keeps_its_one_line_and_exit_code(dbmaint: Invoke, tmp_path: Path) -> None:
    dsn = f"host=127.0.0.1 port={free_port()} dbname=app user=postgres connect_timeout=3"
    result = dbmaint("vacuum", "--dsn", dsn, "--format", "json")
    assert result.exit_code == 3
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_runs_say_which_server_two_databases_of_one_name_ran_on(pg: Cluster, dbmaint: Invoke) -> None:
    """Two clusters, each with a database "app": their runs are told apart by the server's identity."""
    other = Cluster().start()
    try:
        identities = []
        for cluster in (pg, other):
            with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
                conn.execute('DROP DATABASE IF EXISTS "app" WITH (FORCE)')
                conn.execute('CREATE DATABASE "app"')
                row = conn.execute("SELECT system_identifier::text FROM pg_control_system()").fetchone()
                assert row is not None
                identities.append(row[0])
            result = dbmaint("vacuum", "--dsn", cluster.dsn("app"), "--format", "json")
            assert result.exit_code == 0, result.output
        runs = json_output(dbmaint("history", "--format", "json"), exit_code=0)["runs"]
        assert sorted(r["server"] for r in runs if r["database"] == "app") == sorted(identities)
        assert identities[0] != identities[1]
        table = dbmaint("history")
        assert f"@{identities[0][-6:]}" in table.output and f"@{identities[1][-6:]}" in table.output
    finally:
        other.destroy()
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "app" WITH (FORCE)')
