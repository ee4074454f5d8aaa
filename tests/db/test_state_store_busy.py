"""The state store waits and never loses a run: a SQLite store held by another writer, and runs left
`running` by a process that was killed."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbmaint.model import now
from dbmaint.store import limits, schema
from dbmaint.store.history import History
from tests.db.conftest import Database, Invoke
from tests.db.helpers import dbmaint_backends, slow_vacuums, wait_for

TABLES = 4


def dirty_tables(database: Database) -> None:
    for i in range(TABLES):
        database.execute(
            f"CREATE TABLE dirty{i} (id int PRIMARY KEY, pad text)",
            f"INSERT INTO dirty{i} SELECT g, 'x' FROM generate_series(1, 5000) g",  # noqa: S608 (a test's own name)
            f"DELETE FROM dirty{i}",  # noqa: S608
        )


def store_path(state_url: str) -> str:
    return state_url.removeprefix("sqlite:///")


class Holder:
    """Another writer: holds the store's write lock (BEGIN EXCLUSIVE) for ``seconds``."""

    def __init__(self, path: str, seconds: float) -> None:
        self.locked = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, args=(path, seconds), daemon=True)
        self.thread.start()
        assert self.locked.wait(10)

    def _hold(self, path: str, seconds: float) -> None:
        conn = sqlite3.connect(path, isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        self.locked.set()
        self.release.wait(seconds)
        conn.execute("COMMIT")
        conn.close()


def runs_and_actions(state_url: str) -> tuple[list[tuple[str, str]], list[str]]:
    with sqlite3.connect(store_path(state_url)) as conn:
        runs = conn.execute("SELECT job, status FROM dbmaint_runs ORDER BY id").fetchall()
        actions = [status for (status,) in conn.execute("SELECT status FROM dbmaint_actions ORDER BY id")]
    return runs, actions


@pytest.fixture
def created_store(state_url: str) -> Iterator[str]:
    History(state_url).close()  # the tables exist before the other writer takes the lock
    yield state_url


def test_a_store_held_longer_than_sqlites_default_wait_loses_nothing(
    database: Database, dbmaint: Invoke, created_store: str
) -> None:
    dirty_tables(database)
    holder = Holder(store_path(created_store), seconds=30)  # Python's sqlite3 gives up after 5 s; ours waits 60
    result = dbmaint("vacuum", "--dsn", database.dsn)
    holder.thread.join()
    assert result.exit_code == 0, result.output
    runs, actions = runs_and_actions(created_store)
    assert runs == [("vacuum", "ok")]
    assert actions == ["done"] * TABLES


def test_records_wait_in_memory_while_the_store_cannot_take_them(
    database: Database, dbmaint: Invoke, created_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store busy past its wait: the vacuum goes on, its records are kept, and written when it answers."""
    monkeypatch.setattr(limits, "SQLITE_BUSY_TIMEOUT_S", 0.3)
    monkeypatch.setattr(limits, "WRITE_RETRY_DELAYS_S", (1.0, 2.0, 3.0))
    dirty_tables(database)
    slow_vacuums(database)  # each table's VACUUM takes a while: the store is taken in the middle of the pass
    results = []
    runner = threading.Thread(target=lambda: results.append(dbmaint("-v", "vacuum", "--dsn", database.dsn)))
    runner.start()
    wait_for(lambda: any(q.startswith("VACUUM") for _, q in dbmaint_backends(database.cluster)), timeout=20)
    holder = Holder(store_path(created_store), seconds=8)  # longer than one table's VACUUM
    runner.join(120)
    holder.thread.join()
    (result,) = results
    assert result.exit_code == 0, result.output
    assert "kept in memory" in result.stderr
    for i in range(TABLES):  # the maintenance did not wait for the store
        assert database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (f"dirty{i}",)) == 0
    runs, actions = runs_and_actions(created_store)
    assert runs == [("vacuum", "ok")]
    assert actions == ["done"] * TABLES


def test_a_store_that_never_answers_is_one_line_and_exit_1(
    database: Database, dbmaint: Invoke, created_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "SQLITE_BUSY_TIMEOUT_S", 0.2)
    monkeypatch.setattr(limits, "WRITE_RETRY_DELAYS_S", (0.2,))
    dirty_tables(database)
    slow_vacuums(database)
    results = []
    runner = threading.Thread(target=lambda: results.append(dbmaint("vacuum", "--dsn", database.dsn)))
    runner.start()
    wait_for(lambda: any(q.startswith("VACUUM") for _, q in dbmaint_backends(database.cluster)), timeout=20)
    holder = Holder(store_path(created_store), seconds=60)  # past the end of the run and its retries
    runner.join(120)
    (result,) = results
    errors = [line for line in result.stderr.splitlines() if line.startswith("dbmaint: ")]
    assert result.exit_code == 1
    assert len(errors) == 1 and "record(s) of this run not written" in errors[0], result.stderr
    assert "Traceback" not in result.output
    holder.release.set()
    holder.thread.join()


def _run_row(state_url: str, pid: int) -> int:
    store = History(state_url)
    try:
        with store.engine.begin() as conn:
            result = conn.execute(
                schema.runs.insert().values(
                    job="vacuum", database="app", status="running", started_at=now(),
                    host=socket.gethostname(), pid=pid,
                )
            )  # fmt: skip
            key = result.inserted_primary_key
            assert key is not None
            return int(key[0])
    finally:
        store.close()


def test_a_run_left_running_by_a_gone_process_is_closed_at_the_next_command(
    database: Database, dbmaint: Invoke, created_store: str, tmp_path: Path
) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    other_program = subprocess.Popen(["sleep", "60"])  # alive, but not dbmaint (a reused pid)
    live_dbmaint = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "dbmaint"])
    try:
        dead_run = _run_row(created_store, gone.pid)
        reused_run = _run_row(created_store, other_program.pid)
        live_run = _run_row(created_store, live_dbmaint.pid)
        assert dbmaint("vacuum", "--dsn", database.dsn).exit_code == 0
        store = History(created_store)
        statuses = {r.id: r.status for r in store.recent_runs(limit=10)}
        store.close()
        assert statuses[dead_run] == "interrupted"
        assert statuses[reused_run] == "interrupted"
        assert statuses[live_run] == "running"
    finally:
        for process in (other_program, live_dbmaint):
            process.kill()
            process.wait()


def test_a_killed_vacuum_is_recorded_interrupted_by_the_next_one(database: Database, created_store: str) -> None:
    slow_vacuums(database)
    dirty_tables(database)
    env = {**os.environ, "DBMAINT_STATE_URL": created_store}
    process = subprocess.Popen(
        [sys.executable, "-m", "dbmaint", "vacuum", "--dsn", database.dsn],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_for(lambda: any(q.startswith("VACUUM") for _, q in dbmaint_backends(database.cluster)), timeout=20)
    process.send_signal(signal.SIGKILL)
    process.wait()
    runs, actions = runs_and_actions(created_store)
    assert runs == [("vacuum", "running")] and "started" in actions
    database.execute(f'ALTER DATABASE "{database.name}" RESET ALL')
    wait_for(lambda: not dbmaint_backends(database.cluster), timeout=20)  # client_connection_check_interval
    done = subprocess.run(
        [sys.executable, "-m", "dbmaint", "vacuum", "--dsn", database.dsn], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    runs, actions = runs_and_actions(created_store)
    assert runs == [("vacuum", "interrupted"), ("vacuum", "ok")]
    assert "started" not in actions
