"""The CLI contract: every command has help, options go before or after the command, errors are one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from dbmaint.cli import cli
from dbmaint.cli.base import COMMAND_MODULES
from dbmaint.pg.db import mask_dsn

COMMANDS = sorted(cli.list_commands(click.Context(cli)))


def test_commands_exist() -> None:
    assert {"vacuum", "reindex", "history", "demo"} <= set(COMMANDS)


def test_every_command_is_found_by_its_module_alone() -> None:
    """The map of lazily loaded commands names each command of each family, and no other."""
    assert sorted(COMMAND_MODULES) == COMMANDS
    for name, module in COMMAND_MODULES.items():
        callback = cli.commands[name].callback
        assert callback is not None and callback.__module__ == f"dbmaint.cli.{module}", name
    assert "--dsn" in CliRunner().invoke(cli, ["--help"]).output
    assert all(command in CliRunner().invoke(cli, ["--help"]).output for command in COMMANDS)


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(command: str) -> None:
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0
    assert "--config" in result.output and "--dsn" in result.output


def test_unknown_command_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["vaccum"])
    assert result.exit_code == 2


def test_passwords_are_masked_in_every_form() -> None:
    assert "s3cret" not in mask_dsn("postgresql://u:s3cret@db.example/app")
    assert "s3cret" not in mask_dsn("host=db user=u password=s3cret dbname=app")
    assert "s3cret" not in mask_dsn("host=db sslkey=/k sslpassword=s3cret dbname=app")  # the key's passphrase


def test_a_dsn_libpq_cannot_parse_is_not_quoted_back() -> None:
    """libpq quotes the piece it could not parse, which may be the password: the message leaves it out."""
    from dbmaint.config import Config
    from dbmaint.errors import ConfigError
    from dbmaint.pg.db import Target, connect

    with pytest.raises(ConfigError) as error:
        connect(Target("app", "postgresql://u:s3%zzcret@db.example/app"), Config().safety)
    assert "zz" not in str(error.value) and "invalid DSN for database 'app'" in str(error.value)
    assert sorted(mask_dsn("host=db dbname=app").split()) == ["dbname=app", "host=db"]
    assert mask_dsn("not a dsn = = =") == "<unparseable DSN>"


def test_history_of_one_run_shows_its_header_and_notes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    from click.testing import CliRunner

    from dbmaint.cli import cli
    from dbmaint.model import JobReport
    from dbmaint.store.history import History

    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("DBMAINT_STATE_URL", url)
    monkeypatch.chdir(tmp_path)
    store = History(url)
    report = JobReport(database="app", job="advisor", scheduled_for=datetime(2026, 11, 22, 5, tzinfo=UTC))
    store.start_run(report, host="db1")
    report.warnings = ["unindexed foreign key: public.orders (customer_id) references public.customers"]
    store.finish_run(report.finish())
    store.close()

    result = CliRunner().invoke(cli, ["history", "--run", str(report.run_id)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].startswith(f"run {report.run_id}: advisor on app (db1), started ")
    assert "due 2026-11-22 05:00" in lines[0] and lines[0].endswith(": ok")
    assert lines[1] == "  note: unindexed foreign key: public.orders (customer_id) references public.customers"
    assert lines[2] == "  no actions"
    document = json.loads(CliRunner().invoke(cli, ["history", "--run", str(report.run_id), "--format", "json"]).output)
    assert document["run"]["warnings"] == [report.warnings[0]] and document["actions"] == []


def test_the_console_script_ends_at_once_with_everything_said() -> None:
    """console_main ends the process without the interpreter's teardown: the output must still be complete
    (flushed before the end), the exit status the command's, errors one line."""
    env = {**os.environ, "COLUMNS": "80"}
    help_text = subprocess.run(
        [sys.executable, "-m", "dbmaint", "--help"], capture_output=True, text=True, timeout=60, check=False, env=env
    )
    assert help_text.returncode == 0 and help_text.stderr == ""
    normal_exit = [sys.executable, "-c", "from dbmaint.cli import main; main(['--help'])"]
    expected = subprocess.run(normal_exit, capture_output=True, text=True, timeout=60, check=False, env=env)
    assert help_text.stdout == expected.stdout  # all of it
    assert all(name in help_text.stdout for name in ("vacuum", "explain", "check", "report"))
    unknown = subprocess.run(
        [sys.executable, "-m", "dbmaint", "nosuch"], capture_output=True, text=True, timeout=60, check=False
    )
    assert unknown.returncode == 2 and unknown.stdout == ""
    assert unknown.stderr.count("\n") == 1 and unknown.stderr.startswith("dbmaint: No such command")


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full")
def test_a_full_disk_under_the_output_is_one_line_and_a_failure() -> None:
    for buffering in ({"PYTHONUNBUFFERED": "1"}, {}):
        env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"} | buffering
        with open("/dev/full", "w") as full:
            done = subprocess.run(
                [sys.executable, "-m", "dbmaint", "--help"], stdout=full, stderr=subprocess.PIPE, text=True,
                timeout=60, check=False, env=env,
            )  # fmt: skip
        assert done.returncode == 1, done.stderr
        assert done.stderr == "dbmaint: cannot write the output: No space left on device\n"


def test_tables_off_a_terminal_are_wide_unless_columns_says(monkeypatch: pytest.MonkeyPatch) -> None:
    from dbmaint import report

    monkeypatch.delenv("COLUMNS", raising=False)
    assert report.console().width == report.PIPED_WIDTH  # pytest's stdout is no terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert report.console().width == 100


def test_a_reader_gone_mid_output_is_no_error(tmp_path: Path) -> None:
    """`dbmaint history --format json | head`: the pipe closes under a long output; no "unexpected error"."""
    from dbmaint.model import JobReport
    from dbmaint.store.history import History

    url = f"sqlite:///{tmp_path / 'state.db'}"
    store = History(url)
    for _ in range(30):  # about 150 kB of JSON, more than a pipe holds
        report = JobReport(database="app", job="vacuum")
        store.start_run(report, host="db1")
        report.warnings = ["x" * 5000]
        store.finish_run(report.finish())
    store.close()
    env = {**os.environ, "DBMAINT_STATE_URL": url}
    process = subprocess.Popen(
        [sys.executable, "-m", "dbmaint", "history", "--format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=tmp_path,
    )
    assert process.stdout is not None and process.stderr is not None
    assert process.stdout.read(10)  # what `head -c 10` reads, and then it is gone
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    process.wait(timeout=60)
    assert "unexpected error" not in stderr and "Traceback" not in stderr, stderr
    assert process.returncode in (0, 1)  # 1 when a write failed mid-command, 0 when only the last flush did


@pytest.mark.parametrize("value", ["0", "-1"])
def test_explain_refuses_a_timeout_that_would_be_none(value: str) -> None:
    """statement_timeout 0 is no timeout at all (and -1 a server error): a usage error before connecting."""
    result = CliRunner().invoke(cli, ["explain", "--timeout", value, "SELECT 1"])
    assert result.exit_code == 2 and "--timeout" in result.output


def test_a_statement_that_does_not_parse_says_syntax_error_once() -> None:
    from dbmaint.advisor import workload
    from dbmaint.errors import UsageError

    with pytest.raises(UsageError) as caught:
        workload.from_text("SELEC 1", "-s")
    assert str(caught.value).startswith('-s: syntax error at or near "SELEC"')


def test_history_with_a_dsn_shows_the_runs_of_that_database_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--dsn names the database as the commands record it (its dbname), for reading history as for writing it."""
    from dbmaint.model import JobReport
    from dbmaint.store.history import History

    url = f"sqlite:///{tmp_path / 'state.db'}"
    monkeypatch.setenv("DBMAINT_STATE_URL", url)
    monkeypatch.chdir(tmp_path)
    store = History(url)
    for database in ("app", "other"):
        report = JobReport(database=database, job="vacuum")
        store.start_run(report, host="db1")
        store.finish_run(report.finish())
    store.close()

    result = CliRunner().invoke(cli, ["history", "--dsn", "host=/nowhere dbname=app", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert [run["database"] for run in json.loads(result.output)["runs"]] == ["app"]
    everything = json.loads(CliRunner().invoke(cli, ["history", "--format", "json"]).output)
    assert sorted(run["database"] for run in everything["runs"]) == ["app", "other"]
