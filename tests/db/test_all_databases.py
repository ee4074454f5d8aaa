"""A configuration entry for every database of a server (``databases = "all"``): 50 databases vacuumed with at
most ``jobs`` maintenance connections at any moment, databases created and dropped between runs, a server
that cannot be reached, all on a cluster of their own (the session cluster's other databases stay out)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmaint.config import SafetyConfig
from dbmaint.errors import ConnectError
from dbmaint.pg import db
from dbmaint.pg.cluster import Cluster
from tests.db.conftest import Invoke
from tests.db.helpers import ServiceProcess, json_output, wait_for

DATABASES = 50
JOBS = 3


@pytest.fixture(scope="module")
def server() -> Iterator[Cluster]:
    cluster = Cluster(settings={"autovacuum": "off", "max_connections": "100"}).start()
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        for n in range(DATABASES - 1):  # with postgres itself: 50
            conn.execute(f"CREATE DATABASE app{n:02d} STRATEGY = FILE_COPY")
            with psycopg.connect(cluster.dsn(f"app{n:02d}"), autocommit=True) as app:
                _dirty(app)
    yield cluster
    cluster.destroy()


def _dirty(conn: psycopg.Connection[Any]) -> None:
    """A table well past vacuum's trigger: dbmaint must vacuum it."""
    conn.execute("CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, v text)")
    conn.execute("INSERT INTO t SELECT i, 'x' FROM generate_series(1, 2000) AS i ON CONFLICT DO NOTHING")
    conn.execute("DELETE FROM t WHERE id > 200")
    conn.execute("SELECT pg_stat_force_next_flush()")


def _config(write_config: Callable[[str], str], server: Cluster, extra: str = "") -> str:
    return write_config(
        f'[[databases]]\nname = "pg1"\ndsn = "{server.dsn()}"\ndatabases = "all"\njobs = {JOBS}\n{extra}'
    )


class ConnectionSampler:
    """Counts dbmaint's sessions on the server every few milliseconds, from a session of its own."""

    def __init__(self, server: Cluster) -> None:
        self.conn = psycopg.connect(server.dsn(), autocommit=True, application_name="sampler")
        self.most = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ConnectionSampler:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            row = self.conn.execute(
                "SELECT count(*) FROM pg_catalog.pg_stat_activity WHERE application_name = 'dbmaint'"
            ).fetchone()
            self.most = max(self.most, row[0] if row else 0)
            self.samples += 1
            time.sleep(0.005)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.conn.close()


def _reports(document: Any) -> list[dict[str, Any]]:
    """One report per database: an array for several, the object itself for one (the contract's shape)."""
    return document if isinstance(document, list) else [document]


def _dead_rows(server: Cluster, database: str) -> int:
    with psycopg.connect(server.dsn(database), autocommit=True) as conn:
        row = conn.execute("SELECT n_dead_tup FROM pg_catalog.pg_stat_user_tables WHERE relname = 't'").fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.slow
def test_every_database_of_the_server_within_the_connection_budget(
    server: Cluster, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = _config(write_config, server)
    with ConnectionSampler(server) as sampler:
        result = dbmaint("vacuum", "--config", config, "--format", "json")
    document = json_output(result, exit_code=0)
    reports = {r["database"]: r for r in _reports(document)}
    names = {f"pg1/app{n:02d}" for n in range(DATABASES - 1)} | {"pg1/postgres"}
    assert set(reports) == names
    assert all(r["status"] == "ok" for r in reports.values()), [r for r in reports.values() if r["status"] != "ok"]
    assert sampler.samples > 20
    assert 1 <= sampler.most <= JOBS, sampler.most  # never more than jobs maintenance connections at once
    for n in (0, 17, DATABASES - 2):
        assert _dead_rows(server, f"app{n:02d}") == 0  # equally clean afterwards

    # Between runs a database is dropped and another created: the next run follows the server as it is now.
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE app05")
        conn.execute("CREATE DATABASE fresh STRATEGY = FILE_COPY")
    with psycopg.connect(server.dsn("fresh"), autocommit=True) as fresh:
        _dirty(fresh)
    again = json_output(dbmaint("vacuum", "--config", config, "--format", "json"), exit_code=0)
    listed = {r["database"] for r in _reports(again)}
    assert "pg1/fresh" in listed and "pg1/app05" not in listed and len(listed) == DATABASES
    assert _dead_rows(server, "fresh") == 0


def test_exclude_patterns_and_one_database_by_name(
    server: Cluster, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = _config(write_config, server, 'exclude = ["app1*", "postgres"]\n')
    document = json_output(dbmaint("vacuum", "--config", config, "--format", "json", "--dry-run"), exit_code=0)
    listed = {r["database"] for r in _reports(document)}
    assert "pg1/app10" not in listed and "pg1/postgres" not in listed and "pg1/app20" in listed
    one = json_output(
        dbmaint("vacuum", "--config", config, "--database", "pg1/app20", "--format", "json", "--dry-run"), exit_code=0
    )
    assert [r["database"] for r in _reports(one)] == ["pg1/app20"]
    missing = dbmaint("vacuum", "--config", config, "--database", "pg1/app10", "--dry-run")
    assert missing.exit_code == 2 and "excluded" in missing.stderr


def test_a_server_that_cannot_be_listed_fails_in_its_place_and_the_others_run(
    server: Cluster, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = write_config(
        f'[[databases]]\nname = "gone"\ndsn = "host=127.0.0.1 port=1 dbname=postgres connect_timeout=2"\n'
        f'databases = "all"\njobs = 2\n\n'
        f'[[databases]]\nname = "one"\ndsn = "{server.dsn("app01")}"\n'
    )
    result = dbmaint("vacuum", "--config", config, "--format", "json")
    document = json_output(result, exit_code=3)
    statuses = {r["database"]: r["status"] for r in _reports(document)}
    assert statuses == {"gone": "failed", "one": "ok"}
    assert "cannot list the databases of 'gone'" in result.stderr


def test_an_unlisted_server_target_never_connects_anywhere(server: Cluster) -> None:
    """The stand-in for a server's databases carries the server's DSN: no use of it may reach that database."""
    stand_in = db.Target("gone", server.dsn(), server="gone", jobs=2, unavailable="cannot list the databases")
    with pytest.raises(ConnectError, match="cannot list"):
        db.connect(stand_in, SafetyConfig())


def test_the_service_schedules_a_database_created_while_it_runs(
    server: Cluster, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    config = write_config(
        f'[[databases]]\nname = "pg1"\ndsn = "{server.dsn()}"\ndatabases = "all"\n'
        'exclude = ["app*", "postgres", "fresh"]\n'
        '[vacuum]\nschedule = "*/2 * * * * *"\nretry_delay = "1s"\n'
        "[reindex]\nenabled = false\n[capture]\nenabled = false\n[advisor]\nenabled = false\n"
        '[metrics]\nrefresh = "1s"\n[safety]\nconnect_timeout = "2s"\n'
    )
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS later")
    service = ServiceProcess(config, f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "service.log")
    try:
        wait_for(lambda: "scheduling" in service.log, timeout=30)
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE later STRATEGY = FILE_COPY")
        with psycopg.connect(server.dsn("later"), autocommit=True) as later:
            _dirty(later)
        runs = service.wait_for_runs(1, job="vacuum", timeout=30)
        assert {r.database for r in runs} == {"pg1/later"}
        assert _dead_rows(server, "later") == 0
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute("DROP DATABASE later WITH (FORCE)")
        wait_for(lambda: "pg1/later gone" in service.log)
        assert service.alive()
    finally:
        code = service.stop()
    assert code == 0, service.log
    assert "databases now: pg1/later added" in service.log
    assert "unscheduled vacuum:pg1/later" in service.log
