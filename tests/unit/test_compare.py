"""Two plans compared (dbmaint explain --compare): figures with ratios, changed nodes, problems only one has.

On the real PostgreSQL 15 plans of tests/data/plans (made by make_plans.py) and small hand-made ones. Times
change when the fixtures are regenerated: the expected ratios are computed from the fixtures themselves.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from dbmaint.explain.compare import PlanComparison, compare, format_ratio, ratio_phrase
from dbmaint.explain.plan import PlanAnalysis
from dbmaint.explain.plan_analysis import analyse

PLANS = Path(__file__).resolve().parents[1] / "data" / "plans"


def plan(name: str) -> Any:
    return json.loads((PLANS / f"{name}.json").read_text())


def analysed(name: str) -> PlanAnalysis:
    return analyse(plan(name))


def compared(before: str, after: str) -> PlanComparison:
    return compare(analysed(before), analysed(after))


def figure(comparison: PlanComparison, name: str) -> Any:
    found = comparison.figure(name)
    assert found is not None, [f.name for f in comparison.figures]
    return found


def test_an_index_lookup_against_a_filtered_seq_scan() -> None:
    before, after = analysed("seq_scan_filter"), analysed("healthy_pk_lookup")
    assert before.execution_ms is not None and after.execution_ms is not None
    comparison = compare(before, after)

    execution = figure(comparison, "execution_ms")
    assert (execution.before, execution.after) == (before.execution_ms, after.execution_ms)
    assert execution.change == f"{format_ratio(before.execution_ms / after.execution_ms)}x faster"
    assert execution.better is True and execution.ratio == pytest.approx(after.execution_ms / before.execution_ms)
    cost = figure(comparison, "total_cost")
    assert cost.change == f"{format_ratio(before.total_cost / after.total_cost)}x cheaper" and cost.better is True
    hit = figure(comparison, "shared_hit")
    assert hit.before == before.nodes[0].detail["Shared Hit Blocks"] and hit.change.endswith("x fewer")
    assert figure(comparison, "shared_read").change == "same"  # 0 and 0
    rows = figure(comparison, "rows")
    assert (rows.before, rows.after) == (14, 1) and rows.better is None  # fewer rows is no merit: another result

    assert not comparison.same_shape
    assert [(n.change, n.node_type, n.relation, n.index) for n in comparison.nodes] == [
        ("removed", "Seq Scan", "public.orders", None),
        ("added", "Index Scan", "public.orders", "orders_pkey"),
    ]
    assert [p.problem.kind for p in comparison.fixed] == ["seq_scan_filter"]
    assert comparison.fixed[0].node_label == "Seq Scan on public.orders o"
    assert comparison.new == () and comparison.kept == ()
    assert comparison.summary.startswith(f"after: {execution.change} (execution time ")
    assert "a different plan (nodes: 1 removed, 1 added)" in comparison.summary
    assert "different numbers of rows (14 before, 1 after)" in comparison.summary


def test_the_other_way_round_is_slower_and_the_problem_is_new() -> None:
    comparison = compared("healthy_pk_lookup", "seq_scan_filter")
    execution = figure(comparison, "execution_ms")
    assert execution.change is not None and execution.change.endswith("x slower") and execution.better is False
    assert figure(comparison, "total_cost").change.endswith("x costlier")
    assert [n.change for n in comparison.nodes] == ["removed", "added"]
    assert comparison.nodes[0].index == "orders_pkey"
    assert [p.problem.kind for p in comparison.new] == ["seq_scan_filter"] and comparison.fixed == ()
    assert comparison.new[0].side == "after"


def test_a_plan_against_itself_changes_nothing() -> None:
    comparison = compared("hash_spill", "hash_spill")
    assert comparison.same_shape and comparison.nodes == ()
    assert comparison.fixed == () and comparison.new == ()
    assert sorted(comparison.kept) == sorted(p.kind for p in analysed("hash_spill").problems)
    assert all(f.change == "same" and f.better is None for f in comparison.figures)
    assert comparison.summary.startswith("after: about the same (execution time ")
    assert comparison.summary.endswith("; the same plan")


def test_the_same_shape_with_workers_missing() -> None:
    comparison = compared("parallel_seq_scan", "workers_not_launched")
    assert comparison.same_shape  # the plan is the same; the workers were not there to run it
    gather = next(n for n in comparison.nodes if n.node_type == "Gather Merge")
    assert gather.change == "changed" and "(2 of 2 workers) -> Gather Merge (0 of 2 workers)" in gather.detail
    assert any("loops 3 -> 1" in n.detail for n in comparison.nodes)
    assert [p.problem.kind for p in comparison.new] == ["workers_not_launched"]


def test_a_different_join_strategy_names_the_nodes() -> None:
    comparison = compared("memoize", "parallel_nested_loop")
    changes = {(n.change, n.node_type) for n in comparison.nodes}
    assert ("removed", "Memoize") in changes and ("added", "Gather") in changes
    aggregate = next(n for n in comparison.nodes if n.node_type == "Aggregate" and n.change == "changed")
    assert aggregate.detail.startswith("Aggregate -> Finalize Aggregate")
    assert ("added", "Aggregate") in changes  # the Partial Aggregate under the Gather
    assert "memoize_thrash" in [p.problem.kind for p in comparison.fixed]


def test_a_different_alias_is_not_a_change() -> None:
    document = plan("healthy_join")
    renamed = copy.deepcopy(document)
    stack = [renamed[0]["Plan"]]
    while stack:
        node = stack.pop()
        if node.get("Alias"):
            node["Alias"] = node["Alias"] + "2"
        stack.extend(node.get("Plans", []))
    comparison = compare(analyse(document), analyse(renamed))
    assert comparison.nodes == () and comparison.same_shape


def scan(relation: str, rows: int, ms: float, loops: int = 1) -> dict[str, Any]:
    return {
        "Node Type": "Seq Scan", "Relation Name": relation, "Schema": "public", "Alias": relation,
        "Startup Cost": 0.0, "Total Cost": 100.0, "Plan Rows": rows, "Plan Width": 8,
        "Actual Startup Time": 0.01, "Actual Total Time": ms, "Actual Rows": rows, "Actual Loops": loops,
    }  # fmt: skip


def document(root: dict[str, Any], execution_ms: float | None = None) -> list[dict[str, Any]]:
    top: dict[str, Any] = {"Plan": root, "Planning Time": 0.1}
    if execution_ms is not None:
        top["Execution Time"] = execution_ms
    return [top]


def test_nodes_of_the_same_kind_are_matched_in_order() -> None:
    join = {
        "Node Type": "Nested Loop", "Join Type": "Inner", "Startup Cost": 0.0, "Total Cost": 300.0,
        "Plan Rows": 10, "Plan Width": 16, "Actual Startup Time": 0.01, "Actual Total Time": 3.0,
        "Actual Rows": 10, "Actual Loops": 1, "Plans": [scan("t", 10, 1.0), scan("t", 1, 1.0, loops=10)],
    }  # fmt: skip
    comparison = compare(analyse(document(join, 3.1)), analyse(document(scan("t", 10, 1.0), 1.1)))
    assert [(n.change, n.node_type) for n in comparison.nodes] == [("removed", "Nested Loop"), ("removed", "Seq Scan")]
    assert comparison.nodes[1].before is not None and comparison.nodes[1].before.loops == 10  # the second scan


def test_an_estimate_against_an_execution_compares_the_cost() -> None:
    estimated = scan("t", 1000, 0.0)
    for key in ("Actual Startup Time", "Actual Total Time", "Actual Rows", "Actual Loops"):
        del estimated[key]
    executed = scan("t", 1000, 5.0) | {"Total Cost": 25.0}
    comparison = compare(analyse(document(estimated)), analyse(document(executed, 5.2)))
    execution = figure(comparison, "execution_ms")
    assert (execution.before, execution.after, execution.change, execution.ratio) == (None, 5.2, None, None)
    assert figure(comparison, "estimated_rows").change == "same"
    assert comparison.figure("rows") is None
    assert comparison.summary == (
        "after: 4.0x cheaper (estimated cost 100 -> 25.00); only after was executed; the same plan"
    )


@pytest.mark.parametrize(
    ("before", "after", "whole", "expected"),
    [
        (10.0, 10.0, False, "same"),
        (10.0, 9.8, False, "about the same"),
        (10.0, 9.8, True, "1.02x fewer"),
        (10.0, 4.0, False, "2.5x fewer"),
        (4.0, 10.0, False, "2.5x more"),
        (1000.0, 3.0, False, "333x fewer"),
        (12345.0, 1.0, False, "12,345x fewer"),
        (0.0, 5.0, False, "none before"),
        (5.0, 0.0, False, "none after"),
    ],
)
def test_ratio_phrases(before: float, after: float, whole: bool, expected: str) -> None:
    assert ratio_phrase(before, after, "fewer", "more", whole=whole) == expected


def test_json_is_one_serialisable_document() -> None:
    comparison = compared("seq_scan_filter", "healthy_pk_lookup")
    document = json.loads(json.dumps(comparison.to_json()))
    assert set(document) == {
        "summary", "same_shape", "figures", "nodes", "problems_only_before", "problems_only_after", "problems_in_both",
    }  # fmt: skip
    execution = next(f for f in document["figures"] if f["figure"] == "execution_ms")
    assert set(execution) == {"figure", "before", "after", "ratio", "change", "better"}
    removed = document["nodes"][0]
    assert removed["change"] == "removed" and removed["after"] is None
    assert removed["before"]["label"] == "Seq Scan on public.orders o"
    (fixed,) = document["problems_only_before"]
    assert fixed["kind"] == "seq_scan_filter" and fixed["side"] == "before" and fixed["node"] == 0
