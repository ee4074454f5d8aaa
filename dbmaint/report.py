"""Rendering: readable tables for people (rich) and one JSON document for scripts."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from dbmaint.explain.text import SEVERITY_STYLE
from dbmaint.units import format_duration, format_ms, format_share, format_size

if TYPE_CHECKING:  # imported where used: dbmaint explain starts without rich, SQLAlchemy or the job model
    from rich.console import Console
    from rich.text import Text

    from dbmaint.model import Action, JobReport
    from dbmaint.store.records import RunRecord

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
    "missed": "red",
    "proposed": "cyan",
}


# Output that is not a terminal (a CI log, cron's mail, a pipe) has no width of its own: rich would fold the
# tables into 80 columns, the evidence a narrow column of fragments. COLUMNS, when set, still decides.
PIPED_WIDTH = 200


def console() -> Console:
    from rich.console import Console

    piped = not sys.stdout.isatty() and not os.environ.get("COLUMNS")
    return Console(file=sys.stdout, soft_wrap=False, width=PIPED_WIDTH if piped else None)


def print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


def per_database(documents: Sequence[Any]) -> Any:
    """One object for one database (the usual case); an array of them for several."""
    return documents[0] if len(documents) == 1 else list(documents)


def job_reports_json(reports: Sequence[JobReport]) -> Any:
    return per_database([r.to_json() for r in reports])


def print_job_reports(reports: Sequence[JobReport]) -> None:
    if not sys.stdout.isatty():  # cron mail, a journal, a file: plain lines, and no rich to import
        sys.stdout.write("".join(plain_job_report(report) for report in reports))
        return
    from rich.table import Table
    from rich.text import Text

    out = console()
    for report in reports:
        title = _title(report)
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
                size = _sizes(action)
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


def _title(report: JobReport) -> str:
    return f"{report.job} on {report.database}" + (" (dry run)" if report.dry_run else "")


def _sizes(action: Action) -> str:
    size = format_size(action.size_before)
    return size if action.size_after is None else f"{size} -> {format_size(action.size_after)}"


def plain_job_report(report: JobReport) -> str:
    """A job's report as plain text: the same figures as the table on a terminal, one block per action."""
    lines = [f"{_title(report)}: {report.status}" + (f" ({report.reason})" if report.reason else "")]
    width = max((len(action.status) for action in report.actions), default=0)
    for action in report.actions:
        figures = ", ".join(f for f in (format_duration(action.duration_s), _sizes(action)) if f != "-")
        lines.append(f"  {action.status:<{width}}  {action.object}" + (f"  ({figures})" if figures else ""))
        indent = " " * (width + 4)
        lines += [f"{indent}{text}" for text in (action.sql, action.reason, action.detail) if text]
    if not report.actions and report.status not in ("skipped", "failed"):
        lines.append("  nothing needs doing")
    lines += [f"  note: {finding}" for finding in report.findings]
    lines += [f"  warning: {warning}" for warning in report.warnings]
    return "".join(line + "\n" for line in lines)


def print_history(records: Sequence[RunRecord]) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    if not records:
        out.print("no runs recorded yet")
        return
    # Two servers with a database of the same name: each run says which server (its system identifier).
    servers: dict[str, set[str]] = {}
    for r in records:
        servers.setdefault(r.database, set()).add(r.server or "")
    rows: list[list[Any]] = []
    for r in records:
        took = (r.finished_at - r.started_at).total_seconds() if r.finished_at else None
        rows.append(
            [
                str(r.id),
                r.started_at.strftime("%Y-%m-%d %H:%M"),
                r.job,
                # Text, not str: names and reasons are never read as rich markup
                Text(r.database + (f" @{(r.server or '?')[-6:]}" if len(servers[r.database]) > 1 else "")),
                Text(r.status, style=_STATUS_STYLE.get(r.status, "")),
                f"{r.done}/{r.skipped}/{r.failed}"
                + (f" +{r.interrupted} interrupted" if r.interrupted else "")
                + (f" +{r.proposed} proposed" if r.proposed else ""),
                format_duration(took),
            ]
        )
    headers = ("id", "started (UTC)", "job", "database", "status", "done/skip/fail", "took")
    table = Table(show_edge=False, pad_edge=False)
    for column in headers:
        table.add_column(column, justify="right" if column in ("id", "took") else "left", overflow="fold")
    # One line per run: a long reason is cut (the whole of it: `dbmaint history --run ID`, or JSON), never
    # folded into a column forty lines tall on a narrow terminal. Its width is what the other columns
    # leave: left to rich, a long reason squeezed them to nothing.
    used = sum(max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(headers)) + 3 * len(headers)
    table.add_column("reason", overflow="ellipsis", no_wrap=True, min_width=12, max_width=max(12, out.width - used))
    for row, r in zip(rows, records, strict=True):
        table.add_row(*row, Text(r.reason or ""))
    out.print(table)


def print_status(status: Any, *, config_source: str, state_url: str, timezone: str) -> None:
    """Where it looked, the service's liveness, then one line per job and database: last run, last success,
    next run. Times are UTC, month-day hour:minute, to fit a terminal of about 100 columns."""
    from rich.table import Table
    from rich.text import Text

    out = console()
    out.print(f"config: {config_source}; state store: {state_url}; schedules in {timezone}", style="dim", markup=False)
    running = status.scheduling_here
    if not status.services:
        out.print("service: never started with this state store (dbmaint run)")
    for service in status.services:
        r = service.record
        if service.running:
            out.print(
                Text.assemble(("service: ", "bold"), ("running", "green"), f" on {r.host} (pid {r.pid}, dbmaint "
                              f"{r.version}) since {_utc(r.started_at)} UTC, last heartbeat {_utc(r.heartbeat_at)}")
            )  # fmt: skip
        else:
            since = r.stopped_at or r.heartbeat_at
            how = "stopped" if r.stopped_at else "not running (no clean stop)"
            out.print(Text.assemble(("service: ", "bold"), (how, "red"), f" on {r.host} since {_utc(since)} UTC"))
    table = Table(show_edge=False, pad_edge=False)
    columns = ["job", "database", "schedule", "last run", "status", "took", "last success", "next run"]
    if out.width < 100:  # a narrow terminal keeps the answers (when, how, what next), not the details
        columns = [c for c in columns if c not in ("schedule", "took")]
    for column in columns:
        title = "next due" if column == "next run" and not running else column  # due, but nothing here runs it
        table.add_column(title, no_wrap=column not in ("database", "schedule"), overflow="fold")
    reasons = []
    for job in status.jobs:
        last = job.last
        state = Text("-")
        if last is not None:
            state = Text(last.status, style=_STATUS_STYLE.get(last.status, ""))
            if last.reason and last.status in ("skipped", "failed", "missed", "interrupted"):
                reasons.append(f"{job.job} on {job.database}, {last.status}: {last.reason}")
                state.append(f" [{len(reasons)}]")
        cells: dict[str, Text | str] = {
            "job": job.job,
            "database": Text(job.database),  # Text: a name is never read as rich markup
            "schedule": Text(job.schedule) if job.enabled else "disabled",
            "last run": _utc(last.started_at, short=True) if last else "never",
            "status": state,
            "took": format_duration(last.duration_s) if last and last.duration_s is not None else "",
            "last success": _utc(job.last_success, short=True) if job.last_success else "never",
            "next run": _utc(job.next_run_at, short=True) if job.next_run_at else "-",
        }
        table.add_row(*(cells[c] for c in columns))
    out.print(table)
    for number, reason in enumerate(reasons, 1):
        out.print(f"[{number}] {reason}", soft_wrap=True, markup=False)  # reasons quote PostgreSQL: brackets
    # Which server each database's latest run reached (its system_identifier): two clusters with a database
    # of the same name keep histories of their own, and this says which one these runs are.
    servers: dict[str, str] = {}
    for job in sorted(status.jobs, key=lambda j: j.last.started_at if j.last else datetime.min.replace(tzinfo=UTC)):
        if job.last is not None and job.last.server:
            servers[job.database] = job.last.server
    if servers:
        listed = "; ".join(f"{database} on {server}" for database, server in sorted(servers.items()))
        out.print(f"servers (system_identifier of the latest run): {listed}", style="dim", markup=False)
    if not running and status.jobs:
        out.print("(no service runs on this host: the due times above run only once `dbmaint run` does)", style="dim")


def _utc(moment: Any, *, short: bool = False) -> str:
    from datetime import UTC

    return str(moment.astimezone(UTC).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M"))


def print_advice(advice: Any, *, rejections: bool = False) -> None:
    """Findings, then recommendations with their evidence, then what was left out of the workload."""
    from rich.table import Table
    from rich.text import Text

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
        table.add_column("hypopg", no_wrap=True)  # proven on the planner; --verify is the real build
        for rec in advice.recommendations:
            what = Text.assemble((rec.definition, "cyan"), "\n", (rec.reason, "dim"))
            for query in rec.queries[:3]:
                cost = f"{query.cost_before:,.0f} -> {query.cost_after:,.0f}" if rec.verified else ""
                what.append(f"\n  {query.calls} x {_one_line(query.query, 90)}  {cost}", style="dim")
            for closed in rec.closes:
                what.append(f"\n  also fixes the {closed}", style="green")
            table.add_row(what, format_size(rec.estimated_size_bytes), "proven" if rec.verified else "not proven")
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
    if advice.verification:  # --verify built each index for real: say what it kept and dropped, and why
        table = Table(title="--verify: built, timed, kept or dropped", show_edge=False, pad_edge=False,
                      title_justify="left")  # fmt: skip
        table.add_column("index", overflow="fold")
        table.add_column("result", no_wrap=True)
        table.add_column("why", overflow="fold")
        for verdict in advice.verification:
            timings = "; ".join(
                f"{_one_line(t.query, 40)}: {t.before_ms:,.1f} -> {t.after_ms:,.1f} ms" for t in verdict.timings[:3]
            )
            why = Text(verdict.reason + (f"\n{timings}" if timings else ""))
            table.add_row(Text(verdict.index), Text("kept", "green") if verdict.kept else Text("dropped", "red"), why)
        out.print(table)
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


_CHECK_STYLE = {"pass": "green", "warn": "yellow", "fail": "bold red", "unknown": "magenta"}


def print_check(check: Any) -> None:
    from rich.table import Table
    from rich.text import Text

    out = console()
    out.print(Text.assemble(("check of ", "bold"), (check.database, "bold"), ": ",
                            (check.status, _CHECK_STYLE[check.status])))  # fmt: skip
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("status", no_wrap=True)
    table.add_column("check", no_wrap=True)
    table.add_column("evidence, and the fix", overflow="fold", ratio=1)
    for item in check.items:
        evidence = Text(item.evidence)
        if item.fix and item.status != "pass":
            evidence.append(f"\nfix: {item.fix}", style="cyan")
        table.add_row(Text(item.status, style=_CHECK_STYLE[item.status]), item.check, evidence)
    out.print(table)


def print_capture(results: Sequence[Any]) -> None:
    from rich.text import Text

    out = console()
    for result in results:
        job = result.job
        header = Text.assemble(("capture on ", "bold"), (job.database, "bold"), ": ",
                               (job.status, _STATUS_STYLE.get(job.status, "")))  # fmt: skip
        if job.reason:
            header.append(f" ({job.reason})")
        out.print(header)
        out.print(
            Text(
                f"  {result.statements_seen:,} statements read, {len(result.captured)} slow since the last pass"
                + (f", {result.auto_explain_plans} auto_explain plan(s)" if result.auto_explain_plans else ""),
                style="dim",
            )
        )
        for captured in result.captured:
            out.print(Text.assemble(
                (f"  {captured.mean_ms:,.1f} ms", "bold"), f" mean over {captured.calls:,} call(s): ",
                _one_line(captured.query, 100),
            ))  # fmt: skip
            if captured.regression:
                out.print(Text(f"    regression: {captured.regression}", style="bold red"))
            for problem in captured.problems[:3]:
                out.print(Text(f"    {problem}", style="yellow"))
            if captured.note:
                out.print(Text(f"    {captured.note}", style="dim"))
        for warning in job.warnings:
            out.print(Text(f"  warning: {warning}", style="yellow"))


def slow_json(row: dict[str, Any]) -> dict[str, Any]:
    plan = row.get("plan")
    return {
        "database": row["database"],
        "queryid": row["queryid"],
        "query": row["query"],
        "last_captured": row["captured_at"].isoformat() if row.get("captured_at") else None,
        "calls": row["calls"],
        "mean_ms": round(row["mean_ms"], 3),
        "cumulative_mean_ms": round(row["cumulative_mean_ms"], 3),
        "plan": None
        if plan is None
        else {
            "captured_at": plan.captured_at.isoformat(),
            "source": plan.source,
            "total_cost": plan.total_cost,
            "execution_ms": plan.execution_ms,
            "problems": json.loads(plan.problems),
            "regression": plan.regression,
        },
    }


def print_slow(rows: Sequence[dict[str, Any]]) -> None:
    from rich.text import Text

    out = console()
    if not rows:
        out.print("no slow statements captured yet (dbmaint capture, or the service's capture job)")
        return
    for row in rows:
        document = slow_json(row)
        out.print(Text.assemble(
            (f"{document['mean_ms']:,.1f} ms", "bold"), f" mean over {document['calls']:,} call(s) "
            f"(query id {document['queryid']}, {document['database']}): ", _one_line(document["query"], 100),
        ))  # fmt: skip
        plan = document["plan"]
        if plan is None:
            continue
        if plan["regression"]:
            out.print(Text(f"  regression: {plan['regression']}", style="bold red"))
        for problem in plan["problems"]:
            if problem.get("severity") != "info":
                out.print(Text(f"  {problem['severity']} {problem['kind']}: {problem['detail']}", style="yellow"))


def print_explain_comparison(before: Any, after: Any, comparison: Any) -> None:
    """Two explained statements: their summaries side by side, then what differs, with ratios ("2.3x faster")."""
    from rich.table import Table
    from rich.text import Text

    from dbmaint.explain.compare import describe_key, format_figure

    out = console()
    verdict = comparison.figure("execution_ms")
    if verdict is None or verdict.change is None:
        verdict = comparison.figure("total_cost")
    style = "" if verdict is None or verdict.better is None else ("bold green" if verdict.better else "bold red")
    out.print(Text.assemble(("comparison", "bold"), ": ", (comparison.summary, style)))
    sides = Table(show_edge=False, pad_edge=False, expand=False)
    sides.add_column("before (--compare)", overflow="fold", ratio=1)
    sides.add_column("after", overflow="fold", ratio=1)
    sides.add_row(_comparison_side(before), _comparison_side(after))
    out.print(sides)
    figures = Table(show_edge=False, pad_edge=False, expand=False, title="differences", title_justify="left")
    figures.add_column("figure", no_wrap=True)
    figures.add_column("before", justify="right", no_wrap=True)
    figures.add_column("after", justify="right", no_wrap=True)
    figures.add_column("after is", no_wrap=True)
    for figure in comparison.figures:
        change_style = "" if figure.better is None else ("green" if figure.better else "red")
        figures.add_row(
            figure.title,
            format_figure(figure.name, figure.before),
            format_figure(figure.name, figure.after),
            Text(figure.change or "n/a", style=change_style),
        )
    out.print(figures)
    marks = {"removed": ("-", "red"), "added": ("+", "green"), "changed": ("~", "yellow")}
    if comparison.nodes:
        out.print(Text("nodes", style="bold"))
        for change in comparison.nodes:
            mark, mark_style = marks[change.change]
            node = change.after if change.after is not None else change.before
            name = describe_key((change.node_type, change.relation, change.index))
            if change.change != "changed":
                name = node.label
            out.print(Text.assemble((f"  {mark} {change.change} ", mark_style), name, (f": {change.detail}", "dim")))
    else:
        out.print(Text("nodes: the same, with similar figures", style="dim"))
    for title, changes in (("only before has", comparison.fixed), ("only after has", comparison.new)):
        if not changes:
            continue
        out.print(Text(title, style="bold"))
        for change in changes:
            problem = change.problem
            where = f" at {change.node_label}" if change.node_label else ""
            out.print(
                Text.assemble(
                    "  ", (problem.severity, SEVERITY_STYLE.get(problem.severity, "")), f" {problem.kind}{where}"
                )
            )
            out.print(Text(f"    {problem.detail}", style="dim"))
    if comparison.kept:
        out.print(Text(f"both have: {', '.join(comparison.kept)}", style="dim"))


def _comparison_side(result: Any) -> Text:
    """One statement's summary: its text, timing, figures and problems, for a column of the comparison."""
    from rich.text import Text

    from dbmaint.explain.compare import format_figure

    analysis = result.analysis
    text = Text(_one_line(result.statement, 160) + "\n", style="bold")
    if analysis.execution_ms is not None:
        text.append(f"execution {format_ms(analysis.execution_ms)}, planning {format_ms(analysis.planning_ms or 0)}\n")
    else:
        text.append("not executed: estimates only\n", style="yellow")
    root = analysis.nodes[0] if analysis.nodes else None
    figures = [f"cost {format_figure('total_cost', analysis.total_cost)}"]
    if root is not None:
        rows = root.actual_rows if root.actual_rows is not None else root.plan_rows
        estimated = " est" if root.actual_rows is None else ""
        figures.append(("1 row" if round(rows) == 1 else f"{rows:,.0f} rows") + estimated)
        if "Shared Hit Blocks" in root.detail:
            hit, read = int(root.detail.get("Shared Hit Blocks") or 0), int(root.detail.get("Shared Read Blocks") or 0)
            figures.append(f"buffers hit {hit:,} read {read:,}")
    figures.append(f"{len(analysis.nodes)} node{'s' if len(analysis.nodes) != 1 else ''}")
    text.append(", ".join(figures) + "\n", style="dim")
    hottest = max(analysis.nodes, key=lambda n: n.exclusive_ms or 0.0, default=None)
    if hottest is not None and hottest.exclusive_ms:
        share = f" ({format_share(hottest.share)})" if hottest.share is not None else ""
        text.append(f"most time: {hottest.label}, {format_ms(hottest.exclusive_ms)}{share}\n")
    if analysis.problems:
        for problem in analysis.problems:
            text.append(problem.severity, style=SEVERITY_STYLE.get(problem.severity, ""))
            text.append(f" {problem.kind}\n")
    else:
        text.append("no problems found\n", style="green")
    for note in result.notes:
        text.append(f"note: {note}\n", style="yellow")
    text.rstrip()
    return text


def action_row_json(row: dict[str, Any]) -> dict[str, Any]:
    """An action as the state store has it, with its time in UTC and its duration rounded."""
    document = dict(row)
    started = document.get("started_at")
    if started is not None and getattr(started, "tzinfo", None) is None:
        document["started_at"] = started.isoformat() + "+00:00"
    if isinstance(document.get("duration_s"), float):
        document["duration_s"] = round(document["duration_s"], 3)
    return document


def run_header_text(run: RunRecord) -> str:
    """One run's line above its actions: what, where, when, how it ended and why."""
    took = f", took {format_duration(run.duration_s)}" if run.duration_s is not None else ""
    due = f", due {_utc(run.scheduled_for)}" if run.scheduled_for else ""
    reason = f": {run.reason}" if run.reason else ""
    return (
        f"run {run.id}: {run.job} on {run.database} ({run.host or '-'}"
        + (f", server {run.server}" if run.server else "")
        + f"), started {_utc(run.started_at)} UTC"
        f"{due}{took}: {run.status}{reason}"
    )


def action_row_text(row: dict[str, Any]) -> str:
    size = ""
    if row.get("size_before") is not None:
        size = f", {format_size(row['size_before'])}"
        if row.get("size_after") is not None:
            size += f" -> {format_size(row['size_after'])}"
    detail = f": {row['detail']}" if row.get("detail") else ""
    return (
        f"{row['status']:8} {row['object']} ({format_duration(row.get('duration_s'))}{size}){detail}\n"
        f"         {row['statement']}\n         why: {row.get('reason') or '-'}"
    )
