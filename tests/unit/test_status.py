"""`dbmaint status` over a SQLite history: is the service running (its heartbeat), and per job and database
the last run, the last success and the next run."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from dbmaint.config import JOB_NAMES, Config, parse_config
from dbmaint.model import JobReport, RunStatus, now
from dbmaint.service.schedule import next_fire_times, parse_cron
from dbmaint.service.status_report import JobStatus, StatusReport, gather
from dbmaint.store.history import History
from dbmaint.store.records import ScheduleState
from dbmaint.store.schema import services

HOST = "db1"
# A live process whose command line names dbmaint: on its own host, status checks the service process.
_STAND_IN = subprocess.Popen(
    [sys.executable, "-c", "import sys; sys.stdin.read()", "dbmaint-stand-in"], stdin=subprocess.PIPE
)
PID = _STAND_IN.pid


@pytest.fixture(scope="module", autouse=True)
def _stand_in_ends() -> Iterator[None]:
    yield
    assert _STAND_IN.stdin is not None
    _STAND_IN.stdin.close()
    _STAND_IN.wait(10)


BERLIN = ZoneInfo("Europe/Berlin")
# Far ahead of any test run: a stored next run the cron would never give as "the next one from now".
STORED_NEXT = datetime(2099, 1, 1, 3, 0, tzinfo=UTC)


def config(**sections: Any) -> Config:
    return parse_config({"timezone": "Europe/Berlin", **sections}, "test")


@pytest.fixture
def history(store: History) -> History:
    return store


def job_status(report: StatusReport, job: str, database: str) -> JobStatus:
    (found,) = [j for j in report.jobs if (j.job, j.database) == (job, database)]
    return found


def set_heartbeat(history: History, host: str, when: datetime) -> None:
    with history.engine.begin() as conn:
        conn.execute(sa.update(services).where(services.c.host == host).values(heartbeat_at=when))


# --- the service -------------------------------------------------------------------------------------------------


def test_no_service_row_no_services(history: History) -> None:
    assert gather(config(), ["app"], history, HOST).services == []


def test_a_started_service_with_a_heartbeat_is_running(history: History) -> None:
    started = history.service_started(HOST, PID, "0.1.0")
    history.heartbeat(HOST, PID)
    (service,) = gather(config(), ["app"], history, HOST).services
    assert service.running is True
    assert (service.record.host, service.record.pid, service.record.version) == (HOST, PID, "0.1.0")
    assert service.record.started_at == started
    assert service.record.heartbeat_at >= started
    assert service.record.stopped_at is None
    assert service.to_json()["running"] is True


def test_a_stopped_service_is_not_running(history: History) -> None:
    history.service_started(HOST, PID, "0.1.0")
    history.heartbeat(HOST, PID)
    history.service_stopped(HOST, PID)
    (service,) = gather(config(), ["app"], history, HOST).services
    assert service.running is False
    assert service.record.stopped_at is not None
    assert service.to_json()["stopped_at"] is not None


def test_a_service_without_a_heartbeat_for_90_s_is_not_running(history: History) -> None:
    history.service_started(HOST, PID, "0.1.0")
    set_heartbeat(history, HOST, now() - timedelta(seconds=91))
    (service,) = gather(config(), ["app"], history, HOST).services
    assert service.running is False
    assert service.record.stopped_at is None  # it never said it stopped: it is gone
    set_heartbeat(history, HOST, now() - timedelta(seconds=60))
    (service,) = gather(config(), ["app"], history, HOST).services
    assert service.running is True


def test_services_of_every_host_are_listed(history: History) -> None:
    history.service_started("db1", PID, "0.1.0")
    history.service_started("db2", 2, "0.1.0")
    history.service_stopped("db2", 2)
    services = gather(config(), ["app"], history, HOST).services
    assert [(s.record.host, s.running) for s in services] == [("db1", True), ("db2", False)]


# --- jobs: last run, last success --------------------------------------------------------------------------------


def record(history: History, job: str, database: str, status: RunStatus, started: datetime) -> JobReport:
    report = JobReport(database=database, job=job, started_at=started)
    history.start_run(report, host=HOST)
    report.status = status
    report.finished_at = started + timedelta(minutes=5)
    history.finish_run(report)
    return report


def test_every_job_and_database_is_listed(history: History) -> None:
    report = gather(config(), ["app", "sales"], history, HOST)
    assert [(j.job, j.database) for j in report.jobs] == [(job, db) for job in JOB_NAMES for db in ("app", "sales")]
    assert all(j.last is None and j.last_success is None for j in report.jobs)
    assert all(j.timezone == "Europe/Berlin" for j in report.jobs)


def test_last_run_and_last_success_per_job_and_database(history: History) -> None:
    day = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    record(history, "vacuum", "app", "ok", day)
    failed = record(history, "vacuum", "app", "failed", day + timedelta(days=1))
    sales = record(history, "vacuum", "sales", "partial", day + timedelta(days=2))
    report = gather(config(), ["app", "sales"], history, HOST)

    app = job_status(report, "vacuum", "app")
    assert app.last is not None and app.last.id == failed.run_id and app.last.status == "failed"
    assert app.last_success == day + timedelta(minutes=5)  # the ok run's end, not the later failure
    on_sales = job_status(report, "vacuum", "sales")
    assert on_sales.last is not None and on_sales.last.id == sales.run_id
    assert on_sales.last_success == day + timedelta(days=2, minutes=5)
    reindex = job_status(report, "reindex", "app")
    assert reindex.last is None and reindex.last_success is None
    as_json = app.to_json()
    assert as_json["last_run"]["status"] == "failed"
    assert as_json["last_success"] == (day + timedelta(minutes=5)).isoformat()


# --- jobs: next run ----------------------------------------------------------------------------------------------


def test_next_run_from_the_cron_when_no_service_runs(history: History) -> None:
    cfg = config(vacuum={"schedule": "0 3 * * *"})
    before = now()
    report = gather(cfg, ["app"], history, HOST)
    vacuum = job_status(report, "vacuum", "app")
    assert vacuum.enabled and vacuum.schedule == "0 3 * * *"
    assert vacuum.next_run_at is not None
    local = vacuum.next_run_at.astimezone(BERLIN)
    assert (local.hour, local.minute) == (3, 0)
    assert before < vacuum.next_run_at <= before + timedelta(days=1, hours=1)
    assert vacuum.next_run_at in next_fire_times(parse_cron("0 3 * * *"), "Europe/Berlin", before, 2)


def test_a_disabled_job_has_no_next_run(history: History) -> None:
    report = gather(config(reindex={"enabled": False}), ["app"], history, HOST)
    reindex = job_status(report, "reindex", "app")
    assert reindex.enabled is False
    assert reindex.next_run_at is None
    assert reindex.to_json()["next_run"] is None
    assert job_status(report, "vacuum", "app").next_run_at is not None


def test_next_run_from_the_stored_schedule_while_the_service_here_runs(history: History) -> None:
    history.service_started(HOST, PID, "0.1.0")
    history.save_schedule(HOST, ScheduleState("vacuum", "app", "0 3 * * *", "Europe/Berlin", STORED_NEXT))
    report = gather(config(vacuum={"schedule": "0 3 * * *"}), ["app"], history, HOST)
    assert job_status(report, "vacuum", "app").next_run_at == STORED_NEXT
    assert job_status(report, "vacuum", "app").to_json()["next_run"] == STORED_NEXT.isoformat()


def test_the_stored_schedule_is_ignored_when_its_text_differs(history: History) -> None:
    history.service_started(HOST, PID, "0.1.0")
    history.save_schedule(HOST, ScheduleState("vacuum", "app", "0 2 * * *", "Europe/Berlin", STORED_NEXT))
    report = gather(config(vacuum={"schedule": "0 3 * * *"}), ["app"], history, HOST)
    next_run = job_status(report, "vacuum", "app").next_run_at
    assert next_run is not None and next_run != STORED_NEXT
    assert next_run.astimezone(BERLIN).hour == 3


def test_the_stored_schedule_is_ignored_when_no_service_runs_here(history: History) -> None:
    history.save_schedule(HOST, ScheduleState("vacuum", "app", "0 3 * * *", "Europe/Berlin", STORED_NEXT))
    # No service row at all.
    assert job_status(gather(config(), ["app"], history, HOST), "vacuum", "app").next_run_at != STORED_NEXT
    # A stopped service.
    history.service_started(HOST, PID, "0.1.0")
    history.service_stopped(HOST, PID)
    assert job_status(gather(config(), ["app"], history, HOST), "vacuum", "app").next_run_at != STORED_NEXT
    # A service that stopped beating.
    history.service_started(HOST, PID, "0.1.0")
    set_heartbeat(history, HOST, now() - timedelta(minutes=5))
    assert job_status(gather(config(), ["app"], history, HOST), "vacuum", "app").next_run_at != STORED_NEXT
    # A service that runs, but on another host.
    history.service_started("db2", 7, "0.1.0")
    report = gather(config(), ["app"], history, HOST)
    assert [(s.record.host, s.running) for s in report.services] == [(HOST, False), ("db2", True)]
    assert job_status(report, "vacuum", "app").next_run_at != STORED_NEXT


def test_the_stored_schedule_of_another_host_is_not_used(history: History) -> None:
    history.service_started(HOST, PID, "0.1.0")
    history.service_started("db2", PID, "0.1.0")
    history.save_schedule("db2", ScheduleState("vacuum", "app", "0 3 * * *", "Europe/Berlin", STORED_NEXT))
    report = gather(config(), ["app"], history, HOST)
    assert job_status(report, "vacuum", "app").next_run_at != STORED_NEXT
    # ... and on that host, it is.
    assert job_status(gather(config(), ["app"], history, "db2"), "vacuum", "app").next_run_at == STORED_NEXT


def test_report_as_json(history: History) -> None:
    history.service_started(HOST, PID, "0.1.0")
    as_json = gather(config(), ["app"], history, HOST).to_json()
    assert [s["host"] for s in as_json["services"]] == [HOST]
    assert [(j["job"], j["database"]) for j in as_json["jobs"]] == [(job, "app") for job in JOB_NAMES]


def test_a_service_whose_process_is_gone_is_not_running_even_with_a_fresh_heartbeat(history: History) -> None:
    """SIGKILL leaves a fresh heartbeat behind for up to 90 s; on its own host the process can be checked."""
    history.service_started(HOST, 999_999_999, "0.1.0")  # above any pid_max: no such process
    (service,) = gather(config(), ["app"], history, HOST).services
    assert service.running is False
    (elsewhere,) = gather(config(), ["app"], history, "another-host").services
    assert elsewhere.running is True, "another host's process cannot be checked: the heartbeat decides"


def test_status_text_shows_reasons_as_footnotes_verbatim(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    """Reasons quote PostgreSQL, brackets included: printed as they are, never read as rich markup."""
    from dbmaint.report import print_status

    reason = "could not read [vacuum] tables: ERROR [/x] at character 3"
    history.record_not_run("vacuum", "app", "missed", reason, now(), HOST)
    print_status(gather(config(), ["app"], history, HOST), config_source="test", state_url="sqlite://", timezone="UTC")
    out = capsys.readouterr().out
    assert "missed [1]" in out
    assert f"[1] vacuum on app, missed: {reason}" in out
    assert "(no service runs on this host" in out


def test_status_says_which_server_each_database_last_reached(
    history: History, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two clusters may each have a database of the same name: the latest run's system_identifier says which."""
    from dbmaint.report import print_status

    day = datetime(2026, 11, 20, 3, 0, tzinfo=UTC)
    for job, server, started in (("vacuum", "7301", day), ("reindex", "7302", day + timedelta(days=1))):
        report = JobReport(database="app", job=job, started_at=started, server=server)
        history.start_run(report, host=HOST)
        report.status, report.finished_at = "ok", started + timedelta(minutes=5)
        history.finish_run(report)
    status = gather(config(), ["app"], history, HOST)
    assert job_status(status, "vacuum", "app").to_json()["last_run"]["server"] == "7301"
    print_status(status, config_source="test", state_url="sqlite://", timezone="UTC")
    assert "servers (system_identifier of the latest run): app on 7302" in capsys.readouterr().out
