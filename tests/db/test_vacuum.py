"""dbmaint vacuum against a real server: chooses by need, orders by risk, and never blocks or harms others."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from dbmaint.maintenance.actions import job_lock_key
from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, json_output, run_dbmaint_process

CLEAN_AND_DIRTY = (
    "CREATE TABLE clean (id int PRIMARY KEY, v text)",
    "CREATE TABLE dirty (id int PRIMARY KEY, v text)",
    "INSERT INTO clean SELECT g, 'x' FROM generate_series(1, 20000) g",
    "INSERT INTO dirty SELECT g, 'x' FROM generate_series(1, 20000) g",
)


def make_clean_and_dirty(database: Database) -> None:
    database.execute(*CLEAN_AND_DIRTY)
    database.execute("VACUUM ANALYZE clean, dirty")
    database.execute("UPDATE dirty SET v = 'y' WHERE id % 2 = 0")


def counts(database: Database, table: str) -> tuple[int, int, int]:
    row = (
        database.value("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = %s", (table,)),
        database.value("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = %s", (table,)),
        database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = %s", (table,)),
    )
    return row


def user_actions(document: dict[str, Any]) -> list[dict[str, Any]]:
    actions = document["actions"]
    assert isinstance(actions, list)
    return [a for a in actions if not str(a["object"]).startswith("pg_catalog.")]


def test_dirty_tables_are_chosen_and_clean_ones_are_not(database: Database, dbmaint: Invoke) -> None:
    make_clean_and_dirty(database)
    before_clean = counts(database, "clean")

    document = json_output(dbmaint("vacuum", "--dsn", database.dsn, "--format", "json"), exit_code=0)

    assert document["database"] == database.name and document["job"] == "vacuum"
    actions = user_actions(document)
    assert [a["object"] for a in actions] == ["public.dirty"]
    action = actions[0]
    assert action["statement"] == 'VACUUM (ANALYZE, SKIP_LOCKED) "public"."dirty"'
    assert action["status"] == "done"
    assert "10,000 dead rows" in str(action["reason"])
    assert isinstance(action["duration_s"], float)
    vacuums, analyzes, dead = counts(database, "dirty")
    assert (vacuums, analyzes, dead) == (2, 2, 0)
    assert counts(database, "clean") == before_clean


def test_only_stale_statistics_get_the_cheaper_analyze(database: Database, dbmaint: Invoke) -> None:
    database.execute("CREATE TABLE t (id int PRIMARY KEY)", "INSERT INTO t SELECT generate_series(1, 1000)")
    database.execute("VACUUM ANALYZE t")
    database.execute("VACUUM t")  # no dead rows left, but the vacuum does not reset n_mod_since_analyze
    database.execute("INSERT INTO t SELECT generate_series(1001, 1400)")

    document = json_output(dbmaint("vacuum", "--dsn", database.dsn, "--format", "json"), exit_code=0)

    (action,) = user_actions(document)
    assert action["statement"] == 'ANALYZE (SKIP_LOCKED) "public"."t"'
    assert "400 rows changed since the last analyze" in str(action["reason"])


def test_wraparound_risk_comes_first_and_is_frozen(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(
        "CREATE TABLE old_table (id int)",
        "INSERT INTO old_table SELECT generate_series(1, 100)",
    )
    database.execute("VACUUM ANALYZE old_table")
    with database.connect() as conn:  # age old_table by 1,500 transaction IDs
        for _ in range(1500):
            conn.execute("SELECT txid_current()")
    make_clean_and_dirty(database)
    config = write_config('[vacuum]\nfreeze_age = 1000\nexclude = ["pg_catalog.*"]\n')

    document = json_output(
        dbmaint("vacuum", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )

    objects = [a["object"] for a in document["actions"]]
    assert objects == ["public.old_table", "public.dirty"]
    first = document["actions"][0]
    assert first["statement"] == 'VACUUM (FREEZE, SKIP_LOCKED) "public"."old_table"'
    assert "wraparound" in first["reason"]
    assert database.value("SELECT age(relfrozenxid) FROM pg_class WHERE relname = 'old_table'") < 100


def test_locked_table_is_skipped_within_lock_timeout_and_the_other_session_is_unharmed(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_clean_and_dirty(database)
    holder = LockHolder(database.dsn, "BEGIN", "LOCK TABLE dirty IN ACCESS EXCLUSIVE MODE")
    config = write_config('[vacuum]\nretries = 1\nretry_delay = "1s"\n[safety]\nlock_timeout = "1s"\n')
    try:
        document = json_output(
            dbmaint("vacuum", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
        )
        assert holder.still_alive()
        holder.conn.execute("INSERT INTO dirty VALUES (-1, 'still mine')")
        holder.conn.commit()
    finally:
        holder.release()

    (action,) = user_actions(document)
    assert action["status"] == "skipped"
    assert "lock not available after 2 attempt(s)" in action["detail"]
    assert document["status"] == "skipped"
    assert database.value("SELECT v FROM dirty WHERE id = -1") == "still mine"
    assert counts(database, "dirty")[0] == 1  # only the set-up VACUUM


def test_dry_run_prints_the_statements_and_changes_nothing(database: Database, dbmaint: Invoke) -> None:
    make_clean_and_dirty(database)
    database.execute('CREATE TABLE "Mixed Case" (id int)', 'INSERT INTO "Mixed Case" VALUES (1)')
    before = {t: counts(database, t) for t in ("clean", "dirty", "Mixed Case")}

    dry = dbmaint("vacuum", "--dsn", database.dsn, "--dry-run")

    assert dry.exit_code == 0
    assert {t: counts(database, t) for t in before} == before
    dry_statements = [line.split(";  --")[0] for line in dry.stdout.splitlines() if not line.startswith("--")]
    real = json_output(dbmaint("vacuum", "--dsn", database.dsn, "--format", "json"), exit_code=0)
    assert dry_statements == [a["statement"] for a in real["actions"]]
    assert 'ANALYZE (SKIP_LOCKED) "public"."Mixed Case"' in dry_statements
    assert all(a["status"] == "done" for a in real["actions"])


def test_second_concurrent_run_says_so_and_exits_promptly(database: Database, dbmaint: Invoke) -> None:
    make_clean_and_dirty(database)
    key1, key2 = job_lock_key("vacuum")
    with database.connect() as other_run:
        other_run.execute("SELECT pg_advisory_lock(%s, %s)", (key1, key2))
        result = run_dbmaint_process("vacuum", "--dsn", database.dsn, "--format", "json", timeout=30)
    assert result.returncode == 0, result.stderr
    document = json_output_text(result.stdout)
    assert document["status"] == "skipped"
    assert document["reason"] == "another dbmaint vacuum run holds the lock on this database"
    assert document["actions"] == []
    assert counts(database, "dirty")[0] == 1


def json_output_text(text: str) -> dict[str, object]:
    document = json.loads(text)
    assert isinstance(document, dict)
    return document


def test_defers_when_the_server_is_busy(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_clean_and_dirty(database)
    busy = [LockHolder(database.dsn, "BEGIN", "SELECT 1") for _ in range(2)]
    config = write_config("[safety]\nmax_active_connections = 1\n")
    try:
        document = json_output(
            dbmaint("vacuum", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
        )
    finally:
        for holder in busy:
            holder.release()
    assert document["status"] == "skipped"
    assert document["reason"].startswith("deferred: 2 active connections (limit 1")
    assert counts(database, "dirty")[0] == 1


def test_nothing_starts_once_the_window_has_closed(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_clean_and_dirty(database)
    config = write_config('[vacuum]\nwindow = "0s"\n')
    document = json_output(
        dbmaint("vacuum", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    (action,) = user_actions(document)
    assert action["status"] == "skipped"
    assert action["detail"] == "maintenance window closed before it could start"
    assert counts(database, "dirty")[0] == 1


def test_reports_what_holds_back_dead_row_removal(database: Database, dbmaint: Invoke) -> None:
    make_clean_and_dirty(database)
    database.execute("VACUUM dirty")
    snapshot = LockHolder(database.dsn, "BEGIN ISOLATION LEVEL REPEATABLE READ", "SELECT count(*) FROM clean")
    try:
        database.execute("DELETE FROM dirty WHERE id <= 15000")
        document = json_output(dbmaint("vacuum", "--dsn", database.dsn, "--format", "json"), exit_code=0)
    finally:
        snapshot.release()
    (action,) = user_actions(document)
    assert action["status"] == "done"
    assert "dead rows could not be removed yet" in action["detail"]
    (warning,) = document["warnings"]
    assert f"session pid {snapshot.pid}" in warning
    assert "public.dirty" in warning


def test_parallel_workers_do_all_the_work(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    tables = [f"t{i}" for i in range(4)]
    for table in tables:
        database.execute(f"CREATE TABLE {table} (id int)", f"INSERT INTO {table} SELECT generate_series(1, 5000)")
    config = write_config('[vacuum]\njobs = 3\nexclude = ["pg_catalog.*"]\n')
    document = json_output(
        dbmaint("vacuum", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    assert sorted(a["object"] for a in document["actions"]) == [f"public.{t}" for t in tables]
    assert all(a["status"] == "done" for a in document["actions"])
    for table in tables:
        assert counts(database, table)[:2] == (1, 1)


def test_tables_this_role_may_not_vacuum_are_skipped_with_the_reason(database: Database, dbmaint: Invoke) -> None:
    make_clean_and_dirty(database)
    dsn = database.dsn.replace("user=postgres", "user=app_user")
    result = dbmaint("vacuum", "--dsn", dsn, "--format", "json")
    document = json_output(result, exit_code=1)
    (action,) = user_actions(document)
    assert action["status"] == "skipped"
    assert action["detail"].startswith("insufficient privilege")
    assert counts(database, "dirty")[0] == 1
    # Nothing could be maintained: a failure with what to grant, not a quiet "skipped" and exit 0.
    assert result.exit_code == 1
    assert document["status"] == "failed" and "GRANT the owning role" in document["reason"]


def test_history_records_the_run(database: Database, dbmaint: Invoke) -> None:
    make_clean_and_dirty(database)
    dbmaint("vacuum", "--dsn", database.dsn)
    document = json_output(dbmaint("history", "--format", "json"), exit_code=0)
    (run,) = document["runs"]
    assert (run["job"], run["database"], run["status"]) == ("vacuum", database.name, "ok")
    assert run["actions"]["done"] >= 1
    text = dbmaint("history").stdout
    assert "vacuum" in text and database.name in text


def test_a_dry_run_as_a_role_owning_some_tables_says_what_the_real_run_does(
    database: Database, dbmaint: Invoke
) -> None:
    """app_user owns one dirty table, not the other: the real pass is partial (exit 0), and so is its dry
    run, with the statement it would send; it said "failed" with none (exit 1)."""
    make_clean_and_dirty(database)
    database.execute(
        "CREATE TABLE mine (id int, v text)",
        "INSERT INTO mine SELECT g, 'x' FROM generate_series(1, 2000) g",
        "VACUUM ANALYZE mine",
        "UPDATE mine SET v = 'y' WHERE id % 2 = 0",
        "ALTER TABLE mine OWNER TO app_user",
    )
    dsn = database.dsn.replace("user=postgres", "user=app_user")
    dry = json_output(dbmaint("vacuum", "--dry-run", "--dsn", dsn, "--format", "json"), exit_code=0)
    real = json_output(dbmaint("vacuum", "--dsn", dsn, "--format", "json"), exit_code=0)
    for document, acted in ((dry, "planned"), (real, "done")):
        assert document["status"] == "partial", document
        by_table = {a["object"]: a["status"] for a in user_actions(document)}
        assert by_table == {"public.mine": acted, "public.dirty": "skipped"}, by_table
