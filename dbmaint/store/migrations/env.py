"""Alembic's environment for the state store: always run by dbmaint, on the connection it passes."""

from __future__ import annotations

from alembic import context

from dbmaint.store.schema import metadata
from dbmaint.store.versioning import VERSION_TABLE

connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it, which Alembic's batch mode does for us.
context.configure(connection=connection, target_metadata=metadata, version_table=VERSION_TABLE, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
