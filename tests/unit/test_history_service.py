"""The state store's service side on SQLite: schedule state, runs that did not happen, interrupted runs, the
figures metrics and status read, and an older store upgraded in place."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dbmaint.errors import ConfigError
from dbmaint.model import JobReport, RunStatus, Status
from dbmaint.store import schema
from dbmaint.store.history import History
from dbmaint.store.records import ScheduleState
from tests.unit.helpers import vacuum_action

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)


def started_run(
    store: History, job: str, database: str, started: datetime, host: str | None, actions: tuple[Status, ...] = ()
) -> JobReport:
    """A run left as the service leaves it while it works: running, its actions started or settled."""
    report = JobReport(database=database, job=job, started_at=started, scheduled_for=started)
    store.start_run(report, host=host)
    for index, status in enumerate(actions):
        item = vacuum_action(f"t{index}")
        store.start_action(report, item)
        if status != "started":
            item.status = status
            store.finish_action(item)
        report.actions.append(item)
    return report


def finished_run(
    store: History,
    job: str,
    database: str,
    status: RunStatus,
    started: datetime,
    host: str | None = "db1",
    actions: tuple[Status, ...] = (),
) -> JobReport:
    report = started_run(store, job, database, started, host, actions)
    report.status = status
    report.finished_at = started + timedelta(minutes=1)
    store.finish_run(report)
    return report


def rid(report: JobReport) -> int:
    assert report.run_id is not None
    return report.run_id


def count(store: History, table: sa.Table) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


# --- schedule state ----------------------------------------------------------------------------------------------


def test_schedule_state_round_trip(store: History) -> None:
    state = ScheduleState("vacuum", "app", "0 3 * * *", "Europe/Berlin", T0 + timedelta(microseconds=250))
    store.save_schedule("db1", state)
    assert store.schedule_states("db1") == {("vacuum", "app"): state}
    back = store.schedule_states("db1")[("vacuum", "app")].next_run_at
    assert back is not None and back.tzinfo is not None and back.utcoffset() == timedelta(0)
    assert back == T0 + timedelta(microseconds=250)


def test_schedule_state_without_a_next_run(store: History) -> None:
    state = ScheduleState("capture", "app", "*/15 * * * *", "UTC", None)
    store.save_schedule("db1", state)
    assert store.schedule_states("db1") == {("capture", "app"): state}


def test_schedule_state_round_trip_of_a_local_time(store: History) -> None:
    local = datetime(2026, 11, 27, 3, 0, tzinfo=ZoneInfo("Europe/Berlin"))  # what APScheduler hands over
    store.save_schedule("db1", ScheduleState("vacuum", "app", "0 3 * * *", "Europe/Berlin", local))
    assert store.schedule_states("db1")[("vacuum", "app")].next_run_at == local


def test_saving_a_schedule_twice_keeps_one_row(store: History) -> None:
    store.save_schedule("db1", ScheduleState("vacuum", "app", "0 3 * * *", "UTC", T0))
    later = ScheduleState("vacuum", "app", "0 4 * * *", "Europe/Berlin", T0 + timedelta(days=1))
    store.save_schedule("db1", later)
    assert count(store, schema.schedules) == 1
    assert store.schedule_states("db1") == {("vacuum", "app"): later}


def test_schedules_are_per_host(store: History) -> None:
    mine = ScheduleState("vacuum", "app", "0 3 * * *", "UTC", T0)
    theirs = ScheduleState("vacuum", "app", "0 3 * * *", "UTC", T0 + timedelta(days=1))
    store.save_schedule("db1", mine)
    store.save_schedule("db2", theirs)
    assert store.schedule_states("db1") == {("vacuum", "app"): mine}
    assert store.schedule_states("db2") == {("vacuum", "app"): theirs}
    assert store.schedule_states("db3") == {}


def test_forget_schedules_keeps_the_given_keys_of_that_host_only(store: History) -> None:
    for host in ("db1", "db2"):
        for job, database in (("vacuum", "app"), ("vacuum", "sales"), ("reindex", "app")):
            store.save_schedule(host, ScheduleState(job, database, "0 3 * * *", "UTC", T0))
    store.forget_schedules("db1", {("vacuum", "app"), ("advisor", "app")})
    assert set(store.schedule_states("db1")) == {("vacuum", "app")}
    assert set(store.schedule_states("db2")) == {("vacuum", "app"), ("vacuum", "sales"), ("reindex", "app")}
    store.forget_schedules("db1", set())
    assert store.schedule_states("db1") == {}
    assert count(store, schema.schedules) == 3


# --- runs that did not happen, runs cut short --------------------------------------------------------------------


def test_record_not_run_writes_a_finished_run(store: History) -> None:
    due = T0 - timedelta(hours=2)
    run_id = store.record_not_run("vacuum", "app", "missed", "missed: due at 01:00", due, "db1")
    (run,) = store.recent_runs()
    assert run.id == run_id
    assert (run.job, run.database, run.status, run.reason, run.host) == (
        "vacuum",
        "app",
        "missed",
        "missed: due at 01:00",
        "db1",
    )
    assert run.scheduled_for == due
    assert run.finished_at is not None and run.finished_at == run.started_at
    assert (run.done, run.skipped, run.failed) == (0, 0, 0)
    assert store.run_actions(run_id) == []
    assert run.to_json()["scheduled_for"] == due.isoformat()


def test_record_not_run_as_skipped(store: History) -> None:
    store.record_not_run("capture", "app", "skipped", "the previous run is still going", T0, "db1")
    (run,) = store.recent_runs(job="capture")
    assert run.status == "skipped" and run.scheduled_for == T0


def test_a_service_run_records_its_scheduled_time(store: History) -> None:
    report = JobReport(database="app", job="vacuum", scheduled_for=T0)
    store.start_run(report, host="db1")
    (run,) = store.recent_runs()
    assert run.scheduled_for == T0
    store.start_run(JobReport(database="app", job="vacuum"), host="db1")  # by hand
    assert store.recent_runs()[0].scheduled_for is None


def test_interrupt_running_marks_only_this_hosts_running_runs_since(store: History) -> None:
    since = T0
    mine = started_run(store, "vacuum", "app", since + timedelta(minutes=1), "db1", ("done", "started"))
    mine_too = started_run(store, "reindex", "app", since, "db1", ("started",))
    before = started_run(store, "vacuum", "sales", since - timedelta(minutes=1), "db1", ("started",))
    other_host = started_run(store, "vacuum", "app", since + timedelta(minutes=2), "db2", ("started",))
    done = finished_run(store, "capture", "app", "ok", since + timedelta(minutes=3), actions=("done",))

    assert store.interrupt_running("db1", since, "dbmaint was stopped (SIGTERM); stop_timeout reached") == 2

    runs = {r.id: r for r in store.recent_runs(limit=100)}
    for report in (mine, mine_too):
        run = runs[rid(report)]
        assert run.status == "interrupted"
        assert run.reason == "dbmaint was stopped (SIGTERM); stop_timeout reached"
        assert run.finished_at is not None
    assert runs[rid(before)].status == "running" and runs[rid(before)].finished_at is None
    assert runs[rid(other_host)].status == "running"
    assert runs[rid(done)].status == "ok"

    def actions(report: JobReport) -> list[tuple[str, str | None]]:
        return [(row["status"], row["detail"]) for row in store.run_actions(rid(report))]

    reason = "dbmaint was stopped (SIGTERM); stop_timeout reached"
    assert actions(mine) == [("done", None), ("interrupted", reason)]
    assert actions(mine_too) == [("interrupted", reason)]
    assert actions(before) == [("started", None)]
    assert actions(other_host) == [("started", None)]
    assert actions(done) == [("done", None)]
    assert runs[rid(mine)].interrupted == 1 and runs[rid(mine)].done == 1


def test_interrupt_running_with_nothing_running(store: History) -> None:
    finished_run(store, "vacuum", "app", "ok", T0)
    assert store.interrupt_running("db1", T0 - timedelta(days=1), "stopped") == 0
    assert store.recent_runs()[0].status == "ok"


# --- what metrics and status read --------------------------------------------------------------------------------


def test_latest_runs_is_the_last_run_of_each_job_and_database(store: History) -> None:
    finished_run(store, "vacuum", "app", "ok", T0 - timedelta(days=2))
    last_vacuum = finished_run(store, "vacuum", "app", "failed", T0 - timedelta(days=1), actions=("failed",))
    sales = finished_run(store, "vacuum", "sales", "ok", T0 - timedelta(days=3), actions=("done", "done"))
    reindex = finished_run(store, "reindex", "app", "ok", T0 - timedelta(days=10))
    missed = store.record_not_run("reindex", "app", "missed", "missed", T0, "db1")
    running = started_run(store, "capture", "app", T0, "db1")

    latest = store.latest_runs()
    assert set(latest) == {("vacuum", "app"), ("vacuum", "sales"), ("reindex", "app"), ("capture", "app")}
    assert latest[("vacuum", "app")].id == last_vacuum.run_id
    assert latest[("vacuum", "app")].status == "failed" and latest[("vacuum", "app")].failed == 1
    assert latest[("vacuum", "sales")].id == sales.run_id and latest[("vacuum", "sales")].done == 2
    assert latest[("reindex", "app")].id == missed != reindex.run_id
    assert latest[("capture", "app")].id == running.run_id
    assert latest[("capture", "app")].status == "running" and latest[("capture", "app")].duration_s is None
    assert latest[("vacuum", "app")].duration_s == 60.0


def test_latest_runs_of_an_empty_store(store: History) -> None:
    assert store.latest_runs() == {}
    assert store.last_successes() == {}
    assert store.slow_counts() == {}


def test_last_successes_are_the_end_of_the_last_ok_or_partial_run(store: History) -> None:
    finished_run(store, "vacuum", "app", "ok", T0 - timedelta(days=3))
    finished_run(store, "vacuum", "app", "partial", T0 - timedelta(days=2))
    finished_run(store, "vacuum", "app", "failed", T0 - timedelta(days=1))
    finished_run(store, "vacuum", "app", "skipped", T0)
    finished_run(store, "reindex", "app", "ok", T0 - timedelta(days=5))
    finished_run(store, "reindex", "sales", "failed", T0)
    store.record_not_run("vacuum", "sales", "missed", "missed", T0, "db1")
    started_run(store, "capture", "app", T0, "db1")

    successes = store.last_successes()
    assert successes == {
        ("vacuum", "app"): T0 - timedelta(days=2) + timedelta(minutes=1),
        ("reindex", "app"): T0 - timedelta(days=5) + timedelta(minutes=1),
    }
    assert all(when.tzinfo is not None for when in successes.values())


def add_samples(store: History, report: JobReport, n: int) -> None:
    assert report.run_id is not None
    for queryid in range(n):
        sample = {
            "queryid": queryid,
            "captured_at": report.started_at,
            "calls": 3,
            "total_ms": 900.0,
            "mean_ms": 300.0,
            "cumulative_mean_ms": 300.0,
        }
        store.add_sample(report.run_id, report.database, sample)


def test_slow_counts_are_of_the_last_finished_capture_pass(store: History) -> None:
    add_samples(store, finished_run(store, "capture", "app", "ok", T0 - timedelta(minutes=45)), 7)
    add_samples(store, finished_run(store, "capture", "app", "partial", T0 - timedelta(minutes=30)), 4)
    add_samples(store, finished_run(store, "capture", "app", "failed", T0 - timedelta(minutes=15)), 9)
    started_run(store, "capture", "app", T0, "db1")
    add_samples(store, finished_run(store, "capture", "sales", "ok", T0 - timedelta(minutes=30)), 2)
    finished_run(store, "capture", "sales", "ok", T0 - timedelta(minutes=15))  # found nothing slow
    add_samples(store, finished_run(store, "capture", "other", "failed", T0), 5)  # never finished a pass
    finished_run(store, "vacuum", "vacuum_only", "ok", T0)

    assert store.slow_counts() == {"app": 4, "sales": 0}


# --- an older store, upgraded in place ---------------------------------------------------------------------------

OLD_RUNS = """
CREATE TABLE dbmaint_runs (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    job VARCHAR(32) NOT NULL,
    database VARCHAR(128) NOT NULL,
    status VARCHAR(16) NOT NULL,
    reason TEXT,
    started_at DATETIME NOT NULL,
    finished_at DATETIME,
    host VARCHAR(255),
    warnings TEXT
)
"""


def test_an_older_store_gets_the_new_column_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    expected = {c.name for c in schema.runs.columns} - {"scheduled_for", "pid", "server"}
    with sqlite3.connect(path) as conn:
        conn.execute(OLD_RUNS)
        conn.execute("CREATE INDEX dbmaint_runs_job_database_started ON dbmaint_runs (job, database, started_at)")
        conn.execute(
            "INSERT INTO dbmaint_runs (job, database, status, reason, started_at, finished_at, host, warnings) "
            "VALUES ('vacuum', 'app', 'ok', NULL, '2026-01-01 03:00:00.000000', '2026-01-01 03:02:30.000000', "
            "'db1', NULL)"
        )
        assert {row[1] for row in conn.execute("PRAGMA table_info(dbmaint_runs)")} == expected
    conn.close()

    store = History(f"sqlite:///{path}")
    columns = {c["name"] for c in sa.inspect(store.engine).get_columns("dbmaint_runs")}
    assert columns == expected | {"scheduled_for", "pid", "server"}

    (old,) = store.recent_runs()
    assert (old.job, old.database, old.status, old.host) == ("vacuum", "app", "ok", "db1")
    assert old.started_at == datetime(2026, 1, 1, 3, 0, tzinfo=UTC)
    assert old.duration_s == 150.0
    assert old.scheduled_for is None

    # New runs use the column; opening the store again changes nothing.
    store.record_not_run("vacuum", "app", "missed", "missed", T0, "db1")
    store.close()
    again = History(f"sqlite:///{path}")
    runs = again.recent_runs()
    assert [r.scheduled_for for r in runs] == [T0, None]  # newest first: the missed run was recorded now
    assert again.latest_runs()[("vacuum", "app")].status == "missed"
    again.close()


def test_interrupt_running_leaves_a_run_by_hand_on_the_same_host_alone(store: History) -> None:
    by_hand = JobReport(database="app", job="vacuum", started_at=T0 + timedelta(minutes=1))  # no due time
    store.start_run(by_hand, host="db1")
    scheduled = started_run(store, "reindex", "app", T0 + timedelta(minutes=1), "db1", ("started",))
    assert store.interrupt_running("db1", T0, "stopped") == 1
    runs = {r.id: r.status for r in store.recent_runs(limit=10)}
    assert runs[rid(by_hand)] == "running" and runs[rid(scheduled)] == "interrupted"


def test_has_run_knows_a_due_time_already_answered(store: History) -> None:
    report = JobReport(database="app", job="vacuum", scheduled_for=T0)
    store.start_run(report, host="db1")
    assert store.has_run("db1", "vacuum", "app", T0)
    assert not store.has_run("db1", "vacuum", "app", T0 + timedelta(seconds=2))
    assert not store.has_run("db1", "reindex", "app", T0)
    assert not store.has_run("db2", "vacuum", "app", T0), "another host's run (a standby's skip) does not count"


def test_last_interrupted_is_the_latest_due_time_only_when_that_run_was_interrupted(store: History) -> None:
    store.record_not_run("vacuum", "app", "interrupted", "stopped", T0, "db1")
    store.record_not_run("vacuum", "app", "interrupted", "stopped", T0 + timedelta(days=1), "db1")
    store.record_not_run("reindex", "app", "interrupted", "stopped", T0, "db1")
    store.record_not_run("reindex", "app", "ok", "", T0 + timedelta(days=1), "db1")  # done since
    store.record_not_run("capture", "app", "interrupted", "stopped", T0, "db2")  # another host
    assert store.last_interrupted("db1") == {("vacuum", "app"): T0 + timedelta(days=1)}
    assert not store.has_run("db1", "vacuum", "app", T0 + timedelta(days=1)), "an interrupted run may be taken up"
    store.record_not_run("vacuum", "app", "ok", "", T0 + timedelta(days=1), "db1")  # taken up, and done
    assert store.last_interrupted("db1") == {}


def test_an_unsupported_state_store_url_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"unsupported state store URL mysql://u:\*\*\*@h/db: use sqlite"):
        History("mysql://u:secret@h/db")


def test_records_held_in_memory_are_logged_once_then_every_hundred(
    store: History, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A pass over 500 tables while the store refuses writes: a few lines, not one per record; all kept."""

    def refused() -> None:
        raise sa.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("attempt to write a readonly database"))

    monkeypatch.setattr(store, "_flush_pending", refused)
    report = JobReport(database="app", job="vacuum")
    with caplog.at_level("WARNING", logger="dbmaint.store"):
        store.start_run(report, host="db1")
        for number in range(249):
            store.start_action(report, vacuum_action(f"t{number}"))
    assert store.held_records == 250
    held = [r.getMessage() for r in caplog.records if "cannot take records now" in r.getMessage()]
    assert [message.split("): ")[1].split(" ")[0] for message in held] == ["1", "100", "200"]


def test_an_in_memory_store_keeps_its_runs() -> None:
    """sqlite:// lives in one connection: opening a file per transaction must not apply to it."""
    store = History("sqlite://")
    report = JobReport(database="app", job="vacuum")
    store.start_run(report, host="db1")
    report.status = "ok"
    store.finish_run(report)
    assert [(r.job, r.status) for r in store.recent_runs()] == [("vacuum", "ok")]
