"""Rules on the plan as a whole: where the time goes (the hot node), planning time, slow triggers, and the
non-default settings the plan was made with."""

from __future__ import annotations

from collections.abc import Sequence

from dbmaint.explain import fmt
from dbmaint.explain.plan import Node, Plan, Problem
from dbmaint.explain.rules.base import PlanRule, ReviewRule, register


@register
class HotNode(ReviewRule):
    """A node's exclusive share of the execution time > 10% info, > 40% warning, > 90% critical; only nodes
    with >= 10 ms of their own (with TIMING OFF: >= 1,000 blocks of their own, and their share of the blocks x
    the execution time >= 10 ms), and not in a plan with a single executed node (it always takes all the
    time). Judged at the low end of what the rounding of per-loop times allows (0.002 ms x 30,000 loops is 45
    to 75 ms). A healthy query that runs long still has a hot node: that is where to look, not a fault. Its fix
    points at the node's other problems when it has any.

    Anchor: PEV2 (c-2/3/4) and depesz (0.1/0.5/0.9) colour nodes by their share of the time.
    """

    kind = "hot_node"
    order = 10
    info: float = 0.1  # exclusive share of the execution time (with TIMING OFF: of the blocks)
    warning: float = 0.4
    critical: float = 0.9
    min_ms: float = 10.0
    min_blocks: float = 1000  # with TIMING OFF

    def review(self, plan: Plan, others: Sequence[Problem]) -> list[Problem]:
        executed = [n for n in self.nodes(plan) if n.executed]
        if len(executed) < 2:
            return []
        found = []
        for node in executed:
            share = plan.share(node)
            if share is None:
                continue
            exclusive, low = plan.exclusive[node.id], plan.exclusive_low[node.id]
            if exclusive is not None and low is not None and plan.execution_ms:
                if low < self.min_ms:
                    continue
                share = low / plan.execution_ms  # what the rounding of per-loop times cannot take away
                amount = (
                    f"{fmt.ms(exclusive)} of its own, {fmt.pct(exclusive / plan.execution_ms)} of the execution time"
                )
            else:
                if plan.blocks(node) < self.min_blocks or (plan.execution_ms or self.min_ms) * share < self.min_ms:
                    continue
                amount = f"{plan.blocks(node):,} block accesses of its own, {fmt.pct(share)} of all (timing was off)"
            severity = fmt.grade(share, (self.info, self.warning, self.critical))
            if severity is None:
                continue
            kinds = list(dict.fromkeys(p.kind for p in others if p.node == node.id))  # in the registry's order
            found.append(
                Problem(self.kind, severity, node.id, f"{plan.label(node)} takes {amount}.", _fix(plan, node, kinds))
            )
        return found


def _fix(plan: Plan, node: Node, kinds: Sequence[str]) -> str:
    if kinds:
        return f"see the {', '.join(kinds)} problem{'s' if len(kinds) > 1 else ''} of this node for the fix"
    kind = node.type
    rows = plan.rows(node)
    if kind == "Seq Scan":
        return (
            f"it reads all of {plan.qualified(node) or 'the table'} ({fmt.rows(rows)}): "
            "add a WHERE condition an index can serve, or read fewer rows"
        )
    if kind in ("Sort", "Incremental Sort"):
        keys = ", ".join(str(k) for k in node.raw.get("Sort Key") or [])
        return (
            f"an index on the sort key ({keys}) returns the rows in order without a sort"
            if keys
            else ("an index in the sort order returns the rows without a sort")
        )
    if kind == "Nested Loop":
        inner = plan.child(node, "Inner")
        loops = inner.loops if inner is not None and inner.loops else 0
        return f"its inner side runs {fmt.count(loops)} times: make each loop cheaper or let the planner hash"
    if kind in ("Hash Join", "Hash", "Merge Join"):
        return f"it joins {fmt.rows(rows)}: filter the inputs earlier so that fewer rows reach the join"
    if kind == "Aggregate":
        return f"it aggregates its input into {fmt.rows(rows)}: aggregate fewer rows, or pre-aggregate them"
    if kind in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"):
        return f"it fetches {fmt.rows(rows)} through {node.raw.get('Index Name') or 'the index'}: return fewer"
    return f"it is where the time goes ({fmt.rows(rows)}): look here first"


@register
class PlanningTime(PlanRule):
    """``Planning Time`` of >= 10 ms taking > 10% / 40% / 90% of ``Planning Time`` + ``Execution Time``: info,
    warning, critical. The fix: prepared statements, lower collapse limits, partition pruning at plan time.

    Anchor: PEV2's ``planningTimeClass``.
    """

    kind = "planning_time"
    order = 190
    info: float = 0.1  # share of planning and execution together
    warning: float = 0.4
    critical: float = 0.9
    min_ms: float = 10.0

    def check(self, plan: Plan) -> list[Problem]:
        planning = plan.planning_ms
        execution = fmt.as_float(plan.top.get("Execution Time"))
        if planning is None or execution is None or planning < self.min_ms:
            return []
        share = planning / (planning + execution)
        severity = fmt.grade(share, (self.info, self.warning, self.critical))
        if severity is None:
            return []
        detail = (
            f"Planning took {fmt.ms(planning)}, {fmt.pct(share)} of planning and execution together "
            f"(execution {fmt.ms(execution)})."
        )
        fix = (
            "prepare the statement (PREPARE, or the driver's prepared statements) so that its plan is reused; "
            "with many joined tables, lower join_collapse_limit and from_collapse_limit (default 8) or geqo_threshold, "
            "and compare partition keys with constants so that partitions are pruned while planning"
        )
        return [Problem(self.kind, severity, None, detail, fix)]


@register
class SlowTrigger(PlanRule):
    """A trigger (top-level ``Triggers[]``) whose ``Time`` of >= 1 ms is > 10% (warning) / > 50% (critical) of
    the execution time. One with a ``Constraint Name`` is a foreign key's check: the fix indexes the referencing
    columns (from ``context``'s unindexed foreign keys, or says how to find them).

    Anchor: none published; 10% suggested.
    """

    kind = "slow_trigger"
    order = 210
    warning: float = 0.1  # share of the execution time
    critical: float = 0.5
    min_ms: float = 1.0

    def check(self, plan: Plan) -> list[Problem]:
        found = []
        execution = plan.execution_ms
        for trigger in plan.top.get("Triggers") or []:
            spent = fmt.as_float(trigger.get("Time"))
            if spent is None or not execution or spent < self.min_ms:
                continue
            share = spent / execution
            severity = "critical" if share > self.critical else "warning" if share > self.warning else None
            if severity is None:
                continue
            name = str(trigger.get("Trigger Name", "?"))
            constraint = trigger.get("Constraint Name")
            on = trigger.get("Relation")
            calls = int(trigger.get("Calls") or 0)
            what = f"for constraint {constraint}" if constraint else ""
            detail = (
                f"Trigger {name} {what} on {on} took {fmt.ms(spent)} over {fmt.count(calls)} calls, "
                f"{fmt.pct(share)} of the execution time."
            ).replace("  ", " ")
            fix, candidate = _trigger_fix(plan, name, None if constraint is None else str(constraint))
            found.append(Problem(self.kind, severity, None, detail, fix, candidate))
        return found


def _trigger_fix(plan: Plan, name: str, constraint: str | None) -> tuple[str, tuple[str, str, tuple[str, ...]] | None]:
    if constraint is None:
        return (f"look at what trigger {name}'s function does for each row; make it cheaper, or set-based", None)
    for table in plan.context.values():
        for fk, columns in table.fk_without_index:
            if fk == constraint and columns:
                schema, _, relation = table.relation.rpartition(".")
                name_sql = f"{fmt.ident(schema)}.{fmt.ident(relation)}" if schema else fmt.ident(relation)
                fix = (
                    f"CREATE INDEX CONCURRENTLY ON {name_sql} ({', '.join(fmt.ident(c) for c in columns)}): the "
                    f"foreign key {constraint} is checked with a scan of {table.relation} for every changed row"
                )
                return (fix, (schema, relation, tuple(columns)) if schema else None)
    if name.startswith("RI_ConstraintTrigger_a_"):
        # Advice for a person to run, never executed here.
        lookup = "SELECT conrelid::regclass, pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = "
        fix = (
            f"the foreign key {constraint} is checked with a scan of the referencing table for every row changed "
            f"here: index its referencing columns ({lookup}'{constraint.replace(chr(39), chr(39) * 2)}' names them)"
        )
        return (fix, None)
    return (
        f"the check of constraint {constraint} is slow: look for lock waits on the referenced rows, and make "
        "sure the referenced key is indexed",
        None,
    )


@register
class NonDefaultSettings(PlanRule):
    """Any top-level ``Settings`` (EXPLAIN's SETTINGS option: the planner settings that differ from the
    defaults, e.g. work_mem): info; warning when an ``enable_*`` planner switch is off.

    Anchor: always shown.
    """

    kind = "non_default_settings"
    order = 230

    def check(self, plan: Plan) -> list[Problem]:
        if not plan.settings:
            return []
        listed = ", ".join(f"{k} = {v}" for k, v in sorted(plan.settings.items()))
        switches = sorted(k for k, v in plan.settings.items() if k.startswith("enable_") and v == "off")
        if switches:
            detail = f"The plan was made with non-default settings ({listed}), planner switches among them."
            fix = (
                f"planner switches are for diagnosis, not for production: RESET {', '.join(switches)} and fix the "
                "cause (statistics, indexes) instead; check that the other settings are intended"
            )
            return [Problem(self.kind, "warning", None, detail, fix)]
        detail = f"The plan was made with non-default settings: {listed}."
        fix = "check that these are intended for this query: ALTER ROLE/DATABASE ... SET or SET LOCAL applies them"
        return [Problem(self.kind, "info", None, detail, fix)]
