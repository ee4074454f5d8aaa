"""The cost the advisor reads from a plan: a LIMIT that stops a filtered index walk early costs the walk."""

from __future__ import annotations

from typing import Any

from dbmaint.advisor.whatif import plan_cost


def node(kind: str, cost: float, *children: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"Node Type": kind, "Total Cost": cost, **({"Plans": list(children)} if children else {}), **extra}


def test_a_limit_over_a_filtered_index_walk_costs_the_whole_walk() -> None:
    walk = node("Index Scan", 87_000.0, **{"Index Name": "orders_created_at", "Filter": "(account_id = $1)"})
    assert plan_cost(node("Limit", 1_507.0, walk)) == 87_000.0
    # Through nodes that keep the walk's order, and for index-only scans too.
    only = node("Index Only Scan", 50_000.0, Filter="(status = 'x')")
    assert plan_cost(node("Limit", 90.0, node("Gather Merge", 52_000.0, only))) == 52_000.0
    assert plan_cost(node("Limit", 90.0, node("Incremental Sort", 51_000.0, only))) == 51_000.0


def test_other_limits_keep_the_planner_cost() -> None:
    bounded = node("Index Scan", 400.0, **{"Index Cond": "(account_id = $1)"})  # no filter: it stops early
    assert plan_cost(node("Limit", 12.0, bounded)) == 12.0
    sort = node("Sort", 30_000.0, node("Seq Scan", 25_000.0, Filter="(a = 1)"))
    assert plan_cost(node("Limit", 30_000.5, sort)) == 30_000.5
    assert plan_cost(node("Index Scan", 8.0, Filter="(b = 2)")) == 8.0  # no LIMIT: its cost is the walk
