"""Slow-query capture on a real server: the slow statements only, deltas across passes, plans as history."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from tests.db.conftest import Database, Invoke
from tests.db.helpers import json_output

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = (
    "CREATE EXTENSION pg_stat_statements",
    "CREATE TABLE orders (id int PRIMARY KEY, customer_id int NOT NULL, note text NOT NULL)",
    "INSERT INTO orders SELECT g, g % 5000, md5(g::text) FROM generate_series(1, 300000) g",
    "ANALYZE orders",
    "SELECT pg_stat_statements_reset()",
)
SLOW = "SELECT count(*) FROM orders WHERE customer_id = %s"
FAST = "SELECT note FROM orders WHERE id = %s"


def run(database: Database, query: str, times: int) -> None:
    with database.connect() as conn:
        for i in range(times):
            conn.execute(query, (i + 1,))


def capture(dbmaint: Invoke, database: Database, config: str) -> dict[str, Any]:
    document = json_output(
        dbmaint("capture", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    assert isinstance(document, dict)
    return document


def test_two_passes_capture_the_slow_statements_only_with_deltas(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(*SCHEMA)
    config = write_config('[capture]\nmin_mean_time = "2ms"\n')
    run(database, SLOW, 5)
    run(database, FAST, 50)

    first = capture(dbmaint, database, config)
    assert first["status"] == "ok" and first["statements_seen"] >= 2
    (slow,) = first["captured"]
    assert slow["query"] == "SELECT count(*) FROM orders WHERE customer_id = $1" and slow["calls"] == 5
    assert slow["plan"] == "estimate"  # a generic plan for $1, never executed by capture
    # From the estimate alone: the filter keeps a sliver of a large table.
    assert any("seq_scan_filter" in problem and "an estimate" in problem for problem in slow["problems"])

    run(database, SLOW, 3)
    second = capture(dbmaint, database, config)
    (again,) = second["captured"]
    assert again["queryid"] == slow["queryid"] and again["calls"] == 3  # since the last pass, not 8

    listed = json_output(dbmaint("slow", "--format", "json"), exit_code=0)["statements"]
    (entry,) = listed
    assert entry["queryid"] == slow["queryid"] and entry["calls"] == 3
    assert entry["plan"]["source"] == "estimate" and entry["plan"]["total_cost"] > 0
    runs = json_output(dbmaint("history", "--job", "capture", "--format", "json"), exit_code=0)["runs"]
    assert [r["status"] for r in runs] == ["ok", "ok"]


def test_a_plan_that_changes_for_the_worse_is_flagged(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(*SCHEMA, "CREATE INDEX orders_customer_id ON orders (customer_id)")
    config = write_config('[capture]\nmin_mean_time = "0ms"\n')
    run(database, SLOW, 5)
    first = capture(dbmaint, database, config)
    assert not any(c["regression"] for c in first["captured"])
    database.execute("DROP INDEX orders_customer_id")
    run(database, SLOW, 5)
    second = capture(dbmaint, database, config)
    flagged = [c for c in second["captured"] if c["query"].startswith("SELECT count(*) FROM orders")]
    assert flagged and flagged[0]["regression"] and "plan changed" in flagged[0]["regression"]


def test_analyze_runs_read_only_queries_with_values_and_never_writes(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(*SCHEMA)
    config = write_config('[capture]\nmin_mean_time = "0ms"\nanalyze = true\n')
    run(database, SLOW, 5)
    run(database, "UPDATE orders SET note = note WHERE customer_id = %s", 3)
    before = database.value("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'orders'")
    document = capture(dbmaint, database, config)
    by_query = {c["query"].split(" FROM ")[0].split(" SET ")[0]: c for c in document["captured"]}
    assert by_query["SELECT count(*)"]["plan"] == "analyze"
    assert any("seq_scan_filter" in problem for problem in by_query["SELECT count(*)"]["problems"])
    assert by_query["UPDATE orders"]["plan"] == "estimate"
    assert database.value("SELECT n_tup_upd FROM pg_stat_user_tables WHERE relname = 'orders'") == before


def test_auto_explain_plans_from_the_server_log(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    database.execute(*SCHEMA)
    # The fixture log comes from a database named "shop"; this one is named otherwise: rename the entries.
    log = tmp_path / "postgresql.json"
    log.write_text(
        (ROOT / "tests" / "data" / "logs" / "postgresql.json").read_text().replace('"shop"', f'"{database.name}"')
    )
    config = write_config(f'[capture]\nauto_explain_log = "{log}"\n')
    first = capture(dbmaint, database, config)
    assert first["auto_explain_plans"] >= 1
    assert capture(dbmaint, database, config)["auto_explain_plans"] == 0  # the same log, read again


def test_without_pg_stat_statements_one_clear_message(database: Database, dbmaint: Invoke) -> None:
    result = dbmaint("capture", "--dsn", database.dsn)
    assert result.exit_code == 0
    assert "pg_stat_statements is not installed" in result.stderr
    assert "shared_preload_libraries" in result.stderr
    assert dbmaint("vacuum", "--dsn", database.dsn).exit_code == 0  # the rest of dbmaint goes on working


def test_one_statement_run_by_several_roles_and_nested_is_one_captured_statement(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    """pg_stat_statements keeps an entry per user and top-level flag: capture adds them up by query id."""
    database.execute(
        *SCHEMA[:4],
        "GRANT SELECT ON orders TO app_user",
        """CREATE FUNCTION count_for(c smallint) RETURNS bigint LANGUAGE plpgsql AS $$
           DECLARE n bigint;
           BEGIN EXECUTE 'SELECT count(*) FROM orders WHERE customer_id = $1' INTO n USING c; RETURN n; END $$""",
        SCHEMA[4],
    )
    config = write_config('[capture]\nmin_mean_time = "2ms"\n')
    run(database, SLOW, 5)
    other = Database(database.cluster, database.name)
    with psycopg.connect(other.cluster.dsn(other.name, user="app_user"), autocommit=True) as conn:
        for i in range(4):
            conn.execute(SLOW, (i,))
    with database.connect() as conn:
        conn.execute("SET pg_stat_statements.track = 'all'")  # nested statements too: toplevel = false
        for i in range(3):
            conn.execute("SELECT count_for(%s::smallint)", (i,))  # $1 typed as psycopg types small ints
    entries = database.value(
        "SELECT count(*) FROM pg_stat_statements WHERE query = 'SELECT count(*) FROM orders WHERE customer_id = $1'"
    )
    assert entries == 3  # postgres top-level, app_user top-level, postgres nested

    first = capture(dbmaint, database, config)
    assert first["status"] == "ok", first
    found = [c for c in first["captured"] if c["query"] == "SELECT count(*) FROM orders WHERE customer_id = $1"]
    assert len(found) == 1, [(c["queryid"], c["query"][:60], c["calls"]) for c in first["captured"]]
    (slow,) = found
    assert slow["calls"] == 12
    run(database, SLOW, 2)
    second = capture(dbmaint, database, config)
    assert second["status"] == "ok", second
    assert [c["calls"] for c in second["captured"] if c["queryid"] == slow["queryid"]] == [2]


def test_a_reset_between_passes_counts_from_zero(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    """pg_stat_statements_reset() (or an entry evicted by pg_stat_statements.max and seen again) between
    two passes: the counters went down, so the second pass counts what it sees, never a negative delta."""
    database.execute(*SCHEMA)
    config = write_config('[capture]\nmin_mean_time = "2ms"\n')
    run(database, SLOW, 6)
    (first,) = capture(dbmaint, database, config)["captured"]
    assert first["calls"] == 6
    database.execute("SELECT pg_stat_statements_reset()")
    run(database, SLOW, 2)
    second = capture(dbmaint, database, config)
    assert second["status"] == "ok"
    (again,) = second["captured"]
    assert again["queryid"] == first["queryid"] and again["calls"] == 2


def test_a_slow_statement_explain_will_not_run_is_captured_with_the_reason_for_no_plan(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    """pg_sleep in the application's own SELECT: explain refuses to run it, but it is the heaviest statement of
    the workload; it was dropped from the capture without a word."""
    database.execute(*SCHEMA)
    config = write_config('[capture]\nmin_mean_time = "50ms"\n')
    with database.connect() as conn:
        for i in range(2):
            conn.execute("SELECT pg_sleep(%s), note FROM orders WHERE id = %s", (0.1, i + 1))
        conn.execute("VACUUM orders")  # slow or not, never the application's
    document = capture(dbmaint, database, config)
    (slow,) = document["captured"]
    assert slow["query"].startswith("SELECT pg_sleep($1), note FROM orders") and slow["calls"] == 2
    assert slow["plan"] is None and "pg_sleep" in (slow["note"] or ""), slow
