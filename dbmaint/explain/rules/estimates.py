"""Rules on the planner's row estimates: row misestimates, stale statistics, nested loops from an underestimate.

The three share :func:`misestimated` (is a node's estimate off enough to matter) and :func:`misestimate_fix`
(what corrects an estimate), so that they judge a node the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from dbmaint.explain import fmt
from dbmaint.explain.conditions import Conditions
from dbmaint.explain.plan import JOINS, Node, Plan, Problem
from dbmaint.explain.rules.base import NodeRule, PlanRule, register

_SIMPLE = re.compile(r"[a-z_][a-z0-9_$]*")  # a column name that needs no quotes


class MisestimateThresholds:
    """When a node's row estimate is off enough to report (row_misestimate, stale_statistics)."""

    warning: float = 10.0  # max(A/P, P/A) per loop
    critical: float = 1000.0
    min_rows: float = 100.0  # the rows by which estimate and result differ, over all loops


def misestimated(plan: Plan, node: Node, limits: MisestimateThresholds) -> tuple[float, bool] | None:
    """(max(A/P, P/A), underestimated) of the node when it reaches ``limits``: the ratio and the rows."""
    found = plan.misestimates[node.id]
    if found is None or found[0] < limits.warning:
        return None
    if abs(node.number("Actual Rows") - node.number("Plan Rows")) * (node.loops or 0) < limits.min_rows:
        return None
    return found


def flagged_misestimate(plan: Plan, node: Node, limits: MisestimateThresholds) -> tuple[float, bool] | None:
    """The misestimate row_misestimate reports: one that reaches ``limits`` and is the node's own, not one it
    inherits from its inputs (an error of its own of >= 10x, in the same direction)."""
    found = misestimated(plan, node, limits)
    if found is None:
        return None
    own = _log_error(plan, node) - _expected_error(plan, node)
    if abs(own) < 1 or (own > 0) != found[1]:
        return None  # the error comes from below: reported there
    return found


def _log_error(plan: Plan, node: Node) -> float:
    found = plan.misestimates[node.id]
    if found is None:
        return 0.0
    return math.log10(found[0]) * (1 if found[1] else -1)


def _expected_error(plan: Plan, node: Node) -> float:
    """The error a node inherits from its inputs (log10 of actual/planned)."""
    inputs = [c for c in plan.children(node) if c.relationship not in ("InitPlan", "SubPlan")]
    if node.type == "CTE Scan":  # it reads what the CTE's subplan returned
        name = f"CTE {node.raw.get('CTE Name')}"
        return next((_log_error(plan, n) for n in plan.nodes if n.subplan_name == name), 0.0)
    if not inputs:
        return 0.0
    if node.type in JOINS:
        return sum(_log_error(plan, c) for c in inputs)
    if node.type in ("Append", "Merge Append"):
        actual = sum(c.number("Actual Rows") * (c.loops or 0) for c in inputs)
        planned = sum(c.number("Plan Rows") * (c.loops or 0) for c in inputs)
        return math.log10(max(actual, 1.0) / max(planned, 1.0))
    if len(inputs) == 1:
        return _log_error(plan, inputs[0])
    return 0.0


def misestimate_fix(plan: Plan, node: Node, under: bool) -> str:
    """What corrects the node's row estimate: ANALYZE, extended statistics, a finer sample, a function's ROWS."""
    if node.raw.get("Relation Name") is not None or node.type == "Bitmap Index Scan":
        scan = node
        table = plan.qualified(scan) or "the table"
        conditions = Conditions()
        for key in ("Index Cond", "Recheck Cond", "Filter"):
            conditions = conditions.merge(plan.conditions(scan, key))
        columns = conditions.columns
        if len(columns) >= 2 and under:
            return _create_statistics(table, plan.table(scan)[1] or "t", columns, ("dependencies", "mcv"))
        if len(columns) == 1:
            return (
                f"ANALYZE {table}; if the estimate stays off, sample {columns[0]} more finely: "
                f"ALTER TABLE {table} ALTER COLUMN {fmt.ident(columns[0])} SET STATISTICS 1000; ANALYZE {table}"
            )
        return f"ANALYZE {table}"
    if node.type == "CTE Scan":
        return (
            f"PostgreSQL has no statistics for the rows of CTE {node.raw.get('CTE Name')}, so it estimates its "
            "conditions with default selectivities: move the condition into the CTE, or let the CTE be inlined "
            "(NOT MATERIALIZED), so that it is estimated from the table's statistics"
        )
    if node.type == "Recursive Union":
        return (
            "the planner cannot know how deep a recursive CTE goes and guesses; if the plan above it suffers, "
            "store the result in a temporary table, ANALYZE it, and join that instead"
        )
    if node.type == "Function Scan" and node.raw.get("Function Name"):
        rows = max(1, round(node.number("Actual Rows")))
        return (
            f"tell the planner how many rows {node.raw['Function Name']}() returns: ALTER FUNCTION "
            f"{fmt.ident(str(node.raw['Function Name']))} ROWS {rows} (give its argument types if it is overloaded)"
        )
    if node.type == "Aggregate" or node.type == "Group":
        keys = [str(k) for k in node.raw.get("Group Key") or []]
        tables = _tables_below(plan, node)
        if len(keys) >= 2 and len(tables) == 1:
            group_columns = [k.rsplit(".", 1)[-1] for k in keys]
            if all(_SIMPLE.fullmatch(c) for c in group_columns):
                table = tables[0]
                return _create_statistics(table, table.rsplit(".", 1)[-1], group_columns, ("ndistinct",))
    tables = _tables_below(plan, node)
    if not tables:
        return "ANALYZE the tables this node reads"
    joined = ", ".join(tables)
    if node.type in JOINS:
        return (
            f"ANALYZE {joined}; if the join estimate stays off, the join columns are correlated with the "
            "filters: CREATE STATISTICS on those columns, or rewrite the condition"
        )
    return f"ANALYZE {joined}"


def _tables_below(plan: Plan, node: Node) -> list[str]:
    tables: list[str] = []
    for current in [node, *plan.descendants(node)]:
        name = plan.qualified(current) if current.raw.get("Relation Name") is not None else None
        if name is not None and name not in tables:
            tables.append(name)
    return tables


def _create_statistics(table: str, bare: str, columns: Sequence[str], kinds: Sequence[str]) -> str:
    columns = list(columns)[:8]  # CREATE STATISTICS takes at most 8 columns
    schema = table.rsplit(".", 1)[0] + "." if "." in table else ""
    name = fmt.ident("_".join([bare, *columns, "stats"])[:63])
    listed = ", ".join(fmt.ident(c) for c in columns)
    return (
        f"the planner multiplies the selectivities of ({', '.join(columns)}) as if they were independent: "
        f"CREATE STATISTICS {schema}{name} ({', '.join(kinds)}) ON {listed} FROM {table}; ANALYZE {table}"
    )


@register
class RowMisestimate(MisestimateThresholds, PlanRule):
    """max(A/P, P/A) per loop (A = ``Actual Rows``, P = ``Plan Rows``) >= 10 warning, >= 1,000 critical
    (pgMustard; depesz's top colour), when the rows differ by >= 100 in total and the node adds an error of its
    own of >= 10x (a join above a misestimated scan inherits its error and is not reported again). Not for
    BitmapAnd/BitmapOr (they have no row counts), nor for a node that a Limit, a semi/anti join, a merge join or
    a SubPlan stopped early.

    Anchor: pgMustard flags >= 10; PEV2 and depesz colour at 10/100/1000.
    """

    kind = "row_misestimate"
    order = 20

    def check(self, plan: Plan) -> list[Problem]:
        found = []
        for node in self.nodes(plan):
            flagged = flagged_misestimate(plan, node, self)
            if flagged is None:
                continue
            ratio, under = flagged
            severity = "critical" if ratio >= self.critical else "warning"
            planned, actual = node.number("Plan Rows"), node.number("Actual Rows")
            loops = node.loops or 1
            per_loop = f" per loop ({fmt.count(loops)} loops)" if loops > 1 else ""
            detail = (
                f"{plan.label(node)} was estimated at {fmt.rows(planned)} but returned {fmt.count(actual)}"
                f"{per_loop}: {ratio:,.0f}x {'under' if under else 'over'}estimated."
            )
            found.append(Problem(self.kind, severity, node.id, detail, misestimate_fix(plan, node, under)))
        return found


@register
class StaleStatistics(MisestimateThresholds, PlanRule):
    """A node misestimated by row_misestimate's ratio and rows (whether or not the error is its own), whose
    table (from ``context``) has more rows changed since its last analyze than autoanalyze's own trigger,
    50 + 10% of reltuples, or was never analyzed. Once per table. A plan of estimates alone (no ANALYZE)
    has no misestimate to show: there, a table never analyzed with more rows changed than that trigger is
    reported on its own, since every estimate on it is a guess.

    Read from: ``pg_stat_user_tables`` (``last_analyze``/``last_autoanalyze``, ``n_mod_since_analyze``) and
    ``pg_class.reltuples``. Anchor: pganalyze gives no number; the trigger is autoanalyze's, with the defaults
    of autovacuum_analyze_threshold and autovacuum_analyze_scale_factor.
    """

    kind = "stale_statistics"
    order = 30
    base: float = 50  # autovacuum_analyze_threshold's default
    scale: float = 0.1  # autovacuum_analyze_scale_factor's default

    def check(self, plan: Plan) -> list[Problem]:
        if not plan.analyzed:
            return self._never_analyzed(plan)
        found = []
        seen: set[str] = set()
        for node in self.nodes(plan):
            estimate = misestimated(plan, node, self)
            if estimate is None:
                continue
            scan = plan.scanned(node)
            table = plan.context_for(scan)
            if table is None or table.relation in seen:
                continue
            trigger = self.base + self.scale * max(table.reltuples, 0.0)
            if table.last_analyze is not None and table.n_mod_since_analyze <= trigger:
                continue
            seen.add(table.relation)
            name = plan.qualified(scan) or table.relation
            if table.last_analyze is None:
                why = f"Table {table.relation} has never been analyzed"
            else:
                why = (
                    f"Table {table.relation} has {fmt.rows(table.n_mod_since_analyze)} changed since its last "
                    f"analyze ({table.last_analyze:%Y-%m-%d %H:%M}), more than the {fmt.count(trigger)} that trigger "
                    "autoanalyze"
                )
            ratio, under = estimate
            severity = "critical" if ratio >= self.critical else "warning"
            detail = (
                f"{why}, and {plan.label(node)} was {ratio:,.0f}x {'under' if under else 'over'}estimated "
                f"({fmt.rows(node.number('Plan Rows'))} planned, {fmt.count(node.number('Actual Rows'))} returned)."
            )
            fix = (
                f"ANALYZE {name}; if autovacuum keeps falling behind on it, analyze it sooner: "
                f"ALTER TABLE {name} SET (autovacuum_analyze_scale_factor = 0.02)"
            )
            found.append(Problem(self.kind, severity, node.id, detail, fix))
        return found

    def _never_analyzed(self, plan: Plan) -> list[Problem]:
        found = []
        seen: set[str] = set()
        for node in self.nodes(plan):
            table = plan.context_for(node)
            if table is None or table.relation in seen or table.last_analyze is not None:
                continue
            if table.n_mod_since_analyze <= self.base + self.scale * max(table.reltuples, 0.0):
                continue
            seen.add(table.relation)
            name = plan.qualified(node) or table.relation
            detail = (
                f"Table {table.relation} has never been analyzed and {fmt.rows(table.n_mod_since_analyze)} changed "
                f"since it was created: the planner has no statistics for it, and {plan.label(node)}'s estimate "
                f"({fmt.rows(node.number('Plan Rows'))}) is a guess, as is every plan choice that follows from it."
            )
            found.append(Problem(self.kind, "warning", node.id, detail, f"ANALYZE {name}"))
        return found


@register
class NestedLoopUnderestimate(NodeRule):
    """The inner side of a nested loop ran >= 1,000 times and >= 10x the loops the outer side's estimate
    promised (``Plan Rows`` of the outer child x the loop's own loops, against the inner child's ``Actual
    Loops``); critical at >= 1,000x. The fix corrects the estimate where row_misestimate would: at the deepest
    node under the outer side whose own estimate went wrong.

    Anchor: pganalyze "Inefficient Nested Loops" (no number).
    """

    kind = "nested_loop_underestimate"
    order = 120
    node_types = ("Nested Loop",)
    factor: float = 10.0  # inner loops / the outer rows estimated
    critical: float = 1000.0
    min_loops: float = 1000

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        outer, inner = plan.child(node, "Outer"), plan.child(node, "Inner")
        if outer is None or inner is None or inner.loops is None:
            return []
        promised = max(1.0, outer.number("Plan Rows") * (node.loops or 0))
        loops = inner.loops
        factor = loops / promised
        if loops < self.min_loops or factor < self.factor:
            return []
        severity = "critical" if factor >= self.critical else "warning"
        detail = (
            f"{plan.label(node)} ran its inner side ({plan.label(inner)}) {fmt.count(loops)} times where the outer "
            f"estimate promised {fmt.count(promised)} ({factor:,.0f}x more){plan.time_phrase_total(node)}."
        )
        source = _misestimate_source(plan, outer)
        if source is not None:
            under = bool((plan.misestimates[source.id] or (0.0, True))[1])
            fix = f"correct the outer side's estimate at {plan.label(source)}: {misestimate_fix(plan, source, under)}"
        else:
            fix = f"correct the outer side's row estimate ({plan.label(outer)}): ANALYZE the tables it reads"
        if inner.type == "Seq Scan":
            fix += "; and give the inner side an index on its join columns so that each loop is cheap"
        return [Problem(self.kind, severity, node.id, detail, fix)]


def _misestimate_source(plan: Plan, node: Node) -> Node | None:
    """The deepest node under (or at) ``node`` whose own estimate went wrong, as row_misestimate judges it."""
    limits = RowMisestimate()
    best = None
    for current in [node, *plan.descendants(node)]:
        if current.relationship in ("InitPlan", "SubPlan"):
            continue
        if flagged_misestimate(plan, current, limits) is not None and (best is None or current.depth > best.depth):
            best = current
    return best
