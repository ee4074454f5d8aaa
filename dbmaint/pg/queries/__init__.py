"""Catalog SQL, one named query per file, loaded by name.

``name.sql`` is the query for every server version; ``name.pg13.sql`` (and so on) replaces it from that
major version up, for the places where the catalogs changed. Placeholders are psycopg's ``%(name)s``.
"""

from __future__ import annotations

import functools
import os
import re

from psycopg import sql

_DIRECTORY = os.path.dirname(__file__)  # the .sql files are installed beside this module
_VERSIONED = re.compile(r"^(?P<name>[a-z0-9_]+)(?:\.pg(?P<major>\d+))?\.sql$")


@functools.cache
def _files() -> dict[str, dict[int, str]]:
    """Each query's file names by the major version they start at (0: every version); read when asked for."""
    found: dict[str, dict[int, str]] = {}
    for file_name in os.listdir(_DIRECTORY):  # importlib.resources would take 1.8 ms to list the same files
        match = _VERSIONED.match(file_name)
        if match:
            found.setdefault(match.group("name"), {})[int(match.group("major") or 0)] = file_name
    return found


def names() -> list[str]:
    return sorted(_files())


@functools.cache
def text(name: str, server_version: int) -> str:
    """The text of query ``name`` for a server_version_num such as 150004 (one file read: a command reads the
    few queries it runs, not all of them)."""
    variants = _files()[name]
    major = server_version // 10000
    usable = [v for v in variants if v <= major]
    if not usable:
        raise LookupError(f"query {name!r} has no variant for PostgreSQL {major}")
    with open(os.path.join(_DIRECTORY, variants[max(usable)]), encoding="utf-8") as file:
        return file.read()


def query(name: str, server_version: int) -> sql.SQL:
    return sql.SQL(text(name, server_version))
