"""`dbmaint demo`: a throwaway PostgreSQL with a sample database, each job once."""

from __future__ import annotations

import click

from dbmaint.cli.base import GlobalOptions, cli, command, format_option


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the cluster running and print how to connect to it.")
@format_option
@command
def demo(options: GlobalOptions, keep: bool, output_format: str) -> None:
    """Start a throwaway PostgreSQL with a sample database, run the jobs once, and report."""
    from dbmaint.demo import sample

    sample.run(keep=keep, output_format=output_format, quiet=options.quiet)
