"""Rules on what runs beside the plan's own work: parallel workers that did not start, and JIT compilation."""

from __future__ import annotations

import math
from collections.abc import Mapping

from dbmaint.explain import fmt
from dbmaint.explain.plan import Node, Plan, Problem
from dbmaint.explain.rules.base import NodeRule, PlanRule, register

DEFAULT_JIT_ABOVE_COST = 100000.0  # PostgreSQL's default jit_above_cost


@register
class JitOverhead(PlanRule):
    """JIT compilation (the ``Total`` of the top-level ``JIT`` object's ``Timing``, or the sum of its parts) of
    >= 1 ms taking > 10% of the execution time: warning; > 50%: critical. The fix raises jit_above_cost above
    the plan's cost, or resets it when the session had lowered it.

    Anchor: pgMustard's JIT tip suggests 10%.
    """

    kind = "jit_overhead"
    order = 180
    warning: float = 0.1  # share of the execution time
    critical: float = 0.5
    min_ms: float = 1.0

    def check(self, plan: Plan) -> list[Problem]:
        jit = plan.top.get("JIT")
        if not isinstance(jit, Mapping) or not plan.execution_ms:
            return []
        timing = jit.get("Timing")
        if not isinstance(timing, Mapping):
            return []
        total = fmt.as_float(timing.get("Total"))
        if total is None:
            parts = [fmt.as_float(timing.get(k)) for k in ("Generation", "Inlining", "Optimization", "Emission")]
            total = sum(p for p in parts if p is not None)
        if total < self.min_ms:
            return []
        share = total / plan.execution_ms
        severity = "critical" if share > self.critical else "warning" if share > self.warning else None
        if severity is None:
            return []
        functions = jit.get("Functions")
        optimize = (fmt.as_float(timing.get("Optimization")) or 0.0) + (fmt.as_float(timing.get("Inlining")) or 0.0)
        cost = float(plan.nodes[0].raw.get("Total Cost", 0.0))
        detail = (
            f"JIT compilation of {functions} functions took {fmt.ms(total)}, {fmt.pct(share)} of the "
            f"{fmt.ms(plan.execution_ms)} execution (inlining and optimization {fmt.ms(optimize)}), for a plan of "
            f"cost {cost:,.0f}."
        )
        above = fmt.as_float(plan.settings.get("jit_above_cost"))
        if above is not None and above < DEFAULT_JIT_ABOVE_COST:
            fix = "RESET jit_above_cost, jit_inline_above_cost, jit_optimize_above_cost (they were lowered)"
        else:
            threshold = max(DEFAULT_JIT_ABOVE_COST, 10 ** math.ceil(math.log10(max(cost, 1.0)) + 0.0001))
            fix = (
                f"raise jit_above_cost above this query's cost: SET jit_above_cost = {threshold:.0f}, or turn JIT off "
                "for it: SET jit = off"
            )
            if optimize > total / 2:
                fix += (
                    f"; to keep the cheap part, raise only jit_inline_above_cost and jit_optimize_above_cost to "
                    f"{threshold:.0f}"
                )
        return [Problem(self.kind, severity, None, detail, fix)]


@register
class WorkersNotLaunched(NodeRule):
    """``Workers Launched`` < ``Workers Planned`` (a Gather or Gather Merge): warning. The fix resets a
    session's max_parallel_workers below the plan's, or else says the pool of workers was in use.

    Anchor: any (PEV2 "WORKERS PLANNED NOT LAUNCHED").
    """

    kind = "workers_not_launched"
    order = 200

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        if "Workers Planned" not in node.raw or "Workers Launched" not in node.raw:
            return []
        planned, launched = int(node.number("Workers Planned")), int(node.number("Workers Launched"))
        if launched >= planned:
            return []
        detail = (
            f"{plan.label(node)} planned {planned} parallel workers but launched {launched}, so the leader did "
            f"{'all the work alone' if launched == 0 else 'more of the work than planned'}."
        )
        forced = plan.settings.get("max_parallel_workers")
        if forced is not None and fmt.as_float(forced) is not None and (fmt.as_float(forced) or 0.0) < planned:
            fix = f"max_parallel_workers is {forced} in this session: RESET max_parallel_workers"
        else:
            fix = (
                "the pool of parallel workers was in use: raise max_parallel_workers (and max_worker_processes, "
                "which needs a restart) if the server has idle CPUs, or lower max_parallel_workers_per_gather so "
                "that plans count on fewer"
            )
        return [Problem(self.kind, "warning", node.id, detail, fix)]
