"""`dbmaint advise` and `dbmaint check`: the index advisor, its revisions, and the checklist."""

from __future__ import annotations

from typing import Any

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
    print_failure,
)
from dbmaint.errors import UsageError


@cli.command()
@click.option(
    "-s", "--statement", "statements", multiple=True, metavar="SQL", help="A statement to weigh (repeatable)."
)
@click.option("-f", "--file", "files", multiple=True, type=click.Path(dir_okay=False), help="A file of statements.")
@click.option(
    "--log",
    "logs",
    multiple=True,
    type=click.Path(dir_okay=False),
    help="A server log (stderr, csvlog or jsonlog): slow, auto_explain and cancelled statements.",
)
@click.option("--no-stats", is_flag=True, help="Leave pg_stat_statements and pg_stat_activity out of the workload.")
@click.option("--write-migration", is_flag=True, help="Write the recommended indexes as an Alembic revision.")
@click.option(
    "--drop-unused",
    is_flag=True,
    help="With --write-migration: also a revision dropping the unused and duplicate indexes found "
    "(DROP INDEX CONCURRENTLY; its downgrade builds each again from its exact definition).",
)
@click.option(
    "--autovacuum-settings",
    is_flag=True,
    help="With --write-migration: also a revision of the per-table autovacuum settings `dbmaint check` "
    "advises (ALTER TABLE ... SET; its downgrade restores the previous values).",
)
@click.option(
    "--versions-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where --write-migration writes (default: advisor.versions_dir, migrations/versions).",
)
@click.option("--explain-rejections", is_flag=True, help="Also list the candidates that were not chosen, and why.")
@click.option(
    "--verify",
    "verify_",
    is_flag=True,
    help="On a staging copy: build the indexes, time the statements before and after, keep what delivers.",
)
@click.option("--force", is_flag=True, help="Allow --verify on a server with replicas (it builds and drops indexes).")
@format_option
@command
def advise(
    options: GlobalOptions,
    statements: tuple[str, ...],
    files: tuple[str, ...],
    logs: tuple[str, ...],
    no_stats: bool,
    write_migration: bool,
    drop_unused: bool,
    autovacuum_settings: bool,
    versions_dir: str | None,
    explain_rejections: bool,
    verify_: bool,
    force: bool,
    output_format: str,
) -> None:
    """Index findings and recommendations, proven with hypothetical indexes; optionally a migration."""
    from pathlib import Path

    from dbmaint import report
    from dbmaint.advisor import recommend, workload
    from dbmaint.pg import db

    config, targets, history = context(options)
    history.close()
    if (drop_unused or autovacuum_settings) and not write_migration:
        raise UsageError("--drop-unused and --autovacuum-settings go with --write-migration")
    if write_migration and len(targets) > 1:
        names = ", ".join(t.name for t in targets)
        raise UsageError(f"--write-migration writes one database's indexes: choose one with --database ({names})")
    given: list[workload.Statement] = []
    for text in statements:
        given += workload.from_text(text, "command line")
    for path in files:
        given += workload.from_file(Path(path))
    for path in logs:
        given += workload.from_log(Path(path))
    sources = recommend.Sources(statements=given, use_pg_stat_statements=not no_stats)

    def advise_one(target: Any) -> Any:
        with db.connection(target, config.safety) as conn:
            if verify_:  # refused before the (long) analysis, not after it
                from dbmaint.advisor import verify

                verify.refuse_on_production(conn, force)
            advice = recommend.advise(conn, target.name, config, sources)
            if verify_:
                db.set_settings(conn, {"default_transaction_read_only": "off"})
                advice = recommend.verify_recommendations(conn, advice, config, force=force)
            if drop_unused or autovacuum_settings:
                changes.extend(_changes(conn, target, advice, config, drop_unused, autovacuum_settings))
            return advice

    changes: list[Any] = []  # (kind, what to write) of the one database, for the revisions after the indexes

    outcomes, worst = each_database(targets, advise_one)
    reports = [o for o in outcomes if not isinstance(o, DatabaseFailure)]
    written = []
    if write_migration:
        (advice,) = reports  # one database, checked above before any work
        directory = Path(versions_dir or config.advisor.versions_dir)
        pending = _pending(directory)
        fresh = [r for r in advice.recommendations if r.name not in pending]
        for skipped in (r for r in advice.recommendations if r.name in pending):
            advice.notes.append(f"{skipped.name} is already in a revision in {directory}: not written again")
        if fresh:
            written.append(_write_migration(fresh, directory))
        for kind, items in changes:
            if kind == "note":
                advice.notes.append(items)
            elif items:
                written.append(_write_migration(items, directory, kind))
    if output_format == "json":
        document = report.per_database([o.to_json(rejections=explain_rejections) for o in outcomes])
        if write_migration and isinstance(document, dict):
            document["migration"] = written[0] if written else None
            document["migrations"] = written  # with --drop-unused / --autovacuum-settings, one per kind of change
        report.print_json(document)
    else:
        for outcome in outcomes:
            if isinstance(outcome, DatabaseFailure):
                print_failure("advise", outcome)
            else:
                report.print_advice(outcome, rejections=explain_rejections)
        for path in written:
            click.echo(f"wrote {path}")
        if write_migration and not written:
            click.echo("no recommendation: no migration written")
    exit_worst(worst, False)


def _pending(directory: Any) -> set[str]:
    from dbmaint.advisor import revision

    return revision.pending_index_names(directory) if directory.is_dir() else set()


def _changes(conn: Any, target: Any, advice: Any, config: Any, drops: bool, settings: bool) -> list[tuple[str, Any]]:
    """The drops and the autovacuum settings to write, with a note for each index left out."""
    from dbmaint.advisor import changes

    found: list[tuple[str, Any]] = []
    if drops:
        index_drops, notes = changes.index_drops(
            conn, advice.findings, changes.standby_scans(conn, target.name, config)
        )
        found += [("drops", index_drops), *(("note", note) for note in notes)]
    if settings:
        found.append(("settings", changes.autovacuum_changes(conn, config)))
    return found


def _write_migration(items: Any, directory: Any, kind: str = "indexes") -> str:
    from alembic.util import CommandError

    from dbmaint.advisor import change_revisions, revision

    try:
        if kind == "drops":
            return str(change_revisions.write_drops(items, directory))
        if kind == "settings":
            return str(change_revisions.write_settings(items, directory))
        return str(revision.write_revision(items, directory))
    except FileNotFoundError:
        raise UsageError(
            f"no migrations versions directory at {directory} (set advisor.versions_dir or --versions-dir)"
        ) from None
    except (ValueError, CommandError) as exc:
        raise UsageError(f"cannot write the migration into {directory}: {exc}") from None


@cli.command()
@format_option
@command
def check(options: GlobalOptions, output_format: str) -> None:
    """The database checklist: pass, fail or unknown per item, with evidence; exit 1 when any fails."""
    from dbmaint import report
    from dbmaint.check import checklist
    from dbmaint.pg import db

    config, targets, history = context(options)

    def check_one(target: Any) -> Any:
        with db.connection(target, config.safety) as conn:
            return checklist.run(conn, target.name, config, history)

    try:
        outcomes, worst = each_database(targets, check_one)
    finally:
        history.close()
    if output_format == "json":
        report.print_json(report.per_database([o.to_json() for o in outcomes]))
    else:
        for outcome in outcomes:
            if isinstance(outcome, DatabaseFailure):
                print_failure("check", outcome)
            else:
                report.print_check(outcome)
    exit_worst(worst, any(o.status == "fail" for o in outcomes if not isinstance(o, DatabaseFailure)))
