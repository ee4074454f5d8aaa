"""Telling dbmaint's statements from the application's by their text."""

from __future__ import annotations

import pytest
from psycopg import sql

from dbmaint.pg import own_statements
from dbmaint.pg.own_statements import MARKER


@pytest.mark.parametrize(
    "query",
    [
        "/* dbmaint */ SELECT c.oid FROM pg_catalog.pg_class AS c WHERE c.relname = $1",
        "  " + MARKER + "VACUUM (ANALYZE) public.t",
        "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) SELECT * FROM orders WHERE id = $1",
        "explain select 1",
        '/* dbmaint */ PREPARE "dbmaint_whatif" (int) AS SELECT * FROM orders WHERE id = $1',
        'PREPARE "dbmaint_whatif" AS SELECT * FROM orders WHERE id = 5',
        "EXECUTE dbmaint_explain($1)",
        'DEALLOCATE "dbmaint_explain"',
        "DEALLOCATE PREPARE dbmaint_whatif",
    ],
)
def test_own(query: str) -> None:
    assert own_statements.is_own(query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM orders WHERE id = $1",
        "PREPARE app_stmt AS SELECT 1",
        "/* app */ SELECT explain FROM plans",
        "UPDATE t SET note = '/* dbmaint */' WHERE id = $1",
    ],
)
def test_not_own(query: str) -> None:
    assert not own_statements.is_own(query)


def test_reads_only_catalogs() -> None:
    assert own_statements.reads_only_catalogs("SELECT max(oid) FROM pg_catalog.pg_class WHERE oid < $1")
    assert own_statements.reads_only_catalogs('SELECT * FROM "pg_catalog"."pg_rewrite" r JOIN pg_class c ON true')
    assert not own_statements.reads_only_catalogs("SELECT * FROM pg_catalog.pg_class c JOIN public.items i ON true")
    assert not own_statements.reads_only_catalogs("SELECT 1")
    assert not own_statements.reads_only_catalogs("SELECT extract(year FROM now())")


def test_mark_keeps_every_kind_of_query() -> None:
    assert own_statements.mark("SELECT 1") == MARKER + "SELECT 1"
    assert own_statements.mark(b"SELECT 1") == MARKER.encode() + b"SELECT 1"
    composed = own_statements.mark(sql.SQL("SELECT {}").format(sql.Identifier("x")))
    assert composed.as_string(None) == MARKER + 'SELECT "x"'
