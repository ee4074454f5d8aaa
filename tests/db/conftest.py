"""A real throwaway PostgreSQL for the behaviour tests: one cluster per session, one database per test.

autovacuum is off so that the dead tuples a test makes are still there when dbmaint looks.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner, Result

from dbmaint.cli import cli
from dbmaint.pg.cluster import Cluster
from tests.db.helpers import make_plans

PASSWORD_USER = "dbmaint_pw"
PASSWORD = "correct horse"
_counter = itertools.count()


@pytest.fixture(scope="session")
def pg() -> Iterator[Cluster]:
    cluster = Cluster(
        settings={
            "shared_preload_libraries": "'pg_stat_statements,pg_qualstats'",
            "pg_qualstats.sample_rate": "1",  # every statement, so the tests see their own predicates
            "autovacuum": "off",
            "max_prepared_transactions": "5",
        },
        hba=[f"host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256"],
    ).start()
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'")
        conn.execute("CREATE ROLE app_user LOGIN")
    yield cluster
    cluster.destroy()


@pytest.fixture(scope="session")
def standby(pg: Cluster) -> Iterator[Cluster]:
    """A streaming standby of the session cluster that logs every statement it receives."""
    replica = pg.standby(settings={"log_statement": "'all'"})
    yield replica
    replica.destroy()


@dataclass(frozen=True)
class Database:
    cluster: Cluster
    name: str

    @property
    def dsn(self) -> str:
        return self.cluster.dsn(self.name)

    def connect(self, **kwargs: Any) -> psycopg.Connection[tuple[Any, ...]]:
        return psycopg.connect(self.dsn, autocommit=True, **kwargs)

    def execute(self, *statements: str) -> None:
        """Run statements in a session of their own and flush its statistics before it ends.

        A backend flushes pending statistics at most once a second while busy; forcing the flush as the
        last statement makes them visible before this returns (closing alone races the backend's exit).
        """
        with self.connect() as conn:
            for statement in statements:
                conn.execute(statement)
            conn.execute("SELECT pg_stat_force_next_flush()")

    def value(self, query: str, params: tuple[Any, ...] = ()) -> Any:
        with self.connect() as conn:
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute(query, params).fetchone()
            return None if row is None else row[0]


@pytest.fixture
def database(pg: Cluster) -> Iterator[Database]:
    name = f"t{os.getpid()}_{next(_counter)}"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    yield Database(pg, name)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def state_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("DBMAINT_STATE_URL", url)
    monkeypatch.delenv("DBMAINT_CONFIG", raising=False)
    monkeypatch.delenv("DBMAINT_DSN", raising=False)
    return url


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], str]:
    def write(text: str) -> str:
        path = tmp_path / f"config{next(_counter)}.toml"
        path.write_text(text)
        return str(path)

    return write


Invoke = Callable[..., Result]


@pytest.fixture
def dbmaint(state_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Invoke:
    """Run the dbmaint CLI in-process; the current directory has no config.toml."""
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(cli, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    """This repository's Alembic environment, copied, with an empty versions/."""
    location = tmp_path / "migrations"
    (location / "versions").mkdir(parents=True)
    for name in ("env.py", "script.py.mako"):
        shutil.copy(Path(__file__).resolve().parents[2] / "migrations" / name, location / name)
    return location


@pytest.fixture(scope="module")
def shop(pg: Cluster) -> Iterator[Database]:
    """The plan fixtures' shop schema (tests/data/plans/make_plans.py), built once per module that uses it."""
    name = "explain_shop"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    database.execute("CREATE EXTENSION hypopg", "CREATE EXTENSION pg_stat_statements", *make_plans.SCHEMA)
    yield database
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
