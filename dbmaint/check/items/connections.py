"""Client connections in use: the active ones against dbmaint's limit, all of them against max_connections."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, Status, register, worst
from dbmaint.units import format_share


@dataclass(frozen=True)
class ConnectionRow:
    """Client connections of one database, user and state (dbmaint/pg/queries/check_connections.sql)."""

    database: str | None
    user_name: str | None
    state: str | None
    hidden: bool  # another role's sessions, whose state cannot be seen without pg_monitor
    own: bool  # this check's own connection
    connections: int
    max_connections: int
    reserved: int  # superuser_reserved_connections


QUERY = Query("check_connections", ConnectionRow)
SHOWN = 3  # database/user pairs named in the evidence


@dataclass(frozen=True)
class Usage:
    """Connection slots in use, and by whom."""

    in_use: int  # client connections, this one included
    available: int  # max_connections less the slots reserved for superusers
    max_connections: int
    reserved: int
    active: int  # not idle, this one left out: the count maintenance jobs gate on (server_load.sql)
    hidden: int
    by_state: list[tuple[str, int]]  # largest first
    by_owner: list[tuple[str, str, int]]  # (database, user, connections), largest first


@register
class ActiveConnections(CheckItem):
    """Active client connections stay at or under ``safety.max_active_connections`` (80), the limit above
    which dbmaint's maintenance jobs wait (the check fails exactly when a job would be deferred); and the
    connections in use, of ``max_connections`` less
    ``superuser_reserved_connections``, stay below ``check.connections_warn`` (80%) and
    ``check.connections_fail`` (90%).

    When the slots run out, new connections are refused ("too many clients already") and the application
    fails; long before that, hundreds of mostly idle connections cost memory and make every snapshot
    slower. The evidence breaks them down by state and names the databases and users that hold the most.
    """

    name = "active_connections"
    order = 50
    sources = (QUERY,)

    def judge(self, found: Found) -> Item:
        rows = found.rows(QUERY)
        if not rows:  # this check's own connection is always a row
            return Item("active_connections", "unknown", "pg_stat_activity shows no client connection")
        slots, check = usage(rows), found.config.check
        return connections(
            slots.active,
            found.config.safety.max_active_connections,
            slots,
            warn=check.connections_warn,
            fail=check.connections_fail,
        )


def usage(rows: Sequence[ConnectionRow]) -> Usage:
    states: Counter[str] = Counter()
    owners: Counter[tuple[str, str]] = Counter()
    for row in rows:
        states["not visible" if row.hidden else row.state or "unknown"] += row.connections
        owners[(row.database or "?", row.user_name or "?")] += row.connections
    first = rows[0]
    return Usage(
        in_use=sum(r.connections for r in rows),
        available=max(1, first.max_connections - first.reserved),
        max_connections=first.max_connections,
        reserved=first.reserved,
        # As server_load.sql counts them: visible client connections not idle, this one left out.
        active=sum(r.connections for r in rows if not r.hidden and not r.own and r.state != "idle"),
        hidden=sum(r.connections for r in rows if r.hidden),
        by_state=states.most_common(),
        by_owner=[(database, user, n) for (database, user), n in owners.most_common()],
    )


def connections(active: int, limit: int, slots: Usage | None = None, *, warn: float = 0.8, fail: float = 0.9) -> Item:
    """``active`` client connections against ``limit`` (fail above it, where maintenance waits); with
    ``slots``, the connections in use against those available too (warn at ``warn``, fail at ``fail``, as shares)."""
    active_status: Status = "fail" if active > limit else "pass"
    active_evidence = f"{active} active client connection(s) (not idle, this one aside), limit {limit}"
    if slots is None:
        fix = None if active_status == "pass" else "a connection pooler (PgBouncer) in front of the application"
        return Item("active_connections", active_status, active_evidence, fix)
    share = slots.in_use / slots.available
    slot_status: Status = "fail" if share >= fail else "warn" if share >= warn else "pass"
    status = worst({active_status, slot_status})
    states = ", ".join(f"{n} {state}" for state, n in slots.by_state)
    owners = ", ".join(f"{database}/{user} {n}" for database, user, n in slots.by_owner[:SHOWN])
    hidden = (
        f"; {slots.hidden} of other roles, counted though their kind cannot be seen without pg_monitor"
        if slots.hidden
        else ""
    )
    evidence = (
        f"{slots.in_use} of {slots.available} connection slots in use ({format_share(share)}; max_connections "
        f"{slots.max_connections} less {slots.reserved} reserved for superusers): {states}; most by "
        f"database/user: {owners}{hidden}; {active_evidence}"
    )
    if status == "pass":
        return Item("active_connections", "pass", evidence)
    fixes = ["a connection pooler (PgBouncer, transaction mode) in front of the application"]
    idle = dict(slots.by_state).get("idle", 0)
    if idle > slots.in_use / 2:
        fixes.append(f"{idle} are idle: smaller application pools (or their idle timeout) free them")
    if any(state.startswith("idle in transaction") for state, _ in slots.by_state):
        fixes.append("sessions idle in transaction: see the idle_in_transaction item")
    fixes.append("raise max_connections (a restart) only once that is done: each connection costs memory")
    return Item("active_connections", status, evidence, "; ".join(fixes))
