"""The state store on SQLite: runs and actions recorded before acting, read back, pruned."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from psycopg import sql

from dbmaint.errors import ConfigError, StateStoreError
from dbmaint.model import Action, JobReport
from dbmaint.store.history import History
from tests.unit.helpers import vacuum_action


def test_a_run_and_its_actions_are_recorded_as_they_happen(tmp_path: Path) -> None:
    store = History(f"sqlite:///{tmp_path / 'nested' / 'state.db'}")
    report = JobReport(database="app", job="vacuum")
    store.start_run(report, host="db1")
    first, second = vacuum_action("a"), vacuum_action("b")
    store.start_action(report, first)
    (running,) = store.recent_runs()
    assert running.status == "running"
    assert [row["status"] for row in store.run_actions(running.id)] == ["started"]  # a crash leaves this
    first.status, first.duration_s = "done", 1.5
    store.finish_action(first)
    second.status, second.detail = "skipped", "lock not available"
    store.record_skipped(report, second)
    report.actions = [first, second]
    store.finish_run(report.finish())

    (run,) = store.recent_runs()
    assert (run.job, run.database, run.status, run.host) == ("vacuum", "app", "partial", "db1")
    assert (run.done, run.skipped, run.failed) == (1, 1, 0)
    rows = store.run_actions(run.id)
    assert [(r["object"], r["status"], r["statement"]) for r in rows] == [
        ("public.a", "done", 'VACUUM "public"."a"'),
        ("public.b", "skipped", 'VACUUM "public"."b"'),
    ]
    assert store.last_done("app", "vacuum", ["public.a", "public.b"]).keys() == {"public.a"}
    assert store.recent_runs(job="reindex") == []


def test_old_runs_are_pruned_by_retention(tmp_path: Path) -> None:
    store = History(f"sqlite:///{tmp_path / 'state.db'}")
    old = JobReport(database="app", job="vacuum")
    old.started_at -= timedelta(days=100)
    store.start_run(old)
    store.start_action(old, vacuum_action("a"))
    store.finish_run(old.finish())
    recent = JobReport(database="app", job="vacuum")
    store.start_run(recent)
    store.finish_run(recent.finish())

    assert store.prune(retention_s=90 * 86400) == 1
    assert [r.id for r in store.recent_runs()] == [recent.run_id]
    assert old.run_id is not None and store.run_actions(old.run_id) == []


def test_an_unusable_store_is_one_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateStoreError, match="cannot open the state store"):
        History(f"sqlite:///{blocker / 'state.db'}")
    with pytest.raises(ConfigError, match="invalid state store URL"):
        History("nonsense://")


def test_two_servers_with_a_database_of_the_same_name_keep_apart(tmp_path: Path) -> None:
    """A rebuild on one cluster's "app" is no reason to skip the other's (reindex's min_interval)."""
    store = History(f"sqlite:///{tmp_path / 'state.db'}")
    report = JobReport(database="app", job="reindex", server="7000000000000000001")
    store.start_run(report, host="db1")
    done = Action(object="public.a_idx", statement=sql.Composed([sql.SQL("REINDEX")]), reason="bloat", kind="reindex")
    store.start_action(report, done)
    done.status = "done"
    store.finish_action(done)
    report.actions = [done]
    store.finish_run(report.finish())

    assert store.last_done("app", "reindex", ["public.a_idx"], server="7000000000000000001").keys() == {"public.a_idx"}
    assert store.last_done("app", "reindex", ["public.a_idx"], server="7000000000000000002") == {}
    (run,) = store.recent_runs()
    assert run.server == "7000000000000000001" and run.to_json()["server"] == "7000000000000000001"
