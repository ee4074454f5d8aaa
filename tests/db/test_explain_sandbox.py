"""EXPLAIN ANALYZE executes only what is proven harmless: statements that would act outside the data
through functions, SQL given as text, views, operators or triggers are planned without running, and
the slots, sessions, files and statistics they would have touched are unchanged."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmaint.explain import sandbox_policy
from tests.db.conftest import Database, Invoke
from tests.db.helpers import json_output

SCHEMA = (
    "CREATE TABLE t (id int PRIMARY KEY, v text)",
    "INSERT INTO t SELECT g, 'v' || g FROM generate_series(1, 2000) g",
    "ANALYZE t",
    # Terminators, each hidden a different way; the victim is any session named 'victim'.
    """CREATE FUNCTION f_term() RETURNS bool LANGUAGE sql AS $$
         SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'victim' $$""",
    """CREATE FUNCTION f_stable_term() RETURNS bool STABLE LANGUAGE sql AS $$
         SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'victim' $$""",
    """CREATE FUNCTION f_atomic_term() RETURNS bool STABLE LANGUAGE sql BEGIN ATOMIC
         SELECT bool_or(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'victim'; END""",
    """CREATE FUNCTION f_plpgsql_term() RETURNS int STABLE LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim';
         RETURN 1; END $$""",
    "CREATE VIEW v_term AS SELECT id, f_stable_term() AS gone FROM t",
    """CREATE FUNCTION op_term(int, int) RETURNS bool STABLE LANGUAGE sql AS $$
         SELECT bool_or(pg_terminate_backend(pid)) IS NULL
           FROM pg_stat_activity WHERE application_name = 'victim' $$""",
    "CREATE OPERATOR ===> (LEFTARG = int, RIGHTARG = int, FUNCTION = op_term)",
    "CREATE TYPE mood AS ENUM ('calm')",
    """CREATE FUNCTION cast_term(int) RETURNS mood STABLE LANGUAGE sql AS $$
         SELECT 'calm'::mood FROM pg_stat_activity
          WHERE pg_terminate_backend(pid) AND application_name = 'victim' $$""",
    "CREATE CAST (int AS mood) WITH FUNCTION cast_term(int)",
    """CREATE FUNCTION trg_term() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN PERFORM pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'victim';
         RETURN NEW; END $$""",
    "CREATE TABLE audited (id int)",
    "CREATE TRIGGER audited_term BEFORE INSERT ON audited FOR EACH ROW EXECUTE FUNCTION trg_term()",
    # Harmless ones, which must still be executed.
    "CREATE FUNCTION f_plus(int) RETURNS int IMMUTABLE LANGUAGE sql AS $$ SELECT $1 + 1 $$",
    "CREATE FUNCTION f_volatile_harmless() RETURNS float8 LANGUAGE sql AS $$ SELECT random() $$",
)


@pytest.fixture(scope="module")
def db(pg: Any) -> Iterator[Database]:
    name = "explain_sandbox"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    database = Database(pg, name)
    database.execute(*SCHEMA)
    yield database
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def victim(db: Database) -> Iterator[Callable[[], bool]]:
    """A session another statement might terminate; the callable says whether it is still alive."""
    conn = psycopg.connect(db.dsn, autocommit=True, application_name="victim")

    def alive() -> bool:
        try:
            conn.execute("SELECT 1")
            return True
        except psycopg.OperationalError:
            return False

    yield alive
    conn.close()


def explain(dbmaint: Invoke, db: Database, statement: str, *args: str) -> dict[str, Any]:
    document = json_output(dbmaint("explain", "--dsn", db.dsn, "--format", "json", statement, *args), exit_code=0)
    assert isinstance(document, dict)
    return document


def assert_planned_not_run(document: dict[str, Any], *reason: str) -> None:
    assert document["analyzed"] is False, document["notes"]
    because = document["not_executed_because"]
    assert because and all(r in because for r in reason), because
    assert any(n.startswith("not executed: ") for n in document["notes"])
    assert "Actual Rows" not in str(document["plan"])


TERMINATING = [
    ("SELECT f_term()", "f_term() is VOLATILE"),
    ("SELECT f_stable_term()", "pg_terminate_backend()"),
    ("SELECT f_atomic_term()", "pg_terminate_backend()"),
    ("SELECT f_plpgsql_term()", "pg_terminate_backend()"),
    ("SELECT * FROM v_term WHERE id < 5", "pg_terminate_backend()"),
    ("SELECT 1 ===> 2", "pg_terminate_backend()"),
    ("SELECT 1::mood", "cast_term() calls pg_terminate_backend()"),
    (
        "SELECT query_to_xml('SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE application_name = ''victim''', true, true, '')",
        "query_to_xml() runs SQL given as text",
    ),
    ("SELECT ts_stat('SELECT to_tsvector(v) FROM t WHERE pg_terminate_backend(0)')", "ts_stat()"),
]


@pytest.mark.parametrize(("statement", "reason"), TERMINATING)
def test_a_statement_that_would_terminate_a_session_is_not_run(
    db: Database, dbmaint: Invoke, victim: Callable[[], bool], statement: str, reason: str
) -> None:
    assert_planned_not_run(explain(dbmaint, db, statement), reason)
    assert victim()


def test_a_write_whose_trigger_terminates_a_session_is_not_run(
    db: Database, dbmaint: Invoke, victim: Callable[[], bool]
) -> None:
    document = explain(dbmaint, db, "INSERT INTO audited VALUES (1)", "--analyze-writes")
    assert_planned_not_run(document, "a trigger of public.audited calls trg_term()")
    assert victim()


def test_copy_to_program_inside_a_function_creates_no_file(db: Database, dbmaint: Invoke) -> None:
    target = Path("/tmp") / f"dbmaint_sandbox_{uuid.uuid4().hex}"
    for volatility in ("VOLATILE", "STABLE"):
        name = f"f_copy_{volatility.lower()}"
        db.execute(
            f"""CREATE FUNCTION {name}() RETURNS int {volatility} LANGUAGE plpgsql AS $$
                BEGIN COPY t TO PROGRAM 'touch {target}'; RETURN 1; END $$"""
        )
        document = explain(dbmaint, db, f"SELECT {name}()")
        assert_planned_not_run(document, name)
    assert not target.exists()


def test_a_physical_slot_is_not_advanced(db: Database, dbmaint: Invoke) -> None:
    slot = f"phys_{uuid.uuid4().hex[:8]}"
    db.execute(f"SELECT pg_create_physical_replication_slot('{slot}', true)")
    try:
        db.execute("CREATE TABLE wal_maker AS SELECT g FROM generate_series(1, 10000) g", "DROP TABLE wal_maker")
        before = db.value("SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        document = explain(dbmaint, db, f"SELECT pg_replication_slot_advance('{slot}', pg_current_wal_lsn())")
        assert_planned_not_run(document, "pg_replication_slot_advance()")
        after = db.value("SELECT restart_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,))
        assert after == before
    finally:
        db.execute(f"SELECT pg_drop_replication_slot('{slot}')")


def test_statistics_are_not_reset_and_settings_not_changed(db: Database, dbmaint: Invoke) -> None:
    reset_before = db.value("SELECT stats_reset FROM pg_stat_slru WHERE name = 'Xact'")
    for statement, reason in [
        ("SELECT pg_stat_reset_slru(NULL)", "pg_stat_reset_slru()"),
        ("SELECT pg_log_backend_memory_contexts(pg_backend_pid())", "pg_log_backend_memory_contexts()"),
        ("SELECT set_config('work_mem', '77MB', false)", "set_config()"),
    ]:
        assert_planned_not_run(explain(dbmaint, db, statement), reason)
    # A call the parser sees on the deny-list is refused outright, before any planning.
    refused = dbmaint("explain", "--dsn", db.dsn, "SELECT pg_reload_conf()")
    assert refused.exit_code == 2
    assert "refused: calls pg_reload_conf()" in refused.stderr
    assert db.value("SELECT stats_reset FROM pg_stat_slru WHERE name = 'Xact'") == reset_before


def test_sql_built_at_run_time_is_never_run(db: Database, dbmaint: Invoke) -> None:
    db.execute(
        """CREATE FUNCTION f_dynamic() RETURNS int STABLE LANGUAGE plpgsql AS $$
           BEGIN EXECUTE 'CREATE TABLE leaked_by_explain ()'; RETURN 1; END $$"""
    )
    assert_planned_not_run(explain(dbmaint, db, "SELECT f_dynamic()"), "f_dynamic() runs EXECUTE of a string")
    assert db.value("SELECT to_regclass('leaked_by_explain')") is None


def test_dblink_inside_a_function_is_not_run(db: Database, dbmaint: Invoke) -> None:
    db.execute(
        "CREATE EXTENSION IF NOT EXISTS dblink",
        f"""CREATE FUNCTION f_remote() RETURNS text STABLE LANGUAGE sql AS $$
            SELECT dblink_exec('{db.dsn}', 'CREATE TABLE leaked_by_dblink ()') $$""",
    )
    assert_planned_not_run(explain(dbmaint, db, "SELECT f_remote()"), "dblink_exec()")
    assert db.value("SELECT to_regclass('leaked_by_dblink')") is None


def test_harmless_statements_are_still_executed(db: Database, dbmaint: Invoke) -> None:
    for statement in (
        "SELECT lower(v), count(*), now(), date_trunc('day', now()) FROM t WHERE id < 100 GROUP BY 1",
        "SELECT f_plus(id) FROM t WHERE id = 5",
        "SELECT jsonb_build_object('id', id) -> 'id' FROM t WHERE id BETWEEN 1 AND 9 AND v LIKE 'v%'",
    ):
        document = explain(dbmaint, db, statement)
        assert document["analyzed"] is True, document["notes"]
        assert document["not_executed_because"] is None
        assert "Actual Rows" in str(document["plan"])


def test_trust_functions_runs_a_volatile_user_function(db: Database, dbmaint: Invoke) -> None:
    planned = explain(dbmaint, db, "SELECT f_volatile_harmless()")
    assert_planned_not_run(planned, "f_volatile_harmless() is VOLATILE")
    trusted = explain(dbmaint, db, "SELECT f_volatile_harmless()", "--trust-functions")
    assert trusted["analyzed"] is True
    # Built-ins that act on the server stay out even then.
    assert_planned_not_run(explain(dbmaint, db, "SELECT f_stable_term()", "--trust-functions"), "pg_terminate_backend")


def test_the_configured_role_executes_the_statement(
    db: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    db.execute(
        "DROP ROLE IF EXISTS explain_reader",
        "CREATE ROLE explain_reader NOLOGIN",
        "CREATE TABLE secret (id int)",
        "GRANT SELECT ON t TO explain_reader",
    )
    config = write_config(f"[[databases]]\nname = 'app'\ndsn = '{db.dsn}'\n[explain]\nrole = 'explain_reader'\n")
    allowed = json_output(
        dbmaint("explain", "--config", config, "--format", "json", "SELECT count(*) FROM t"), exit_code=0
    )
    assert allowed["analyzed"] is True
    refused = dbmaint("explain", "--config", config, "SELECT count(*) FROM secret")
    assert refused.exit_code == 2
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]
    assert "permission denied for table secret" in refused.stderr
    missing = write_config(f"[[databases]]\nname = 'app'\ndsn = '{db.dsn}'\n[explain]\nrole = 'no_such_role'\n")
    result = dbmaint("explain", "--config", missing, "SELECT 1")
    assert result.exit_code == 2
    assert "cannot run the statement as role 'no_such_role'" in result.stderr


def test_every_volatile_builtin_is_classified_on_purpose(db: Database) -> None:
    """The allow-list names real functions, and whatever volatile built-in it does not name is refused."""
    with db.connect() as conn:
        rows = conn.execute(
            "SELECT DISTINCT p.proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname = 'pg_catalog' AND p.provolatile = 'v'"
        ).fetchall()
    volatile = {name for (name,) in rows}
    assert volatile | {"unique_key_recheck"} >= sandbox_policy.VOLATILE_BUILTINS_ALLOWED
    dangerous = {
        "pg_terminate_backend", "pg_cancel_backend", "pg_replication_slot_advance", "pg_stat_reset_slru",
        "pg_log_backend_memory_contexts", "pg_reload_conf", "pg_switch_wal", "lo_import", "lo_export",
        "pg_read_file", "pg_ls_dir", "pg_advisory_lock", "pg_notify", "pg_drop_replication_slot", "setval",
        "set_config", "query_to_xml", "cursor_to_xml", "ts_stat", "pg_sleep", "pg_promote",
    }  # fmt: skip
    assert dangerous <= volatile | sandbox_policy.BUILTINS_DENIED
    for name in volatile:
        function = sandbox_policy.Function(0, "pg_catalog", name, "v", False, "internal")
        refused = sandbox_policy.judge(function) is not None
        assert refused == (
            name not in sandbox_policy.VOLATILE_BUILTINS_ALLOWED or name in sandbox_policy.BUILTINS_DENIED
        ), name
        if name in dangerous:
            assert refused, name
