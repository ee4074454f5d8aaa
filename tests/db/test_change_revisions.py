"""`dbmaint advise --write-migration --drop-unused / --autovacuum-settings` on a real server: each change its
own revision, applied and reverted with Alembic; the drops rebuilt from their exact definitions."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from alembic import command

from tests.db.conftest import Database, Invoke
from tests.db.helpers import alembic_config, json_output

INDEXES_OF_T = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 't' ORDER BY indexname"


def indexes(database: Database) -> dict[str, str]:
    with database.connect() as conn:
        return {name: definition for name, definition in conn.execute(INDEXES_OF_T).fetchall()}


def test_duplicate_indexes_dropped_by_a_revision_and_rebuilt_exactly_by_its_downgrade(
    database: Database, dbmaint: Invoke, migrations: Path
) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b text)",
        "CREATE INDEX t_a ON t (a)",
        "CREATE INDEX t_a_again ON t (a)",
        """CREATE INDEX "t: lower b" ON t (lower(b)) WHERE b <> ':x'""",
        """CREATE INDEX "t: lower b, twice" ON t (lower(b)) WHERE b <> ':x'""",
    )
    before = indexes(database)
    result = dbmaint(
        "advise", "--dsn", database.dsn, "--no-stats", "--write-migration", "--drop-unused",
        "--versions-dir", str(migrations / "versions"), "--format", "json",
    )  # fmt: skip
    document = json_output(result, exit_code=0)
    [path] = document["migrations"]  # no index to add: the drops alone
    assert "drop_indexes" in path
    source = Path(path).read_text()
    assert "DROP INDEX CONCURRENTLY" in source and "t_a_again" in source and "t: lower b, twice" in source

    config = alembic_config(migrations, database.dsn)
    command.upgrade(config, "head")
    after = indexes(database)
    assert set(before) - set(after) == {"t_a_again", "t: lower b, twice"}  # one of each pair kept
    assert "t_pkey" in after
    command.downgrade(config, "base")
    assert indexes(database) == before  # the same definitions, built again
    command.upgrade(config, "head")  # and again: a re-run is clean
    assert set(indexes(database)) == set(after)


def test_autovacuum_settings_set_by_a_revision_and_reset_by_its_downgrade(
    database: Database, dbmaint: Invoke, migrations: Path, write_config: Callable[[str], str]
) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text)",
        "INSERT INTO t SELECT i, 'x' FROM generate_series(1, 20000) AS i",
        "ALTER TABLE t SET (autovacuum_vacuum_threshold = 0)",
        "VACUUM t",
    )
    with database.connect() as conn:
        conn.execute("DELETE FROM t WHERE id <= 1000")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(5)  # the churn of a big table, as tests/db/test_check_autovacuum_settings.py makes it
    observed = float(database.value("SELECT extract(epoch FROM now() - last_vacuum) FROM pg_stat_user_tables"))
    with database.connect() as conn:
        conn.execute(
            "UPDATE pg_class SET reltuples = %s WHERE relname = 't'", (1000 * 86_400 / (observed - 0.2) / 0.2,)
        )
    config = write_config('[check]\nautovacuum_min_observed = "1s"\n')
    result = dbmaint(
        "advise", "--dsn", database.dsn, "--config", config, "--no-stats", "--write-migration",
        "--autovacuum-settings", "--versions-dir", str(migrations / "versions"), "--format", "json",
    )  # fmt: skip
    [path] = json_output(result, exit_code=0)["migrations"]
    assert "autovacuum_settings_of_t" in path

    reloptions = "SELECT reloptions FROM pg_class WHERE relname = 't'"
    config_alembic = alembic_config(migrations, database.dsn)
    command.upgrade(config_alembic, "head")
    options = database.value(reloptions)
    assert "autovacuum_vacuum_threshold=0" in options
    assert any(o.startswith("autovacuum_vacuum_scale_factor=0.0") for o in options), options
    command.downgrade(config_alembic, "base")
    assert database.value(reloptions) == ["autovacuum_vacuum_threshold=0"]  # as it was


def test_the_new_flags_need_write_migration(database: Database, dbmaint: Invoke) -> None:
    result = dbmaint("advise", "--dsn", database.dsn, "--drop-unused")
    assert result.exit_code == 2 and "go with --write-migration" in result.stderr
