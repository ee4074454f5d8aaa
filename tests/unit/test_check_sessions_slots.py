"""The replication slot, session and connection items' rules, on rows made by hand."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from dbmaint.check.item import Found
from dbmaint.check.items import ITEMS, connections, replication_slots, sessions
from dbmaint.check.items.connections import ConnectionRow
from dbmaint.check.items.replication_slots import SlotRow
from dbmaint.check.items.sessions import SessionRow
from dbmaint.config import CheckConfig, Config

MB = 1024**2
GB = 1024**3


# --- replication slots ------------------------------------------------------------------------------------------


def slot(name: str = "s", **changes: Any) -> SlotRow:
    base = SlotRow(
        slot_name=name, slot_type="physical", plugin=None, database=None, temporary=False, active=True,
        active_pid=4242, active_s=3600.0, wal_status="reserved", safe_wal_size=None, retained_bytes=10 * MB,
        in_recovery=False, max_slot_wal_keep_size="-1",
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def slots_status(*rows: SlotRow) -> str:
    return replication_slots.replication_slots(rows, 1 * GB, 10 * GB).status


def test_no_slot_and_healthy_slots_pass() -> None:
    assert replication_slots.replication_slots([], GB, 10 * GB).evidence == "no replication slot"
    item = replication_slots.replication_slots([slot("a"), slot("b", retained_bytes=200 * MB)], GB, 10 * GB)
    assert item.status == "pass" and item.fix is None
    assert item.evidence == "2 replication slot(s), all active; the most WAL kept: 200.0 MB (slot 'b')"


def test_retained_wal_is_judged_beyond_each_threshold() -> None:
    assert slots_status(slot(retained_bytes=GB)) == "pass"
    assert slots_status(slot(retained_bytes=GB + 1)) == "warn"
    assert slots_status(slot(retained_bytes=10 * GB)) == "warn"
    assert slots_status(slot(retained_bytes=10 * GB + 1)) == "fail"


def test_an_inactive_slot_warns_at_any_size() -> None:
    item = replication_slots.replication_slots([slot("idle", active=False, retained_bytes=0)], GB, 10 * GB)
    assert item.status == "warn"
    assert "slot 'idle' (physical, inactive, keeps 0 B of WAL (wal_status reserved)" in item.evidence
    assert item.fix is not None and "SELECT pg_catalog.pg_drop_replication_slot('idle')" in item.fix
    # One that has never reserved WAL (no restart_lsn) is still unused.
    unreserved = slot("new", active=False, wal_status=None, retained_bytes=None)
    item = replication_slots.replication_slots([unreserved], GB, 10 * GB)
    assert item.status == "warn" and "reserves no WAL yet" in item.evidence


@pytest.mark.parametrize("wal_status", ["lost", "unreserved"])
def test_a_slot_whose_wal_is_gone_fails_even_when_small(wal_status: str) -> None:
    row = slot("gone", active=False, wal_status=wal_status, retained_bytes=None, max_slot_wal_keep_size="1GB")
    item = replication_slots.replication_slots([row], GB, 10 * GB)
    assert item.status == "fail"
    assert f"{wal_status}: the WAL it needs" in item.evidence and "can no longer resume" in item.evidence
    assert item.fix is not None and "pg_drop_replication_slot('gone')" in item.fix
    assert ("new base backup" if wal_status == "lost" else "must catch up before the next checkpoint") in item.fix
    assert "max_slot_wal_keep_size" not in item.fix  # already set


def test_evidence_names_the_slot_its_kind_and_its_safe_wal_size() -> None:
    logical = slot(
        "sub_orders", slot_type="logical", plugin="pgoutput", database="shop", active=False, active_pid=None,
        retained_bytes=3 * GB, safe_wal_size=5 * GB, max_slot_wal_keep_size="8GB",
    )  # fmt: skip
    busy = slot("standby1", retained_bytes=2 * GB, active_s=7200.0, safe_wal_size=6 * GB, max_slot_wal_keep_size="8GB")
    fine = slot("fine", safe_wal_size=8 * GB, max_slot_wal_keep_size="8GB")
    item = replication_slots.replication_slots([busy, logical, fine], GB, 10 * GB)
    assert item.status == "warn"
    assert item.evidence.startswith("2 of 3 replication slot(s) need attention: slot 'sub_orders' (logical, ")
    assert "plugin pgoutput, database shop, inactive, keeps 3.0 GB of WAL (wal_status reserved), " in item.evidence
    assert "safe_wal_size 5.0 GB" in item.evidence and "no max_slot_wal_keep_size" not in item.evidence
    assert "slot 'standby1' (physical, active, pid 4242 for 2 h 0 min, keeps 2.0 GB of WAL" in item.evidence
    assert "'fine'" not in item.evidence
    assert item.fix is not None
    assert "pg_drop_replication_slot('sub_orders')" in item.fix and "re-synchronised" in item.fix
    assert "pg_drop_replication_slot('standby1')" not in item.fix  # active: its consumer is only behind
    assert "'standby1': its consumer is connected but behind" in item.fix
    assert "ALTER SYSTEM" not in item.fix  # max_slot_wal_keep_size is set already


def test_without_max_slot_wal_keep_size_the_fix_bounds_it() -> None:
    item = replication_slots.replication_slots([slot(active=False)], GB, 10 * GB)
    assert "no max_slot_wal_keep_size: it may keep WAL until the disk is full" in item.evidence
    assert item.fix is not None and "ALTER SYSTEM SET max_slot_wal_keep_size = '10GB'" in item.fix


def test_on_a_standby_wal_is_counted_from_its_position_or_unknown() -> None:
    counted = replication_slots.replication_slots([slot(in_recovery=True, retained_bytes=2 * GB)], GB, 10 * GB)
    assert counted.status == "warn" and "on a standby: WAL counted to the last position" in counted.evidence
    # Restoring from an archive, neither a received nor a replayed position: unknown, never an error.
    nowhere = slot(in_recovery=True, retained_bytes=None)
    item = replication_slots.replication_slots([nowhere], GB, 10 * GB)
    assert item.status == "unknown" and "keeps an unknown amount of WAL" in item.evidence
    assert item.fix is not None and "max_slot_wal_keep_size" in item.fix
    assert "behind" not in item.fix  # nothing says its consumer is behind


def test_slot_names_are_written_as_safe_sql_literals() -> None:
    assert replication_slots.sql_literal("it's") == "'it''s'"
    assert replication_slots.sql_literal("a\\b'") == "E'a\\\\b'''"
    item = replication_slots.replication_slots([slot("x'); DROP TABLE t; --", active=False)], GB, 10 * GB)
    assert item.fix is not None and "pg_drop_replication_slot('x''); DROP TABLE t; --')" in item.fix


def test_setting_sizes() -> None:
    assert replication_slots.setting_size(10 * GB) == "10GB"
    assert replication_slots.setting_size(2 * MB) == "2MB"
    assert replication_slots.setting_size(GB + GB // 2) == "1536MB"
    assert replication_slots.setting_size(1) == "1MB"


# --- sessions ---------------------------------------------------------------------------------------------------


def session(pid: int, **changes: Any) -> SessionRow:
    base = SessionRow(
        pid=pid, database="app", in_database=True, user_name="alice", application_name="web", client="10.0.0.5",
        backend_type="client backend", state="idle", query="SELECT 1", state_s=1.0, xact_s=None, query_s=1.0,
        xmin_age=None, relation_locks=0, waiting=False, wait_s=None, blocked_by=[],
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def idle_tx(pid: int, seconds: float, **changes: Any) -> SessionRow:
    return session(pid, **{"state": "idle in transaction", "state_s": seconds, "xact_s": seconds + 60, **changes})


def waiter(pid: int, seconds: float, blocked_by: list[int], query: str = "ALTER TABLE t ADD c int") -> SessionRow:
    return session(
        pid, state="active", query=query, query_s=seconds, state_s=seconds, waiting=True, wait_s=seconds,
        blocked_by=blocked_by,
    )  # fmt: skip


def test_idle_in_transaction_fails_beyond_its_threshold_with_the_session() -> None:
    assert sessions.idle_in_transaction([idle_tx(1, 300.0)], 300.0).status == "pass"
    row = idle_tx(
        7, 301.0, relation_locks=2, xmin_age=1234, user_name="App User",
        query="UPDATE  accounts\n   SET balance = balance - 1\n WHERE id = 3",
    )  # fmt: skip
    item = sessions.idle_in_transaction([row, session(8)], 300.0)
    assert item.status == "fail"
    assert item.evidence == (
        "1 session(s) idle in transaction for longer than 5min: pid 7 (user App User, app web, from 10.0.0.5, "
        "idle in transaction 5 min 1 s, transaction open 6 min 1 s, holds 2 relation lock(s) and the xmin "
        "horizon (age 1,234) after UPDATE accounts SET balance = balance - 1 WHERE id = 3)"
    )
    assert item.fix is not None
    assert item.fix.startswith("SELECT pg_catalog.pg_terminate_backend(7) ends it")
    assert "dbmaint never cancels or ends another session itself" in item.fix
    assert """ALTER ROLE "App User" SET idle_in_transaction_session_timeout = '5min'""" in item.fix


def test_an_aborted_transaction_left_idle_counts_too() -> None:
    row = idle_tx(9, 10.0, state="idle in transaction (aborted)")
    item = sessions.idle_in_transaction([row], 5.0)
    assert item.status == "fail" and "idle in transaction (aborted) 10.0 s" in item.evidence
    assert "holds no lock or snapshot" in item.evidence


def test_sessions_of_other_databases_are_mentioned_not_counted() -> None:
    elsewhere = idle_tx(3, 900.0, database="reports", in_database=False)
    item = sessions.idle_in_transaction([elsewhere], 300.0)
    assert item.status == "pass"
    assert item.evidence.endswith("(and 1 in other databases, not counted here: reports)")


def test_statements_are_collapsed_and_cut_to_100_characters() -> None:
    long_query = "SELECT " + ",\n\t".join(f"column_{i}" for i in range(40)) + " FROM t"  # noqa: S608 (not run)
    item = sessions.idle_in_transaction([idle_tx(4, 600.0, query=long_query)], 300.0)
    shown = item.evidence.split(" after ", 1)[1]
    assert "\n" not in shown and "\t" not in shown and "  " not in shown
    assert shown.endswith("…)") and len(shown) == 100 + len("…)")


def test_other_roles_sessions_make_an_otherwise_passing_item_unknown() -> None:
    hidden = session(5, user_name="bob", backend_type=None, state=None, query="<insufficient privilege>", state_s=None)
    item = sessions.idle_in_transaction([hidden, session(6)], 300.0)
    assert item.status == "unknown"
    assert "1 session(s) of other roles (bob) show neither state nor statement" in item.evidence
    assert item.fix is not None and "pg_monitor" in item.fix
    assert sessions.long_running([hidden], 3600.0).status == "unknown"
    # What is seen still fails; autovacuum's hidden workers (no user) and other databases' do not count.
    assert sessions.idle_in_transaction([hidden, idle_tx(7, 600.0)], 300.0).status == "fail"
    autovacuum = dataclasses.replace(hidden, user_name=None)
    elsewhere = dataclasses.replace(hidden, in_database=False, database="other")
    assert sessions.idle_in_transaction([autovacuum, elsewhere], 300.0).status == "pass"


def test_long_running_warns_but_not_for_autovacuum_walsenders_dbmaint_or_lock_waits() -> None:
    def active(pid: int, seconds: float, **changes: Any) -> SessionRow:
        return session(pid, state="active", query_s=seconds, state_s=seconds, query="SELECT pg_sleep(9999)", **changes)

    assert sessions.long_running([active(1, 3600.0)], 3600.0).status == "pass"
    ignored = [
        active(2, 9000.0, backend_type="autovacuum worker", user_name=None),
        active(3, 9000.0, backend_type="walsender", application_name="standby1"),
        active(4, 9000.0, application_name="dbmaint"),
        active(5, 9000.0, application_name="dbmaint-service"),
        waiter(6, 9000.0, [1]),
    ]
    assert sessions.long_running(ignored, 3600.0).status == "pass"
    item = sessions.long_running([*ignored, active(7, 3601.0)], 3600.0)
    assert item.status == "warn"
    assert item.evidence == (
        "1 statement(s) running for longer than 1h: pid 7 (user alice, app web, from 10.0.0.5, active 60 min 1 s: "
        "SELECT pg_sleep(9999))"
    )
    assert item.fix is not None and "SELECT pg_catalog.pg_cancel_backend(7) cancels it" in item.fix
    assert "ALTER ROLE alice SET statement_timeout = '1h'" in item.fix
    assert "dbmaint never cancels or ends another session itself" in item.fix


def test_lock_waits_pass_below_the_threshold() -> None:
    rows = [idle_tx(1, 50.0), waiter(2, 60.0, [1])]
    item = sessions.blocking_locks(rows, 60.0)
    assert item.status == "pass"
    assert item.evidence == "no session has waited on a lock for longer than 1min (1 waiting now, for less)"


def test_a_blocking_chain_is_written_as_one_sentence() -> None:
    rows = [
        idle_tx(123, 420.0, application_name="billing", query="UPDATE t SET a = 1"),
        waiter(456, 120.0, [123]),
        waiter(789, 61.0, [456], query="SELECT * FROM t"),
    ]
    item = sessions.blocking_locks(rows, 60.0)
    assert item.status == "fail"
    assert item.evidence == (
        "2 session(s) waiting on a lock for longer than 1min: "
        "pid 123 (user alice, app billing, from 10.0.0.5, idle in transaction 7 min 0 s after UPDATE t SET a = 1) "
        "blocks pid 456 (user alice, app web, from 10.0.0.5, waiting 2 min 0 s: ALTER TABLE t ADD c int) "
        "which blocks pid 789 (user alice, app web, from 10.0.0.5, waiting 61.0 s: SELECT * FROM t)"
    )
    assert item.fix is not None
    assert item.fix.startswith("SELECT pg_catalog.pg_terminate_backend(123) ends the blocking session(s)")
    assert "pg_terminate_backend(456)" not in item.fix  # a waiter: ending it frees nothing
    assert "dbmaint never cancels or ends another session itself" in item.fix
    assert "lock_timeout" in item.fix and "idle_in_transaction_session_timeout" in item.fix


def test_a_blocker_of_several_lists_them_and_a_session_is_shown_once() -> None:
    rows = [
        idle_tx(1, 600.0),
        idle_tx(2, 500.0),
        waiter(10, 300.0, [1, 2, 2]),  # blocked by both, 2 listed twice (a parallel query's leader)
        waiter(11, 200.0, [10], query="SELECT 11"),
        waiter(12, 100.0, [10], query="SELECT 12"),
    ]
    item = sessions.blocking_locks(rows, 60.0)
    first, second = item.evidence.split(": ", 1)[1].split(". ")
    assert first.startswith("pid 1 (") and " blocks pid 10 (" in first
    assert "which blocks [pid 11 (" in first and "SELECT 11); pid 12 (" in first and first.endswith("SELECT 12)]")
    assert second.startswith("pid 2 (") and second.endswith("blocks pid 10 (above)")
    assert item.fix is not None and "pg_terminate_backend(1), pg_catalog.pg_terminate_backend(2)" in item.fix


def test_a_cycle_is_written_once_and_does_not_loop() -> None:
    rows = [waiter(1, 90.0, [2]), waiter(2, 80.0, [1]), waiter(3, 70.0, [2])]
    item = sessions.blocking_locks(rows, 60.0)
    assert item.status == "fail"
    assert item.evidence.count("pid 1 (") == 1
    assert "pid 1 again (a cycle" in item.evidence
    assert item.fix is not None and "pg_terminate_backend" not in item.fix  # the deadlock detector breaks it


def test_long_chains_prepared_transactions_and_vanished_blockers() -> None:
    chain = [session(0 + 1, state="idle in transaction", state_s=9999.0)]
    chain += [waiter(pid, 100.0, [pid - 1]) for pid in range(2, 3000)]
    item = sessions.blocking_locks(chain, 60.0)  # no RecursionError
    assert item.status == "fail" and "more session(s)" in item.evidence
    prepared = sessions.blocking_locks([waiter(5, 100.0, [0])], 60.0)
    assert prepared.evidence.split(": ", 1)[1].startswith("a prepared transaction blocks pid 5 (")
    assert prepared.fix is not None and "ROLLBACK PREPARED" in prepared.fix
    gone = sessions.blocking_locks([waiter(5, 100.0, [77])], 60.0)
    assert "pid 77 (gone since) blocks pid 5 (" in gone.evidence


def test_other_roles_sessions_in_a_tree_show_what_pg_locks_tells() -> None:
    hidden: dict[str, Any] = dict(
        user_name="bob", backend_type=None, state=None, query="<insufficient privilege>", state_s=None
    )
    rows = [session(1, **hidden), dataclasses.replace(waiter(2, 90.0, [1]), **hidden)]
    item = sessions.blocking_locks(rows, 60.0)
    assert item.status == "fail"
    assert item.evidence.endswith(
        "pid 1 (user bob, app web, from 10.0.0.5, its state and statement need pg_monitor) blocks pid 2 (user bob, "
        "app web, from 10.0.0.5, waiting 90.0 s, its state and statement need pg_monitor)"
    )


def test_a_blocker_in_another_database_is_named_with_it() -> None:
    rows = [idle_tx(1, 600.0, database="other", in_database=False), waiter(2, 90.0, [1])]
    assert "pid 1 (user alice, app web, from 10.0.0.5, database other, idle in transaction" in (
        sessions.blocking_locks(rows, 60.0).evidence
    )
    # A wait in another database is that database's to report.
    elsewhere = [idle_tx(1, 600.0), dataclasses.replace(waiter(2, 90.0, [1]), in_database=False)]
    assert sessions.blocking_locks(elsewhere, 60.0).status == "pass"


def test_setting_durations() -> None:
    assert [sessions.setting_duration(s) for s in (300, 3600, 1, 1.5, 90, 86400)] == [
        "5min", "1h", "1s", "1500ms", "90s", "1d",
    ]  # fmt: skip


# --- connections ------------------------------------------------------------------------------------------------


def conn(connections: int, state: str | None = "idle", **changes: Any) -> ConnectionRow:
    base = ConnectionRow(
        database="app", user_name="web", state=state, hidden=False, own=False, connections=connections,
        max_connections=100, reserved=0,
    )  # fmt: skip
    return dataclasses.replace(base, **changes)


def test_connection_usage_counts_as_maintenance_does() -> None:
    rows = [
        conn(1, "active", own=True, user_name="dbmaint"),
        conn(40),
        conn(5, "active"),
        conn(2, "idle in transaction", database="reports", user_name="bi"),
        conn(3, None, hidden=True, user_name="bob"),
    ]
    usage = connections.usage(rows)
    assert (usage.in_use, usage.available, usage.active, usage.hidden) == (51, 100, 7, 3)
    assert usage.by_state[0] == ("idle", 40)
    assert usage.by_owner[:2] == [("app", "web", 45), ("app", "bob", 3)]


@pytest.mark.parametrize(
    ("in_use", "expected"), [(79, "pass"), (80, "warn"), (89, "warn"), (90, "fail"), (120, "fail")]
)
def test_connection_slots_warn_and_fail_at_their_shares(in_use: int, expected: str) -> None:
    usage = connections.usage([conn(in_use, max_connections=103, reserved=3)])
    assert connections.connections(0, 80, usage, warn=0.8, fail=0.9).status == expected


def test_connection_evidence_breaks_them_down() -> None:
    rows = [conn(60), conn(20, "active", database="reports", user_name="bi"), conn(1, "active", own=True)]
    rows += [conn(2, None, hidden=True, user_name="bob")]
    usage = connections.usage([dataclasses.replace(r, max_connections=100, reserved=3) for r in rows])
    item = connections.connections(usage.active, 80, usage, warn=0.8, fail=0.9)
    assert item.status == "warn"
    assert item.evidence == (
        "83 of 97 connection slots in use (86%; max_connections 100 less 3 reserved for superusers): 60 idle, "
        "21 active, 2 not visible; most by database/user: app/web 61, reports/bi 20, app/bob 2; 2 of other roles, "
        "counted though their kind cannot be seen without pg_monitor; 20 active client connection(s) (not idle, "
        "this one aside), limit 80"
    )
    assert item.fix is not None and "PgBouncer" in item.fix and "60 are idle" in item.fix


def test_the_active_limit_still_fails_on_its_own() -> None:
    usage = connections.usage([conn(81, "active"), conn(1, "active", own=True), conn(9, max_connections=500)])
    assert usage.active == 81
    assert connections.connections(usage.active, 80, usage).status == "fail"
    assert connections.connections(80, 80).status == "pass"


# --- the items in the checklist --------------------------------------------------------------------------------


def test_the_items_are_registered_in_order_and_read_the_configuration() -> None:
    names = [item.name for item in ITEMS]
    ours = ["active_connections", "replication_slots", "idle_in_transaction", "long_running", "blocking_locks"]
    assert [n for n in names if n in ours] == ours
    by_name = {item.name: item for item in ITEMS}
    config = Config(check=CheckConfig(slot_retained_warn=MB, slot_retained_fail=2 * MB, lock_wait=1.0))
    values = {
        "check_replication_slots": [slot(retained_bytes=3 * MB)],
        "check_sessions": [idle_tx(1, 10.0), waiter(2, 2.0, [1])],
        "check_connections": [conn(1, "active", own=True)],
    }
    found = Found("app", config, values)
    assert by_name["replication_slots"].judge(found).status == "fail"
    assert by_name["blocking_locks"].judge(found).status == "fail"
    assert by_name["idle_in_transaction"].judge(found).status == "pass"  # 5 min by default
    assert by_name["active_connections"].judge(found).status == "pass"
    assert by_name["active_connections"].judge(Found("app", config, {"check_connections": []})).status == "unknown"
