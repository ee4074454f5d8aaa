"""Rules on rows read and thrown away, and on the indexes that would not read them: filters a scan applies,
join filters, large OFFSETs, an index chosen for its order, heap fetches of index-only scans.

The filter rules share :class:`FilterThresholds`, :func:`filter_ratio` and :func:`index_problem` (the fix: an
index on the filter's columns, unless one exists already).
"""

from __future__ import annotations

from collections.abc import Sequence

from dbmaint.explain import fmt
from dbmaint.explain.conditions import parse_conditions, unique
from dbmaint.explain.plan import Node, Plan, Problem
from dbmaint.explain.rules.base import NodeRule, PlanRule, register


class FilterThresholds:
    """When rows thrown away by a filter are worth reporting (seq_scan_filter, inefficient_index,
    join_filter_waste, wrong_index_order_by)."""

    warning: float = 0.5  # share of the rows read that the filter removes
    critical: float = 0.9
    min_rows: float = 1000.0  # rows removed, over all loops
    min_share: float = 0.1  # the node's share of the execution (of the time, or of the blocks)

    def severity(self, fraction: float) -> str | None:
        return "critical" if fraction > self.critical else "warning" if fraction > self.warning else None


def filter_ratio(plan: Plan, node: Node, limits: FilterThresholds) -> tuple[float, float, float] | None:
    """(removed, returned, removed share) of the node's Filter, when it matters enough to report."""
    if not node.raw.get("Filter") or "Rows Removed by Filter" not in node.raw:
        return None
    removed = plan.removed(node, "Rows Removed by Filter")
    returned = plan.rows(node)
    if removed < limits.min_rows:
        return None
    share = plan.share(node)
    if share is not None and share < limits.min_share:
        return None
    return (removed, returned, removed / (removed + returned))


def _filter_detail(plan: Plan, node: Node, ratio: tuple[float, float, float]) -> str:
    removed, returned, fraction = ratio
    return (
        f"{plan.label(node)} removes {fmt.count(removed)} of {fmt.rows(removed + returned)} "
        f"({fmt.pct(fraction)}) with the filter {node.raw['Filter']}{plan.time_phrase(node)}."
    )


def index_problem(
    plan: Plan, kind: str, severity: str, node: Node, detail: str, columns: Sequence[str], filter_text: str
) -> Problem:
    """The problem with its fix: an index on ``columns``, or why none serves the filter, or the index that
    already would."""
    table = plan.qualified(node) or "the table"
    if not columns:
        fix = (
            f"no plain column of the filter {filter_text} is compared with a constant, so no btree index on "
            "columns serves it: rewrite the condition as column-operator-constant, or index the expression "
            f"it compares (CREATE INDEX CONCURRENTLY ON {table} ((expression)))"
        )
        return Problem(kind, severity, node.id, detail, fix)
    existing = plan.existing_index(node, columns)
    column_list = ", ".join(fmt.ident(c) for c in columns)
    if existing is not None:
        fix = (
            f"the index {existing} already covers ({column_list}) but the planner did not use it: ANALYZE {table}, "
            "and check that the filter compares the columns with values of their own type"
        )
        return Problem(kind, severity, node.id, detail, fix)
    fix = f"CREATE INDEX CONCURRENTLY ON {table} ({column_list})"
    replaced = plan.index_columns(node)
    if kind == "inefficient_index" and replaced and tuple(columns[: len(replaced)]) == replaced:
        fix += f"; it makes {plan.index_name(node)} redundant (DROP INDEX CONCURRENTLY once nothing needs it)"
    return Problem(kind, severity, node.id, detail, fix, plan.candidate(node, columns))


@register
class SeqScanFilter(FilterThresholds, NodeRule):
    """A Seq Scan whose filter removes > 50% (warning) / > 90% (critical) of the rows read, r =
    removed / (removed + returned) with ``Rows Removed by Filter`` and ``Actual Rows`` x loops, >= 1,000 rows
    removed in total, the scan taking >= 10% of the time (or of the blocks). Without ANALYZE (generic plans of
    captured $n statements): a warning when the planner's own estimate keeps < 10% of the table's rows (from
    ``context``, a table of >= 10 x 1,000 rows).

    Anchor: PEV2's filter badge at > 50% / > 90%; pganalyze "Slow Scan" says only "large". The index it
    suggests is a hypothesis, proven with a hypothetical index by ``dbmaint explain``.
    """

    kind = "seq_scan_filter"
    order = 40
    node_types = ("Seq Scan",)
    on_estimates = True

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        ratio = filter_ratio(plan, node, self)
        if ratio is None:
            return [] if plan.analyzed else self._estimated(plan, node)
        severity = self.severity(ratio[2])
        if severity is None:
            return []
        columns = plan.conditions(node, "Filter").index_columns()
        detail = _filter_detail(plan, node, ratio)
        return [index_problem(plan, self.kind, severity, node, detail, columns, str(node.raw["Filter"]))]

    def _estimated(self, plan: Plan, node: Node) -> list[Problem]:
        """Without ANALYZE: the planner's own estimate of what the filter keeps, against the table's row count
        from the database context. Never above a warning: it is an estimate."""
        context = plan.context_for(node)
        if context is None or context.reltuples < 10 * self.min_rows or not node.raw.get("Filter"):
            return []
        kept = float(node.raw.get("Plan Rows", 0.0))
        fraction = 1.0 - kept / context.reltuples
        if fraction <= self.critical:
            return []
        filter_text = str(node.raw["Filter"])
        detail = (
            f"{plan.label(node)} is estimated to keep {fmt.count(kept)} of {fmt.rows(context.reltuples)} "
            f"({fmt.pct(1 - fraction)}) with the filter {filter_text} (an estimate: the plan was not executed)."
        )
        columns = plan.conditions(node, "Filter").index_columns()
        return [index_problem(plan, self.kind, "warning", node, detail, columns, filter_text)]


@register
class InefficientIndex(FilterThresholds, NodeRule):
    """The same as seq_scan_filter, for the ``Filter`` of an Index Scan, Index Only Scan or Bitmap Heap Scan:
    the index finds rows that its filter then throws away. The index suggested adds the filter's columns to
    those of the index condition, and says when it makes the index used redundant.

    Anchor: pganalyze "Inefficient Index" / "Inefficient Index Use".
    """

    kind = "inefficient_index"
    order = 50
    node_types = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
    on_estimates = True

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        ratio = filter_ratio(plan, node, self)
        if ratio is None:
            return []
        severity = self.severity(ratio[2])
        if severity is None:
            return []
        index_key = "Recheck Cond" if node.type == "Bitmap Heap Scan" else "Index Cond"
        index_conditions = plan.conditions(node, index_key)
        columns = index_conditions.merge(plan.conditions(node, "Filter")).index_columns()
        if columns and set(columns) <= set(index_conditions.index_columns()):
            columns = ()  # nothing in the filter a btree could add
        detail = _filter_detail(plan, node, ratio)
        return [index_problem(plan, self.kind, severity, node, detail, columns, str(node.raw["Filter"]))]


@register
class HeapFetches(NodeRule):
    """>= 1,000 ``Heap Fetches`` of an Index Only Scan; their share of the index entries it visited
    (``Actual Rows`` + ``Rows Removed by Filter`` + ``Rows Removed by Index Recheck``, x loops) > 0% info,
    > 40% warning, > 90% critical: the pages are not marked all-visible, so VACUUM.

    Anchor: PEV2.
    """

    kind = "heap_fetches"
    order = 110
    node_types = ("Index Only Scan",)
    min_fetches: float = 1000
    info: float = 0.0  # share of the index entries visited
    warning: float = 0.4
    critical: float = 0.9

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        fetches = node.number("Heap Fetches")
        if fetches < self.min_fetches:
            return []
        visited = (
            node.number("Actual Rows")
            + node.number("Rows Removed by Filter")
            + node.number("Rows Removed by Index Recheck")
        ) * (node.loops or 0)
        fraction = min(1.0, fetches / max(visited, 1.0))
        severity = fmt.grade(fraction, (self.info, self.warning, self.critical))
        if severity is None:
            return []
        table = plan.qualified(node) or "the table"
        detail = (
            f"{plan.label(node)} had to visit the table {fmt.count(fetches)} times for {fmt.count(visited)} index "
            f"entries ({fmt.pct(fraction)}): those pages are not marked all-visible."
        )
        fix = (
            f"VACUUM (ANALYZE) {table} to set its visibility map; if it changes all the time, let autovacuum visit "
            f"it sooner: ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_vacuum_insert_scale_factor = 0.02)"
        )
        return [Problem(self.kind, severity, node.id, detail, fix)]


@register
class JoinFilterWaste(FilterThresholds, NodeRule):
    """A ``Join Filter`` that removes > 50% / > 90% of >= 1,000 row combinations (``Rows Removed by Join
    Filter`` x loops against the rows the join returns), the node taking >= 10%. An OR across the two tables
    is rewritten as a UNION; otherwise the inner side gets an index on the condition's columns.

    Anchor: the ratio as seq_scan_filter's; pganalyze "Late Join Filter with OR".
    """

    kind = "join_filter_waste"
    order = 130

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        text = node.raw.get("Join Filter")
        if not text or "Rows Removed by Join Filter" not in node.raw:
            return []
        removed = plan.removed(node, "Rows Removed by Join Filter")
        produced = plan.rows(node)
        if removed < self.min_rows:
            return []
        share = plan.share(node)
        if share is not None and share < self.min_share:
            return []
        fraction = removed / (removed + produced)
        severity = self.severity(fraction)
        if severity is None:
            return []
        detail = (
            f"{plan.label(node)} tried {fmt.count(removed + produced)} row combinations and threw away "
            f"{fmt.count(removed)} ({fmt.pct(fraction)}) with the join filter {text}{plan.time_phrase(node)}."
        )
        candidate = None
        if " OR " in str(text):
            fix = (
                "the OR across the two tables keeps the condition from being a join key: rewrite the query as a "
                "UNION of one join per OR branch, so that each can use an index or a hash"
            )
        else:
            inner = plan.child(node, "Inner")
            while inner is not None and inner.type in ("Materialize", "Memoize", "Hash") and inner.children:
                inner = plan.children(inner)[0]
            columns: tuple[str, ...] = ()
            if inner is not None and inner.raw.get("Relation Name") is not None:
                columns = parse_conditions(str(text), plan.names(inner)).index_columns()
            if inner is not None and columns:
                table = plan.qualified(inner) or "the inner table"
                fix = (
                    f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(fmt.ident(c) for c in columns)}), so that the "
                    "join condition becomes an index condition of the inner side"
                )
                candidate = plan.candidate(inner, columns)
            else:
                fix = (
                    "make the join condition usable as a key: compare plain columns with = (no functions or casts on "
                    "them), so that the planner can hash, merge or index it"
                )
        return [Problem(self.kind, severity, node.id, detail, fix, candidate)]


@register
class LargeOffset(NodeRule):
    """A Limit whose input returned >= 1,000 rows and >= 10x more than the Limit returns (``Actual Rows`` x
    loops of both), unless the query text (when known; read with pglast: ``SelectStmt.limitOffset``) has no
    OFFSET. The fix is keyset pagination on the query's ORDER BY (or the Sort's key).

    Anchor: pganalyze "Large Offset" (no number).
    """

    kind = "large_offset"
    order = 140
    node_types = ("Limit",)
    min_rows: float = 1000.0  # rows read and skipped
    factor: float = 10.0  # rows read / rows returned

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        source = plan.first_input(node)
        if source is None or not source.executed:
            return []
        returned = plan.rows(node)
        read = plan.rows(source)
        skipped = read - returned
        if skipped < self.min_rows or read < self.factor * max(returned, 1.0):
            return []
        facts = plan.query_facts()
        if facts is not None and not facts.has_offset:
            return []
        confirmed = " (the query has an OFFSET)" if facts is not None else ""
        detail = (
            f"{plan.label(node)} read {fmt.rows(read)} to return {fmt.count(returned)}: {fmt.count(skipped)} were "
            f"skipped{confirmed}{plan.time_phrase_total(source)}."
        )
        keys = list(facts.order_by) if facts is not None and facts.order_by else []
        if not keys and source.type == "Sort":
            keys = [str(k) for k in source.raw.get("Sort Key") or []]
        if keys:
            key = ", ".join(keys)
            fix = (
                f"paginate by key instead of OFFSET (keyset pagination): remember the last row's ({key}) and ask for "
                f"the next page with WHERE ({key}) > (<last values>) ORDER BY {key} LIMIT <n>; an index on ({key}) "
                "goes straight to it"
            )
        else:
            fix = (
                "paginate by key instead of OFFSET (keyset pagination): remember the last row's ORDER BY values and "
                "ask for the next page with WHERE (<sort key>) > (<last values>) ORDER BY <sort key> LIMIT <n>; an "
                "index on the sort key goes straight to it"
            )
        return [Problem(self.kind, "warning", node.id, detail, fix)]


@register
class WrongIndexOrderBy(FilterThresholds, PlanRule):
    """A Limit over an Index Scan or Index Only Scan (through Result, Subquery Scan, Gather Merge or Memoize)
    whose ``Filter`` (not its ``Index Cond``) throws away > 50% / > 90% of >= 1,000 rows, the scan taking
    >= 10%: the index was chosen for its order. Its problem silences the filter rules on the same scan. The
    index suggested puts the filter's equality columns before the ORDER BY columns (from the index definition
    in ``context``, or the query's ORDER BY).

    Anchor: pganalyze "Wrong Index Due To ORDER BY".
    """

    kind = "wrong_index_order_by"
    order = 150
    node_types = ("Limit",)
    suppresses = ("seq_scan_filter", "inefficient_index")

    def check(self, plan: Plan) -> list[Problem]:
        found: dict[int, Problem] = {}
        for limit in self.nodes(plan):
            if not limit.executed:
                continue
            scan = plan.first_input(limit)
            while scan is not None and scan.type in ("Result", "Subquery Scan", "Gather Merge", "Memoize"):
                scan = plan.first_input(scan)
            if scan is None or scan.type not in ("Index Scan", "Index Only Scan") or not scan.executed:
                continue
            ratio = filter_ratio(plan, scan, self)
            if ratio is None:
                continue
            removed, returned, fraction = ratio
            severity = self.severity(fraction)
            if severity is None:
                continue
            filters = plan.conditions(scan, "Filter")
            index_columns = set(plan.conditions(scan, "Index Cond").columns)
            equality = [c for c in filters.equality if c not in index_columns]
            if not equality and filters.columns and set(filters.columns) <= index_columns:
                continue
            order = _order_columns(plan, scan)
            columns = unique([*equality, *order]) if equality else []
            index = str(scan.raw.get("Index Name", "the index"))
            detail = (
                f"{plan.label(scan)} walks {index} in ORDER BY order under a LIMIT and removes {fmt.rows(removed)} "
                f"({fmt.pct(fraction)}) with the filter {scan.raw['Filter']} to return {fmt.count(returned)}"
                f"{plan.time_phrase(scan)}."
            )
            table = plan.qualified(scan) or "the table"
            if columns:
                fix = (
                    f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(fmt.ident(c) for c in columns)}): it finds the "
                    "matching rows already in order"
                )
                if not order:
                    fix += " (append the ORDER BY columns to it)"
            else:
                fix = (
                    f"index the filter's columns followed by the ORDER BY columns on {table}, so that the matching "
                    "rows are found in order"
                )
            found[scan.id] = Problem(self.kind, severity, scan.id, detail, fix, plan.candidate(scan, columns))
        return list(found.values())


def _order_columns(plan: Plan, scan: Node) -> list[str]:
    """The columns the scan's index is ordered by: from its definition (``context``) or the query's ORDER BY."""
    indexed = plan.index_columns(scan)
    if indexed:
        return list(indexed)
    facts = plan.query_facts()
    if facts is None:
        return []
    names = plan.names(scan)
    columns = []
    for qualifier, column in facts.order_columns:
        if qualifier is not None and qualifier not in names:
            return []
        columns.append(column)
    return columns
