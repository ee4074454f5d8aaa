"""Numbers, sizes, identifiers and node labels as the plan analysis writes them in its texts. Pure."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

# The figures every output prints, under the short names the problem texts use (one implementation: units).
from dbmaint.units import format_count as count
from dbmaint.units import format_ms as ms
from dbmaint.units import format_rows as rows
from dbmaint.units import format_share as pct

__all__ = [
    "BLOCK_SIZE",
    "as_float",
    "as_int",
    "blocks",
    "byte_size",
    "count",
    "first_float",
    "grade",
    "ident",
    "kb",
    "ms",
    "pct",
    "rounded",
    "rows",
    "size_kb",
]

BLOCK_SIZE = 8192


def kb(value: float) -> str:
    if value < 1024:
        return f"{value:,.0f} kB"
    if value < 10 * 1024:
        return f"{value / 1024:.1f} MB"
    if value < 1024 * 1024:
        return f"{value / 1024:,.0f} MB"
    return f"{value / 1024 / 1024:.1f} GB"


def byte_size(value: float) -> str:
    return f"{value:,.0f} bytes" if value < 1024 else kb(value / 1024)


def blocks(value: float) -> str:
    return f"{value:,.0f} blocks ({kb(value * BLOCK_SIZE / 1024)})"


def ident(name: str | None) -> str:
    """An identifier as SQL: bare when PostgreSQL would not quote it (quote_ident's rule), else double-quoted."""
    from dbmaint.sql.identifiers import quote_ident  # pglast's keyword lists: only when a fix names something

    return '""' if name is None else quote_ident(name)


def grade(value: float, thresholds: tuple[float, float, float]) -> str | None:
    """The severity of a share above (info, warning, critical) thresholds; None below all three."""
    info, warning, critical = thresholds
    if value > critical:
        return "critical"
    if value > warning:
        return "warning"
    if value > info:
        return "info"
    return None


def as_float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def first_float(raw: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        if key in raw:
            return as_float(raw[key])
    return None


def as_int(value: float | None) -> int | None:
    return None if value is None else round(value)


def rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?\s*$")
_SIZE_KB = {"B": 1 / 1024, "kB": 1.0, "MB": 1024.0, "GB": 1024.0**2, "TB": 1024.0**3}


def size_kb(text: str | None) -> float | None:
    """A memory setting as EXPLAIN's Settings show it ('64kB', '1GB'; a bare number is kB) in kB."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _SIZE_KB[match.group(2) or "kB"]
