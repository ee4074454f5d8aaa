"""The state store's own schema versions (Alembic): ``dbmaint.store.versioning`` applies them on open."""
