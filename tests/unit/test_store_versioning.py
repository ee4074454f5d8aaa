"""The state store's schema under Alembic: new stores, stores from before versioning, no drift."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from dbmaint.errors import StateStoreError
from dbmaint.store import versioning
from dbmaint.store.history import History
from dbmaint.store.schema import metadata


def test_head_is_alembics_head_and_a_new_store_is_at_it(tmp_path: Path) -> None:
    config = Config()
    config.set_main_option("script_location", str(versioning.MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == versioning.HEAD
    store = History(f"sqlite:///{tmp_path / 'state.db'}")
    assert versioning.current(store.engine) == versioning.HEAD


def test_the_revisions_build_exactly_the_tables_the_code_uses(tmp_path: Path) -> None:
    """A change to schema.py without a revision fails here."""
    store = History(f"sqlite:///{tmp_path / 'state.db'}")
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": versioning.VERSION_TABLE})
        assert compare_metadata(context, metadata) == []


def test_a_store_from_before_versioning_is_brought_up_in_place_and_keeps_its_runs(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # as the first releases made it: no version, no later columns or tables
        conn.execute(
            sa.text(
                "CREATE TABLE dbmaint_runs (id INTEGER PRIMARY KEY, job VARCHAR(32) NOT NULL, "
                "database VARCHAR(128) NOT NULL, status VARCHAR(16) NOT NULL, reason TEXT, "
                "started_at DATETIME NOT NULL, finished_at DATETIME, host VARCHAR(255), warnings TEXT)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO dbmaint_runs (job, database, status, started_at) "
                "VALUES ('vacuum', 'app', 'ok', '2026-01-01 03:00:00.000000')"
            )
        )
    engine.dispose()
    store = History(url)
    assert versioning.current(store.engine) == versioning.HEAD
    (run,) = store.recent_runs()
    assert (run.job, run.database, run.status) == ("vacuum", "app", "ok")
    with store.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("dbmaint_runs")}
        assert {"scheduled_for", "pid", "server"} <= columns
        assert sa.inspect(conn).has_table("dbmaint_services")


def test_opening_a_current_store_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    History(url).close()
    probe = (
        "import json, sys\nfrom dbmaint.store.history import History\n"
        f"History({url!r}).close()\nprint(json.dumps(sorted(m for m in sys.modules if m.startswith('alembic'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout) == []


def test_a_store_a_newer_dbmaint_wrote_is_refused_with_one_line_and_left_as_it_is(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'state.db'}"
    History(url).close()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE dbmaint_schema_version SET version_num = '9999'"))
    with pytest.raises(StateStoreError, match=r"revision 9999, which this dbmaint .* does not know") as raised:
        History(url)
    assert "\n" not in str(raised.value)
    with engine.connect() as conn:
        assert versioning.current_in(conn) == "9999"
