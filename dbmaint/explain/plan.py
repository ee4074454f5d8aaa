"""The plan model: an ``EXPLAIN (FORMAT JSON)`` plan as nodes with their figures, and the records the analysis returns.

Pure: no I/O and no database access. :class:`Plan` computes each node's figures once; the rules
(:mod:`dbmaint.explain.rules`) read them and the helpers here (the table a node reads, its conditions, a
work_mem fix, ...). Field names are PostgreSQL's own JSON keys.

How the figures are computed
----------------------------
* ``Actual Rows`` and the ``Rows Removed by ...`` counters are per-loop averages: totals are them x loops.
  ``Heap Fetches``, ``Exact``/``Lossy Heap Blocks`` and the buffer and temp counters are totals already.
* Inclusive time is ``Actual Total Time`` x loops. Under a Gather or Gather Merge the loops of a node are
  run by several processes at once (the leader and the workers), and x loops would add up their times:
  the wall time is what one process spent. Without VERBOSE it is the loops' sum divided by the number of
  processes (``Workers Launched`` + 1, or + 0 with ``parallel_leader_participation`` off), the average
  process: for a parallel scan directly under a Gather, ``Actual Total Time`` itself. With VERBOSE each
  worker's own time is given (the leader's is what remains), and every node under the Gather is timed in
  the process the Gather waited for longest (the critical path): the Gather's own time is then what it
  really added, and the exclusive times still sum to the execution time when the workers were unbalanced.
* Exclusive time, buffers and temp blocks are the node's own minus its children's, never below zero.
  InitPlan and SubPlan children are run from inside their parent, so they are subtracted from it like any
  child. A CTE's subplan is run by the CTE Scans that read it: its figures are subtracted from those scans
  (the first ones in plan order take as much as they can hold), not from the node the InitPlan hangs on.
  A CTE nobody scans (a data-modifying one) runs after the plan and is subtracted from nothing.
  PostgreSQL prints per-loop times to the microsecond: with thousands of loops of a few microseconds each,
  x loops can be off by a fair share, and so can the exclusive time of the node above.
* With ``TIMING OFF`` the ``Actual ... Time`` keys are absent: times and shares are None, and the hot-node
  rule ranks nodes by their exclusive block accesses instead. Never-executed nodes (``Actual Loops`` = 0)
  get no misestimate and raise no problem.
* Without ``Execution Time`` (auto_explain), shares are of the root node's inclusive time.

Index suggestions are hypotheses: ``Problem.index_candidate`` gives (schema, table, columns), equality
columns first, then one range column, so that the caller can prove them with hypothetical indexes. Columns
come from the node's conditions, parsed with pglast; only plain columns of the scanned relation are used.
There is a candidate only when the schema is known (from VERBOSE, or from ``context``); the fix's SQL is
written either way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from dbmaint.explain import fmt
from dbmaint.explain.conditions import Conditions, QueryFacts, index_definition, parse_conditions, query_facts

DEFAULT_WORK_MEM_KB = 4096
DEFAULT_HASH_MEM_MULTIPLIER = 2.0  # PostgreSQL 15's default (1.0 before 15)
SEVERITIES = ("critical", "warning", "info")  # the order problems are listed in
JOINS = ("Nested Loop", "Hash Join", "Merge Join")
REMOVED_KEYS = ("Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck")

# --- public records ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeFigures:
    """One plan node with its figures computed (totals over loops, exclusive of its children)."""

    id: int  # pre-order position in the tree, 0 = root
    parent: int | None
    depth: int
    node_type: str
    label: str
    relation: str | None  # schema-qualified when VERBOSE gives the schema
    index: str | None
    loops: int | None  # Actual Loops (None without ANALYZE)
    plan_rows: float  # per loop, as estimated
    actual_rows: float | None  # total over loops
    misestimate: float | None  # max(A/P, P/A) per loop, >= 1
    underestimated: bool | None
    total_ms: float | None  # inclusive wall time
    exclusive_ms: float | None
    share: float | None  # exclusive_ms / execution time
    cost_total: float
    shared_hit: int | None
    shared_read: int | None
    shared_dirtied: int | None
    shared_written: int | None
    temp_read: int | None
    temp_written: int | None
    rows_removed: float | None  # by Filter, Join Filter and Index Recheck, total over loops
    workers_planned: int | None
    workers_launched: int | None
    detail: Mapping[str, Any]  # the node's own JSON keys, without "Plans"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "parent": self.parent,
            "depth": self.depth,
            "node_type": self.node_type,
            "label": self.label,
            "relation": self.relation,
            "index": self.index,
            "loops": self.loops,
            "plan_rows": self.plan_rows,
            "actual_rows": self.actual_rows,
            "misestimate": fmt.rounded(self.misestimate, 2),
            "underestimated": self.underestimated,
            "total_ms": fmt.rounded(self.total_ms, 3),
            "exclusive_ms": fmt.rounded(self.exclusive_ms, 3),
            "share": fmt.rounded(self.share, 4),
            "cost_total": self.cost_total,
            "shared_hit": self.shared_hit,
            "shared_read": self.shared_read,
            "shared_dirtied": self.shared_dirtied,
            "shared_written": self.shared_written,
            "temp_read": self.temp_read,
            "temp_written": self.temp_written,
            "rows_removed": self.rows_removed,
            "workers_planned": self.workers_planned,
            "workers_launched": self.workers_launched,
            "detail": dict(self.detail),
        }


@dataclass(frozen=True)
class Problem:
    """Something in the plan worth fixing, the evidence, and what to do."""

    kind: str  # one of dbmaint.explain.rules.KINDS
    severity: str  # info, warning, critical
    node: int | None  # NodeFigures.id; None for plan-wide problems
    detail: str  # one finished sentence with the evidence
    fix: str  # the concrete action
    index_candidate: tuple[str, str, tuple[str, ...]] | None = None  # (schema, table, columns)

    def to_json(self) -> dict[str, Any]:
        candidate = None
        if self.index_candidate is not None:
            schema, table, columns = self.index_candidate
            candidate = {"schema": schema, "table": table, "columns": list(columns)}
        return {
            "kind": self.kind,
            "severity": self.severity,
            "node": self.node,
            "detail": self.detail,
            "fix": self.fix,
            "index_candidate": candidate,
        }


@dataclass(frozen=True)
class TableContext:
    """What the database knows about a table the plan reads (optional, supplied by the caller)."""

    relation: str  # schema-qualified
    last_analyze: datetime | None
    n_mod_since_analyze: int
    reltuples: float
    size_bytes: int
    indexes: tuple[str, ...] = ()  # index definitions (pg_get_indexdef)
    # Foreign keys of this table that no index serves: (constraint name, columns). A DELETE or key UPDATE on
    # the table they reference checks each one with a scan of this table.
    fk_without_index: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class PlanAnalysis:
    analyzed: bool
    nodes: tuple[NodeFigures, ...]
    problems: tuple[Problem, ...]
    execution_ms: float | None
    planning_ms: float | None
    total_cost: float
    settings: Mapping[str, str]

    def to_json(self) -> dict[str, Any]:
        return {
            "analyzed": self.analyzed,
            "execution_ms": self.execution_ms,
            "planning_ms": self.planning_ms,
            "total_cost": self.total_cost,
            "settings": dict(self.settings),
            "nodes": [node.to_json() for node in self.nodes],
            "problems": [problem.to_json() for problem in self.problems],
        }

    def shape_signature(self) -> str:
        """A stable hash of the plan's shape: node types, strategies, relations, indexes and the tree; no numbers,
        no constants, no aliases. Two captures with the same signature ran the same plan."""
        parts = [[node.depth, *_shape_keys(node.detail)] for node in self.nodes]
        text = json.dumps(parts, separators=(",", ":"), sort_keys=True)
        import hashlib  # here: explain itself never needs it, and it costs ~2 ms at start-up

        return hashlib.sha256(text.encode()).hexdigest()[:16]


_SHAPE_KEYS = (
    "Node Type",
    "Parent Relationship",
    "Subplan Name",
    "Join Type",
    "Strategy",
    "Partial Mode",
    "Operation",
    "Command",
    "Parallel Aware",
    "Scan Direction",
    "Relation Name",
    "Index Name",
    "CTE Name",
    "Function Name",
    "Inner Unique",
)


def _shape_keys(detail: Mapping[str, Any]) -> list[Any]:
    return [detail.get(key) for key in _SHAPE_KEYS]


# --- the tree ---------------------------------------------------------------------------------------------

_COUNTERS = {
    "shared_hit": "Shared Hit Blocks",
    "shared_read": "Shared Read Blocks",
    "shared_dirtied": "Shared Dirtied Blocks",
    "shared_written": "Shared Written Blocks",
    "temp_read": "Temp Read Blocks",
    "temp_written": "Temp Written Blocks",
}
_IO_READ_KEYS = ("I/O Read Time", "Shared I/O Read Time")  # PostgreSQL 16+ splits shared, local and temp
_CONSUMERS = ("Sort", "Hash")  # read all their input before returning a row


@dataclass
class Node:
    """One node of the plan: its JSON object, where it is in the tree, and what runs it."""

    id: int
    parent: int | None
    depth: int
    raw: Mapping[str, Any]
    children: list[int] = field(default_factory=list)
    processes: int = 1  # processes that run it at once: > 1 under a Gather
    early_stop: bool = False  # something above may stop reading from it before its end

    @property
    def type(self) -> str:
        return str(self.raw.get("Node Type", "?"))

    @property
    def relationship(self) -> str | None:
        value = self.raw.get("Parent Relationship")
        return None if value is None else str(value)

    @property
    def subplan_name(self) -> str:
        return str(self.raw.get("Subplan Name", ""))

    @property
    def loops(self) -> int | None:
        value = self.raw.get("Actual Loops")
        return None if value is None else int(value)

    @property
    def executed(self) -> bool:
        loops = self.loops
        return loops is not None and loops > 0

    def number(self, key: str) -> float:
        return float(self.raw.get(key) or 0.0)


class Plan:
    """The plan's nodes in pre-order (0 = root) with their figures, and the helpers the rules use.

    Per node id: ``total`` (inclusive wall time), ``exclusive`` and ``exclusive_low`` (its own time, and the
    least of it that the rounding of per-loop times allows), ``counters`` (exclusive buffer and temp blocks by
    name), ``io_read`` (exclusive I/O read time), ``misestimates`` ((max(A/P, P/A), underestimated) per loop)
    and ``figures``. ``execution_ms`` is the root's inclusive time when the plan does not give it.
    """

    def __init__(self, top: Mapping[str, Any], context: Mapping[str, TableContext], query: str | None) -> None:
        self.top = top
        self.context = context
        self.query = query
        self.settings: dict[str, str] = {str(k): str(v) for k, v in (top.get("Settings") or {}).items()}
        self.nodes = self._flatten(top["Plan"])
        self.analyzed = any(node.loops is not None for node in self.nodes)
        self.timed = any("Actual Total Time" in node.raw for node in self.nodes)
        self._mark_parallel()
        self._mark_early_stop()
        self.total = self._walls()
        self.exclusive = self._exclusive(self.total)
        self.exclusive_low = self._exclusive_low()
        self.counters = {
            name: self._exclusive({n.id: fmt.as_float(n.raw.get(key)) for n in self.nodes})
            for name, key in _COUNTERS.items()
        }
        self.io_read = self._exclusive({n.id: fmt.first_float(n.raw, _IO_READ_KEYS) for n in self.nodes})
        self.execution_ms = fmt.as_float(top.get("Execution Time"))
        self.planning_ms = fmt.as_float(top.get("Planning Time"))
        if self.execution_ms is None and self.analyzed:
            self.execution_ms = self.total[0]  # auto_explain: the root's inclusive time
        self.blocks_total = sum(
            (self.counters["shared_hit"][n.id] or 0) + (self.counters["shared_read"][n.id] or 0) for n in self.nodes
        )
        self.misestimates = {n.id: self._misestimate(n) for n in self.nodes}
        self.figures = [self._figures(n) for n in self.nodes]
        self._query_facts: QueryFacts | None = None
        self._query_parsed = False

    # --- structure ---

    @staticmethod
    def _flatten(root: Mapping[str, Any]) -> list[Node]:
        nodes: list[Node] = []
        stack: list[tuple[Mapping[str, Any], int | None, int]] = [(root, None, 0)]
        while stack:
            raw, parent, depth = stack.pop()
            node = Node(len(nodes), parent, depth, raw)
            nodes.append(node)
            if parent is not None:
                nodes[parent].children.append(node.id)
            for child in reversed(raw.get("Plans") or []):
                stack.append((child, node.id, depth + 1))
        return nodes

    def _mark_parallel(self) -> None:
        leader = self.settings.get("parallel_leader_participation", "on") != "off"
        for node in self.nodes:
            if node.parent is not None:
                node.processes = self.nodes[node.parent].processes
                parent = self.nodes[node.parent]
                if parent.type in ("Gather", "Gather Merge"):
                    launched = int(parent.raw.get("Workers Launched", parent.raw.get("Workers Planned", 0)) or 0)
                    node.processes = max(1, launched + (1 if leader else 0))

    def _mark_early_stop(self) -> None:
        for node in self.nodes:
            if node.parent is None:
                continue
            parent = self.nodes[node.parent]
            inherited = parent.early_stop
            if (
                parent.type in _CONSUMERS
                or node.type == "Hash"  # a hash join builds its whole hash table, whatever happens above
                or (parent.type == "Aggregate" and parent.raw.get("Strategy") in ("Plain", "Hashed", "Mixed"))
            ):
                inherited = False
            if parent.type == "Limit" or parent.type == "Merge Join" or node.relationship == "SubPlan":
                inherited = True
            if (
                parent.type == "Nested Loop"
                and parent.raw.get("Join Type") in ("Semi", "Anti")
                and node.relationship == "Inner"
            ):
                inherited = True
            node.early_stop = inherited

    def children(self, node: Node) -> list[Node]:
        return [self.nodes[c] for c in node.children]

    def child(self, node: Node, relationship: str) -> Node | None:
        return next((c for c in self.children(node) if c.relationship == relationship), None)

    def ancestors(self, node: Node) -> Iterator[Node]:
        while node.parent is not None:
            node = self.nodes[node.parent]
            yield node

    def first_input(self, node: Node) -> Node | None:
        """Its first child that is not an InitPlan or SubPlan: what it reads."""
        return next((c for c in self.children(node) if c.relationship not in ("InitPlan", "SubPlan")), None)

    def descendants(self, node: Node) -> Iterator[Node]:
        stack = list(reversed(node.children))
        while stack:
            current = self.nodes[stack.pop()]
            yield current
            stack.extend(reversed(current.children))

    # --- figures ---

    def _walls(self) -> dict[int, float | None]:
        """Inclusive wall time per node; under a Gather, on the critical path (see the module's docstring)."""
        walls: dict[int, float | None] = {}
        for node in self.nodes:
            att = fmt.as_float(node.raw.get("Actual Total Time"))
            walls[node.id] = None if att is None or node.loops is None else att * node.loops
        for gather in self.nodes:
            if gather.type not in ("Gather", "Gather Merge"):
                continue
            first = self.first_input(gather)
            if first is None:
                continue
            subtree = [first, *self.descendants(first)]
            split = {n.id: self._per_process(n) for n in subtree}
            top = split[first.id]
            critical = max(top, key=lambda p: top[p]) if top else None
            for node in subtree:
                total = walls[node.id]
                if total is None:
                    continue
                own = split[node.id]
                if critical is not None and own is not None:
                    walls[node.id] = own.get(critical, 0.0)
                else:
                    walls[node.id] = total / node.processes
        return walls

    def _exclusive_low(self) -> dict[int, float | None]:
        """Exclusive time at the low end of what PostgreSQL's rounding of per-loop times (to 1 µs) allows.

        ``Actual Total Time`` = 0.002 over 30,000 loops is anything from 45 to 75 ms: a node whose own time is
        the difference of two such figures is called hot only if it is hot at the bottom of that range.
        """
        result: dict[int, float | None] = {}
        for node in self.nodes:
            exclusive = self.exclusive[node.id]
            if exclusive is None:
                result[node.id] = None
                continue
            margin = sum(self._rounding(n) for n in [node, *self.children(node)])
            result[node.id] = max(0.0, exclusive - margin)
        return result

    @staticmethod
    def _rounding(node: Node) -> float:
        """How far x loops can be off when the per-loop time is printed to three decimals (milliseconds)."""
        return 0.0005 * (node.loops or 0) / max(1, node.processes)

    @staticmethod
    def _per_process(node: Node) -> dict[str, float] | None:
        """Time per process (the leader and each worker) of a node under a Gather, from VERBOSE's Workers."""
        att, loops, workers = fmt.as_float(node.raw.get("Actual Total Time")), node.loops, node.raw.get("Workers")
        if att is None or loops is None or not isinstance(workers, list):
            return None
        split: dict[str, float] = {}
        for worker in workers:
            worker_att = fmt.as_float(worker.get("Actual Total Time"))
            if worker_att is None:
                return None
            split[f"worker {worker.get('Worker Number')}"] = worker_att * int(worker.get("Actual Loops") or 0)
        split["leader"] = max(0.0, att * loops - sum(split.values()))
        return split

    def _exclusive(self, values: Mapping[int, float | None]) -> dict[int, float | None]:
        """Each node's value minus its children's, with a CTE's subplan charged to the CTE Scans that read it."""
        ctes = {n.subplan_name[4:]: n for n in self.nodes if n.subplan_name.startswith("CTE ")}
        scanned = {str(n.raw.get("CTE Name")) for n in self.nodes if n.type == "CTE Scan"}
        remaining = {name: values[n.id] or 0.0 for name, n in ctes.items()}
        result: dict[int, float | None] = {}
        for node in self.nodes:
            value = values[node.id]
            if value is None:
                result[node.id] = None
                continue
            own = value
            for child in self.children(node):
                if child.subplan_name.startswith("CTE ") and child.subplan_name[4:] in scanned:
                    continue
                own -= values[child.id] or 0.0
            if node.type == "CTE Scan":
                name = str(node.raw.get("CTE Name"))
                taken = min(remaining.get(name, 0.0), max(0.0, own))
                remaining[name] = remaining.get(name, 0.0) - taken
                own -= taken
            result[node.id] = max(0.0, own)
        return result

    def _misestimate(self, node: Node) -> tuple[float, bool] | None:
        if not node.executed or node.type in ("BitmapAnd", "BitmapOr") or "Actual Rows" not in node.raw:
            return None
        actual, planned = node.number("Actual Rows"), node.number("Plan Rows")
        if node.early_stop and actual < planned:
            return None  # stopped early: fewer rows than planned says nothing about the estimate
        a, p = max(actual, 1.0), max(planned, 1.0)
        return (max(a / p, p / a), actual > planned)

    def _figures(self, node: Node) -> NodeFigures:
        raw = node.raw
        loops = node.loops
        actual = None if loops is None or "Actual Rows" not in raw else node.number("Actual Rows") * loops
        removed = None
        if loops is not None and any(key in raw for key in REMOVED_KEYS):
            removed = sum(node.number(key) for key in REMOVED_KEYS) * loops
        misestimate = self.misestimates[node.id]
        exclusive = self.exclusive[node.id]
        share = None
        if exclusive is not None and self.execution_ms:
            share = exclusive / self.execution_ms
        return NodeFigures(
            id=node.id,
            parent=node.parent,
            depth=node.depth,
            node_type=node.type,
            label=node_label(raw),
            relation=node_relation(raw),
            index=None if raw.get("Index Name") is None else str(raw["Index Name"]),
            loops=loops,
            plan_rows=node.number("Plan Rows"),
            actual_rows=actual,
            misestimate=None if misestimate is None else misestimate[0],
            underestimated=None if misestimate is None else misestimate[1],
            total_ms=self.total[node.id],
            exclusive_ms=exclusive,
            share=share,
            cost_total=node.number("Total Cost"),
            shared_hit=fmt.as_int(self.counters["shared_hit"][node.id]),
            shared_read=fmt.as_int(self.counters["shared_read"][node.id]),
            shared_dirtied=fmt.as_int(self.counters["shared_dirtied"][node.id]),
            shared_written=fmt.as_int(self.counters["shared_written"][node.id]),
            temp_read=fmt.as_int(self.counters["temp_read"][node.id]),
            temp_written=fmt.as_int(self.counters["temp_written"][node.id]),
            rows_removed=removed,
            workers_planned=fmt.as_int(fmt.as_float(raw.get("Workers Planned"))),
            workers_launched=fmt.as_int(fmt.as_float(raw.get("Workers Launched"))),
            detail=MappingProxyType({k: v for k, v in raw.items() if k != "Plans"}),
        )

    # --- helpers for the rules ---

    def share(self, node: Node) -> float | None:
        """The node's share of the execution: of the time, or with TIMING OFF of the blocks touched."""
        figures = self.figures[node.id]
        if figures.share is not None:
            return figures.share
        if not self.timed and self.blocks_total:
            return self.blocks(node) / self.blocks_total
        return None

    def blocks(self, node: Node) -> int:
        return int(self.counters["shared_hit"][node.id] or 0) + int(self.counters["shared_read"][node.id] or 0)

    def rows(self, node: Node) -> float:
        """Rows it returned, total over loops."""
        return node.number("Actual Rows") * (node.loops or 0)

    def removed(self, node: Node, key: str) -> float:
        return node.number(key) * (node.loops or 0)

    def qualified(self, node: Node) -> str | None:
        """The quoted, schema-qualified (when known) name of the node's table, for SQL in fixes."""
        schema, name = self.table(node)
        if name is None:
            return None
        return f"{fmt.ident(schema)}.{fmt.ident(name)}" if schema else fmt.ident(name)

    def scanned(self, node: Node) -> Node:
        """The node that names the table: a Bitmap Index Scan's is the Bitmap Heap Scan above it."""
        if node.type == "Bitmap Index Scan":
            return next((a for a in self.ancestors(node) if a.type == "Bitmap Heap Scan"), node)
        return node

    def table(self, node: Node) -> tuple[str | None, str | None]:
        """(schema, table) a node reads; the schema from VERBOSE, else from ``context`` when it is unambiguous."""
        raw = self.scanned(node).raw
        name = raw.get("Relation Name")
        if name is None:
            return (None, None)
        schema = raw.get("Schema")
        if schema is None:
            found = self.context_for(node)
            if found is not None and "." in found.relation:
                schema = found.relation.rsplit(".", 1)[0]
        return (None if schema is None else str(schema), str(name))

    def context_for(self, node: Node) -> TableContext | None:
        raw = self.scanned(node).raw
        name = raw.get("Relation Name")
        if name is None:
            return None
        schema = raw.get("Schema")
        if schema is not None:
            return self.context.get(f"{schema}.{name}")
        matches = [c for key, c in self.context.items() if key == name or key.endswith(f".{name}")]
        return matches[0] if len(matches) == 1 else None

    def candidate(self, node: Node, columns: Sequence[str]) -> tuple[str, str, tuple[str, ...]] | None:
        schema, name = self.table(node)
        if not columns or schema is None or name is None:
            return None
        return (schema, name, tuple(columns))

    def conditions(self, node: Node, key: str) -> Conditions:
        text = node.raw.get(key)
        if not isinstance(text, str):
            return Conditions()
        return parse_conditions(text, self.names(node))

    def names(self, node: Node) -> set[str]:
        """What the node's conditions call its table: the alias and the table name."""
        raw = self.scanned(node).raw
        return {str(raw[k]) for k in ("Alias", "Relation Name") if raw.get(k) is not None}

    def label(self, node: Node) -> str:
        return self.figures[node.id].label

    def work_mem_kb(self) -> float:
        return fmt.size_kb(self.settings.get("work_mem")) or DEFAULT_WORK_MEM_KB

    def hash_mem_multiplier(self) -> float:
        try:
            return float(self.settings.get("hash_mem_multiplier", DEFAULT_HASH_MEM_MULTIPLIER))
        except ValueError:
            return DEFAULT_HASH_MEM_MULTIPLIER

    def work_mem_fix(self, needed_kb: float, what: str) -> str:
        mb = max(1, math.ceil(needed_kb / 1024))
        current = self.work_mem_kb()
        if mb * 1024 <= current:
            mb = max(1, math.ceil(2 * current / 1024))
        return (
            f"raise work_mem for this query to about {mb}MB ({what}): SET work_mem = '{mb}MB' in its session, "
            "or SET LOCAL inside its transaction"
        )

    def query_facts(self) -> QueryFacts | None:
        if not self._query_parsed:
            self._query_parsed = True
            self._query_facts = None if self.query is None else query_facts(self.query)
        return self._query_facts

    def existing_index(self, node: Node, columns: Sequence[str]) -> str | None:
        """The name of an index of the table (from ``context``) that already starts with ``columns``."""
        found = self.context_for(node)
        if found is None:
            return None
        for definition in found.indexes:
            parsed = index_definition(definition)
            if parsed is not None and tuple(parsed[1][: len(columns)]) == tuple(columns):
                return parsed[0]
        return None

    def index_columns(self, node: Node) -> tuple[str, ...]:
        """The plain leading columns of the index a scan uses, when ``context`` has its definition."""
        found = self.context_for(node)
        index = self.index_name(node)
        if found is None or index is None:
            return ()
        for definition in found.indexes:
            parsed = index_definition(definition)
            if parsed is not None and parsed[0] == index:
                return parsed[1]
        return ()

    def index_name(self, node: Node) -> str | None:
        """The index a scan uses (a Bitmap Heap Scan's: that of its single Bitmap Index Scan)."""
        if node.type == "Bitmap Heap Scan":
            names = {str(c.raw["Index Name"]) for c in self.descendants(node) if c.raw.get("Index Name")}
            return names.pop() if len(names) == 1 else None
        index = node.raw.get("Index Name")
        return None if index is None else str(index)

    def time_phrase(self, node: Node) -> str:
        """ ", taking 12 ms (40% of the execution time)": the node's own time, for a detail; "" without times."""
        exclusive, share = self.exclusive[node.id], self.figures[node.id].share
        if exclusive is None or share is None:
            return ""
        return f", taking {fmt.ms(exclusive)} ({fmt.pct(share)} of the execution time)"

    def time_phrase_total(self, node: Node) -> str:
        """The same with the node's inclusive time: what it and everything under it took."""
        total = self.total[node.id]
        if total is None or not self.execution_ms:
            return ""
        return f", taking {fmt.ms(total)} in all ({fmt.pct(total / self.execution_ms)} of the execution time)"


# --- labels -------------------------------------------------------------------------------------------------


def node_relation(raw: Mapping[str, Any]) -> str | None:
    """The node's table, schema-qualified when VERBOSE gives the schema."""
    name = raw.get("Relation Name")
    if name is None:
        return None
    schema = raw.get("Schema")
    return f"{schema}.{name}" if schema else str(name)


_AGGREGATES = {"Plain": "Aggregate", "Sorted": "GroupAggregate", "Hashed": "HashAggregate", "Mixed": "MixedAggregate"}


def node_label(raw: Mapping[str, Any]) -> str:
    """A node as EXPLAIN's text format names it: ``Index Scan using orders_pkey on public.orders o``."""
    kind = str(raw.get("Node Type", "?"))
    name = kind
    if kind == "Aggregate":
        name = _AGGREGATES.get(str(raw.get("Strategy")), "Aggregate")
        if raw.get("Partial Mode") in ("Partial", "Finalize"):
            name = f"{raw['Partial Mode']} {name}"
    elif kind == "ModifyTable":
        name = str(raw.get("Operation", kind))
    elif kind == "SetOp":
        name = ("HashSetOp" if raw.get("Strategy") == "Hashed" else "SetOp") + (
            f" {raw['Command']}" if raw.get("Command") else ""
        )
    if raw.get("Parallel Aware"):
        name = f"Parallel {name}"
    if raw.get("Scan Direction") == "Backward":
        name += " Backward"
    index = raw.get("Index Name")
    if index is not None:
        name += f" on {index}" if kind == "Bitmap Index Scan" else f" using {index}"
    alias = raw.get("Alias")
    relation = node_relation(raw)
    if relation is not None:
        name += f" on {relation}"
        if alias and alias != raw.get("Relation Name"):
            name += f" {alias}"
    elif kind == "CTE Scan":
        name += f" on {raw.get('CTE Name')}" + (f" {alias}" if alias and alias != raw.get("CTE Name") else "")
    elif kind == "Function Scan":
        name += f" on {raw.get('Function Name')}" + (f" {alias}" if alias and alias != raw.get("Function Name") else "")
    elif alias and kind in (
        "Subquery Scan",
        "Values Scan",
        "WorkTable Scan",
        "Table Function Scan",
        "Named Tuplestore Scan",
    ):
        name += f" on {alias}"
    if kind in JOINS and raw.get("Join Type"):
        name += f" ({raw['Join Type']})"
    if kind == "Sort" and raw.get("Sort Method"):
        space = raw.get("Sort Space Used")
        where = raw.get("Sort Space Type", "")
        name += f" ({raw['Sort Method']}" + (f", {where} {fmt.kb(float(space))}" if space is not None else "") + ")"
    if kind == "Hash" and int(raw.get("Hash Batches") or 1) > 1:
        name += f" ({raw['Hash Batches']} batches)"
    if kind in ("Gather", "Gather Merge") and "Workers Planned" in raw:
        if "Workers Launched" in raw:
            name += f" ({raw['Workers Launched']} of {raw['Workers Planned']} workers)"
        else:
            name += f" ({raw['Workers Planned']} workers planned)"
    subplan = raw.get("Subplan Name")
    if subplan:
        name = f"{subplan}: {name}"
    return name
