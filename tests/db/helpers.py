"""Helpers for the behaviour tests: other sessions holding locks, dbmaint as a real process, JSON output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from click.testing import Result

from dbmaint.pg.cluster import Cluster
from dbmaint.store.history import History, RunRecord

if TYPE_CHECKING:
    from tests.db.conftest import Database


def json_output(result: Result) -> Any:
    assert result.exit_code in (0, 1), result.output + result.stderr
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: stdout {result.stdout!r}, stderr {result.stderr!r}") from None


def run_dbmaint_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """dbmaint as a real process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "dbmaint", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class LockHolder:
    """Another session holding a lock in an open transaction, in its own thread, until released."""

    def __init__(self, dsn: str, *statements: str) -> None:
        self.conn = psycopg.connect(dsn)
        self.pid = self.conn.info.backend_pid
        for statement in statements:
            self.conn.execute(statement)

    def still_alive(self) -> bool:
        row = self.conn.execute("SELECT 1").fetchone()
        return row == (1,)

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def database_exists(cluster: Cluster, name: str) -> bool:
    try:
        with psycopg.connect(cluster.dsn(name)):
            return True
    except psycopg.OperationalError:
        return False


def replayed(primary: Database, replica: Cluster) -> Callable[[], bool]:
    """A condition: the standby has replayed everything the primary had written when this was called."""
    lsn = primary.value("SELECT pg_current_wal_lsn()::text")
    with psycopg.connect(replica.dsn(primary.name), autocommit=True) as conn:
        conn.execute("SELECT 1")  # the database exists on the standby

    def caught_up() -> bool:
        with psycopg.connect(replica.dsn(), autocommit=True) as conn:
            row = conn.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (lsn,)).fetchone()
            return bool(row and row[0])

    return caught_up


class ServiceProcess:
    """`dbmaint run` as a real process, its stderr in a file, its history read from its state store."""

    def __init__(self, config: str, state_url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.state_url = state_url
        self.log_path = log_path
        self._log = log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "dbmaint", "run", "--config", config],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            env={**os.environ, "DBMAINT_STATE_URL": state_url, "PYTHONUNBUFFERED": "1", **(env or {})},
        )

    @property
    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.process.poll() is None

    def runs(self, job: str | None = None) -> list[RunRecord]:
        """Oldest first."""
        store = History(self.state_url)
        try:
            return list(reversed(store.recent_runs(limit=10_000, job=job)))
        finally:
            store.close()

    def wait_for_runs(self, count: int, job: str | None = None, timeout: float = 30.0) -> list[RunRecord]:
        def enough() -> bool:
            assert self.alive(), f"dbmaint run exited with {self.process.returncode}:\n{self.log}"
            return len([r for r in self.runs(job) if r.status != "running"]) >= count

        wait_for(enough, timeout)
        return self.runs(job)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code (killed after ``timeout``: the test then fails on the code)."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return -9
        finally:
            self._log.close()
