"""dbmaint check on a real server: the exit status a deploy pipeline gates on."""

from __future__ import annotations

from tests.db.conftest import Database, Invoke
from tests.db.helpers import json_output


def items(document: dict[str, object]) -> dict[str, str]:
    listed = document["items"]
    assert isinstance(listed, list)
    return {item["check"]: item["status"] for item in listed}


def test_a_healthy_schema_passes_its_items(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE EXTENSION hypopg",
        "CREATE TABLE parents (id int PRIMARY KEY)",
        "CREATE TABLE children (id int PRIMARY KEY, parent_id int REFERENCES parents)",
        "CREATE INDEX ON children (parent_id)",
    )
    result = dbmaint("check", "--dsn", database.dsn, "--format", "json")
    document = json_output(result, exit_code=1)
    status = items(document)
    assert status["primary_keys"] == "pass"
    assert status["foreign_keys_indexed"] == "pass"
    assert status["queried_columns_indexed"] == "pass"
    assert status["active_connections"] == "pass"
    assert status["vacuum_scheduled"] == "unknown"  # no run recorded yet
    # The test cluster runs with autovacuum off: that item fails, and so does the command.
    assert status["autovacuum_keeps_up"] == "fail"
    assert result.exit_code == 1 and document["status"] == "fail"


def test_missing_keys_fail_with_the_evidence(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE parents (id int PRIMARY KEY)",
        "CREATE TABLE children (parent_id int REFERENCES parents)",
    )
    dbmaint("vacuum", "--dsn", database.dsn)
    result = dbmaint("check", "--dsn", database.dsn, "--format", "json")
    assert result.exit_code == 1
    document = json_output(result, exit_code=1)
    status = items(document)
    assert status["primary_keys"] == "fail" and status["foreign_keys_indexed"] == "fail"
    assert status["vacuum_scheduled"] == "pass"
    assert status["queried_columns_indexed"] == "unknown"  # no hypopg in this database
    evidence = {item["check"]: item["evidence"] for item in document["items"]}
    assert "public.children (parent_id)" in evidence["foreign_keys_indexed"]
    text = dbmaint("check", "--dsn", database.dsn)
    assert "primary_keys" in text.stdout and text.exit_code == 1


def test_an_ordinary_role_can_run_check_and_advise(database: Database, dbmaint: Invoke) -> None:
    database.execute("CREATE TABLE parents (id int PRIMARY KEY)", "GRANT pg_monitor TO app_user")
    dsn = database.dsn.replace("user=postgres", "user=app_user")
    result = dbmaint("check", "--dsn", dsn, "--format", "json")
    assert result.exit_code in (0, 1), result.stderr
    assert {item["check"] for item in json_output(result, exit_code=1)["items"]} >= {"primary_keys", "slow_queries"}
    assert dbmaint("advise", "--dsn", dsn, "--format", "json").exit_code == 0
