"""What an ``EXPLAIN (FORMAT JSON)`` plan says: per-node figures, and the problems in it with their fixes.

Pure: no I/O and no database access. The input is what psycopg returns for ``EXPLAIN (FORMAT JSON)`` (a list
with one object), that object itself, or auto_explain's ``{"Query Text": ..., "Plan": ...}``, with or without
ANALYZE, BUFFERS, VERBOSE, SETTINGS, WAL and TIMING OFF. Field names are PostgreSQL's own JSON keys.

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

Thresholds (see ``docs/plan-problems.md``; a floor keeps tiny tables and fast queries quiet)
-------------------------------------------------------------------------------------
==========================  ==============================================================================
hot_node                    exclusive share > 10% info, > 40% warning, > 90% critical (PEV2, depesz); only
                            nodes with >= 10 ms of their own (with TIMING OFF: >= 1,000 blocks of their own,
                            and their share of the blocks x the execution time >= 10 ms), and not in a plan
                            with a single executed node (it always takes all the time). Judged at the low
                            end of what the rounding of per-loop times allows (0.002 ms x 30,000 loops is
                            45 to 75 ms). A healthy query that runs long still has a hot node: that is where
                            to look, not a fault.
row_misestimate             max(A/P, P/A) per loop >= 10 warning, >= 1,000 critical (pgMustard; depesz's top
                            colour), when the rows differ by >= 100 in total and the node adds an error of
                            its own of >= 10x (a join above a misestimated scan inherits its error and is
                            not reported again). Not for BitmapAnd/BitmapOr, nor for a node that a Limit,
                            a semi/anti join, a merge join or a SubPlan stopped early.
stale_statistics            a misestimated scan whose table (from ``context``) has more rows changed since
                            its last analyze than autoanalyze's own trigger, 50 + 10% of reltuples, or was
                            never analyzed.
seq_scan_filter             the filter removes > 50% (warning) / > 90% (critical) of the rows read, >= 1,000
                            rows removed in total, and the scan takes >= 10% of the time (or of the blocks).
inefficient_index           the same, for the Filter of an Index Scan, Index Only Scan or Bitmap Heap Scan.
disk_sort                   any sort to disk; the work_mem asked for is what an in-memory sort of the rows
                            needs, about max(2.2 x the disk space, rows x (width + 64 bytes)).
hash_spill                  ``Hash Batches`` > 1; work_mem ~ peak memory x batches x 1.1 / hash_mem_multiplier.
hashagg_spill               ``HashAgg Batches`` > 1 or ``Disk Usage`` > 0; work_mem ~ (peak + disk) /
                            hash_mem_multiplier.
temp_spill                  exclusive ``Temp Written Blocks`` > 0 on any other node; work_mem ~ 2 x written.
lossy_bitmap                ``Lossy Heap Blocks`` > 0; work_mem ~ 80 bytes per heap page of the bitmap.
heap_fetches                >= 1,000 heap fetches of an Index Only Scan; share of the rows it visited > 0%
                            info, > 40% warning, > 90% critical (PEV2).
nested_loop_underestimate   the inner side ran >= 1,000 times and >= 10x the loops the outer estimate
                            promised (critical at >= 1,000x).
join_filter_waste           a join filter removes > 50% / > 90% of >= 1,000 rows, the node taking >= 10%.
large_offset                a Limit whose input is >= 1,000 rows and >= 10x more than it returns, unless the
                            query text (when known) has no OFFSET.
wrong_index_order_by        a Limit over an index scan whose Filter (not its Index Cond) throws away > 50% /
                            > 90% of >= 1,000 rows: the index was chosen for its order.
poor_cache_hit              >= 1,000 blocks read from outside shared_buffers, >= 50% of those the node
                            touched: info; warning when its own ``I/O Read Time`` is >= 40% of the execution.
read_efficiency             a Seq Scan reading >= 1,000 blocks and >= 10x the bytes per row its rows need
                            (width + 28 bytes of tuple overhead), and at least 1 kB per row (info; warning
                            from 4 kB per row: fewer than 2 rows per page is bloat whatever the width).
jit_overhead                JIT time > 10% of the execution warning, > 50% critical (pgMustard suggests 10%).
planning_time               planning share of planning + execution > 10% / 40% / 90% (PEV2), planning >= 10 ms.
workers_not_launched        ``Workers Launched`` < ``Workers Planned``: warning.
slow_trigger                a trigger taking > 10% (warning) / > 50% (critical) of the execution, >= 1 ms.
memoize_thrash              >= 1,000 lookups with more misses than hits and evictions or overflows: warning;
                            misses >= 10x hits without evictions: info (the cache buys nothing).
non_default_settings        any ``Settings``: info; warning when an ``enable_*`` planner switch is off.
==========================  ==============================================================================

Critical is for a statement that takes at least CRITICAL_MIN_MS (10 ms) to plan and run: below that, what
would be critical is a warning (a 99.9% filter in an 8 ms scan is worth an index, not an alarm).

Index suggestions are hypotheses: ``Problem.index_candidate`` gives (schema, table, columns), equality
columns first, then one range column, so that the caller can prove them with hypothetical indexes. Columns
come from the node's conditions, parsed with pglast; only plain columns of the scanned relation are used.
There is a candidate only when the schema is known (from VERBOSE, or from ``context``); the fix's SQL is
written either way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

# --- thresholds -------------------------------------------------------------------------------------------

HOT_SHARES = (0.1, 0.4, 0.9)  # info, warning, critical
HOT_MIN_MS = 10.0
HOT_MIN_BLOCKS = 1000  # TIMING OFF: ranked by exclusive block accesses
MISESTIMATE_WARNING = 10.0
MISESTIMATE_CRITICAL = 1000.0
MISESTIMATE_MIN_ROWS = 100.0
STALE_BASE, STALE_SCALE = 50, 0.1  # autovacuum_analyze_threshold, autovacuum_analyze_scale_factor defaults
FILTER_WARNING, FILTER_CRITICAL = 0.5, 0.9
FILTER_MIN_ROWS = 1000.0
FILTER_MIN_SHARE = 0.1
CRITICAL_MIN_MS = 10.0  # planning and execution: a faster statement has no critical problem
HEAP_FETCH_MIN = 1000
HEAP_FETCH_SHARES = (0.0, 0.4, 0.9)
NESTED_LOOP_FACTOR = 10.0
NESTED_LOOP_CRITICAL = 1000.0
NESTED_LOOP_MIN_LOOPS = 1000
OFFSET_MIN_ROWS = 1000.0
OFFSET_FACTOR = 10.0
CACHE_MIN_READ = 1000
CACHE_READ_RATIO = 0.5
CACHE_IO_SHARE = 0.4
READ_MIN_BLOCKS = 1000
READ_FACTOR = 10.0
READ_BYTES_INFO, READ_BYTES_WARNING = 1024.0, 4096.0
TUPLE_OVERHEAD = 28  # heap tuple header (23, aligned to 24) + line pointer (4)
JIT_SHARES = (0.1, 0.5)  # warning, critical
JIT_MIN_MS = 1.0
PLANNING_SHARES = (0.1, 0.4, 0.9)
PLANNING_MIN_MS = 10.0
TRIGGER_SHARES = (0.1, 0.5)  # warning, critical
TRIGGER_MIN_MS = 1.0
MEMOIZE_MIN_LOOKUPS = 1000
MEMOIZE_USELESS = 10.0
BLOCK_SIZE = 8192
DEFAULT_WORK_MEM_KB = 4096
DEFAULT_HASH_MEM_MULTIPLIER = 2.0  # PostgreSQL 15's default (1.0 before 15)
DEFAULT_JIT_ABOVE_COST = 100000.0

KINDS = (
    "hot_node",
    "row_misestimate",
    "stale_statistics",
    "seq_scan_filter",
    "inefficient_index",
    "disk_sort",
    "hash_spill",
    "hashagg_spill",
    "temp_spill",
    "lossy_bitmap",
    "heap_fetches",
    "nested_loop_underestimate",
    "join_filter_waste",
    "large_offset",
    "wrong_index_order_by",
    "poor_cache_hit",
    "read_efficiency",
    "jit_overhead",
    "planning_time",
    "workers_not_launched",
    "slow_trigger",
    "memoize_thrash",
    "non_default_settings",
)
_SEVERITY_RANK = {"critical": 0, "warning": 1, "info": 2}

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
            "misestimate": _round(self.misestimate, 2),
            "underestimated": self.underestimated,
            "total_ms": _round(self.total_ms, 3),
            "exclusive_ms": _round(self.exclusive_ms, 3),
            "share": _round(self.share, 4),
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

    kind: str  # one of KINDS
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


# --- entry point ------------------------------------------------------------------------------------------


def analyse(
    explain: Any, *, context: Mapping[str, TableContext] | None = None, query: str | None = None
) -> PlanAnalysis:
    """The figures and problems of one EXPLAIN (FORMAT JSON) document.

    ``context`` maps schema-qualified table names to what the database knows about them (for stale
    statistics, existing indexes and unindexed foreign keys); ``query`` is the statement's text (auto_explain's
    ``Query Text`` is used when it is not given), read with pglast to confirm an OFFSET and find ORDER BY.
    """
    top = _top(explain)
    if query is None and isinstance(top.get("Query Text"), str):
        query = top["Query Text"]
    plan = _Plan(top, context or {}, query)
    problems = sorted(
        plan.problems(),
        key=lambda p: (_SEVERITY_RANK[p.severity], KINDS.index(p.kind), -1 if p.node is None else p.node),
    )
    return PlanAnalysis(
        analyzed=plan.analyzed,
        nodes=tuple(plan.figures),
        problems=tuple(problems),
        execution_ms=plan.execution_ms,
        planning_ms=_float(top.get("Planning Time")),
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
_SCANS_WITH_FILTER_INDEX = ("Index Scan", "Index Only Scan", "Bitmap Heap Scan")
_JOINS = ("Nested Loop", "Hash Join", "Merge Join")
_CONSUMERS = ("Sort", "Hash")  # read all their input before returning a row


@dataclass
class _Node:
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


class _Plan:
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
            name: self._exclusive({n.id: _float(n.raw.get(key)) for n in self.nodes}) for name, key in _COUNTERS.items()
        }
        self.io_read = self._exclusive({n.id: _first_float(n.raw, _IO_READ_KEYS) for n in self.nodes})
        self.execution_ms = _float(top.get("Execution Time"))
        if self.execution_ms is None and self.analyzed:
            self.execution_ms = self.total[0]  # auto_explain: the root's inclusive time
        self.blocks_total = sum(
            (self.counters["shared_hit"][n.id] or 0) + (self.counters["shared_read"][n.id] or 0) for n in self.nodes
        )
        self.misestimates = {n.id: self._misestimate(n) for n in self.nodes}
        self.figures = [self._figures(n) for n in self.nodes]
        self._query_facts: _QueryFacts | None = None
        self._query_parsed = False

    # --- structure ---

    @staticmethod
    def _flatten(root: Mapping[str, Any]) -> list[_Node]:
        nodes: list[_Node] = []
        stack: list[tuple[Mapping[str, Any], int | None, int]] = [(root, None, 0)]
        while stack:
            raw, parent, depth = stack.pop()
            node = _Node(len(nodes), parent, depth, raw)
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

    def children(self, node: _Node) -> list[_Node]:
        return [self.nodes[c] for c in node.children]

    def child(self, node: _Node, relationship: str) -> _Node | None:
        return next((c for c in self.children(node) if c.relationship == relationship), None)

    def ancestors(self, node: _Node) -> Iterator[_Node]:
        while node.parent is not None:
            node = self.nodes[node.parent]
            yield node

    def descendants(self, node: _Node) -> Iterator[_Node]:
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
            att = _float(node.raw.get("Actual Total Time"))
            walls[node.id] = None if att is None or node.loops is None else att * node.loops
        for gather in self.nodes:
            if gather.type not in ("Gather", "Gather Merge"):
                continue
            first = self._first_input(gather)
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
    def _rounding(node: _Node) -> float:
        """How far x loops can be off when the per-loop time is printed to three decimals (milliseconds)."""
        return 0.0005 * (node.loops or 0) / max(1, node.processes)

    @staticmethod
    def _per_process(node: _Node) -> dict[str, float] | None:
        """Time per process (the leader and each worker) of a node under a Gather, from VERBOSE's Workers."""
        att, loops, workers = _float(node.raw.get("Actual Total Time")), node.loops, node.raw.get("Workers")
        if att is None or loops is None or not isinstance(workers, list):
            return None
        split: dict[str, float] = {}
        for worker in workers:
            worker_att = _float(worker.get("Actual Total Time"))
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

    def _misestimate(self, node: _Node) -> tuple[float, bool] | None:
        if not node.executed or node.type in ("BitmapAnd", "BitmapOr") or "Actual Rows" not in node.raw:
            return None
        actual, planned = node.number("Actual Rows"), node.number("Plan Rows")
        if node.early_stop and actual < planned:
            return None  # stopped early: fewer rows than planned says nothing about the estimate
        a, p = max(actual, 1.0), max(planned, 1.0)
        return (max(a / p, p / a), actual > planned)

    def _figures(self, node: _Node) -> NodeFigures:
        raw = node.raw
        loops = node.loops
        actual = None if loops is None or "Actual Rows" not in raw else node.number("Actual Rows") * loops
        removed = None
        if loops is not None and any(key in raw for key in _REMOVED_KEYS):
            removed = sum(node.number(key) for key in _REMOVED_KEYS) * loops
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
            label=_label(raw),
            relation=_relation(raw),
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
            shared_hit=_int(self.counters["shared_hit"][node.id]),
            shared_read=_int(self.counters["shared_read"][node.id]),
            shared_dirtied=_int(self.counters["shared_dirtied"][node.id]),
            shared_written=_int(self.counters["shared_written"][node.id]),
            temp_read=_int(self.counters["temp_read"][node.id]),
            temp_written=_int(self.counters["temp_written"][node.id]),
            rows_removed=removed,
            workers_planned=_int(_float(raw.get("Workers Planned"))),
            workers_launched=_int(_float(raw.get("Workers Launched"))),
            detail=MappingProxyType({k: v for k, v in raw.items() if k != "Plans"}),
        )

    # --- helpers for the rules ---

    def share(self, node: _Node) -> float | None:
        """The node's share of the execution: of the time, or with TIMING OFF of the blocks touched."""
        figures = self.figures[node.id]
        if figures.share is not None:
            return figures.share
        if not self.timed and self.blocks_total:
            return self.blocks(node) / self.blocks_total
        return None

    def blocks(self, node: _Node) -> int:
        return int(self.counters["shared_hit"][node.id] or 0) + int(self.counters["shared_read"][node.id] or 0)

    def rows(self, node: _Node) -> float:
        """Rows it returned, total over loops."""
        return node.number("Actual Rows") * (node.loops or 0)

    def removed(self, node: _Node, key: str) -> float:
        return node.number(key) * (node.loops or 0)

    def qualified(self, node: _Node) -> str | None:
        """The quoted, schema-qualified (when known) name of the node's table, for SQL in fixes."""
        schema, name = self.table(node)
        if name is None:
            return None
        return f"{_ident(schema)}.{_ident(name)}" if schema else _ident(name)

    def scanned(self, node: _Node) -> _Node:
        """The node that names the table: a Bitmap Index Scan's is the Bitmap Heap Scan above it."""
        if node.type == "Bitmap Index Scan":
            return next((a for a in self.ancestors(node) if a.type == "Bitmap Heap Scan"), node)
        return node

    def table(self, node: _Node) -> tuple[str | None, str | None]:
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

    def context_for(self, node: _Node) -> TableContext | None:
        raw = self.scanned(node).raw
        name = raw.get("Relation Name")
        if name is None:
            return None
        schema = raw.get("Schema")
        if schema is not None:
            return self.context.get(f"{schema}.{name}")
        matches = [c for key, c in self.context.items() if key == name or key.endswith(f".{name}")]
        return matches[0] if len(matches) == 1 else None

    def candidate(self, node: _Node, columns: Sequence[str]) -> tuple[str, str, tuple[str, ...]] | None:
        schema, name = self.table(node)
        if not columns or schema is None or name is None:
            return None
        return (schema, name, tuple(columns))

    def conditions(self, node: _Node, key: str) -> _Conditions:
        text = node.raw.get(key)
        if not isinstance(text, str):
            return _Conditions()
        return _conditions(text, self.names(node))

    def names(self, node: _Node) -> set[str]:
        """What the node's conditions call its table: the alias and the table name."""
        raw = self.scanned(node).raw
        return {str(raw[k]) for k in ("Alias", "Relation Name") if raw.get(k) is not None}

    def label(self, node: _Node) -> str:
        return self.figures[node.id].label

    def work_mem_kb(self) -> float:
        return _size_kb(self.settings.get("work_mem")) or DEFAULT_WORK_MEM_KB

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

    def query_facts(self) -> _QueryFacts | None:
        if not self._query_parsed:
            self._query_parsed = True
            self._query_facts = None if self.query is None else _query_facts(self.query)
        return self._query_facts

    def existing_index(self, node: _Node, columns: Sequence[str]) -> str | None:
        """The name of an index of the table (from ``context``) that already starts with ``columns``."""
        found = self.context_for(node)
        if found is None:
            return None
        for definition in found.indexes:
            parsed = _index_definition(definition)
            if parsed is not None and tuple(parsed[1][: len(columns)]) == tuple(columns):
                return parsed[0]
        return None

    # --- the rules ---

    def problems(self) -> list[Problem]:
        found: list[Problem] = []
        wrong_order = self._wrong_index_order_by()
        found += self._misestimates()
        found += self._stale_statistics()
        for node in self.nodes:
            if not node.executed:
                if not self.analyzed:  # estimates only: the planner's own row estimates still tell
                    found += self._filter_problem(node, wrong_order)
                continue
            found += self._filter_problem(node, wrong_order)
            found += self._spills(node)
            found += self._lossy_bitmap(node)
            found += self._heap_fetches(node)
            found += self._nested_loop(node)
            found += self._join_filter(node)
            found += self._large_offset(node)
            found += self._cache(node)
            found += self._read_efficiency(node)
            found += self._workers(node)
            found += self._memoize(node)
        found += wrong_order.values()
        found += self._jit()
        found += self._planning()
        found += self._triggers()
        found += self._settings()
        return self._urgency(self._hot_nodes(found) + found)

    def _urgency(self, found: list[Problem]) -> list[Problem]:
        """Critical means it makes the statement slow: in a statement that took less than CRITICAL_MIN_MS to
        plan and run, the same problems are warnings. A 99.9% filter in an 8 ms scan is worth an index, not
        an alarm."""
        planning = _float(self.top.get("Planning Time")) or 0.0
        if self.execution_ms is None or self.execution_ms + planning >= CRITICAL_MIN_MS:
            return found
        return [dataclasses.replace(p, severity="warning") if p.severity == "critical" else p for p in found]

    # 1. hot node
    def _hot_nodes(self, others: Sequence[Problem]) -> list[Problem]:
        executed = [n for n in self.nodes if n.executed]
        if len(executed) < 2:
            return []
        found = []
        for node in executed:
            share = self.share(node)
            if share is None:
                continue
            exclusive, low = self.exclusive[node.id], self.exclusive_low[node.id]
            if exclusive is not None and low is not None and self.execution_ms:
                if low < HOT_MIN_MS:
                    continue
                share = low / self.execution_ms  # what the rounding of per-loop times cannot take away
                amount = f"{_ms(exclusive)} of its own, {_pct(exclusive / self.execution_ms)} of the execution time"
            else:
                if self.blocks(node) < HOT_MIN_BLOCKS or (self.execution_ms or HOT_MIN_MS) * share < HOT_MIN_MS:
                    continue
                amount = f"{self.blocks(node):,} block accesses of its own, {_pct(share)} of all (timing was off)"
            severity = _grade(share, HOT_SHARES)
            if severity is None:
                continue
            found.append(
                Problem(
                    "hot_node",
                    severity,
                    node.id,
                    f"{self.label(node)} takes {amount}.",
                    self._hot_fix(node, sorted({p.kind for p in others if p.node == node.id}, key=KINDS.index)),
                )
            )
        return found

    def _hot_fix(self, node: _Node, kinds: Sequence[str]) -> str:
        if kinds:
            return f"see the {', '.join(kinds)} problem{'s' if len(kinds) > 1 else ''} of this node for the fix"
        kind = node.type
        rows = self.rows(node)
        if kind == "Seq Scan":
            return (
                f"it reads all of {self.qualified(node) or 'the table'} ({_rows(rows)}): "
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
            inner = self.child(node, "Inner")
            loops = inner.loops if inner is not None and inner.loops else 0
            return f"its inner side runs {_count(loops)} times: make each loop cheaper or let the planner hash"
        if kind in ("Hash Join", "Hash", "Merge Join"):
            return f"it joins {_rows(rows)}: filter the inputs earlier so that fewer rows reach the join"
        if kind == "Aggregate":
            return f"it aggregates its input into {_rows(rows)}: aggregate fewer rows, or pre-aggregate them"
        if kind in ("Index Scan", "Index Only Scan", "Bitmap Heap Scan"):
            return f"it fetches {_rows(rows)} through {node.raw.get('Index Name') or 'the index'}: return fewer"
        return f"it is where the time goes ({_rows(rows)}): look here first"

    # 2. row misestimate
    def _misestimates(self) -> list[Problem]:
        found = []
        for node in self.nodes:
            flagged = self._flagged_misestimate(node)
            if flagged is None:
                continue
            ratio, under = flagged
            severity = "critical" if ratio >= MISESTIMATE_CRITICAL else "warning"
            planned, actual = node.number("Plan Rows"), node.number("Actual Rows")
            loops = node.loops or 1
            per_loop = f" per loop ({_count(loops)} loops)" if loops > 1 else ""
            detail = (
                f"{self.label(node)} was estimated at {_rows(planned)} but returned {_count(actual)}"
                f"{per_loop}: {ratio:,.0f}x {'under' if under else 'over'}estimated."
            )
            found.append(Problem("row_misestimate", severity, node.id, detail, self._misestimate_fix(node, under)))
        return found

    def _flagged_misestimate(self, node: _Node) -> tuple[float, bool] | None:
        found = self.misestimates[node.id]
        if found is None or found[0] < MISESTIMATE_WARNING:
            return None
        difference = abs(node.number("Actual Rows") - node.number("Plan Rows")) * (node.loops or 0)
        if difference < MISESTIMATE_MIN_ROWS:
            return None
        own = self._log_error(node) - self._expected_error(node)
        if abs(own) < 1 or (own > 0) != found[1]:
            return None  # the error comes from below: reported there
        return found

    def _log_error(self, node: _Node) -> float:
        found = self.misestimates[node.id]
        if found is None:
            return 0.0
        return math.log10(found[0]) * (1 if found[1] else -1)

    def _expected_error(self, node: _Node) -> float:
        """The error a node inherits from its inputs (log10 of actual/planned)."""
        inputs = [c for c in self.children(node) if c.relationship not in ("InitPlan", "SubPlan")]
        if node.type == "CTE Scan":  # it reads what the CTE's subplan returned
            name = f"CTE {node.raw.get('CTE Name')}"
            return next((self._log_error(n) for n in self.nodes if n.subplan_name == name), 0.0)
        if not inputs:
            return 0.0
        if node.type in _JOINS:
            return sum(self._log_error(c) for c in inputs)
        if node.type in ("Append", "Merge Append"):
            actual = sum(c.number("Actual Rows") * (c.loops or 0) for c in inputs)
            planned = sum(c.number("Plan Rows") * (c.loops or 0) for c in inputs)
            return math.log10(max(actual, 1.0) / max(planned, 1.0))
        if len(inputs) == 1:
            return self._log_error(inputs[0])
        return 0.0

    def _misestimate_fix(self, node: _Node, under: bool) -> str:
        if node.raw.get("Relation Name") is not None or node.type == "Bitmap Index Scan":
            scan = node
            table = self.qualified(scan) or "the table"
            conditions = _Conditions()
            for key in ("Index Cond", "Recheck Cond", "Filter"):
                conditions = conditions.merge(self.conditions(scan, key))
            columns = conditions.columns
            if len(columns) >= 2 and under:
                return _create_statistics(table, self.table(scan)[1] or "t", columns, ("dependencies", "mcv"))
            if len(columns) == 1:
                return (
                    f"ANALYZE {table}; if the estimate stays off, sample {columns[0]} more finely: "
                    f"ALTER TABLE {table} ALTER COLUMN {_ident(columns[0])} SET STATISTICS 1000; ANALYZE {table}"
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
                f"{_ident(str(node.raw['Function Name']))} ROWS {rows} (give its argument types if it is overloaded)"
            )
        if node.type == "Aggregate" or node.type == "Group":
            keys = [str(k) for k in node.raw.get("Group Key") or []]
            tables = self._tables_below(node)
            if len(keys) >= 2 and len(tables) == 1:
                group_columns = [k.rsplit(".", 1)[-1] for k in keys]
                if all(_SIMPLE.fullmatch(c) for c in group_columns):
                    table = tables[0]
                    return _create_statistics(table, table.rsplit(".", 1)[-1], group_columns, ("ndistinct",))
        tables = self._tables_below(node)
        if not tables:
            return "ANALYZE the tables this node reads"
        joined = ", ".join(tables)
        if node.type in _JOINS:
            return (
                f"ANALYZE {joined}; if the join estimate stays off, the join columns are correlated with the "
                "filters: CREATE STATISTICS on those columns, or rewrite the condition"
            )
        return f"ANALYZE {joined}"

    def _tables_below(self, node: _Node) -> list[str]:
        tables: list[str] = []
        for current in [node, *self.descendants(node)]:
            name = self.qualified(current) if current.raw.get("Relation Name") is not None else None
            if name is not None and name not in tables:
                tables.append(name)
        return tables

    # 3. stale statistics
    def _stale_statistics(self) -> list[Problem]:
        found = []
        seen: set[str] = set()
        for node in self.nodes:
            estimate = self.misestimates[node.id]
            if estimate is None or estimate[0] < MISESTIMATE_WARNING:
                continue
            if abs(node.number("Actual Rows") - node.number("Plan Rows")) * (node.loops or 0) < MISESTIMATE_MIN_ROWS:
                continue
            scan = self.scanned(node)
            table = self.context_for(scan)
            if table is None or table.relation in seen:
                continue
            trigger = STALE_BASE + STALE_SCALE * max(table.reltuples, 0.0)
            if table.last_analyze is not None and table.n_mod_since_analyze <= trigger:
                continue
            seen.add(table.relation)
            name = self.qualified(scan) or table.relation
            if table.last_analyze is None:
                why = f"Table {table.relation} has never been analyzed"
            else:
                why = (
                    f"Table {table.relation} has {_rows(table.n_mod_since_analyze)} changed since its last analyze "
                    f"({table.last_analyze:%Y-%m-%d %H:%M}), more than the {_count(trigger)} that trigger autoanalyze"
                )
            ratio, under = estimate
            severity = "critical" if ratio >= MISESTIMATE_CRITICAL else "warning"
            detail = (
                f"{why}, and {self.label(node)} was {ratio:,.0f}x {'under' if under else 'over'}estimated "
                f"({_rows(node.number('Plan Rows'))} planned, {_count(node.number('Actual Rows'))} returned)."
            )
            fix = (
                f"ANALYZE {name}; if autovacuum keeps falling behind on it, analyze it sooner: "
                f"ALTER TABLE {name} SET (autovacuum_analyze_scale_factor = 0.02)"
            )
            found.append(Problem("stale_statistics", severity, node.id, detail, fix))
        return found

    # 4, 5, 15. filters that an index could apply
    def _filter_ratio(self, node: _Node) -> tuple[float, float, float] | None:
        """(removed, returned, removed share) of the node's Filter, when it matters enough to report."""
        if not node.raw.get("Filter") or "Rows Removed by Filter" not in node.raw:
            return None
        removed = self.removed(node, "Rows Removed by Filter")
        returned = self.rows(node)
        if removed < FILTER_MIN_ROWS:
            return None
        share = self.share(node)
        if share is not None and share < FILTER_MIN_SHARE:
            return None
        return (removed, returned, removed / (removed + returned))

    def _filter_problem(self, node: _Node, wrong_order: Mapping[int, Problem]) -> list[Problem]:
        if node.id in wrong_order:
            return []
        if node.type == "Seq Scan":
            kind = "seq_scan_filter"
        elif node.type in _SCANS_WITH_FILTER_INDEX:
            kind = "inefficient_index"
        else:
            return []
        ratio = self._filter_ratio(node)
        if ratio is None and kind == "seq_scan_filter" and not self.analyzed:
            return self._estimated_filter_problem(node)
        if ratio is None:
            return []
        removed, returned, fraction = ratio
        severity = "critical" if fraction > FILTER_CRITICAL else "warning" if fraction > FILTER_WARNING else None
        if severity is None:
            return []
        filter_text = str(node.raw["Filter"])
        timing = self._time_phrase(node)
        detail = (
            f"{self.label(node)} removes {_count(removed)} of {_rows(removed + returned)} "
            f"({_pct(fraction)}) with the filter {filter_text}{timing}."
        )
        filter_conditions = self.conditions(node, "Filter")
        if kind == "seq_scan_filter":
            columns = filter_conditions.index_columns()
            return [self._index_problem(kind, severity, node, detail, columns, filter_text)]
        index_key = "Recheck Cond" if node.type == "Bitmap Heap Scan" else "Index Cond"
        index_conditions = self.conditions(node, index_key)
        merged = index_conditions.merge(filter_conditions)
        columns = merged.index_columns()
        if columns and set(columns) <= set(index_conditions.index_columns()):
            columns = ()  # nothing in the filter a btree could add
        return [self._index_problem(kind, severity, node, detail, columns, filter_text)]

    def _estimated_filter_problem(self, node: _Node) -> list[Problem]:
        """Without ANALYZE (generic plans of captured $n statements): the planner's own estimate of what the
        filter keeps, against the table's row count from the database context. Never above a warning: it is
        an estimate."""
        context = self.context_for(node)
        if context is None or context.reltuples < 10 * FILTER_MIN_ROWS or not node.raw.get("Filter"):
            return []
        kept = float(node.raw.get("Plan Rows", 0.0))
        fraction = 1.0 - kept / context.reltuples
        if fraction <= FILTER_CRITICAL:
            return []
        filter_text = str(node.raw["Filter"])
        detail = (
            f"{self.label(node)} is estimated to keep {_count(kept)} of {_rows(context.reltuples)} "
            f"({_pct(1 - fraction)}) with the filter {filter_text} (an estimate: the plan was not executed)."
        )
        columns = self.conditions(node, "Filter").index_columns()
        return [self._index_problem("seq_scan_filter", "warning", node, detail, columns, filter_text)]

    def _index_problem(
        self, kind: str, severity: str, node: _Node, detail: str, columns: Sequence[str], filter_text: str
    ) -> Problem:
        table = self.qualified(node) or "the table"
        if not columns:
            fix = (
                f"no plain column of the filter {filter_text} is compared with a constant, so no btree index on "
                "columns serves it: rewrite the condition as column-operator-constant, or index the expression "
                f"it compares (CREATE INDEX CONCURRENTLY ON {table} ((expression)))"
            )
            return Problem(kind, severity, node.id, detail, fix)
        existing = self.existing_index(node, columns)
        column_list = ", ".join(_ident(c) for c in columns)
        if existing is not None:
            fix = (
                f"the index {existing} already covers ({column_list}) but the planner did not use it: ANALYZE {table}, "
                "and check that the filter compares the columns with values of their own type"
            )
            return Problem(kind, severity, node.id, detail, fix)
        fix = f"CREATE INDEX CONCURRENTLY ON {table} ({column_list})"
        replaced = self._index_columns(node)
        if kind == "inefficient_index" and replaced and tuple(columns[: len(replaced)]) == replaced:
            fix += f"; it makes {self._index_name(node)} redundant (DROP INDEX CONCURRENTLY once nothing needs it)"
        return Problem(kind, severity, node.id, detail, fix, self.candidate(node, columns))

    def _time_phrase(self, node: _Node) -> str:
        exclusive, share = self.exclusive[node.id], self.figures[node.id].share
        if exclusive is None or share is None:
            return ""
        return f", taking {_ms(exclusive)} ({_pct(share)} of the execution time)"

    def _wrong_index_order_by(self) -> dict[int, Problem]:
        found: dict[int, Problem] = {}
        for limit in self.nodes:
            if limit.type != "Limit" or not limit.executed:
                continue
            scan = self._first_input(limit)
            while scan is not None and scan.type in ("Result", "Subquery Scan", "Gather Merge", "Memoize"):
                scan = self._first_input(scan)
            if scan is None or scan.type not in ("Index Scan", "Index Only Scan") or not scan.executed:
                continue
            ratio = self._filter_ratio(scan)
            if ratio is None:
                continue
            removed, returned, fraction = ratio
            severity = "critical" if fraction > FILTER_CRITICAL else "warning" if fraction > FILTER_WARNING else None
            if severity is None:
                continue
            filters = self.conditions(scan, "Filter")
            index_columns = set(self.conditions(scan, "Index Cond").columns)
            equality = [c for c in filters.equality if c not in index_columns]
            if not equality and filters.columns and set(filters.columns) <= index_columns:
                continue
            order = self._order_columns(scan)
            columns = _unique([*equality, *order]) if equality else []
            index = str(scan.raw.get("Index Name", "the index"))
            detail = (
                f"{self.label(scan)} walks {index} in ORDER BY order under a LIMIT and removes {_rows(removed)} "
                f"({_pct(fraction)}) with the filter {scan.raw['Filter']} to return {_count(returned)}"
                f"{self._time_phrase(scan)}."
            )
            table = self.qualified(scan) or "the table"
            if columns:
                fix = (
                    f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(_ident(c) for c in columns)}): it finds the "
                    "matching rows already in order"
                )
                if not order:
                    fix += " (append the ORDER BY columns to it)"
            else:
                fix = (
                    f"index the filter's columns followed by the ORDER BY columns on {table}, so that the matching "
                    "rows are found in order"
                )
            found[scan.id] = Problem(
                "wrong_index_order_by", severity, scan.id, detail, fix, self.candidate(scan, columns)
            )
        return found

    def _index_columns(self, node: _Node) -> tuple[str, ...]:
        """The plain leading columns of the index a scan uses, when ``context`` has its definition."""
        found = self.context_for(node)
        index = self._index_name(node)
        if found is None or index is None:
            return ()
        for definition in found.indexes:
            parsed = _index_definition(definition)
            if parsed is not None and parsed[0] == index:
                return parsed[1]
        return ()

    def _index_name(self, node: _Node) -> str | None:
        """The index a scan uses (a Bitmap Heap Scan's: that of its single Bitmap Index Scan)."""
        if node.type == "Bitmap Heap Scan":
            names = {str(c.raw["Index Name"]) for c in self.descendants(node) if c.raw.get("Index Name")}
            return names.pop() if len(names) == 1 else None
        index = node.raw.get("Index Name")
        return None if index is None else str(index)

    def _first_input(self, node: _Node) -> _Node | None:
        return next((c for c in self.children(node) if c.relationship not in ("InitPlan", "SubPlan")), None)

    def _order_columns(self, scan: _Node) -> list[str]:
        """The columns the scan's index is ordered by: from its definition (``context``) or the query's ORDER BY."""
        indexed = self._index_columns(scan)
        if indexed:
            return list(indexed)
        facts = self.query_facts()
        if facts is None:
            return []
        names = self.names(scan)
        columns = []
        for qualifier, column in facts.order_columns:
            if qualifier is not None and qualifier not in names:
                return []
            columns.append(column)
        return columns

    # 6, 7, 8, 9. spills to disk
    def _spills(self, node: _Node) -> list[Problem]:
        kind = node.type
        if kind == "Sort":
            return self._disk_sort(node)
        if kind == "Hash":
            return self._hash_spill(node)
        if kind == "Aggregate" and ("HashAgg Batches" in node.raw or "Disk Usage" in node.raw):
            found = self._hashagg_spill(node)
            if found:
                return found
        return self._temp_spill(node)

    def _disk_sort(self, node: _Node) -> list[Problem]:
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
            f"{self.label(node)} sorted {_rows(rows)} with {method}{workers}, writing {_kb(disk_kb)} to disk "
            f"(work_mem is {_kb(self.work_mem_kb())})."
        )
        fix = self.work_mem_fix(needed, f"an in-memory sort of these rows needs about {_kb(needed)}")
        if keys:
            fix += f"; or return the rows already sorted with an index on the sort key ({keys})"
        return [Problem("disk_sort", "warning", node.id, detail, fix)]

    def _hash_spill(self, node: _Node) -> list[Problem]:
        batches = int(node.number("Hash Batches"))
        if batches <= 1:
            return []
        original = int(node.raw.get("Original Hash Batches") or batches)
        peak = node.number("Peak Memory Usage")
        multiplier = self.hash_mem_multiplier()
        needed = peak * batches * 1.1 / multiplier
        grew = (
            f", up from the {original} planned: the inner side was bigger than estimated" if batches > original else ""
        )
        join = self.nodes[node.parent] if node.parent is not None else node
        temp = int(self.counters["temp_written"][join.id] or 0) + int(self.counters["temp_written"][node.id] or 0)
        detail = (
            f"{self.label(node)} split its hash table into {batches} batches{grew}, peaking at {_kb(peak)} per batch "
            f"and writing {_blocks(temp)} of temporary files for the join."
        )
        fix = self.work_mem_fix(
            needed,
            f"the hash table needs about {_kb(peak * batches)}, and may use work_mem x hash_mem_multiplier "
            f"({multiplier:g})",
        )
        return [Problem("hash_spill", "warning", node.id, detail, fix)]

    def _hashagg_spill(self, node: _Node) -> list[Problem]:
        batches = int(node.number("HashAgg Batches"))
        disk = node.number("Disk Usage")
        if batches <= 1 and disk <= 0:
            return []
        peak = node.number("Peak Memory Usage")
        multiplier = self.hash_mem_multiplier()
        planned = int(node.number("Planned Partitions"))
        plan_note = f" (it planned {planned} partitions)" if planned else ""
        detail = (
            f"{self.label(node)} ran out of memory after {_kb(peak)} and spilled to disk in {batches} batches"
            f"{plan_note}, writing {_kb(disk)}."
        )
        fix = self.work_mem_fix(
            (peak + disk) / multiplier,
            f"the groups need about {_kb(peak + disk)}, and it may use work_mem x hash_mem_multiplier ({multiplier:g})",
        )
        return [Problem("hashagg_spill", "warning", node.id, detail, fix)]

    def _temp_spill(self, node: _Node) -> list[Problem]:
        written = int(self.counters["temp_written"][node.id] or 0)
        if written <= 0:
            return []
        if node.type in ("Hash Join", "Gather", "Gather Merge") or node.type == "Sort":
            return []  # a hash join's batch files belong to hash_spill; a Gather repeats its workers' counters
        if node.type == "Aggregate" and self._hashagg_spill(node):
            return []
        sort_disk = node.raw.get("Full-sort Groups", {}) or {}
        extra = ""
        if node.type == "Incremental Sort" and isinstance(sort_disk, Mapping) and "Sort Space Disk" in sort_disk:
            extra = " (its sort groups went to disk)"
        detail = f"{self.label(node)} wrote {_blocks(written)} of temporary files{extra}."
        fix = self.work_mem_fix(2 * written * BLOCK_SIZE / 1024, "what it wrote to disk, held in memory")
        return [Problem("temp_spill", "warning", node.id, detail, fix)]

    # 10. lossy bitmap
    def _lossy_bitmap(self, node: _Node) -> list[Problem]:
        lossy = int(node.number("Lossy Heap Blocks"))
        if node.type != "Bitmap Heap Scan" or lossy <= 0:
            return []
        exact = int(node.number("Exact Heap Blocks"))
        recheck = self.removed(node, "Rows Removed by Index Recheck")
        detail = (
            f"{self.label(node)} kept only page numbers for {_count(lossy)} of {_count(lossy + exact)} heap pages "
            f"(the bitmap outgrew work_mem), so it rechecked every row on them and removed {_count(recheck)}."
        )
        fix = self.work_mem_fix((lossy + exact) * 80 / 1024, f"an exact bitmap of {_count(lossy + exact)} pages")
        return [Problem("lossy_bitmap", "warning", node.id, detail, fix)]

    # 11. heap fetches
    def _heap_fetches(self, node: _Node) -> list[Problem]:
        if node.type != "Index Only Scan":
            return []
        fetches = node.number("Heap Fetches")
        if fetches < HEAP_FETCH_MIN:
            return []
        visited = (
            node.number("Actual Rows")
            + node.number("Rows Removed by Filter")
            + node.number("Rows Removed by Index Recheck")
        ) * (node.loops or 0)
        fraction = min(1.0, fetches / max(visited, 1.0))
        severity = _grade(fraction, HEAP_FETCH_SHARES)
        if severity is None:
            return []
        table = self.qualified(node) or "the table"
        detail = (
            f"{self.label(node)} had to visit the table {_count(fetches)} times for {_count(visited)} index entries "
            f"({_pct(fraction)}): those pages are not marked all-visible."
        )
        fix = (
            f"VACUUM (ANALYZE) {table} to set its visibility map; if it changes all the time, let autovacuum visit "
            f"it sooner: ALTER TABLE {table} SET (autovacuum_vacuum_scale_factor = 0.02, "
            "autovacuum_vacuum_insert_scale_factor = 0.02)"
        )
        return [Problem("heap_fetches", severity, node.id, detail, fix)]

    # 12. nested loop driven by an underestimate
    def _nested_loop(self, node: _Node) -> list[Problem]:
        if node.type != "Nested Loop":
            return []
        outer, inner = self.child(node, "Outer"), self.child(node, "Inner")
        if outer is None or inner is None or inner.loops is None:
            return []
        promised = max(1.0, outer.number("Plan Rows") * (node.loops or 0))
        loops = inner.loops
        factor = loops / promised
        if loops < NESTED_LOOP_MIN_LOOPS or factor < NESTED_LOOP_FACTOR:
            return []
        severity = "critical" if factor >= NESTED_LOOP_CRITICAL else "warning"
        detail = (
            f"{self.label(node)} ran its inner side ({self.label(inner)}) {_count(loops)} times where the outer "
            f"estimate promised {_count(promised)} ({factor:,.0f}x more){self._time_phrase_total(node)}."
        )
        source = self._misestimate_source(outer)
        if source is not None:
            under = bool((self.misestimates[source.id] or (0.0, True))[1])
            fix = f"correct the outer side's estimate at {self.label(source)}: {self._misestimate_fix(source, under)}"
        else:
            fix = f"correct the outer side's row estimate ({self.label(outer)}): ANALYZE the tables it reads"
        if inner.type == "Seq Scan":
            fix += "; and give the inner side an index on its join columns so that each loop is cheap"
        return [Problem("nested_loop_underestimate", severity, node.id, detail, fix)]

    def _misestimate_source(self, node: _Node) -> _Node | None:
        """The deepest node under (or at) ``node`` whose own estimate went wrong."""
        best = None
        for current in [node, *self.descendants(node)]:
            if current.relationship in ("InitPlan", "SubPlan"):
                continue
            if self._flagged_misestimate(current) is not None and (best is None or current.depth > best.depth):
                best = current
        return best

    def _time_phrase_total(self, node: _Node) -> str:
        total = self.total[node.id]
        if total is None or not self.execution_ms:
            return ""
        return f", taking {_ms(total)} in all ({_pct(total / self.execution_ms)} of the execution time)"

    # 13. join filter waste
    def _join_filter(self, node: _Node) -> list[Problem]:
        text = node.raw.get("Join Filter")
        if not text or "Rows Removed by Join Filter" not in node.raw:
            return []
        removed = self.removed(node, "Rows Removed by Join Filter")
        produced = self.rows(node)
        if removed < FILTER_MIN_ROWS:
            return []
        share = self.share(node)
        if share is not None and share < FILTER_MIN_SHARE:
            return []
        fraction = removed / (removed + produced)
        severity = "critical" if fraction > FILTER_CRITICAL else "warning" if fraction > FILTER_WARNING else None
        if severity is None:
            return []
        detail = (
            f"{self.label(node)} tried {_count(removed + produced)} row combinations and threw away {_count(removed)} "
            f"({_pct(fraction)}) with the join filter {text}{self._time_phrase(node)}."
        )
        candidate = None
        if " OR " in str(text):
            fix = (
                "the OR across the two tables keeps the condition from being a join key: rewrite the query as a "
                "UNION of one join per OR branch, so that each can use an index or a hash"
            )
        else:
            inner = self.child(node, "Inner")
            while inner is not None and inner.type in ("Materialize", "Memoize", "Hash") and inner.children:
                inner = self.children(inner)[0]
            columns: tuple[str, ...] = ()
            if inner is not None and inner.raw.get("Relation Name") is not None:
                columns = _conditions(str(text), self.names(inner)).index_columns()
            if inner is not None and columns:
                table = self.qualified(inner) or "the inner table"
                fix = (
                    f"CREATE INDEX CONCURRENTLY ON {table} ({', '.join(_ident(c) for c in columns)}), so that the join "
                    "condition becomes an index condition of the inner side"
                )
                candidate = self.candidate(inner, columns)
            else:
                fix = (
                    "make the join condition usable as a key: compare plain columns with = (no functions or casts on "
                    "them), so that the planner can hash, merge or index it"
                )
        return [Problem("join_filter_waste", severity, node.id, detail, fix, candidate)]

    # 14. large offset
    def _large_offset(self, node: _Node) -> list[Problem]:
        if node.type != "Limit":
            return []
        source = self._first_input(node)
        if source is None or not source.executed:
            return []
        returned = self.rows(node)
        read = self.rows(source)
        skipped = read - returned
        if skipped < OFFSET_MIN_ROWS or read < OFFSET_FACTOR * max(returned, 1.0):
            return []
        facts = self.query_facts()
        if facts is not None and not facts.has_offset:
            return []
        confirmed = " (the query has an OFFSET)" if facts is not None else ""
        detail = (
            f"{self.label(node)} read {_rows(read)} to return {_count(returned)}: {_count(skipped)} were "
            f"skipped{confirmed}{self._time_phrase_total(source)}."
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
        return [Problem("large_offset", "warning", node.id, detail, fix)]

    # 16. poor cache hit
    def _cache(self, node: _Node) -> list[Problem]:
        read = int(self.counters["shared_read"][node.id] or 0)
        hit = int(self.counters["shared_hit"][node.id] or 0)
        if read < CACHE_MIN_READ or read / (read + hit) < CACHE_READ_RATIO:
            return []
        io_read = self.io_read[node.id]
        severity = "info"
        io_phrase = ""
        if io_read is not None and io_read > 0:
            io_phrase = f", waiting {_ms(io_read)} for them"
            if self.execution_ms and io_read / self.execution_ms >= CACHE_IO_SHARE:
                severity = "warning"
                io_phrase += f" ({_pct(io_read / self.execution_ms)} of the execution time)"
        detail = (
            f"{self.label(node)} found only {hit:,} of {read + hit:,} blocks in shared_buffers and read "
            f"{_blocks(read)} from the OS{io_phrase}."
        )
        table = self.qualified(node)
        buffers = self.settings.get("shared_buffers")
        size = f" ({buffers})" if buffers else ""
        fix = (
            "if runs are usually this slow, its working set does not stay in shared_buffers"
            f"{size}: raise shared_buffers (a restart) if memory allows, or read fewer blocks with a more selective "
            "index"
        )
        if table is not None:
            fix += f"; after a restart, SELECT pg_prewarm('{table}') (extension pg_prewarm) loads it back"
        return [Problem("poor_cache_hit", severity, node.id, detail, fix)]

    # 17. read efficiency
    def _read_efficiency(self, node: _Node) -> list[Problem]:
        if node.type != "Seq Scan":
            return []
        blocks = self.blocks(node)
        if blocks < READ_MIN_BLOCKS:
            return []
        examined = (node.number("Actual Rows") + node.number("Rows Removed by Filter")) * (node.loops or 0)
        per_row = blocks * BLOCK_SIZE / max(examined, 1.0)
        width = node.number("Plan Width") + TUPLE_OVERHEAD
        if per_row < READ_BYTES_INFO or per_row < READ_FACTOR * width:
            return []
        severity = "warning" if per_row >= READ_BYTES_WARNING else "info"
        table = self.qualified(node) or "the table"
        detail = (
            f"{self.label(node)} read {_blocks(blocks)} for {_rows(examined)}, {_bytes(per_row)} per row "
            f"where a row takes about {_bytes(width)}: most of the table is empty space or dead rows."
        )
        fix = (
            f"VACUUM (VERBOSE) {table} to make the dead rows' space reusable; to give the space back, rewrite the "
            f"table: VACUUM FULL {table} (locks it ACCESS EXCLUSIVE while it runs) or pg_repack without the lock"
        )
        return [Problem("read_efficiency", severity, node.id, detail, fix)]

    # 18. JIT
    def _jit(self) -> list[Problem]:
        jit = self.top.get("JIT")
        if not isinstance(jit, Mapping) or not self.execution_ms:
            return []
        timing = jit.get("Timing")
        if not isinstance(timing, Mapping):
            return []
        total = _float(timing.get("Total"))
        if total is None:
            parts = [_float(timing.get(k)) for k in ("Generation", "Inlining", "Optimization", "Emission")]
            total = sum(p for p in parts if p is not None)
        if total < JIT_MIN_MS:
            return []
        share = total / self.execution_ms
        severity = "critical" if share > JIT_SHARES[1] else "warning" if share > JIT_SHARES[0] else None
        if severity is None:
            return []
        functions = jit.get("Functions")
        optimize = (_float(timing.get("Optimization")) or 0.0) + (_float(timing.get("Inlining")) or 0.0)
        cost = float(self.nodes[0].raw.get("Total Cost", 0.0))
        detail = (
            f"JIT compilation of {functions} functions took {_ms(total)}, {_pct(share)} of the "
            f"{_ms(self.execution_ms)} execution (inlining and optimization {_ms(optimize)}), for a plan of cost "
            f"{cost:,.0f}."
        )
        above = _float(self.settings.get("jit_above_cost"))
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
        return [Problem("jit_overhead", severity, None, detail, fix)]

    # 19. planning time
    def _planning(self) -> list[Problem]:
        planning = _float(self.top.get("Planning Time"))
        execution = _float(self.top.get("Execution Time"))
        if planning is None or execution is None or planning < PLANNING_MIN_MS:
            return []
        share = planning / (planning + execution)
        severity = _grade(share, PLANNING_SHARES)
        if severity is None:
            return []
        detail = (
            f"Planning took {_ms(planning)}, {_pct(share)} of planning and execution together "
            f"(execution {_ms(execution)})."
        )
        fix = (
            "prepare the statement (PREPARE, or the driver's prepared statements) so that its plan is reused; "
            "with many joined tables, lower join_collapse_limit and from_collapse_limit (default 8) or geqo_threshold, "
            "and compare partition keys with constants so that partitions are pruned while planning"
        )
        return [Problem("planning_time", severity, None, detail, fix)]

    # 20. workers not launched
    def _workers(self, node: _Node) -> list[Problem]:
        if "Workers Planned" not in node.raw or "Workers Launched" not in node.raw:
            return []
        planned, launched = int(node.number("Workers Planned")), int(node.number("Workers Launched"))
        if launched >= planned:
            return []
        detail = (
            f"{self.label(node)} planned {planned} parallel workers but launched {launched}, so the leader did "
            f"{'all the work alone' if launched == 0 else 'more of the work than planned'}."
        )
        forced = self.settings.get("max_parallel_workers")
        if forced is not None and _float(forced) is not None and (_float(forced) or 0.0) < planned:
            fix = f"max_parallel_workers is {forced} in this session: RESET max_parallel_workers"
        else:
            fix = (
                "the pool of parallel workers was in use: raise max_parallel_workers (and max_worker_processes, "
                "which needs a restart) if the server has idle CPUs, or lower max_parallel_workers_per_gather so "
                "that plans count on fewer"
            )
        return [Problem("workers_not_launched", "warning", node.id, detail, fix)]

    # 21. triggers
    def _triggers(self) -> list[Problem]:
        found = []
        execution = self.execution_ms
        for trigger in self.top.get("Triggers") or []:
            spent = _float(trigger.get("Time"))
            if spent is None or not execution or spent < TRIGGER_MIN_MS:
                continue
            share = spent / execution
            severity = "critical" if share > TRIGGER_SHARES[1] else "warning" if share > TRIGGER_SHARES[0] else None
            if severity is None:
                continue
            name = str(trigger.get("Trigger Name", "?"))
            constraint = trigger.get("Constraint Name")
            on = trigger.get("Relation")
            calls = int(trigger.get("Calls") or 0)
            what = f"for constraint {constraint}" if constraint else ""
            detail = (
                f"Trigger {name} {what} on {on} took {_ms(spent)} over {_count(calls)} calls, {_pct(share)} of the "
                "execution time."
            ).replace("  ", " ")
            fix, candidate = self._trigger_fix(name, None if constraint is None else str(constraint))
            found.append(Problem("slow_trigger", severity, None, detail, fix, candidate))
        return found

    def _trigger_fix(self, name: str, constraint: str | None) -> tuple[str, tuple[str, str, tuple[str, ...]] | None]:
        if constraint is None:
            return (f"look at what trigger {name}'s function does for each row; make it cheaper, or set-based", None)
        for table in self.context.values():
            for fk, columns in table.fk_without_index:
                if fk == constraint and columns:
                    schema, _, relation = table.relation.rpartition(".")
                    name_sql = f"{_ident(schema)}.{_ident(relation)}" if schema else _ident(relation)
                    fix = (
                        f"CREATE INDEX CONCURRENTLY ON {name_sql} ({', '.join(_ident(c) for c in columns)}): the "
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

    # 22. memoize
    def _memoize(self, node: _Node) -> list[Problem]:
        if node.type != "Memoize":
            return []
        hits, misses = node.number("Cache Hits"), node.number("Cache Misses")
        evictions, overflows = node.number("Cache Evictions"), node.number("Cache Overflows")
        lookups = hits + misses
        if lookups < MEMOIZE_MIN_LOOKUPS:
            return []
        key = node.raw.get("Cache Key", "its key")
        figures = (
            f"{_count(hits)} hits, {_count(misses)} misses, {_count(evictions)} evictions and "
            f"{_count(overflows)} overflows for {_count(lookups)} lookups on {key}"
        )
        if misses > hits and (evictions > 0 or overflows > 0):
            peak = node.number("Peak Memory Usage")
            held = max(1.0, misses - evictions)
            needed = peak * misses / held / self.hash_mem_multiplier()
            detail = f"{self.label(node)} kept evicting what it cached: {figures}."
            fix = self.work_mem_fix(needed, "room for every key it saw") + (
                "; or, if the keys hardly repeat, SET enable_memoize = off for this query"
            )
            return [Problem("memoize_thrash", "warning", node.id, detail, fix)]
        if misses >= MEMOIZE_USELESS * max(hits, 1.0):
            detail = f"{self.label(node)} hardly ever found a key in its cache: {figures}."
            fix = (
                "the planner expected the key to repeat: ANALYZE the outer side's table so that it knows the key's "
                "distinct count, or SET enable_memoize = off for this query"
            )
            return [Problem("memoize_thrash", "info", node.id, detail, fix)]
        return []

    # 23. settings
    def _settings(self) -> list[Problem]:
        if not self.settings:
            return []
        listed = ", ".join(f"{k} = {v}" for k, v in sorted(self.settings.items()))
        switches = sorted(k for k, v in self.settings.items() if k.startswith("enable_") and v == "off")
        if switches:
            detail = f"The plan was made with non-default settings ({listed}), planner switches among them."
            fix = (
                f"planner switches are for diagnosis, not for production: RESET {', '.join(switches)} and fix the "
                "cause (statistics, indexes) instead; check that the other settings are intended"
            )
            return [Problem("non_default_settings", "warning", None, detail, fix)]
        detail = f"The plan was made with non-default settings: {listed}."
        fix = "check that these are intended for this query: ALTER ROLE/DATABASE ... SET or SET LOCAL applies them"
        return [Problem("non_default_settings", "info", None, detail, fix)]


_REMOVED_KEYS = ("Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck")

# --- conditions, parsed with pglast -----------------------------------------------------------------------

_SUBPLAN_REFERENCE = re.compile(
    r"\((?:alternatives: )?(?:hashed )?(?:SubPlan|InitPlan) \d+(?: or hashed SubPlan \d+)?\)(?:\.col\d+)?"
)
_EQUALITY = {"="}
_RANGE = {"<", ">", "<=", ">="}
_SIMPLE = re.compile(r"[a-z_][a-z0-9_$]*")


@dataclass(frozen=True)
class _Conditions:
    """Plain columns of one relation in a condition: compared by equality, by range, or mentioned at all."""

    equality: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()

    def index_columns(self) -> tuple[str, ...]:
        """Equality columns first, then the first range column (a btree seeks on one range only)."""
        extra = [c for c in self.ranges if c not in self.equality][:1]
        return tuple(_unique([*self.equality, *extra]))

    def merge(self, other: _Conditions) -> _Conditions:
        return _Conditions(
            tuple(_unique([*self.equality, *other.equality])),
            tuple(_unique([*self.ranges, *other.ranges])),
            tuple(_unique([*self.columns, *other.columns])),
        )


def _conditions(text: str, names: set[str]) -> _Conditions:
    """The plain columns of the relation known as ``names`` (alias, table name) in a condition's text."""
    from pglast import ast, enums, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(f"SELECT 1 WHERE {_SUBPLAN_REFERENCE.sub('NULL', text)}")
    except ParseError:
        return _Conditions()
    where: Any = getattr(statements[0].stmt, "whereClause", None)
    equality: list[str] = []
    ranges: list[str] = []
    columns: list[str] = []

    def column(node: Any) -> str | None:
        while isinstance(node, ast.TypeCast):
            node = node.arg
        if not isinstance(node, ast.ColumnRef):
            return None
        fields = [str(f.sval) for f in node.fields or () if isinstance(f, ast.String)]
        if len(fields) != len(node.fields or ()):
            return None  # a * in the reference
        if len(fields) == 1:
            return fields[0]
        if len(fields) in (2, 3) and fields[-2] in names:
            return fields[-1]
        return None

    def mentions_own(node: Any) -> bool:
        return any(column(n) is not None for n in _walk(node, ast.Node) if isinstance(n, ast.ColumnRef))

    stack = [where]
    conjuncts = []
    while stack:
        current = stack.pop()
        if isinstance(current, ast.BoolExpr) and current.boolop == enums.BoolExprType.AND_EXPR:
            stack.extend(reversed(current.args or ()))
        elif current is not None:
            conjuncts.append(current)
    for conjunct in conjuncts:
        for node in _walk(conjunct, ast.Node):
            if isinstance(node, ast.ColumnRef):
                name = column(node)
                if name is not None:
                    columns.append(name)
        own = column(conjunct)
        if own is not None:  # a boolean column
            equality.append(own)
            continue
        if isinstance(conjunct, ast.BoolExpr) and conjunct.boolop == enums.BoolExprType.NOT_EXPR:
            negated = column((conjunct.args or (None,))[0])
            if negated is not None:
                equality.append(negated)
            continue
        if isinstance(conjunct, ast.NullTest):
            tested = column(conjunct.arg)
            if tested is not None and conjunct.nulltesttype == enums.NullTestType.IS_NULL:
                equality.append(tested)
            continue
        if not isinstance(conjunct, ast.A_Expr):
            continue
        operator = "".join(str(n.sval) for n in conjunct.name or () if isinstance(n, ast.String))
        kind = conjunct.kind
        left, right = conjunct.lexpr, conjunct.rexpr
        if kind == enums.A_Expr_Kind.AEXPR_OP_ANY and operator in _EQUALITY:
            own = column(left)
            if own is not None and not mentions_own(right):
                equality.append(own)
            continue
        if kind != enums.A_Expr_Kind.AEXPR_OP or operator not in _EQUALITY | _RANGE:
            continue
        for side, other in ((left, right), (right, left)):
            own = column(side)
            if own is not None and not mentions_own(other):
                (equality if operator in _EQUALITY else ranges).append(own)
                break
    return _Conditions(tuple(_unique(equality)), tuple(_unique(ranges)), tuple(_unique(columns)))


def _walk(node: Any, base: Any) -> Iterator[Any]:
    """Every pglast node of type ``base`` in a tree (iterative: long AND chains nest deeply)."""
    stack = [node]
    while stack:
        current: Any = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(current)
        elif isinstance(current, base):
            yield current
            stack.extend(getattr(current, attribute) for attribute in current)


@dataclass(frozen=True)
class _QueryFacts:
    has_offset: bool
    order_by: tuple[str, ...]  # the top-level ORDER BY expressions, as SQL
    order_columns: tuple[tuple[str | None, str], ...]  # (qualifier, column) when every one is a plain column


def _query_facts(query: str) -> _QueryFacts | None:
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
    from pglast.stream import RawStream

    try:
        statements = parse_sql(query)
    except ParseError:
        return None
    if not statements:
        return None
    statement: Any = statements[0].stmt
    has_offset = any(
        getattr(node, "limitOffset", None) is not None
        for node in _walk(statement, ast.Node)
        if isinstance(node, ast.SelectStmt)
    )
    order_by: list[str] = []
    columns: list[tuple[str | None, str]] = []
    plain = True
    if isinstance(statement, ast.SelectStmt):
        for sort in statement.sortClause or ():
            order_by.append(RawStream()(sort.node))
            node: Any = sort.node
            fields = [str(f.sval) for f in getattr(node, "fields", None) or () if isinstance(f, ast.String)]
            if isinstance(node, ast.ColumnRef) and fields and len(fields) == len(node.fields or ()):
                columns.append((fields[-2] if len(fields) > 1 else None, fields[-1]))
            else:
                plain = False
    return _QueryFacts(has_offset, tuple(order_by), tuple(columns) if plain else ())


_INDEX_DEFINITION = re.compile(
    r'^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?("(?:[^"]|"")+"|\S+) ON (?:ONLY )?\S+ '
    r"(?:USING \w+ )?\((.*)\)",
    re.IGNORECASE,
)


_FIRST_IDENTIFIER = re.compile(r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\s|$)')


def _index_definition(definition: str) -> tuple[str, tuple[str, ...]] | None:
    """(index name, leading plain columns) of a pg_get_indexdef text; columns stop at the first expression."""
    match = _INDEX_DEFINITION.match(definition.strip())
    if match is None:
        return None
    name = _unquote(match.group(1))
    body = match.group(2)
    depth, start, items = 0, 0, []
    for position, char in enumerate(body):
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                body = body[:position]
                break
            depth -= 1
        elif char == "," and depth == 0:
            items.append(body[start:position])
            start = position + 1
    items.append(body[start:])
    columns: list[str] = []
    for item in items:
        first = _FIRST_IDENTIFIER.match(item.strip())
        if first is None:
            break  # an expression: the columns after it are not plain either
        columns.append(_unquote(first.group(1)))
    return (name, tuple(columns))


# --- labels and formatting --------------------------------------------------------------------------------


def _relation(raw: Mapping[str, Any]) -> str | None:
    name = raw.get("Relation Name")
    if name is None:
        return None
    schema = raw.get("Schema")
    return f"{schema}.{name}" if schema else str(name)


_AGGREGATES = {"Plain": "Aggregate", "Sorted": "GroupAggregate", "Hashed": "HashAggregate", "Mixed": "MixedAggregate"}


def _label(raw: Mapping[str, Any]) -> str:
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
    relation = _relation(raw)
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
    if kind in _JOINS and raw.get("Join Type"):
        name += f" ({raw['Join Type']})"
    if kind == "Sort" and raw.get("Sort Method"):
        space = raw.get("Sort Space Used")
        where = raw.get("Sort Space Type", "")
        name += f" ({raw['Sort Method']}" + (f", {where} {_kb(float(space))}" if space is not None else "") + ")"
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


def _ident(name: str | None) -> str:
    """An identifier as SQL: bare when PostgreSQL would not quote it (quote_ident's rule), else double-quoted."""
    from dbmaint.sql.identifiers import quote_ident  # pglast's keyword lists: only when a fix names something

    return '""' if name is None else quote_ident(name)


def _unquote(name: str) -> str:
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def _create_statistics(table: str, bare: str, columns: Sequence[str], kinds: Sequence[str]) -> str:
    columns = list(columns)[:8]  # CREATE STATISTICS takes at most 8 columns
    schema = table.rsplit(".", 1)[0] + "." if "." in table else ""
    name = _ident("_".join([bare, *columns, "stats"])[:63])
    listed = ", ".join(_ident(c) for c in columns)
    return (
        f"the planner multiplies the selectivities of ({', '.join(columns)}) as if they were independent: "
        f"CREATE STATISTICS {schema}{name} ({', '.join(kinds)}) ON {listed} FROM {table}; ANALYZE {table}"
    )


def _grade(value: float, thresholds: tuple[float, float, float]) -> str | None:
    info, warning, critical = thresholds
    if value > critical:
        return "critical"
    if value > warning:
        return "warning"
    if value > info:
        return "info"
    return None


def _unique(values: Iterable[str]) -> list[str]:
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen


def _float(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _first_float(raw: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for key in keys:
        if key in raw:
            return _float(raw[key])
    return None


def _int(value: float | None) -> int | None:
    return None if value is None else round(value)


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|kB|MB|GB|TB)?\s*$")
_SIZE_KB = {"B": 1 / 1024, "kB": 1.0, "MB": 1024.0, "GB": 1024.0**2, "TB": 1024.0**3}


def _size_kb(text: str | None) -> float | None:
    """A memory setting as EXPLAIN's Settings show it ('64kB', '1GB'; a bare number is kB) in kB."""
    if text is None:
        return None
    match = _SIZE.match(text)
    if match is None:
        return None
    return float(match.group(1)) * _SIZE_KB[match.group(2) or "kB"]


def _count(value: float) -> str:
    return f"{value:,.0f}"


def _rows(value: float) -> str:
    return "1 row" if round(value) == 1 else f"{value:,.0f} rows"


def _pct(value: float) -> str:
    """A share as a percentage that says 99.9% rather than 100% when it is not all."""
    percent = value * 100
    if 99.5 <= percent < 100:
        return f"{math.floor(percent * 10) / 10:.1f}%"
    if 0 < percent < 0.5:
        return "<1%"
    return f"{percent:.0f}%"


def _ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value:.2f} ms"


def _kb(value: float) -> str:
    if value < 1024:
        return f"{value:,.0f} kB"
    if value < 10 * 1024:
        return f"{value / 1024:.1f} MB"
    if value < 1024 * 1024:
        return f"{value / 1024:,.0f} MB"
    return f"{value / 1024 / 1024:.1f} GB"


def _bytes(value: float) -> str:
    return f"{value:,.0f} bytes" if value < 1024 else _kb(value / 1024)


def _blocks(blocks: float) -> str:
    return f"{blocks:,.0f} blocks ({_kb(blocks * BLOCK_SIZE / 1024)})"
