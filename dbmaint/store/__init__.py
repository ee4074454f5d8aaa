"""The state store: runs, actions, the service's state and captured statements (SQLAlchemy)."""
