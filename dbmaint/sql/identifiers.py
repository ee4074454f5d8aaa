"""An identifier written as SQL text the way PostgreSQL's quote_ident() writes it.

For text dbmaint shows or stores (a partial index's predicate, a fix in explain's output); statements it
sends compose identifiers with psycopg.sql.Identifier instead. Bare only when PostgreSQL reads it back as
the same name: lower case letters, digits and underscores, not starting with a digit, and no keyword
other than an unreserved one (``user`` bare is CURRENT_USER).
"""

from __future__ import annotations

import re

from pglast.keywords import COL_NAME_KEYWORDS, RESERVED_KEYWORDS, TYPE_FUNC_NAME_KEYWORDS

_SIMPLE = re.compile(r"[a-z_][a-z0-9_$]*")
_KEYWORDS = frozenset(RESERVED_KEYWORDS) | frozenset(TYPE_FUNC_NAME_KEYWORDS) | frozenset(COL_NAME_KEYWORDS)


def quote_ident(name: str) -> str:
    if _SIMPLE.fullmatch(name) and name not in _KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'
