"""The index advisor's schema findings against a real server: each kind found, its look-alikes left alone."""

from __future__ import annotations

import time
from datetime import timedelta

import psycopg
import pytest

from dbmaint.advisor import schema_findings
from dbmaint.model import Finding
from dbmaint.pg import collect
from tests.db.conftest import Database
from tests.db.helpers import LockHolder


def findings_of(database: Database, min_observed: timedelta = schema_findings.MIN_OBSERVED) -> list[Finding]:
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        return schema_findings.findings(collect.collect_schema(conn), min_observed=min_observed)


def of_kind(found: list[Finding], kind: str) -> dict[str, Finding]:
    """Findings of one kind by index name, or by table for the kinds about tables and foreign keys."""
    return {(f.index or f.table) if kind.endswith("_index") else f.table: f for f in found if f.kind == kind}


def run_fix(database: Database, finding: Finding) -> None:
    assert finding.fix is not None
    database.execute(*finding.fix.split("; "))


# --- missing_primary_key ---


def test_tables_without_primary_key(database: Database) -> None:
    database.execute(
        "CREATE TABLE keyed (id int PRIMARY KEY)",
        "CREATE TABLE logs (at timestamptz, msg text)",
        "INSERT INTO logs SELECT now(), 'x' FROM generate_series(1, 1000)",
        "ANALYZE logs",
        "CREATE TABLE events (id uuid NOT NULL, kind text)",
        "CREATE UNIQUE INDEX events_id ON events (id)",
        "CREATE TABLE codes (code int NOT NULL UNIQUE)",
        "CREATE TABLE nullable (code int UNIQUE)",
        "CREATE TABLE readings (d date, v int) PARTITION BY RANGE (d)",
        "CREATE TABLE readings_2025 PARTITION OF readings FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "CREATE TABLE readings_2026 PARTITION OF readings FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        "CREATE TABLE keyed_parts (id int, d date, PRIMARY KEY (id, d)) PARTITION BY RANGE (d)",
        "CREATE TABLE keyed_parts_2026 PARTITION OF keyed_parts FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    )
    found = of_kind(findings_of(database), "missing_primary_key")

    assert set(found) == {"public.logs", "public.events", "public.codes", "public.nullable", "public.readings"}
    assert "about 1,000 rows" in found["public.logs"].detail and found["public.logs"].fix is None
    assert found["public.nullable"].fix is None  # a unique index on a nullable column is no key
    readings = found["public.readings"].detail
    assert readings.startswith("Partitioned table public.readings (2 partitions") and "partition key (d)" in readings
    assert "unique index public.events_id on NOT NULL columns (id)" in found["public.events"].detail
    assert "unique constraint codes_code_key on NOT NULL columns (code)" in found["public.codes"].detail

    run_fix(database, found["public.events"])  # adopts the index as it is
    run_fix(database, found["public.codes"])  # builds a twin concurrently, then adopts it
    after = of_kind(findings_of(database), "missing_primary_key")
    assert set(after) == {"public.logs", "public.nullable", "public.readings"}
    assert database.value("SELECT conindid::regclass::text FROM pg_constraint WHERE conname = 'events_id'") == (
        "events_id"
    )


# --- unindexed_foreign_key ---

FOREIGN_KEYS = (
    "CREATE TABLE customers (id int PRIMARY KEY)",
    "INSERT INTO customers SELECT generate_series(1, 100)",
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers)",
    "INSERT INTO orders SELECT g, g % 100 + 1 FROM generate_series(1, 5000) g",
    # Covered by the composite primary key that leads with it.
    "CREATE TABLE order_lines (order_id int REFERENCES orders, line int, PRIMARY KEY (order_id, line))",
    # A composite key covered by an index whose first two columns are its columns in the other order.
    "CREATE TABLE pairs (a int, b int, PRIMARY KEY (a, b))",
    "CREATE TABLE pair_refs (id int, x int, y int, FOREIGN KEY (x, y) REFERENCES pairs (a, b))",
    "CREATE INDEX pair_refs_y_x_id ON pair_refs (y, x, id)",
    # A composite key of which an index covers only the first column.
    "CREATE TABLE half_refs (x int, y int, FOREIGN KEY (x, y) REFERENCES pairs (a, b))",
    "CREATE INDEX half_refs_x ON half_refs (x)",
    # Only a partial index, and only an expression index: neither finds every referencing row.
    "CREATE TABLE shipments (order_id int REFERENCES orders, region text)",
    "CREATE INDEX shipments_eu ON shipments (order_id) WHERE region = 'eu'",
    "CREATE TABLE notes (order_id int REFERENCES orders)",
    "CREATE INDEX notes_expr ON notes ((order_id + 0))",
    'CREATE TABLE "Odd Table" ("Odd Col" int REFERENCES customers)',
)


def test_unindexed_foreign_keys(database: Database) -> None:
    database.execute(*FOREIGN_KEYS)
    database.execute("UPDATE customers SET id = id WHERE id <= 50", "ANALYZE")
    found = [f for f in findings_of(database) if f.kind == "unindexed_foreign_key"]
    by_table = {f.table: f for f in found}

    assert set(by_table) == {
        "public.orders",
        "public.half_refs",
        "public.shipments",
        "public.notes",
        "public.Odd Table",
    }
    assert found[0].table == "public.orders"  # the most written referenced table, the largest referencing one
    orders = by_table["public.orders"]
    assert orders.columns == ("customer_id",)
    assert orders.fix == 'CREATE INDEX CONCURRENTLY "orders_customer_id_idx" ON "public"."orders" ("customer_id")'
    assert "every delete or key update on public.customers (50 updates and deletes counted)" in orders.detail
    assert "about 5,000 rows" in orders.detail
    assert by_table["public.half_refs"].columns == ("x", "y")
    assert "the partial index public.shipments_eu does not count" in by_table["public.shipments"].detail

    for finding in (orders, by_table["public.half_refs"], by_table["public.Odd Table"]):
        run_fix(database, finding)
    after = {f.table for f in findings_of(database) if f.kind == "unindexed_foreign_key"}
    assert after == {"public.shipments", "public.notes"}


def test_foreign_key_on_a_partitioned_table_is_one_finding(database: Database) -> None:
    database.execute(
        "CREATE TABLE customers (id int PRIMARY KEY)",
        "CREATE TABLE visits (d date, customer_id int REFERENCES customers) PARTITION BY RANGE (d)",
        "CREATE TABLE visits_2025 PARTITION OF visits FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "CREATE TABLE visits_2026 PARTITION OF visits FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
    )
    (finding,) = [f for f in findings_of(database) if f.kind == "unindexed_foreign_key"]
    assert finding.table == "public.visits"
    assert finding.fix == 'CREATE INDEX "visits_customer_id_idx" ON "public"."visits" ("customer_id")'
    run_fix(database, finding)
    assert [f for f in findings_of(database) if f.kind == "unindexed_foreign_key"] == []


# --- duplicate_index and redundant_index ---


def test_duplicate_indexes(database: Database) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, a int, s text)",
        "CREATE INDEX t_a_first ON t (a)",
        "CREATE INDEX t_a_second ON t (a)",
        "CREATE UNIQUE INDEX t_id_again ON t (id)",
        "CREATE INDEX t_lower_1 ON t (lower(s))",
        "CREATE INDEX t_lower_twice ON t (lower(s))",  # same expression and predicate, other parse locations
        "CREATE INDEX t_recent ON t (a) WHERE id > 10",
        "CREATE INDEX t_recent_twice ON t (a) WHERE id > 10",
        "CREATE INDEX t_upper ON t (upper(s))",
        # Unique indexes that differ only in their predicate are not duplicates.
        "CREATE UNIQUE INDEX t_s_low ON t (s) WHERE id < 100",
        "CREATE UNIQUE INDEX t_s_high ON t (s) WHERE id >= 100",
        "CREATE INDEX t_s_pattern ON t (s text_pattern_ops) WHERE id < 100",
        # The plain index is older than the primary key that duplicates it: the key's index stays.
        "CREATE TABLE u (id int)",
        "CREATE INDEX u_id_plain ON u (id)",
        "ALTER TABLE u ADD PRIMARY KEY (id)",
        # Both back a constraint: neither may be dropped.
        "CREATE TABLE v (a int PRIMARY KEY UNIQUE)",
    )
    found = of_kind(findings_of(database), "duplicate_index")

    assert set(found) == {
        "public.t_a_second",
        "public.t_id_again",
        "public.t_lower_twice",
        "public.t_recent_twice",
        "public.u_id_plain",
    }
    assert found["public.t_a_second"].fix == 'DROP INDEX CONCURRENTLY "public"."t_a_second"'
    assert "duplicates public.t_a_first (the older one)" in found["public.t_a_second"].detail
    assert "duplicates public.t_pkey (which backs constraint t_pkey)" in found["public.t_id_again"].detail
    assert "duplicates public.u_pkey (which backs constraint u_pkey)" in found["public.u_id_plain"].detail
    assert found["public.t_lower_twice"].columns == ("lower(s)",)
    for finding in found.values():
        run_fix(database, finding)
    assert of_kind(findings_of(database), "duplicate_index") == {}
    assert database.value("SELECT count(*) FROM pg_constraint WHERE conrelid IN ('t'::regclass, 'u'::regclass)") == 2


def test_redundant_indexes(database: Database) -> None:
    database.execute(
        "CREATE TABLE r (a int, b int, c int, d int)",
        "CREATE INDEX r_a ON r (a)",
        "CREATE INDEX r_a_b ON r (a, b)",
        "CREATE UNIQUE INDEX r_c ON r (c)",
        "CREATE INDEX r_c_a ON r (c, a)",
        "CREATE INDEX r_d_partial ON r (d) WHERE a > 0",
        "CREATE INDEX r_d_b ON r (d, b)",
        "CREATE INDEX r_b_incl ON r (b) INCLUDE (c)",
        "CREATE INDEX r_b_d ON r (b, d)",
    )
    found = of_kind(findings_of(database), "redundant_index")
    # r_c is unique, r_d_partial has a predicate r_d_b lacks, r_b_incl answers index-only scans on c.
    assert set(found) == {"public.r_a"}
    assert "is a leading part of public.r_a_b on (a, b)" in found["public.r_a"].detail
    assert found["public.r_a"].fix == 'DROP INDEX CONCURRENTLY "public"."r_a"'


# --- unused_index ---


def test_unused_indexes(database: Database) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int, c int)",
        "INSERT INTO t SELECT g, g, g, g FROM generate_series(1, 10000) g",
        "CREATE INDEX t_a ON t (a)",
        "CREATE INDEX t_b ON t (b)",
        "CREATE UNIQUE INDEX t_c ON t (c)",
        "ANALYZE t",
    )
    database.execute("SET enable_seqscan = off", "SELECT count(*) FROM t WHERE a = 5")

    assert of_kind(findings_of(database), "unused_index") == {}  # a database minutes old proves nothing
    found = of_kind(findings_of(database, min_observed=timedelta(0)), "unused_index")
    assert set(found) == {"public.t_b"}  # t_a was used, t_c is unique, t_pkey backs the key
    detail = found["public.t_b"].detail
    assert "has not been scanned since the database was created (statistics never reset)" in detail
    assert "scans on standbys are not counted here" in detail
    assert found["public.t_b"].fix == 'DROP INDEX CONCURRENTLY "public"."t_b"'

    database.execute("SELECT pg_stat_reset()")
    assert of_kind(findings_of(database), "unused_index") == {}  # a fresh count says nothing yet
    found = of_kind(findings_of(database, min_observed=timedelta(0)), "unused_index")
    assert set(found) == {"public.t_a", "public.t_b"}
    assert "since the statistics were reset less than a day ago (" in found["public.t_a"].detail


def test_unused_index_on_a_partitioned_table_is_one_finding(database: Database) -> None:
    database.execute(
        "CREATE TABLE m (d date, v int) PARTITION BY RANGE (d)",
        "CREATE TABLE m_2025 PARTITION OF m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "CREATE TABLE m_2026 PARTITION OF m FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')",
        "CREATE INDEX m_v ON m (v)",
    )
    found = of_kind(findings_of(database, min_observed=timedelta(0)), "unused_index")
    assert set(found) == {"public.m_v"}
    assert found["public.m_v"].fix == 'DROP INDEX "public"."m_v"'


# --- invalid_index ---


def failed_unique_build(database: Database, name: str) -> None:
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.execute(f"CREATE UNIQUE INDEX CONCURRENTLY {name} ON t (code)")


def test_invalid_indexes(database: Database) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, code int)", "INSERT INTO t SELECT g, g % 10 FROM generate_series(1, 100) g"
    )
    failed_unique_build(database, "t_code")
    failed_unique_build(database, "t_code_leftover")
    database.execute("ALTER INDEX t_code_leftover RENAME TO t_code_ccnew")
    database.execute("CREATE INDEX t_id_ok ON t (id)")

    found = of_kind(findings_of(database), "invalid_index")
    assert set(found) == {"public.t_code", "public.t_code_ccnew"}
    failed = found["public.t_code"]
    assert "failed CREATE INDEX CONCURRENTLY" in failed.detail and "duplicate values" in failed.detail
    assert failed.fix == (
        'DROP INDEX CONCURRENTLY "public"."t_code"; '
        "CREATE UNIQUE INDEX CONCURRENTLY t_code ON public.t USING btree (code)"
    )
    leftover = found["public.t_code_ccnew"]
    assert "left by a failed REINDEX CONCURRENTLY" in leftover.detail
    assert leftover.fix == 'DROP INDEX CONCURRENTLY "public"."t_code_ccnew"'
    # Invalid indexes are reported as such, not as duplicates or unused ones.
    assert {f.index for f in findings_of(database) if f.kind != "invalid_index"}.isdisjoint(found)

    run_fix(database, leftover)
    assert set(of_kind(findings_of(database), "invalid_index")) == {"public.t_code"}


# --- never waiting ---


def test_collection_does_not_wait_for_a_locked_table(database: Database) -> None:
    database.execute(
        "CREATE TABLE busy (id int, s text)",
        "CREATE INDEX busy_lower_1 ON busy (lower(s))",
        "CREATE INDEX busy_lower_2 ON busy (lower(s))",
    )
    holder = LockHolder(database.dsn, "LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
    try:
        with psycopg.connect(database.dsn, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '5s'")
            started = time.monotonic()
            facts = collect.collect_schema(conn)
            elapsed = time.monotonic() - started
        assert holder.still_alive()
    finally:
        holder.release()
    assert elapsed < 2
    found = of_kind(schema_findings.findings(facts), "duplicate_index")
    # Found all the same; only the printed expression had to wait for another time.
    assert set(found) == {"public.busy_lower_2"} and found["public.busy_lower_2"].columns == ("(expression)",)
    assert of_kind(schema_findings.findings(facts), "missing_primary_key").keys() == {"public.busy"}
