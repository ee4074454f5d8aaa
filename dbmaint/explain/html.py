"""`dbmaint explain --format html`: one self-contained HTML page to open or attach to a pull request.

Pure: an explain :class:`~dbmaint.explain.runner.Result` (or two, and their comparison) in, a string out. This
module computes what the page shows (figures, levels, misestimates, formatted numbers) as plain values; the
markup is in the Jinja2 templates of ``templates/``, rendered with autoescaping, so everything that comes from
the database (the statement, names, values, conditions) is escaped without having to remember it. The page has
its CSS inline and loads nothing. A few lines of inline JavaScript fold subtrees of the plan; without them the
page reads the same, fully unfolded. Its Content-Security-Policy allows no resource at all and only that one
script (by its hash), so even an unescaped string could not run a script of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from dbmaint import __version__
from dbmaint.explain.compare import (
    Figure,
    NodeChange,
    PlanComparison,
    ProblemChange,
    describe_key,
    format_figure,
    ratio_phrase,
)
from dbmaint.explain.plan import NodeFigures, Problem
from dbmaint.units import format_ms, format_share, format_size

if TYPE_CHECKING:
    import jinja2

    from dbmaint.explain.runner import Result

HOT_SHARES = (0.1, 0.4)  # as the terminal tree: bold and amber above 10% of the time, red above 40%
MISESTIMATE_SHOWN, MISESTIMATE_RED = 10.0, 100.0

# Conditions and keys shown under a node's label (PostgreSQL's JSON keys).
_CONDITIONS = (
    "Index Cond",
    "Recheck Cond",
    "Filter",
    "Join Filter",
    "Hash Cond",
    "Merge Cond",
    "One-Time Filter",
    "Sort Key",
    "Presorted Key",
    "Group Key",
    "Cache Key",
)
_REMOVED = ("Rows Removed by Filter", "Rows Removed by Join Filter", "Rows Removed by Index Recheck")
_SEVERITIES = ("critical", "warning", "info")


@cache
def _environment() -> jinja2.Environment:
    # Imported here, and the environment built once on first use: only HTML output pays for Jinja2.
    import jinja2

    return jinja2.Environment(
        loader=jinja2.PackageLoader("dbmaint.explain", "templates"),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def _static(name: str) -> str:
    """The page's CSS and JS, kept as files of their own (package data) and inlined: the page needs no network."""
    return resources.files("dbmaint.explain").joinpath("static", name).read_text(encoding="utf-8")


def _render_page(template: str, title: str, **values: Any) -> str:
    script = _static("explain.js")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    page = _environment().get_template(template)
    return page.render(
        title=title,
        policy=f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'",
        css=_static("explain.css"),
        script=script,
        version=__version__,
        **values,
    )


# --- what the templates show ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    sql: str
    values: str | None  # "$1 = '42', ..."
    rare: str | None  # the same statement with rare values: timing and plan change, or the error


@dataclass(frozen=True)
class Card:
    key: str
    value: str = ""
    small: str | None = None  # a second, smaller part of the value
    badges: tuple[tuple[str, int], ...] | None = None  # (severity, count): the value of the problems' card


@dataclass(frozen=True)
class Misestimate:
    style: str
    title: str
    arrow: str
    factor: str
    direction: str


@dataclass(frozen=True)
class Badge:
    position: int  # the problem's number on the page
    severity: str
    kind: str
    detail: str


@dataclass(frozen=True)
class PlanRow:
    """One node of the plan table; figures already formatted (None: the cell is empty)."""

    id: int
    depth: int
    level: str  # "", warn or crit by share of the time
    ancestors: str  # ids, space-separated, for folding
    indent: str  # em
    condition_indent: str  # em
    has_children: bool
    relationship: str | None  # Inner or Outer, shown only where there are two sides
    label: str
    badges: tuple[Badge, ...]
    conditions: tuple[str, ...]
    # executed plans
    time: str | None
    time_style: str  # "", t-warn or t-crit
    share: str
    bar_width: str
    never_executed: bool
    rows: str
    estimated: str
    misestimate: Misestimate | None
    loops: str | None
    hit: str | None
    read: str | None
    buffers: str | None  # "hit / read", in the compact table
    temp: str | None  # "read / written"
    # estimates only
    plan_rows: str
    cost: str
    width: str


@dataclass(frozen=True)
class PlanTable:
    prefix: str  # of ids: the comparison page has two plans
    executed: bool
    timed: bool
    compact: bool
    rows: tuple[PlanRow, ...]


@dataclass(frozen=True)
class ProvenFixView:
    cost_before: str
    cost_after: str
    change: str
    definition: str


@dataclass(frozen=True)
class ProblemView:
    position: int
    severity: str
    kind: str
    detail: str
    node: int | None
    node_label: str
    proven: ProvenFixView | None
    fix: str


@dataclass(frozen=True)
class TableRow:
    name: str
    size: str
    rows: str
    analyzed: str
    changed: str
    indexes: tuple[str, ...]


@dataclass(frozen=True)
class TriggerRow:
    name: str
    constraint: str
    table: str
    time: str
    calls: str


@dataclass(frozen=True)
class Notes:
    items: tuple[str, ...]
    settings: str | None  # those that differ from the defaults


@dataclass(frozen=True)
class Side:
    """One explained statement, as both pages show it."""

    name: str  # before, after; "" on the page of one statement
    mode: str
    statement: Statement
    cards: tuple[Card, ...]
    plan: PlanTable
    problems: tuple[ProblemView, ...]
    triggers: tuple[TriggerRow, ...]
    notes: Notes
    raw_plan: str  # PostgreSQL's JSON


@dataclass(frozen=True)
class FigureRow:
    title: str
    before: str
    after: str
    change: str
    style: str  # "", better or worse


@dataclass(frozen=True)
class NodeChangeView:
    change: str
    mark: str
    side: str
    node: int
    name: str
    detail: str


@dataclass(frozen=True)
class ProblemChangeView:
    severity: str
    kind: str
    detail: str
    side: str
    node: int | None
    node_label: str


@dataclass(frozen=True)
class ProblemChanges:
    title: str
    changes: tuple[ProblemChangeView, ...]


# --- the pages --------------------------------------------------------------------------------------------


def render(result: Result) -> str:
    """The page of one explained statement."""
    return _render_page(
        "plan.html.j2",
        f"Query plan: {_first_line(result.statement)}",
        side=_side(result, name="", compact=False),
        tables=_tables(result),
    )


def render_comparison(before: Result, after: Result, comparison: PlanComparison) -> str:
    """Two plans side by side, after the differences: figures with ratios, changed nodes, problems."""
    return _render_page(
        "compare.html.j2",
        f"Plan comparison: {_first_line(after.statement)}",
        verdict=_verdict_class(comparison),
        summary=comparison.summary,
        figures=_figures(comparison.figures),
        node_changes=_node_changes(comparison.nodes),
        problem_changes=_problem_changes(comparison),
        kept=", ".join(comparison.kept),
        sides=(_side(before, name="before", compact=True), _side(after, name="after", compact=True)),
    )


def _side(result: Result, *, name: str, compact: bool) -> Side:
    prefix = f"{name}-" if name else ""
    return Side(
        name=name,
        mode=_mode(result),
        statement=_statement(result),
        cards=_cards(result),
        plan=_plan_table(result, prefix=prefix, compact=compact),
        problems=_problems(result),
        triggers=_triggers(result),
        notes=_notes(result),
        raw_plan=json.dumps(result.plan, indent=1, default=str),
    )


def _first_line(text: str, width: int = 80) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _mode(result: Result) -> str:
    kind = "data-modifying statement" if result.kind == "write" else "query"
    if result.analyzed and result.analysis.execution_ms is not None:
        how = "executed (EXPLAIN ANALYZE, BUFFERS)"
        if result.kind == "write":
            how += ", rolled back"
    elif result.analysis.analyzed:
        how = "executed"
    else:
        how = "estimates only, not executed"
    return f"{kind}, {how}"


def _statement(result: Result) -> Statement:
    values = None
    if result.values:
        values = "with " + ", ".join(f"${n} = {_quote(v)}" for n, v in sorted(result.values.items()))
    rare, text = result.rare, None
    if rare:
        shown = ", ".join(f"{k} = {_quote(v)}" for k, v in rare.get("values", {}).items())
        if "error" in rare:
            text = f"with rare values ({shown}): {rare['error']}"
        else:
            same = "the same plan" if rare.get("same_plan") else "a different plan"
            ms = rare.get("execution_ms")
            timing = format_ms(float(ms)) if ms is not None else "not timed"
            text = f"with rare values ({shown}): {timing}, {same}"
    return Statement(sql=result.statement.strip(), values=values, rare=text)


def _quote(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _cards(result: Result) -> tuple[Card, ...]:
    analysis = result.analysis
    root = analysis.nodes[0] if analysis.nodes else None
    cards: list[Card] = []
    if analysis.execution_ms is not None:
        cards.append(Card("Execution", format_ms(analysis.execution_ms)))
    if analysis.planning_ms is not None:
        cards.append(Card("Planning", format_ms(analysis.planning_ms)))
    cards.append(Card("Estimated cost", format_figure("total_cost", analysis.total_cost)))
    if root is not None:
        if root.actual_rows is not None:
            cards.append(Card("Rows", f"{root.actual_rows:,.0f}"))
        else:
            cards.append(Card("Rows (estimated)", f"{root.plan_rows:,.0f}"))
        hit, read = root.detail.get("Shared Hit Blocks"), root.detail.get("Shared Read Blocks")
        if hit is not None or read is not None:
            cards.append(Card("Buffers", f"{int(hit or 0):,} hit", small=f"/ {int(read or 0):,} read"))
        temp = int(root.detail.get("Temp Read Blocks") or 0) + int(root.detail.get("Temp Written Blocks") or 0)
        if temp:
            cards.append(Card("Temp blocks", f"{temp:,}"))
    cards.append(Card("Problems", badges=_severity_counts(analysis.problems)))
    return tuple(cards)


def _severity_counts(problems: Sequence[Problem]) -> tuple[tuple[str, int], ...]:
    counts = ((severity, sum(1 for p in problems if p.severity == severity)) for severity in _SEVERITIES)
    return tuple((severity, count) for severity, count in counts if count)


# --- the tree ---------------------------------------------------------------------------------------------


def _plan_table(result: Result, *, prefix: str, compact: bool) -> PlanTable:
    analysis = result.analysis
    badges: dict[int, list[Badge]] = {}
    for position, problem in enumerate(analysis.problems, start=1):
        if problem.node is not None:
            badges.setdefault(problem.node, []).append(Badge(position, problem.severity, problem.kind, problem.detail))
    parents = {n.id: n.parent for n in analysis.nodes}
    children: dict[int, int] = {}
    for node in analysis.nodes:
        if node.parent is not None:
            children[node.parent] = children.get(node.parent, 0) + 1
    rows = []
    for node in analysis.nodes:
        # Outer and Inner say which side of a join a node is: worth showing only where there are two sides
        # (an InitPlan's or SubPlan's label names it already).
        sides = node.parent is not None and children.get(node.parent, 0) > 1
        relationship = node.detail.get("Parent Relationship")
        rows.append(
            _plan_row(
                node,
                ancestors=_ancestors(node.id, parents),
                has_children=node.id in children,
                relationship=str(relationship) if relationship in ("Inner", "Outer") and sides else None,
                badges=tuple(badges.get(node.id, ())),
            )
        )
    return PlanTable(
        prefix=prefix,
        executed=analysis.analyzed,
        timed=any(n.exclusive_ms is not None for n in analysis.nodes),
        compact=compact,
        rows=tuple(rows),
    )


def _plan_row(
    node: NodeFigures, *, ancestors: list[int], has_children: bool, relationship: str | None, badges: tuple[Badge, ...]
) -> PlanRow:
    level = _level(node.share)
    share = node.share or 0.0
    hit, read = node.shared_hit or 0, node.shared_read or 0
    startup = node.detail.get("Startup Cost")
    return PlanRow(
        id=node.id,
        depth=node.depth,
        level=level,
        ancestors=" ".join(map(str, ancestors)),
        indent=f"{node.depth * 1.4:.1f}",
        condition_indent=f"{node.depth * 1.4 + 2.6:.1f}",
        has_children=has_children,
        relationship=relationship,
        label=node.label,
        badges=badges,
        conditions=tuple(_conditions(node)),
        time=None if node.exclusive_ms is None else format_ms(node.exclusive_ms),
        time_style={"crit": "t-crit", "warn": "t-warn"}.get(level, ""),
        share=format_share(share),
        bar_width=f"{min(max(share, 0.0), 1.0) * 100:.1f}%",
        never_executed=node.actual_rows is None,
        rows=f"{node.actual_rows or 0:,.0f}",
        estimated=f"{node.plan_rows * (node.loops or 1):,.0f}",
        misestimate=_misestimate(node),
        loops=f"{node.loops:,}" if node.loops and node.loops > 1 else None,
        hit=f"{hit:,}" if hit else None,
        read=f"{read:,}" if read else None,
        buffers=f"{hit:,} / {read:,}" if hit or read else None,
        temp=f"{node.temp_read or 0:,} / {node.temp_written or 0:,}" if node.temp_read or node.temp_written else None,
        plan_rows=f"{node.plan_rows:,.0f}",
        cost=f"{float(startup):,.2f}..{node.cost_total:,.2f}" if startup is not None else f"{node.cost_total:,.2f}",
        width=str(node.detail.get("Plan Width") or ""),
    )


def _ancestors(node: int, parents: Mapping[int, int | None]) -> list[int]:
    found = []
    parent = parents.get(node)
    while parent is not None:
        found.append(parent)
        parent = parents.get(parent)
    return found


def _level(share: float | None) -> str:
    if share is None:
        return ""
    return "crit" if share > HOT_SHARES[1] else "warn" if share > HOT_SHARES[0] else ""


def _conditions(node: NodeFigures) -> list[str]:
    found = []
    for key in _CONDITIONS:
        value = node.detail.get(key)
        if value is None or value == []:
            continue
        text = ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        found.append(f"{key}: {text}")
    loops = node.loops or 0
    for key in _REMOVED:
        value = node.detail.get(key)
        if value:
            found.append(f"{key}: {float(value) * max(loops, 1):,.0f}")
    return found


def _misestimate(node: NodeFigures) -> Misestimate | None:
    if node.misestimate is None or node.misestimate < MISESTIMATE_SHOWN:
        return None
    return Misestimate(
        style="t-crit" if node.misestimate >= MISESTIMATE_RED else "t-warn",
        title="more rows than estimated" if node.underestimated else "fewer rows than estimated",
        arrow="\u2191" if node.underestimated else "\u2193",
        factor=f"{node.misestimate:,.0f}",
        direction="under" if node.underestimated else "over",
    )


# --- problems, tables, notes ------------------------------------------------------------------------------


def _problems(result: Result) -> tuple[ProblemView, ...]:
    labels = {n.id: n.label for n in result.analysis.nodes}
    views = []
    for position, problem in enumerate(result.analysis.problems, start=1):
        proven = next((f for f in result.fixes if f.problem == position - 1), None)
        views.append(
            ProblemView(
                position=position,
                severity=problem.severity,
                kind=problem.kind,
                detail=problem.detail,
                node=problem.node,
                node_label=labels.get(problem.node, "") if problem.node is not None else "",
                proven=None
                if proven is None
                else ProvenFixView(
                    cost_before=f"{proven.cost_before:,.0f}",
                    cost_after=f"{proven.cost_after:,.0f}",
                    change=ratio_phrase(proven.cost_before, proven.cost_after, "cheaper", "costlier", whole=True),
                    definition=proven.definition,
                ),
                fix=problem.fix,
            )
        )
    return tuple(views)


def _tables(result: Result) -> tuple[TableRow, ...]:
    return tuple(
        TableRow(
            name=name,
            size=format_size(context.size_bytes),
            rows=f"{context.reltuples:,.0f}",
            analyzed=context.last_analyze.strftime("%Y-%m-%d %H:%M") if context.last_analyze else "never",
            changed=f"{context.n_mod_since_analyze:,}",
            indexes=context.indexes,
        )
        for name, context in sorted(result.context.items())
    )


def _triggers(result: Result) -> tuple[TriggerRow, ...]:
    """The triggers the statement fired (foreign key checks among them): their time is outside the tree."""
    top = result.plan[0] if isinstance(result.plan, list) and result.plan else result.plan
    triggers = top.get("Triggers") if isinstance(top, Mapping) else None
    if not triggers:
        return ()
    execution = result.analysis.execution_ms
    rows = []
    for trigger in triggers:
        time = trigger.get("Time")
        share = f" ({format_share(float(time) / execution)})" if time is not None and execution else ""
        rows.append(
            TriggerRow(
                name=str(trigger.get("Trigger Name", "?")),
                constraint=str(trigger.get("Constraint Name") or ""),
                table=str(trigger.get("Relation") or ""),
                time=format_ms(float(time)) + share if time is not None else "",
                calls=str(trigger.get("Calls", "")),
            )
        )
    return tuple(rows)


def _notes(result: Result) -> Notes:
    settings = result.analysis.settings
    return Notes(
        items=tuple(result.notes),
        settings=", ".join(f"{k} = {v}" for k, v in sorted(settings.items())) if settings else None,
    )


# --- the comparison ---------------------------------------------------------------------------------------


def _verdict_class(comparison: PlanComparison) -> str:
    lead = comparison.figure("execution_ms")
    if lead is None or lead.change is None:
        lead = comparison.figure("total_cost")
    if lead is None or lead.better is None:
        return ""
    return "better" if lead.better else "worse"


def _figures(figures: Iterable[Figure]) -> tuple[FigureRow, ...]:
    return tuple(
        FigureRow(
            title=figure.title,
            before=format_figure(figure.name, figure.before),
            after=format_figure(figure.name, figure.after),
            change=figure.change or "n/a",
            style="" if figure.better is None else ("better" if figure.better else "worse"),
        )
        for figure in figures
    )


_MARKS = {"removed": "\u2212", "added": "+", "changed": "~"}


def _node_changes(changes: Sequence[NodeChange]) -> tuple[NodeChangeView, ...]:
    views = []
    for change in changes:
        node = change.after if change.after is not None else change.before
        assert node is not None
        views.append(
            NodeChangeView(
                change=change.change,
                mark=_MARKS[change.change],
                side="after" if change.after is not None else "before",
                node=node.id,
                name=describe_key((change.node_type, change.relation, change.index))
                if change.change == "changed"
                else node.label,
                detail=change.detail,
            )
        )
    return tuple(views)


def _problem_changes(comparison: PlanComparison) -> tuple[ProblemChanges, ...]:
    return tuple(
        ProblemChanges(title, tuple(_problem_change(change) for change in changes))
        for title, changes in (("Only before has", comparison.fixed), ("Only after has", comparison.new))
    )


def _problem_change(change: ProblemChange) -> ProblemChangeView:
    problem = change.problem
    return ProblemChangeView(
        severity=problem.severity,
        kind=problem.kind,
        detail=problem.detail,
        side=change.side,
        node=problem.node,
        node_label=change.node_label or str(problem.node),
    )
