"""Rendering: readable tables for people (rich) and one JSON document for scripts."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from dbmaint.history import RunRecord
from dbmaint.model import JobReport
from dbmaint.units import format_duration, format_size

_STATUS_STYLE = {
    "done": "green",
    "ok": "green",
    "planned": "cyan",
    "skipped": "yellow",
    "partial": "yellow",
    "failed": "bold red",
    "running": "blue",
    "started": "blue",
    "interrupted": "red",
}


def console() -> Console:
    return Console(file=sys.stdout, soft_wrap=False)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def job_reports_json(reports: Sequence[JobReport]) -> Any:
    """One object for one database (the usual case); an array of them for several."""
    documents = [r.to_json() for r in reports]
    return documents[0] if len(documents) == 1 else documents


def print_job_reports(reports: Sequence[JobReport]) -> None:
    out = console()
    for report in reports:
        title = f"{report.job} on {report.database}" + (" (dry run)" if report.dry_run else "")
        status = Text(report.status, style=_STATUS_STYLE.get(report.status, ""))
        header = Text.assemble((title, "bold"), ": ", status)
        if report.reason:
            header.append(f" ({report.reason})")
        out.print(header)
        if report.actions:
            table = Table(show_edge=False, pad_edge=False, expand=False, show_header=True)
            table.add_column("status", no_wrap=True)
            table.add_column("object, statement and reason", overflow="fold", ratio=1)
            table.add_column("time", justify="right", no_wrap=True)
            table.add_column("size", justify="right", no_wrap=True)
            for action in report.actions:
                size = format_size(action.size_before)
                if action.size_after is not None:
                    size = f"{size} -> {format_size(action.size_after)}"
                what = Text.assemble((action.object, "bold"), "\n", (action.sql, "cyan"), "\n", (action.reason, "dim"))
                if action.detail:
                    what.append(f"\n{action.detail}", style=_STATUS_STYLE.get(action.status, ""))
                status_text = Text(action.status, style=_STATUS_STYLE.get(action.status, ""))
                table.add_row(status_text, what, format_duration(action.duration_s), size)
            out.print(table)
        elif report.status not in ("skipped", "failed"):
            out.print("  nothing needs doing")
        for finding in report.findings:
            out.print(Text(f"  note: {finding}", style="cyan"))
        for warning in report.warnings:
            out.print(Text(f"  warning: {warning}", style="yellow"))


def print_history(records: Sequence[RunRecord]) -> None:
    out = console()
    if not records:
        out.print("no runs recorded yet")
        return
    table = Table(show_edge=False, pad_edge=False)
    for column in ("id", "started (UTC)", "job", "database", "status", "done/skip/fail", "took", "reason"):
        table.add_column(column, justify="right" if column in ("id", "took") else "left", overflow="fold")
    for r in records:
        took = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        table.add_row(
            str(r.id),
            r.started_at.strftime("%Y-%m-%d %H:%M"),
            r.job,
            r.database,
            Text(r.status, style=_STATUS_STYLE.get(r.status, "")),
            f"{r.done}/{r.skipped}/{r.failed}",
            format_duration(took),
            r.reason or "",
        )
    out.print(table)


def print_advice(advice: Any, *, rejections: bool = False) -> None:
    """Findings, then recommendations with their evidence, then what was left out of the workload."""
    out = console()
    out.print(Text.assemble(("advice for ", "bold"), (advice.database, "bold")))
    if advice.findings:
        table = Table(title="findings", show_edge=False, pad_edge=False, title_justify="left")
        table.add_column("kind", no_wrap=True)
        table.add_column("what, and the fix", overflow="fold", ratio=1)
        for finding in advice.findings:
            what = Text(finding.detail)
            if finding.fix:
                what.append(f"\n{finding.fix}", style="cyan")
            table.add_row(Text(finding.kind, style="yellow"), what)
        out.print(table)
    else:
        out.print("findings: none")
    if advice.recommendations:
        table = Table(title="recommended indexes", show_edge=False, pad_edge=False, title_justify="left")
        table.add_column("index", overflow="fold", ratio=1)
        table.add_column("size", justify="right", no_wrap=True)
        table.add_column("verified", no_wrap=True)
        for rec in advice.recommendations:
            what = Text.assemble((rec.definition, "cyan"), "\n", (rec.reason, "dim"))
            for query in rec.queries[:3]:
                cost = f"{query.cost_before:,.0f} -> {query.cost_after:,.0f}" if rec.verified else ""
                what.append(f"\n  {query.calls} x {_one_line(query.query, 90)}  {cost}", style="dim")
            for closed in rec.closes:
                what.append(f"\n  also fixes the {closed}", style="green")
            table.add_row(what, format_size(rec.estimated_size_bytes), "yes" if rec.verified else "no")
        out.print(table)
    else:
        out.print("recommended indexes: none")
    left_out = ", ".join(f"{n} {reason}" for reason, n in sorted(advice.left_out.items(), key=lambda i: -i[1]))
    out.print(
        Text(
            f"workload: {advice.statements} statement(s), {advice.analysed} analysed"
            + (f"; left out: {left_out}" if left_out else ""),
            style="dim",
        )
    )
    for note in advice.notes:
        out.print(Text(f"note: {note}", style="yellow"))
    if rejections and advice.rejected:
        table = Table(title="rejected candidates", show_edge=False, pad_edge=False, title_justify="left")
        table.add_column("candidate", overflow="fold")
        table.add_column("why not", overflow="fold")
        for definition, reason in advice.rejected:
            table.add_row(definition, reason)
        out.print(table)


def _one_line(text: str, width: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


_CHECK_STYLE = {"pass": "green", "fail": "bold red", "unknown": "yellow"}


def print_check(check: Any) -> None:
    out = console()
    out.print(Text.assemble(("check of ", "bold"), (check.database, "bold"), ": ",
                            (check.status, _CHECK_STYLE[check.status])))  # fmt: skip
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("evidence", overflow="fold", ratio=1)
    for item in check.items:
        table.add_row(Text(item.status, style=_CHECK_STYLE[item.status]), item.check, item.evidence)
    out.print(table)
