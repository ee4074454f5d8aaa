"""`dbmaint vacuum` and `dbmaint reindex`: one pass of a maintenance job over the configured databases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import click

from dbmaint.cli.base import (
    DatabaseFailure,
    GlobalOptions,
    cli,
    command,
    connection_share,
    context,
    each_database,
    exit_worst,
    format_option,
)


def _run_job(options: GlobalOptions, job: str, dry_run: bool, output_format: str) -> None:
    from dbmaint import jobs, report
    from dbmaint.model import JobReport

    config, targets, history = context(options, records_only=job == "vacuum")
    use_case = {"vacuum": jobs.vacuum, "reindex": jobs.reindex}[job]

    def one(target: Any) -> JobReport:
        # Databases of one server side by side share its connection budget (vacuum.jobs is per database).
        share = connection_share(target, targets, config.vacuum.jobs)
        settings = config._replace(vacuum=config.vacuum._replace(jobs=share))
        return use_case(target, settings, history, dry_run=dry_run)

    try:
        outcomes, worst = each_database(targets, one)
    finally:
        history.close()
    # A database that could not be done is a failed run in the output too (a real run recorded it so).
    reports = [
        JobReport(o.database, job, dry_run, status="failed", reason=str(o.error)).finish()
        if isinstance(o, DatabaseFailure)
        else o
        for o in outcomes
    ]
    if output_format == "json":
        report.print_json(report.job_reports_json(reports))
    elif dry_run:
        _print_statements(reports)
    else:
        report.print_job_reports(reports)
    exit_worst(worst, any(r.failed for r in reports))


def _print_statements(reports: Sequence[Any]) -> None:
    """A dry run prints exactly the statements a real run would send, in order, one per line."""
    for r in reports:
        if r.status in ("skipped", "failed"):
            click.echo(f"-- {r.job} on {r.database}: {r.status} ({r.reason})")
            continue
        planned = [a for a in r.actions if a.status == "planned"]
        click.echo(f"-- {r.job} on {r.database}: {len(planned)} statement(s)")
        for action in r.actions:
            if action.status == "planned":
                click.echo(f"{action.sql};  -- {action.reason}")
            else:  # decided against before running: shown, never sent
                click.echo(f"-- skipped {action.object}: {action.detail}")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the statements a real run would issue, in order; change nothing.")
@format_option
@command
def vacuum(options: GlobalOptions, dry_run: bool, output_format: str) -> None:
    """One VACUUM ANALYZE pass over the tables that need it, wraparound risks first."""
    _run_job(options, "vacuum", dry_run, output_format)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the statements a real run would issue, in order; change nothing.")
@format_option
@command
def reindex(options: GlobalOptions, dry_run: bool, output_format: str) -> None:
    """One REINDEX CONCURRENTLY pass over bloated indexes, plus clean-up of failed builds."""
    _run_job(options, "reindex", dry_run, output_format)
