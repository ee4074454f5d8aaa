"""The safety rules that hold for every job: standby, bad input, unreachable servers, wrong passwords."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dbmaint.pg.cluster import Cluster, free_port
from tests.db.conftest import PASSWORD, PASSWORD_USER, Database, Invoke
from tests.db.helpers import database_exists, json_output, replayed, run_dbmaint_process, wait_for


@pytest.mark.parametrize("job", ["vacuum", "reindex"])
def test_on_a_standby_no_maintenance_statement_is_issued(
    job: str, database: Database, standby: Cluster, dbmaint: Invoke
) -> None:
    database.execute(
        "CREATE TABLE dirty (id int PRIMARY KEY)",
        "INSERT INTO dirty SELECT generate_series(1, 10000)",
    )
    database.execute("DELETE FROM dirty WHERE id % 2 = 0")
    wait_for(lambda: database_exists(standby, database.name))
    wait_for(replayed(database, standby))
    log_start = standby.logfile.stat().st_size

    document = json_output(dbmaint(job, "--dsn", standby.dsn(database.name), "--format", "json"), exit_code=0)

    assert document["status"] == "skipped" and document["reason"] == "standby"
    assert document["actions"] == []
    time.sleep(0.2)
    with standby.logfile.open() as log:
        log.seek(log_start)
        statements = [line for line in log if "statement:" in line]
    assert statements, "log_statement = all should show dbmaint's read-only queries"
    assert not [s for s in statements if any(w in s.upper() for w in ("VACUUM", "ANALYZE ", "REINDEX", "DROP"))]


def test_standby_skip_is_recorded_in_history(database: Database, standby: Cluster, dbmaint: Invoke) -> None:
    wait_for(lambda: database_exists(standby, database.name))
    dbmaint("vacuum", "--dsn", standby.dsn(database.name))
    (run,) = json_output(dbmaint("history", "--format", "json"), exit_code=0)["runs"]
    assert (run["status"], run["reason"]) == ("skipped", "standby")


def _one_error_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    return lines[0]


def test_unreachable_server_is_one_line_and_exit_3(tmp_path: Path) -> None:
    port = free_port()
    result = run_dbmaint_process("vacuum", "--dsn", f"host=127.0.0.1 port={port} dbname=x connect_timeout=3")
    line = _one_error_line(result, 3)
    assert line.startswith("dbmaint: could not connect to PostgreSQL database 'x'")
    assert "Connection refused" in line or "connection refused" in line.lower()


def test_wrong_password_is_one_line_exit_3_and_never_shows_the_password(database: Database) -> None:
    dsn = f"postgresql://{PASSWORD_USER}:Secret-Wrong@127.0.0.1:{database.cluster.port}/{database.name}"
    result = run_dbmaint_process("vacuum", "--dsn", dsn)
    line = _one_error_line(result, 3)
    assert "password authentication failed" in line
    assert "Secret-Wrong" not in line and "password=***" in line


def test_right_password_connects(database: Database, state_url: str) -> None:
    dsn = database.cluster.dsn(database.name, user=PASSWORD_USER, password=f"'{PASSWORD}'")
    result = run_dbmaint_process("vacuum", "--dsn", dsn, "--format", "json", env={"DBMAINT_STATE_URL": state_url})
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"] == "ok"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("[vacuum]\nwindwo = '2h'\n", "unknown key 'vacuum.windwo' (allowed in [vacuum]:"),
        ("[vacuum]\nwindow = 2h\n", "not valid TOML"),
        ("[vacuum]\nwindow = 'soon'\n", "'vacuum.window': 'soon' is not a duration"),
        ("[reindex]\nmin_size = true\n", "'reindex.min_size': expected a size"),
        ("[safety]\nmax_active_connections = 'many'\n", "'safety.max_active_connections': expected an integer"),
        ("[[databases]]\nname = 'app'\n", "'databases[0]' needs exactly one of 'dsn' or 'dsn_env'"),
        ("[[databases]]\nname = 'app'\ndsn_env = 'DBMAINT_TEST_UNSET'\n", "takes its DSN from $DBMAINT_TEST_UNSET"),
        ("timezone = 'Mars/Olympus'\n", "unknown time zone"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(config)
    result = run_dbmaint_process("--config", str(path), "vacuum")
    line = _one_error_line(result, 2)
    assert line.startswith(f"dbmaint: {path}") or "DBMAINT_TEST_UNSET" in line
    assert message in line


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    result = run_dbmaint_process("vacuum", "--config", "/nonexistent/dbmaint.toml")
    assert "no such configuration file" in _one_error_line(result, 2)


def test_unknown_configured_database_is_a_usage_error(tmp_path: Path, database: Database) -> None:
    path = tmp_path / "c.toml"
    path.write_text(f"[[databases]]\nname = 'app'\ndsn = '{database.dsn}'\n")
    result = run_dbmaint_process("--config", str(path), "--database", "nope", "vacuum")
    assert "no database named 'nope'" in _one_error_line(result, 2)


def test_options_work_before_and_after_the_command(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    config = write_config(f"[[databases]]\nname = 'app'\ndsn = '{database.dsn}'\n")
    before = json_output(dbmaint("--config", config, "vacuum", "--format", "json"), exit_code=0)
    after = json_output(dbmaint("vacuum", "--config", config, "--database", "app", "--format", "json"), exit_code=0)
    assert before["database"] == after["database"] == "app"


def test_dsn_from_the_environment(database: Database, dbmaint: Invoke, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBMAINT_DSN", database.dsn)
    document = json_output(dbmaint("vacuum", "--format", "json"), exit_code=0)
    assert document["database"] == database.name and document["status"] == "ok"
