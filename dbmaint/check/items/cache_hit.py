"""How much of the data the queries touch is found in PostgreSQL's shared_buffers rather than read in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dbmaint.check.item import CheckItem, Found, Item, Query, Status, register
from dbmaint.sql.identifiers import quote_ident
from dbmaint.units import format_count, format_size

# Fewer block accesses than this since the statistics reset (a fresh server, a reset, an idle database) say
# nothing about the rate: the first reads of anything are misses.
MIN_ACCESSES = 10_000
SHOWN = 3  # the heaviest readers the evidence names
PLURAL = {"table": "tables", "index": "indexes"}


@dataclass(frozen=True)
class CacheTotals:
    """Blocks hit and read by the user tables and their indexes: dbmaint/pg/queries/check_cache_hit.sql."""

    heap_hit: int
    heap_read: int
    index_hit: int
    index_read: int
    block_size: int
    shared_buffers: str
    stats_reset: datetime | None


@dataclass(frozen=True)
class CacheReader:
    """A table or an index among those that read the most blocks: dbmaint/pg/queries/check_cache_readers.sql."""

    kind: str  # "table" or "index"
    schema: str
    name: str
    blocks_read: int
    blocks_hit: int


TOTALS = Query("check_cache_hit", CacheTotals)
READERS = Query("check_cache_readers", CacheReader)


@register
class CacheHit(CheckItem):
    """The tables and the indexes each find at least ``check.cache_hit_warn`` (99% by default) of the blocks
    they access in shared_buffers, as pghero computes the rates: below it, queries wait on reads from the
    operating system's cache or the disk, and the working set no longer fits in memory. Counted since the
    statistics reset; too few accesses to say (under 10,000 blocks) make it unknown. A warning only: a rate
    is a symptom, and the tables and indexes that read the most say where it comes from."""

    name = "cache_hit"
    order = 320
    sources = (TOTALS, READERS)

    def judge(self, found: Found) -> Item:
        (totals,) = found.rows(TOTALS)
        return cache_hit(totals, found.rows(READERS), found.config.check.cache_hit_warn)


def cache_hit(totals: CacheTotals, readers: Sequence[CacheReader], threshold: float) -> Item:
    since = (
        f"since the statistics reset of {totals.stats_reset:%Y-%m-%d %H:%M %Z}".rstrip()
        if totals.stats_reset
        else "since the statistics began (never reset)"
    )
    sides = {
        "table": (totals.heap_hit, totals.heap_read),
        "index": (totals.index_hit, totals.index_read),
    }
    rates = {kind: hit / (hit + read) for kind, (hit, read) in sides.items() if hit + read >= MIN_ACCESSES}
    if not rates:
        accesses = " and ".join(f"{format_count(hit + read)} {kind}" for kind, (hit, read) in sides.items())
        return Item(
            "cache_hit", "unknown",
            f"only {accesses} block accesses {since}: too few to tell a cache hit rate "
            f"(at least {format_count(MIN_ACCESSES)} of either are needed)",
        )  # fmt: skip
    figures = ", ".join(f"{PLURAL[kind]} {_percent(rate)}" for kind, rate in rates.items())
    too_few = [kind for kind in sides if kind not in rates]
    note = f" (too few {too_few[0]} block accesses to tell theirs)" if too_few else ""
    low = [kind for kind, rate in rates.items() if rate < threshold]
    status: Status = "warn" if low else "pass"
    evidence = (
        f"{figures} of block accesses found in shared_buffers ({totals.shared_buffers}) {since}{note}, "
        f"{'below' if low else 'at or above'} check.cache_hit_warn {_percent(threshold)}"
    )
    if not low:
        return Item("cache_hit", status, evidence)
    heaviest = [r for r in readers if r.kind in low][:SHOWN]
    if heaviest:
        shown = ", ".join(
            f"{r.kind} {quote_ident(r.schema)}.{quote_ident(r.name)} "
            f"({format_size(r.blocks_read * totals.block_size)} read in)"
            for r in heaviest
        )
        evidence += f"; the most read in: {shown}"
    return Item(
        "cache_hit", status, evidence,
        "give PostgreSQL more memory (shared_buffers, commonly a quarter of RAM, needs a restart; or a machine "
        "with more), or stop the big reads: an index for the statements scanning the tables named (dbmaint "
        "advise), the statements reading them (dbmaint explain); after a restart or a one-off batch job, "
        "the rate recovers as the count goes on",
    )  # fmt: skip


def _percent(rate: float) -> str:
    """A rate rounded down to a tenth of a percent: 98.96% is not shown as the 99.0% it falls short of."""
    return f"{math.floor(rate * 1000) / 10:.1f}%"
