"""Which indexes to rebuild: estimated btree bloat, thresholds, and the reasons some cannot be rebuilt.

The estimate is the well-known statistics-based one (as in ioguix/pgsql-bloat-estimation): from the
index's tuple count and the average width of its columns (pg_stats), compute how many pages a freshly
built index with the same fillfactor would need, and compare with the pages it has. With pgstattuple
installed, the exact leaf density replaces the estimate.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from psycopg import sql

from dbmaint.config import ReindexConfig
from dbmaint.maintenance.vacuum_analysis import is_excluded, parse_reloptions
from dbmaint.pg.facts import IndexPages, IndexStats, InvalidIndex
from dbmaint.units import format_size

MAXALIGN = 8
PAGE_HEADER = 24  # PageHeaderData
BTREE_OPAQUE = 16  # BTPageOpaqueData
INDEX_TUPLE_HEADER = 8  # IndexTupleData
ITEM_ID = 4  # ItemIdData, the line pointer
NULL_BITMAP = 4  # IndexAttributeBitMapData, present when a key column can be NULL
DEFAULT_BTREE_FILLFACTOR = 90


@dataclass(frozen=True)
class Bloat:
    ratio: float  # share of the index's pages that a rebuild would give back
    bytes: int
    source: str  # how it was found: "estimated from statistics" or "measured with pgstattuple"


def _align(size: float) -> float:
    return math.ceil(size / MAXALIGN) * MAXALIGN


def fillfactor(index: IndexStats) -> int:
    try:
        return int(parse_reloptions(index.reloptions).get("fillfactor", DEFAULT_BTREE_FILLFACTOR))
    except ValueError:
        return DEFAULT_BTREE_FILLFACTOR


def estimate_bloat(index: IndexStats) -> Bloat | None:
    """Statistics-based estimate for a btree index; None when the statistics cannot support one."""
    if index.method != "btree" or index.missing_stats > 0 or index.relpages <= 1 or index.reltuples < 0:
        return None
    header = INDEX_TUPLE_HEADER + (NULL_BITMAP if index.max_null_frac > 0 else 0)
    tuple_size = _align(header) + _align(index.data_width)
    usable = (index.block_size - PAGE_HEADER - BTREE_OPAQUE) * fillfactor(index) / 100
    per_page = max(1, math.floor(usable / (ITEM_ID + tuple_size)))
    expected_pages = 1 + math.ceil(index.reltuples / per_page)  # plus the metapage
    return _bloat(index, expected_pages, "estimated from statistics")


def bloat_from_pages(index: IndexStats, pages: IndexPages) -> Bloat:
    """Exact figure from pgstatindex(): what a rebuild would need against what the index occupies.

    A rebuild packs the live leaf entries to the fillfactor and keeps the metapage and the internal
    pages. Everything else is bloat: half-empty leaves (avg_leaf_density below the fillfactor) and the
    deleted or empty pages that whole-range deletes leave behind, which the density alone does not show.
    """
    total_pages = max(1, pages.index_size // index.block_size)
    live_leaf_pages = pages.leaf_pages * (pages.avg_leaf_density or 0.0) / fillfactor(index)
    needed = 1 + pages.internal_pages + math.ceil(live_leaf_pages)
    ratio = max(0.0, 1 - needed / total_pages)
    return Bloat(ratio=ratio, bytes=int(pages.index_size * ratio), source="measured with pgstattuple")


def _bloat(index: IndexStats, expected_pages: int, source: str) -> Bloat:
    extra = max(0, index.relpages - expected_pages)
    return Bloat(ratio=extra / index.relpages, bytes=extra * index.block_size, source=source)


@dataclass(frozen=True)
class IndexDecision:
    index: IndexStats
    bloat: Bloat | None
    reason: str  # what was found
    blocker: str | None = None  # why it is not rebuilt; None means rebuild it

    @property
    def rebuild(self) -> bool:
        return self.blocker is None


def why_not_rebuildable(index: IndexStats) -> str | None:
    if index.is_catalog:
        return "system catalog index: REINDEX CONCURRENTLY cannot rebuild it"
    if index.is_exclusion:
        return "exclusion-constraint index: REINDEX CONCURRENTLY does not support it"
    if not index.is_valid:
        return "invalid index: rebuilding it would not make it valid for the constraint it was meant for"
    if not index.can_maintain:
        # Not a rebuild: it would fail, and take one of reindex.max_per_run's places from one that would not.
        return "insufficient privilege: REINDEX needs the owner of its table (or a role that inherits it)"
    return None


def decide(
    indexes: Iterable[IndexStats],
    config: ReindexConfig,
    *,
    exact: Mapping[int, Bloat] | None = None,
    last_rebuilt: Mapping[str, datetime] | None = None,
    free_bytes: Mapping[int, int] | None = None,
    now: datetime,
) -> list[IndexDecision]:
    """Rebuild candidates (the most bloat first, at most max_per_run) and the skipped ones with the reason.

    An index appears only when it is large enough to matter (min_size) and bloated past the threshold,
    or when it is large enough but its bloat cannot be known; everything else is healthy and not listed.
    """
    exact = exact or {}
    last_rebuilt = last_rebuilt or {}
    free_bytes = free_bytes or {}
    decisions: list[IndexDecision] = []
    for index in indexes:
        if index.size_bytes < config.min_size or is_excluded(index.qualified_name, config.exclude):
            continue
        if not index.is_valid:
            continue  # invalid indexes are reported by the leftover clean-up, never rebuilt here
        bloat = exact.get(index.index_oid) or estimate_bloat(index)
        if bloat is None:
            what = (
                f"cannot estimate the bloat of {index.method} indexes"
                if index.method != "btree"
                else "no statistics for its columns (ANALYZE the table, or install pgstattuple)"
            )
            if index.is_catalog:
                continue  # nothing could be done about it anyway
            # A role that may not rebuild it often may not read its table's statistics either: the privilege
            # is what stands in the way.
            decisions.append(IndexDecision(index, None, "bloat unknown", why_not_rebuildable(index) or what))
            continue
        if bloat.ratio < config.min_bloat_ratio:
            continue
        found = (
            f"{bloat.ratio:.0%} bloat ({format_size(bloat.bytes)} of {format_size(index.size_bytes)}, {bloat.source})"
        )
        blocker = why_not_rebuildable(index)
        when = last_rebuilt.get(index.qualified_name)
        needed = int(index.size_bytes * config.disk_headroom)
        free = free_bytes.get(index.tablespace_oid)
        if blocker is None and when is not None and now - when < timedelta(seconds=config.min_interval):
            blocker = f"rebuilt {when:%Y-%m-%d %H:%M} UTC, less than reindex.min_interval ago"
        if blocker is None and free is not None and free < needed:
            blocker = f"needs about {format_size(needed)} of free disk, {format_size(free)} available"
        decisions.append(IndexDecision(index, bloat, found, blocker))
    decisions.sort(key=lambda d: (d.rebuild, d.bloat.bytes if d.bloat else 0), reverse=True)
    chosen = 0
    for position, decision in enumerate(decisions):
        if decision.rebuild:
            chosen += 1
            if chosen > config.max_per_run:
                decisions[position] = IndexDecision(
                    decision.index, decision.bloat, decision.reason,
                    f"over reindex.max_per_run ({config.max_per_run}), left for the next run",
                )  # fmt: skip
    return decisions


def leftovers(invalid: Iterable[InvalidIndex]) -> tuple[list[InvalidIndex], list[str]]:
    """Invalid indexes to drop (failed REINDEX CONCURRENTLY leftovers, no build running) and findings."""
    to_drop: list[InvalidIndex] = []
    findings: list[str] = []
    for index in invalid:
        if index.is_concurrent_leftover and not index.build_running:
            to_drop.append(index)
        elif index.is_concurrent_leftover:
            findings.append(f"{index.qualified_name}: index build in progress on {index.table_name}, left alone")
        else:
            findings.append(
                f"invalid index {index.qualified_name} on {index.table_name} ({format_size(index.size_bytes)}): "
                "not a REINDEX CONCURRENTLY leftover, so not dropped; rebuild or drop it after checking why "
                "its build failed"
            )
    return to_drop, findings


def reindex_statement(index: IndexStats) -> sql.Composed:
    return sql.SQL("REINDEX INDEX CONCURRENTLY {}").format(sql.Identifier(index.schema, index.name))


def drop_statement(index: InvalidIndex) -> sql.Composed:
    return sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(index.schema, index.name))
