"""Tables that take much more room than their rows need: the space of deleted and updated rows that VACUUM
made reusable but that no new row has taken again."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, register
from dbmaint.sql.identifiers import quote_ident
from dbmaint.units import format_share, format_size

SHOWN = 5  # the most wasteful tables the evidence names
MEASURED = 3  # the candidates check_heap_bloat.sql measures with pgstattuple_approx() (its LIMIT)


@dataclass(frozen=True)
class HeapBloatRow:
    """A table's estimated waste, and its measured one where pgstattuple read it: one row of
    dbmaint/pg/queries/check_heap_bloat.sql (tables with some waste, and those without statistics)."""

    schema: str
    name: str
    size_bytes: int  # its heap and TOAST pages, as the last VACUUM or ANALYZE counted them
    has_stats: bool  # False: not estimated (a column without statistics)
    fillfactor: int
    wasted_bytes: int  # estimated
    exact_size_bytes: int | None  # pgstattuple_approx(), when measure == "measured"
    exact_wasted_bytes: int | None
    # "measured", or why not: "not a candidate", "not installed", "not allowed" (no privilege), "locked"
    measure: str

    @property
    def table(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    @property
    def measured(self) -> bool:
        return self.measure == "measured" and self.exact_size_bytes is not None

    @property
    def size(self) -> int:
        return self.exact_size_bytes if self.measured and self.exact_size_bytes is not None else self.size_bytes

    @property
    def wasted(self) -> int:
        return self.exact_wasted_bytes if self.measured and self.exact_wasted_bytes is not None else self.wasted_bytes

    @property
    def share(self) -> float:
        return self.wasted / self.size if self.size else 0.0

    def describe(self) -> str:
        how = "measured" if self.measured else "estimated"
        figures = f"{format_size(self.wasted)} of {format_size(self.size)} wasted, {format_share(self.share)}"
        return f"{self.table} ({figures}, {how})"


@dataclass(frozen=True)
class Extension:
    """An installed extension: dbmaint/pg/queries/check_extensions.sql."""

    name: str
    schema: str
    version: str


BLOAT = Query("check_heap_bloat", HeapBloatRow)
EXTENSIONS = Query("check_extensions", Extension)


@register
class HeapBloat(CheckItem):
    """No table wastes ``check.bloat_warn`` (30% by default) of its size and at least ``check.bloat_min_wasted``
    (100 MB). A table keeps the pages its deleted and updated rows took: VACUUM makes that room reusable by new
    rows, but only a rewrite gives it back; until then sequential scans read it, backups and replicas copy it.
    The waste is estimated from the statistics (avg_width and null_frac in pg_stats, reltuples and relpages,
    with the table's fillfactor and its TOAST table); a table without statistics is skipped. Where pgstattuple
    is installed and the role may use it (pg_stat_scan_tables), the three most wasteful by the estimate are
    measured with pgstattuple_approx(), which reads their pages that are not all-visible under an ACCESS SHARE
    lock, and the measure replaces the estimate."""

    name = "heap_bloat"
    order = 330
    sources = (BLOAT, EXTENSIONS)

    def judge(self, found: Found) -> Item:
        check = found.config.check
        installed = {e.name: e for e in found.rows(EXTENSIONS)}
        return heap_bloat(found.rows(BLOAT), installed, check.bloat_warn, check.bloat_min_wasted)


def heap_bloat(rows: Sequence[HeapBloatRow], extensions: dict[str, Extension], share: float, min_wasted: int) -> Item:
    threshold = f"at least {format_share(share)} of its size and {format_size(min_wasted)}"
    bloated = sorted(
        (r for r in rows if r.has_stats and r.wasted >= min_wasted and r.share >= share),
        key=lambda r: r.wasted,
        reverse=True,
    )
    notes = [note for note in (_measure_note(rows), _unestimated_note(rows, min_wasted)) if note]
    tail = "; " + "; ".join(notes) if notes else ""
    if not bloated:
        return Item("heap_bloat", "pass", f"no table wastes {threshold}{tail}")
    more = f" and {len(bloated) - SHOWN} more" if len(bloated) > SHOWN else ""
    shown = ", ".join(r.describe() for r in bloated[:SHOWN])
    return Item(
        "heap_bloat", "warn",
        f"{len(bloated)} table(s) waste {threshold}: {shown}{more}{tail}",
        _fix(bloated[0], extensions),
    )  # fmt: skip


def _measure_note(rows: Sequence[HeapBloatRow]) -> str | None:
    """How the figures were had: which candidates pgstattuple measured, or why it measured none."""
    states = {r.measure for r in rows}
    measured = [r for r in rows if r.measured]
    notes = []
    if measured:
        notes.append(
            f"{len(measured)} table(s) measured with pgstattuple_approx(), only the most wasteful by the estimate "
            f"(at most {MEASURED}: it reads their pages that are not all-visible); the others estimated from the "
            "statistics"
        )
    if "not installed" in states:
        notes.append("figures estimated from the statistics: pgstattuple is not installed to measure them")
    if "not allowed" in states:
        notes.append(
            "figures estimated from the statistics: pgstattuple is installed but this role may not run "
            "pgstattuple_approx() (it needs pg_stat_scan_tables, or superuser)"
        )
    locked = [r.table for r in rows if r.measure == "locked"]
    if locked:
        notes.append(f"{', '.join(locked)} not measured: an ACCESS EXCLUSIVE lock is held or awaited on it")
    return "; ".join(notes) or None


def _unestimated_note(rows: Sequence[HeapBloatRow], min_wasted: int) -> str | None:
    """Tables large enough to waste ``min_wasted`` that have no statistics to estimate from."""
    skipped = [r for r in rows if not r.has_stats and r.size_bytes >= min_wasted]
    if not skipped:
        return None
    more = f" and {len(skipped) - SHOWN} more" if len(skipped) > SHOWN else ""
    names = ", ".join(r.table for r in skipped[:SHOWN]) + more
    return (
        f"{len(skipped)} table(s) of {format_size(min_wasted)} or more not estimated, without statistics this "
        f"role can read ({names}: ANALYZE them, or grant it SELECT on them)"
    )


def _fix(worst: HeapBloatRow, extensions: dict[str, Extension]) -> str:
    """The ways to give the space back, with the lock each takes, for the most wasteful table."""
    ways = [
        f"VACUUM FULL {worst.table} rewrites it compactly but holds an ACCESS EXCLUSIVE lock for the whole "
        "rewrite (reads and writes wait) and needs room for the copy: only in a maintenance window"
    ]
    if "pg_repack" in extensions:
        ways.append(
            f"pg_repack --table={shlex.quote(worst.table)} rewrites it online, with an ACCESS EXCLUSIVE lock only "
            "briefly at its start and end (the table needs a primary key or a unique NOT NULL index)"
        )
    if "pg_squeeze" in extensions:
        schema = quote_ident(extensions["pg_squeeze"].schema)
        ways.append(
            f"SELECT {schema}.squeeze_table({_literal(worst.schema)}, {_literal(worst.name)}, NULL, NULL, NULL) "
            "(pg_squeeze) rewrites it online, with an ACCESS EXCLUSIVE lock only briefly at its end"
        )
    online = "" if len(ways) > 1 else " (pg_repack or pg_squeeze, once installed, rewrite a table online)"
    return (
        "; or ".join(ways)
        + online
        + "; plain VACUUM only makes the room reusable by the table's new rows: it gives back no more than the "
        "empty pages at the very end of the table"
    )


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"
