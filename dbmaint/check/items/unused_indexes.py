"""Indexes that cost every write and serve no read: never scanned, here or on the standbys, or duplicating
another index."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple

from dbmaint.advisor import schema_findings
from dbmaint.check.item import CheckItem, Found, Item, Query, register
from dbmaint.model import Finding
from dbmaint.pg.facts import StatsWindow
from dbmaint.units import format_count, format_size

SHOWN = 5  # the indexes the evidence names
DROP_KINDS = ("duplicate_index", "redundant_index")
REVIEW = (
    "dbmaint advise lists them with the reason for each; `dbmaint advise --write-migration --drop-unused` "
    "writes the drops as a revision to review (DROP INDEX CONCURRENTLY; its downgrade builds them again)"
)


@dataclass(frozen=True)
class StandbyIndexScan:
    """One index's scans on a standby: dbmaint/pg/queries/check_standby_index_scans.sql, read there."""

    schema: str
    name: str
    idx_scan: int
    counting_since: datetime | None  # the later of the statistics reset and the standby's start
    collected_at: datetime


@dataclass(frozen=True)
class StandbyRead:
    """What one standby counted: scans by index (schema.name, as the advisor names indexes), and since when."""

    standby: str  # its DSN, the password masked
    scans: Mapping[str, int]
    counting_since: datetime | None
    collected_at: datetime | None

    @classmethod
    def from_rows(cls, standby: str, rows: Sequence[StandbyIndexScan]) -> StandbyRead:
        return cls(
            standby,
            {f"{row.schema}.{row.name}": row.idx_scan for row in rows},
            rows[0].counting_since if rows else None,
            rows[0].collected_at if rows else None,
        )

    def observed(self) -> timedelta | None:
        if self.counting_since is None or self.collected_at is None:
            return None
        return self.collected_at - self.counting_since


@dataclass(frozen=True)
class StandbyIndexScans:
    """The "standby_index_scans" source: the standbys of the checked database ([[databases]] standbys) that
    were read, and those that could not be, with the reason."""

    read: tuple[StandbyRead, ...] = ()
    unread: Mapping[str, str] = field(default_factory=dict)  # standby -> why it could not be read

    @property
    def scans(self) -> dict[str, int]:
        """Scans by index, summed over the standbys read."""
        total: dict[str, int] = {}
        for standby in self.read:
            for index, scans in standby.scans.items():
                total[index] = total.get(index, 0) + scans
        return total


@dataclass(frozen=True)
class PhysicalStandbys:
    """dbmaint/pg/queries/check_physical_standbys.sql: the physical standbys streaming from this server."""

    streaming: int


class Unscanned(NamedTuple):
    unscanned: int


UNSCANNED = Query("check_unscanned_indexes", Unscanned)
STREAMING = Query("check_physical_standbys", PhysicalStandbys)


@register
class UnusedIndexes(CheckItem):
    """No index goes unscanned for the whole time the statistics have counted (at least a week): each one
    costs every INSERT and UPDATE of its table, its WAL, vacuum's time and memory. The advisor's findings,
    which leave out unique indexes and those behind a constraint, a replica identity or a foreign key. A
    standby counts the scans of its own queries, on the primary's indexes: every standby listed for the database
    (``[[databases]] standbys``) is read, and an index scanned there is not unused. A standby that cannot be
    read, or has counted for less than a week (a standby's statistics start again at each restart), makes the
    item unknown for the indexes it might use: never a verdict that could drop an index a replica needs."""

    name = "unused_indexes"
    order = 340
    sources = ("advice", "standby_index_scans", "stats_window", UNSCANNED, STREAMING)

    def judge(self, found: Found) -> Item:
        (unscanned,) = found.rows(UNSCANNED)
        (streaming,) = found.rows(STREAMING)
        return unused_indexes(
            found["advice"].findings,
            found["standby_index_scans"],
            found["stats_window"],
            streaming.streaming,
            schema_findings.MIN_OBSERVED,
            unscanned=unscanned.unscanned,
        )


def unused_indexes(
    findings: Sequence[Finding],
    standbys: StandbyIndexScans,
    window: StatsWindow,
    streaming: int,
    min_observed: timedelta,
    *,
    unscanned: int = 0,
) -> Item:
    """``unscanned``: the valid non-unique indexes with no scan counted, whether or not the advisor could
    call them unused (it calls none while the statistics are younger than ``min_observed``)."""
    unused = [f for f in findings if f.kind == "unused_index" and f.index]
    if not unused:
        start = window.stats_reset or window.database_created
        if unscanned and (start is None or window.collected_at - start < min_observed):
            counted = "for an unknown time" if start is None else f"for {_age(window.collected_at - start)}"
            return Item(
                "unused_indexes", "unknown",
                f"{unscanned} index(es) not scanned yet, but the statistics have counted {counted} "
                f"({_since(window)}): under {min_observed.days} days, no index can be called unused",
                f"check again once the statistics have counted for {min_observed.days} days"
                + ("" if start is not None else " (a role allowed pg_stat_file reads when the database was created)"),
            )  # fmt: skip
        return Item("unused_indexes", "pass", f"no index unscanned on the primary ({_since(window)})")
    drops = [f for f in findings if f.kind in DROP_KINDS]
    used = [(f, scans) for f in unused if (scans := scans_on_standbys(f, drops, standbys))]
    scanned = {f.index for f, _ in used}
    candidates = [f for f in unused if f.index not in scanned]
    used_note = _used_note(used)
    if not candidates:
        return Item(
            "unused_indexes", "pass",
            f"no unused index: the {len(used)} unscanned on the primary ({_since(window)}) are scanned on a "
            f"standby: {used_note}",
        )  # fmt: skip
    doubts = standby_doubts(candidates, standbys, min_observed)
    shown = ", ".join(f"{f.index} ({format_size(_size(f))})" for f in candidates[:SHOWN])
    more = f" and {len(candidates) - SHOWN} more" if len(candidates) > SHOWN else ""
    total = format_size(sum(_size(f) for f in candidates))
    also = f"; {used_note} scanned on a standby, so not counted" if used else ""
    if doubts:
        return Item(
            "unused_indexes", "unknown",
            f"{len(candidates)} index(es), {total} in all, unscanned on the primary ({_since(window)}) but not "
            f"known to be unused on every standby: {shown}{more}; {'; '.join(doubts)}{also}",
            "make every standby readable by dbmaint and let its statistics count for a week, then check again; "
            "until then do not drop these",
        )  # fmt: skip
    where = f"on the primary and on {len(standbys.read)} standby(s)" if standbys.read else "on the primary"
    caveat = _unlisted_caveat(streaming, standbys)
    fixes = "; ".join(f.fix for f in candidates[:SHOWN] if f.fix)
    return Item(
        "unused_indexes", "warn",
        f"{len(candidates)} index(es), {total} in all, never scanned {where} ({_since(window, standbys)}): "
        f"{shown}{more}{also}{caveat}",
        f"{fixes}{' (and likewise the others)' if len(candidates) > SHOWN else ''}; {REVIEW}",
    )  # fmt: skip


def unlisted_standbys(streaming: int, standbys: StandbyIndexScans) -> int:
    """How many of the physical standbys streaming from this server are not listed in [[databases]]
    standbys: their queries' scans are not counted anywhere."""
    return max(0, streaming - len(standbys.read) - len(standbys.unread))


def _unlisted_caveat(streaming: int, standbys: StandbyIndexScans) -> str:
    listed = len(standbys.read) + len(standbys.unread)
    if not unlisted_standbys(streaming, standbys):
        return ""
    if not listed:
        return (
            f"; {streaming} physical standby(s) stream from this server but none is listed in [[databases]] "
            "standbys: scans of queries there are not counted, check them before dropping"
        )
    return (
        f"; {streaming} physical standbys stream from this server and {listed} are listed in [[databases]] "
        "standbys: scans of queries on the others are not counted, check them before dropping"
    )


def scans_on_standbys(index: Finding, drops: Sequence[Finding], standbys: StandbyIndexScans) -> int:
    """The index's scans on the standbys, with those of the duplicate or redundant indexes the advisor would
    drop in its favour: their queries would use it once they are gone."""
    scans = standbys.scans
    replaced = [d.index for d in drops if d.index and d.table == index.table and _kept_for(index, d)]
    return sum(scans.get(name, 0) for name in [index.index, *replaced] if name)


def _kept_for(kept: Finding, drop: Finding) -> bool:
    """Whether the advisor keeps ``kept`` in place of ``drop`` (as its findings say it: schema_findings)."""
    return f" duplicates {kept.index} (" in drop.detail or f" is a leading part of {kept.index} on (" in drop.detail


def standby_doubts(candidates: Sequence[Finding], standbys: StandbyIndexScans, min_observed: timedelta) -> list[str]:
    """Why the standbys' zeros may not mean unused: a standby not read, counting too briefly, or without one
    of the indexes (not replayed there yet, or not a copy of this database)."""
    doubts = [f"standby {standby} could not be read: {why}" for standby, why in standbys.unread.items()]
    for standby in standbys.read:
        observed = standby.observed()
        if observed is None or observed < min_observed:
            counted = (
                f"counts scans only since {standby.counting_since:%Y-%m-%d %H:%M %Z}".rstrip()
                if standby.counting_since
                else "has no index statistics"
            )
            doubts.append(f"standby {standby.standby} {counted} (a standby starts counting again when it restarts)")
            continue
        missing = [f.index for f in candidates if f.index and f.index not in standby.scans]
        if missing:
            doubts.append(f"standby {standby.standby} does not have {', '.join(missing[:SHOWN])}")
    return doubts


def _used_note(used: Sequence[tuple[Finding, int]]) -> str:
    shown = ", ".join(f"{f.index} ({format_count(scans)} scans)" for f, scans in used[:SHOWN])
    return shown + (f" and {len(used) - SHOWN} more" if len(used) > SHOWN else "")


def _age(elapsed: timedelta) -> str:
    hours = elapsed.total_seconds() / 3600
    return f"{hours:.0f} hour(s)" if hours < 48 else f"{elapsed.days} days"


def _since(window: StatsWindow, standbys: StandbyIndexScans | None = None) -> str:
    """Since when the primary's statistics count, and the standbys'."""
    if window.stats_reset is not None:
        since = f"statistics counting since {window.stats_reset:%Y-%m-%d %H:%M %Z}".rstrip()
    elif window.database_created is not None:
        since = f"statistics counting since the database was created, {window.database_created:%Y-%m-%d %H:%M %Z}"
        since = since.rstrip()
    else:
        since = "statistics counting since the database was created"
    for standby in standbys.read if standbys else ():
        if standby.counting_since is not None:
            since += f", on standby {standby.standby} since {standby.counting_since:%Y-%m-%d %H:%M %Z}".rstrip()
    return since


def _size(finding: Finding) -> int:
    """The index's size: the advisor ranks its index findings by it (schema_findings: rank=size_bytes)."""
    return int(finding.rank)


@register
class DuplicateIndexes(CheckItem):
    """No index duplicates another (same method, columns, INCLUDE columns and predicate) or is the leading part
    of a wider one that serves the same lookups: it costs every write and its scans would go to the other. The
    advisor's findings; an index behind a constraint is kept. Standbys do not change this: a physical standby
    has the same indexes, and its queries would use the one kept just as well."""

    name = "duplicate_indexes"
    order = 350
    sources = ("advice",)

    def judge(self, found: Found) -> Item:
        return duplicate_indexes(found["advice"].findings)


def duplicate_indexes(findings: Sequence[Finding]) -> Item:
    drops = [f for f in findings if f.kind in DROP_KINDS]
    if not drops:
        return Item("duplicate_indexes", "pass", "no index duplicates another or is the leading part of a wider one")
    duplicates = sum(1 for f in drops if f.kind == "duplicate_index")
    counts = [f"{n} {kind}" for n, kind in ((duplicates, "duplicate"), (len(drops) - duplicates, "redundant")) if n]
    shown = ", ".join(
        f"{f.index} ({format_size(_size(f))}, {'duplicate' if f.kind == 'duplicate_index' else 'redundant'})"
        for f in drops[:SHOWN]
    )
    more = f" and {len(drops) - SHOWN} more" if len(drops) > SHOWN else ""
    fixes = "; ".join(f.fix for f in drops[:SHOWN] if f.fix)
    return Item(
        "duplicate_indexes", "warn",
        f"{' and '.join(counts)} index(es), {format_size(sum(_size(f) for f in drops))} in all: {shown}{more}",
        f"{fixes}{' (and likewise the others)' if len(drops) > SHOWN else ''}; {REVIEW}",
    )  # fmt: skip
