"""Catalog SQL, one named query per file, loaded by name.

``name.sql`` is the query for every server version; ``name.pg13.sql`` (and so on) replaces it from that
major version up, for the places where the catalogs changed. Placeholders are psycopg's ``%(name)s``.
"""

from __future__ import annotations

import functools
import re
from importlib import resources

from psycopg import sql

_VERSIONED = re.compile(r"^(?P<name>[a-z0-9_]+)(?:\.pg(?P<major>\d+))?\.sql$")


@functools.cache
def _catalogue() -> dict[str, dict[int, str]]:
    found: dict[str, dict[int, str]] = {}
    for entry in resources.files(__package__).iterdir():
        match = _VERSIONED.match(entry.name)
        if match:
            major = int(match.group("major") or 0)
            found.setdefault(match.group("name"), {})[major] = entry.read_text(encoding="utf-8")
    return found


def names() -> list[str]:
    return sorted(_catalogue())


def text(name: str, server_version: int) -> str:
    """The text of query ``name`` for a server_version_num such as 150004."""
    variants = _catalogue()[name]
    major = server_version // 10000
    usable = [v for v in variants if v <= major]
    if not usable:
        raise LookupError(f"query {name!r} has no variant for PostgreSQL {major}")
    return variants[max(usable)]


def query(name: str, server_version: int) -> sql.SQL:
    return sql.SQL(text(name, server_version))
