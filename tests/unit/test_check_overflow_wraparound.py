"""The integer_overflow and xid_age items' rules, on rows made by hand."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from dbmaint.check.item import Found, Item, Query
from dbmaint.check.items import ITEMS, wraparound
from dbmaint.check.items.overflow import SequenceRow, integer_overflow, usage
from dbmaint.check.items.wraparound import AgeRow, xid_age
from dbmaint.config import CheckConfig, Config
from dbmaint.pg.facts import XminHolder

INT_MAX = 2**31 - 1
SMALL_MAX = 2**15 - 1
BIG_MAX = 2**63 - 1
WARN, FAIL = 0.7, 0.9


def serial(last: int | None, **changes: Any) -> SequenceRow:
    """A serial integer column and its sequence, public.orders.id fed by public.orders_id_seq."""
    row = SequenceRow(
        "public", "orders_id_seq", "integer", 1, 1, INT_MAX, False, last, True,
        "public", "orders", "id", "integer", "integer", False,
    )  # fmt: skip
    return dataclasses.replace(row, **changes)


def sequence(last: int | None, **changes: Any) -> SequenceRow:
    """A bigint sequence that feeds no column."""
    row = SequenceRow("public", "ticket_no", "bigint", 1, 1, BIG_MAX, False, last, True)
    return dataclasses.replace(row, **changes)


# --- integer_overflow ------------------------------------------------------------------------------------


def test_serial_column_boundaries() -> None:
    at_warn, at_fail = math.ceil(WARN * INT_MAX), math.ceil(FAIL * INT_MAX)
    assert integer_overflow([serial(at_warn - 1)], WARN, FAIL).status == "pass"
    assert integer_overflow([serial(at_warn)], WARN, FAIL).status == "warn"
    assert integer_overflow([serial(at_fail - 1)], WARN, FAIL).status == "warn"
    assert integer_overflow([serial(at_fail)], WARN, FAIL).status == "fail"
    assert integer_overflow([serial(INT_MAX)], WARN, FAIL).status == "fail"
    # Never called: nothing used (pg_sequences.last_value is NULL, and the role may read it).
    never = integer_overflow([serial(None)], WARN, FAIL)
    assert never.status == "pass" and never.evidence == "1 sequence(s), none past 70% of its range"
    assert integer_overflow([], WARN, FAIL) == Item("integer_overflow", "pass", "no sequence")


def test_pass_names_the_most_used() -> None:
    item = integer_overflow([serial(1_000_000_000), sequence(5)], WARN, FAIL)
    assert item.status == "pass" and item.fix is None
    assert item.evidence == (
        "2 sequence(s), none past 70% of its range; the most used: public.orders.id (integer: 1,000,000,000 of "
        "2,147,483,647, 47%)"
    )


def test_evidence_and_fix_of_a_serial_column_with_odd_names() -> None:
    row = serial(
        2_000_000_000, sequence_schema="Sales Data", sequence_name="Order_id_seq",
        table_schema="Sales Data", table_name="Order", column_name="select",
    )  # fmt: skip
    item = integer_overflow([row], WARN, FAIL)
    assert item.status == "fail"
    assert item.evidence == (
        '1 column(s) or sequence(s) near overflow (warn at 70%, fail at 90%): "Sales Data"."Order"."select" '
        "(integer: 2,000,000,000 of 2,147,483,647, 93%)"
    )
    assert item.fix is not None
    # The column and its serial sequence: ALTER TABLE ... TYPE leaves a serial's sequence an integer one.
    assert item.fix.startswith(
        'ALTER TABLE "Sales Data"."Order" ALTER COLUMN "select" TYPE bigint; '
        'ALTER SEQUENCE "Sales Data"."Order_id_seq" AS bigint. '
    )
    assert "ACCESS EXCLUSIVE lock" in item.fix and "fill it in batches" in item.fix


def test_identity_column_needs_only_the_column_widened() -> None:
    item = integer_overflow([serial(2_100_000_000, identity=True)], WARN, FAIL)
    assert item.status == "fail"
    assert item.fix is not None and item.fix.startswith("ALTER TABLE public.orders ALTER COLUMN id TYPE bigint.")
    assert "ALTER SEQUENCE" not in item.fix  # the identity's sequence follows its column


def test_smallint_column_fed_by_a_bigint_sequence_stops_at_smallint() -> None:
    row = serial(30_000, sequence_type="bigint", max_value=BIG_MAX, column_type="smallint", column_base_type="smallint")
    found = usage(row)
    assert found is not None and found.by_column and found.limit == SMALL_MAX
    item = integer_overflow([row], WARN, FAIL)
    assert item.status == "fail" and "(smallint: 30,000 of 32,767, 92%)" in item.evidence
    assert item.fix is not None and "ALTER SEQUENCE" not in item.fix.split(".")[0]


def test_bigint_column_fed_by_an_integer_sequence_stops_at_the_sequence() -> None:
    row = serial(1_600_000_000, column_type="bigint", column_base_type="bigint")
    found = usage(row)
    assert found is not None and not found.by_column and found.limit == INT_MAX
    item = integer_overflow([row], WARN, FAIL)
    assert item.status == "warn"
    assert item.evidence == (
        "1 column(s) or sequence(s) near overflow (warn at 70%, fail at 90%): public.orders.id (bigint, fed by "
        "integer sequence public.orders_id_seq: 1,600,000,000 of its MAXVALUE 2,147,483,647, 75%)"
    )
    assert item.fix == "ALTER SEQUENCE public.orders_id_seq AS bigint"


def test_a_maxvalue_of_its_own_is_lifted_without_widening_the_column() -> None:
    item = integer_overflow([serial(950, max_value=1000)], WARN, FAIL)
    assert item.status == "fail" and "fed by integer sequence public.orders_id_seq: 950 of its MAXVALUE 1,000" in (
        item.evidence
    )
    assert item.fix == "ALTER SEQUENCE public.orders_id_seq NO MAXVALUE"  # no table rewrite for that


def test_a_domain_over_integer_overflows_as_integer() -> None:
    row = serial(2_000_000_000, column_type="order_no", column_base_type="integer")
    item = integer_overflow([row], WARN, FAIL)
    assert item.status == "fail" and "(order_no over integer: 2,000,000,000 of 2,147,483,647" in item.evidence


def test_descending_sequences_count_toward_the_minimum() -> None:
    down = serial(-2_000_000_000, increment=-1, min_value=-(2**31), max_value=-1)
    found = usage(down)
    assert found is not None and found.limit == -(2**31) and found.by_column
    item = integer_overflow([down], WARN, FAIL)
    assert item.status == "fail" and "-2,000,000,000 of -2,147,483,648, 93%, descending" in item.evidence
    assert integer_overflow([dataclasses.replace(down, last_value=-1000)], WARN, FAIL).status == "pass"
    # A descending sequence of its own, with a MINVALUE set above its type's.
    own = sequence(-95, increment=-1, min_value=-100, max_value=-1)
    item = integer_overflow([own], WARN, FAIL)
    assert item.status == "fail" and "sequence public.ticket_no (bigint: -95 of its MINVALUE -100, 95%" in item.evidence
    assert item.fix == "ALTER SEQUENCE public.ticket_no NO MINVALUE"
    # Ranges that never cross zero count from their start: -100 up to -1 at -10 has used 90 of 99.
    negative = sequence(-10, min_value=-100, max_value=-1)
    assert integer_overflow([negative], WARN, FAIL).status == "fail" and "-10 of its MAXVALUE -1, 91%" in (
        integer_overflow([negative], WARN, FAIL).evidence
    )
    assert integer_overflow([dataclasses.replace(negative, last_value=-50)], WARN, FAIL).status == "pass"


def test_sequences_of_their_own_and_cycle() -> None:
    capped = sequence(80, sequence_type="integer", max_value=100)
    item = integer_overflow([capped], WARN, FAIL)
    assert item.status == "warn" and "sequence public.ticket_no (integer: 80 of its MAXVALUE 100, 80%)" in item.evidence
    assert item.fix == "ALTER SEQUENCE public.ticket_no AS bigint NO MAXVALUE"  # AS alone keeps MAXVALUE 100
    # A CYCLE sequence starts over at its limit: it never runs out...
    assert usage(dataclasses.replace(capped, last_value=99, cycle=True)) is None
    assert integer_overflow([dataclasses.replace(capped, last_value=99, cycle=True)], WARN, FAIL).status == "pass"
    # ... unless the column it feeds stops it first.
    cycling = serial(32_000, sequence_type="bigint", max_value=BIG_MAX, cycle=True, column_base_type="smallint")
    assert integer_overflow([cycling], WARN, FAIL).status == "fail"


def test_unreadable_sequences_are_unknown_unless_something_fails() -> None:
    hidden = serial(None, readable=False, sequence_name="secret_seq")
    item = integer_overflow([hidden, serial(10)], WARN, FAIL)
    assert item.status == "unknown"
    assert "cannot read 1 sequence(s)" in item.evidence and "public.secret_seq" in item.evidence
    assert item.fix is not None and item.fix.startswith("GRANT SELECT ON SEQUENCE public.secret_seq TO ")
    # A warning stays in the evidence and the fix, behind the unknown.
    item = integer_overflow([hidden, sequence(80, max_value=100)], WARN, FAIL)
    assert item.status == "unknown" and "1 column(s) or sequence(s) near overflow" in item.evidence
    assert item.fix is not None and item.fix.endswith("ALTER SEQUENCE public.ticket_no NO MAXVALUE")
    # A failure is a failure, whatever else could not be read.
    item = integer_overflow([hidden, serial(INT_MAX - 1)], WARN, FAIL)
    assert item.status == "fail" and item.evidence.endswith("; 1 sequence(s) this role cannot read")
    # Many of them: one GRANT per schema.
    many = [serial(None, readable=False, sequence_name=f"s{i}", sequence_schema="App") for i in range(7)]
    item = integer_overflow(many, WARN, FAIL)
    assert item.fix is not None and item.fix.startswith('GRANT SELECT ON ALL SEQUENCES IN SCHEMA "App" TO ')
    assert "and 2 more" in item.evidence


def test_the_worst_come_first_and_five_are_named() -> None:
    rows = [sequence(60 + i, sequence_name=f"s{i}", max_value=100) for i in range(40)]
    item = integer_overflow(rows, WARN, FAIL)
    assert item.status == "fail"
    assert item.evidence.startswith(
        "30 column(s) or sequence(s) near overflow (warn at 70%, fail at 90%): sequence public.s39 "
    )
    assert item.evidence.endswith("and 25 more")
    assert item.fix is not None and item.fix.startswith("ALTER SEQUENCE public.s39 NO MAXVALUE; ")
    assert item.fix.endswith("; likewise for the other 25")


# --- xid_age ---------------------------------------------------------------------------------------------

M = 1_000_000
X_WARN, X_FAIL = 500 * M, 1000 * M


def database(xid: int, mxid: int = 0) -> AgeRow:
    return AgeRow("database", None, "app", xid, mxid)


def table(name: str, xid: int, mxid: int = 0, schema: str = "public", **changes: Any) -> AgeRow:
    return dataclasses.replace(AgeRow("table", schema, name, xid, mxid), **changes)


def session(age: int) -> XminHolder:
    return XminHolder("session", "pid 4242 (user app, application 'psql', idle in transaction since ...)", age, 60.0)


def test_xid_age_boundaries() -> None:
    assert xid_age([database(X_WARN - 1), table("t", X_WARN - 1)], [], X_WARN, X_FAIL).status == "pass"
    assert xid_age([database(X_WARN), table("t", X_WARN)], [], X_WARN, X_FAIL).status == "warn"
    assert xid_age([database(X_FAIL - 1), table("t", X_FAIL - 1)], [], X_WARN, X_FAIL).status == "warn"
    assert xid_age([database(X_FAIL), table("t", X_FAIL)], [], X_WARN, X_FAIL).status == "fail"
    # The same thresholds for multixacts, of the database or of a table.
    assert xid_age([database(10, X_FAIL)], [], X_WARN, X_FAIL).status == "fail"
    assert xid_age([database(10), table("t", 10, X_WARN)], [], X_WARN, X_FAIL).status == "warn"


def test_xid_age_pass_evidence() -> None:
    item = xid_age([database(1234), table("t", 1200), table("u", 1234)], [session(5)], X_WARN, X_FAIL)
    assert item.status == "pass" and item.fix is None
    assert item.evidence == (
        "transaction ID age 1,234, multixact age 0, below 500,000,000; oldest table public.u (transaction ID age 1,234)"
    )


def test_worst_tables_are_named_quoted_with_their_toast_tables() -> None:
    rows = [
        database(700 * M),
        table("Old Table", 700 * M, schema="Odd Schema", toast_oldest=True),
        table("events", 600 * M, 550 * M),
        table("events", 600 * M, 550 * M),  # in both top-5 lists
        table("young", 10 * M),
    ]
    item = xid_age(rows, [], X_WARN, X_FAIL)
    assert item.status == "warn"
    assert item.evidence == (
        "transaction ID age 700,000,000, multixact age 0 (warn at 500,000,000, fail at 1,000,000,000); tables: "
        '"Odd Schema"."Old Table" (transaction ID age 700,000,000, in its TOAST table); '
        "public.events (transaction ID age 600,000,000, multixact age 550,000,000); "
        "nothing holds the xmin horizon back that far: autovacuum has not frozen them (is it keeping up?)"
    )
    assert item.fix == (
        'VACUUM (FREEZE, VERBOSE) "Odd Schema"."Old Table"; VACUUM (FREEZE, VERBOSE) public.events '
        "(dbmaint vacuum freezes the oldest tables first; its VACUUM recomputes the database's age)"
    )


def test_what_holds_the_horizon_back_is_named_and_ended_first() -> None:
    prepared = XminHolder("prepared transaction", "gid 'tx1' (owner app, prepared at ...)", 1100 * M, 9e5)
    rows = [database(1200 * M), table("t", 1200 * M)]
    item = xid_age(rows, [prepared, session(600 * M), session(3)], X_WARN, X_FAIL)
    assert item.status == "fail"
    assert item.evidence.endswith(
        "; the xmin horizon is held back by prepared transaction gid 'tx1' (owner app, prepared at ...), "
        "xmin age 1,100,000,000 and 1 more"
    )
    assert item.fix is not None
    assert item.fix.startswith(
        "first end what holds the xmin horizon back (prepared transaction: COMMIT PREPARED or ROLLBACK PREPARED "
        "it; session: commit it or end it with pg_terminate_backend(pid)), then VACUUM (FREEZE, VERBOSE) public.t"
    )
    # A young holder is not what keeps the tables old.
    assert "held back" not in xid_age(rows, [session(3)], X_WARN, X_FAIL).evidence


def test_temporary_tables_and_a_lagging_database_figure() -> None:
    temp = table("scratch", 800 * M, schema="pg_temp_3", temporary=True)
    item = xid_age([database(800 * M), temp], [], X_WARN, X_FAIL)
    assert "pg_temp_3.scratch (transaction ID age 800,000,000, another session's temporary table)" in item.evidence
    assert item.fix is not None and "VACUUM" not in item.fix.split(":")[0]
    assert item.fix.startswith("only the session owning pg_temp_3.scratch can vacuum it")
    # datfrozenxid waits for the next VACUUM: the database is old, no table is.
    item = xid_age([database(600 * M), table("t", 20 * M)], [], X_WARN, X_FAIL)
    assert item.status == "warn" and item.evidence.endswith("; no table is that old")
    assert item.fix is not None and item.fix.startswith("VACUUM (FREEZE, VERBOSE) public.t ")


# --- both, as the checklist runs them --------------------------------------------------------------------


def test_registered_in_order_and_judged_with_the_configured_thresholds() -> None:
    names = [item.name for item in ITEMS]
    assert names.index("integer_overflow") < names.index("xid_age")
    (overflow_item,) = [item for item in ITEMS if item.name == "integer_overflow"]
    (xid_item,) = [item for item in ITEMS if item.name == "xid_age"]
    assert (overflow_item.order, xid_item.order) == (100, 110)
    assert overflow_item.source_names() == ("check_overflow",)
    assert xid_item.source_names() == ("check_wraparound", "xmin_holders")
    config = Config(check=CheckConfig(overflow_warn=0.5, overflow_fail=0.6, xid_age_warn=1000, xid_age_fail=5000))
    values = {
        "check_overflow": [serial(INT_MAX // 2 + 10)],
        "check_wraparound": [database(3000), table("t", 3000)],
        "xmin_holders": [],
    }
    found = Found("app", config, values)
    assert overflow_item.judge(found).status == "warn"
    assert xid_item.judge(found).status == "warn"
    assert overflow_item.judge(Found("app", Config(), values)).status == "pass"
    assert xid_item.judge(Found("app", Config(), values)).status == "pass"
    assert isinstance(overflow_item.sources[0], Query) and overflow_item.sources[0].row is SequenceRow
    assert wraparound.XidAge.__doc__ and "xmin horizon" in wraparound.XidAge.__doc__
