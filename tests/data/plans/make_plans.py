"""Regenerate the EXPLAIN fixtures of tests/unit/test_explain_analysis.py from a real PostgreSQL server.

Run from the repository root: ``/tmp/venv/bin/python tests/data/plans/make_plans.py [NAME ...]``. It starts a
throwaway cluster (autovacuum off, so statistics and the visibility map stay as the script leaves them),
builds a small shop schema, and saves ``EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON)`` of each
case below as ``<name>.json``, exactly as psycopg returns it (a list with one object). Each plan problem is
produced on purpose; the ``healthy_*`` cases are the plans that must raise no warning. Times change on every
run, so the figures asserted in the tests must be checked after a regeneration.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from dbmaint.pg.cluster import Cluster

HERE = Path(__file__).resolve().parent
SETTINGS = {"autovacuum": "off", "track_io_timing": "on"}
EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) "

SCHEMA = [
    # The cluster commits asynchronously; VACUUM marks a page all-visible only once it could set the hint bits,
    # which waits for the commit to be flushed.
    "SET synchronous_commit = on",
    "CREATE TABLE regions (id int PRIMARY KEY, name text NOT NULL)",
    "INSERT INTO regions VALUES (1, 'north'), (2, 'south'), (3, 'east'), (4, 'west'), (5, 'centre')",
    # segment and tier are always equal: the planner multiplies their selectivities (1/100 x 1/100).
    """CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, region_id int NOT NULL REFERENCES regions,
                               segment int NOT NULL, tier int NOT NULL)""",
    """INSERT INTO customers SELECT g, 'customer ' || g, 1 + g % 5, g % 100, g % 100
       FROM generate_series(1, 100000) g""",
    # The last 1% of the orders (by created_at) are the cancelled ones.
    """CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES customers, sku text NOT NULL,
                            status text NOT NULL, created_at timestamptz NOT NULL, amount numeric(10, 2) NOT NULL,
                            note text NOT NULL)""",
    """INSERT INTO orders
       SELECT g, 1 + (hashint4(g) & 65535) % 100000, 'SKU-' || (hashint4(g * 7) & 65535) % 5000,
              CASE WHEN g > 99000 THEN 'cancelled' WHEN hashint4(g * 3) % 10 = 0 THEN 'pending' ELSE 'shipped' END,
              timestamptz '2026-01-01 00:00+00' + g * interval '1 minute', (hashint4(g * 5) & 65535) / 100.0,
              md5(g::text)
       FROM generate_series(1, 100000) g""",
    "CREATE INDEX orders_customer_id_idx ON orders (customer_id)",
    "CREATE INDEX orders_created_at_idx ON orders (created_at)",
    "CREATE INDEX orders_status_idx ON orders (status)",
    # A foreign key no index serves: deleting an order scans shipments once per deleted row.
    "CREATE TABLE shipments (id int PRIMARY KEY, order_id int NOT NULL REFERENCES orders, carrier text NOT NULL)",
    "INSERT INTO shipments SELECT g, 1000 + g, 'carrier ' || g % 7 FROM generate_series(1, 20000) g",
    "CREATE TABLE products (sku text PRIMARY KEY, title text NOT NULL)",
    "INSERT INTO products SELECT 'SKU-' || g, 'product ' || g FROM generate_series(0, 4999) g",
    # Statistics taken while every event was a click; the purchases arrive after the ANALYZE below.
    "CREATE TABLE events (id int PRIMARY KEY, kind text NOT NULL, payload text NOT NULL)",
    "INSERT INTO events SELECT g, 'click', md5(g::text) FROM generate_series(1, 50000) g",
    "CREATE INDEX events_kind_idx ON events (kind)",
    # Index-only scans: the visibility map is set by the VACUUM below, then the updates clear it.
    "CREATE TABLE readings (id int PRIMARY KEY, sensor int NOT NULL, value int NOT NULL)",
    "INSERT INTO readings SELECT g, g % 500, g FROM generate_series(1, 100000) g",
    "CREATE INDEX readings_sensor_value_idx ON readings (sensor, value)",
    # 99% of the rows deleted and never vacuumed: the pages stay.
    "CREATE TABLE bloated (id int PRIMARY KEY, payload text NOT NULL)",
    "INSERT INTO bloated SELECT g, md5(g::text) FROM generate_series(1, 200000) g",
    "VACUUM ANALYZE",
    "INSERT INTO events SELECT g, 'purchase', md5(g::text) FROM generate_series(50001, 70000) g",
    "UPDATE readings SET value = value + 1 WHERE sensor < 100",
    "DELETE FROM bloated WHERE id % 100 <> 0",
    "ANALYZE bloated",  # estimates right: what is left is the empty pages
]

FORCE_PARALLEL = ["SET parallel_setup_cost = 0", "SET parallel_tuple_cost = 0", "SET min_parallel_table_scan_size = 0"]
TINY_WORK_MEM = ["SET work_mem = '64kB'"]


@dataclass(frozen=True)
class Case:
    name: str
    query: str
    setup: tuple[str, ...] = ()
    rollback: bool = False  # DML: run in a transaction that is rolled back
    warm: bool = True  # run once before the EXPLAIN that is kept (caches, catalog caches)
    cold: bool = False  # restart the server first: nothing in shared_buffers


CASES = [
    Case("healthy_pk_lookup", "SELECT * FROM orders WHERE id = 4242"),
    Case("healthy_tiny_seq_scan", "SELECT * FROM regions WHERE name = 'north'"),
    Case(
        "healthy_join",
        "SELECT c.name, r.name AS region FROM customers c JOIN regions r ON r.id = c.region_id WHERE c.id <= 500",
    ),
    Case("disk_sort", "SELECT id, note FROM orders ORDER BY note", tuple(TINY_WORK_MEM)),
    Case("stale_statistics", "SELECT max(payload) FROM events WHERE kind = 'purchase'"),
    Case(
        "seq_scan_filter",
        "SELECT id, amount FROM orders o WHERE o.sku = 'SKU-42' AND o.created_at > '2025-01-01'",
    ),
    Case(
        "hash_spill",
        "SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
        (*TINY_WORK_MEM, "SET enable_mergejoin = off"),
    ),
    Case("lossy_bitmap", "SELECT max(note) FROM orders WHERE status = 'pending'", tuple(TINY_WORK_MEM)),
    Case(
        "nested_loop_underestimate",
        """SELECT c.name, o.amount FROM customers c JOIN orders o ON o.customer_id = c.id
           WHERE c.segment = 1 AND c.tier = 1""",
    ),
    Case(
        "parallel_seq_scan", "SELECT status, count(*), sum(amount) FROM orders GROUP BY status", tuple(FORCE_PARALLEL)
    ),
    Case(
        "workers_not_launched",
        "SELECT status, count(*), sum(amount) FROM orders GROUP BY status",
        (*FORCE_PARALLEL, "SET max_parallel_workers = 0"),
    ),
    Case("heap_fetches", "SELECT sensor, value FROM readings WHERE sensor < 10"),
    Case("large_offset", "SELECT id, amount FROM orders ORDER BY id OFFSET 50000 LIMIT 20"),
    Case(
        "hashagg_spill",
        "SELECT sku, count(*), sum(amount) FROM orders GROUP BY sku",
        (*TINY_WORK_MEM, "SET enable_sort = off"),
    ),
    Case(
        "jit",
        "SELECT status, sum(amount), avg(amount) FROM orders WHERE amount > 10 GROUP BY status",
        ("SET jit_above_cost = 0", "SET jit_inline_above_cost = 0", "SET jit_optimize_above_cost = 0"),
    ),
    Case(
        "wrong_index_order_by",
        "SELECT id, created_at FROM orders WHERE status = 'cancelled' ORDER BY created_at LIMIT 10",
    ),
    Case(
        "inefficient_index",
        "SELECT id FROM orders WHERE status = 'pending' AND amount > 600",
    ),
    Case("slow_trigger", "DELETE FROM orders WHERE id <= 100", rollback=True),
    Case("read_efficiency", "SELECT id, payload FROM bloated"),
    Case(
        "cte_temp_spill",
        """WITH recent AS MATERIALIZED (SELECT id, note FROM orders WHERE id > 50000)
           SELECT count(*) FROM recent a WHERE a.note LIKE 'a%'""",
        tuple(TINY_WORK_MEM),
    ),
    Case(
        "parallel_nested_loop",
        """SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id % 20000 + 1
           WHERE o.id <= 30000""",
        ("SET enable_hashjoin = off", "SET enable_mergejoin = off"),
    ),
    Case(
        "memoize",
        "SELECT count(*) FROM orders o JOIN customers c ON c.id = o.customer_id WHERE o.id <= 30000",
        (
            "SET work_mem = '1MB'",
            "SET enable_hashjoin = off",
            "SET enable_mergejoin = off",
            "SET max_parallel_workers_per_gather = 0",
        ),
    ),
    # Last: the server is restarted first, so shared_buffers start empty.
    Case("cold_cache", "SELECT count(*), sum(amount) FROM orders", warm=False, cold=True),
]


def explain(conn: psycopg.Connection[tuple[Any, ...]], case: Case) -> Any:
    for statement in case.setup:
        conn.execute(statement)
    runs = 2 if case.warm else 1
    result: Any = None
    for _ in range(runs):
        with conn.transaction(force_rollback=case.rollback):
            row = conn.execute(EXPLAIN + case.query).fetchone()
            assert row is not None
            result = row[0]
    return result


def main(names: list[str]) -> None:
    cluster = Cluster(settings=SETTINGS).start()
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE shop")
            row = conn.execute("SELECT pg_jit_available()").fetchone()
        if not (row and row[0]):
            # Debian's postgresql-15 ships llvmjit; a build without it would write a plan with no JIT section.
            print("JIT is not available in this build: jit.json is left as it is")
            names = names or [case.name for case in CASES if case.name != "jit"]
            names = [name for name in names if name != "jit"]
        with psycopg.connect(cluster.dsn("shop"), autocommit=True) as conn:
            for statement in SCHEMA:
                conn.execute(statement)
        for case in CASES:
            if names and case.name not in names:
                continue
            if case.cold:
                cluster.restart()
            with psycopg.connect(cluster.dsn("shop"), autocommit=True) as conn:
                plan = explain(conn, case)
            path = HERE / f"{case.name}.json"
            path.write_text(json.dumps(plan, indent=1) + "\n")
            print(f"{path}: {path.stat().st_size} bytes")
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main(sys.argv[1:])
