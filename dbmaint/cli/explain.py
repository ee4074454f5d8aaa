"""`dbmaint explain`: one statement's plan, what is wrong with it, and proven fixes."""

from __future__ import annotations

import sys
from typing import Any

import click

from dbmaint.cli.base import GlobalOptions, cli, command
from dbmaint.errors import DbmaintError, UsageError


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
@click.option(
    "--timeout",
    type=click.FloatRange(min=0.001),
    default=30.0,
    show_default=True,
    help="statement_timeout, in seconds (above 0).",
)
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
@command
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

    from dbmaint import report
    from dbmaint.config import load_config
    from dbmaint.explain import runner
    from dbmaint.pg import db

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
    baseline: runner.Result | None = None
    if compare_with is not None:
        spec = compare_with.strip()
        path: str | None = spec[1:] if spec.startswith("@") else None
        if spec.lower().startswith("queryid:"):
            from dbmaint.explain import plan_analysis
            from dbmaint.store.history import History

            try:
                stored_id = int(spec.split(":", 1)[1].strip())
            except ValueError:
                raise UsageError(f"--compare {compare_with}: queryid: takes a query id (queryid:1234567890)") from None
            name = targets[0].name
            store = History(config.state.url)
            try:
                record = store.latest_plan(name, stored_id)
                stored_text = store.captured_text(name, stored_id)
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
            baseline = runner.Result(
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
            text = runner.statement_by_query_id(conn, query_id)
        elif file_ is not None:
            text = file_.read()
        elif statement is not None:
            text = statement
        else:
            raise UsageError("no statement: give it as an argument, with -f FILE, on stdin, or with --query-id")
        request = runner.Request(
            text, analyze=not no_analyze, analyze_writes=analyze_writes, params=params, timeout_s=timeout,
            lock_timeout_s=config.safety.lock_timeout, trust_functions=trust_functions, role=config.explain.role,
            advisor=config.advisor,
        )  # fmt: skip
        result = runner.explain(conn, request)
    if other_text is not None:
        # A session of its own: the proof of index fixes leaves planner settings behind in the first one. Run
        # second, the baseline gets the warmer cache: a speed-up shown is not flattered by it.
        try:
            with db.connection(targets[0], config.safety) as conn:
                baseline = runner.explain(conn, dataclasses.replace(request, sql=other_text))
        except DbmaintError as exc:
            raise type(exc)(f"--compare statement: {exc}") from None

    def render() -> None:
        if baseline is not None:
            from dbmaint.explain.compare import compare

            comparison = compare(baseline.analysis, result.analysis)
            if output_format == "json":
                report.print_json(
                    {"before": baseline.to_json(), "after": result.to_json(), "comparison": comparison.to_json()}
                )
            elif output_format == "html":
                from dbmaint.explain import html

                sys.stdout.write(html.render_comparison(baseline, result, comparison))
            else:
                report.print_explain_comparison(baseline, result, comparison)
        elif output_format == "json":
            report.print_json(result.to_json())
        elif output_format == "html":
            from dbmaint.explain import html

            sys.stdout.write(html.render(result))
        else:
            from dbmaint.explain import text

            text.print_explain(result)

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
