"""The registry of plan rules, the function that runs them on a plan, and the catalogue made from them. Pure.

Each rule is one class in the module of its family (``estimates``, ``filters_indexes``, ``memory``, ``io``,
``parallel``, ``plan_wide``), registered with :func:`~dbmaint.explain.rules.base.register`: its kind, what it
looks at, its thresholds and its docstring are in the class (see :mod:`dbmaint.explain.rules.base`). Adding
a rule is one class in one of those modules, plus a plan or a hand-made case that raises it in the tests.

``docs/plan-problems.md`` lists the rules from this registry: ``python -m dbmaint.explain.rules --write
docs/plan-problems.md`` rewrites its table, and a unit test fails when the file and the registry differ.
"""

from __future__ import annotations

import dataclasses
import inspect

from dbmaint.explain.plan import Plan, Problem
from dbmaint.explain.rules import estimates, filters_indexes, io, memory, parallel, plan_wide
from dbmaint.explain.rules.base import REGISTERED, NodeRule, PlanRule, ReviewRule, Rule
from dbmaint.generated_docs import with_section

FAMILIES = tuple(
    module.__name__.rpartition(".")[2] for module in (estimates, filters_indexes, memory, io, parallel, plan_wide)
)
RULES: tuple[Rule, ...] = tuple(sorted(REGISTERED, key=lambda rule: rule.order))
KINDS = tuple(rule.kind for rule in RULES)  # the order problems of the same severity are listed in
CRITICAL_MIN_MS = 10.0  # planning and execution: a faster statement has no critical problem


def run(plan: Plan) -> list[Problem]:
    """Every problem in the plan, in the order found (``analyse`` sorts them).

    The plan rules listed before every node rule run first; then, node by node in the plan's order, the node
    rules in the registry's order (never on a never-executed node, except a rule ``on_estimates`` when the plan
    was not executed at all); then the other plan rules. A problem silences those of the kinds its rule
    ``suppresses`` on the same node. The review rules run last, on what the others found, and their problems
    come first. Last, :func:`urgency`.
    """
    node_rules = [rule for rule in RULES if isinstance(rule, NodeRule)]
    plan_rules = [rule for rule in RULES if isinstance(rule, PlanRule)]
    first_node_rule = min((rule.order for rule in node_rules), default=0)
    found: list[Problem] = []
    for whole in plan_rules:
        if whole.order < first_node_rule:
            found += whole.check(plan)
    for node in plan.nodes:
        if plan.analyzed and not node.executed:
            continue
        for each in node_rules:
            if each.looks_at(node) and (node.executed or each.on_estimates):
                found += each.check(plan, node)
    for whole in plan_rules:
        if whole.order > first_node_rule:
            found += whole.check(plan)
    suppressed = {rule.kind: rule.suppresses for rule in RULES}
    silenced = {(kind, p.node) for p in found if p.node is not None for kind in suppressed[p.kind]}
    found = [p for p in found if (p.kind, p.node) not in silenced]
    in_order = sorted(found, key=lambda p: KINDS.index(p.kind))
    reviewed = [p for rule in RULES if isinstance(rule, ReviewRule) for p in rule.review(plan, in_order)]
    return urgency(plan, reviewed + found)


def urgency(plan: Plan, found: list[Problem]) -> list[Problem]:
    """Critical means it makes the statement slow: in a statement that took less than CRITICAL_MIN_MS to
    plan and run, the same problems are warnings. A 99.9% filter in an 8 ms scan is worth an index, not
    an alarm."""
    planning = plan.planning_ms or 0.0
    if plan.execution_ms is None or plan.execution_ms + planning >= CRITICAL_MIN_MS:
        return found
    return [dataclasses.replace(p, severity="warning") if p.severity == "critical" else p for p in found]


# --- the catalogue -------------------------------------------------------------------------------------------

BEGIN = (
    "<!-- The rules, generated from dbmaint/explain/rules: `python -m dbmaint.explain.rules --write "
    "docs/plan-problems.md` rewrites what is between these lines. -->"
)
END = "<!-- End of the generated rules. -->"


def description(rule: Rule) -> str:
    """The rule's docstring; "" when it has none."""
    return inspect.cleandoc(type(rule).__doc__ or "")


def catalogue() -> str:
    """The rules as the table of ``docs/plan-problems.md``: kind, family, what it looks at, its thresholds
    (their names and values) and its docstring, in the registry's order."""
    lines = [
        BEGIN,
        "",
        f"Problems are listed by severity (critical, warning, info), then in the order of this table, then by node. "
        f"A statement that takes less than {_number(CRITICAL_MIN_MS)} ms to plan and run has no critical problem: "
        "what would be critical is a warning.",
        "",
        "| kind | family | looks at | thresholds | what it flags, and when |",
        "|---|---|---|---|---|",
    ]
    for rule in RULES:
        thresholds = "<br>".join(f"`{name}` = {_number(value)}" for name, value in rule.thresholds().items())
        text = "<br><br>".join(" ".join(p.split()) for p in description(rule).replace("``", "`").split("\n\n"))
        cells = [f"`{rule.kind}`", rule.family, _looks_at(rule), thresholds or "—", text.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def with_catalogue(document: str) -> str:
    """``document`` (docs/plan-problems.md) with what is between its BEGIN and END lines made anew."""
    return with_section(document, BEGIN, END, catalogue())


def _looks_at(rule: Rule) -> str:
    types = " / ".join(rule.node_types)
    if rule.scope == "node":
        text = f"each {types} node" if types else "each node"
    else:
        text = f"the whole plan ({types} nodes)" if types else "the whole plan"
    if rule.on_estimates:
        text += "; also without ANALYZE"
    if isinstance(rule, ReviewRule):
        text += "; after the other rules, with their problems"
    if rule.suppresses:
        text += "; silences " + ", ".join(f"`{kind}`" for kind in rule.suppresses) + " on its node"
    return text


def _number(value: float) -> str:
    return f"{int(value):,}" if float(value).is_integer() else f"{value:g}"
