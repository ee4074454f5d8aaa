"""Index revisions against a real server: upgrade, downgrade, re-runs, interrupted builds, the alembic CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from psycopg import sql as psycopg_sql

from dbmaint.advisor.revision import write_revision
from dbmaint.model import IndexRecommendation
from tests.db.conftest import Database
from tests.db.helpers import LockHolder, alembic_config

ROOT = Path(__file__).resolve().parents[2]

ORDERS = """
CREATE TABLE "Orders" (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "customerId" int NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    total numeric NOT NULL,
    status text NOT NULL,
    note text
);
INSERT INTO "Orders" ("customerId", created_at, total, status, note)
SELECT i % 100, now() - i * interval '1 minute', i, CASE WHEN i % 10 = 0 THEN 'pending' ELSE 'done' END, 'retry ' || i
FROM generate_series(1, 5000) AS i;
"""
COMPOSITE = IndexRecommendation(
    schema="public",
    table_name="Orders",
    columns=("customerId", "created_at"),
    include=("total",),
    directions=("", "DESC"),
    name="ix_Orders_customerId_created_at",
    definition="",
    reason="Orders by customer, newest first.",
)
# The predicate keeps what SQLAlchemy could mangle: a % (paramstyle), a ':word' (bind parameters), a cast.
PARTIAL = IndexRecommendation(
    schema="public",
    table_name="Orders",
    columns=("created_at",),
    where="status = 'pending' AND note LIKE 'retry%' AND note <> ':none' AND total::int > 0",
    name="ix_orders_pending",
    definition="",
    reason="The pending queue.",
)


# Two levels: January a plain partition, February partitioned again by kind.
EVENTS = """
CREATE TABLE "Events" (id bigint, user_id int NOT NULL, kind text NOT NULL, at timestamptz NOT NULL)
    PARTITION BY RANGE (at);
CREATE TABLE events_2026_01 PARTITION OF "Events" FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE events_2026_02 PARTITION OF "Events" FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')
    PARTITION BY LIST (kind);
CREATE TABLE events_2026_02_click PARTITION OF events_2026_02 FOR VALUES IN ('click');
CREATE TABLE events_2026_02_other PARTITION OF events_2026_02 DEFAULT;
INSERT INTO "Events" SELECT g, g % 100, CASE WHEN g % 3 = 0 THEN 'click' ELSE 'view' END,
    timestamptz '2026-01-01' + g * interval '1 minute' FROM generate_series(1, 80000) AS g;
"""
PARTITIONED = IndexRecommendation(
    schema="public",
    table_name="Events",
    columns=("user_id", "at"),
    directions=("", "DESC"),
    where="kind <> ':none'",
    partitioned=True,
    name="Events_user_id_at_idx",
    definition="",
    reason="A user's latest events.",
)
LEAVES = ("events_2026_01", "events_2026_02_click", "events_2026_02_other")


def partition_indexes(database: Database) -> list[tuple[str, bool, int]]:
    """(index, valid, its partition level) of every index in the tree of "Events_user_id_at_idx"."""
    rows = database.value(
        "SELECT coalesce(array_agg(ARRAY[c.relname, i.indisvalid::text, t.level::text] ORDER BY c.relname), '{}')"
        " FROM pg_partition_tree('public.\"Events_user_id_at_idx\"'::regclass) t"
        " JOIN pg_class c ON c.oid = t.relid JOIN pg_index i ON i.indexrelid = t.relid"
    )
    return [(name, valid == "true", int(level)) for name, valid, level in rows]


@pytest.fixture
def orders(database: Database) -> Database:
    database.execute(ORDERS)
    return database


def index(database: Database, name: str) -> tuple[int, bool, str] | None:
    """(oid, valid, definition) of the index in schema public, None if there is none."""
    row = database.value(
        "SELECT ARRAY[i.indexrelid::text, i.indisvalid::text, pg_get_indexdef(i.indexrelid)]"
        " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relname = %s",
        (name,),
    )
    return None if row is None else (int(row[0]), row[1] == "true", row[2])


def valid_definition(database: Database, name: str) -> str:
    found = index(database, name)
    assert found is not None, f"no index {name}"
    assert found[1], f"index {name} is INVALID"
    return found[2]


def test_upgrade_downgrade_upgrade(orders: Database, migrations: Path) -> None:
    revision = write_revision([COMPOSITE, PARTIAL], migrations / "versions").name.split("_")[1]
    config = alembic_config(migrations, orders.dsn)

    command.upgrade(config, "head")
    assert valid_definition(orders, COMPOSITE.name) == (
        'CREATE INDEX "ix_Orders_customerId_created_at" ON public."Orders" USING btree ("customerId", created_at DESC)'
        " INCLUDE (total)"
    )
    assert valid_definition(orders, PARTIAL.name) == (
        "CREATE INDEX ix_orders_pending ON public.\"Orders\" USING btree (created_at) WHERE ((status = 'pending'::text)"
        " AND (note ~~ 'retry%'::text) AND (note <> ':none'::text) AND ((total)::integer > 0))"
    )
    assert orders.value("SELECT version_num FROM alembic_version") == revision

    command.downgrade(config, "base")
    assert index(orders, COMPOSITE.name) is None
    assert index(orders, PARTIAL.name) is None
    assert orders.value("SELECT count(*) FROM alembic_version") == 0

    command.upgrade(config, "head")
    valid_definition(orders, COMPOSITE.name)
    valid_definition(orders, PARTIAL.name)


def test_valid_index_of_that_name_is_left_alone(orders: Database, migrations: Path) -> None:
    """A re-run (say the version row was lost, or the DBA built the index by hand first) changes nothing."""
    orders.execute('CREATE INDEX "ix_Orders_customerId_created_at" ON "Orders" ("customerId", created_at)')
    before = index(orders, COMPOSITE.name)
    write_revision([COMPOSITE, PARTIAL], migrations / "versions")
    config = alembic_config(migrations, orders.dsn)

    command.upgrade(config, "head")
    assert index(orders, COMPOSITE.name) == before
    partial = index(orders, PARTIAL.name)

    command.stamp(config, "base")
    command.upgrade(config, "head")
    assert index(orders, COMPOSITE.name) == before
    assert index(orders, PARTIAL.name) == partial


def test_invalid_index_from_a_failed_build_is_dropped_and_built_again(orders: Database, migrations: Path) -> None:
    # A unique build over duplicate customers fails and leaves an INVALID index with the intended name.
    with pytest.raises(Exception, match="could not create unique index"):
        orders.execute('CREATE UNIQUE INDEX CONCURRENTLY "ix_Orders_customerId_created_at" ON "Orders" ("customerId")')
    leftover = index(orders, COMPOSITE.name)
    assert leftover is not None and not leftover[1]
    write_revision([COMPOSITE], migrations / "versions")

    command.upgrade(alembic_config(migrations, orders.dsn), "head")
    rebuilt = index(orders, COMPOSITE.name)
    assert rebuilt is not None and rebuilt[0] != leftover[0]
    assert valid_definition(orders, COMPOSITE.name).endswith('("customerId", created_at DESC) INCLUDE (total)')


@pytest.mark.slow
def test_build_cut_short_by_lock_timeout_is_redone(orders: Database, migrations: Path) -> None:
    """An open write transaction on the table: the build gives up after lock_timeout instead of waiting for it,
    leaving an INVALID index; the next deploy drops it and builds the index."""
    write_revision([COMPOSITE, PARTIAL], migrations / "versions")
    config = alembic_config(migrations, orders.dsn)
    writer = LockHolder(orders.dsn, 'INSERT INTO "Orders" ("customerId", total, status) VALUES (1, 1, \'done\')')
    try:
        started = time.monotonic()
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            command.upgrade(config, "head")
        assert time.monotonic() - started < 30
        leftover = index(orders, COMPOSITE.name)
        assert leftover is not None and not leftover[1]
        assert index(orders, PARTIAL.name) is None
    finally:
        writer.release()
    assert orders.value("SELECT count(*) FROM alembic_version") == 0  # not recorded as done

    command.upgrade(config, "head")
    valid_definition(orders, COMPOSITE.name)
    valid_definition(orders, PARTIAL.name)


def test_alembic_command_line_with_dsn_from_the_environment(orders: Database, migrations: Path, tmp_path: Path) -> None:
    """`alembic upgrade head` as a deploy runs it: pyproject.toml's [tool.alembic], $DBMAINT_DSN, and no dbmaint."""
    revision = write_revision([COMPOSITE, PARTIAL], migrations / "versions").name.split("_")[1]
    (tmp_path / "pyproject.toml").write_text('[tool.alembic]\nscript_location = "%(here)s/migrations"\n')
    # A dbmaint that cannot be imported: env.py and the revision must do without it.
    (tmp_path / "no_dbmaint" / "dbmaint").mkdir(parents=True)
    (tmp_path / "no_dbmaint" / "dbmaint" / "__init__.py").write_text("raise ImportError('dbmaint is not installed')\n")
    environment = {**os.environ, "DBMAINT_DSN": orders.dsn, "PYTHONPATH": str(tmp_path / "no_dbmaint")}
    alembic = Path(sys.executable).parent / "alembic"

    def run(*args: str) -> str:
        result = subprocess.run(
            [alembic, *args], cwd=tmp_path, env=environment, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout + result.stderr

    run("upgrade", "head")
    valid_definition(orders, COMPOSITE.name)
    valid_definition(orders, PARTIAL.name)
    assert revision in run("current")


LONG = "t" * 63  # a table name of the full 63 bytes
WIDE = "é" * 31  # 62 bytes of UTF-8: a cut by characters would overrun


def test_advised_names_never_collide_with_a_relation_or_each_other(
    database: Database, migrations: Path, tmp_path: Path
) -> None:
    """63-byte table names: `table_col_idx` cut to 63 bytes would equal the table's name, and two indexes
    of one table would share a name; a view and an index already hold the next obvious names."""
    from click.testing import CliRunner

    from dbmaint.cli import cli

    statements = []
    for table in (LONG, WIDE):
        name = psycopg_sql.Identifier(table)
        database.execute(
            *(
                psycopg_sql.SQL(text).format(name).as_string(None)
                for text in (
                    "CREATE TABLE {} (a int, b int, c int)",
                    "INSERT INTO {} SELECT g, g % 5000, g % 7000 FROM generate_series(1, 50000) g",
                    "ANALYZE {}",
                )
            )
        )
        statements += [
            psycopg_sql.SQL("SELECT * FROM {} WHERE {} = 42")
            .format(name, psycopg_sql.Identifier(column))
            .as_string(None)
            for column in ("a", "b")
        ]
    database.execute(
        "CREATE EXTENSION hypopg",
        "CREATE TABLE small (a int, b int)",
        "INSERT INTO small SELECT g, g FROM generate_series(1, 50000) g",
        "ANALYZE small",
        "CREATE VIEW small_a_idx AS SELECT 1",  # the obvious name of the index on small (a) is taken
    )
    statements.append("SELECT * FROM small WHERE a = 42")
    config = tmp_path / "config.toml"
    config.write_text('[advisor]\nmin_total_time = "0s"\nstorage_budget = "1GB"\n')
    args = ["advise", "--config", str(config), "--dsn", database.dsn, "--write-migration", "--format", "json"]
    args += ["--versions-dir", str(migrations / "versions")]
    for statement in statements:
        args += ["-s", statement]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    import json

    names = [r["name"] for r in json.loads(result.stdout)["recommendations"]]
    assert len(names) == 5, names
    assert len(set(names)) == len(names)
    assert all(len(n.encode()) <= 63 for n in names)
    assert not {LONG, WIDE, "small", "small_a_idx"} & set(names)

    config_alembic = alembic_config(migrations, database.dsn)
    command.upgrade(config_alembic, "head")
    assert all(index(database, n) for n in names)
    command.downgrade(config_alembic, "base")
    assert not any(index(database, n) for n in names)
    for relation in (LONG, WIDE, "small", "small_a_idx"):  # nothing but the indexes was dropped
        assert database.value("SELECT to_regclass(%s)", (f'"{relation}"',)) is not None
    command.upgrade(config_alembic, "head")
    assert all(index(database, n)[1] for n in names)  # type: ignore[index]


def test_a_name_taken_since_the_revision_was_written_stops_it_before_any_build(
    orders: Database, migrations: Path
) -> None:
    write_revision([COMPOSITE, PARTIAL], migrations / "versions")
    orders.execute("CREATE SEQUENCE ix_orders_pending")  # the second index's name, taken after review
    config = alembic_config(migrations, orders.dsn)
    with pytest.raises(RuntimeError, match="already exists and is not the index this revision builds"):
        command.upgrade(config, "head")
    assert index(orders, COMPOSITE.name) is None  # the first one was not built either
    command.downgrade(config, "base")  # nothing to undo, and the sequence is left alone
    assert orders.value("SELECT to_regclass('ix_orders_pending')") is not None


def test_a_partitioned_table_gets_its_index_partition_by_partition(database: Database, migrations: Path) -> None:
    """Built on each partition concurrently, ON ONLY each parent, attached deepest first; down and up again."""
    database.execute(EVENTS)
    write_revision([PARTITIONED], migrations / "versions")
    config = alembic_config(migrations, database.dsn)

    command.upgrade(config, "head")
    expected = [
        ("Events_user_id_at_idx", True, 0),
        ("events_2026_01_user_id_at_idx", True, 1),
        ("events_2026_02_click_user_id_at_idx", True, 2),
        ("events_2026_02_other_user_id_at_idx", True, 2),
        ("events_2026_02_user_id_at_idx", True, 1),
    ]
    assert partition_indexes(database) == expected
    assert valid_definition(database, PARTITIONED.name) == (
        'CREATE INDEX "Events_user_id_at_idx" ON ONLY public."Events" USING btree (user_id, at DESC)'
        " WHERE (kind <> ':none'::text)"
    )

    command.downgrade(config, "base")
    assert database.value("SELECT count(*) FROM pg_indexes WHERE tablename = ANY (%s)", (list(LEAVES),)) == 0
    assert index(database, PARTITIONED.name) is None

    command.upgrade(config, "head")
    assert partition_indexes(database) == expected


def test_an_interrupted_partitioned_build_is_finished(database: Database, migrations: Path) -> None:
    """What an interrupted run leaves (a parent's ON ONLY index, a partition's INVALID one) is kept or redone."""
    database.execute(EVENTS)
    database.execute('CREATE INDEX "Events_user_id_at_idx" ON ONLY "Events" (user_id, at DESC) WHERE kind <> \':none\'')
    with pytest.raises(Exception, match="could not create unique index"):
        database.execute("CREATE UNIQUE INDEX CONCURRENTLY events_2026_01_user_id_at_idx ON events_2026_01 (user_id)")
    leftover = index(database, "events_2026_01_user_id_at_idx")
    assert leftover is not None and not leftover[1]
    write_revision([PARTITIONED], migrations / "versions")

    command.upgrade(alembic_config(migrations, database.dsn), "head")
    assert all(valid for _, valid, _ in partition_indexes(database))
    assert len(partition_indexes(database)) == 5
    rebuilt = index(database, "events_2026_01_user_id_at_idx")
    assert rebuilt is not None and rebuilt[0] != leftover[0]
