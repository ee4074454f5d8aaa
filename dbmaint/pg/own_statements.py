"""Telling dbmaint's own statements apart from the application's, wherever statements are read back.

Every statement dbmaint sends starts with ``MARKER`` (its connections' cursors add it), and
pg_stat_statements keeps the text of a statement as it was first seen, comment included: dbmaint's
catalog queries are only ever sent by dbmaint, so their entries carry it. The wrappers dbmaint puts
around statements it explains or plans (EXPLAIN, PREPARE/EXECUTE/DEALLOCATE of ``dbmaint_*``) are
recognised by their form, whoever first sent them. Where the role may, dbmaint also switches
pg_stat_statements off for its own sessions (``db.connect``), so that explaining an application's
statement does not add to that statement's counts.
"""

from __future__ import annotations

import re
from typing import Any

from psycopg import sql

MARKER = "/* dbmaint */ "

_WRAPPERS = re.compile(
    r"""^\s*(?:/\*.*?\*/\s*)*  # leading comments
        (?:EXPLAIN\b
          |PREPARE\s+"?dbmaint_
          |EXECUTE\s+"?dbmaint_
          |DEALLOCATE\s+(?:PREPARE\s+)?"?dbmaint_)""",
    re.IGNORECASE | re.VERBOSE | re.DOTALL,
)


def is_own(query: str) -> bool:
    """Whether ``query`` (as pg_stat_statements, a log or pg_stat_activity shows it) is dbmaint's."""
    return query.lstrip().startswith(MARKER.strip()) or _WRAPPERS.match(query) is not None


_RELATION = re.compile(r"""\b(?:FROM|JOIN)\s+((?:"[^"]+"|[\w$]+)(?:\s*\.\s*(?:"[^"]+"|[\w$]+))?)""", re.IGNORECASE)
_SYSTEM = re.compile(r"""^(?:"?(?:pg_catalog|information_schema)"?\s*\.|"?pg_)""", re.IGNORECASE)


def reads_only_catalogs(query: str) -> bool:
    """Whether every relation ``query`` reads is a system catalog (dbmaint's catalog queries, and those
    extensions such as hypopg run inside dbmaint's statements): never an application's workload.
    A text test, cheap enough for every entry of pg_stat_statements; a statement naming no relation is
    not taken for one."""
    relations = _RELATION.findall(query)
    return bool(relations) and all(_SYSTEM.match(relation) for relation in relations)


def mark(query: Any) -> Any:
    """``query`` (str, bytes or psycopg.sql) with the marker in front."""
    if isinstance(query, str):
        return MARKER + query
    if isinstance(query, bytes):
        return MARKER.encode() + query
    if isinstance(query, sql.Composable):
        return sql.SQL(MARKER) + query
    return query
