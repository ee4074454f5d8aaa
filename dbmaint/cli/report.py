"""`dbmaint report`: one self-contained HTML page of what dbmaint did and what it watches."""

from __future__ import annotations

import click

from dbmaint.cli.base import GlobalOptions, cli, command, context
from dbmaint.errors import UsageError


@cli.command()
@click.option(
    "--html",
    "-o",
    "html_path",
    required=True,
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Write the page here (one self-contained file: it opens offline).",
)
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True, help="The period the page covers.")
@click.option(
    "--no-checklist", is_flag=True, help="Leave out the live checklist (the page then reads the state store only)."
)
@command
def report(options: GlobalOptions, html_path: str, days: int, no_checklist: bool) -> None:
    """A page of charts per database: runs, dead rows, transaction-ID ages, index bloat and rebuilds, slow
    statements, the advisor's recommendations and the checklist."""
    from pathlib import Path

    from dbmaint.reporting import build

    config, targets, history = context(options)
    try:
        page = build.write_report(
            Path(html_path),
            config,
            targets,
            history,
            days=days,
            checklist=not no_checklist,
            # Without --database or --dsn the page shows every database the store recorded in the period.
            others=options.database is None and options.dsn is None,
        )
    except OSError as exc:
        raise UsageError(f"cannot write the report to {html_path}: {exc.strerror or exc}") from None
    finally:
        history.close()
    if not options.quiet:
        runs = sum(d.runs for d in page.databases)
        click.echo(f"wrote {html_path}: {len(page.databases)} database(s), {runs:,} runs in {days} days", err=True)
