"""`dbmaint check` on one database with every problem its checklist knows, all at once: the command exits 1,
and each item fails or warns (the status expected of it) with evidence naming the table, column, index,
constraint, slot or session at fault, in the JSON document and in the text output alike.

The per-item tests make each item fail and pass alone; this one proves that the problems do not hide one
another: with an open transaction, a lock wait and a running statement in the database, the advisor still
plans, every source is still read, and the checklist ends with every item judged, none unknown."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from typing import Any

import psycopg
import pytest

from dbmaint.advisor import schema_findings
from dbmaint.check.items import ITEMS
from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, freeze_all_but, in_thread, json_output, session, wait_for

Connection = psycopg.Connection[tuple[Any, ...]]

# The status each item must give. autovacuum_keeps_up fails on "autovacuum is off" before it looks at any
# table: the test cluster runs without autovacuum (tests/db/conftest.py), a setting of the whole cluster that
# no test may switch on, so that is the problem it reports here.
EXPECTED = {
    "primary_keys": "fail",
    "foreign_keys_indexed": "fail",
    "queried_columns_indexed": "fail",
    "slow_queries": "fail",
    "active_connections": "fail",
    "vacuum_scheduled": "fail",
    "autovacuum_keeps_up": "fail",
    "autovacuum_settings": "warn",
    "integer_overflow": "fail",
    "xid_age": "fail",
    "replication_slots": "fail",
    "idle_in_transaction": "fail",
    "long_running": "warn",
    "blocking_locks": "fail",
    "invalid_indexes": "fail",
    "not_valid_constraints": "warn",
    "cache_hit": "warn",
    "heap_bloat": "warn",
    "unused_indexes": "warn",
    "duplicate_indexes": "warn",
}

# Thresholds a small test cluster can cross in seconds: the checklist's logic is unchanged, only its limits.
CONFIG = """\
[vacuum]
enabled = false
[capture]
min_mean_time = "50ms"
[advisor]
min_total_time = "0s"
[safety]
max_active_connections = 1
[check]
slot_retained_warn = "1MB"
slot_retained_fail = "2MB"
idle_in_transaction = "1s"
long_running = "1s"
lock_wait = "1s"
xid_age_warn = 1000
xid_age_fail = 5000
bloat_min_wasted = "1MB"
autovacuum_min_observed = "1s"
"""

DEAD_ROWS = 1000  # deleted from order_lines since its vacuum: its "daily" churn
MIN_OBSERVED_S = 6.0  # order_lines' churn is observed at least this long before each check run


def burn_transaction_ids(database: Database, count: int) -> None:
    """Use up ``count`` transaction IDs for real: each COMMIT in a DO block takes a new one."""
    with database.connect() as conn:
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{count:d} LOOP PERFORM pg_catalog.txid_current(); COMMIT; END LOOP; END $$"
        )


def look_like_a_days_churn(database: Database) -> None:
    """order_lines' 1,000 dead rows were counted over seconds, not a day: make the table big enough that their
    rate falls between the nightly pass's trigger (half of autovacuum's) and autovacuum's own, as a day's churn
    would (the trick of test_check_autovacuum_settings). The rate stays in that band until the table has been
    observed about twice as long as now: some five seconds at least, for one check run."""
    observed = float(
        database.value(
            "SELECT extract(epoch FROM now() - last_vacuum) FROM pg_stat_user_tables WHERE relname = 'order_lines'"
        )
    )
    if observed < MIN_OBSERVED_S:
        time.sleep(MIN_OBSERVED_S - observed)
        observed = MIN_OBSERVED_S
    # autovacuum_vacuum_threshold is 0 on the table: autovacuum's trigger is scale_factor * reltuples.
    trigger = DEAD_ROWS * 86_400 / (observed - 0.5)  # the daily rate half a second ago: reached from now on
    with database.connect() as conn:
        conn.execute(
            "UPDATE pg_class SET reltuples = %s / current_setting('autovacuum_vacuum_scale_factor')::float8"
            " WHERE relname = 'order_lines'",
            (trigger,),
        )


def in_background(conn: Connection, statement: str, errors: list[BaseException]) -> threading.Thread:
    """Run ``statement`` in a thread; its error (a cancel, the end of the test's session) is kept, not raised."""

    def run() -> None:
        try:
            conn.execute(statement)
        except psycopg.Error as exc:
            errors.append(exc)

    return in_thread(run)


def seconds_since(database: Database, pid: int) -> tuple[float, float]:
    """How long ago a session's statement began, and its state last changed (-1: not known)."""
    with psycopg.connect(database.cluster.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - query_start)::float8, extract(epoch FROM now() - state_change)::float8"
            " FROM pg_stat_activity WHERE pid = %s",
            (pid,),
        ).fetchone()
    return (-1.0, -1.0) if row is None else (float(row[0] or -1.0), float(row[1] or -1.0))


def waited_for_a_lock(database: Database, pid: int) -> float:
    with psycopg.connect(database.cluster.dsn(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT extract(epoch FROM now() - min(waitstart))::float8 FROM pg_locks WHERE pid = %s AND NOT granted",
            (pid,),
        ).fetchone()
    return -1.0 if row is None or row[0] is None else float(row[0])


def text_rows(output: str) -> dict[str, tuple[str, str]]:
    """The text output's table as {check: (status, evidence)}: a row's first line holds the three cells (the
    console is wide enough for the evidence not to wrap); its fix follows on lines with empty first cells."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.split("│", 2)]
        if len(cells) == 3 and cells[0] in ("pass", "warn", "fail", "unknown"):
            rows[cells[1]] = (cells[0], cells[2])
    return rows


def build_the_problems(database: Database, slot: str) -> None:
    """Every problem that is a state of the database (the sessions are opened by the test itself)."""
    database.execute("CREATE EXTENSION pg_stat_statements", "CREATE EXTENSION hypopg")
    # xid_age: old_ledger the oldest table, its age made of transaction IDs burnt for real; the catalogs are
    # frozen after the first burn so that they do not crowd it out of the evidence.
    database.execute("CREATE TABLE old_ledger (id int PRIMARY KEY, note text)")
    burn_transaction_ids(database, 3000)
    freeze_all_but(database, "old_ledger")
    database.execute(
        # autovacuum_settings: order_lines' dead rows counted since its vacuum, first, so that the rest of the
        # setup makes most of the time they are observed over (look_like_a_days_churn).
        "CREATE TABLE order_lines (id int PRIMARY KEY, v text)",
        "INSERT INTO order_lines SELECT g, 'x' FROM generate_series(1, 20000) AS g",
        "ALTER TABLE order_lines SET (autovacuum_vacuum_threshold = 0)",
        "VACUUM order_lines",
        "DELETE FROM order_lines WHERE id <= 1000",  # DEAD_ROWS
    )

    database.execute(
        # replication_slots: a slot reserving WAL that nothing consumes; the cold table below writes 47 MB.
        f"SELECT pg_create_physical_replication_slot('{slot}', true)",
        "SELECT pg_switch_wal()",
        # primary_keys
        "CREATE TABLE audit_log (happened_at timestamptz NOT NULL, message text)",
        # foreign_keys_indexed: children.parent_id leads no index.
        "CREATE TABLE parents (id int PRIMARY KEY)",
        "CREATE TABLE children (id int PRIMARY KEY, parent_id int REFERENCES parents)",
        # not_valid_constraints
        "CREATE TABLE payments (id int PRIMARY KEY, amount int)",
        "ALTER TABLE payments ADD CONSTRAINT payments_amount_positive CHECK (amount > 0) NOT VALID",
        # integer_overflow: a serial 93% of the way to integer's limit.
        "CREATE TABLE tickets (id serial PRIMARY KEY)",
        "SELECT pg_catalog.setval('tickets_id_seq', 2000000000)",
        # unused_indexes (lookups_a, never scanned) and duplicate_indexes (lookups_b_twin).
        "CREATE TABLE lookups (id int PRIMARY KEY, a int, b int)",
        "INSERT INTO lookups SELECT g, g, g FROM generate_series(1, 10000) AS g",
        "CREATE INDEX lookups_a ON lookups (a)",
        "CREATE INDEX lookups_b ON lookups (b)",
        "CREATE INDEX lookups_b_twin ON lookups (b)",
        "ANALYZE lookups",
        # invalid_indexes: a unique index built CONCURRENTLY over duplicates fails and stays, invalid. (Before
        # any session opens: the build waits for every older snapshot of the database.)
        "CREATE TABLE customers (id int PRIMARY KEY, email text)",
        "INSERT INTO customers SELECT g, 'user' || (g % 500) FROM generate_series(1, 1000) AS g",
        # the blocking tree's table
        "CREATE TABLE accounts (id int PRIMARY KEY, balance int)",
        "INSERT INTO accounts VALUES (1, 0)",
    )
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.execute("CREATE UNIQUE INDEX CONCURRENTLY customers_email ON customers (email)")

    database.execute(
        # heap_bloat: 90% of events' rows deleted across every page and vacuumed (before the open transaction
        # below, which would keep them): the room stays in the table.
        "CREATE TABLE events (id int PRIMARY KEY, pad text)",
        "INSERT INTO events SELECT g, repeat('e', 100) FROM generate_series(1, 40000) AS g",
        "DELETE FROM events WHERE id % 10 <> 0",
        "VACUUM ANALYZE events",
        # cache_hit: 47 MB written by CREATE TABLE AS keeps at most 16 MB in shared_buffers (its ring), and a
        # table over a quarter of shared_buffers is scanned through a small ring: each scan reads it in.
        "CREATE TABLE cold AS SELECT g AS id, repeat('c', 200) AS pad FROM generate_series(1, 200000) AS g",
        "ALTER TABLE cold ADD PRIMARY KEY (id)",
        "ANALYZE cold",
        "SET max_parallel_workers_per_gather = 0",  # the scans counted in this session, flushed with it
        "SELECT count(*) FROM cold",
        "SELECT count(*) FROM cold",
        # queried_columns_indexed: a table whose lookups by code an index would serve (hypopg proves it).
        "CREATE TABLE items (id int PRIMARY KEY, code text NOT NULL)",
        "INSERT INTO items SELECT g, 'c' || g FROM generate_series(1, 100000) AS g",
        "ANALYZE items",
    )
    # The workload, sent with parameters as an application does: recorded by pg_stat_statements as $1, each
    # statement at least advisor.min_calls (5) times. slow_report averages 100 ms, over capture.min_mean_time.
    with database.connect() as conn:
        for i in range(10):
            conn.execute("SELECT id FROM items WHERE code = %s", (f"c{i * 997}",))
        for _ in range(5):
            conn.execute("SELECT pg_sleep(%s) AS slow_report", (0.1,))
        conn.execute("SELECT pg_stat_force_next_flush()")


def test_a_database_with_every_problem_reports_each_with_its_evidence_and_exits_1(
    database: Database,
    dbmaint: Invoke,
    write_config: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert set(EXPECTED) == {item.name for item in ITEMS}  # a new item needs its problem here too
    # A database minutes old proves no index unused (a week of statistics is asked for): count from now.
    monkeypatch.setattr(schema_findings, "findings", partial(schema_findings.findings, min_observed=timedelta(0)))
    monkeypatch.setenv("COLUMNS", "20000")  # a console wide enough for no evidence to wrap in the text table
    config = write_config(CONFIG)
    check = ("check", "--dsn", database.dsn, "--config", config)
    slot = f"{database.name}_forgotten"
    errors: list[BaseException] = []
    holder: LockHolder | None = None
    try:
        build_the_problems(database, slot)
        # idle_in_transaction, and the root of the blocking tree: an UPDATE left uncommitted. Its transaction
        # ID, older than the 3,000 burnt next, holds back xid_age's horizon.
        holder = LockHolder(database.dsn, "UPDATE accounts SET balance = balance + 1 WHERE id = 1")
        burn_transaction_ids(database, 3000)
        with (
            session(database.dsn, autocommit=True, application_name="checkout") as waiter,
            session(database.dsn, autocommit=True, application_name="reports") as sleeper,
        ):
            holder_pid, waiter_pid, sleeper_pid = holder.pid, waiter.info.backend_pid, sleeper.info.backend_pid
            waiter.execute("SET lock_timeout = '60s'")  # never hangs the suite, whatever happens
            threads = [
                # blocking_locks: a row lock, so that only this UPDATE queues (an ALTER TABLE waiting for the
                # table's lock would queue the advisor's reads of the table behind it).
                in_background(waiter, "UPDATE accounts SET balance = balance - 1 WHERE id = 1", errors),
                in_background(sleeper, "SELECT pg_sleep(60)", errors),  # long_running
            ]
            wait_for(lambda: waited_for_a_lock(database, waiter_pid) > 1.1, timeout=10)
            wait_for(lambda: seconds_since(database, sleeper_pid)[0] > 1.1, timeout=10)
            wait_for(lambda: seconds_since(database, holder_pid)[1] > 1.1, timeout=10)

            look_like_a_days_churn(database)
            text = dbmaint(*check)
            look_like_a_days_churn(database)
            document = json_output(dbmaint(*check, "--format", "json"), exit_code=1)

            # dbmaint only reports: every session is still there, doing what it did. The test ends them.
            assert holder.still_alive() and waited_for_a_lock(database, waiter_pid) > 1
            assert seconds_since(database, sleeper_pid)[0] > 1 and errors == []
            with psycopg.connect(database.dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_cancel_backend(%s)", (sleeper_pid,))
            holder.release()  # the waiter's UPDATE goes through
            for thread in threads:
                thread.join(10)
            assert [type(error) for error in errors] == [psycopg.errors.QueryCanceled], errors
    finally:
        if holder is not None and not holder.conn.closed:
            holder.release()
        with database.connect() as conn:
            conn.execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            )

    # What names each problem in its evidence: its table, column, slot, index, constraint or session.
    marks = {
        "primary_keys": ["public.audit_log"],
        "foreign_keys_indexed": ["public.children (parent_id)"],
        "queried_columns_indexed": ['CREATE INDEX CONCURRENTLY "items_code_idx" ON "public"."items" ("code")'],
        "slow_queries": ["over 5 calls: SELECT pg_sleep($1) AS slow_report"],
        "active_connections": [f"most by database/user: {database.name}/postgres ", "limit 1"],
        "vacuum_scheduled": ["the vacuum job is disabled (vacuum.enabled = false)"],
        "autovacuum_keeps_up": ["autovacuum is off"],
        "autovacuum_settings": ["public.order_lines: ", " dead rows a day, autovacuum starts at "],
        "integer_overflow": ["public.tickets.id (integer: 2,000,000,000 of 2,147,483,647, 93%)"],
        "xid_age": ["tables: public.old_ledger (transaction ID age ", "the xmin horizon is held back by session pid "],
        "replication_slots": [f"slot '{slot}' (physical, inactive, keeps "],
        "idle_in_transaction": [
            f"pid {holder_pid} (user ",
            "after UPDATE accounts SET balance = balance + 1 WHERE id = 1)",
        ],
        "long_running": [f"pid {sleeper_pid} (user postgres, app reports, ", ": SELECT pg_sleep(60))"],
        "blocking_locks": [f": pid {holder_pid} (user ", f" blocks pid {waiter_pid} (user postgres, app checkout, "],
        "invalid_indexes": ["public.customers_email ("],
        "not_valid_constraints": ["check payments_amount_positive on public.payments"],
        "cache_hit": ["below check.cache_hit_warn 99.0%; the most read in: table public.cold ("],
        "heap_bloat": ["public.events (", " wasted, "],
        "unused_indexes": ["public.lookups_a ("],
        "duplicate_indexes": ["public.lookups_b_twin (", ", duplicate)"],
    }
    items = {item["check"]: item for item in document["items"]}
    assert document["status"] == "fail"
    assert {name: item["status"] for name, item in items.items()} == EXPECTED, document
    for name, wanted in marks.items():
        for mark in wanted:
            assert mark in items[name]["evidence"], (name, items[name]["evidence"])
        assert items[name]["fix"], name  # and each says what to do about it
    # All the test's sessions hold the horizon back (the others' snapshots hold the holder's ID): any of them.
    held_by = items["xid_age"]["evidence"].split("held back by session pid ", 1)[1].split(" ", 1)[0]
    assert int(held_by) in (holder_pid, waiter_pid, sleeper_pid)

    # The text output: exit 1, and each item's verdict and evidence on its row. Figures such as durations move
    # on between the two runs: the marks are what must be there.
    assert text.exit_code == 1, text.output
    assert f"check of {database.name}: fail" in text.stdout
    rows = text_rows(text.stdout)
    assert {name: status for name, (status, _) in rows.items()} == EXPECTED, text.stdout
    for name, wanted in marks.items():
        for mark in wanted:
            assert mark in rows[name][1], (name, rows[name][1])
