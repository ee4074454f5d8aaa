"""integer_overflow and xid_age on a real server, through `dbmaint check`: sequences moved near their limits
with setval(), transaction IDs burnt for real and tables frozen again."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, freeze_all_but, json_output

LOW_XID_THRESHOLDS = "[check]\nxid_age_warn = 1000\nxid_age_fail = 5000\n"
OLD_TABLE = '"Odd Schema"."Old Table"'


def checked(dbmaint: Invoke, dsn: str, *options: str) -> dict[str, dict[str, Any]]:
    """Each item of `dbmaint check --format json`, by name. The test cluster runs without autovacuum, so
    autovacuum_keeps_up fails and the command exits 1 whatever these items say."""
    document = json_output(dbmaint("check", "--dsn", dsn, "--format", "json", *options), exit_code=1)
    return {item["check"]: item for item in document["items"]}


def fix_statements(fix: str) -> list[str]:
    """The SQL statements of integer_overflow's fix, without the explanation that follows them."""
    return fix.split(". ALTER TABLE ... TYPE bigint rewrites")[0].split("; ")


def test_columns_near_overflow_fail_and_their_fix_makes_them_pass(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        'CREATE SCHEMA "Sales Data"',
        'CREATE TABLE "Sales Data"."Order" ("Id" serial PRIMARY KEY)',
        "CREATE TABLE tickets (id int GENERATED ALWAYS AS IDENTITY, n smallserial)",
        "CREATE SEQUENCE int_seq AS integer",  # a bigint column fed by an integer sequence
        "CREATE TABLE wide (id bigint DEFAULT nextval('int_seq'))",
        "CREATE SEQUENCE countdown INCREMENT -1 MINVALUE -100 MAXVALUE -1",  # descending, of its own
        'INSERT INTO "Sales Data"."Order" DEFAULT VALUES',
        "INSERT INTO tickets DEFAULT VALUES",
    )
    item = checked(dbmaint, database.dsn)["integer_overflow"]
    assert item["status"] == "pass", item
    assert item["evidence"].startswith("5 sequence(s), none past 70% of its range; the most used: ")

    database.execute(
        """SELECT pg_catalog.setval('"Sales Data"."Order_Id_seq"', 2000000000)""",
        "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('tickets', 'id'), 1600000000)",
        "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence('tickets', 'n'), 30000)",
        "SELECT pg_catalog.setval('int_seq', 1900000000)",
        "SELECT pg_catalog.nextval('countdown') FROM pg_catalog.generate_series(1, 95)",
    )
    item = checked(dbmaint, database.dsn)["integer_overflow"]
    assert item["status"] == "fail"
    assert item["evidence"] == (
        "5 column(s) or sequence(s) near overflow (warn at 70%, fail at 90%): sequence public.countdown (bigint: "
        '-95 of its MINVALUE -100, 95%, descending); "Sales Data"."Order"."Id" (integer: 2,000,000,000 of '
        "2,147,483,647, 93%); public.tickets.n (smallint: 30,000 of 32,767, 92%); public.wide.id (bigint, fed by "
        "integer sequence public.int_seq: 1,900,000,000 of its MAXVALUE 2,147,483,647, 88%); public.tickets.id "
        "(integer: 1,600,000,000 of 2,147,483,647, 75%)"
    )
    assert "ACCESS EXCLUSIVE lock" in item["fix"]
    statements = fix_statements(item["fix"])
    assert statements == [
        "ALTER SEQUENCE public.countdown NO MINVALUE",
        'ALTER TABLE "Sales Data"."Order" ALTER COLUMN "Id" TYPE bigint',
        'ALTER SEQUENCE "Sales Data"."Order_Id_seq" AS bigint',  # a serial's sequence stays integer
        "ALTER TABLE public.tickets ALTER COLUMN n TYPE bigint",
        "ALTER SEQUENCE public.tickets_n_seq AS bigint",
        "ALTER SEQUENCE public.int_seq AS bigint",
        "ALTER TABLE public.tickets ALTER COLUMN id TYPE bigint",  # its identity sequence follows
    ]
    # The fix is SQL that works, and is the whole fix.
    database.execute(*statements)
    item = checked(dbmaint, database.dsn)["integer_overflow"]
    assert item["status"] == "pass", item
    assert item["fix"] is None


def test_partitions_count_as_their_parent_and_a_shared_sequence_names_each_column(
    database: Database, dbmaint: Invoke
) -> None:
    database.execute(
        "CREATE TABLE measurements (id serial, at date) PARTITION BY RANGE (at)",
        "CREATE TABLE measurements_2026 PARTITION OF measurements FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        "CREATE TABLE measurements_2027 PARTITION OF measurements FOR VALUES FROM ('2027-01-01') TO ('2028-01-01')",
        "CREATE SEQUENCE shared_ids AS integer",
        "CREATE TABLE invoices (id integer DEFAULT nextval('shared_ids'))",
        "CREATE TABLE credit_notes (id integer DEFAULT nextval('shared_ids'))",
        "SELECT pg_catalog.setval('measurements_id_seq', 2050000000)",
        "SELECT pg_catalog.setval('shared_ids', 1700000000)",
    )
    item = checked(dbmaint, database.dsn)["integer_overflow"]
    assert item["status"] == "fail"
    assert item["evidence"] == (
        "3 column(s) or sequence(s) near overflow (warn at 70%, fail at 90%): public.measurements.id (integer: "
        "2,050,000,000 of 2,147,483,647, 95%); public.credit_notes.id (integer: 1,700,000,000 of 2,147,483,647, "
        "79%); public.invoices.id (integer: 1,700,000,000 of 2,147,483,647, 79%)"
    )
    assert fix_statements(item["fix"]) == [
        "ALTER TABLE public.measurements ALTER COLUMN id TYPE bigint",  # its partitions with it
        "ALTER SEQUENCE public.measurements_id_seq AS bigint",
        "ALTER TABLE public.credit_notes ALTER COLUMN id TYPE bigint",
        "ALTER SEQUENCE public.shared_ids AS bigint",  # once
        "ALTER TABLE public.invoices ALTER COLUMN id TYPE bigint",
    ]
    database.execute(*fix_statements(item["fix"]))
    assert checked(dbmaint, database.dsn)["integer_overflow"]["status"] == "pass"


def test_a_monitoring_role_is_unknown_on_sequences_it_cannot_read(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        'CREATE TABLE "Events" (id serial PRIMARY KEY)',
        'INSERT INTO "Events" DEFAULT VALUES',
        "GRANT pg_monitor TO app_user",
    )
    monitor = database.dsn.replace("user=postgres", "user=app_user")
    items = checked(dbmaint, monitor)
    overflow = items["integer_overflow"]
    assert overflow["status"] == "unknown"
    assert "cannot read 1 sequence(s)" in overflow["evidence"] and 'public."Events_id_seq"' in overflow["evidence"]
    assert overflow["fix"].startswith('GRANT SELECT ON SEQUENCE public."Events_id_seq" TO ')
    assert items["xid_age"]["status"] == "pass"  # the catalogs and xmin_holders are readable by pg_monitor
    assert checked(dbmaint, database.dsn)["integer_overflow"]["status"] == "pass"  # its owner reads it

    # A failure it can read is a failure all the same.
    database.execute(
        "CREATE SEQUENCE visible AS integer",
        "SELECT pg_catalog.setval('visible', 2100000000)",
        "GRANT SELECT ON SEQUENCE visible TO app_user",
    )
    overflow = checked(dbmaint, monitor)["integer_overflow"]
    assert overflow["status"] == "fail" and overflow["evidence"].endswith("; 1 sequence(s) this role cannot read")

    # The GRANT of the fix lets it see the figures.
    database.execute('GRANT SELECT ON SEQUENCE "Events_id_seq" TO app_user', "DROP SEQUENCE visible")
    overflow = checked(dbmaint, monitor)["integer_overflow"]
    assert overflow["status"] == "pass", overflow
    assert 'the most used: public."Events".id (integer: 1 of 2,147,483,647' in overflow["evidence"]


def burn_transaction_ids(database: Database, count: int) -> None:
    """Use up ``count`` transaction IDs for real: each COMMIT in a DO block ends a transaction (PostgreSQL 11+
    at top level), so each loop takes a new ID."""
    with database.connect() as conn:
        conn.execute(
            f"DO $$ BEGIN FOR i IN 1..{count:d} LOOP PERFORM pg_catalog.txid_current(); COMMIT; END LOOP; END $$"
        )


def xid_figure(evidence: str, name: str) -> int:
    match = re.search(re.escape(name) + r" \(transaction ID age ([\d,]+)", evidence)
    assert match, evidence
    return int(match.group(1).replace(",", ""))


def test_old_tables_fail_until_what_holds_them_ends_and_they_are_frozen(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    low = write_config(LOW_XID_THRESHOLDS)
    database.execute('CREATE SCHEMA "Odd Schema"', f"CREATE TABLE {OLD_TABLE} (id int, doc text)")
    burn_transaction_ids(database, 3000)
    freeze_all_but(database, OLD_TABLE, heap_too=True)
    holder = LockHolder(database.dsn, "SELECT pg_catalog.txid_current()")  # an open transaction with an ID
    try:
        burn_transaction_ids(database, 3000)
        item = checked(dbmaint, database.dsn, "--config", low)["xid_age"]
        assert item["status"] == "fail", item
        age = xid_figure(item["evidence"], OLD_TABLE)
        assert age >= 6000
        assert item["evidence"].startswith(
            f"transaction ID age {age:,}, multixact age 0 (warn at 1,000, fail at 5,000)"
        )
        # Named by its table, first, and the TOAST table is the old part (its heap was frozen).
        assert f"tables: {OLD_TABLE} (transaction ID age {age:,}, in its TOAST table); " in item["evidence"]
        assert f"the xmin horizon is held back by session pid {holder.pid} " in item["evidence"]
        assert item["fix"].startswith("first end what holds the xmin horizon back (session: commit it or end it")
        assert f"then VACUUM (FREEZE, VERBOSE) {OLD_TABLE}" in item["fix"]

        # While the transaction stays open, VACUUM cannot freeze past it: everything stays past the warning.
        database.execute(f"VACUUM (FREEZE) {OLD_TABLE}")
        item = checked(dbmaint, database.dsn, "--config", low)["xid_age"]
        assert item["status"] == "warn" and f"held back by session pid {holder.pid} " in item["evidence"]
        held = database.value(
            "SELECT pg_catalog.age(relfrozenxid) FROM pg_catalog.pg_class WHERE oid = %s::regclass", (OLD_TABLE,)
        )
        assert 3000 <= held < age
    finally:
        holder.release()

    database.execute(f"VACUUM (FREEZE) {OLD_TABLE}")
    item = checked(dbmaint, database.dsn, "--config", low)["xid_age"]
    assert item["status"] == "warn", item  # the catalogs frozen 3,000 transactions ago are still past 1,000
    assert "Old Table" not in item["evidence"] and "Old Table" not in item["fix"]
    assert "held back" not in item["evidence"]
    # Its VACUUM moved the database's age up to the next oldest tables', the catalogs frozen 3,000 earlier.
    figure = re.match(r"transaction ID age ([\d,]+),", item["evidence"])
    assert figure and 3000 <= int(figure.group(1).replace(",", "")) < age - 2000

    item = checked(dbmaint, database.dsn)["xid_age"]  # the default thresholds
    assert item["status"] == "pass" and item["fix"] is None
    assert re.match(r"transaction ID age [\d,]+, multixact age 0, below 500,000,000; oldest table ", item["evidence"])
    assert "Old Table" not in item["evidence"]
