"""dbmaint reindex against a real server: finds bloat, rebuilds concurrently, and cleans failed builds."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import psycopg
import pytest

from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, in_thread, json_output, wait_for

SMALL_THRESHOLDS = '[reindex]\nmin_size = "1MB"\nmin_bloat_ratio = 0.3\n'


def make_bloated_index(database: Database) -> None:
    """200,000 rows, then 90% deleted across the whole key range: the btree keeps its pages."""
    database.execute(
        "CREATE TABLE items (id int PRIMARY KEY, sku text NOT NULL)",
        "INSERT INTO items SELECT g, 'sku-' || g FROM generate_series(1, 200000) g",
        "CREATE INDEX items_sku ON items (sku)",
    )
    database.execute("DELETE FROM items WHERE id % 10 <> 0")
    database.execute("VACUUM ANALYZE items")


def index_size(database: Database, name: str) -> int:
    return int(database.value("SELECT pg_relation_size(%s::regclass)", (name,)))


def index_names(database: Database) -> set[str]:
    with database.connect() as conn:
        return {row[0] for row in conn.execute("SELECT indexrelid::regclass::text FROM pg_index")}


def test_bloated_index_is_found_rebuilt_and_smaller(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_bloated_index(database)
    database.execute(
        "CREATE TABLE healthy (id int PRIMARY KEY)", "INSERT INTO healthy SELECT generate_series(1, 100000)"
    )
    database.execute("VACUUM ANALYZE healthy")
    before = index_size(database, "items_sku")
    config = write_config(SMALL_THRESHOLDS)

    document = json_output(
        dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )

    rebuilt = {a["object"]: a for a in document["actions"] if a["status"] == "done"}
    assert set(rebuilt) == {"public.items_pkey", "public.items_sku"}
    action = rebuilt["public.items_sku"]
    assert action["statement"] == 'REINDEX INDEX CONCURRENTLY "public"."items_sku"'
    assert "bloat" in action["reason"] and "estimated from statistics" in action["reason"]
    assert action["size_after"] < action["size_before"] / 3
    assert index_size(database, "items_sku") == action["size_after"] < before / 3
    assert "public.healthy_pkey" not in {a["object"] for a in document["actions"]}
    assert not any(name.endswith("_ccold") or name.endswith("_ccnew") for name in index_names(database))


def test_pgstattuple_gives_the_exact_figure_when_installed(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_bloated_index(database)
    database.execute("CREATE EXTENSION pgstattuple")
    config = write_config(SMALL_THRESHOLDS)
    document = json_output(
        dbmaint("reindex", "--dry-run", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    reasons = {a["object"]: a["reason"] for a in document["actions"]}
    assert "measured with pgstattuple" in reasons["public.items_sku"]


def test_failed_build_leftover_is_dropped_and_an_unrelated_invalid_index_is_kept(
    database: Database, dbmaint: Invoke
) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, code int)",
        "INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 1000) g",
        "CREATE INDEX t_code ON t (code)",
    )
    # A REINDEX CONCURRENTLY that gives up waiting for a writer leaves t_code_ccnew behind.
    writer = LockHolder(database.dsn, "BEGIN", "UPDATE t SET code = code WHERE id = 1")
    try:
        with database.connect() as conn, pytest.raises(psycopg.errors.LockNotAvailable):
            conn.execute("SET lock_timeout = '200ms'")
            conn.execute("REINDEX INDEX CONCURRENTLY t_code")
    finally:
        writer.release()
    # A unique index that could not be built (duplicates) is invalid for a reason of its own.
    with database.connect() as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute("CREATE UNIQUE INDEX CONCURRENTLY t_code_unique ON t (code)")
    assert {"t_code_ccnew", "t_code_unique"} <= index_names(database)

    document = json_output(dbmaint("reindex", "--dsn", database.dsn, "--format", "json"), exit_code=0)

    (drop,) = document["actions"]
    assert drop["statement"] == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."t_code_ccnew"'
    assert drop["status"] == "done"
    names = index_names(database)
    assert "t_code_ccnew" not in names
    assert {"t_code", "t_code_unique"} <= names
    assert any("t_code_unique" in finding and "not dropped" in finding for finding in document["findings"])


def test_leftover_of_a_build_still_running_is_left_alone(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, code int)",
        "INSERT INTO t SELECT g, g FROM generate_series(1, 1000) g",
        "CREATE INDEX t_code ON t (code)",
    )
    writer = LockHolder(database.dsn, "BEGIN", "UPDATE t SET code = code WHERE id = 1")
    builder = psycopg.connect(database.dsn, autocommit=True)
    try:
        # The build waits for the writer with t_code_ccnew already in the catalog, invalid.
        builder.execute("SET lock_timeout = '30s'")
        build = in_thread(lambda: _quietly(builder, "REINDEX INDEX CONCURRENTLY t_code"))
        wait_for(lambda: "t_code_ccnew" in index_names(database))
        document = json_output(dbmaint("reindex", "--dsn", database.dsn, "--format", "json"), exit_code=0)
    finally:
        writer.release()
        build.join(timeout=60)
        builder.close()
    assert document["actions"] == []
    assert any("index build in progress" in finding for finding in document["findings"])


def _quietly(conn: psycopg.Connection[tuple[object, ...]], statement: str) -> None:
    with contextlib.suppress(psycopg.Error):  # the test ends the build by releasing the writer
        conn.execute(statement)


def test_reindex_waiting_for_a_lock_is_retried_then_skipped_and_cleaned_up(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_bloated_index(database)
    writer = LockHolder(database.dsn, "BEGIN", "UPDATE items SET sku = sku WHERE id = 10")
    config = write_config(SMALL_THRESHOLDS + 'retries = 1\nretry_delay = "1s"\n[safety]\nlock_timeout = "1s"\n')
    try:
        document = json_output(
            dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
        )
        assert writer.still_alive()
    finally:
        writer.release()
    reindexes = [a for a in document["actions"] if a["kind"] == "reindex"]
    assert reindexes and all(a["status"] == "skipped" for a in reindexes)
    assert all("lock not available after 2 attempt(s)" in a["detail"] for a in reindexes)
    # The interrupted builds left _ccnew indexes; dropping them needs the writer gone too.
    cleanups = [a for a in document["actions"] if a["kind"] == "drop_invalid"]
    assert cleanups and all(a["object"].startswith("public.items_") for a in cleanups)
    leftovers = {name for name in index_names(database) if "_ccnew" in name}
    assert leftovers == {a["object"].removeprefix("public.") for a in cleanups}
    next_run = json_output(
        dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    assert {a["object"] for a in next_run["actions"] if a["kind"] == "drop_invalid"} >= {
        f"public.{name}" for name in leftovers
    }
    assert not any("_ccnew" in name for name in index_names(database))


def test_dry_run_prints_statements_and_changes_nothing(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_bloated_index(database)
    before = index_size(database, "items_sku")
    config = write_config(SMALL_THRESHOLDS)
    result = dbmaint("reindex", "--dry-run", "--config", config, "--dsn", database.dsn)
    assert result.exit_code == 0
    assert 'REINDEX INDEX CONCURRENTLY "public"."items_sku";' in result.stdout
    assert index_size(database, "items_sku") == before
    assert json_output(dbmaint("history", "--format", "json"), exit_code=0)["runs"] == []


def test_recently_rebuilt_index_waits_for_min_interval(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_bloated_index(database)
    config = write_config(SMALL_THRESHOLDS)
    first = json_output(dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0)
    assert {a["status"] for a in first["actions"]} == {"done"}
    database.execute("INSERT INTO items SELECT g, 'sku-' || g FROM generate_series(200001, 400000) g")
    database.execute("DELETE FROM items WHERE id > 200000 AND id % 10 <> 0")  # bloated again
    database.execute("VACUUM ANALYZE items")
    second = json_output(dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0)
    skipped = [a for a in second["actions"] if a["object"] == "public.items_sku"]
    assert skipped and skipped[0]["status"] == "skipped"
    assert "less than reindex.min_interval ago" in skipped[0]["detail"]


def test_a_retry_that_succeeds_still_drops_the_first_attempts_leftover(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    make_bloated_index(database)
    writer = LockHolder(database.dsn, "BEGIN", "UPDATE items SET sku = sku WHERE id = 10")
    config = write_config(
        SMALL_THRESHOLDS + 'max_per_run = 1\nretries = 2\nretry_delay = "3s"\n[safety]\nlock_timeout = "1s"\n'
    )
    release = threading.Timer(2.0, writer.release)  # gone before the retry, after the first attempt
    release.start()
    try:
        document = json_output(
            dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
        )
    finally:
        release.join()
    attempted = [a for a in document["actions"] if a["kind"] == "reindex" and "max_per_run" not in (a["detail"] or "")]
    assert [a["status"] for a in attempted] == ["done"]
    assert [a["status"] for a in document["actions"] if a["kind"] == "drop_invalid"] == ["done"]
    assert not any("_ccnew" in name for name in index_names(database))


def test_a_role_owning_some_tables_rebuilds_its_own_and_skips_the_others_outside_max_per_run(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    """items (the most bloated) belongs to the superuser; the role owns only mine. With max_per_run = 1 the
    rebuild is mine's: items' indexes are skipped for privilege, not planned to fail."""
    make_bloated_index(database)
    role = f"{database.name}_owner"
    database.execute(
        f"CREATE ROLE {role} LOGIN",
        "CREATE TABLE mine (id int PRIMARY KEY, sku text NOT NULL)",
        "INSERT INTO mine SELECT g, 'sku-' || g FROM generate_series(1, 100000) g",
        "DELETE FROM mine WHERE id % 10 <> 0",
        "VACUUM ANALYZE mine",
        f"ALTER TABLE mine OWNER TO {role}",
    )
    try:
        config = write_config(SMALL_THRESHOLDS + "max_per_run = 1\n")
        dsn = database.cluster.dsn(database.name, user=role)
        document = json_output(dbmaint("reindex", "--dry-run", "--config", config, "--dsn", dsn, "--format", "json"), 0)
        planned = [a["object"] for a in document["actions"] if a["status"] == "planned"]
        assert planned == ["public.mine_pkey"]
        skipped = {a["object"]: a["detail"] or "" for a in document["actions"] if a["status"] == "skipped"}
        assert skipped["public.items_sku"].startswith("insufficient privilege"), skipped
    finally:
        database.execute("DROP TABLE mine", f"DROP ROLE {role}")


def test_an_old_transaction_anywhere_in_the_database_skips_the_rebuilds_before_any_is_built(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """REINDEX CONCURRENTLY waits, after building its new index, for every older snapshot of the database: a
    report's transaction on another table made each rebuild (and retry) build in full, then give up."""
    from dbmaint import jobs

    make_bloated_index(database)
    database.execute("CREATE TABLE other (id int)")
    monkeypatch.setattr(jobs, "OLD_TRANSACTION_S", 1.0)
    holder = LockHolder(database.dsn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SELECT count(*) FROM other")
    try:
        old = "SELECT count(*) FROM pg_stat_activity WHERE now() - xact_start > '1.5s' AND backend_xmin IS NOT NULL"
        wait_for(lambda: database.value(old) >= 1, timeout=10)
        config = write_config(SMALL_THRESHOLDS + '[safety]\nlock_timeout = "1s"\n')
        dry = json_output(
            dbmaint("reindex", "--dry-run", "--config", config, "--dsn", database.dsn, "--format", "json"), 0
        )
        document = json_output(dbmaint("reindex", "--config", config, "--dsn", database.dsn, "--format", "json"), 0)
        for report in (dry, document):
            rebuilds = [a for a in report["actions"] if a["kind"] == "reindex"]
            assert rebuilds and all(a["status"] == "skipped" for a in rebuilds), rebuilds
            assert f"would wait for session pid {holder.pid} " in rebuilds[0]["detail"]
        assert holder.still_alive()  # left alone
        assert not any(name.endswith("_ccnew") for name in index_names(database))  # nothing built to throw away
    finally:
        holder.release()
