"""The one place PREPARE, EXECUTE and DEALLOCATE are composed (explain, the what-if planner, --verify)."""

from __future__ import annotations

from dbmaint.pg.prepared import Prepared


def test_types_are_given_only_when_known_and_arguments_are_literals() -> None:
    typed = Prepared("dbmaint_explain", "SELECT * FROM t WHERE a = $1 AND b > $2", ["int4", "unknown"])
    assert typed.prepare().as_string(None) == (
        'PREPARE "dbmaint_explain" (int4, unknown) AS SELECT * FROM t WHERE a = $1 AND b > $2'
    )
    assert typed.execute(["7", None]).as_string(None) == "EXECUTE \"dbmaint_explain\"('7', NULL)"
    inferred = Prepared("dbmaint_verify", "SELECT 1")
    assert inferred.prepare().as_string(None) == 'PREPARE "dbmaint_verify" AS SELECT 1'
    assert inferred.execute().as_string(None) == 'EXECUTE "dbmaint_verify"'


def test_only_its_own_statement_is_deallocated() -> None:
    # DEALLOCATE ALL would also drop the statements psycopg prepares for itself
    assert Prepared("dbmaint_whatif", "SELECT 1").deallocate().as_string(None) == 'DEALLOCATE "dbmaint_whatif"'


def test_quotes_in_arguments_are_escaped() -> None:
    assert Prepared("p", "SELECT $1").execute(["O'Brien"]).as_string(None) == "EXECUTE \"p\"('O''Brien')"
