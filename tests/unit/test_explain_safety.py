"""What dbmaint explain may run, and how: classified with PostgreSQL's parser."""

from __future__ import annotations

import pytest

from dbmaint.explain.safety import SyntaxProblem, classify


@pytest.mark.parametrize(
    "query",
    ["SELECT * FROM t WHERE id = $1", "WITH x AS (SELECT 1) SELECT * FROM x", "VALUES (1)", "TABLE t"],
)
def test_queries_are_read(query: str) -> None:
    assert classify(query).kind == "read"


@pytest.mark.parametrize(
    ("query", "what"),
    [
        ("INSERT INTO t VALUES (1)", "INSERT"),
        ("UPDATE t SET a = 1 WHERE id = 2", "UPDATE"),
        ("DELETE FROM t WHERE id = 2", "DELETE"),
        ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE", "MERGE"),
        ("WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone", "SELECT"),
        ("SELECT * FROM t WHERE id = 1 FOR UPDATE", "locks rows"),
    ],
)
def test_writes_are_recognised(query: str, what: str) -> None:
    verdict = classify(query)
    assert verdict.kind == "write" and what in verdict.reason


def test_inserts_say_that_sequences_advance() -> None:
    assert any("advances the table's sequences" in note for note in classify("INSERT INTO t VALUES (1)").notes)
    assert any("nextval" in note for note in classify("SELECT nextval('s')").notes)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("DROP TABLE t", "cannot be explained safely"),
        ("CREATE INDEX ON t (a)", "cannot be explained safely"),
        ("COPY t TO PROGRAM 'rm -rf /'", "cannot be explained safely"),
        ("VACUUM t", "cannot be explained safely"),
        ("CALL p()", "cannot be explained safely"),
        ("DO $$ BEGIN END $$", "cannot be explained safely"),
        ("SELECT 1; SELECT 2", "explain one statement at a time"),
        ("SELECT * INTO copy FROM t", "SELECT INTO creates a table"),
        ("CREATE TABLE c AS SELECT 1", "creates a table"),
        ("SELECT dblink_exec('host=x', 'DELETE FROM t')", "dblink_exec()"),
        ("SELECT pg_advisory_lock(1)", "pg_advisory_lock()"),
        ("SELECT lo_export(1, '/tmp/x')", "lo_export()"),
        ("SELECT pg_terminate_backend(42)", "pg_terminate_backend()"),
    ],
)
def test_refused_with_the_reason(query: str, reason: str) -> None:
    verdict = classify(query)
    assert verdict.kind == "refused" and reason in verdict.reason


def test_an_explain_given_by_the_user_is_unwrapped() -> None:
    verdict = classify("EXPLAIN ANALYZE SELECT * FROM t WHERE a = 1;")
    assert verdict.kind == "read" and verdict.statement == "SELECT * FROM t WHERE a = 1"
    assert classify("EXPLAIN (ANALYZE) DELETE FROM t").kind == "write"


def test_syntax_errors_are_one_clear_problem() -> None:
    with pytest.raises(SyntaxProblem, match="syntax error"):
        classify("SELEC * FROM t")
