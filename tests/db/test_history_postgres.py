"""The state store works on PostgreSQL as well as on SQLite."""

from __future__ import annotations

from dbmaint.model import JobReport
from dbmaint.store.history import History
from tests.db.conftest import Database


def test_postgresql_state_store(database: Database) -> None:
    url = f"postgresql://postgres@127.0.0.1:{database.cluster.port}/{database.name}"
    store = History(url)
    report = JobReport(database="app", job="reindex")
    store.start_run(report)
    store.finish_run(report.finish())
    (run,) = store.recent_runs()
    assert (run.job, run.status) == ("reindex", "ok")
    store.close()
    assert database.value("SELECT count(*) FROM dbmaint_runs") == 1
