"""`dbmaint run`, `dbmaint status` and `dbmaint history`: the service and what it recorded."""

from __future__ import annotations

import logging
import os
import sys

import click

from dbmaint.cli.base import GlobalOptions, cli, command, context, format_option
from dbmaint.config import JOB_NAMES
from dbmaint.errors import DbmaintError, UsageError


@cli.command()
@command
def run(options: GlobalOptions) -> None:
    """The scheduler service: every job on its schedule until SIGTERM (SIGHUP reloads the configuration)."""
    from dbmaint.config import find_config_path
    from dbmaint.service.scheduler import Service

    if not options.quiet and not options.verbose:
        logging.getLogger().setLevel(logging.INFO)  # a service says what it ran, to the journal
    for handler in logging.getLogger().handlers:  # a service's log spans days: dates, not just times
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))
    # The file found now is the one SIGHUP reads again, even if the working directory changes.
    path = find_config_path(options.config_path)
    service = Service(str(path) if path else None, database=options.database, dsn=options.dsn)
    code = 0
    try:
        service.run()
    except DbmaintError as exc:
        click.echo(f"dbmaint: {exc}", err=True)
        code = exc.exit_code
    # The stop is done (runs recorded, Sentry flushed). A health read still waiting on a connect to an
    # unreachable host must not hold the exit past stop_timeout, as a normal interpreter exit would.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


@cli.command()
@format_option
@command
def status(options: GlobalOptions, output_format: str) -> None:
    """Is the service running; per job and database: the last run, the last success, the next run."""
    import socket

    from dbmaint import report
    from dbmaint.service import status_report

    config, targets, history = context(options)
    try:
        result = status_report.gather(config, [t.name for t in targets], history, socket.gethostname())
    finally:
        history.close()
    if output_format == "json":
        report.print_json(result.to_json())
    else:
        from dbmaint.store.base import masked_url

        report.print_status(
            result, config_source=config.source, state_url=masked_url(config.state.url), timezone=config.timezone
        )


@cli.command()
@click.option("--job", type=click.Choice(JOB_NAMES), default=None, help="Only this job's runs.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many runs.")
@click.option("--run", "run_id", type=int, default=None, help="Show the actions of one run.")
@format_option
@command
def history(options: GlobalOptions, job: str | None, limit: int, run_id: int | None, output_format: str) -> None:
    """What ran, when, and with what result."""
    from dbmaint import report
    from dbmaint.config import load_config
    from dbmaint.pg.db import recorded_name
    from dbmaint.store.history import History

    config = load_config(options.config_path)
    store = History(config.state.url)
    try:
        if run_id is not None:
            run = store.run(run_id)
            if run is None:
                raise UsageError(f"no run {run_id} in the state store (dbmaint history lists them)")
            rows = store.run_actions(run_id)
            warnings = run.warnings.splitlines() if run.warnings else []
            if output_format == "json":
                report.print_json(
                    {
                        "run_id": run_id,
                        "run": {**run.to_json(), "warnings": warnings},
                        "actions": [report.action_row_json(row) for row in rows],
                    }
                )
            else:
                click.echo(report.run_header_text(run))
                for line in warnings:  # the advisor's findings and notes, an xmin horizon holder, ...
                    click.echo(f"  note: {line}")
                for row in rows:
                    click.echo(report.action_row_text(row))
                if not rows:
                    click.echo("  no actions")
            return
        records = store.recent_runs(limit=limit, job=job, database=recorded_name(options.database, options.dsn))
    finally:
        store.close()
    if output_format == "json":
        report.print_json({"runs": [r.to_json() for r in records]})
    else:
        report.print_history(records)
