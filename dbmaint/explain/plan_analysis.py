"""What an ``EXPLAIN (FORMAT JSON)`` plan says: per-node figures, and the problems in it with their fixes.

Pure: no I/O and no database access. The input is what psycopg returns for ``EXPLAIN (FORMAT JSON)`` (a list
with one object), that object itself, or auto_explain's ``{"Query Text": ..., "Plan": ...}``, with or without
ANALYZE, BUFFERS, VERBOSE, SETTINGS, WAL and TIMING OFF.

The plan model and the records are in :mod:`dbmaint.explain.plan` (how the figures are computed), the rules in
:mod:`dbmaint.explain.rules` (one class per kind of problem, with its thresholds; ``docs/plan-problems.md``
lists them), the parsing of conditions and queries in :mod:`dbmaint.explain.conditions`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from dbmaint.explain import rules
from dbmaint.explain.plan import SEVERITIES, NodeFigures, Plan, PlanAnalysis, Problem, TableContext

__all__ = ["NodeFigures", "PlanAnalysis", "Problem", "TableContext", "analyse"]


def analyse(
    explain: Any, *, context: Mapping[str, TableContext] | None = None, query: str | None = None
) -> PlanAnalysis:
    """The figures and problems of one EXPLAIN (FORMAT JSON) document.

    ``context`` maps schema-qualified table names to what the database knows about them (for stale
    statistics, existing indexes and unindexed foreign keys); ``query`` is the statement's text (auto_explain's
    ``Query Text`` is used when it is not given), read with pglast to confirm an OFFSET and find ORDER BY.
    Problems are sorted by severity, then by kind in the registry's order, then by node (plan-wide first).
    """
    top = _top(explain)
    if query is None and isinstance(top.get("Query Text"), str):
        query = top["Query Text"]
    plan = Plan(top, context or {}, query)
    problems = sorted(
        rules.run(plan),
        key=lambda p: (SEVERITIES.index(p.severity), rules.KINDS.index(p.kind), -1 if p.node is None else p.node),
    )
    return PlanAnalysis(
        analyzed=plan.analyzed,
        nodes=tuple(plan.figures),
        problems=tuple(problems),
        execution_ms=plan.execution_ms,
        planning_ms=plan.planning_ms,
        total_cost=float(plan.nodes[0].raw.get("Total Cost", 0.0)),
        settings=MappingProxyType({str(k): str(v) for k, v in (top.get("Settings") or {}).items()}),
    )


def _top(explain: Any) -> Mapping[str, Any]:
    document = explain
    if isinstance(document, (str, bytes)):
        document = json.loads(document)
    if isinstance(document, Sequence) and not isinstance(document, (str, bytes)):
        if len(document) != 1:
            raise ValueError(f"expected one EXPLAIN result, got a list of {len(document)}")
        document = document[0]
    if not isinstance(document, Mapping) or not isinstance(document.get("Plan"), Mapping):
        raise ValueError('not an EXPLAIN (FORMAT JSON) document: no "Plan" object')
    return document
