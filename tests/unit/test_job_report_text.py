"""A job's report off a terminal: plain lines with every figure the terminal's table shows."""

from __future__ import annotations

import io
import sys

import pytest
from psycopg import sql

from dbmaint import report
from dbmaint.model import Action, JobReport


def vacuum_report() -> JobReport:
    done = Action(
        object="public.orders",
        statement=sql.Composed([sql.SQL("VACUUM (ANALYZE) public.orders")]),
        reason="3,334 dead rows > 692",
        kind="vacuum",
        status="done",
        duration_s=0.25,
        size_before=2 * 1024 * 1024,
    )
    failed = Action(
        object="public.events",
        statement=sql.Composed([sql.SQL("VACUUM (ANALYZE) public.events")]),
        reason="wraparound",
        kind="vacuum",
        status="failed",
        detail="canceling statement due to lock timeout",
    )
    return JobReport(
        database="app", job="vacuum", status="partial", actions=[done, failed], findings=["a finding"], warnings=["w"]
    )


def test_each_action_gives_status_object_figures_statement_reason_and_detail() -> None:
    text = report.plain_job_report(vacuum_report())
    assert text.splitlines() == [
        "vacuum on app: partial",
        "  done    public.orders  (250 ms, 2.0 MB)",
        "          VACUUM (ANALYZE) public.orders",
        "          3,334 dead rows > 692",
        "  failed  public.events",
        "          VACUUM (ANALYZE) public.events",
        "          wraparound",
        "          canceling statement due to lock timeout",
        "  note: a finding",
        "  warning: w",
    ]


def test_an_idle_run_says_so_and_a_dry_run_is_marked() -> None:
    idle = JobReport(database="app", job="reindex", dry_run=True, status="ok")
    assert report.plain_job_report(idle) == "reindex on app (dry run): ok\n  nothing needs doing\n"
    skipped = JobReport(database="app", job="vacuum", status="skipped", reason="outside the window")
    assert report.plain_job_report(skipped) == "vacuum on app: skipped (outside the window)\n"


def test_off_a_terminal_the_reports_are_plain_and_rich_is_not_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()  # not a terminal
    monkeypatch.setattr(sys, "stdout", out)
    for name in [m for m in sys.modules if m == "rich" or m.startswith("rich.")]:
        monkeypatch.delitem(sys.modules, name)
    report.print_job_reports([vacuum_report()])
    assert out.getvalue() == report.plain_job_report(vacuum_report())
    assert "rich" not in sys.modules


def test_a_dry_run_gets_the_status_the_real_run_would_get() -> None:
    """A role that may maintain some tables and not others: the real run is partial (exit 0), so is its dry
    run; "planned" is not taken for nothing done, which made the dry run "failed" (exit 1)."""
    from psycopg import sql

    from dbmaint.model import Action, JobReport

    def action(name: str, status: str, detail: str | None = None) -> Action:
        return Action(name, sql.Composed([]), "dead rows", "vacuum", status=status, detail=detail)  # type: ignore[arg-type]

    refused = "insufficient privilege: permission denied to vacuum"
    dry = JobReport(database="app", job="vacuum")
    dry.actions = [action("public.mine", "planned"), action("public.theirs", "skipped", refused)]
    assert dry.finish().status == "partial"
    real = JobReport(database="app", job="vacuum")
    real.actions = [action("public.mine", "done"), action("public.theirs", "skipped", refused)]
    assert real.finish().status == "partial"
    nothing = JobReport(database="app", job="vacuum")
    nothing.actions = [action("public.theirs", "skipped", refused)]
    assert nothing.finish().status == "failed"
