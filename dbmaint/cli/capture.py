"""`dbmaint capture` and `dbmaint slow`: slow-query capture and what it kept."""

from __future__ import annotations

import os

import click

from dbmaint.cli.base import (
    DatabaseFailure,
    GlobalOptions,
    cli,
    command,
    context,
    each_database,
    exit_worst,
    format_option,
)
from dbmaint.errors import UsageError


@cli.command()
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also store auto_explain's JSON plans from this server log (default: capture.auto_explain_log).",
)
@format_option
@command
def capture(options: GlobalOptions, log_path: str | None, output_format: str) -> None:
    """One slow-query capture pass: statements over the threshold since the last pass, with their plans."""

    from dbmaint import jobs, report

    config, targets, history = context(options)
    if log_path:
        config = config._replace(capture=config.capture._replace(auto_explain_log=log_path))
    log = config.capture.auto_explain_log
    if log and not os.access(log, os.R_OK):
        history.close()
        raise UsageError(f"cannot read the server log {log} (capture.auto_explain_log or --log)")
    from dbmaint.capture.slow_statements import CaptureReport
    from dbmaint.model import JobReport

    try:
        outcomes, worst = each_database(targets, lambda target: jobs.capture(target, config, history))
    finally:
        history.close()
    results = [
        CaptureReport(JobReport(o.database, "capture", status="failed", reason=str(o.error)).finish())
        if isinstance(o, DatabaseFailure)
        else o
        for o in outcomes
    ]
    for result in results:
        if result.job.status == "skipped":
            click.echo(f"dbmaint: capture on {result.job.database} skipped: {result.job.reason}", err=True)
    if output_format == "json":
        report.print_json(report.per_database([r.to_json() for r in results]))
    else:
        report.print_capture(results)
    exit_worst(worst, any(r.job.failed for r in results))


@cli.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many statements.")
@format_option
@command
def slow(options: GlobalOptions, limit: int, output_format: str) -> None:
    """The captured slow statements, worst first, with their latest plan's problems."""
    from dbmaint import report
    from dbmaint.config import load_config
    from dbmaint.pg.db import recorded_name
    from dbmaint.store.history import History

    config = load_config(options.config_path)
    store = History(config.state.url)
    try:
        rows = store.slow_statements(recorded_name(options.database, options.dsn), limit)
    finally:
        store.close()
    if output_format == "json":
        report.print_json({"statements": [report.slow_json(row) for row in rows]})
    else:
        report.print_slow(rows)
