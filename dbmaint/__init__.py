"""dbmaint: a PostgreSQL maintenance service."""

__version__ = "0.1.0"
