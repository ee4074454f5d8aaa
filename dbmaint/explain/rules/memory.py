"""Rules on work_mem: sorts, hashes and aggregates that spilled to disk, other temporary files, lossy bitmaps,
and a Memoize cache too small for its keys. Their fixes say how much work_mem the node needed
(``Plan.work_mem_fix``).
"""

from __future__ import annotations

from collections.abc import Mapping

from dbmaint.explain import fmt
from dbmaint.explain.plan import Node, Plan, Problem
from dbmaint.explain.rules.base import NodeRule, register


@register
class DiskSort(NodeRule):
    """Any Sort to disk: ``Sort Space Type`` = Disk or a ``Sort Method`` starting "external", in the node or
    one of its ``Workers``. The work_mem asked for is what an in-memory sort of the rows needs, about
    max(2.2 x the disk space, rows x (``Plan Width`` + 64 bytes)).

    Anchor: any (pganalyze "Disk Sort").
    """

    kind = "disk_sort"
    order = 60
    node_types = ("Sort",)

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        entries = [node.raw, *(node.raw.get("Workers") or [])]
        disk = [
            float(e.get("Sort Space Used") or 0)
            for e in entries
            if e.get("Sort Space Type") == "Disk" or str(e.get("Sort Method", "")).startswith("external")
        ]
        if not disk:
            return []
        disk_kb = max(disk)
        method = next((str(e["Sort Method"]) for e in entries if "Sort Method" in e), "external sort")
        rows = node.number("Actual Rows")  # per loop: what one sort held
        width = node.number("Plan Width")
        needed = max(2.2 * disk_kb, rows * (width + 64) / 1024)
        keys = ", ".join(str(k) for k in node.raw.get("Sort Key") or [])
        workers = f" in {len(disk)} processes" if len(disk) > 1 else ""
        detail = (
            f"{plan.label(node)} sorted {fmt.rows(rows)} with {method}{workers}, writing {fmt.kb(disk_kb)} to disk "
            f"(work_mem is {fmt.kb(plan.work_mem_kb())})."
        )
        fix = plan.work_mem_fix(needed, f"an in-memory sort of these rows needs about {fmt.kb(needed)}")
        if keys:
            fix += f"; or return the rows already sorted with an index on the sort key ({keys})"
        return [Problem(self.kind, "warning", node.id, detail, fix)]


@register
class HashSpill(NodeRule):
    """A Hash with ``Hash Batches`` > 1 (more than ``Original Hash Batches`` means it grew at run time, the inner
    side being bigger than estimated); work_mem ~ ``Peak Memory Usage`` x batches x 1.1 / hash_mem_multiplier.

    Anchor: > 1 (PEV2 c-3; pganalyze).
    """

    kind = "hash_spill"
    order = 70
    node_types = ("Hash",)

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        batches = int(node.number("Hash Batches"))
        if batches <= 1:
            return []
        original = int(node.raw.get("Original Hash Batches") or batches)
        peak = node.number("Peak Memory Usage")
        multiplier = plan.hash_mem_multiplier()
        needed = peak * batches * 1.1 / multiplier
        grew = (
            f", up from the {original} planned: the inner side was bigger than estimated" if batches > original else ""
        )
        join = plan.nodes[node.parent] if node.parent is not None else node
        temp = int(plan.counters["temp_written"][join.id] or 0) + int(plan.counters["temp_written"][node.id] or 0)
        detail = (
            f"{plan.label(node)} split its hash table into {batches} batches{grew}, peaking at {fmt.kb(peak)} per "
            f"batch and writing {fmt.blocks(temp)} of temporary files for the join."
        )
        fix = plan.work_mem_fix(
            needed,
            f"the hash table needs about {fmt.kb(peak * batches)}, and may use work_mem x hash_mem_multiplier "
            f"({multiplier:g})",
        )
        return [Problem(self.kind, "warning", node.id, detail, fix)]


def hashagg_spilled(node: Node) -> bool:
    """Whether a hash aggregate went to disk (PostgreSQL 13+): its problem is hashagg_spill's, not temp_spill's."""
    return int(node.number("HashAgg Batches")) > 1 or node.number("Disk Usage") > 0


@register
class HashAggSpill(NodeRule):
    """An Aggregate with ``HashAgg Batches`` > 1 or ``Disk Usage`` > 0 (PostgreSQL 13+; ``Planned Partitions``
    says whether the planner expected it); work_mem ~ (peak + disk) / hash_mem_multiplier.

    Anchor: > 1.
    """

    kind = "hashagg_spill"
    order = 80
    node_types = ("Aggregate",)

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        if not hashagg_spilled(node):
            return []
        batches = int(node.number("HashAgg Batches"))
        disk = node.number("Disk Usage")
        peak = node.number("Peak Memory Usage")
        multiplier = plan.hash_mem_multiplier()
        planned = int(node.number("Planned Partitions"))
        plan_note = f" (it planned {planned} partitions)" if planned else ""
        detail = (
            f"{plan.label(node)} ran out of memory after {fmt.kb(peak)} and spilled to disk in {batches} batches"
            f"{plan_note}, writing {fmt.kb(disk)}."
        )
        fix = plan.work_mem_fix(
            (peak + disk) / multiplier,
            f"the groups need about {fmt.kb(peak + disk)}, and it may use work_mem x hash_mem_multiplier "
            f"({multiplier:g})",
        )
        return [Problem(self.kind, "warning", node.id, detail, fix)]


@register
class TempSpill(NodeRule):
    """Exclusive ``Temp Written Blocks`` > 0 on any other node (Materialize, CTE Scan, WindowAgg, the sort groups
    of an Incremental Sort, ...); work_mem ~ 2 x what it wrote. Not on a Sort, a Hash or a hash-spilled
    Aggregate (the rules above report them), a Hash Join (its batch files are hash_spill's) or a Gather (it
    repeats its workers' counters).

    Anchor: > 0.
    """

    kind = "temp_spill"
    order = 90

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        written = int(plan.counters["temp_written"][node.id] or 0)
        if written <= 0:
            return []
        if node.type in ("Sort", "Hash", "Hash Join", "Gather", "Gather Merge"):
            return []
        if node.type == "Aggregate" and hashagg_spilled(node):
            return []
        sort_disk = node.raw.get("Full-sort Groups", {}) or {}
        extra = ""
        if node.type == "Incremental Sort" and isinstance(sort_disk, Mapping) and "Sort Space Disk" in sort_disk:
            extra = " (its sort groups went to disk)"
        detail = f"{plan.label(node)} wrote {fmt.blocks(written)} of temporary files{extra}."
        fix = plan.work_mem_fix(2 * written * fmt.BLOCK_SIZE / 1024, "what it wrote to disk, held in memory")
        return [Problem(self.kind, "warning", node.id, detail, fix)]


@register
class LossyBitmap(NodeRule):
    """A Bitmap Heap Scan with ``Lossy Heap Blocks`` > 0: the bitmap outgrew work_mem and kept page numbers
    only, so every row of those pages was rechecked (``Rows Removed by Index Recheck``); work_mem ~ 80 bytes
    per heap page of the bitmap.

    Anchor: > 0 (pganalyze "Lossy Bitmaps").
    """

    kind = "lossy_bitmap"
    order = 100
    node_types = ("Bitmap Heap Scan",)

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        lossy = int(node.number("Lossy Heap Blocks"))
        if lossy <= 0:
            return []
        exact = int(node.number("Exact Heap Blocks"))
        recheck = plan.removed(node, "Rows Removed by Index Recheck")
        detail = (
            f"{plan.label(node)} kept only page numbers for {fmt.count(lossy)} of {fmt.count(lossy + exact)} heap "
            f"pages (the bitmap outgrew work_mem), so it rechecked every row on them and removed {fmt.count(recheck)}."
        )
        fix = plan.work_mem_fix((lossy + exact) * 80 / 1024, f"an exact bitmap of {fmt.count(lossy + exact)} pages")
        return [Problem(self.kind, "warning", node.id, detail, fix)]


@register
class MemoizeThrash(NodeRule):
    """A Memoize with >= 1,000 lookups (``Cache Hits`` + ``Cache Misses``): more misses than hits with
    ``Cache Evictions`` or ``Cache Overflows`` > 0 is a warning (the cache is too small: work_mem for every key
    it saw); misses >= 10x hits without evictions is info (the keys hardly repeat: the cache buys nothing).

    Anchor: none published (PostgreSQL 14+).
    """

    kind = "memoize_thrash"
    order = 220
    node_types = ("Memoize",)
    min_lookups: float = 1000
    useless: float = 10.0  # misses / hits

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        hits, misses = node.number("Cache Hits"), node.number("Cache Misses")
        evictions, overflows = node.number("Cache Evictions"), node.number("Cache Overflows")
        lookups = hits + misses
        if lookups < self.min_lookups:
            return []
        key = node.raw.get("Cache Key", "its key")
        figures = (
            f"{fmt.count(hits)} hits, {fmt.count(misses)} misses, {fmt.count(evictions)} evictions and "
            f"{fmt.count(overflows)} overflows for {fmt.count(lookups)} lookups on {key}"
        )
        if misses > hits and (evictions > 0 or overflows > 0):
            peak = node.number("Peak Memory Usage")
            held = max(1.0, misses - evictions)
            needed = peak * misses / held / plan.hash_mem_multiplier()
            detail = f"{plan.label(node)} kept evicting what it cached: {figures}."
            fix = plan.work_mem_fix(needed, "room for every key it saw") + (
                "; or, if the keys hardly repeat, SET enable_memoize = off for this query"
            )
            return [Problem(self.kind, "warning", node.id, detail, fix)]
        if misses >= self.useless * max(hits, 1.0):
            detail = f"{plan.label(node)} hardly ever found a key in its cache: {figures}."
            fix = (
                "the planner expected the key to repeat: ANALYZE the outer side's table so that it knows the key's "
                "distinct count, or SET enable_memoize = off for this query"
            )
            return [Problem(self.kind, "info", node.id, detail, fix)]
        return []
