"""dbmaint explain on a real server: each major plan problem produced on purpose and flagged, no false
alarm on healthy queries, no data changed, refusals with the reason, $n on PostgreSQL 15."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmaint.explain import runner
from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, json_output, make_plans, run_dbmaint_process

ROOT = Path(__file__).resolve().parents[2]
CASES = {case.name: case for case in make_plans.CASES}
WARNINGS = ("warning", "critical")


def explain(dbmaint: Invoke, database: Database, *args: str) -> dict[str, Any]:
    document = json_output(dbmaint("explain", "--dsn", database.dsn, "--format", "json", *args), exit_code=0)
    assert isinstance(document, dict)
    return document


def session_settings(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    """A case's SET statements, given to dbmaint's session the way a user would: PGOPTIONS."""
    options = []
    for statement in CASES[case].setup:
        name, _, value = statement.removeprefix("SET ").partition(" = ")
        options.append(f"-c {name}={value.strip(chr(39))}")
    monkeypatch.setenv("PGOPTIONS", " ".join(options))


def kinds(document: dict[str, Any], severities: tuple[str, ...] = WARNINGS) -> set[str]:
    return {p["kind"] for p in document["problems"] if p["severity"] in severities}


@pytest.mark.parametrize("case", ["healthy_pk_lookup", "healthy_tiny_seq_scan", "healthy_join"])
def test_a_healthy_query_raises_no_alarm(shop: Database, dbmaint: Invoke, case: str) -> None:
    document = explain(dbmaint, shop, CASES[case].query)
    assert document["analyzed"] is True and document["execution_ms"] is not None
    assert kinds(document) == set()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("disk_sort", "disk_sort"),
        ("stale_statistics", "row_misestimate"),
        ("seq_scan_filter", "seq_scan_filter"),
        ("hash_spill", "hash_spill"),
        ("lossy_bitmap", "lossy_bitmap"),
        ("nested_loop_underestimate", "nested_loop_underestimate"),
    ],
)
def test_each_major_problem_is_flagged(
    shop: Database, dbmaint: Invoke, monkeypatch: pytest.MonkeyPatch, case: str, expected: str
) -> None:
    session_settings(monkeypatch, case)
    document = explain(dbmaint, shop, CASES[case].query)
    assert expected in kinds(document), document["problems"]
    problem = next(p for p in document["problems"] if p["kind"] == expected)
    assert problem["detail"] and problem["fix"]
    assert problem["node"] is None or 0 <= problem["node"] < len(document["nodes"])


def test_json_has_the_plan_the_nodes_and_the_problems(shop: Database, dbmaint: Invoke) -> None:
    document = explain(dbmaint, shop, CASES["seq_scan_filter"].query)
    assert document["plan"][0]["Plan"]["Node Type"]
    node = document["nodes"][0]
    for key in ("id", "label", "exclusive_ms", "share", "actual_rows", "misestimate", "loops"):
        assert key in node
    for problem in document["problems"]:
        assert {"kind", "node", "detail", "fix"} <= set(problem)
    assert document["tables"]["public.orders"]["size_bytes"] > 0
    assert any("orders_pkey" in definition for definition in document["tables"]["public.orders"]["indexes"])


def test_the_table_context_never_waits_for_a_locked_table(database: Database) -> None:
    """Index definitions are display only: a table someone holds ACCESS EXCLUSIVE on keeps its statistics and
    loses its definitions, at once; the other table of the plan keeps both."""
    database.execute(
        "CREATE TABLE busy (id int PRIMARY KEY)",
        "CREATE TABLE calm (id int PRIMARY KEY)",
    )
    plan = [{"Plan": {"Node Type": "Nested Loop", "Plans": [
        {"Node Type": "Seq Scan", "Schema": "public", "Relation Name": "busy"},
        {"Node Type": "Seq Scan", "Schema": "public", "Relation Name": "calm"},
    ]}}]  # fmt: skip
    holder = LockHolder(database.dsn, "LOCK TABLE busy IN ACCESS EXCLUSIVE MODE")
    try:
        with psycopg.connect(database.dsn, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '5s'")
            started = time.monotonic()
            context = runner.table_context(conn, plan)
            elapsed = time.monotonic() - started
        assert holder.still_alive()
    finally:
        holder.release()
    assert elapsed < 2
    assert set(context) == {"public.busy", "public.calm"}
    assert context["public.busy"].indexes == ()
    assert context["public.calm"].indexes == ("CREATE UNIQUE INDEX calm_pkey ON public.calm USING btree (id)",)


def test_an_index_fix_is_proven_with_a_hypothetical_index(shop: Database, dbmaint: Invoke) -> None:
    document = explain(dbmaint, shop, CASES["seq_scan_filter"].query)
    problem = next(p for p in document["problems"] if p["kind"] == "seq_scan_filter")
    proven = problem["proven"]
    assert proven is not None, document["notes"]
    assert proven["definition"].startswith('CREATE INDEX CONCURRENTLY "orders_sku')
    assert proven["cost_after"] < proven["cost_before"] / 5
    # The index `dbmaint advise -s` recommends for the same statement: one candidate generator and one
    # choice for both commands.
    advice = json_output(
        dbmaint("advise", "--dsn", shop.dsn, "-s", CASES["seq_scan_filter"].query, "--no-stats", "--format", "json"),
        exit_code=0,
    )
    assert [r["definition"] for r in advice["recommendations"]] == [proven["definition"]]


def test_a_delete_explained_with_analysis_leaves_every_row(shop: Database, dbmaint: Invoke) -> None:
    before = shop.value("SELECT count(*) FROM orders")
    document = explain(dbmaint, shop, "--analyze-writes", "DELETE FROM orders WHERE id <= 100")
    assert document["analyzed"] is True and document["kind"] == "write"
    assert shop.value("SELECT count(*) FROM orders") == before
    # The unindexed foreign key shipments.order_id makes the RI trigger scan: the slow trigger is named.
    assert "slow_trigger" in kinds(document, ("info", "warning", "critical"))


def test_a_write_without_the_flag_is_estimated_only(shop: Database, dbmaint: Invoke) -> None:
    document = explain(dbmaint, shop, "UPDATE orders SET note = 'x' WHERE id = 1")
    assert document["analyzed"] is False and document["execution_ms"] is None
    assert any("--analyze-writes" in note for note in document["notes"])
    assert shop.value("SELECT count(*) FROM orders WHERE note = 'x'") == 0


def test_an_insert_says_sequences_advance(database: Database, dbmaint: Invoke) -> None:
    database.execute("CREATE TABLE t (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text)")
    document = explain(dbmaint, database, "--analyze-writes", "INSERT INTO t (v) VALUES ('a')")
    assert any("sequences" in note for note in document["notes"])
    assert database.value("SELECT count(*) FROM t") == 0


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        ("DROP TABLE orders", "dbmaint: refused: DROP"),
        ("SELECT 1; SELECT 2", "dbmaint: refused: 2 statements given"),
        ("COPY orders TO PROGRAM 'true'", "dbmaint: refused: COPY"),
        ("SELECT pg_terminate_backend(1)", "dbmaint: refused: calls pg_terminate_backend()"),
        ("SELEC * FROM orders", 'dbmaint: syntax error at or near "SELEC"'),
        ("SELECT * FROM no_such_table", 'dbmaint: relation "no_such_table" does not exist'),
    ],
)
def test_bad_statements_are_one_clear_line(shop: Database, statement: str, message: str) -> None:
    result = run_dbmaint_process("explain", "--dsn", shop.dsn, statement)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(message), result.stderr
    assert "syntax error: syntax error" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert shop.value("SELECT to_regclass('orders') IS NOT NULL") is True


def test_parameters_on_pg15_generic_plan_pg_stats_values_and_given_values(shop: Database, dbmaint: Invoke) -> None:
    query = "SELECT id, amount FROM orders WHERE customer_id = $1 AND created_at > $2"
    generic = explain(dbmaint, shop, "--no-analyze", query)
    assert generic["analyzed"] is False and generic["parameters"] == {}
    assert any("generic plan" in note for note in generic["notes"])

    typical = explain(dbmaint, shop, query)
    assert typical["analyzed"] is True and set(typical["parameters"]) == {"$1", "$2"}
    assert typical["rare_values"] is not None and "execution_ms" in typical["rare_values"]

    given = explain(dbmaint, shop, query, "--param", "42", "--param", "2026-02-01")
    assert given["parameters"] == {"$1": "42", "$2": "2026-02-01"} and given["analyzed"] is True


def test_query_id_from_pg_stat_statements(shop: Database, dbmaint: Invoke) -> None:
    with shop.connect() as conn:
        for sku in ("SKU-1", "SKU-2", "SKU-3"):
            conn.execute("SELECT count(*) FROM orders WHERE sku = %s", (sku,))
    queryid = shop.value(
        "SELECT queryid FROM pg_stat_statements WHERE query LIKE 'SELECT count(*) FROM orders WHERE sku%%'"
    )
    document = explain(dbmaint, shop, "--query-id", str(queryid))
    assert "sku = $1" in document["statement"]
    assert "seq_scan_filter" in kinds(document, ("info", "warning", "critical"))


def test_text_output_shows_the_tree_and_the_fixes(shop: Database, dbmaint: Invoke) -> None:
    result = dbmaint("explain", "--dsn", shop.dsn, CASES["seq_scan_filter"].query)
    assert result.exit_code == 0
    assert "Seq Scan" in result.stdout and "seq_scan_filter" in result.stdout
    assert "CREATE INDEX CONCURRENTLY" in result.stdout
    # The problem names its node by the number the tree shows.
    where = re.search(r"seq_scan_filter at \[(\d+)\] (Seq Scan on \S+)", result.stdout)
    assert where is not None, result.stdout
    assert f"[{where[1]}] {where[2]}" in result.stdout.split("problems")[0]


def test_statement_from_stdin(shop: Database) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dbmaint", "explain", "--dsn", shop.dsn, "--format", "json"],
        input=CASES["healthy_pk_lookup"].query, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert '"Index Scan"' in result.stdout
