"""Vacuum: dbmaint's nightly pass is scheduled and ran, and autovacuum keeps up between passes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from dbmaint.check.item import CheckItem, Found, Item, Status, register
from dbmaint.maintenance import vacuum_analysis

RECENT_RUN = timedelta(hours=48)
# "Far past its thresholds": twice the point at which autovacuum itself would have started.
FAR_PAST = 2.0


@register
class VacuumScheduled(CheckItem):
    """dbmaint's vacuum job is enabled and its last run, recorded in the state store, succeeded within the
    last 48 hours."""

    name = "vacuum_scheduled"
    order = 60
    sources = ("last_vacuum_run", "now")

    def judge(self, found: Found) -> Item:
        return vacuum_scheduled(found.config.vacuum.enabled, found["last_vacuum_run"], found["now"])


def vacuum_scheduled(enabled: bool, last: Any, now: datetime) -> Item:
    if not enabled:
        return Item(
            "vacuum_scheduled", "fail", "the vacuum job is disabled (vacuum.enabled = false)",
            "set vacuum.enabled = true and run the service (dbmaint run)",
        )  # fmt: skip
    if last is None:
        return Item(
            "vacuum_scheduled", "unknown", "enabled, but no dbmaint vacuum run is recorded in the state store",
            "run the service (systemctl enable --now dbmaint), or dbmaint vacuum once",
        )  # fmt: skip
    ago = now - last.started_at
    status: Status = "pass" if ago <= RECENT_RUN and last.status in ("ok", "partial", "skipped") else "fail"
    return Item(
        "vacuum_scheduled", status,
        f"last dbmaint vacuum run {ago.total_seconds() / 3600:.1f} h ago ({last.status})",
        None if status == "pass" else "dbmaint history --job vacuum shows why; dbmaint status whether it runs",
    )  # fmt: skip


@register
class AutovacuumKeepsUp(CheckItem):
    """autovacuum and track_counts are on, and no table is twice past the point at which autovacuum would
    have vacuumed it, or at wraparound risk."""

    name = "autovacuum_keeps_up"
    order = 70
    sources = ("autovacuum_switches", "vacuum_tables", "autovacuum_settings")

    def judge(self, found: Found) -> Item:
        far = found.config.vacuum._replace(trigger_fraction=FAR_PAST)
        plans = vacuum_analysis.plan(found["vacuum_tables"], found["autovacuum_settings"], far)
        return autovacuum(found["autovacuum_switches"], plans)


def autovacuum(settings: dict[str, Any], plans: Sequence[vacuum_analysis.TablePlan]) -> Item:
    off = [name for name, value in settings.items() if value != "on"]
    if off:
        return Item(
            "autovacuum_keeps_up", "fail", f"{', '.join(off)} is off",
            f"ALTER SYSTEM SET {off[0]} = on; SELECT pg_reload_conf()",
        )  # fmt: skip
    risky = [p for p in plans if p.freeze]
    behind = [p for p in plans if p.vacuum and not p.freeze]
    if risky:
        shown = ", ".join(p.table.qualified_name for p in risky[:5])
        return Item(
            "autovacuum_keeps_up", "fail", f"{len(risky)} table(s) at wraparound risk: {shown}",
            "dbmaint vacuum freezes them first; see the xid_age item for what holds them back",
        )  # fmt: skip
    if behind:
        shown = "; ".join(f"{p.table.qualified_name} ({p.reason})" for p in behind[:3])
        return Item(
            "autovacuum_keeps_up", "fail", f"{len(behind)} table(s) far past autovacuum's trigger: {shown}",
            "dbmaint vacuum now; the autovacuum_settings item says what would let autovacuum keep up",
        )  # fmt: skip
    return Item("autovacuum_keeps_up", "pass", "autovacuum is on; no table is far past its trigger or near wraparound")
