"""The state store's schema version, kept by Alembic with the store's own revisions (``migrations/``).

Opening a store at the current version costs one query, and Alembic is imported only when there is
something to upgrade. A store made before the schema was versioned (by ``create_all``, with three
columns added by hand later) is first brought to the baseline in place, then stamped. Two processes
opening an old store at once both start: the one that loses the race finds the store current.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from dbmaint.errors import StateStoreError
from dbmaint.store.schema import metadata

VERSION_TABLE = "dbmaint_schema_version"
HEAD = "0002"  # the newest revision in migrations/versions (a test checks it against Alembic's own head)
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Columns the baseline has that stores from before versioning may lack (they were added by hand).
_PRE_VERSIONING_COLUMNS = {"dbmaint_runs": ["scheduled_for", "pid", "server"]}
# The baseline's tables: a store from before versioning gets these, and later revisions add their own (a
# table of a later revision made here too would make that revision fail on a table already there).
_BASELINE_TABLES = (
    "dbmaint_runs",
    "dbmaint_schedules",
    "dbmaint_services",
    "dbmaint_statements",
    "dbmaint_actions",
    "dbmaint_plans",
    "dbmaint_statement_samples",
)


def current(engine: sa.Engine) -> str | None:
    """The store's revision; None for an empty store or one from before versioning."""
    with engine.connect() as conn:
        return current_in(conn)


def ensure_current(engine: sa.Engine) -> None:
    """Upgrade the store to HEAD if it is behind (or new)."""
    if current(engine) == HEAD:
        return
    try:
        _upgrade(engine)
    except SQLAlchemyError:
        if current(engine) == HEAD:  # another process upgraded it at the same moment
            return
        raise


def _upgrade(engine: sa.Engine) -> None:
    from alembic import command
    from alembic.config import Config
    from alembic.util import CommandError

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        found = current_in(conn)
        if found is None and sa.inspect(conn).has_table("dbmaint_runs"):
            _adopt_unversioned(conn)
            command.stamp(config, "0001")
        try:
            command.upgrade(config, "head")
        except CommandError:  # a revision these migrations do not know: a newer dbmaint wrote the store
            raise StateStoreError(
                f"the state store's schema is at revision {found}, which this dbmaint (schema {HEAD}) does not "
                "know: a newer dbmaint uses it; upgrade dbmaint, or give this one a state store of its own"
            ) from None


def current_in(conn: sa.Connection) -> str | None:
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return None
    version: str | None = conn.execute(
        sa.select(sa.column("version_num")).select_from(sa.table(VERSION_TABLE))
    ).scalar()
    return version


def _adopt_unversioned(conn: sa.Connection) -> None:
    """A store from before versioning, brought to the baseline: the tables it lacks, the columns it lacks."""
    metadata.create_all(conn, tables=[metadata.tables[name] for name in _BASELINE_TABLES])  # only the missing ones
    inspector = sa.inspect(conn)
    for table_name, names in _PRE_VERSIONING_COLUMNS.items():
        present = {column["name"] for column in inspector.get_columns(table_name)}
        table = metadata.tables[table_name]
        for name in names:
            if name not in present:
                kind = table.c[name].type.compile(dialect=conn.dialect)
                conn.execute(sa.text(f"ALTER TABLE {table_name} ADD COLUMN {name} {kind}"))
