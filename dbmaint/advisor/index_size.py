"""How large a btree index will be once built, from the catalog and pg_stats, without building it.

hypopg's estimate ignores what PostgreSQL 13+ does when it builds a btree: duplicates are stored once
with a posting list of heap TIDs (deduplication), and pivot tuples in the upper levels keep only the
key columns needed to tell pages apart (suffix truncation). On low-cardinality keys it overstates the
built size two to four times, and every decision that weighs bytes inherits the error. This model
follows the build (nbtsort.c, nbtdedup.c):

* leaf pages are filled to the index fillfactor (90 by default), each non-rightmost one carrying a high
  key; upper pages to 70%;
* a tuple is an 8-byte header, a null bitmap when a key is NULL, its attributes at their alignment,
  rounded up to 8 bytes, plus a 4-byte line pointer;
* with deduplication (not for unique indexes, INCLUDE indexes, or a type whose equality is not image
  equality such as numeric, or a non-deterministic collation), each run of equal keys becomes posting
  list tuples of 6 bytes per heap TID, a posting list taking at most a tenth of a page during a build;
* rows per key come from pg_stats (n_distinct, the most common values' frequencies); a partial index
  holds the share of rows its predicate keeps.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PAGE = 8192
PAGE_HEADER = 24
BTREE_SPECIAL = 16  # BTPageOpaqueData
LINE_POINTER = 4
TUPLE_HEADER = 8  # IndexTupleData
NULL_BITMAP = 4  # IndexAttributeBitMapData, present when a tuple has a NULL
HEAP_TID = 6
MAXALIGN = 8
LEAF_FILLFACTOR = 90  # BTREE_DEFAULT_FILLFACTOR
UPPER_FILLFACTOR = 70  # BTREE_NONLEAF_FILLFACTOR
_USABLE = PAGE - PAGE_HEADER - BTREE_SPECIAL
# A build's posting lists stay under a tenth of a page (nbtsort.c), less the line pointer.
_MAX_POSTING_TUPLE = (PAGE * 10 // 100) // MAXALIGN * MAXALIGN - LINE_POINTER
_ALIGNMENT = {"c": 1, "s": 2, "i": 4, "d": 8}


@dataclass(frozen=True)
class Column:
    """One indexed column: its type's storage and its statistics."""

    name: str
    typlen: int  # -1 varlena, -2 cstring, else bytes
    typalign: str  # c, s, i, d
    avg_width: float  # pg_stats.avg_width (stored bytes, varlena header included)
    null_frac: float = 0.0
    n_distinct: float = 0.0  # pg_stats: > 0 a count, < 0 a share of the rows, 0 unknown
    common_freqs: tuple[float, ...] = ()  # the most common values' frequencies
    equal_image: bool = True  # equality is image equality: deduplication may be used


@dataclass(frozen=True)
class IndexShape:
    keys: Sequence[Column]
    include: Sequence[Column] = ()
    unique: bool = False
    rows: float = 0.0  # table rows the index covers (after a partial predicate)
    fillfactor: int = LEAF_FILLFACTOR


def _align(offset: float, alignment: int) -> float:
    return math.ceil(offset / alignment) * alignment


def _maxalign(size: float) -> int:
    return int(_align(size, MAXALIGN))


def _data_width(columns: Sequence[Column]) -> float:
    """The attributes' bytes, each at its alignment (a short varlena needs none)."""
    offset = 0.0
    for column in columns:
        width = column.typlen if column.typlen > 0 else max(column.avg_width, 1.0)
        short_varlena = column.typlen == -1 and width < 127
        offset = offset if short_varlena else _align(offset, _ALIGNMENT.get(column.typalign, 1))
        offset += width * (1.0 - column.null_frac)
    return offset


def _has_nulls(columns: Sequence[Column]) -> float:
    """The share of tuples with at least one NULL key (they carry the null bitmap)."""
    none_null = 1.0
    for column in columns:
        none_null *= 1.0 - column.null_frac
    return 1.0 - none_null


def _distinct(column: Column, rows: float) -> float:
    if column.n_distinct > 0:
        return column.n_distinct
    if column.n_distinct < 0:
        return -column.n_distinct * rows
    return rows  # unknown: taken as unique, the larger (safer) estimate


def _groups(shape: IndexShape) -> list[tuple[float, float]]:
    """(rows per key, how many such keys): the most common values of a leading column as they are, the
    rest spread evenly over the remaining distinct keys."""
    rows = shape.rows
    if rows <= 0:
        return []
    distinct = 1.0
    for column in shape.keys:
        distinct *= max(_distinct(column, rows), 1.0)
    distinct = min(distinct, rows)
    groups: list[tuple[float, float]] = []
    if len(shape.keys) == 1 and shape.keys[0].common_freqs:
        common = [f * rows for f in shape.keys[0].common_freqs if f * rows >= 1]
        groups += [(count, 1.0) for count in common]
        rest_rows, rest_keys = rows - sum(common), max(distinct - len(common), 1.0)
    else:
        rest_rows, rest_keys = rows, distinct
    if rest_rows > 0:
        groups.append((max(rest_rows / rest_keys, 1.0), rest_rows / max(rest_rows / rest_keys, 1.0)))
    return groups


def leaf_bytes(shape: IndexShape) -> float:
    """The bytes the leaf items take, line pointers included."""
    columns = [*shape.keys, *shape.include]
    nulls = _has_nulls(columns)
    plain = _maxalign(TUPLE_HEADER + NULL_BITMAP * nulls + _data_width(columns)) + LINE_POINTER
    dedup = not shape.unique and not shape.include and all(c.equal_image for c in shape.keys)
    if not dedup:
        return plain * shape.rows
    key = TUPLE_HEADER + NULL_BITMAP * nulls + _data_width(shape.keys)
    per_posting = max(int((_MAX_POSTING_TUPLE - _maxalign(key)) // HEAP_TID), 2)
    total = 0.0
    for per_key, keys in _groups(shape):
        if per_key < 1.5:
            total += plain * per_key * keys
            continue
        full, left = divmod(per_key, per_posting)
        tuples = full + (1 if left >= 1 else 0)
        tids_bytes = HEAP_TID * per_key
        total += keys * (tuples * (LINE_POINTER + _maxalign(key)) + tids_bytes + tuples * (MAXALIGN / 2))
    return total


def pivot_bytes(shape: IndexShape) -> int:
    """A pivot tuple (high key, downlink) after suffix truncation: the leading key, and a heap TID when
    equal keys run across pages."""
    first = shape.keys[:1]
    low_cardinality = shape.rows > 0 and _distinct(first[0], shape.rows) < shape.rows / 100
    return _maxalign(TUPLE_HEADER + _data_width(first) + (HEAP_TID if low_cardinality else 0)) + LINE_POINTER


def estimate(shape: IndexShape) -> int:
    """The index's size in bytes once built (whole pages, metapage included)."""
    if shape.rows <= 0 or not shape.keys:
        return 2 * PAGE  # metapage and one empty leaf
    pivot = pivot_bytes(shape)
    leaf_room = _USABLE * shape.fillfactor / 100 - pivot  # a high key on each page but the rightmost
    leaves = max(1, math.ceil(leaf_bytes(shape) / leaf_room))
    pages = 1 + leaves  # the metapage
    level = leaves
    upper_room = _USABLE * UPPER_FILLFACTOR / 100
    while level > 1:
        level = max(1, math.ceil(level * pivot / upper_room))
        pages += level
    return pages * PAGE
