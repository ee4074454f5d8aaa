"""The statements of the recorded workload (pg_stat_statements) that are slow on average."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dbmaint.check.item import CheckItem, Found, Item, register
from dbmaint.sql import sqlshape


class Statement(Protocol):
    """What this item reads of a recorded statement (dbmaint.advisor.workload.Statement)."""

    @property
    def query(self) -> str: ...
    @property
    def calls(self) -> int: ...
    @property
    def mean_time_ms(self) -> float: ...


@register
class SlowQueries(CheckItem):
    """No query or DML statement (called at least ``advisor.min_calls`` times) averages over
    ``capture.min_mean_time`` (100 ms by default); utility statements (VACUUM, CREATE INDEX) do not count."""

    name = "slow_queries"
    order = 40
    sources = ("statements",)

    def judge(self, found: Found) -> Item:
        statements, note = found["statements"]
        if note and not statements:
            return Item("slow_queries", "unknown", note, _fix_for(note))
        config = found.config
        return slow_queries(statements, config.capture.min_mean_time * 1000, config.advisor.min_calls)


def _fix_for(note: str) -> str:
    """What makes pg_stat_statements readable, by why it was not."""
    if "shared_preload_libraries" in note:  # created, not loaded
        return "add pg_stat_statements to shared_preload_libraries and restart the server"
    if "privilege" in note or "hidden" in note:
        return "GRANT pg_read_all_stats TO the role dbmaint connects as"
    return "CREATE EXTENSION pg_stat_statements, with pg_stat_statements in shared_preload_libraries"


def slow_queries(statements: Sequence[Statement], threshold_ms: float, min_calls: int = 1) -> Item:
    """Queries and DML over the threshold on average; one-off statements (a migration, a bulk load) are
    not the workload: fewer than ``min_calls`` calls do not count, as for the advisor."""
    slow = [s for s in statements if s.mean_time_ms > threshold_ms and s.calls >= min_calls and _is_query(s.query)]
    if slow:
        worst = max(slow, key=lambda s: s.mean_time_ms)
        return Item(
            "slow_queries", "fail",
            f"{len(slow)} statement(s) average over {threshold_ms:.0f} ms; worst {worst.mean_time_ms:,.0f} ms "
            f"over {worst.calls} calls: {' '.join(worst.query.split())[:120]}",
            "dbmaint explain shows each one's plan and what would fix it; dbmaint advise the indexes",
        )  # fmt: skip
    return Item("slow_queries", "pass", f"no statement averages over {threshold_ms:.0f} ms")


def _is_query(text: str) -> bool:
    """Queries and DML; a slow VACUUM or CREATE INDEX (track_utility) is not a slow query."""
    try:
        return sqlshape.analyse(text, sqlshape.Catalog({})).kind in ("select", "insert", "update", "delete")
    except sqlshape.ShapeError:
        return False
