"""The command line. Commands are thin: they resolve settings, call a use case, and render the result.

This is the one place where errors become messages and exit codes (0 ok, 1 the command ran and found or
failed something, 2 bad usage or config, 3 cannot connect).
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from dbmaint import __version__
from dbmaint.errors import DatabaseError, DbmaintError, Interrupted, StateStoreError, UsageError

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
log = logging.getLogger("dbmaint")


@dataclass(frozen=True)
class GlobalOptions:
    config_path: str | None = None
    database: str | None = None
    dsn: str | None = None
    verbose: int = 0
    quiet: bool = False

    def merged(self, local: GlobalOptions) -> GlobalOptions:
        """Options given after the command name win over those given before it."""
        return GlobalOptions(
            config_path=local.config_path or self.config_path,
            database=local.database or self.database,
            dsn=local.dsn or self.dsn,
            verbose=self.verbose + local.verbose,
            quiet=self.quiet or local.quiet,
        )


def _global_options(f: F) -> F:
    options = [
        click.option("--config", "config_path", metavar="PATH", default=None,
                     help="Configuration file (default: $DBMAINT_CONFIG, ./config.toml, /etc/dbmaint/config.toml)."),
        click.option("--database", metavar="NAME", default=None,
                     help="One of the configured databases (default: all of them)."),
        click.option("--dsn", metavar="DSN", default=None,
                     help="Connect to this database directly (libpq DSN or URI); no config needed."),
        click.option("-v", "--verbose", count=True, help="More detail on stderr (repeat for debug)."),
        click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr."),
    ]  # fmt: skip
    for option in reversed(options):
        f = option(f)
    return f


def _format_option(f: F) -> F:
    return click.option(
        "--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True,
        help="Output for people (text) or one JSON document on stdout (json).",
    )(f)  # fmt: skip


def _options(ctx: click.Context, kwargs: dict[str, Any]) -> GlobalOptions:
    local = GlobalOptions(**{k: kwargs.pop(k) for k in ("config_path", "database", "dsn", "verbose", "quiet")})
    parent: GlobalOptions = ctx.obj if isinstance(ctx.obj, GlobalOptions) else GlobalOptions()
    options = parent.merged(local)
    _configure_logging(options)
    return options


def _configure_logging(options: GlobalOptions) -> None:
    level = logging.ERROR if options.quiet else logging.WARNING
    if options.verbose == 1:
        level = logging.INFO
    elif options.verbose > 1:
        level = logging.DEBUG
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time of the record, not at the time of set-up."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class _Group(click.Group):
    """Turns every dbmaint error into one line on stderr and its exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DbmaintError as exc:
            click.echo(f"dbmaint: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("dbmaint: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit):
            raise
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            click.echo(f"dbmaint: unexpected error: {type(exc).__name__}: {exc} (run with -vv for details)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@_global_options
@click.version_option(__version__, prog_name="dbmaint")
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: Any) -> None:
    """dbmaint keeps PostgreSQL healthy: need-based VACUUM ANALYZE, bloat-driven REINDEX CONCURRENTLY,
    an index advisor with Alembic migrations, plans explained, slow queries captured, and a history of
    everything it did."""
    ctx.obj = GlobalOptions(**kwargs)


def _command(f: F) -> F:
    """Shared wiring: global options accepted after the command name too."""

    @functools.wraps(f)
    @click.pass_context
    def wrapper(ctx: click.Context, /, **kwargs: Any) -> Any:
        options = _options(ctx, kwargs)
        return f(options, **kwargs)

    return _global_options(wrapper)  # type: ignore[return-value]


@dataclass(frozen=True)
class DatabaseFailure:
    """One database of several that a command could not do (unreachable, dropped, refused): reported in
    its place, while the others are still done."""

    database: str
    error: DbmaintError

    def to_json(self, **_: Any) -> dict[str, Any]:
        return {"database": self.database, "status": "error", "error": str(self.error), "exit_code": self.exit_code}

    @property
    def exit_code(self) -> int:
        return self.error.exit_code


def _each(targets: Sequence[Any], work: Callable[[Any], T]) -> tuple[list[T | DatabaseFailure], int]:
    """``work`` for every database in turn; one database's failure is that database's failure.

    With several databases, an error of one (cannot connect, a query refused) is reported on stderr and
    in its place in the output, and the rest still run; the second value is the worst exit code met (3
    cannot connect, 2 a database's settings unusable, 1 a query failed). With one database the error
    ends the command as before. A state store failure or a stop request ends it whatever the count:
    neither belongs to one database.
    """
    import psycopg

    outcomes: list[T | DatabaseFailure] = []
    worst = 0
    for target in targets:
        try:
            outcomes.append(work(target))
        except (StateStoreError, Interrupted):
            raise
        except (DbmaintError, psycopg.Error) as exc:
            if len(targets) == 1:
                raise
            from dbmaint.db import first_line

            error = exc if isinstance(exc, DbmaintError) else DatabaseError(first_line(str(exc)))
            click.echo(f"dbmaint: {target.name}: {error}", err=True)
            worst = max(worst, error.exit_code)
            outcomes.append(DatabaseFailure(target.name, error))
    return outcomes, worst


def _exit(worst: int, found_problem: bool) -> None:
    """Exit with the worst status of the databases: a failed database outranks a found problem."""
    code = max(worst, 1 if found_problem else 0)
    if code:
        sys.exit(code)


def _print_failure(command: str, failure: DatabaseFailure) -> None:
    click.echo(f"{command} on {failure.database}: error: {failure.error}")


def _context(options: GlobalOptions) -> Any:
    from dbmaint.config import load_config
    from dbmaint.db import resolve_targets
    from dbmaint.history import History

    config = load_config(options.config_path)
    targets = resolve_targets(config, options.database, options.dsn)
    return config, targets, History(config.state.url)


def _run_job(options: GlobalOptions, job: str, dry_run: bool, output_format: str) -> None:
    from dbmaint import jobs, report
    from dbmaint.model import JobReport

    config, targets, history = _context(options)
    use_case = {"vacuum": jobs.vacuum, "reindex": jobs.reindex}[job]
    try:
        outcomes, worst = _each(targets, lambda target: use_case(target, config, history, dry_run=dry_run))
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
    _exit(worst, any(r.failed for r in reports))


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
@_format_option
@_command
def vacuum(options: GlobalOptions, dry_run: bool, output_format: str) -> None:
    """One VACUUM ANALYZE pass over the tables that need it, wraparound risks first."""
    _run_job(options, "vacuum", dry_run, output_format)


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print the statements a real run would issue, in order; change nothing.")
@_format_option
@_command
def reindex(options: GlobalOptions, dry_run: bool, output_format: str) -> None:
    """One REINDEX CONCURRENTLY pass over bloated indexes, plus clean-up of failed builds."""
    _run_job(options, "reindex", dry_run, output_format)


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
@_format_option
@_command
def advise(
    options: GlobalOptions,
    statements: tuple[str, ...],
    files: tuple[str, ...],
    logs: tuple[str, ...],
    no_stats: bool,
    write_migration: bool,
    versions_dir: str | None,
    explain_rejections: bool,
    verify_: bool,
    force: bool,
    output_format: str,
) -> None:
    """Index findings and recommendations, proven with hypothetical indexes; optionally a migration."""
    from pathlib import Path

    from dbmaint import advisor, db, report, workload

    config, targets, history = _context(options)
    history.close()
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
    sources = advisor.Sources(statements=given, use_pg_stat_statements=not no_stats)

    def advise_one(target: Any) -> Any:
        with db.connection(target, config.safety) as conn:
            if verify_:  # refused before the (long) analysis, not after it
                from dbmaint import verify

                verify.refuse_on_production(conn, force)
            advice = advisor.advise(conn, target.name, config, sources)
            if verify_:
                db.set_settings(conn, {"default_transaction_read_only": "off"})
                advice = advisor.verify_recommendations(conn, advice, config, force=force)
            return advice

    outcomes, worst = _each(targets, advise_one)
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
    if output_format == "json":
        document = report.per_database([o.to_json(rejections=explain_rejections) for o in outcomes])
        if write_migration and isinstance(document, dict):
            document["migration"] = written[0] if written else None
        report.print_json(document)
    else:
        for outcome in outcomes:
            if isinstance(outcome, DatabaseFailure):
                _print_failure("advise", outcome)
            else:
                report.print_advice(outcome, rejections=explain_rejections)
        for path in written:
            click.echo(f"wrote {path}")
        if write_migration and not written:
            click.echo("no recommendation: no migration written")
    _exit(worst, False)


def _pending(directory: Any) -> set[str]:
    from dbmaint import migrations

    return migrations.pending_index_names(directory) if directory.is_dir() else set()


def _write_migration(recommendations: Any, directory: Any) -> str:
    from alembic.util import CommandError

    from dbmaint import migrations

    try:
        return str(migrations.write_revision(recommendations, directory))
    except FileNotFoundError:
        raise UsageError(
            f"no migrations versions directory at {directory} (set advisor.versions_dir or --versions-dir)"
        ) from None
    except (ValueError, CommandError) as exc:
        raise UsageError(f"cannot write the migration into {directory}: {exc}") from None


@cli.command()
@click.argument("statement", required=False)
@click.option("-f", "--file", "file_", type=click.File("r"), help="Read the statement from a file ('-' for stdin).")
@click.option("--query-id", type=int, default=None, help="The statement pg_stat_statements knows by this query id.")
@click.option("--no-analyze", is_flag=True, help="Estimates only: plan the statement without running it.")
@click.option(
    "--analyze-writes",
    is_flag=True,
    help="Run INSERT/UPDATE/DELETE/MERGE too, inside a transaction that is always rolled back.",
)
@click.option(
    "--trust-functions",
    is_flag=True,
    help="Execute even when the statement reaches VOLATILE or SECURITY DEFINER user functions or foreign tables "
    "(by default such a statement is planned, not run). Built-ins that act on the server are never run.",
)
@click.option("--param", "params", multiple=True, metavar="VALUE", help="Value for $1, $2 ... (repeat, in order).")
@click.option("--timeout", type=float, default=30.0, show_default=True, help="statement_timeout, in seconds.")
@click.option(
    "--compare", "compare_with", metavar="OTHER", default=None,
    help="Compare with OTHER, the baseline ('before'; the statement explained is 'after'): another statement, "
    "explained with the same options; @FILE or the path of a file of SQL; or queryid:N, the plan the state store "
    "captured last for that query id (not run again).",
)  # fmt: skip
@click.option(
    "--format", "output_format", type=click.Choice(["text", "json", "html"]), default="text", show_default=True,
    help="For people (text), one JSON document (json), or one self-contained HTML page (html).",
)  # fmt: skip
@click.option(
    "-o", "--output", "output_path", type=click.Path(dir_okay=False), default=None,
    help="Write the output (any format) to this file instead of stdout.",
)  # fmt: skip
@_command
def explain(
    options: GlobalOptions,
    statement: str | None,
    file_: Any,
    query_id: int | None,
    no_analyze: bool,
    analyze_writes: bool,
    trust_functions: bool,
    params: tuple[str, ...],
    timeout: float,
    compare_with: str | None,
    output_format: str,
    output_path: str | None,
) -> None:
    """The plan of one statement, what is wrong with it, and what would fix it.

    Safe by construction: queries run in a READ ONLY transaction; INSERT/UPDATE/DELETE/MERGE only with
    --analyze-writes, inside a transaction that is always rolled back; DDL, COPY, VACUUM, CALL, DO and
    calls with effects a rollback cannot undo are refused. A statement is executed only when every
    function it reaches (through views, operators, triggers, defaults, and the bodies of SQL and plpgsql
    functions) is known harmless; otherwise it is planned without running, and the output says why.
    Every run has a statement_timeout.
    """
    import contextlib
    import dataclasses
    import io
    import json
    from pathlib import Path

    from dbmaint import db, report
    from dbmaint import explain as explaining
    from dbmaint.config import load_config
    from dbmaint.errors import DbmaintError

    config = load_config(options.config_path)
    targets = db.resolve_targets(config, options.database, options.dsn)
    if len(targets) > 1:
        raise UsageError("explain works on one database: choose it with --database or --dsn")
    sources = [s for s in (statement, file_, query_id) if s is not None]
    if len(sources) > 1:
        raise UsageError("give the statement once: as an argument, with -f, or with --query-id")
    if not sources and not sys.stdin.isatty():
        file_ = sys.stdin

    # --compare OTHER: queryid:N (a stored plan), @FILE or a file's path, else a statement.
    other_text: str | None = None
    baseline: explaining.Result | None = None
    if compare_with is not None:
        spec = compare_with.strip()
        path: str | None = spec[1:] if spec.startswith("@") else None
        if spec.lower().startswith("queryid:"):
            import sqlalchemy as sa
            from sqlalchemy.exc import SQLAlchemyError

            from dbmaint.analyse import explain as plan_analysis
            from dbmaint.errors import StateStoreError
            from dbmaint.history import History
            from dbmaint.history import statements as captured

            try:
                stored_id = int(spec.split(":", 1)[1].strip())
            except ValueError:
                raise UsageError(f"--compare {compare_with}: queryid: takes a query id (queryid:1234567890)") from None
            name = targets[0].name
            store = History(config.state.url)
            try:
                record = store.latest_plan(name, stored_id)
                with store.engine.connect() as state:
                    stored_text = state.execute(
                        sa.select(captured.c.query).where(captured.c.database == name, captured.c.queryid == stored_id)
                    ).scalar()
            except SQLAlchemyError as exc:
                raise StateStoreError(f"cannot read the state store: {str(exc).splitlines()[0]}") from None
            finally:
                store.close()
            if record is None:
                raise UsageError(
                    f"--compare: the state store has no plan of query id {stored_id} in database {name!r} "
                    "(dbmaint capture stores the plans of slow statements)"
                )
            try:
                plan = json.loads(record.plan)
                analysis = plan_analysis.analyse(plan, query=stored_text)
            except ValueError as exc:
                raise UsageError(f"--compare: the stored plan of query id {stored_id} is unreadable: {exc}") from None
            how = {
                "estimate": "estimates: a generic plan, not executed",
                "analyze": "EXPLAIN ANALYZE",
                "auto_explain": "auto_explain: a real execution",
            }.get(record.source, record.source)
            baseline = explaining.Result(
                statement=str(stored_text or f"-- query id {stored_id}"),
                kind="write" if analysis.nodes and analysis.nodes[0].node_type == "ModifyTable" else "read",
                analyzed=analysis.analyzed,
                plan=plan,
                analysis=analysis,
                notes=[
                    f"the plan dbmaint captured for query id {stored_id} on {record.captured_at:%Y-%m-%d %H:%M %Z} "
                    f"({how}), read from the state store: not run again"
                ],
            )
        elif path is None and "\n" not in spec:
            with contextlib.suppress(OSError, ValueError):  # not a possible path name: a statement
                path = spec if Path(spec).is_file() else None
        if path is not None:
            try:
                other_text = Path(path).read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise UsageError(f"--compare: cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
        elif baseline is None:
            other_text = compare_with
    with db.connection(targets[0], config.safety) as conn:
        if query_id is not None:
            text = explaining.statement_by_query_id(conn, query_id)
        elif file_ is not None:
            text = file_.read()
        elif statement is not None:
            text = statement
        else:
            raise UsageError("no statement: give it as an argument, with -f FILE, on stdin, or with --query-id")
        request = explaining.Request(
            text, analyze=not no_analyze, analyze_writes=analyze_writes, params=params, timeout_s=timeout,
            lock_timeout_s=config.safety.lock_timeout, trust_functions=trust_functions, role=config.explain.role,
            advisor=config.advisor,
        )  # fmt: skip
        result = explaining.explain(conn, request)
    if other_text is not None:
        # A session of its own: the proof of index fixes leaves planner settings behind in the first one. Run
        # second, the baseline gets the warmer cache: a speed-up shown is not flattered by it.
        try:
            with db.connection(targets[0], config.safety) as conn:
                baseline = explaining.explain(conn, dataclasses.replace(request, sql=other_text))
        except DbmaintError as exc:
            raise type(exc)(f"--compare statement: {exc}") from None

    def render() -> None:
        if baseline is not None:
            from dbmaint.analyse.compare import compare

            comparison = compare(baseline.analysis, result.analysis)
            if output_format == "json":
                report.print_json(
                    {"before": baseline.to_json(), "after": result.to_json(), "comparison": comparison.to_json()}
                )
            elif output_format == "html":
                from dbmaint import html

                sys.stdout.write(html.render_comparison(baseline, result, comparison))
            else:
                report.print_explain_comparison(baseline, result, comparison)
        elif output_format == "json":
            report.print_json(result.to_json())
        elif output_format == "html":
            from dbmaint import html

            sys.stdout.write(html.render(result))
        else:
            report.print_explain(result)

    if output_path is None or output_path == "-":
        render()
        return
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        render()
    try:
        Path(output_path).write_text(buffer.getvalue(), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output_path}: {exc.strerror or exc}") from None
    if not options.quiet:
        click.echo(f"wrote {output_path}", err=True)


@cli.command()
@click.option(
    "--log",
    "log_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Also store auto_explain's JSON plans from this server log (default: capture.auto_explain_log).",
)
@_format_option
@_command
def capture(options: GlobalOptions, log_path: str | None, output_format: str) -> None:
    """One slow-query capture pass: statements over the threshold since the last pass, with their plans."""
    import dataclasses

    from dbmaint import jobs, report

    config, targets, history = _context(options)
    if log_path:
        config = dataclasses.replace(config, capture=dataclasses.replace(config.capture, auto_explain_log=log_path))
    log = config.capture.auto_explain_log
    if log and not os.access(log, os.R_OK):
        history.close()
        raise UsageError(f"cannot read the server log {log} (capture.auto_explain_log or --log)")
    from dbmaint.capture import CaptureReport
    from dbmaint.model import JobReport

    try:
        outcomes, worst = _each(targets, lambda target: jobs.capture(target, config, history))
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
    _exit(worst, any(r.job.failed for r in results))


@cli.command()
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True, help="How many statements.")
@_format_option
@_command
def slow(options: GlobalOptions, limit: int, output_format: str) -> None:
    """The captured slow statements, worst first, with their latest plan's problems."""
    from dbmaint import report
    from dbmaint.config import load_config
    from dbmaint.history import History

    config = load_config(options.config_path)
    store = History(config.state.url)
    try:
        rows = store.slow_statements(options.database, limit)
    finally:
        store.close()
    if output_format == "json":
        report.print_json({"statements": [report.slow_json(row) for row in rows]})
    else:
        report.print_slow(rows)


@cli.command()
@_format_option
@_command
def check(options: GlobalOptions, output_format: str) -> None:
    """The database checklist: pass, fail or unknown per item, with evidence; exit 1 when any fails."""
    from dbmaint import check as checklist
    from dbmaint import db, report

    config, targets, history = _context(options)

    def check_one(target: Any) -> Any:
        with db.connection(target, config.safety) as conn:
            return checklist.run(conn, target.name, config, history)

    try:
        outcomes, worst = _each(targets, check_one)
    finally:
        history.close()
    if output_format == "json":
        report.print_json(report.per_database([o.to_json() for o in outcomes]))
    else:
        for outcome in outcomes:
            if isinstance(outcome, DatabaseFailure):
                _print_failure("check", outcome)
            else:
                report.print_check(outcome)
    _exit(worst, any(o.status == "fail" for o in outcomes if not isinstance(o, DatabaseFailure)))


@cli.command()
@_command
def run(options: GlobalOptions) -> None:
    """The scheduler service: every job on its schedule until SIGTERM (SIGHUP reloads the configuration)."""
    from dbmaint.config import find_config_path
    from dbmaint.scheduler import Service

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
@_format_option
@_command
def status(options: GlobalOptions, output_format: str) -> None:
    """Is the service running; per job and database: the last run, the last success, the next run."""
    import socket

    from dbmaint import report
    from dbmaint import status as service_status

    config, targets, history = _context(options)
    try:
        result = service_status.gather(config, [t.name for t in targets], history, socket.gethostname())
    finally:
        history.close()
    if output_format == "json":
        report.print_json(result.to_json())
    else:
        from dbmaint.history import masked_url

        report.print_status(
            result, config_source=config.source, state_url=masked_url(config.state.url), timezone=config.timezone
        )


@cli.command()
@click.option(
    "--job", type=click.Choice(["vacuum", "reindex", "capture", "advisor"]), default=None, help="Only this job's runs."
)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="How many runs.")
@click.option("--run", "run_id", type=int, default=None, help="Show the actions of one run.")
@_format_option
@_command
def history(options: GlobalOptions, job: str | None, limit: int, run_id: int | None, output_format: str) -> None:
    """What ran, when, and with what result."""
    from dbmaint import report
    from dbmaint.config import load_config
    from dbmaint.history import History

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
        records = store.recent_runs(limit=limit, job=job, database=options.database)
    finally:
        store.close()
    if output_format == "json":
        report.print_json({"runs": [r.to_json() for r in records]})
    else:
        report.print_history(records)


@cli.command()
@click.option("--keep", is_flag=True, help="Leave the cluster running and print how to connect to it.")
@_format_option
@_command
def demo(options: GlobalOptions, keep: bool, output_format: str) -> None:
    """Start a throwaway PostgreSQL with a sample database, run the jobs once, and report."""
    from dbmaint import demo as demo_module

    demo_module.run(keep=keep, output_format=output_format, quiet=options.quiet)


def main(argv: Sequence[str] | None = None) -> None:
    """The console script: click's own errors (usage, bad option values, missing files) become one line too."""
    try:
        code = cli.main(args=list(argv) if argv is not None else None, prog_name="dbmaint", standalone_mode=False)
    except click.UsageError as exc:
        where = f" {exc.ctx.command_path}" if exc.ctx is not None else ""
        click.echo(f"dbmaint: {exc.format_message()} (see: dbmaint{where.removeprefix(' dbmaint')} --help)", err=True)
        sys.exit(2)
    except click.ClickException as exc:
        click.echo(f"dbmaint: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("dbmaint: interrupted", err=True)
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
