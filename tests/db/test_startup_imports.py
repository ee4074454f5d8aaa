"""A command loads only what it uses: measured on real runs of `dbmaint explain` and `dbmaint vacuum`.

Each runs in a fresh interpreter that writes the names of the modules it loaded when it exits.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from tests.db.conftest import Database

PROBE = """
import atexit, json, sys
def dump():
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
atexit.register(dump)
from dbmaint.cli import main
main(sys.argv[2:])
"""


def loaded(tmp_path: Path, *args: str) -> set[str]:
    dump = tmp_path / "modules.json"
    env = {**os.environ, "DBMAINT_STATE_URL": f"sqlite:///{tmp_path / 'state.db'}"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(dump), *args], capture_output=True, text=True, timeout=120, env=env
    )
    assert done.returncode == 0, done.stderr
    return {name.split(".")[0] for name in json.loads(dump.read_text())} | set(json.loads(dump.read_text()))


def test_explain_loads_no_state_store_scheduler_or_advisor(database: Database, tmp_path: Path) -> None:
    for output in ("json", "text"):
        modules = loaded(
            tmp_path,
            "explain",
            "--dsn",
            database.dsn,
            "--format",
            output,
            "SELECT relname FROM pg_class WHERE oid = 1259",
        )
        assert "psycopg" in modules and "dbmaint.explain.runner" in modules
        heavy = {"sqlalchemy", "alembic", "apscheduler", "sentry_sdk", "prometheus_client", "dbmaint.advisor.whatif"}
        assert modules & heavy == set(), output
        # Not the other commands' modules, the catalog records, the job model, pglast's SQL printer or hashlib
        # (a captured plan's signature only).
        others = {"dbmaint.cli.advisor", "dbmaint.cli.service", "dbmaint.cli.capture", "dbmaint.cli.maintenance"}
        assert (
            modules
            & (others | {"dbmaint.pg.facts", "dbmaint.model", "dbmaint.pg.prepared", "pglast.stream", "hashlib"})
            == set()
        ), output
        # rich colours the text on a terminal only: to a pipe (here) neither output loads it
        assert "rich" not in modules, output


def test_vacuum_loads_no_parser_scheduler_or_advisor(database: Database, tmp_path: Path) -> None:
    for output in ("json", "text"):  # text to a pipe (here) is plain lines: no rich either
        modules = loaded(tmp_path, "vacuum", "--dsn", database.dsn, "--format", output)
        assert "dbmaint.maintenance.vacuum_analysis" in modules
        heavy = {"pglast", "apscheduler", "sentry_sdk", "prometheus_client", "rich", "dbmaint.advisor.recommend"}
        assert modules & heavy == set(), output
        assert modules & {"dbmaint.cli.advisor", "dbmaint.cli.explain", "dbmaint.explain.runner"} == set(), output


def test_vacuum_writes_a_current_store_without_sqlalchemy(database: Database, tmp_path: Path) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "INSERT INTO t SELECT g, 'x' FROM generate_series(1, 5000) AS g",
        "DELETE FROM t WHERE id % 2 = 0",
    )
    first = loaded(tmp_path, "vacuum", "--dsn", database.dsn, "--format", "json")
    assert "sqlalchemy" in first  # no store yet: History creates it at the schema's head
    database.execute("DELETE FROM t WHERE id % 3 = 0")
    second = loaded(tmp_path, "vacuum", "--dsn", database.dsn, "--format", "json")
    assert second & {"sqlalchemy", "alembic"} == set()
    assert "dbmaint.store.direct" in second
    with sqlite3.connect(tmp_path / "state.db") as conn:
        runs = conn.execute("SELECT status FROM dbmaint_runs ORDER BY id").fetchall()
        actions = conn.execute("SELECT object, status FROM dbmaint_actions ORDER BY id").fetchall()
    assert runs == [("ok",), ("ok",)]
    assert actions == [("public.t", "done"), ("public.t", "done")]
