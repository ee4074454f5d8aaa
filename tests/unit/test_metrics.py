"""The /metrics collector over a SQLite history: what a scrape shows equals what history holds, the schedule
and the health samples, and a state store that cannot be read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from psycopg import sql

from dbmaint import __version__
from dbmaint.errors import StateStoreError
from dbmaint.model import Action, JobReport, RunStatus, Status
from dbmaint.service.metrics import (
    ACTION_RESULTS,
    METRIC_NAMES,
    RUN_STATUSES,
    HealthSample,
    IndexBloat,
    ScheduledJob,
    ServiceMetrics,
)
from dbmaint.store.history import History

T0 = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
STARTED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
NEXT_VACUUM = datetime(2026, 11, 27, 3, 0, tzinfo=UTC)

Scrape = dict[str, list[Sample]]


def action(name: str, status: Status) -> Action:
    return Action(
        object=f"public.{name}",
        statement=sql.SQL("VACUUM {}").format(sql.Identifier("public", name)),
        reason="dead rows",
        kind="vacuum",
        status=status,
        duration_s=1.0,
    )


def record_run(
    history: History,
    job: str,
    database: str,
    status: RunStatus,
    started: datetime,
    duration_s: float,
    results: Sequence[Status] = (),
) -> JobReport:
    """A run as dbmaint/jobs.py records it: the run, each action started then finished, the run finished."""
    report = JobReport(database=database, job=job, started_at=started)
    history.start_run(report, host="db1")
    for index, result in enumerate(results):
        item = action(f"t{index}", "started")
        history.start_action(report, item)
        item.status = result
        history.finish_action(item)
        report.actions.append(item)
    report.status = status
    report.finished_at = started + timedelta(seconds=duration_s)
    history.finish_run(report)
    return report


def add_slow_statements(history: History, report: JobReport, count: int) -> None:
    assert report.run_id is not None
    for queryid in range(count):
        history.add_sample(
            report.run_id,
            report.database,
            {
                "queryid": queryid,
                "captured_at": report.started_at,
                "calls": 10,
                "total_ms": 2000.0,
                "mean_ms": 200.0,
                "cumulative_mean_ms": 200.0,
            },
        )


def build_history(path: Path) -> History:
    store = History(f"sqlite:///{path}")
    # vacuum on app: an ok run, a partial one, then a failed one (the latest).
    record_run(store, "vacuum", "app", "ok", T0 - timedelta(days=2), 60, ["done"])
    record_run(store, "vacuum", "app", "partial", T0 - timedelta(days=1), 90, ["done", "done", "skipped", "failed"])
    record_run(store, "vacuum", "app", "failed", T0, 12.5, ["failed", "interrupted", "interrupted"])
    # reindex on app: one ok run, then a missed one.
    record_run(store, "reindex", "app", "ok", T0 - timedelta(days=30), 600, ["done"])
    store.record_not_run("reindex", "app", "missed", "missed: due at ...", T0 - timedelta(hours=1), "db1")
    # capture: an older pass with 5 slow statements, the last finished one with 3, and a failed one after it.
    older = record_run(store, "capture", "app", "ok", T0 - timedelta(minutes=30), 4)
    add_slow_statements(store, older, 5)
    last = record_run(store, "capture", "app", "ok", T0 - timedelta(minutes=15), 4)
    add_slow_statements(store, last, 3)
    record_run(store, "capture", "app", "failed", T0, 1)
    return store


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    """Built once: the tests only read it (monkeypatched methods are restored after each test)."""
    return build_history(tmp_path_factory.mktemp("metrics") / "state.db")


def scrape(collector: ServiceMetrics) -> Scrape:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {family.name: list(family.samples) for family in text_string_to_metric_families(text)}


def value(families: Scrape, name: str, **labels: str) -> float:
    matches = [s.value for s in families[name] if s.labels == labels]
    assert len(matches) == 1, f"{name} {labels}: {matches}"
    return matches[0]


def labelled(families: Scrape, name: str, label: str) -> set[str]:
    return {s.labels[label] for s in families.get(name, [])}


def schedule() -> list[ScheduledJob]:
    return [
        ScheduledJob("vacuum", "app", NEXT_VACUUM, 86400.0),
        ScheduledJob("capture", "app", None, 900.0),
    ]


def metrics(history: History) -> ServiceMetrics:
    return ServiceMetrics(history, schedule=schedule, started_at=STARTED)


def health(database: str = "app", **changes: object) -> HealthSample:
    sample = HealthSample(
        database,
        T0,
        up=True,
        in_recovery=False,
        xid_age=123_456,
        multixact_age=789,
        dead_tuples=[("public.orders", 5000), ("public.users", 12)],
        index_bloat=[IndexBloat("public.orders_pkey", 8_192_000, 0.4), IndexBloat("public.users_email", 81920, 0.1)],
    )
    for key, new in changes.items():
        setattr(sample, key, new)
    return sample


# --- runs, from history ------------------------------------------------------------------------------------------


def test_last_run_figures_are_the_latest_run_in_history(history: History) -> None:
    families = scrape(metrics(history))
    latest = history.latest_runs()
    vacuum = latest[("vacuum", "app")]
    assert vacuum.status == "failed"
    assert value(families, "dbmaint_last_run_start_timestamp_seconds", task="vacuum", database="app") == T0.timestamp()
    assert value(families, "dbmaint_last_run_duration_seconds", task="vacuum", database="app") == 12.5
    for job, database in latest:
        run = latest[(job, database)]
        assert value(families, "dbmaint_last_run_start_timestamp_seconds", task=job, database=database) == (
            run.started_at.timestamp()
        )
        assert run.duration_s is not None
        assert value(families, "dbmaint_last_run_duration_seconds", task=job, database=database) == run.duration_s
    assert labelled(families, "dbmaint_last_run_start_timestamp_seconds", "task") == {"vacuum", "reindex", "capture"}


def test_last_run_status_is_one_hot(history: History) -> None:
    families = scrape(metrics(history))
    expected = {("vacuum", "failed"), ("reindex", "missed"), ("capture", "failed")}
    for job in ("vacuum", "reindex", "capture"):
        statuses = {
            s.labels["status"]: s.value
            for s in families["dbmaint_last_run_status"]
            if s.labels["task"] == job and s.labels["database"] == "app"
        }
        assert set(statuses) == set(RUN_STATUSES)
        assert {name for name, v in statuses.items() if v == 1.0} == {status for j, status in expected if j == job}
        assert sum(statuses.values()) == 1.0


def test_actions_of_the_last_run_by_result(history: History) -> None:
    families = scrape(metrics(history))
    vacuum = {s.labels["result"]: s.value for s in families["dbmaint_last_run_actions"] if s.labels["task"] == "vacuum"}
    assert vacuum == {"done": 0.0, "skipped": 0.0, "failed": 1.0, "interrupted": 2.0, "proposed": 0.0}
    assert set(vacuum) == set(ACTION_RESULTS)
    reindex = {
        s.labels["result"]: s.value for s in families["dbmaint_last_run_actions"] if s.labels["task"] == "reindex"
    }
    assert reindex == dict.fromkeys(ACTION_RESULTS, 0.0)  # the missed run did nothing


def test_last_success_is_the_last_ok_or_partial_run_not_the_later_failure(history: History) -> None:
    families = scrape(metrics(history))
    partial_end = T0 - timedelta(days=1) + timedelta(seconds=90)
    assert value(families, "dbmaint_last_success_timestamp_seconds", task="vacuum", database="app") == (
        partial_end.timestamp()
    )
    reindex_end = T0 - timedelta(days=30) + timedelta(seconds=600)
    assert value(families, "dbmaint_last_success_timestamp_seconds", task="reindex", database="app") == (
        reindex_end.timestamp()
    )
    assert history.last_successes()[("vacuum", "app")] == partial_end


def test_slow_statements_of_the_last_finished_capture_pass(history: History) -> None:
    families = scrape(metrics(history))
    assert value(families, "dbmaint_slow_statements", database="app") == 3.0


def test_a_running_run_has_a_start_but_no_duration(tmp_path: Path) -> None:
    store = History(f"sqlite:///{tmp_path / 'state.db'}")
    store.start_run(JobReport(database="app", job="vacuum", started_at=T0), host="db1")
    families = scrape(metrics(store))
    assert value(families, "dbmaint_last_run_start_timestamp_seconds", task="vacuum", database="app") == T0.timestamp()
    assert families.get("dbmaint_last_run_duration_seconds", []) == []
    assert value(families, "dbmaint_last_run_status", task="vacuum", database="app", status="running") == 1.0
    assert families.get("dbmaint_last_success_timestamp_seconds", []) == []


# --- the service and the schedule --------------------------------------------------------------------------------


def test_info_start_time_and_state_store_up(history: History) -> None:
    families = scrape(metrics(history))
    (info,) = families["dbmaint_info"]
    assert info.labels["version"] == __version__ and info.labels["host"] and info.value == 1.0
    assert value(families, "dbmaint_service_start_time_seconds") == STARTED.timestamp()
    assert value(families, "dbmaint_state_store_up") == 1.0


def test_schedule_figures(history: History) -> None:
    families = scrape(metrics(history))
    assert value(families, "dbmaint_next_run_timestamp_seconds", task="vacuum", database="app") == (
        NEXT_VACUUM.timestamp()
    )
    assert labelled(families, "dbmaint_next_run_timestamp_seconds", "task") == {"vacuum"}  # capture: no next run
    assert value(families, "dbmaint_schedule_period_seconds", task="vacuum", database="app") == 86400.0
    assert value(families, "dbmaint_schedule_period_seconds", task="capture", database="app") == 900.0


def test_the_schedule_is_read_at_each_scrape(history: History) -> None:
    jobs: list[ScheduledJob] = []
    collector = ServiceMetrics(history, schedule=lambda: jobs, started_at=STARTED)
    assert scrape(collector).get("dbmaint_schedule_period_seconds", []) == []
    jobs.append(ScheduledJob("advisor", "app", NEXT_VACUUM, 7 * 86400.0))
    assert value(scrape(collector), "dbmaint_schedule_period_seconds", task="advisor", database="app") == 7 * 86400.0


# --- health samples ----------------------------------------------------------------------------------------------


def test_health_figures(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health())
    families = scrape(collector)
    assert value(families, "dbmaint_database_up", database="app") == 1.0
    assert value(families, "dbmaint_database_in_recovery", database="app") == 0.0
    assert value(families, "dbmaint_health_sample_timestamp_seconds", database="app") == T0.timestamp()
    assert value(families, "dbmaint_oldest_xid_age", database="app") == 123_456
    assert value(families, "dbmaint_oldest_multixact_age", database="app") == 789
    assert value(families, "dbmaint_table_dead_tuples", database="app", table="public.orders") == 5000
    assert value(families, "dbmaint_table_dead_tuples", database="app", table="public.users") == 12
    assert value(families, "dbmaint_index_bloat_bytes", database="app", index="public.orders_pkey") == 8_192_000
    assert value(families, "dbmaint_index_bloat_ratio", database="app", index="public.orders_pkey") == 0.4
    assert value(families, "dbmaint_index_bloat_bytes", database="app", index="public.users_email") == 81920
    assert value(families, "dbmaint_index_bloat_ratio", database="app", index="public.users_email") == 0.1


def test_a_standby_reports_in_recovery(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health(in_recovery=True))
    assert value(scrape(collector), "dbmaint_database_in_recovery", database="app") == 1.0


def test_a_sample_without_index_bloat_keeps_the_previous_bloat(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health())
    later = T0 + timedelta(minutes=1)
    collector.update_health(
        health(taken_at=later, xid_age=200_000, index_bloat=None, dead_tuples=[("public.orders", 7)])
    )
    families = scrape(collector)
    assert value(families, "dbmaint_oldest_xid_age", database="app") == 200_000  # the rest is the new sample's
    assert value(families, "dbmaint_health_sample_timestamp_seconds", database="app") == later.timestamp()
    assert value(families, "dbmaint_table_dead_tuples", database="app", table="public.orders") == 7
    assert labelled(families, "dbmaint_table_dead_tuples", "table") == {"public.orders"}
    assert value(families, "dbmaint_index_bloat_bytes", database="app", index="public.orders_pkey") == 8_192_000
    assert labelled(families, "dbmaint_index_bloat_bytes", "index") == {"public.orders_pkey", "public.users_email"}


def test_a_fresh_reading_of_no_bloat_clears_the_previous_bloat(history: History) -> None:
    """After a REINDEX the estimate finds nothing: the dashboard must not keep showing the old bloat."""
    collector = metrics(history)
    collector.update_health(health())
    collector.update_health(health(taken_at=T0 + timedelta(minutes=15), index_bloat=[]))
    assert labelled(scrape(collector), "dbmaint_index_bloat_bytes", "index") == set()


def test_a_sample_with_index_bloat_replaces_the_previous_bloat(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health())
    collector.update_health(health(index_bloat=[IndexBloat("public.other_idx", 16384, 0.5)]))
    families = scrape(collector)
    assert labelled(families, "dbmaint_index_bloat_bytes", "index") == {"public.other_idx"}
    assert value(families, "dbmaint_index_bloat_bytes", database="app", index="public.other_idx") == 16384


def test_a_database_that_is_down_has_no_figures_but_up_0(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health())
    collector.update_health(HealthSample("app", T0 + timedelta(minutes=1), up=False))
    families = scrape(collector)
    assert value(families, "dbmaint_database_up", database="app") == 0.0
    assert value(families, "dbmaint_health_sample_timestamp_seconds", database="app") == (
        (T0 + timedelta(minutes=1)).timestamp()
    )
    for name in (
        "dbmaint_oldest_xid_age",
        "dbmaint_oldest_multixact_age",
        "dbmaint_database_in_recovery",
        "dbmaint_table_dead_tuples",
        "dbmaint_index_bloat_bytes",
        "dbmaint_index_bloat_ratio",
    ):
        assert families.get(name, []) == [], name


def test_forget_databases_drops_the_others(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health("app"))
    collector.update_health(health("gone"))
    assert labelled(scrape(collector), "dbmaint_database_up", "database") == {"app", "gone"}
    collector.forget_databases({"app"})
    families = scrape(collector)
    assert labelled(families, "dbmaint_database_up", "database") == {"app"}
    assert labelled(families, "dbmaint_oldest_xid_age", "database") == {"app"}
    assert labelled(families, "dbmaint_index_bloat_bytes", "database") == {"app"}


# --- names -------------------------------------------------------------------------------------------------------


def test_every_family_is_a_known_name_and_all_appear_with_data(history: History) -> None:
    collector = metrics(history)
    collector.update_health(health())
    families = scrape(collector)
    emitted = {name for name, samples in families.items() if name.startswith("dbmaint_")}
    with_samples = {name for name in emitted if families[name]}
    assert emitted <= METRIC_NAMES
    assert with_samples == METRIC_NAMES
    # "job" is the label Prometheus gives every target: a series of ours must not carry one of its own.
    assert not [s for name in emitted for s in families[name] if "job" in s.labels]


def test_an_empty_history_emits_only_known_names(tmp_path: Path) -> None:
    families = scrape(ServiceMetrics(History(f"sqlite:///{tmp_path / 'state.db'}"), list, STARTED))
    emitted = {name for name in families if name.startswith("dbmaint_")}
    assert emitted <= METRIC_NAMES
    assert value(families, "dbmaint_state_store_up") == 1.0


# --- a state store that cannot be read ---------------------------------------------------------------------------


def test_a_store_whose_file_is_gone_gives_state_store_up_0(tmp_path: Path) -> None:
    history = build_history(tmp_path / "state.db")
    collector = metrics(history)
    collector.update_health(health())
    history.engine.dispose()
    (tmp_path / "state.db").unlink()  # the next connection opens an empty file: no tables
    families = scrape(collector)
    assert value(families, "dbmaint_state_store_up") == 0.0
    assert families.get("dbmaint_last_run_status", []) == []
    # The rest of the scrape is still there.
    assert value(families, "dbmaint_database_up", database="app") == 1.0
    assert value(families, "dbmaint_schedule_period_seconds", task="vacuum", database="app") == 86400.0


@pytest.mark.parametrize("method", ["latest_runs", "last_successes", "slow_counts"])
def test_a_failing_read_gives_state_store_up_0(history: History, monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    def fail() -> None:
        raise StateStoreError("cannot read the state store sqlite:///x: disk I/O error")

    monkeypatch.setattr(history, method, fail)
    families = scrape(metrics(history))
    assert value(families, "dbmaint_state_store_up") == 0.0
    for name in ("dbmaint_last_run_start_timestamp_seconds", "dbmaint_last_success_timestamp_seconds"):
        assert families.get(name, []) == []
