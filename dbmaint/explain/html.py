"""`dbmaint explain --format html`: one self-contained HTML page to open or attach to a pull request.

Pure: an explain :class:`~dbmaint.explain.runner.Result` (or two, and their comparison) in, a string out. The page has
its CSS inline and loads nothing; everything that comes from the database (the statement, names, values,
conditions) is escaped with :func:`html.escape`. A few lines of inline JavaScript fold subtrees of the plan;
without them the page reads the same, fully unfolded. Its Content-Security-Policy allows no resource at all
and only that one script (by its hash), so even an unescaped string could not run a script of its own.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from html import escape
from importlib import resources
from typing import TYPE_CHECKING

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


def _static(name: str) -> str:
    """The page's CSS and JS, kept as files of their own (package data) and inlined: the page needs no network."""
    return resources.files("dbmaint.explain").joinpath("static", name).read_text(encoding="utf-8")


def render(result: Result) -> str:
    """The page of one explained statement."""
    analysis = result.analysis
    body = [
        "<header>",
        "<h1>Query plan</h1>",
        f'<p class="sub">{_e(_mode(result))}</p>',
        _statement(result),
        _cards(result),
        "</header>",
        '<section id="plan"><h2>Plan</h2>',
        _plan_table(result, prefix="", compact=False),
        "</section>",
        '<section id="problems"><h2>Problems</h2>',
        _problems(result, prefix=""),
        "</section>",
    ]
    triggers = _triggers(result)
    if triggers:
        body += ['<section id="triggers"><h2>Triggers</h2>', triggers, "</section>"]
    if result.context:
        body += ['<section id="tables"><h2>Tables</h2>', _tables(result), "</section>"]
    if result.notes or analysis.settings:
        body += ['<section id="notes"><h2>Notes</h2>', _notes(result), "</section>"]
    body.append(_raw_plan(result, "PostgreSQL's plan (JSON, for other plan viewers)"))
    return _page(f"Query plan: {_first_line(result.statement)}", body)


def render_comparison(before: Result, after: Result, comparison: PlanComparison) -> str:
    """Two plans side by side, after the differences: figures with ratios, changed nodes, problems."""
    verdict = _verdict_class(comparison)
    body = [
        "<header>",
        "<h1>Plan comparison</h1>",
        '<p class="sub">before: the baseline (--compare); after: the statement explained</p>',
        f'<div class="verdict {verdict}">{_e(comparison.summary)}</div>',
        "</header>",
        '<section id="differences"><h2>Differences</h2>',
        _figure_table(comparison.figures),
        _node_changes(comparison.nodes),
        _problem_changes(comparison),
        "</section>",
        '<div class="sides">',
    ]
    for name, result in (("before", before), ("after", after)):
        body += [
            f'<section class="side" id="{name}">',
            f"<h2>{name.capitalize()} <small class='muted'>{_e(_mode(result))}</small></h2>",
            _statement(result),
            _cards(result),
            "<h3>Plan</h3>",
            _plan_table(result, prefix=f"{name}-", compact=True),
            "<h3>Problems</h3>",
            _problems(result, prefix=f"{name}-"),
        ]
        triggers = _triggers(result)
        if triggers:
            body += ["<h3>Triggers</h3>", triggers]
        if result.notes or result.analysis.settings:
            body += ["<h3>Notes</h3>", _notes(result)]
        body += [_raw_plan(result, "PostgreSQL's plan (JSON)"), "</section>"]
    body.append("</div>")
    return _page(f"Plan comparison: {_first_line(after.statement)}", body)


# --- the page ---------------------------------------------------------------------------------------------


def _page(title: str, body: Sequence[str]) -> str:
    digest = base64.b64encode(hashlib.sha256(_static("explain.js").encode()).digest()).decode()
    policy = f"default-src 'none'; style-src 'unsafe-inline'; script-src 'sha256-{digest}'"
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f'<meta http-equiv="Content-Security-Policy" content="{policy}">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            '<meta name="generator" content="dbmaint">',
            f"<title>{_e(title)}</title>",
            f"<style>{_static('explain.css')}</style>",
            "</head>",
            "<body>",
            "<main>",
            *body,
            f"<footer>dbmaint {_e(__version__)} explain</footer>",
            "</main>",
            f"<script>{_static('explain.js')}</script>",
            "</body>",
            "</html>",
            "",
        ]
    )


def _e(value: object) -> str:
    return escape(str(value), quote=True)


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


def _statement(result: Result) -> str:
    parts = [f'<pre class="sql">{_e(result.statement.strip())}</pre>']
    if result.values:
        values = ", ".join(f"${n} = {_quote(v)}" for n, v in sorted(result.values.items()))
        parts.append(f'<p class="muted">with {_e(values)}</p>')
    rare = result.rare
    if rare:
        values = ", ".join(f"{k} = {_quote(v)}" for k, v in rare.get("values", {}).items())
        if "error" in rare:
            text = f"with rare values ({values}): {rare['error']}"
        else:
            same = "the same plan" if rare.get("same_plan") else "a different plan"
            ms = rare.get("execution_ms")
            timing = format_ms(float(ms)) if ms is not None else "not timed"
            text = f"with rare values ({values}): {timing}, {same}"
        parts.append(f'<p class="muted">{_e(text)}</p>')
    return "\n".join(parts)


def _quote(value: object) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _cards(result: Result) -> str:
    analysis = result.analysis
    root = analysis.nodes[0] if analysis.nodes else None
    cards: list[tuple[str, str]] = []
    if analysis.execution_ms is not None:
        cards.append(("Execution", format_ms(analysis.execution_ms)))
    if analysis.planning_ms is not None:
        cards.append(("Planning", format_ms(analysis.planning_ms)))
    cards.append(("Estimated cost", format_figure("total_cost", analysis.total_cost)))
    if root is not None:
        if root.actual_rows is not None:
            cards.append(("Rows", f"{root.actual_rows:,.0f}"))
        else:
            cards.append(("Rows (estimated)", f"{root.plan_rows:,.0f}"))
        hit, read = root.detail.get("Shared Hit Blocks"), root.detail.get("Shared Read Blocks")
        if hit is not None or read is not None:
            cards.append(("Buffers", f"{int(hit or 0):,} hit <small>/ {int(read or 0):,} read</small>"))
        temp = int(root.detail.get("Temp Read Blocks") or 0) + int(root.detail.get("Temp Written Blocks") or 0)
        if temp:
            cards.append(("Temp blocks", f"{temp:,}"))
    counts = _severity_counts(analysis.problems)
    cards.append(("Problems", counts or '<span class="badge ok">none</span>'))
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><div class="k">{_e(k)}</div><div class="v">{v}</div></div>' for k, v in cards)
        + "</div>"
    )


def _severity_counts(problems: Sequence[Problem]) -> str:
    parts = []
    for severity in ("critical", "warning", "info"):
        count = sum(1 for p in problems if p.severity == severity)
        if count:
            parts.append(f'<span class="badge {severity}">{count} {severity}</span>')
    return " ".join(parts)


# --- the tree ---------------------------------------------------------------------------------------------


def _plan_table(result: Result, *, prefix: str, compact: bool) -> str:
    analysis = result.analysis
    if not analysis.nodes:
        return '<p class="muted">no plan nodes</p>'
    timed = any(n.exclusive_ms is not None for n in analysis.nodes)
    executed = analysis.analyzed
    if executed and compact:
        headers = ["Time", "Share", "Rows / est.", "Hit / read"]
    elif executed:
        headers = ["Own time", "Share of time", "Rows", "Estimated", "Misestimate", "Loops", "Buffers hit",
                   "Buffers read", "Temp read / written"]  # fmt: skip
    else:
        headers = ["Estimated rows", "Cost", "Width"]
    if executed and not timed:
        headers = [h for h in headers if h not in ("Own time", "Time", "Share of time", "Share")]
    problems_at: dict[int, list[tuple[int, Problem]]] = {}
    for position, problem in enumerate(analysis.problems, start=1):
        if problem.node is not None:
            problems_at.setdefault(problem.node, []).append((position, problem))
    parents = {n.id: n.parent for n in analysis.nodes}
    children: dict[int, int] = {}
    for node in analysis.nodes:
        if node.parent is not None:
            children[node.parent] = children.get(node.parent, 0) + 1
    rows = []
    for node in analysis.nodes:
        ancestors = _ancestors(node.id, parents)
        # Outer and Inner say which side of a join a node is: worth showing only where there are two sides.
        siblings = children.get(node.parent, 0) if node.parent is not None else 0
        cells = [_node_cell(node, prefix, node.id in children, siblings > 1, problems_at.get(node.id, []))]
        if executed:
            cells += _executed_cells(node, compact=compact, timed=timed)
        else:
            cells += _estimated_cells(node)
        level = _level(node.share)
        attributes = f' id="{prefix}node-{node.id}" data-node="{node.id}" data-anc="{" ".join(map(str, ancestors))}"'
        rows.append(f'<tr class="{level}"{attributes}>' + "".join(cells) + "</tr>")
    head = '<th class="node">Node</th>' + "".join(f"<th>{_e(h)}</th>" for h in headers)
    return (
        f'<div class="scroll"><table class="plan"><thead><tr>{head}</tr></thead><tbody>\n'
        + "\n".join(rows)
        + ("\n</tbody></table></div>")
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


def _node_cell(
    node: NodeFigures, prefix: str, has_children: bool, sides: bool, problems: Sequence[tuple[int, Problem]]
) -> str:
    indent = f"padding-left:{node.depth * 1.4:.1f}em"
    toggle = (
        f'<button class="toggle" type="button" aria-expanded="true" data-node="{node.id}" '
        f'title="fold or unfold the nodes below">\u25be</button>'
        if has_children
        else '<span class="spacer"></span>'
    )
    arrow = '<span class="arrow">\u21b3</span>' if node.depth else ""
    relationship = node.detail.get("Parent Relationship")
    shown_relationship = (
        f'<span class="rel">{_e(relationship)}</span>'
        if relationship in ("Inner", "Outer") and sides  # an InitPlan's or SubPlan's label names it already
        else ""
    )
    badges = " ".join(
        f'<a class="badge {p.severity}" href="#{prefix}problem-{position}" title="{_e(p.detail)}">{_e(p.kind)}</a>'
        for position, p in problems
    )
    lines = [
        f'<div class="label" style="{indent}">{toggle}{arrow}{shown_relationship}'
        f'<span class="name">{_e(node.label)}</span> {badges}</div>'
    ]
    for text in _conditions(node):
        lines.append(f'<div class="cond mono" style="padding-left:{node.depth * 1.4 + 2.6:.1f}em">{_e(text)}</div>')
    return '<td class="node">' + "".join(lines) + "</td>"


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


def _executed_cells(node: NodeFigures, *, compact: bool, timed: bool) -> list[str]:
    cells = []
    if timed:
        if node.exclusive_ms is None:
            cells += [_none(), _none()]
        else:
            level = _level(node.share)
            style = {"crit": "t-crit", "warn": "t-warn"}.get(level, "")
            cells.append(f'<td class="{style}">{_e(format_ms(node.exclusive_ms))}</td>')
            share = node.share or 0.0
            width = f"{min(max(share, 0.0), 1.0) * 100:.1f}%"
            cells.append(
                f'<td><span class="bar {level}"><span style="width:{width}"></span></span>'
                f'<span class="{style}">{_e(format_share(share))}</span></td>'
            )
    estimated = node.plan_rows * (node.loops or 1)
    misestimate = _misestimate(node)
    if node.actual_rows is None:  # never executed
        never = '<td class="muted">never executed</td>'
        return [*cells, never] + ([] if compact else [_none()] * 6)
    if compact:
        rows = f"{node.actual_rows:,.0f} <span class='muted'>/ {estimated:,.0f}</span>"
        if misestimate:
            rows += f" {misestimate}"
        hit, read = node.shared_hit or 0, node.shared_read or 0
        buffers = f"{hit:,} / {read:,}" if hit or read else '<span class="none">-</span>'
        return [*cells, f'<td class="rows">{rows}</td>', f"<td>{buffers}</td>"]
    cells.append(f"<td>{node.actual_rows:,.0f}</td>")
    cells.append(f'<td class="muted">{estimated:,.0f}</td>')
    cells.append(f"<td>{misestimate}</td>" if misestimate else _none())
    cells.append(f"<td>{node.loops:,}</td>" if node.loops and node.loops > 1 else _none(str(node.loops or "")))
    cells.append(_count(node.shared_hit))
    cells.append(_count(node.shared_read))
    if node.temp_read or node.temp_written:
        cells.append(f'<td class="t-warn">{node.temp_read or 0:,} / {node.temp_written or 0:,}</td>')
    else:
        cells.append(_none())
    return cells


def _estimated_cells(node: NodeFigures) -> list[str]:
    startup = node.detail.get("Startup Cost")
    cost = f"{float(startup):,.2f}..{node.cost_total:,.2f}" if startup is not None else f"{node.cost_total:,.2f}"
    width = node.detail.get("Plan Width")
    return [f"<td>{node.plan_rows:,.0f}</td>", f"<td>{_e(cost)}</td>", f"<td class='muted'>{_e(width or '')}</td>"]


def _misestimate(node: NodeFigures) -> str:
    if node.misestimate is None or node.misestimate < MISESTIMATE_SHOWN:
        return ""
    direction = "under" if node.underestimated else "over"
    style = "t-crit" if node.misestimate >= MISESTIMATE_RED else "t-warn"
    arrow = "\u2191" if node.underestimated else "\u2193"
    title = "more rows than estimated" if node.underestimated else "fewer rows than estimated"
    return f'<span class="{style}" title="{title}">{arrow} {node.misestimate:,.0f}x {direction}</span>'


def _count(value: int | None) -> str:
    return f"<td>{value:,}</td>" if value else _none()


def _none(text: str = "") -> str:
    return f'<td class="none">{_e(text)}</td>' if text and text != "1" else '<td class="none"></td>'


# --- problems, tables, notes ------------------------------------------------------------------------------


def _problems(result: Result, *, prefix: str) -> str:
    analysis = result.analysis
    if not analysis.problems:
        return '<p><span class="badge ok">no problems found</span></p>'
    labels = {n.id: n.label for n in analysis.nodes}
    blocks = []
    for position, problem in enumerate(analysis.problems, start=1):
        where = ""
        if problem.node is not None:
            label = labels.get(problem.node, "")
            where = f'at <a href="#{prefix}node-{problem.node}">[{problem.node}] {_e(label)}</a>'
        proven = next((f for f in result.fixes if f.problem == position - 1), None)
        parts = [
            f'<div class="problem {_e(problem.severity)}" id="{prefix}problem-{position}">',
            f'<div class="head"><span class="muted">{position}.</span>'
            f'<span class="badge {_e(problem.severity)}">{_e(problem.severity)}</span>'
            f'<code class="kind">{_e(problem.kind)}</code><span>{where}</span></div>',
            f"<p>{_e(problem.detail)}</p>",
        ]
        if proven is not None:
            change = ratio_phrase(proven.cost_before, proven.cost_after, "cheaper", "costlier", whole=True)
            parts.append(
                f'<div class="proven"><span class="k">Proven fix</span>a hypothetical index (hypopg) takes the '
                f"estimated cost from {proven.cost_before:,.0f} to {proven.cost_after:,.0f} ({_e(change)}):"
                f"<pre>{_e(proven.definition)}</pre></div>"
            )
        else:
            parts.append(f'<div class="fix"><span class="k">Fix</span>{_e(problem.fix)}</div>')
        parts.append("</div>")
        blocks.append("".join(parts))
    return "\n".join(blocks)


def _tables(result: Result) -> str:
    rows = []
    for name, context in sorted(result.context.items()):
        analyzed = context.last_analyze.strftime("%Y-%m-%d %H:%M") if context.last_analyze else "never"
        indexes = "<br>".join(_e(d) for d in context.indexes) or '<span class="muted">none</span>'
        rows.append(
            f"<tr><td class='mono'>{_e(name)}</td><td class='num'>{_e(format_size(context.size_bytes))}</td>"
            f"<td class='num'>{context.reltuples:,.0f}</td><td class='num'>{_e(analyzed)}</td>"
            f"<td class='num'>{context.n_mod_since_analyze:,}</td><td class='mono'>{indexes}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("Table", "Size", "Rows", "Last analyze", "Rows changed since", "Indexes"))
    table = f'<table class="facts"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div class="scroll">{table}</div>'


def _triggers(result: Result) -> str:
    """The triggers the statement fired (foreign key checks among them): their time is outside the tree."""
    top = result.plan[0] if isinstance(result.plan, list) and result.plan else result.plan
    triggers = top.get("Triggers") if isinstance(top, Mapping) else None
    if not triggers:
        return ""
    execution = result.analysis.execution_ms
    rows = []
    for trigger in triggers:
        time = trigger.get("Time")
        share = f" ({format_share(float(time) / execution)})" if time is not None and execution else ""
        rows.append(
            f"<tr><td class='mono'>{_e(trigger.get('Trigger Name', '?'))}</td>"
            f"<td class='mono'>{_e(trigger.get('Constraint Name') or '')}</td>"
            f"<td class='mono'>{_e(trigger.get('Relation') or '')}</td>"
            f"<td class='num'>{_e(format_ms(float(time)) + share if time is not None else '')}</td>"
            f"<td class='num'>{_e(trigger.get('Calls', ''))}</td></tr>"
        )
    head = "".join(f"<th>{h}</th>" for h in ("Trigger", "Constraint", "Table", "Time", "Calls"))
    return f'<table class="facts"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _notes(result: Result) -> str:
    items = [f"<li>{_e(note)}</li>" for note in result.notes]
    if result.analysis.settings:
        settings = ", ".join(f"{k} = {v}" for k, v in sorted(result.analysis.settings.items()))
        items.append(f"<li>settings that differ from the defaults: <code>{_e(settings)}</code></li>")
    return f'<ul class="notes">{"".join(items)}</ul>'


def _raw_plan(result: Result, title: str) -> str:
    text = json.dumps(result.plan, indent=1, default=str)
    return f'<details class="raw"><summary>{_e(title)}</summary><pre>{_e(text)}</pre></details>'


# --- the comparison ---------------------------------------------------------------------------------------


def _verdict_class(comparison: PlanComparison) -> str:
    lead = comparison.figure("execution_ms")
    if lead is None or lead.change is None:
        lead = comparison.figure("total_cost")
    if lead is None or lead.better is None:
        return ""
    return "better" if lead.better else "worse"


def _figure_table(figures: Iterable[Figure]) -> str:
    rows = []
    for figure in figures:
        style = "" if figure.better is None else ("better" if figure.better else "worse")
        rows.append(
            f"<tr><td>{_e(figure.title)}</td><td class='num'>{_e(format_figure(figure.name, figure.before))}</td>"
            f"<td class='num'>{_e(format_figure(figure.name, figure.after))}</td>"
            f"<td class='{style}'>{_e(figure.change or 'n/a')}</td></tr>"
        )
    head = "<tr><th>Figure</th><th>Before</th><th>After</th><th>After is</th></tr>"
    return f'<table class="facts"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


_MARKS = {"removed": "\u2212", "added": "+", "changed": "~"}


def _node_changes(changes: Sequence[NodeChange]) -> str:
    if not changes:
        return "<h3>Nodes</h3><p class='muted'>no node changed</p>"
    items = []
    for change in changes:
        node = change.after if change.after is not None else change.before
        assert node is not None
        side = "after" if change.after is not None else "before"
        if change.change == "changed":
            name = describe_key((change.node_type, change.relation, change.index))
        else:
            name = node.label
        link = f'<a href="#{side}-node-{node.id}">{_e(name)}</a>'
        items.append(
            f'<li><span class="mark {change.change}">{_MARKS[change.change]}</span>{_e(change.change)}: {link}'
            f' <span class="muted">{_e(change.detail)}</span></li>'
        )
    return f'<h3>Nodes</h3><ul class="changes">{"".join(items)}</ul>'


def _problem_changes(comparison: PlanComparison) -> str:
    parts = ["<h3>Problems</h3>"]
    for title, changes in (("Only before has", comparison.fixed), ("Only after has", comparison.new)):
        if not changes:
            parts.append(f"<p class='muted'>{_e(title.lower())}: none</p>")
            continue
        items = "".join(_problem_change(change) for change in changes)
        parts.append(f'<p>{_e(title)}:</p><ul class="changes">{items}</ul>')
    if comparison.kept:
        parts.append(f"<p class='muted'>both have: {_e(', '.join(comparison.kept))}</p>")
    return "".join(parts)


def _problem_change(change: ProblemChange) -> str:
    problem = change.problem
    where = ""
    if problem.node is not None:
        where = f' at <a href="#{change.side}-node-{problem.node}">{_e(change.node_label or problem.node)}</a>'
    return (
        f'<li><span class="badge {_e(problem.severity)}">{_e(problem.severity)}</span> '
        f"<code>{_e(problem.kind)}</code>{where}: <span class='muted'>{_e(problem.detail)}</span></li>"
    )
