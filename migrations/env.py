"""Alembic environment for the application database dbmaint maintains.

The database URL comes from the same places dbmaint reads: ``-x dsn=...``, then ``$DBMAINT_DSN``, then
the dbmaint configuration (``-x database=NAME`` picks one of several), so ``alembic upgrade head`` works
in a deploy unchanged. Revisions written by ``dbmaint advise --write-migration`` create indexes
CONCURRENTLY inside autocommit blocks.

With the DSN given (``-x dsn`` or ``$DBMAINT_DSN``) this file and its revisions need only alembic,
SQLAlchemy and psycopg: dbmaint itself is imported only to read its configuration.
"""

from __future__ import annotations

import os

import psycopg
import sqlalchemy as sa
from alembic import context

APPLICATION_NAME = "dbmaint migrations"  # as pg_stat_activity shows the session


def database_dsn() -> str:
    arguments = context.get_x_argument(as_dictionary=True)
    if arguments.get("dsn"):
        return arguments["dsn"]
    if os.environ.get("DBMAINT_DSN"):
        return os.environ["DBMAINT_DSN"]
    # Imported here so that a deploy which passes the DSN does not need dbmaint installed.
    from dbmaint.config import load_config
    from dbmaint.pg.db import resolve_targets

    config = load_config(arguments.get("config"))
    targets = resolve_targets(config, arguments.get("database"), None)
    if len(targets) > 1:
        names = ", ".join(t.name for t in targets)
        raise SystemExit(f"alembic: several databases are configured ({names}); choose one with -x database=NAME")
    return targets[0].dsn


def run_migrations_offline() -> None:
    # paramstyle "named": with psycopg's "pyformat" the script would show every % doubled (LIKE 'a%%').
    context.configure(
        url="postgresql+psycopg://",
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    dsn = database_dsn()
    engine = sa.create_engine(
        "postgresql+psycopg://",
        creator=lambda: psycopg.connect(dsn, application_name=APPLICATION_NAME),
        poolclass=sa.pool.NullPool,
    )
    with engine.connect() as connection:
        # One transaction per revision: a revision's autocommit block then commits only its own work.
        context.configure(connection=connection, transaction_per_migration=True)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
