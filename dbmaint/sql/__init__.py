"""SQL text read with PostgreSQL's own parser (pglast): statement shapes, identifiers."""
