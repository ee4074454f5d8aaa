"""Helpers for the behaviour tests: other sessions holding locks, dbmaint as a real process, JSON output."""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
from argparse import Namespace
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg
from alembic.config import Config
from click.testing import Result

from dbmaint.pg.cluster import Cluster
from dbmaint.pg.own_statements import MARKER
from dbmaint.store.history import History
from dbmaint.store.records import RunRecord

if TYPE_CHECKING:
    from tests.db.conftest import Database


def json_output(result: Result, exit_code: int) -> Any:
    """The command's JSON document, once its exit status is the one expected."""
    assert result.exit_code == exit_code, (
        f"exit {result.exit_code}, expected {exit_code}: {result.output}{result.stderr}"
    )
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


# --- configurations and sessions the service and migration tests share ---------------------------------

EVERY_2S = "*/2 * * * * *"
NEVER_TODAY = "0 3 1 1 *"  # 1 January, 03:00: does not fire while a test runs


def service_config(
    databases: dict[str, str],
    *,
    vacuum: str | None = EVERY_2S,
    reindex: str | None = None,
    capture: str | None = None,
    advisor: str | None = None,
    extra: str = "",
) -> str:
    """A config for the service: each job on the schedule given, or switched off (None)."""
    lines = []
    for name, dsn in databases.items():
        lines += ["[[databases]]", f'name = "{name}"', f'dsn = "{dsn}"']
    for job, schedule in (("vacuum", vacuum), ("reindex", reindex), ("capture", capture), ("advisor", advisor)):
        lines.append(f"[{job}]")
        lines.append(f'schedule = "{schedule}"' if schedule else "enabled = false")
        if job in ("vacuum", "reindex"):
            lines.append('retry_delay = "1s"')
    lines += ["[safety]", 'connect_timeout = "2s"', extra]
    return "\n".join(lines) + "\n"


def dirty_table(database: Database, rows: int = 10_000) -> None:
    """A table "dirty" whose rows are all dead."""
    with database.connect() as conn:
        conn.execute("CREATE TABLE dirty (id int PRIMARY KEY, pad text)")
        conn.execute("INSERT INTO dirty SELECT g, repeat('x', 200) FROM generate_series(1, %s) AS g", (rows,))
    database.execute("DELETE FROM dirty")


def slow_vacuums(database: Database) -> None:
    """Make every VACUUM in this database crawl: cost-based delay after (nearly) every page."""
    database.execute(
        f'ALTER DATABASE "{database.name}" SET vacuum_cost_delay = 50',
        f'ALTER DATABASE "{database.name}" SET vacuum_cost_limit = 1',
    )


def start_long_vacuum(
    pg: Cluster, database: Database, config: str, start_service: Callable[..., ServiceProcess]
) -> ServiceProcess:
    """The service, once it is in the middle of a VACUUM that will take a long while."""
    dirty_table(database, rows=20_000)
    slow_vacuums(database)
    service = start_service(config)
    wait_for(lambda: any(q.startswith("VACUUM") for _, q in dbmaint_backends(pg)), timeout=20)
    return service


def dbmaint_backends(pg: Cluster) -> list[tuple[int, str]]:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid, coalesce(query, '') FROM pg_stat_activity WHERE application_name = 'dbmaint'"
        ).fetchall()
    return [(int(pid), str(query).removeprefix(MARKER)) for pid, query in rows]


def alembic_config(migrations: Path, dsn: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.cmd_opts = Namespace(x=[f"dsn={dsn}"])  # as `alembic -x dsn=... upgrade head`
    return config


# The plan fixtures' generator: its shop schema and cases (tests/data/plans/make_plans.py).
_spec = importlib.util.spec_from_file_location(
    "make_plans", Path(__file__).resolve().parents[1] / "data" / "plans" / "make_plans.py"
)
assert _spec is not None and _spec.loader is not None
make_plans: Any = importlib.util.module_from_spec(_spec)
sys.modules["make_plans"] = make_plans  # its dataclasses look their module up there
_spec.loader.exec_module(make_plans)


@contextlib.contextmanager
def session(dsn: str, **kwargs: Any) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """A connection of the test's own, ended from the server side too should a statement still run in it."""
    conn = psycopg.connect(dsn, **kwargs)
    pid = conn.info.backend_pid
    try:
        yield conn
    finally:
        with psycopg.connect(dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        conn.close()


def freeze_all_but(database: Database, table: str, *, heap_too: bool = False) -> None:
    """VACUUM (FREEZE) every table of the database but ``table``, the catalogs included: it is then the
    oldest. ``heap_too``: that table's heap as well, without its TOAST table, which is then the oldest."""
    with database.connect() as conn:
        others = conn.execute(
            "SELECT pg_catalog.format('%%I.%%I', n.nspname, c.relname) FROM pg_catalog.pg_class AS c"
            " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'm') AND c.oid <> %s::regclass",
            (table,),
        ).fetchall()
        for (name,) in others:
            conn.execute(f"VACUUM (FREEZE) {name}")
        if heap_too:
            conn.execute(f"VACUUM (FREEZE, PROCESS_TOAST false) {table}")
