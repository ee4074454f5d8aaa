"""Plan analysis on real PostgreSQL 15 plans (tests/data/plans, made by make_plans.py) and hand-made edge cases."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from dbmaint.explain.plan import PlanAnalysis, TableContext
from dbmaint.explain.plan_analysis import analyse
from dbmaint.explain.rules import KINDS

PLANS = Path(__file__).resolve().parents[1] / "data" / "plans"
ANALYZED = datetime(2026, 1, 1, tzinfo=UTC)

# The statements of make_plans.py whose text the analysis reads (OFFSET, ORDER BY).
QUERIES = {
    "large_offset": "SELECT id, amount FROM orders ORDER BY id OFFSET 50000 LIMIT 20",
    "wrong_index_order_by": "SELECT id, created_at FROM orders WHERE status = 'cancelled' ORDER BY created_at LIMIT 10",
}
# What the database would say about the tables (dbmaint.explain.runner.table_context reads it from the catalog).
CONTEXT = {
    # 20,000 purchases inserted after the last ANALYZE of 50,000 clicks: autoanalyze's trigger is 5,050.
    "stale_statistics": {
        "public.events": TableContext("public.events", ANALYZED, 20_000, 50_000.0, 468 * 8192),
    },
    "slow_trigger": {
        "public.shipments": TableContext(
            "public.shipments", ANALYZED, 0, 20_000.0, 128 * 8192,
            fk_without_index=(("shipments_order_id_fkey", ("order_id",)),),
        ),
    },
}  # fmt: skip

# Every problem of every plan: (kind, severity, node), in the order the analysis reports them. The hot nodes
# depend on the times of the run that made the fixtures: check them after a regeneration.
EXPECTED: dict[str, list[tuple[str, str, int | None]]] = {
    "healthy_pk_lookup": [],
    "healthy_tiny_seq_scan": [],
    "healthy_join": [],
    "disk_sort": [
        ("hot_node", "warning", 0),
        ("disk_sort", "warning", 0),
        ("hot_node", "info", 1),
        ("non_default_settings", "info", None),
    ],
    # 8.8 ms in all: critical problems, but not of a slow statement (CRITICAL_MIN_MS).
    "stale_statistics": [("row_misestimate", "warning", 1), ("stale_statistics", "warning", 1)],
    "seq_scan_filter": [("seq_scan_filter", "critical", 0)],
    "hash_spill": [
        ("hot_node", "warning", 0),
        ("hash_spill", "warning", 2),
        ("non_default_settings", "warning", None),  # enable_mergejoin = off
        ("hot_node", "info", 1),
        ("hot_node", "info", 2),
        ("hot_node", "info", 3),
    ],
    "lossy_bitmap": [
        ("hot_node", "critical", 1),
        ("lossy_bitmap", "warning", 1),
        ("non_default_settings", "info", None),
    ],
    "nested_loop_underestimate": [
        ("seq_scan_filter", "critical", 1),
        ("hot_node", "warning", 1),
        ("row_misestimate", "warning", 1),  # the scan, not the join above it that inherits its error
        ("nested_loop_underestimate", "warning", 0),
    ],
    "parallel_seq_scan": [("hot_node", "warning", 3), ("non_default_settings", "info", None)],
    "workers_not_launched": [
        ("hot_node", "warning", 3),
        ("workers_not_launched", "warning", 1),
        ("non_default_settings", "info", None),
    ],
    "heap_fetches": [("heap_fetches", "warning", 0)],  # 0.8 ms
    "large_offset": [("hot_node", "warning", 1), ("large_offset", "warning", 0)],
    "hashagg_spill": [
        ("hot_node", "warning", 2),
        ("hashagg_spill", "warning", 0),
        ("hashagg_spill", "warning", 2),
        ("non_default_settings", "warning", None),  # enable_sort = off
        ("hot_node", "info", 0),
    ],
    "jit": [
        ("jit_overhead", "critical", None),
        ("hot_node", "warning", 1),
        ("hot_node", "info", 0),
        ("non_default_settings", "info", None),
    ],
    "wrong_index_order_by": [("hot_node", "critical", 1), ("wrong_index_order_by", "critical", 1)],
    "inefficient_index": [("inefficient_index", "warning", 0)],  # 6.4 ms
    "slow_trigger": [("slow_trigger", "critical", None)],
    "read_efficiency": [("read_efficiency", "warning", 0)],
    "cte_temp_spill": [
        ("hot_node", "warning", 1),
        ("hot_node", "warning", 2),
        ("row_misestimate", "warning", 2),  # a LIKE on a CTE's rows, estimated without statistics
        ("temp_spill", "warning", 2),
        ("non_default_settings", "info", None),
    ],
    "parallel_nested_loop": [("hot_node", "warning", 5), ("non_default_settings", "warning", None)],
    "memoize": [
        ("memoize_thrash", "warning", 3),
        ("non_default_settings", "warning", None),
        # The Memoize node itself is not hot: 0.002 ms x 30,000 loops is anything from 45 to 75 ms.
        ("hot_node", "info", 4),
    ],
    "cold_cache": [("hot_node", "warning", 0), ("hot_node", "warning", 1), ("poor_cache_hit", "info", 1)],
}


def load(name: str) -> Any:
    return json.loads((PLANS / f"{name}.json").read_text())


def analysed(name: str) -> PlanAnalysis:
    return analyse(load(name), context=CONTEXT.get(name), query=QUERIES.get(name))


def raw_nodes(plan: Any) -> list[Mapping[str, Any]]:
    """The plan's nodes in pre-order, as PostgreSQL wrote them."""
    found: list[Mapping[str, Any]] = []
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        found.append(node)
        stack.extend(reversed(node.get("Plans", [])))
    return found


def problem(analysis: PlanAnalysis, kind: str) -> Any:
    return next(p for p in analysis.problems if p.kind == kind)


# --- the problems of each real plan ------------------------------------------------------------------------


def test_every_fixture_is_covered() -> None:
    assert {path.stem for path in PLANS.glob("*.json")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_problems_of_real_plans(name: str) -> None:
    analysis = analysed(name)
    assert [(p.kind, p.severity, p.node) for p in analysis.problems] == EXPECTED[name]
    for found in analysis.problems:
        assert found.kind in KINDS
        assert found.detail.endswith(".") and found.detail[0].isupper()
        assert found.fix


@pytest.mark.parametrize("name", ["healthy_pk_lookup", "healthy_tiny_seq_scan", "healthy_join"])
def test_healthy_plans_raise_nothing(name: str) -> None:
    analysis = analysed(name)
    assert analysis.problems == ()
    assert analysis.analyzed
    assert all(n.misestimate is not None and n.misestimate < 2 for n in analysis.nodes)


def test_every_kind_is_produced_by_some_plan_or_hand_made_case() -> None:
    real = {kind for kinds in EXPECTED.values() for kind, _, _ in kinds}
    hand_made = {"planning_time", "join_filter_waste"}  # tested below
    assert real | hand_made == set(KINDS)


# --- computed figures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["disk_sort", "hash_spill", "hashagg_spill", "cte_temp_spill", "nested_loop_underestimate", "parallel_seq_scan"],
)
def test_exclusive_times_sum_to_about_the_execution_time(name: str) -> None:
    analysis = analysed(name)
    assert analysis.execution_ms is not None
    total = sum(n.exclusive_ms or 0.0 for n in analysis.nodes)
    # The rest is executor start-up and shut-down, which no node counts.
    assert 0.9 * analysis.execution_ms <= total <= 1.01 * analysis.execution_ms
    assert sum(n.share or 0.0 for n in analysis.nodes) == pytest.approx(total / analysis.execution_ms)


def test_exclusive_buffers_and_temp_blocks_of_a_hash_join() -> None:
    plan = load("hash_spill")
    join, outer, hash_node, inner = raw_nodes(plan)
    nodes = analysed("hash_spill").nodes
    # Shared blocks are the scans' alone; the join and the hash touch none of their own.
    assert [n.shared_hit for n in nodes] == [0, outer["Shared Hit Blocks"], 0, inner["Shared Hit Blocks"]]
    assert join["Shared Hit Blocks"] == outer["Shared Hit Blocks"] + inner["Shared Hit Blocks"]
    # The hash writes the inner batches, the join the outer ones.
    assert nodes[2].temp_written == hash_node["Temp Written Blocks"] == 445
    assert nodes[0].temp_written == join["Temp Written Blocks"] - hash_node["Temp Written Blocks"] == 438
    assert nodes[0].label == "Hash Join (Inner)"
    assert nodes[1].label == "Seq Scan on public.orders o"
    assert nodes[1].relation == "public.orders"


def test_a_gather_does_not_repeat_its_workers_temp_blocks() -> None:
    plan = load("hashagg_spill")
    final, gather, partial, scan = raw_nodes(plan)
    nodes = analysed("hashagg_spill").nodes
    assert gather["Temp Written Blocks"] == partial["Temp Written Blocks"] > 0
    assert nodes[1].temp_written == 0
    assert nodes[2].temp_written == partial["Temp Written Blocks"]
    assert nodes[0].temp_written == final["Temp Written Blocks"] - gather["Temp Written Blocks"]
    assert nodes[3].shared_hit == scan["Shared Hit Blocks"] == 1312  # the whole table, over both processes


def test_totals_over_loops_on_the_inner_side_of_a_nested_loop() -> None:
    plan = load("nested_loop_underestimate")
    _, outer, heap, index = raw_nodes(plan)
    nodes = analysed("nested_loop_underestimate").nodes
    assert heap["Actual Loops"] == 1000 and heap["Actual Rows"] == 1
    assert nodes[2].loops == 1000
    assert nodes[2].actual_rows == 1000
    assert nodes[2].total_ms == pytest.approx(heap["Actual Total Time"] * 1000)
    assert nodes[3].total_ms == pytest.approx(index["Actual Total Time"] * 1000)
    assert nodes[2].exclusive_ms == pytest.approx((heap["Actual Total Time"] - index["Actual Total Time"]) * 1000)
    assert nodes[1].rows_removed == outer["Rows Removed by Filter"] == 99_000
    # The join inherits the scan's 100x underestimate (10 rows planned, 1,000 returned); only the scan is reported.
    assert nodes[1].misestimate == 100 and nodes[1].underestimated
    assert nodes[0].misestimate is not None and nodes[0].misestimate > 50 and nodes[0].underestimated


def test_parallel_scan_rows_are_totals_and_time_is_wall_time() -> None:
    plan = load("parallel_seq_scan")
    raw = raw_nodes(plan)
    nodes = analysed("parallel_seq_scan").nodes
    scan, sort = nodes[4], nodes[2]
    assert scan.label == "Parallel Seq Scan on public.orders"
    assert nodes[1].label == "Gather Merge (2 of 2 workers)"
    assert nodes[1].workers_planned == 2 and nodes[1].workers_launched == 2
    assert scan.loops == 3
    assert scan.actual_rows == raw[4]["Actual Rows"] * 3 == pytest.approx(100_000, abs=3)  # per-loop rounding
    # The three processes ran at once: not Actual Total Time x 3, but the time of the process the Gather
    # Merge waited for (here the leader: the loops' sum less the workers' own).
    workers = {w["Worker Number"]: w["Actual Total Time"] * w["Actual Loops"] for w in raw[2]["Workers"]}
    assert sort.total_ms == pytest.approx(raw[2]["Actual Total Time"] * 3 - sum(workers.values()))
    assert sort.total_ms is not None and sort.total_ms > max(workers.values())
    assert sort.total_ms < raw[2]["Actual Total Time"] * 3
    assert nodes[1].total_ms is not None and sort.total_ms <= nodes[1].total_ms
    assert scan.share is not None and scan.share < 0.5


def test_parallel_nested_loop_counts_every_process() -> None:
    nodes = analysed("parallel_nested_loop").nodes
    inner = nodes[5]
    assert inner.label == "Index Only Scan using customers_pkey on public.customers c"
    assert inner.loops == 30_000 and inner.actual_rows == 30_000
    assert inner.shared_hit == 60_003  # two index pages and a heap-free visit per loop, over both processes
    assert nodes[4].actual_rows == 30_000  # the parallel outer scan: 15,000 per process x 2


def test_cte_scan_is_charged_with_its_subplan_not_the_node_it_hangs_on() -> None:
    plan = load("cte_temp_spill")
    top, cte, scan = raw_nodes(plan)
    nodes = analysed("cte_temp_spill").nodes
    assert nodes[1].label == "CTE recent: Index Scan using orders_pkey on public.orders"
    assert nodes[2].label == "CTE Scan on recent a"
    assert nodes[0].exclusive_ms == pytest.approx(top["Actual Total Time"] - scan["Actual Total Time"])
    assert nodes[2].exclusive_ms == pytest.approx(scan["Actual Total Time"] - cte["Actual Total Time"])
    assert nodes[2].temp_written == 286 and nodes[2].shared_hit == 0
    assert nodes[1].shared_hit == cte["Shared Hit Blocks"]
    assert problem(analysed("cte_temp_spill"), "row_misestimate").fix.startswith("PostgreSQL has no statistics")


def test_sort_label_and_limit_capped_rows() -> None:
    assert analysed("disk_sort").nodes[0].label == "Sort (external merge, Disk 4.6 MB)"
    offset = analysed("large_offset").nodes
    assert offset[1].actual_rows == 50_020 and offset[1].plan_rows == 100_000
    assert offset[1].misestimate is None  # the Limit stopped it


def test_same_plan_same_signature() -> None:
    # The same query, once with its workers and once without: the same plan shape.
    assert analysed("parallel_seq_scan").shape_signature() == analysed("workers_not_launched").shape_signature()
    assert analysed("disk_sort").shape_signature() != analysed("parallel_seq_scan").shape_signature()
    signatures = {analysed(name).shape_signature() for name in EXPECTED}
    assert len(signatures) == len(EXPECTED) - 1
    lookup = load("healthy_pk_lookup")
    lookup[0]["Plan"]["Index Cond"] = "(orders.id = 7)"
    lookup[0]["Plan"]["Actual Total Time"] = 99.0
    assert analyse(lookup).shape_signature() == analysed("healthy_pk_lookup").shape_signature()


def test_to_json_is_json() -> None:
    analysis = analysed("seq_scan_filter")
    document = json.loads(json.dumps(analysis.to_json()))
    assert set(document) == {"analyzed", "execution_ms", "planning_ms", "total_cost", "settings", "nodes", "problems"}
    assert document["problems"][0]["index_candidate"] == {
        "schema": "public",
        "table": "orders",
        "columns": ["sku", "created_at"],
    }
    assert document["nodes"][0]["detail"]["Node Type"] == "Seq Scan"
    assert "Plans" not in document["nodes"][0]["detail"]


# --- fixes ---------------------------------------------------------------------------------------------------


def test_seq_scan_filter_suggests_equality_then_range_columns() -> None:
    found = problem(analysed("seq_scan_filter"), "seq_scan_filter")
    assert found.fix == "CREATE INDEX CONCURRENTLY ON public.orders (sku, created_at)"
    assert found.index_candidate == ("public", "orders", ("sku", "created_at"))
    assert "99,986 of 100,000 rows (99.9%)" in found.detail


def test_inefficient_index_adds_the_filter_to_the_index_columns() -> None:
    found = problem(analysed("inefficient_index"), "inefficient_index")
    assert found.index_candidate == ("public", "orders", ("status", "amount"))
    assert found.fix.startswith("CREATE INDEX CONCURRENTLY ON public.orders (status, amount)")


def test_wrong_index_for_order_by_uses_the_query_order() -> None:
    found = problem(analysed("wrong_index_order_by"), "wrong_index_order_by")
    assert found.index_candidate == ("public", "orders", ("status", "created_at"))
    assert found.fix.startswith("CREATE INDEX CONCURRENTLY ON public.orders (status, created_at)")
    # Without the query, the order comes from the index definition when the caller knows it.
    context = {
        "public.orders": TableContext(
            "public.orders", ANALYZED, 0, 100_000.0, 1312 * 8192,
            indexes=("CREATE INDEX orders_created_at_idx ON public.orders USING btree (created_at)",),
        )
    }  # fmt: skip
    found = problem(analyse(load("wrong_index_order_by"), context=context), "wrong_index_order_by")
    assert found.index_candidate == ("public", "orders", ("status", "created_at"))
    found = problem(analyse(load("wrong_index_order_by")), "wrong_index_order_by")
    assert found.index_candidate == ("public", "orders", ("status",))
    assert "append the ORDER BY columns" in found.fix


def test_work_mem_fixes() -> None:
    # Measured on the fixtures' data: the sort fits in 10,157 kB, the hash join in 3,327 kB, the bitmap in 95 kB.
    assert "SET work_mem = '11MB'" in problem(analysed("disk_sort"), "disk_sort").fix
    assert "index on the sort key (orders.note)" in problem(analysed("disk_sort"), "disk_sort").fix
    assert "SET work_mem = '4MB'" in problem(analysed("hash_spill"), "hash_spill").fix
    assert "SET work_mem = '1MB'" in problem(analysed("lossy_bitmap"), "lossy_bitmap").fix
    assert "517 of 1,297 heap pages" in problem(analysed("lossy_bitmap"), "lossy_bitmap").detail
    assert "SET work_mem = '2MB'" in problem(analysed("memoize"), "memoize_thrash").fix


def test_stale_statistics_needs_the_context() -> None:
    found = problem(analysed("stale_statistics"), "stale_statistics")
    assert found.fix.startswith("ANALYZE public.events;")
    assert "20,000 rows changed" in found.detail and "5,050" in found.detail
    fresh = {"public.events": TableContext("public.events", ANALYZED, 10, 70_000.0, 655 * 8192)}
    kinds = {p.kind for p in analyse(load("stale_statistics"), context=fresh).problems}
    assert kinds == {"row_misestimate"}
    never = {"public.events": TableContext("public.events", None, 0, -1.0, 655 * 8192)}
    found = problem(analyse(load("stale_statistics"), context=never), "stale_statistics")
    assert "never been analyzed" in found.detail


def test_nested_loop_fix_points_at_the_correlated_columns() -> None:
    analysis = analysed("nested_loop_underestimate")
    statistics = (
        "CREATE STATISTICS public.customers_segment_tier_stats (dependencies, mcv) ON segment, tier "
        "FROM public.customers; ANALYZE public.customers"
    )
    assert statistics in problem(analysis, "row_misestimate").fix
    found = problem(analysis, "nested_loop_underestimate")
    assert "1,000 times" in found.detail
    assert statistics in found.fix


def test_slow_foreign_key_trigger_with_and_without_context() -> None:
    found = problem(analysed("slow_trigger"), "slow_trigger")
    assert found.fix.startswith("CREATE INDEX CONCURRENTLY ON public.shipments (order_id)")
    assert found.index_candidate == ("public", "shipments", ("order_id",))
    assert "shipments_order_id_fkey" in found.detail and "100 calls" in found.detail
    found = problem(analyse(load("slow_trigger")), "slow_trigger")
    assert found.index_candidate is None
    assert "WHERE conname = 'shipments_order_id_fkey'" in found.fix


def test_large_offset_is_confirmed_by_the_query_text() -> None:
    found = problem(analysed("large_offset"), "large_offset")
    assert "(the query has an OFFSET)" in found.detail
    assert "ORDER BY id LIMIT <n>" in found.fix
    unconfirmed = problem(analyse(load("large_offset")), "large_offset")  # without the query: still said
    assert "the query has an OFFSET" not in unconfirmed.detail
    no_offset = analyse(load("large_offset"), query="SELECT id, amount FROM orders ORDER BY id LIMIT 20")
    assert "large_offset" not in {p.kind for p in no_offset.problems}


def test_jit_and_workers_fixes_undo_the_session_settings() -> None:
    assert problem(analysed("jit"), "jit_overhead").fix.startswith("RESET jit_above_cost")
    assert problem(analysed("workers_not_launched"), "workers_not_launched").fix == (
        "max_parallel_workers is 0 in this session: RESET max_parallel_workers"
    )
    settings = problem(analysed("hash_spill"), "non_default_settings")
    assert "RESET enable_mergejoin" in settings.fix


def test_heap_fetches_and_read_efficiency_fixes() -> None:
    assert problem(analysed("heap_fetches"), "heap_fetches").fix.startswith("VACUUM (ANALYZE) public.readings")
    found = problem(analysed("read_efficiency"), "read_efficiency")
    assert "VACUUM FULL public.bloated" in found.fix
    assert "1,667 blocks" in found.detail


def test_hot_node_points_at_the_other_problems_of_its_node() -> None:
    found = problem(analysed("wrong_index_order_by"), "hot_node")
    assert found.fix == "see the wrong_index_order_by problem of this node for the fix"


# --- hand-made plans ------------------------------------------------------------------------------------------


def node(kind: str, planned: float, actual: float | None, ms: float | None, *plans: Any, **keys: Any) -> dict[str, Any]:
    """A plan node as EXPLAIN (ANALYZE, FORMAT JSON) writes it; ms=None as with TIMING OFF."""
    result: dict[str, Any] = {"Node Type": kind, "Startup Cost": 0.0, "Total Cost": 100.0, "Plan Rows": planned,
                              "Plan Width": 16}  # fmt: skip
    if actual is not None:
        if ms is not None:
            result["Actual Startup Time"] = 0.0
            result["Actual Total Time"] = ms
        result["Actual Rows"] = actual
        result["Actual Loops"] = keys.pop("loops", 1)
    result.update(keys)
    if plans:
        result["Plans"] = list(plans)
    return result


def document(plan: dict[str, Any], **top: Any) -> list[dict[str, Any]]:
    return [{"Plan": plan, "Planning Time": 0.1, **top}]


def test_timing_off_falls_back_to_blocks() -> None:
    scan = node(
        "Seq Scan", 5000, 5000, None, **{"Relation Name": "orders", "Schema": "public", "Alias": "orders",
        "Filter": "(orders.customer_id = 42)", "Rows Removed by Filter": 195_000, "Shared Hit Blocks": 9000,
        "Shared Read Blocks": 1000, "Parent Relationship": "Outer"},
    )  # fmt: skip
    small = node(
        "Seq Scan", 10, 10, None, **{"Relation Name": "customers", "Schema": "public", "Alias": "c",
        "Shared Hit Blocks": 1, "Shared Read Blocks": 0, "Parent Relationship": "Outer"},
    )  # fmt: skip
    hashed = node("Hash", 10, 10, None, small, **{"Shared Hit Blocks": 1, "Shared Read Blocks": 0,
                  "Parent Relationship": "Inner"})  # fmt: skip
    join = node("Hash Join", 5000, 5000, None, scan, hashed, **{"Join Type": "Inner", "Shared Hit Blocks": 9001,
                "Shared Read Blocks": 1000})  # fmt: skip
    analysis = analyse(document(join, **{"Execution Time": 250.0}))
    assert analysis.analyzed
    assert all(n.total_ms is None and n.exclusive_ms is None and n.share is None for n in analysis.nodes)
    assert analysis.nodes[1].actual_rows == 5000 and analysis.nodes[1].shared_hit == 9000
    assert analysis.nodes[0].shared_hit == 0
    assert [(p.kind, p.severity, p.node) for p in analysis.problems] == [
        ("hot_node", "critical", 1),  # all the block accesses
        ("seq_scan_filter", "critical", 1),
    ]
    assert "timing was off" in analysis.problems[0].detail
    assert analysis.problems[1].fix == "CREATE INDEX CONCURRENTLY ON public.orders (customer_id)"


def test_never_executed_nodes_are_skipped() -> None:
    never = node(
        "Seq Scan", 1_000_000, 0, 0.0, loops=0, **{"Relation Name": "big", "Alias": "big", "Filter": "(x = 1)",
        "Rows Removed by Filter": 0, "Parent Relationship": "Inner"},
    )  # fmt: skip
    empty = node("Seq Scan", 1, 0, 0.01, **{"Relation Name": "t", "Alias": "t", "Parent Relationship": "Outer"})
    loop = node("Nested Loop", 1, 0, 0.02, empty, never, **{"Join Type": "Inner"})
    analysis = analyse(document(loop, **{"Execution Time": 0.05}))
    figures = analysis.nodes[2]
    assert figures.loops == 0 and figures.actual_rows == 0
    assert figures.misestimate is None and figures.underestimated is None
    assert figures.relation == "big"  # no schema without VERBOSE
    assert analysis.problems == ()


def test_bitmap_and_has_no_row_counts() -> None:
    first = node("Bitmap Index Scan", 5000, 4800, 0.5, **{"Index Name": "t_a_idx", "Parent Relationship": "Member"})
    second = node("Bitmap Index Scan", 8000, 7900, 0.6, **{"Index Name": "t_b_idx", "Parent Relationship": "Member"})
    both = node("BitmapAnd", 100, 0, 1.2, first, second, **{"Parent Relationship": "Outer"})
    heap = node(
        "Bitmap Heap Scan", 100, 95, 2.0, both, **{"Relation Name": "t", "Alias": "t",
        "Recheck Cond": "((a = 1) AND (b = 2))", "Exact Heap Blocks": 90, "Lossy Heap Blocks": 0},
    )  # fmt: skip
    analysis = analyse(document(heap, **{"Execution Time": 2.1}))
    assert [n.label for n in analysis.nodes] == [
        "Bitmap Heap Scan on t", "BitmapAnd", "Bitmap Index Scan on t_a_idx", "Bitmap Index Scan on t_b_idx",
    ]  # fmt: skip
    assert analysis.nodes[1].misestimate is None
    assert analysis.nodes[2].misestimate == pytest.approx(5000 / 4800)
    assert analysis.problems == ()


def test_rows_under_a_limit_are_capped_but_not_below_a_sort() -> None:
    scan = node("Seq Scan", 50, 50_000, 40.0, **{"Relation Name": "t", "Alias": "t", "Parent Relationship": "Outer"})
    ordered = node("Sort", 50, 10, 60.0, scan, **{"Sort Key": ["t.a"], "Sort Method": "top-N heapsort",
                   "Sort Space Used": 26, "Sort Space Type": "Memory", "Parent Relationship": "Outer"})  # fmt: skip
    limit = node("Limit", 10, 10, 60.1, ordered)
    analysis = analyse(document(limit, **{"Execution Time": 60.2}))
    assert analysis.nodes[1].label == "Sort (top-N heapsort, Memory 26 kB)"
    assert analysis.nodes[1].misestimate is None  # 50 planned, 10 returned: the Limit stopped it
    assert analysis.nodes[2].misestimate == 1000  # the sort read all its input: a real underestimate
    misestimates = [p for p in analysis.problems if p.kind == "row_misestimate"]
    assert [(p.severity, p.node) for p in misestimates] == [("critical", 2)]
    assert misestimates[0].fix == "ANALYZE t"
    # Directly under a Limit, fewer rows than planned is no misestimate.
    capped = node("Seq Scan", 100_000, 10, 0.1, **{"Relation Name": "t", "Alias": "t", "Parent Relationship": "Outer"})
    analysis = analyse(document(node("Limit", 10, 10, 0.2, capped), **{"Execution Time": 0.3}))
    assert analysis.nodes[1].misestimate is None and analysis.problems == ()


def test_auto_explain_format_uses_its_query_text() -> None:
    scan = node(
        "Index Scan", 100_000, 20_010, 30.0, **{"Index Name": "t_pkey", "Relation Name": "t", "Alias": "t",
        "Scan Direction": "Forward", "Parent Relationship": "Outer"},
    )  # fmt: skip
    logged = {
        "Query Text": "SELECT * FROM t ORDER BY id OFFSET 20000 LIMIT 10",
        "Plan": node("Limit", 10, 10, 31.0, scan),
    }
    analysis = analyse(logged)
    assert analysis.execution_ms == 31.0  # no Execution Time in auto_explain's plan: the root's time
    assert analysis.planning_ms is None
    found = problem(analysis, "large_offset")
    assert "(the query has an OFFSET)" in found.detail and "ORDER BY id LIMIT <n>" in found.fix
    assert analyse(json.dumps(logged)).problems == analysis.problems
    assert [p.kind for p in analysis.problems] == ["hot_node", "large_offset"]
    no_offset = analyse(logged, query="SELECT * FROM t ORDER BY id LIMIT 10")
    assert [p.kind for p in no_offset.problems] == ["hot_node"]


def test_plan_without_analyze() -> None:
    scan = node("Seq Scan", 1000, None, None, **{"Relation Name": "t", "Alias": "t", "Filter": "(a = 1)"})
    analysis = analyse(document(scan))
    assert not analysis.analyzed and analysis.execution_ms is None
    figures = analysis.nodes[0]
    assert figures.loops is None and figures.actual_rows is None and figures.total_ms is None
    assert figures.plan_rows == 1000 and figures.cost_total == 100.0
    assert analysis.problems == ()
    with_settings = analyse(document(scan, Settings={"random_page_cost": "1.1"}))
    assert [(p.kind, p.severity) for p in with_settings.problems] == [("non_default_settings", "info")]
    assert with_settings.settings == {"random_page_cost": "1.1"}


def test_planning_time() -> None:
    plan = node("Result", 1, 1, 0.01)
    analysis = analyse([{"Plan": plan, "Planning Time": 250.0, "Execution Time": 5.0}])
    found = problem(analysis, "planning_time")
    assert found.severity == "critical" and found.node is None
    assert "250 ms" in found.detail and "PREPARE" in found.fix
    assert analyse([{"Plan": plan, "Planning Time": 2.0, "Execution Time": 0.1}]).problems == ()  # under 10 ms


def join_with_filter(join_filter: str) -> list[dict[str, Any]]:
    outer = node("Seq Scan", 100, 100, 1.0, **{"Relation Name": "customers", "Schema": "public", "Alias": "c",
                 "Parent Relationship": "Outer"})  # fmt: skip
    inner = node("Seq Scan", 1000, 1000, 0.05, loops=100, **{"Relation Name": "orders", "Schema": "public",
                 "Alias": "o", "Parent Relationship": "Inner"})  # fmt: skip
    materialized = node("Materialize", 1000, 1000, 0.08, inner, loops=100, **{"Parent Relationship": "Inner"})
    loop = node("Nested Loop", 100, 150, 30.0, outer, materialized, **{"Join Type": "Inner",
                "Join Filter": join_filter, "Rows Removed by Join Filter": 99_850})  # fmt: skip
    return document(loop, **{"Execution Time": 30.5})


def test_join_filter_waste() -> None:
    found = problem(analyse(join_with_filter("(o.customer_id = c.id)")), "join_filter_waste")
    assert found.severity == "critical" and found.node == 0
    assert "tried 100,000 row combinations and threw away 99,850 (99.8%)" in found.detail
    assert found.fix.startswith("CREATE INDEX CONCURRENTLY ON public.orders (customer_id)")
    assert found.index_candidate == ("public", "orders", ("customer_id",))
    found = problem(
        analyse(join_with_filter("((o.customer_id = c.id) OR (o.referrer_id = c.id))")), "join_filter_waste"
    )
    assert "UNION" in found.fix and found.index_candidate is None


def scan_with_filter(text: str, alias: str = "o", **keys: Any) -> Any:
    scan = node(
        "Seq Scan", 10, 10, 20.0, **{"Relation Name": "orders", "Schema": "public", "Alias": alias, "Filter": text,
        "Rows Removed by Filter": 99_990, **keys},
    )  # fmt: skip
    return problem(analyse(document(scan, **{"Execution Time": 20.0})), "seq_scan_filter")


@pytest.mark.parametrize(
    ("text", "columns"),
    [
        ("((o.status)::text = 'paid'::text)", ("status",)),  # a varchar column compared as text
        ("((o.created_at > now()) AND (o.customer_id = $1))", ("customer_id", "created_at")),
        ("(o.status = ANY ('{paid,sent}'::text[]))", ("status",)),
        ("((o.shipped_at IS NULL) AND o.urgent)", ("shipped_at", "urgent")),
        ("(NOT o.archived)", ("archived",)),
        ("((o.a > 1) AND (o.b < 2))", ("a",)),  # one range column only
        ("((o.customer_id = 7) AND (hashed SubPlan 1))", ("customer_id",)),
        ('(o."Mixed Case" = 3)', ("Mixed Case",)),
        ("(customer_id = 42)", ("customer_id",)),  # without VERBOSE: no qualifier
    ],
)
def test_index_columns_from_the_filter(text: str, columns: tuple[str, ...]) -> None:
    assert scan_with_filter(text).index_candidate == ("public", "orders", columns)


@pytest.mark.parametrize(
    "text",
    [
        "((o.a = 1) OR (o.b = 2))",  # no single btree index
        "(lower(o.email) = 'x'::text)",  # an expression
        "(o.a = o.b)",  # two columns of the same row
        "(x.customer_id = 42)",  # another relation's column
        "this is not SQL (",
    ],
)
def test_no_index_columns_when_the_filter_has_none(text: str) -> None:
    found = scan_with_filter(text)
    assert found.index_candidate is None
    assert "expression" in found.fix


def test_quoted_identifiers_in_fixes() -> None:
    assert scan_with_filter('(o."Mixed Case" = 3)').fix == 'CREATE INDEX CONCURRENTLY ON public.orders ("Mixed Case")'
    assert scan_with_filter("(o.order = 3)").fix == 'CREATE INDEX CONCURRENTLY ON public.orders ("order")'


def test_an_existing_index_is_not_suggested_again() -> None:
    scan = node(
        "Seq Scan", 10, 10, 20.0, **{"Relation Name": "orders", "Alias": "o", "Filter": "(o.customer_id = 42)",
        "Rows Removed by Filter": 99_990},
    )  # fmt: skip
    context = {
        "public.orders": TableContext(
            "public.orders", ANALYZED, 0, 100_000.0, 1312 * 8192,
            indexes=('CREATE INDEX "orders_Customer" ON public.orders USING btree (customer_id, created_at DESC)',),
        )
    }  # fmt: skip
    found = problem(analyse(document(scan, **{"Execution Time": 20.0}), context=context), "seq_scan_filter")
    assert found.fix.startswith("the index orders_Customer already covers (customer_id)")
    assert found.index_candidate is None
    # Without VERBOSE the schema comes from the context; without either there is no candidate.
    scan["Filter"] = "(o.status = 'x'::text)"
    found = problem(analyse(document(scan, **{"Execution Time": 20.0}), context=context), "seq_scan_filter")
    assert found.index_candidate == ("public", "orders", ("status",))
    found = problem(analyse(document(scan, **{"Execution Time": 20.0})), "seq_scan_filter")
    assert found.index_candidate is None and found.fix == "CREATE INDEX CONCURRENTLY ON orders (status)"


def test_tiny_and_fast_scans_are_not_reported() -> None:
    small = node("Seq Scan", 1, 1, 0.5, **{"Relation Name": "t", "Alias": "t", "Filter": "(a = 1)",
                 "Rows Removed by Filter": 900})  # fmt: skip
    assert analyse(document(small, **{"Execution Time": 0.5})).problems == ()
    cheap = node("Seq Scan", 1, 1, 0.5, **{"Relation Name": "t", "Alias": "t", "Filter": "(a = 1)",
                 "Rows Removed by Filter": 50_000, "Parent Relationship": "Outer"})  # fmt: skip
    # 50,000 rows filtered, but 5% of a query busy elsewhere.
    other = node("Function Scan", 1000, 1000, 9.5, **{"Function Name": "slow", "Alias": "f",
                 "Parent Relationship": "Inner"})  # fmt: skip
    append = node("Append", 1001, 1001, 10.0, cheap, other)
    assert {p.kind for p in analyse(document(append, **{"Execution Time": 10.0})).problems} == set()


def test_memoize_that_never_hits() -> None:
    inner = node("Index Scan", 1, 1, 0.01, loops=5000, **{"Index Name": "t_pkey", "Relation Name": "t", "Alias": "t",
                 "Parent Relationship": "Outer"})  # fmt: skip
    memo = node("Memoize", 1, 1, 0.012, inner, loops=5000, **{"Cache Key": "o.t_id", "Cache Hits": 10,
                "Cache Misses": 4990, "Cache Evictions": 0, "Cache Overflows": 0, "Peak Memory Usage": 600,
                "Parent Relationship": "Inner"})  # fmt: skip
    outer = node("Seq Scan", 5000, 5000, 2.0, **{"Relation Name": "o", "Alias": "o", "Parent Relationship": "Outer"})
    loop = node("Nested Loop", 5000, 5000, 70.0, outer, memo, **{"Join Type": "Inner"})
    found = problem(analyse(document(loop, **{"Execution Time": 70.0})), "memoize_thrash")
    assert found.severity == "info" and "enable_memoize = off" in found.fix


def test_input_forms() -> None:
    plan = load("healthy_pk_lookup")
    assert analyse(plan[0]).nodes == analyse(plan).nodes
    assert analyse(json.dumps(plan)).nodes == analyse(plan).nodes
    with pytest.raises(ValueError, match="Plan"):
        analyse({"no": "plan"})
    with pytest.raises(ValueError, match="one EXPLAIN result"):
        analyse([])


def test_a_never_analyzed_table_is_reported_in_a_plan_of_estimates_alone() -> None:
    """Without ANALYZE there is no misestimate to see: a table never analyzed, with rows changed, is the problem."""
    scan = {
        "Node Type": "Seq Scan", "Relation Name": "orders", "Schema": "public", "Alias": "orders",
        "Startup Cost": 0.0, "Total Cost": 1935.0, "Plan Rows": 2550, "Plan Width": 40,
        "Filter": "(customer_id = 7)",
    }  # fmt: skip
    never = {"public.orders": TableContext("public.orders", None, 266_666, -1.0, 0)}
    found = problem(analyse([{"Plan": scan}], context=never), "stale_statistics")
    assert found.severity == "warning" and found.fix == "ANALYZE public.orders"
    assert "never been analyzed and 266,666 rows changed" in found.detail
    analyzed = {"public.orders": TableContext("public.orders", ANALYZED, 10, 133_000.0, 1290 * 8192)}
    assert "stale_statistics" not in {p.kind for p in analyse([{"Plan": scan}], context=analyzed).problems}
