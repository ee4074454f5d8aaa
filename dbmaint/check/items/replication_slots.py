"""Replication slots: each keeps on disk the WAL its consumer has not confirmed, however long it has been gone."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, Status, register, worst
from dbmaint.units import format_duration, format_size


@dataclass(frozen=True)
class SlotRow:
    """A replication slot, and the WAL it keeps (dbmaint/pg/queries/check_replication_slots.sql)."""

    slot_name: str
    slot_type: str  # physical or logical
    plugin: str | None  # a logical slot's output plugin
    database: str | None  # a logical slot's database
    temporary: bool
    active: bool
    active_pid: int | None
    active_s: float | None  # how long its consumer has been connected, when the role may see it
    wal_status: str | None  # reserved, extended, unreserved, lost (PostgreSQL 13+); NULL when it reserves none
    safe_wal_size: int | None  # WAL that can still be written before it is lost; NULL when unlimited
    retained_bytes: int | None  # from restart_lsn to the end of WAL; NULL when either is unknown
    in_recovery: bool  # read on a standby: WAL is counted to the last position received or replayed
    max_slot_wal_keep_size: str  # the setting, as current_setting() shows it ('-1': unlimited)


QUERY = Query("check_replication_slots", SlotRow)

# The WAL the slot needs is gone, or goes at the next checkpoint: its consumer can no longer resume.
BROKEN = {
    "lost": "lost: the WAL it needs is removed, its consumer can no longer resume",
    "unreserved": "unreserved: the WAL it needs goes at the next checkpoint, after which its consumer can no "
    "longer resume",
}
SHOWN = 5  # slots described in the evidence


@register
class ReplicationSlots(CheckItem):
    """No replication slot is inactive, lost, or keeps more WAL than ``check.slot_retained_warn`` (1 GB;
    ``check.slot_retained_fail``, 10 GB, fails).

    A slot keeps every WAL segment its consumer (a standby, a logical subscriber, a CDC tool) has not yet
    confirmed, and the catalog rows a logical consumer may still decode. When the consumer is gone for good,
    pg_wal grows until the disk is full and the server stops. An inactive slot is therefore a warning at any
    size; one whose ``wal_status`` is ``lost`` or ``unreserved`` (``max_slot_wal_keep_size`` let its WAL go)
    fails, since its consumer can no longer resume. On a standby, WAL is counted up to the last position
    received or replayed.
    """

    name = "replication_slots"
    order = 200
    sources = (QUERY,)

    def judge(self, found: Found) -> Item:
        check = found.config.check
        return replication_slots(found.rows(QUERY), check.slot_retained_warn, check.slot_retained_fail)


def replication_slots(slots: Sequence[SlotRow], warn: int, fail: int) -> Item:
    if not slots:
        return Item("replication_slots", "pass", "no replication slot")
    judged = [(slot_status(slot, warn, fail), slot) for slot in slots]
    status = worst({status for status, _ in judged})
    standby = " (on a standby: WAL counted to the last position received or replayed)" if slots[0].in_recovery else ""
    if status == "pass":
        evidence = f"{len(slots)} replication slot(s), all active"
        retained = [s for s in slots if s.retained_bytes is not None]
        if retained:
            most = max(retained, key=lambda s: s.retained_bytes or 0)
            evidence += f"; the most WAL kept: {format_size(most.retained_bytes)} (slot {sql_literal(most.slot_name)})"
        return Item("replication_slots", "pass", evidence + standby)
    order = {"fail": 0, "unknown": 1, "warn": 2}
    flagged = sorted(
        ((s, slot) for s, slot in judged if s != "pass"),
        key=lambda pair: (order[pair[0]], -(pair[1].retained_bytes or 0)),
    )
    shown = "; ".join(describe(slot) for _, slot in flagged[:SHOWN])
    more = f"; and {len(flagged) - SHOWN} more" if len(flagged) > SHOWN else ""
    evidence = f"{len(flagged)} of {len(slots)} replication slot(s) need attention: {shown}{more}{standby}"
    return Item("replication_slots", status, evidence, fix([slot for _, slot in flagged], slots[0], warn, fail))


def slot_status(slot: SlotRow, warn: int, fail: int) -> Status:
    statuses: set[Status] = {"pass"}
    if slot.wal_status in BROKEN:
        statuses.add("fail")
    elif slot.retained_bytes is None and slot.wal_status is not None:
        statuses.add("unknown")  # it reserves WAL, but where WAL ends is not known (a standby not streaming)
    elif slot.retained_bytes is not None and slot.retained_bytes > fail:
        statuses.add("fail")
    elif slot.retained_bytes is not None and slot.retained_bytes > warn:
        statuses.add("warn")
    if not slot.active:
        statuses.add("warn")  # nothing consumes it: whatever it keeps now only grows
    return worst(statuses)


def describe(slot: SlotRow) -> str:
    kind = [slot.slot_type]
    if slot.plugin:
        kind.append(f"plugin {slot.plugin}")
    if slot.database:
        kind.append(f"database {slot.database}")
    if slot.temporary:
        kind.append("temporary")
    if slot.active:
        since = f" for {format_duration(slot.active_s)}" if slot.active_s is not None else ""
        kind.append(f"active, pid {slot.active_pid}{since}")
    else:
        kind.append("inactive")
    if slot.wal_status in BROKEN:
        kind.append(BROKEN[slot.wal_status])
    elif slot.wal_status is None:
        kind.append("reserves no WAL yet")
    else:
        kept = "an unknown amount of" if slot.retained_bytes is None else format_size(slot.retained_bytes) + " of"
        kind.append(f"keeps {kept} WAL (wal_status {slot.wal_status})")
        if slot.safe_wal_size is not None:
            kind.append(f"safe_wal_size {format_size(slot.safe_wal_size)}")
        elif slot.max_slot_wal_keep_size == "-1":
            kind.append("no max_slot_wal_keep_size: it may keep WAL until the disk is full")
    return f"slot {sql_literal(slot.slot_name)} ({', '.join(kind)})"


def fix(flagged: Sequence[SlotRow], any_slot: SlotRow, warn: int, fail: int) -> str | None:
    steps = []
    unused = [s for s in flagged if not s.active or s.wal_status == "lost"]
    if unused:
        drops = "; ".join(
            f"SELECT pg_catalog.pg_drop_replication_slot({sql_literal(s.slot_name)})" for s in unused[:SHOWN]
        )
        active = " (an active slot cannot be dropped: stop its consumer first)" if any(s.active for s in unused) else ""
        steps.append(f"when its consumer is gone for good: {drops}{active}")
    if any(s.slot_type == "logical" for s in unused):
        steps.append("a logical consumer must then be re-synchronised (its subscription re-created, copying the data)")
    if any(s.wal_status == "lost" for s in flagged):
        steps.append("a lost slot cannot be used again: a standby needs a new base backup")
    if any(s.wal_status == "unreserved" for s in flagged):
        steps.append("an unreserved slot's consumer must catch up before the next checkpoint, or the slot is lost")
    behind = [s for s in flagged if s.active and s.wal_status != "lost" and (s.retained_bytes or 0) > warn]
    if behind:
        names = ", ".join(sql_literal(s.slot_name) for s in behind[:3])
        steps.append(f"{names}: its consumer is connected but behind (pg_stat_replication shows its lag)")
    if any_slot.max_slot_wal_keep_size == "-1":
        steps.append(
            f"ALTER SYSTEM SET max_slot_wal_keep_size = '{setting_size(fail)}'; SELECT pg_catalog.pg_reload_conf() "
            "so that a dead slot can no longer fill the disk (it is lost instead)"
        )
    return "; ".join(steps) or None


def sql_literal(text: str) -> str:
    """``text`` as a SQL string literal, as quote_literal() writes it: with a backslash, an E'' literal, which
    reads the same whatever standard_conforming_strings is."""
    quoted = text.replace("'", "''")
    if "\\" in text:
        return "E'" + quoted.replace("\\", "\\\\") + "'"
    return "'" + quoted + "'"


def setting_size(size: int) -> str:
    """A size as postgresql.conf writes it, in whole megabytes (the unit of max_slot_wal_keep_size)."""
    megabytes = max(1, math.ceil(size / 1024**2))
    return f"{megabytes // 1024}GB" if megabytes % 1024 == 0 else f"{megabytes}MB"
