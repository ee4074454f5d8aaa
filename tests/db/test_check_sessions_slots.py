"""dbmaint check's replication slot, session and lock items on a real server: each fails, then passes once
what it reports is gone. dbmaint only reports: every session a test opens is still there after the check."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from dbmaint.pg.cluster import Cluster
from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, database_exists, in_thread, json_output, replayed, session, wait_for

LOW_THRESHOLDS = """\
[check]
slot_retained_warn = "1MB"
slot_retained_fail = "2MB"
idle_in_transaction = "1s"
long_running = "1s"
lock_wait = "1s"
"""


def check(dbmaint: Invoke, dsn: str, config: str | None = None) -> dict[str, dict[str, Any]]:
    """The items of `dbmaint check`, by name. The test cluster runs with autovacuum off: the command fails."""
    options = ("--config", config) if config else ()
    result = dbmaint("check", *options, "--dsn", dsn, "--format", "json")
    return {item["check"]: item for item in json_output(result, exit_code=1)["items"]}


def activity(database: Database, pid: int) -> tuple[str | None, str | None]:
    """(state, query) of a session, as a superuser sees it."""
    with psycopg.connect(database.cluster.dsn(), autocommit=True) as conn:
        row = conn.execute("SELECT state, query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    return (None, None) if row is None else (row[0], row[1])


def waits_for_a_lock(database: Database, pid: int, seconds: float) -> Callable[[], bool]:
    def waiting() -> bool:
        with psycopg.connect(database.cluster.dsn(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT bool_or(NOT granted AND waitstart < now() - make_interval(secs => %s)) FROM pg_locks "
                "WHERE pid = %s",
                (seconds, pid),
            ).fetchone()
        return bool(row and row[0])

    return waiting


# --- replication slots ------------------------------------------------------------------------------------------


def test_a_slot_keeping_wal_fails_an_unused_one_warns_and_dropping_them_passes(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = write_config(LOW_THRESHOLDS)
    keeping, unused = f"{database.name}_keeping", f"{database.name}_unused"
    try:
        database.execute(
            f"SELECT pg_create_physical_replication_slot('{keeping}', true)",  # reserves WAL at once
            f"SELECT pg_create_physical_replication_slot('{unused}')",  # reserves none until a standby connects
            "SELECT pg_switch_wal()",
            "CREATE TABLE filler AS SELECT g AS id, repeat('x', 200) AS pad FROM generate_series(1, 20000) AS g",
        )
        retained = database.value(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn) FROM pg_replication_slots WHERE slot_name = %s",
            (keeping,),
        )
        assert retained > 2 * 1024**2
        item = check(dbmaint, database.dsn, config)["replication_slots"]
        assert item["status"] == "fail"
        assert f"slot '{keeping}' (physical, inactive, keeps " in item["evidence"]
        assert "of WAL (wal_status reserved), no max_slot_wal_keep_size" in item["evidence"]
        assert f"slot '{unused}' (physical, inactive, reserves no WAL yet)" in item["evidence"]
        assert f"SELECT pg_catalog.pg_drop_replication_slot('{keeping}')" in item["fix"]
        assert "ALTER SYSTEM SET max_slot_wal_keep_size = '2MB'" in item["fix"]

        database.execute(f"SELECT pg_drop_replication_slot('{keeping}')")
        item = check(dbmaint, database.dsn, config)["replication_slots"]
        assert item["status"] == "warn" and keeping not in item["evidence"] and unused in item["evidence"]

        database.execute(f"SELECT pg_drop_replication_slot('{unused}')")
        item = check(dbmaint, database.dsn, config)["replication_slots"]
        assert item["status"] == "pass" and unused not in item["evidence"]
    finally:
        with database.connect() as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ANY(%s)",
                ([keeping, unused],),
            )


def test_on_a_standby_slots_are_judged_from_its_replay_position(
    database: Database, standby: Cluster, dbmaint: Invoke
) -> None:
    wait_for(lambda: database_exists(standby, database.name))
    wait_for(replayed(database, standby))
    name = f"{database.name}_cascade"
    with psycopg.connect(standby.dsn(database.name), autocommit=True) as conn:
        conn.execute("SELECT pg_create_physical_replication_slot(%s, true)", (name,))
        try:
            item = check(dbmaint, standby.dsn(database.name))["replication_slots"]
        finally:
            conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
    # pg_current_wal_lsn() raises on a standby: the item reads the replay position instead, never an error.
    assert item["status"] == "warn", item
    assert f"slot '{name}' (physical, inactive, keeps " in item["evidence"]
    assert "(on a standby: WAL counted to the last position received or replayed)" in item["evidence"]


# --- sessions ---------------------------------------------------------------------------------------------------


def test_a_session_idle_in_transaction_fails_until_it_commits(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = write_config(LOW_THRESHOLDS)
    database.execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int)", "INSERT INTO accounts VALUES (1, 0)")
    with (
        session(database.dsn, application_name="billing") as idle,
        session(database.cluster.dsn(), application_name="elsewhere") as other_database,
    ):
        idle.execute("UPDATE accounts SET balance = balance + 1 WHERE id = 1")
        other_database.execute("SELECT 1")
        time.sleep(1.2)  # past idle_in_transaction = 1s
        item = check(dbmaint, database.dsn, config)["idle_in_transaction"]
        assert item["status"] == "fail", item
        pid = idle.info.backend_pid
        assert (
            f"1 session(s) idle in transaction for longer than 1s: pid {pid} (user postgres, app billing"
            in (item["evidence"])
        )
        # RowExclusiveLock on the table and on its primary key; its transaction ID holds the horizon.
        assert "holds 2 relation lock(s) and the xmin horizon (age " in item["evidence"]
        assert "after UPDATE accounts SET balance = balance + 1 WHERE id = 1)" in item["evidence"]
        # The session in the postgres database is mentioned, not judged here.
        assert "(and 1 in other databases, not counted here: postgres)" in item["evidence"]
        assert f"SELECT pg_catalog.pg_terminate_backend({pid})" in item["fix"]
        assert "ALTER ROLE postgres SET idle_in_transaction_session_timeout = '1s'" in item["fix"]
        # dbmaint ended nothing: the transaction is still open, and it commits.
        assert activity(database, pid)[0] == "idle in transaction"
        idle.commit()

        item = check(dbmaint, database.dsn, config)["idle_in_transaction"]
        assert item["status"] == "pass", item
        assert item["evidence"].startswith("no session idle in transaction for longer than 1s (and 1 in other")


def test_a_long_statement_warns_and_dbmaint_does_not_cancel_it(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = write_config(LOW_THRESHOLDS)
    outcomes: dict[str, BaseException | None] = {}

    def sleep(conn: psycopg.Connection[tuple[Any, ...]], name: str) -> Callable[[], None]:
        def run() -> None:
            try:
                conn.execute("SELECT pg_sleep(30)")
                outcomes[name] = None
            except psycopg.Error as exc:
                outcomes[name] = exc

        return run

    with (
        session(database.dsn, autocommit=True, application_name="reports") as sleeper,
        session(database.dsn, autocommit=True, application_name="dbmaint-other") as own,
    ):
        pid, own_pid = sleeper.info.backend_pid, own.info.backend_pid
        threads = [in_thread(sleep(sleeper, "reports")), in_thread(sleep(own, "dbmaint"))]
        wait_for(lambda: activity(database, pid) == ("active", "SELECT pg_sleep(30)"), timeout=10)
        time.sleep(1.2)  # past long_running = 1s
        item = check(dbmaint, database.dsn, config)["long_running"]
        assert item["status"] == "warn", item
        assert item["evidence"].startswith(
            f"1 statement(s) running for longer than 1s: pid {pid} (user postgres, app reports, "
        )
        assert item["evidence"].endswith(": SELECT pg_sleep(30))")
        assert str(own_pid) not in item["evidence"]  # dbmaint's own sessions do not count
        assert f"SELECT pg_catalog.pg_cancel_backend({pid})" in item["fix"]
        # dbmaint cancelled nothing: both statements still run. The test cancels them itself.
        assert activity(database, pid) == ("active", "SELECT pg_sleep(30)")
        assert activity(database, own_pid)[0] == "active" and outcomes == {}
        with psycopg.connect(database.dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_cancel_backend(pid) FROM unnest(%s::int[]) AS pid", ([pid, own_pid],))
        for thread in threads:
            thread.join(10)
        assert all(isinstance(outcome, psycopg.errors.QueryCanceled) for outcome in outcomes.values()), outcomes

        item = check(dbmaint, database.dsn, config)["long_running"]
        assert item["status"] == "pass" and item["evidence"] == "no statement running for longer than 1s"


def test_a_lock_chain_fails_with_its_blocking_tree(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = write_config(LOW_THRESHOLDS)
    database.execute("CREATE TABLE orders (id int PRIMARY KEY, status text)", "INSERT INTO orders VALUES (1, 'new')")
    holder = LockHolder(database.dsn, "UPDATE orders SET status = 'paid' WHERE id = 1")
    errors: list[BaseException] = []

    def run(conn: psycopg.Connection[tuple[Any, ...]], statement: str) -> Callable[[], None]:
        def target() -> None:
            try:
                conn.execute(statement)
            except psycopg.Error as exc:
                errors.append(exc)

        return target

    try:
        with (
            session(database.dsn, autocommit=True, application_name="migration") as migration,
            session(database.dsn, autocommit=True, application_name="web") as reader,
        ):
            for conn in (migration, reader):
                conn.execute("SET lock_timeout = '20s'")  # never hangs the suite, whatever happens
            alter, select = migration.info.backend_pid, reader.info.backend_pid
            threads = [in_thread(run(migration, "ALTER TABLE orders ADD COLUMN note text"))]
            wait_for(waits_for_a_lock(database, alter, 0), timeout=10)
            threads.append(in_thread(run(reader, "SELECT * FROM orders")))  # queues behind the ALTER TABLE
            wait_for(waits_for_a_lock(database, select, 1.1), timeout=10)

            item = check(dbmaint, database.dsn, config)["blocking_locks"]
            assert item["status"] == "fail", item
            evidence = item["evidence"]
            assert evidence.startswith("2 session(s) waiting on a lock for longer than 1s: ")
            tree = evidence.split(": ", 1)[1]
            assert tree.startswith(f"pid {holder.pid} (user postgres, from ")
            assert "idle in transaction " in tree and "after UPDATE orders SET status = 'paid' WHERE id = 1)" in tree
            assert f" blocks pid {alter} (user postgres, app migration, " in tree
            assert ": ALTER TABLE orders ADD COLUMN note text)" in tree
            assert f" which blocks pid {select} (user postgres, app web, " in tree
            assert tree.endswith(": SELECT * FROM orders)")
            assert item["fix"].startswith(f"SELECT pg_catalog.pg_terminate_backend({holder.pid}) ends")
            # dbmaint ended nothing: the holder still holds its lock, and both still wait.
            assert holder.still_alive()
            assert waits_for_a_lock(database, alter, 1)() and waits_for_a_lock(database, select, 1)()

            holder.release()
            for thread in threads:
                thread.join(10)
            assert errors == []
            item = check(dbmaint, database.dsn, config)["blocking_locks"]
            assert item["status"] == "pass" and item["evidence"] == "no session has waited on a lock for longer than 1s"
    finally:
        if not holder.conn.closed:
            holder.release()


@pytest.mark.parametrize("monitor", [True, False])
def test_an_ordinary_role_sees_lock_waits_and_says_what_it_cannot_see(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str], monitor: bool
) -> None:
    config = write_config(LOW_THRESHOLDS)
    role = f"{database.name}_reader"  # roles are the cluster's: one of the test's own, dropped at its end
    database.execute(f"CREATE ROLE {role} LOGIN", "CREATE TABLE t (id int)", f"GRANT SELECT ON t TO {role}")
    if monitor:
        database.execute(f"GRANT pg_monitor TO {role}")
    dsn = database.dsn.replace("user=postgres", f"user={role}")
    holder = LockHolder(database.dsn, "LOCK TABLE t IN ACCESS EXCLUSIVE MODE")
    try:
        with session(dsn, autocommit=True) as reader:
            reader.execute("SET lock_timeout = '20s'")
            pid = reader.info.backend_pid
            thread = in_thread(lambda: reader.execute("SELECT * FROM t"))
            wait_for(waits_for_a_lock(database, pid, 1.1), timeout=10)
            items = check(dbmaint, dsn, config)
            holder.release()
            thread.join(10)
    finally:
        if not holder.conn.closed:
            holder.release()
        database.execute(f"REVOKE ALL ON t FROM {role}", f"DROP ROLE {role}")
    blocking, idle = items["blocking_locks"], items["idle_in_transaction"]
    assert blocking["status"] == "fail" and f"blocks pid {pid} (user {role}, from " in blocking["evidence"]
    if monitor:
        assert f"pid {holder.pid} (user postgres, from " in blocking["evidence"]
        assert idle["status"] == "fail" and f"pid {holder.pid} (" in idle["evidence"]
    else:
        # pg_locks shows the other role's lock and wait; pg_stat_activity hides its state and statement.
        assert f"pid {holder.pid} (user postgres, its state and statement need pg_monitor)" in blocking["evidence"]
        assert idle["status"] == "unknown" and "1 session(s) of other roles (postgres)" in idle["evidence"]
        assert "GRANT pg_monitor" in idle["fix"]
