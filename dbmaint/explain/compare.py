"""Two plans side by side: which is faster, cheaper, lighter on buffers, which nodes and problems changed.

Pure: no I/O. The input is two :class:`~dbmaint.explain.plan.PlanAnalysis`, ``before`` (the baseline) and
``after`` (the candidate); every ratio says what ``after`` is relative to ``before`` ("2.3x faster").

* Figures: execution and planning time (when both plans were executed), the planner's total cost, the rows
  the statement returned (actual when both were executed, else estimated), the shared buffers hit and read
  and the temp blocks read and written (the root node's counters, which include every node below it).
* Nodes are matched by (node type, relation, index), in plan order: a node whose key only one plan has was
  removed or added; a matched node is reported as changed when its label changed (sort method, batches,
  join type ...), or its exclusive time, rows or loops changed at least ``NODE_FACTOR`` times (time: by at
  least ``NODE_MIN_MS`` too).
* Problems are matched by (kind, the key of their node): those only ``before`` has were fixed, those only
  ``after`` has are new.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from dbmaint.explain.plan import NodeFigures, PlanAnalysis, Problem
from dbmaint.units import format_ms, format_rows

SAME_WITHIN = 1.05  # a ratio closer to 1 than this is "about the same"
NODE_FACTOR = 2.0
NODE_MIN_MS = 1.0
NODE_MIN_ROWS = 100.0

NodeKey = tuple[str, str | None, str | None]  # (node type, relation, index)

# name: (what it is, the word when after is lower, the word when after is higher, lower is better)
_FIGURES: dict[str, tuple[str, str, str, bool | None]] = {
    "execution_ms": ("execution time", "faster", "slower", True),
    "planning_ms": ("planning time", "faster", "slower", True),
    "total_cost": ("estimated cost", "cheaper", "costlier", True),
    "rows": ("rows returned", "fewer", "more", None),
    "estimated_rows": ("rows returned (estimated)", "fewer", "more", None),
    "shared_hit": ("buffers hit", "fewer", "more", True),
    "shared_read": ("buffers read", "fewer", "more", True),
    "temp_blocks": ("temp blocks read and written", "fewer", "more", True),
}


@dataclass(frozen=True)
class Figure:
    """One figure of both plans and how ``after`` compares with ``before``."""

    name: str  # execution_ms, planning_ms, total_cost, rows or estimated_rows, shared_hit, shared_read, temp_blocks
    before: float | None
    after: float | None
    ratio: float | None  # after / before (None when either is missing or before is 0)
    change: str | None  # "2.3x faster", "about the same", "same", "none before"; None when either is missing
    better: bool | None  # after is better (None: no judgement, or no real change)

    @property
    def title(self) -> str:
        return _FIGURES[self.name][0]

    def to_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "before": self.before,
            "after": self.after,
            "ratio": None if self.ratio is None else round(self.ratio, 4),
            "change": self.change,
            "better": self.better,
        }


@dataclass(frozen=True)
class NodeChange:
    """A node only one plan has (removed, added), or one both have whose figures or label changed."""

    change: str  # removed, added, changed
    node_type: str
    relation: str | None
    index: str | None
    before: NodeFigures | None
    after: NodeFigures | None
    detail: str  # what changed, for people

    def to_json(self) -> dict[str, Any]:
        return {
            "change": self.change,
            "node_type": self.node_type,
            "relation": self.relation,
            "index": self.index,
            "before": _node_json(self.before),
            "after": _node_json(self.after),
            "detail": self.detail,
        }


@dataclass(frozen=True)
class ProblemChange:
    """A problem only one of the plans has: ``before`` only (fixed), or ``after`` only (new)."""

    side: str  # before, after
    problem: Problem
    node_label: str | None

    def to_json(self) -> dict[str, Any]:
        return {**self.problem.to_json(), "side": self.side, "node_label": self.node_label}


@dataclass(frozen=True)
class PlanComparison:
    summary: str  # one sentence: the verdict with its evidence
    same_shape: bool
    figures: tuple[Figure, ...]
    nodes: tuple[NodeChange, ...]
    fixed: tuple[ProblemChange, ...]  # only before has them
    new: tuple[ProblemChange, ...]  # only after has them
    kept: tuple[str, ...]  # kinds of the problems both have

    def figure(self, name: str) -> Figure | None:
        return next((f for f in self.figures if f.name == name), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "summary": self.summary,
            "same_shape": self.same_shape,
            "figures": [f.to_json() for f in self.figures],
            "nodes": [n.to_json() for n in self.nodes],
            "problems_only_before": [p.to_json() for p in self.fixed],
            "problems_only_after": [p.to_json() for p in self.new],
            "problems_in_both": list(self.kept),
        }


def compare(before: PlanAnalysis, after: PlanAnalysis) -> PlanComparison:
    figures = _figures(before, after)
    nodes = _node_changes(before, after)
    fixed, new, kept = _problem_changes(before, after)
    same_shape = before.shape_signature() == after.shape_signature()
    return PlanComparison(
        summary=_summary(figures, nodes, same_shape),
        same_shape=same_shape,
        figures=tuple(figures),
        nodes=tuple(nodes),
        fixed=tuple(fixed),
        new=tuple(new),
        kept=tuple(kept),
    )


def node_key(node: NodeFigures) -> NodeKey:
    return (node.node_type, node.relation, node.index)


def describe_key(key: NodeKey) -> str:
    """Seq Scan on public.orders, Index Scan using orders_pkey on public.orders."""
    node_type, relation, index = key
    text = node_type
    if index is not None:
        text += f" on {index}" if node_type == "Bitmap Index Scan" else f" using {index}"
    if relation is not None and node_type != "Bitmap Index Scan":
        text += f" on {relation}"
    return text


def ratio_phrase(before: float, after: float, lower: str, higher: str, *, whole: bool = False) -> str:
    """How ``after`` compares with ``before``: "2.3x faster", "about the same", "same", "none before"."""
    if before == after:
        return "same"
    if before == 0:
        return "none before"
    if after == 0:
        return "none after"
    ratio = before / after
    if not whole and 1 / SAME_WITHIN < ratio < SAME_WITHIN:
        return "about the same"
    if ratio > 1:
        return f"{format_ratio(ratio)}x {lower}"
    return f"{format_ratio(1 / ratio)}x {higher}"


def format_ratio(ratio: float) -> str:
    if ratio >= 10:
        return f"{ratio:,.0f}"
    if ratio >= 1.05:
        return f"{ratio:.1f}"
    return f"{ratio:.2f}"


def format_figure(name: str, value: float | None) -> str:
    """A figure for people: 23.4 ms, 2,812, 1,312."""
    if value is None:
        return "-"
    if name.endswith("_ms"):
        return format_ms(value)
    if name == "total_cost":
        return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,.0f}"


# --- figures ----------------------------------------------------------------------------------------------


def _figures(before: PlanAnalysis, after: PlanAnalysis) -> list[Figure]:
    values: list[tuple[str, float | None, float | None]] = []
    if before.execution_ms is not None or after.execution_ms is not None:
        values.append(("execution_ms", before.execution_ms, after.execution_ms))
    if before.planning_ms is not None or after.planning_ms is not None:
        values.append(("planning_ms", before.planning_ms, after.planning_ms))
    values.append(("total_cost", before.total_cost, after.total_cost))
    root_before, root_after = _root(before), _root(after)
    if (
        root_before is not None
        and root_after is not None
        and root_before.actual_rows is not None
        and root_after.actual_rows is not None
    ):
        values.append(("rows", root_before.actual_rows, root_after.actual_rows))
    else:
        values.append(("estimated_rows", _estimated_rows(root_before), _estimated_rows(root_after)))
    for name, keys in (
        ("shared_hit", ("Shared Hit Blocks",)),
        ("shared_read", ("Shared Read Blocks",)),
        ("temp_blocks", ("Temp Read Blocks", "Temp Written Blocks")),
    ):
        counted = _counter(root_before, keys), _counter(root_after, keys)
        if counted != (None, None):
            values.append((name, *counted))
    return [_figure(name, b, a) for name, b, a in values]


def _figure(name: str, before: float | None, after: float | None) -> Figure:
    _, lower, higher, lower_is_better = _FIGURES[name]
    if before is None or after is None:
        return Figure(name, before, after, None, None, None)
    whole = name not in ("execution_ms", "planning_ms")  # counts and costs: any difference is real
    change = ratio_phrase(before, after, lower, higher, whole=whole)
    ratio = after / before if before else None
    better = None
    if lower_is_better is not None and change not in ("same", "about the same"):
        better = (after < before) == lower_is_better
    return Figure(name, before, after, ratio, change, better)


def _summary(figures: Sequence[Figure], nodes: Sequence[NodeChange], same_shape: bool) -> str:
    by_name = {f.name: f for f in figures}
    lead = by_name.get("execution_ms")
    if lead is None or lead.change is None:
        lead = by_name["total_cost"]
    assert lead.change is not None  # the total cost is always known
    head = "about the same" if lead.change in ("same", "about the same") else lead.change
    values = f"{format_figure(lead.name, lead.before)} -> {format_figure(lead.name, lead.after)}"
    sentence = f"after: {head} ({lead.title} {values})"
    execution = by_name.get("execution_ms")
    if execution is not None and execution.change is None:
        sentence += f"; only {'before' if execution.before is not None else 'after'} was executed"
    if same_shape:
        sentence += "; the same plan"
    else:
        counts = {change: sum(1 for n in nodes if n.change == change) for change in ("removed", "added", "changed")}
        listed = ", ".join(f"{count} {change}" for change, count in counts.items() if count)
        sentence += "; a different plan" + (f" (nodes: {listed})" if listed else "")
    rows = by_name.get("rows")
    if rows is not None and rows.change not in (None, "same"):
        sentence += (
            f"; the statements return different numbers of rows ({format_figure('rows', rows.before)} before, "
            f"{format_figure('rows', rows.after)} after)"
        )
    return sentence


def _root(analysis: PlanAnalysis) -> NodeFigures | None:
    return analysis.nodes[0] if analysis.nodes else None


def _estimated_rows(root: NodeFigures | None) -> float | None:
    return None if root is None else root.plan_rows


def _counter(root: NodeFigures | None, keys: Sequence[str]) -> float | None:
    if root is None or not any(key in root.detail for key in keys):
        return None
    return float(sum(float(root.detail.get(key) or 0) for key in keys))


# --- nodes ------------------------------------------------------------------------------------------------

T = TypeVar("T")


def _pair(
    before: Sequence[T], after: Sequence[T], key_before: Callable[[T], Any], key_after: Callable[[T], Any]
) -> tuple[list[tuple[T, T]], list[T], list[T]]:
    """Items matched by key in order (the first with the first), and those left on either side."""
    waiting: dict[Any, list[int]] = {}
    for position, item in enumerate(after):
        waiting.setdefault(key_after(item), []).append(position)
    pairs: list[tuple[T, T]] = []
    removed: list[T] = []
    matched: set[int] = set()
    for item in before:
        candidates = waiting.get(key_before(item))
        if candidates:
            position = candidates.pop(0)
            matched.add(position)
            pairs.append((item, after[position]))
        else:
            removed.append(item)
    added = [item for position, item in enumerate(after) if position not in matched]
    return pairs, removed, added


def _node_changes(before: PlanAnalysis, after: PlanAnalysis) -> list[NodeChange]:
    pairs, removed, added = _pair(before.nodes, after.nodes, node_key, node_key)
    changes = [NodeChange("removed", *node_key(n), n, None, _node_summary(n)) for n in removed]
    changes += [NodeChange("added", *node_key(n), None, n, _node_summary(n)) for n in added]
    for old, new in pairs:
        differences = _node_differences(old, new)
        if differences:
            changes.append(NodeChange("changed", *node_key(old), old, new, "; ".join(differences)))
    return changes


def _node_summary(node: NodeFigures) -> str:
    """The figures of a node only one plan has (its label is in ``before`` or ``after``)."""
    parts = []
    if node.exclusive_ms is not None:
        parts.append(f"{format_ms(node.exclusive_ms)} of its own")
    if node.actual_rows is not None:
        parts.append(format_rows(node.actual_rows))
    else:
        parts.append(format_rows(node.plan_rows) + " estimated")
    if node.loops is not None and node.loops > 1:
        parts.append(f"{node.loops:,} loops")
    return ", ".join(parts)


def _unaliased(node: NodeFigures) -> str:
    """The label without the alias: the same step of two statements that name their tables differently."""
    alias = node.detail.get("Alias")
    label = node.label
    if not alias:
        return label
    for key in ("Relation Name", "CTE Name", "Function Name"):
        name = node.relation if key == "Relation Name" else node.detail.get(key)
        if name:
            label = label.replace(f" on {name} {alias}", f" on {name}", 1)
    return label


def _node_differences(old: NodeFigures, new: NodeFigures) -> list[str]:
    differences = []
    if _unaliased(old) != _unaliased(new):
        differences.append(f"{old.label} -> {new.label}")
    if old.exclusive_ms is not None and new.exclusive_ms is not None:
        low, high = sorted((old.exclusive_ms, new.exclusive_ms))
        if high - low >= NODE_MIN_MS and high >= NODE_FACTOR * max(low, 1e-9):
            change = ratio_phrase(old.exclusive_ms, new.exclusive_ms, "faster", "slower")
            differences.append(f"{format_ms(old.exclusive_ms)} -> {format_ms(new.exclusive_ms)} ({change})")
    if old.actual_rows is not None and new.actual_rows is not None:
        low, high = sorted((old.actual_rows, new.actual_rows))
        if high - low >= NODE_MIN_ROWS and high >= NODE_FACTOR * max(low, 1.0):
            differences.append(f"rows {old.actual_rows:,.0f} -> {new.actual_rows:,.0f}")
    if old.loops is not None and new.loops is not None:
        low_loops, high_loops = sorted((old.loops, new.loops))
        if high_loops >= NODE_FACTOR * max(low_loops, 1):
            differences.append(f"loops {old.loops:,} -> {new.loops:,}")
    return differences


def _node_json(node: NodeFigures | None) -> dict[str, Any] | None:
    if node is None:
        return None
    return {
        "id": node.id,
        "label": node.label,
        "exclusive_ms": None if node.exclusive_ms is None else round(node.exclusive_ms, 3),
        "actual_rows": node.actual_rows,
        "plan_rows": node.plan_rows,
        "loops": node.loops,
    }


# --- problems ---------------------------------------------------------------------------------------------


def _problem_changes(
    before: PlanAnalysis, after: PlanAnalysis
) -> tuple[list[ProblemChange], list[ProblemChange], list[str]]:
    keys_before = {n.id: node_key(n) for n in before.nodes}
    keys_after = {n.id: node_key(n) for n in after.nodes}

    def keyed(keys: Mapping[int, NodeKey]) -> Callable[[Problem], tuple[str, NodeKey | None]]:
        return lambda p: (p.kind, None if p.node is None else keys.get(p.node))

    pairs, only_before, only_after = _pair(before.problems, after.problems, keyed(keys_before), keyed(keys_after))
    labels_before = {n.id: n.label for n in before.nodes}
    labels_after = {n.id: n.label for n in after.nodes}
    fixed = [ProblemChange("before", p, _label(labels_before, p)) for p in only_before]
    new = [ProblemChange("after", p, _label(labels_after, p)) for p in only_after]
    return fixed, new, [p.kind for p, _ in pairs]


def _label(labels: Mapping[int, str], problem: Problem) -> str | None:
    return None if problem.node is None else labels.get(problem.node)
