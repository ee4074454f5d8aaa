"""Client connections in use, against the configured limit."""

from __future__ import annotations

from dbmaint.check.item import CheckItem, Found, Item, Status, register


@register
class ActiveConnections(CheckItem):
    """Active client connections stay below ``safety.max_active_connections`` (80 by default)."""

    name = "active_connections"
    order = 50
    sources = ("server_load",)

    def judge(self, found: Found) -> Item:
        return connections(found["server_load"].active_connections, found.config.safety.max_active_connections)


def connections(active: int, limit: int) -> Item:
    status: Status = "fail" if active >= limit else "pass"
    fix = None if status == "pass" else "a connection pooler (PgBouncer) in front of the application"
    return Item("active_connections", status, f"{active} active client connection(s), limit {limit}", fix)
