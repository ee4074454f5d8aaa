"""`dbmaint run` as a real process against a real server, with schedules seconds apart."""

from __future__ import annotations

import itertools
import re
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from dbmaint.model import now
from dbmaint.pg.cluster import Cluster, free_port
from dbmaint.store.history import History
from dbmaint.store.records import ScheduleState
from tests.db.conftest import Database, Invoke
from tests.db.helpers import (
    EVERY_2S,
    NEVER_TODAY,
    ServiceProcess,
    database_exists,
    dbmaint_backends,
    dirty_table,
    json_output,
    replayed,
    run_dbmaint_process,
    service_config,
    slow_vacuums,
    start_long_vacuum,
    wait_for,
)

pytestmark = pytest.mark.slow

JOBS_RUN = ("vacuum", "reindex", "advisor")


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    started: list[ServiceProcess] = []

    def start(config: str, *, state: str = "state", env: dict[str, str] | None = None) -> ServiceProcess:
        service = ServiceProcess(
            config, f"sqlite:///{tmp_path / (state + '.db')}", tmp_path / f"{state}-{len(started)}.log", env
        )
        started.append(service)
        return service

    yield start
    for service in started:
        service.stop()


def test_jobs_run_on_time_and_are_recorded(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    dirty_table(database)
    config = service_config({"app": database.dsn}, vacuum=EVERY_2S, reindex="1/3 * * * * *", advisor="*/4 * * * * *")

    service = start_service(write_config(config))
    service.wait_for_runs(3, job="vacuum")
    service.wait_for_runs(2, job="reindex")
    service.wait_for_runs(1, job="advisor")
    assert service.stop() == 0

    runs = [r for r in service.runs() if r.status != "running"]
    for run in runs:
        assert run.scheduled_for is not None
        lateness = (run.started_at - run.scheduled_for).total_seconds()
        assert -0.1 <= lateness < 1.5, f"{run.job} started {lateness:.2f} s after its time"
    seconds = {job: {r.scheduled_for.second for r in runs if r.job == job and r.scheduled_for} for job in JOBS_RUN}
    assert all(s % 2 == 0 for s in seconds["vacuum"])
    assert all(s % 3 == 1 for s in seconds["reindex"])
    assert all(s % 4 == 0 for s in seconds["advisor"])
    assert not any(r.job == "capture" for r in runs), "capture is switched off"
    # The first vacuum run did the work, on the table that needed it; the later ones found nothing to do.
    first = next(r for r in runs if r.job == "vacuum")
    assert (first.status, first.done) == ("ok", 1)
    assert database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'dirty'") == 0
    assert "vacuum on app: ok" in service.log


def test_a_failing_job_does_not_stop_the_others(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    gone = f"host=127.0.0.1 port={free_port()} dbname=nowhere user=postgres"
    service = start_service(write_config(service_config({"app": database.dsn, "gone": gone})))

    def both_kept_running() -> bool:
        runs = service.runs("vacuum")
        return sum(r.database == "gone" for r in runs) >= 2 and sum(r.database == "app" for r in runs) >= 2

    wait_for(both_kept_running, timeout=30)
    assert service.alive()
    runs = [r for r in service.runs("vacuum") if r.status != "running"]
    failed = [r for r in runs if r.database == "gone"]
    assert {r.status for r in failed} == {"failed"}
    assert all("could not connect" in (r.reason or "") for r in failed)
    assert {r.status for r in runs if r.database == "app"} == {"ok"}
    assert "vacuum on gone failed: could not connect" in service.log
    assert "Traceback" not in service.log


def test_sigterm_during_a_long_vacuum_ends_promptly_and_leaves_no_backend(
    pg: Cluster,
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
) -> None:
    service = start_long_vacuum(pg, database, write_config(service_config({"app": database.dsn})), start_service)
    time.sleep(1)

    signalled = time.monotonic()
    code = service.stop(timeout=30)
    took = time.monotonic() - signalled

    assert code == 0, service.log
    assert took < 8, f"took {took:.1f} s to stop"
    wait_for(lambda: not dbmaint_backends(pg), timeout=5)
    (run,) = [r for r in service.runs("vacuum")]
    assert run.status == "interrupted"
    assert "SIGTERM" in (run.reason or "")
    store = History(service.state_url)
    (action,) = store.run_actions(run.id)
    store.close()
    assert action["status"] == "interrupted" and "cancelled" in action["detail"]
    # The VACUUM really was cancelled, not finished: the dead rows are still there.
    assert database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'dirty'") > 0


def test_sighup_with_a_bad_config_keeps_the_running_one(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    path = Path(write_config(service_config({"app": database.dsn}, vacuum=EVERY_2S, capture=EVERY_2S)))
    service = start_service(str(path))
    service.wait_for_runs(1, job="capture")

    path.write_text("[vacuum]\nschedule = 'every day at three'\n")
    service.signal(signal.SIGHUP)
    wait_for(lambda: "reload rejected" in service.log, timeout=10)
    assert "'vacuum.schedule'" in service.log
    before = len(service.runs("capture"))
    service.wait_for_runs(before + 2, job="capture")  # the old schedule goes on
    assert service.alive()

    path.write_text(service_config({"app": database.dsn}, vacuum=EVERY_2S, capture=None))
    service.signal(signal.SIGHUP)
    wait_for(lambda: "configuration reloaded" in service.log, timeout=10)
    reloaded = now()
    time.sleep(5)
    assert service.alive()
    assert not [r for r in service.runs("capture") if r.started_at > reloaded + timedelta(seconds=0.5)]
    assert [r for r in service.runs("vacuum") if r.started_at > reloaded]


def test_two_services_never_run_one_job_at_once(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    dirty_table(database, rows=3_000)
    slow_vacuums(database)  # each VACUUM of the table takes a few seconds: the schedules overlap it
    config = write_config(service_config({"app": database.dsn}))
    one = start_service(config, state="one")
    two = start_service(config, state="two")

    def vacuumed() -> bool:
        return any(r.done for s in (one, two) for r in s.runs("vacuum"))

    wait_for(vacuumed, timeout=60)
    time.sleep(2)
    one.stop()
    two.stop()

    runs = [r for s in (one, two) for r in s.runs("vacuum")]
    working = sorted((r for r in runs if r.done or r.failed or r.interrupted), key=lambda r: r.started_at)
    assert sum(r.done for r in runs) == 1, "the table was vacuumed once, by one of the two"
    for earlier, later in itertools.pairwise(working):
        assert earlier.finished_at is not None and earlier.finished_at <= later.started_at
    locked_out = [r for r in runs if r.status == "skipped" and "holds the lock" in (r.reason or "")]
    assert locked_out, "the other service must have found the advisory lock taken"


def test_on_a_standby_nothing_is_issued(
    database: Database,
    standby: Cluster,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
) -> None:
    dirty_table(database)
    wait_for(lambda: database_exists(standby, database.name))
    wait_for(replayed(database, standby))
    log_start = standby.logfile.stat().st_size
    config = service_config({"app": standby.dsn(database.name)}, vacuum=EVERY_2S, reindex=EVERY_2S, advisor=EVERY_2S)
    service = start_service(write_config(config))
    for job in JOBS_RUN:
        service.wait_for_runs(2, job=job)
    service.stop()

    runs = [r for r in service.runs() if r.status != "running"]
    assert {(r.status, r.reason) for r in runs} == {("skipped", "standby")}
    with standby.logfile.open() as log:
        log.seek(log_start)
        issued = [line for line in log if "statement:" in line]
    assert issued, "log_statement = all shows what dbmaint asked the standby"
    maintenance = ("VACUUM", "ANALYZE", "REINDEX", "CREATE", "DROP", "ALTER", "pg_try_advisory_lock")
    assert not [line for line in issued if any(word in line for word in maintenance)]


def test_a_late_run_runs_within_the_grace_and_a_later_one_is_recorded_missed(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    """As after a host was down at the scheduled time: the due times kept in the state store decide."""
    config = service_config(
        {"app": database.dsn}, vacuum=NEVER_TODAY, advisor=NEVER_TODAY, extra='[scheduler]\nmisfire_grace = "1h"'
    )
    service = start_service(write_config(config))
    wait_for(lambda: len(History(service.state_url).schedule_states(socket.gethostname())) == 2)
    assert service.stop() == 0
    store = History(service.state_url)
    host = socket.gethostname()
    due_vacuum = now() - timedelta(minutes=20)
    due_advisor = now() - timedelta(hours=2)
    store.save_schedule(host, ScheduleState("vacuum", "app", NEVER_TODAY, "UTC", due_vacuum))
    store.save_schedule(host, ScheduleState("advisor", "app", NEVER_TODAY, "UTC", due_advisor))
    store.close()

    again = start_service(write_config(config))
    vacuum = again.wait_for_runs(1, job="vacuum")[0]
    advisor = again.wait_for_runs(1, job="advisor")[0]
    time.sleep(1)
    assert again.stop() == 0

    assert vacuum.status == "ok" and vacuum.scheduled_for == due_vacuum
    assert advisor.status == "missed" and advisor.scheduled_for == due_advisor
    assert "beyond scheduler.misfire_grace (60 min)" in (advisor.reason or "")
    assert len(again.runs()) == 2, "each late run is handled once, not once per restart"
    states = History(again.state_url).schedule_states(host)
    assert all(state.next_run_at is not None and state.next_run_at > now() for state in states.values())


def test_a_restart_neither_loses_nor_repeats_a_run(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    config = write_config(service_config({"app": database.dsn}, vacuum=EVERY_2S))
    first = start_service(config)
    first.wait_for_runs(2, job="vacuum")
    assert first.stop() == 0
    before = first.runs("vacuum")
    time.sleep(3)  # at least one due time passes while the service is down
    second = start_service(config)  # the same state store
    second.wait_for_runs(len(before) + 2, job="vacuum")
    assert second.stop() == 0

    runs = second.runs("vacuum")
    due_times = [r.scheduled_for for r in runs]
    assert None not in due_times
    assert len(due_times) == len(set(due_times)), "no due time ran twice"
    after = runs[len(before) :]
    assert after and all(r.scheduled_for > before[-1].scheduled_for for r in after)  # type: ignore[operator]
    assert {r.status for r in runs} == {"ok"}
    states = History(second.state_url).schedule_states(socket.gethostname())
    assert list(states) == [("vacuum", "app")]


def test_metrics_parse_as_prometheus_text_and_match_history(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    dirty_table(database)
    database.execute("DELETE FROM dirty")  # nothing left, but the statistics still count dead rows
    port = free_port()
    config = service_config(
        {"app": database.dsn},
        vacuum=NEVER_TODAY,
        reindex=EVERY_2S,
        extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\nrefresh = "1s"',
    )
    service = start_service(write_config(config))
    service.wait_for_runs(2, job="reindex")

    import urllib.request

    def scrape() -> dict[str, list[tuple[dict[str, str], float]]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
        families = {}
        for family in text_string_to_metric_families(text):
            families[family.name] = [(dict(s.labels), s.value) for s in family.samples]
        return families

    wait_for(lambda: "dbmaint_table_dead_tuples" in scrape() and bool(scrape()["dbmaint_table_dead_tuples"]))
    metrics = scrape()
    latest = [r for r in service.runs("reindex") if r.status != "running"]
    last_start = {labels["task"]: value for labels, value in metrics["dbmaint_last_run_start_timestamp_seconds"]}
    assert last_start["reindex"] in {r.started_at.timestamp() for r in latest[-2:]}
    statuses = {(labels["task"], labels["status"]) for labels, value in metrics["dbmaint_last_run_status"] if value}
    assert ("reindex", "ok") in statuses
    success = dict((labels["task"], value) for labels, value in metrics["dbmaint_last_success_timestamp_seconds"])
    assert success["reindex"] >= latest[-2].finished_at.timestamp()  # type: ignore[union-attr]
    dead = {labels["table"]: value for labels, value in metrics["dbmaint_table_dead_tuples"]}
    assert dead["public.dirty"] == database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname='dirty'")
    (xid_age,) = [value for labels, value in metrics["dbmaint_oldest_xid_age"]]
    assert xid_age == pytest.approx(
        database.value("SELECT age(datfrozenxid) FROM pg_database WHERE datname = current_database()"), abs=50
    )
    next_run = {labels["task"]: value for labels, value in metrics["dbmaint_next_run_timestamp_seconds"]}
    assert next_run["reindex"] > time.time() - 2
    period = {labels["task"]: value for labels, value in metrics["dbmaint_schedule_period_seconds"]}
    assert period["reindex"] == 2
    assert [value for labels, value in metrics["dbmaint_database_up"]] == [1.0]
    assert service.stop() == 0


def test_a_state_store_that_fails_stops_the_service_with_a_clear_message(
    pg: Cluster, database: Database, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    """The history lives in a PostgreSQL database that disappears: the service stops, non-zero, one line."""
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{database.name}_state"')
    state_url = f"postgresql://postgres@127.0.0.1:{pg.port}/{database.name}_state"
    service = ServiceProcess(write_config(service_config({"app": database.dsn})), state_url, tmp_path / "s.log")
    try:
        service.wait_for_runs(1, job="vacuum")
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE "{database.name}_state" WITH (FORCE)')
        code = service.process.wait(30)
    finally:
        service.stop()
    assert code == 1, "exit 1: systemd restarts the service (exit 2, a bad configuration, it would not)"
    last = service.log.strip().splitlines()[-1]
    assert last.startswith("dbmaint: stopped: cannot ") and "state store" in last, service.log


def test_status_says_what_ran_and_what_is_next(
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
    dbmaint: Invoke,
) -> None:
    config = write_config(service_config({"app": database.dsn}, vacuum=EVERY_2S, reindex=NEVER_TODAY))
    service = start_service(config)
    service.wait_for_runs(1, job="vacuum")

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DBMAINT_STATE_URL", service.state_url)
        running = json_output(dbmaint("status", "--config", config, "--format", "json"), exit_code=0)
        assert service.stop() == 0
        stopped = json_output(dbmaint("status", "--config", config, "--format", "json"), exit_code=0)
        text = dbmaint("status", "--config", config)

    (up,) = running["services"]
    assert up["running"] is True and up["pid"] == service.process.pid
    jobs = {job["job"]: job for job in running["jobs"]}
    assert jobs["vacuum"]["last_run"]["status"] == "ok"
    assert jobs["vacuum"]["last_success"] is not None
    assert datetime.fromisoformat(jobs["vacuum"]["next_run"]) > now() - timedelta(seconds=3)
    assert jobs["reindex"]["last_run"] is None
    assert datetime.fromisoformat(jobs["reindex"]["next_run"]).strftime("%m-%d %H:%M") == "01-01 03:00"
    assert jobs["capture"]["enabled"] is False and jobs["capture"]["next_run"] is None
    assert stopped["services"][0]["running"] is False
    assert "service: stopped" in text.stdout and "vacuum" in text.stdout


def test_a_bad_config_or_a_taken_metrics_port_stops_the_start_with_one_line(
    database: Database, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    bad = write_config('[vacuum]\nschedule = "61 3 * * *"\n')
    result = run_dbmaint_process("run", "--config", bad, env={"DBMAINT_STATE_URL": f"sqlite:///{tmp_path}/s.db"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"dbmaint: {bad}: 'vacuum.schedule': minute 61 is out of range 0-59 in \"61 3 * * *\""
    ]

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(service_config({"app": database.dsn}, extra=f'[metrics]\nlisten = "127.0.0.1:{port}"'))
        result = run_dbmaint_process("run", "--config", config, env={"DBMAINT_STATE_URL": f"sqlite:///{tmp_path}/s.db"})
    assert result.returncode == 2
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("dbmaint:")]
    assert line.startswith(f"dbmaint: metrics.listen 127.0.0.1:{port}: cannot listen there")
    assert "Traceback" not in result.stderr
    assert History(f"sqlite:///{tmp_path}/s.db").services() == [], "nothing recorded for a service that never ran"


def test_a_killed_service_leaves_no_backend_and_its_run_is_closed_at_the_next_start(
    pg: Cluster,
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
) -> None:
    """SIGKILL (or the watchdog's SIGABRT, or a power cut): nothing can be cleaned up by dbmaint itself."""
    config = write_config(service_config({"app": database.dsn}, extra='connection_check_interval = "1s"'))
    service = start_long_vacuum(pg, database, config, start_service)

    service.signal(signal.SIGKILL)
    service.process.wait(10)

    # client_connection_check_interval: the server notices the vanished client and ends the VACUUM.
    wait_for(lambda: not dbmaint_backends(pg), timeout=15)
    (left,) = service.runs("vacuum")
    assert left.status == "running", "nobody could record the end"
    again = start_service(config)  # the same state store
    wait_for(lambda: service.runs("vacuum")[0].status != "running", timeout=20)
    first = service.runs("vacuum")[0]
    assert first.status == "interrupted" and "stopped before this run finished" in (first.reason or "")
    assert again.stop() == 0


def test_after_a_failover_the_new_primary_acts_at_its_next_run(
    pg: Cluster,
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
) -> None:
    """The service on a standby records skips; once that standby is promoted, its next run does the work.

    Activity statistics are not replicated: the promoted server knows no dead rows and no last ANALYZE, so
    what its first run does is analyze the tables (their row estimates, in pg_class, did come across)."""
    dirty_table(database)
    database.execute("INSERT INTO dirty SELECT g, 'live' FROM generate_series(1, 1000) AS g", "ANALYZE dirty")
    replica = pg.standby()
    try:
        wait_for(replayed(database, replica))
        service = start_service(write_config(service_config({"app": replica.dsn(database.name)})))
        skipped = service.wait_for_runs(1, job="vacuum")[0]
        assert (skipped.status, skipped.reason) == ("skipped", "standby")

        with psycopg.connect(replica.dsn(), autocommit=True) as conn:
            conn.execute("SELECT pg_promote()")

        def acted() -> bool:
            return any(r.status == "ok" and r.done for r in service.runs("vacuum"))

        wait_for(acted, timeout=30)
        assert service.stop() == 0
        with psycopg.connect(replica.dsn(database.name), autocommit=True) as conn:
            analyzed = conn.execute("SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables").fetchone()
        assert analyzed == (True,), "the promoted server's table was analyzed by dbmaint"
    finally:
        replica.destroy()


def test_a_run_a_restart_interrupted_is_taken_up_again(
    pg: Cluster,
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
) -> None:
    """A package upgrade restarts the service in the middle of the nightly vacuum: the run is done after all."""
    config = write_config(service_config({"app": database.dsn}, vacuum=NEVER_TODAY))
    due = now() - timedelta(minutes=5)
    store = History(f"sqlite:///{Path(config).parent / 'state.db'}")
    store.save_schedule(socket.gethostname(), ScheduleState("vacuum", "app", NEVER_TODAY, "UTC", due))
    store.close()
    service = start_long_vacuum(pg, database, config, start_service)
    assert service.stop() == 0
    database.execute(f'ALTER DATABASE "{database.name}" RESET vacuum_cost_delay')  # the next one is quick

    again = start_service(config)
    wait_for(lambda: len([r for r in again.runs("vacuum") if r.status != "running"]) == 2)
    assert again.stop() == 0

    first, second = again.runs("vacuum")
    assert (first.status, first.scheduled_for) == ("interrupted", due)
    assert (second.status, second.scheduled_for, second.done) == ("ok", due, 1)
    assert database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'dirty'") == 0


def test_a_second_service_on_the_same_state_store_is_refused(
    database: Database, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    config = write_config(service_config({"app": database.dsn}))
    first = start_service(config)
    first.wait_for_runs(1, job="vacuum")
    second = start_service(config)  # the same state store, the same host: as if run by hand beside systemd
    assert second.process.wait(30) == 1, "1, not 2: systemd may retry (a stale record ages out)"
    (line,) = [line for line in second.log.splitlines() if line.startswith("dbmaint:")]
    assert f"another dbmaint run (pid {first.process.pid}) already uses this state store" in line
    assert first.alive()
    assert first.stop() == 0


@pytest.mark.parametrize("moment", ["connect", "query"])
def test_a_stop_at_any_moment_is_an_interruption_without_a_traceback(
    pg: Cluster,
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
    moment: str,
) -> None:
    """SIGTERM while a job connects (to a server that never answers) or while its statement runs."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # accepts the TCP handshake, never says a word: the connect waits
    hanging = f"host=127.0.0.1 port={listener.getsockname()[1]} dbname=app user=postgres"
    try:
        if moment == "connect":
            text = service_config({"hang": hanging}).replace('connect_timeout = "2s"', 'connect_timeout = "60s"')
            service = start_service(write_config(text))
            wait_for(lambda: "vacuum on hang: started" in service.log, timeout=30)
            time.sleep(1)
        else:
            service = start_long_vacuum(
                pg, database, write_config(service_config({"app": database.dsn})), start_service
            )
            time.sleep(1)
        assert service.stop(timeout=60) == 0, service.log
    finally:
        listener.close()
    assert "Traceback" not in service.log
    assert "didn't yield" not in service.log
    assert "failed" not in service.log.lower(), service.log
    (run,) = service.runs("vacuum")
    assert run.status == "interrupted", run


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads: line")


def test_threads_stay_bounded_and_queued_runs_say_so(
    pg: Cluster, write_config: Callable[[str], str], start_service: Callable[..., ServiceProcess]
) -> None:
    """Twelve databases, all four jobs every 2 s: a thread per job kind, not per job and database."""
    names = [f"many_{i}" for i in range(12)]
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        for name in names:
            conn.execute(f"DROP DATABASE IF EXISTS {name}")
            conn.execute(f"CREATE DATABASE {name}")
    try:
        config = service_config(
            {name: pg.dsn(name) for name in names},
            vacuum=EVERY_2S,
            reindex=EVERY_2S,
            capture=EVERY_2S,
            advisor=EVERY_2S,
        )
        service = start_service(write_config(config))
        wait_for(lambda: "scheduling:" in service.log, timeout=30)
        most = 0
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            assert service.alive(), service.log
            most = max(most, threads_of(service.process.pid))
            time.sleep(0.1)
        runs = service.runs()
        assert service.stop() == 0, service.log
    finally:
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            for name in names:
                conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    # main, APScheduler's own, one per job kind (4), the service pool (2: watchdog, heartbeat), health (1).
    bound = 1 + 1 + 4 + 2 + 1
    assert most <= bound, f"{most} threads for 12 databases x 4 jobs"
    assert {r.database for r in runs if r.status != "running"} == set(names)
    assert "queued behind" in service.log
    # "still going" only for a run that really is: started and not yet ended (a queued one says so).
    running: set[str] = set()
    for line in service.log.splitlines():
        message = line.split(": ", 1)[-1] if " dbmaint.service.scheduler: " in line else ""
        subject, _, rest = message.partition(": ")
        if rest.startswith("started"):
            running.add(subject)
        elif re.match(r"\w+( \(.*\))? in \d", rest):
            running.discard(subject)
        elif "still going" in rest:
            assert subject in running, line


# Loaded by the service's interpreter at start-up (sitecustomize): each job's first run raises inside the
# job, where a bug or a surprise from the server would; its later runs go through.
INJECT = """
import dbmaint.advisor.recommend, dbmaint.capture.slow_statements
import dbmaint.maintenance.reindex_analysis, dbmaint.maintenance.vacuum_analysis
from dbmaint.errors import StateStoreDataError

def first_call_raises(module, name, error):
    original, calls = getattr(module, name), []
    def patched(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise error
        return original(*args, **kwargs)
    setattr(module, name, patched)

first_call_raises(dbmaint.maintenance.vacuum_analysis, "plan", RuntimeError("injected into vacuum"))
first_call_raises(dbmaint.maintenance.reindex_analysis, "leftovers", KeyError("injected into reindex"))
first_call_raises(
    dbmaint.capture.slow_statements, "slow", StateStoreDataError("injected into capture: UNIQUE constraint failed")
)
first_call_raises(dbmaint.advisor.recommend, "advise", ZeroDivisionError("injected into advisor"))
"""


def test_an_error_inside_any_job_is_that_runs_failure_and_the_service_goes_on(
    database: Database,
    write_config: Callable[[str], str],
    start_service: Callable[..., ServiceProcess],
    tmp_path: Path,
) -> None:
    database.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    (tmp_path / "inject").mkdir()
    (tmp_path / "inject" / "sitecustomize.py").write_text(INJECT)
    schedules = {job: EVERY_2S for job in ("vacuum", "reindex", "capture", "advisor")}
    config = service_config({"app": database.dsn}, **schedules)
    service = start_service(write_config(config), env={"PYTHONPATH": str(tmp_path / "inject")})

    def each_job_ran_again() -> bool:
        finished = [r for r in service.runs() if r.status != "running"]
        return all(sum(r.job == job for r in finished) >= 2 for job in schedules)

    wait_for(each_job_ran_again, timeout=60)
    assert service.alive()
    for job in schedules:
        first, *later = [r for r in service.runs(job) if r.status != "running"]
        assert first.status == "failed" and f"injected into {job}" in (first.reason or ""), first
        assert any(r.status in ("ok", "skipped") for r in later), later
    assert service.stop() == 0
