"""Health samples in the state store: revision 0002 on an existing store, writes and reads, pruning; what the
service keeps of a sample, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from dbmaint.errors import DbmaintError
from dbmaint.maintenance.reindex_analysis import Bloat
from dbmaint.model import JobReport
from dbmaint.pg.facts import DatabaseHealth, IndexStats, TableStats
from dbmaint.service import health_history
from dbmaint.store import versioning
from dbmaint.store.health import HealthFigure
from dbmaint.store.history import History

T0 = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)


def alembic_to(engine: sa.Engine, revision: str, *, down: bool = False) -> None:
    config = Config()
    config.set_main_option("script_location", str(versioning.MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        (command.downgrade if down else command.upgrade)(config, revision)


def test_a_store_at_the_baseline_is_upgraded_in_place_and_keeps_its_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    engine = sa.create_engine(url)
    alembic_to(engine, "0001")
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO dbmaint_runs (job, database, status, started_at) "
                "VALUES ('vacuum', 'app', 'ok', '2026-11-01 03:00:00.000000')"
            )
        )
        assert not sa.inspect(conn).has_table("dbmaint_health_samples")
    engine.dispose()

    store = History(url)  # opening it applies 0002
    assert versioning.current(store.engine) == "0002" == versioning.HEAD
    (run,) = store.recent_runs()
    assert (run.job, run.database, run.status, run.started_at) == ("vacuum", "app", "ok", T0)
    store.record_health("app", T0, [HealthFigure("database", "app", xid_age=5)])
    assert store.last_health_sample("app") == T0
    store.close()


def test_the_revision_goes_down_again_dropping_only_its_table(tmp_path: Path) -> None:
    store = History(f"sqlite:///{tmp_path / 'state.db'}")
    alembic_to(store.engine, "0001", down=True)
    with store.engine.connect() as conn:
        assert not sa.inspect(conn).has_table("dbmaint_health_samples")
        assert sa.inspect(conn).has_table("dbmaint_runs")
        assert versioning.current_in(conn) == "0001"
    store.close()


def test_a_sample_is_read_back_whole_and_in_order(store: History) -> None:
    figures = [
        HealthFigure("database", "app", xid_age=1_000, mxid_age=20),
        HealthFigure("table", "public.t", xid_age=900, dead_tuples=50, live_tuples=10, size_bytes=8192),
        HealthFigure("index", "public.t_pkey", size_bytes=16384, bloat_bytes=4096, bloat_ratio=0.25),
    ]
    store.record_health("app", T0 + timedelta(hours=1), figures[:1])
    store.record_health("app", T0, figures)
    store.record_health("other", T0, figures[:1])
    readings = store.health_readings("app", T0)
    assert [(r.sampled_at, len(r.figures)) for r in readings] == [(T0, 3), (T0 + timedelta(hours=1), 1)]
    assert readings[0].figures == tuple(figures)
    assert store.health_readings("app", T0 + timedelta(minutes=1))[0].sampled_at == T0 + timedelta(hours=1)
    assert store.last_health_sample("app") == T0 + timedelta(hours=1)
    assert store.last_health_sample("nothing") is None


def test_samples_are_pruned_with_the_runs(store: History) -> None:
    now = datetime.now(UTC)
    store.record_health("app", now - timedelta(days=100), [HealthFigure("database", "app", xid_age=1)])
    store.record_health("app", now - timedelta(days=1), [HealthFigure("database", "app", xid_age=2)])
    store.prune(90 * 86400)
    assert [r.figures[0].xid_age for r in store.health_readings("app", now - timedelta(days=365))] == [2]


def test_the_worst_statements_of_the_period_and_the_rebuilds(store: History) -> None:
    report = JobReport(database="app", job="capture", started_at=T0)
    store.start_run(report)
    assert report.run_id is not None
    store.save_counters(
        "app", {}, [{"queryid": q, "query": f"q{q}", "last_calls": 1, "last_total_ms": 1.0} for q in (1, 2, 3)], T0
    )
    for queryid, total in ((1, 10.0), (2, 500.0), (3, 200.0), (1, 10.0)):
        store.add_sample(
            report.run_id, "app",
            {"queryid": queryid, "captured_at": T0, "calls": 1, "total_ms": total, "mean_ms": total,
             "cumulative_mean_ms": total},
        )  # fmt: skip
    assert {s.queryid for s in store.statement_samples("app", T0, 2)} == {2, 3}
    assert store.statement_samples("app", T0 + timedelta(seconds=1), 2) == []
    assert {s.query for s in store.statement_samples("app", T0, 3)} == {"q1", "q2", "q3"}


def table(name: str, dead: int, age: int, catalog: bool = False) -> TableStats:
    return TableStats(
        relid=1, schema="pg_catalog" if catalog else "public", name=name, is_catalog=catalog, reltuples=1,
        relpages=1, relallvisible=1, size_bytes=8192, reloptions=[], xid_age=age, mxid_age=1, n_live_tup=9,
        n_dead_tup=dead, n_mod_since_analyze=0, n_ins_since_vacuum=0, last_vacuum=None, last_analyze=None,
        can_maintain=True,
    )  # fmt: skip


def index(name: str) -> IndexStats:
    return IndexStats(
        index_oid=1, table_oid=1, schema="public", name=name, table_name="public.t", method="btree", relpages=10,
        reltuples=100, size_bytes=81920, reloptions=[], is_valid=True, is_catalog=False, is_exclusion=False,
        block_size=8192, missing_stats=0, data_width=8, max_null_frac=0,
        tablespace_oid=0,
    )  # fmt: skip


def test_a_sample_keeps_the_database_and_the_worst_few_of_each_kind() -> None:
    tables = [
        table("a", dead=500, age=10),
        table("b", dead=0, age=9_000),
        table("c", dead=100, age=20),
        table("d", dead=50, age=30),
        table("pg_class", dead=900, age=99_000, catalog=True),
    ]
    estimate = "estimated from statistics"
    indexes = [
        (index(n), Bloat(ratio, size, estimate))
        for n, size, ratio in (("i1", 100, 0.1), ("i2", 900, 0.5), ("i3", 0, 0.0))
    ]
    kept = health_history.figures("app", DatabaseHealth(123, 45, False), tables, indexes, top=2)
    assert kept[0] == HealthFigure("database", "app", xid_age=123, mxid_age=45)
    # The two with most dead rows (catalogs are not dbmaint's to vacuum), then the two oldest, catalogs too.
    assert [f.object for f in kept if f.kind == "table"] == ["public.a", "public.c", "pg_catalog.pg_class", "public.b"]
    assert [(f.object, f.bloat_bytes) for f in kept if f.kind == "index"] == [("public.i2", 900), ("public.i1", 100)]
    assert len(kept) <= 1 + 3 * 2


def test_a_sample_is_due_once_an_hour_counted_from_the_store(store: History) -> None:
    keeper = health_history.HealthHistory(store)
    assert keeper.due("app", T0)
    store.record_health("app", T0, [HealthFigure("database", "app", xid_age=1)])
    later = health_history.HealthHistory(store)  # a restarted service reads the last sample's time
    assert not later.due("app", T0 + timedelta(minutes=30))
    assert later.due("app", T0 + timedelta(minutes=57))  # a refresh a little early still makes the hour's


def test_a_failed_reading_is_logged_and_not_retried_at_every_refresh(store: History) -> None:
    keeper = health_history.HealthHistory(store)
    with mock.patch("dbmaint.pg.collect.vacuum_tables", side_effect=DbmaintError("no")):
        assert keeper.record(mock.Mock(), "app", T0, DatabaseHealth(1, 1, False), 10) is False
    assert not keeper.due("app", T0 + timedelta(minutes=1))
    assert store.last_health_sample("app") is None
