"""`dbmaint explain` as text: the plan as a tree with the costly steps and misestimates plain to see, then
the problems and their fixes. Coloured through rich on a terminal; plain text to a pipe or a file, without
importing rich (a developer's script or editor reads it, and rich alone costs a tenth of the command)."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from dbmaint.units import format_share, format_size

Segment = tuple[str, str]  # (text, rich style); the style is dropped in plain text
SEVERITY_STYLE = {"info": "cyan", "warning": "yellow", "critical": "bold red"}
# The tree's guides, as rich draws them.
BRANCH, LAST, PIPE, SPACE = "├── ", "└── ", "│   ", "    "


class Lines:
    """Styled lines, written at the end: through rich to a terminal, as plain text otherwise."""

    def __init__(self) -> None:
        self.lines: list[list[Segment]] = []

    def add(self, *segments: str | Segment) -> None:
        self.lines.append([(s, "") if isinstance(s, str) else s for s in segments])

    def write(self) -> None:
        if sys.stdout.isatty():
            from rich.text import Text

            from dbmaint.report import console as make_console  # report imports this module: here, not above

            console = make_console()
            for line in self.lines:
                console.print(Text.assemble(*line))  # Text: nothing from the database is read as markup
            return
        sys.stdout.write("".join("".join(text for text, _ in line) + "\n" for line in self.lines))


def share_style(share: float | None) -> str:
    if share is None:
        return ""
    return "bold red" if share > 0.4 else "yellow" if share > 0.1 else ""


def node_line(node: Any) -> list[Segment]:
    line: list[Segment] = [(f"[{node.id}] ", "dim")]  # the number the problems below refer to
    line.append((node.label, "bold" if (node.share or 0) > 0.1 else ""))
    figures = []
    if node.exclusive_ms is not None:
        share = f" ({format_share(node.share)})" if node.share is not None else ""
        figures.append((f"{node.exclusive_ms:,.2f} ms{share}", share_style(node.share)))
    if node.actual_rows is not None:
        rows = f"rows {node.actual_rows:,.0f} of {node.plan_rows * (node.loops or 1):,.0f} est"
        style = ""
        if node.misestimate is not None and node.misestimate >= 10:
            direction = "under" if node.underestimated else "over"
            rows += f" ({node.misestimate:,.0f}x {direction})"
            style = "bold red" if node.misestimate >= 100 else "yellow"
        figures.append((rows, style))
    else:
        figures.append((f"rows {node.plan_rows:,.0f} est, cost {node.cost_total:,.2f}", ""))
    if node.loops and node.loops > 1:
        figures.append((f"loops {node.loops:,}", ""))
    if node.shared_hit or node.shared_read:
        figures.append((f"buffers hit {node.shared_hit or 0:,} read {node.shared_read or 0:,}", ""))
    if node.temp_read or node.temp_written:
        figures.append((f"temp read {node.temp_read or 0:,} written {node.temp_written or 0:,}", "yellow"))
    for text, style in figures:
        line += [("  ", ""), (text, style or "dim")]
    return line


def _guides() -> tuple[str, str, str]:
    """Box-drawing guides where the output takes them (UTF-8), ASCII ones elsewhere, as rich does."""
    encoding = (getattr(sys.stdout, "encoding", None) or "").lower().replace("-", "")
    return (BRANCH, LAST, PIPE) if encoding.startswith("utf") else ("+-- ", "`-- ", "|   ")


def tree(nodes: Sequence[Any]) -> Iterator[tuple[str, Any]]:
    """(the guides before it, node) for each node, depth first in plan order: the root bare, as rich's Tree."""
    if not nodes:
        return
    root = nodes[0]
    ids = {n.id for n in nodes}
    children: dict[int, list[Any]] = {}
    branch, end, pipe = _guides()
    for node in nodes[1:]:
        parent = node.parent if node.parent is not None and node.parent in ids else root.id
        children.setdefault(parent, []).append(node)

    def below(node: Any, indent: str) -> Iterator[tuple[str, Any]]:
        kids = children.get(node.id, [])
        for position, child in enumerate(kids):
            last = position == len(kids) - 1
            yield indent + (end if last else branch), child
            yield from below(child, indent + (SPACE if last else pipe))

    yield "", root
    yield from below(root, "")


def print_explain(result: Any) -> None:
    out = Lines()
    analysis = result.analysis
    timing = (
        f"execution {analysis.execution_ms:,.2f} ms, planning {analysis.planning_ms or 0:,.2f} ms"
        if analysis.execution_ms is not None
        else f"estimated cost {analysis.total_cost:,.2f} (not executed)"
    )
    out.add(("plan", "bold"), f": {timing}")
    if result.values:
        out.add(("  with " + ", ".join(f"${n} = {v!r}" for n, v in sorted(result.values.items())), "dim"))
    nodes = list(analysis.nodes)
    for guides, node in tree(nodes):
        out.add(guides, *node_line(node))
    labels = {node.id: node.label for node in nodes}
    if analysis.problems:
        out.add(("problems", "bold"))
        for position, problem in enumerate(analysis.problems, start=1):
            where = f" at [{problem.node}] {labels.get(problem.node, '')}" if problem.node is not None else ""
            out.add(
                f"{position}. ", (problem.severity, SEVERITY_STYLE.get(problem.severity, "")), f" {problem.kind}{where}"
            )
            out.add(f"   {problem.detail}")
            proven = next((f for f in result.fixes if f.problem == position - 1), None)
            if proven is not None:
                out.add((f"   fix: {proven.definition}", "green"))
                out.add((f"   proven with a hypothetical index: estimated cost {proven.cost_before:,.0f} -> "
                         f"{proven.cost_after:,.0f}", "green"))  # fmt: skip
            else:
                out.add((f"   fix: {problem.fix}", "cyan"))
    else:
        out.add(("no problems found", "green"))
    if result.rare:
        rare = result.rare
        values = ", ".join(f"{k} = {v!r}" for k, v in rare.get("values", {}).items())
        if "error" in rare:
            out.add((f"with rare values ({values}): {rare['error']}", "dim"))
        else:
            same = "the same plan" if rare["same_plan"] else "a different plan"
            out.add((f"with rare values ({values}): {rare['execution_ms']:,.2f} ms, {same}", "dim"))
    if result.context:
        out.add(("tables", "bold"))
        for name, context in sorted(result.context.items()):
            analyzed = context.last_analyze.strftime("%Y-%m-%d %H:%M") if context.last_analyze else "never"
            out.add(f"  {name}: {format_size(context.size_bytes)}, {context.reltuples:,.0f} rows, analyzed "
                    f"{analyzed}, {context.n_mod_since_analyze:,} rows changed since")  # fmt: skip
            indexes = ", ".join(short_index(d) for d in context.indexes) or "none"
            out.add((f"    indexes: {indexes}", "dim"))
    for note in result.notes:
        out.add((f"note: {note}", "yellow"))
    out.write()


# pg_get_indexdef: CREATE [UNIQUE] INDEX name ON [ONLY] table USING method (...): names quoted as needed,
# so a name may hold spaces, dots or " ON ".
_IDENT = r'(?:"(?:[^"]|"")*"|[^\s".]+)'
_INDEX_DEF = re.compile(
    rf"CREATE (?P<unique>UNIQUE )?INDEX (?P<name>{_IDENT}) ON (?:ONLY )?{_IDENT}(?:\.{_IDENT})*"
    rf" USING (?P<method>\S+) (?P<columns>.*)",
    re.DOTALL,
)


def short_index(definition: str) -> str:
    """CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id) -> orders_pkey (id), unique."""
    found = _INDEX_DEF.match(definition)
    if found is None:  # not pg_get_indexdef's form: shown as it is
        return definition
    method = found["method"]
    extras = [m for m in (("unique" if found["unique"] else ""), ("" if method == "btree" else method)) if m]
    return f"{found['name']} {found['columns']}" + (f", {', '.join(extras)}" if extras else "")
