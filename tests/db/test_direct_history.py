"""The vacuum pass's direct writer (dbmaint.store.direct) writes the rows History writes, on SQLite and on
PostgreSQL stores, and steps aside whenever the store needs more than inserts and updates."""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg import sql

from dbmaint.model import Action, JobReport
from dbmaint.store import direct, history, limits, schema
from dbmaint.store.direct import DirectHistory, open_direct
from dbmaint.store.history import History
from dbmaint.store.recorder import RunRecorder
from tests.db.conftest import Database

WHEN = datetime(2026, 12, 4, 3, 0, 1, 234567, tzinfo=UTC)
RETENTION_S = 90 * 86_400.0
HOST = socket.gethostname()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, database: Database) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'state.db'}"
    return f"postgresql://postgres@127.0.0.1:{database.cluster.port}/{database.name}"


def record_a_pass(recorder: RunRecorder) -> None:
    """A vacuum pass as jobs.vacuum records it: one action done, one skipped, one failed, then the run."""
    report = JobReport("app", "vacuum", started_at=WHEN, server="7715352023979836701")
    recorder.start_run(report, host=HOST)
    done, skipped, failed = (
        Action(
            f"public.{name}",
            sql.SQL("VACUUM {}").format(sql.Identifier("public", name)),
            "dead rows",
            "vacuum",
            size_before=688_128,
        )
        for name in ("orders", "it's", "gone")
    )
    recorder.start_action(report, done)
    done.status, done.duration_s = "done", 0.0123
    recorder.finish_action(done)
    skipped.status, skipped.detail = "skipped", "lock not available after 3 attempt(s)"
    recorder.record_skipped(report, skipped)
    recorder.start_action(report, failed)
    failed.status, failed.detail, failed.duration_s = "failed", "relation does not exist", 0.5
    recorder.finish_action(failed)
    report.actions = [done, skipped, failed]
    report.warnings = ["dead rows remain in public.orders"]
    report.finish().finished_at = WHEN + timedelta(seconds=2)
    recorder.finish_run(report)


def rows(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every column of the runs and actions but the keys (and the pid, the writer's own)."""
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        runs = [dict(r._mapping) for r in conn.execute(sa.select(schema.runs).order_by(schema.runs.c.id))]
        actions = [dict(r._mapping) for r in conn.execute(sa.select(schema.actions).order_by(schema.actions.c.id))]
    engine.dispose()
    for row in runs:
        del row["id"], row["pid"]
    for row in actions:
        del row["id"], row["run_id"]
    return runs, actions


def test_the_direct_writer_writes_what_history_writes(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "now", lambda: WHEN)
    monkeypatch.setattr(direct, "now", lambda: WHEN)
    store = History(store_url)
    record_a_pass(store)
    store.close()
    recorder = open_direct(store_url, HOST, RETENTION_S)
    assert isinstance(recorder, DirectHistory)
    record_a_pass(recorder)
    recorder.close()

    (by_history, directly), actions = rows(store_url)
    assert directly == by_history
    assert by_history["status"] == "partial" and by_history["finished_at"] == WHEN + timedelta(seconds=2)
    assert len(actions) == 6 and actions[3:] == actions[:3]
    assert [a["status"] for a in actions[:3]] == ["done", "skipped", "failed"]

    # And History reads them back alike: `dbmaint history`, status and metrics see one kind of run.
    store = History(store_url)
    first, second = sorted(store.recent_runs(), key=lambda run: run.id)
    assert (first.status, first.started_at, first.finished_at) == (second.status, second.started_at, second.finished_at)
    assert [(a["object"], a["status"], a["started_at"]) for a in store.run_actions(first.id)] == [
        (a["object"], a["status"], a["started_at"]) for a in store.run_actions(second.id)
    ]
    store.close()


def test_history_opens_the_store_whenever_it_needs_more(store_url: str, tmp_path: Path) -> None:
    assert open_direct(f"sqlite:///{tmp_path / 'none.db'}", HOST, RETENTION_S) is None  # created by History
    assert open_direct("sqlite://", HOST, RETENTION_S) is None  # in memory
    assert open_direct("mysql://x@y/z", HOST, RETENTION_S) is None
    store = History(store_url)
    engine = store.engine

    def execute(statement: Any) -> None:
        with engine.begin() as conn:
            conn.execute(statement)

    recorder = open_direct(store_url, HOST, RETENTION_S)
    assert recorder is not None
    recorder.close()

    checks: list[tuple[Any, Callable[[], None]]] = [
        # A run of this host marked running: History closes it as interrupted if its process is gone.
        (
            schema.runs.insert().values(
                job="vacuum", database="app", status="running", started_at=WHEN, host=HOST, pid=os.getpid()
            ),
            lambda: execute(schema.runs.delete()),
        ),
        # A run past the retention period: History prunes it.
        (
            schema.runs.insert().values(
                job="vacuum", database="app", status="ok", started_at=WHEN - timedelta(days=91), host=HOST
            ),
            lambda: execute(schema.runs.delete()),
        ),
        # A store at an older schema: History upgrades it.
        (
            sa.text("UPDATE dbmaint_schema_version SET version_num = '0001'"),
            lambda: execute(sa.text("UPDATE dbmaint_schema_version SET version_num = '0002'")),
        ),
    ]
    for change, undo in checks:
        execute(change)
        assert open_direct(store_url, HOST, RETENTION_S) is None, change
        undo()
        recorder = open_direct(store_url, HOST, RETENTION_S)
        assert recorder is not None
        recorder.close()
    store.close()


def test_the_schema_head_is_the_stores() -> None:
    from dbmaint.store import versioning

    assert direct.SCHEMA_HEAD == versioning.HEAD


def test_a_postgresql_store_that_dropped_the_connection_is_connected_again(database: Database) -> None:
    """A long VACUUM outlives the store's session (a restart, a failover, idle_session_timeout): the records
    after it go in over a new connection, as History's pool would do, rather than wait for one that is gone."""
    url = f"postgresql://postgres@127.0.0.1:{database.cluster.port}/{database.name}"
    History(url).close()
    recorder = open_direct(url, HOST, RETENTION_S)
    assert isinstance(recorder, DirectHistory)
    report = JobReport("app", "vacuum")
    recorder.start_run(report, host=HOST)
    database.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name = ''"
    )
    action = Action("public.t", sql.SQL("VACUUM {}").format(sql.Identifier("t")), "dead rows", "vacuum")
    recorder.start_action(report, action)
    action.status = "done"
    recorder.finish_action(action)
    recorder.finish_run(report.finish())
    recorder.close()
    assert database.value("SELECT status FROM dbmaint_runs") == "ok"
    assert database.value("SELECT status FROM dbmaint_actions") == "done"


def test_one_commit_per_table_and_records_held_by_a_busy_store_keep_their_ids(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table's end goes in with the next one's start. When the store was busy, the records it held go in
    together, an action's start and end in one transaction: the end still finds the row the start made."""
    url = f"sqlite:///{tmp_path / 'state.db'}"
    History(url).close()
    monkeypatch.setattr(limits, "WRITE_RETRY_DELAYS_S", (0.05,) * 3)
    monkeypatch.setattr(limits, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    recorder = open_direct(url, HOST, RETENTION_S)
    assert isinstance(recorder, DirectHistory)
    commits: list[str] = []
    recorder._conn.set_trace_callback(lambda statement: commits.append(statement) if statement == "COMMIT" else None)
    record_a_pass(recorder)
    # start_run, each table's start with the previous one's end (3), the run's end with the last action's
    assert len(commits) == 5
    recorder.close()

    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    recorder = open_direct(url, HOST, RETENTION_S)
    assert isinstance(recorder, DirectHistory)
    blocker.execute("BEGIN EXCLUSIVE")  # another writer: the records wait in memory
    report = JobReport("app", "vacuum", started_at=WHEN)
    recorder.start_run(report, host=HOST)
    action = Action("public.held", sql.SQL("VACUUM {}").format(sql.Identifier("held")), "dead rows", "vacuum")
    recorder.start_action(report, action)
    action.status, action.duration_s = "done", 0.01
    recorder.finish_action(action)
    assert blocker.execute("SELECT count(*) FROM dbmaint_runs").fetchone() == (1,)  # all three held
    blocker.execute("COMMIT")
    report.actions = [action]
    report.finish()
    recorder.finish_run(report)  # everything held goes in now
    recorder.close()
    blocker.close()
    runs, actions = rows(url)
    assert runs[-1]["status"] == "ok"
    assert [(a["object"], a["status"]) for a in actions[-1:]] == [("public.held", "done")]
