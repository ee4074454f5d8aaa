"""`dbmaint demo`: a throwaway PostgreSQL with a sample shop, made dirty on purpose, and one pass of each job.

The jobs (vacuum, then reindex), then the index advisor and the checklist, as ``dbmaint advise`` and
``dbmaint check`` would run them on the same database.

It is the first command a new user runs, so it needs nothing but the server binaries: the cluster and
the state store live in one temporary directory, removed at the end (also on error or Ctrl-C) unless
``--keep`` is given. Progress goes to stderr; stdout carries only the result (text, or one JSON document).
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import click
import psycopg

from dbmaint import jobs, report
from dbmaint.advisor import recommend
from dbmaint.advisor.recommend import AdviceReport
from dbmaint.check import checklist
from dbmaint.check.item import CheckReport
from dbmaint.config import Config
from dbmaint.errors import ClusterError, DatabaseError
from dbmaint.model import Action, IndexRecommendation, JobReport
from dbmaint.pg import db
from dbmaint.pg.cluster import SERVER_USER, Cluster, remove_tree
from dbmaint.pg.db import Target, first_line
from dbmaint.store.history import History
from dbmaint.units import format_duration, format_size, parse_duration, parse_size

DATABASE = "shop"
SERVER_SETTINGS = {
    "shared_preload_libraries": "'pg_stat_statements'",
    # Off, so that the dead rows made below are still there when dbmaint's vacuum job looks for them.
    "autovacuum": "off",
    "track_io_timing": "on",
    # The advisor counts an index's scans from its creation when it knows when that was, and only after
    # a week of counting calls an index unused; without this, the sample's indexes, seconds old and not yet
    # used by any query, would all be reported as unused (their database's statistics were never reset).
    "track_commit_timestamp": "on",
}
# The sample's one bloated index is ~11 MB; the default min_size (10MB) would be too close to call.
REINDEX_MIN_SIZE = "5MB"
# The sample's tables are small (MBs), so its slow queries take milliseconds each; under the default
# 100ms of total time a statement is not worth an index, and whether the sample's reach it would depend
# on the machine. Their call counts (>= advisor.min_calls) are what makes them the shop's workload.
ADVISOR_MIN_TOTAL_TIME = "10ms"

# Right after the load: every table starts clean, so only what the workload below dirties needs work.
BASELINE = "VACUUM (ANALYZE)"

# Queries the shop runs often, each missing an index (for slow-query capture and the index advisor).
# Each runs once per value, at least advisor.min_calls (5) times, through conn.execute(query, params):
# psycopg sends the values with the extended protocol, so pg_stat_statements records one entry per
# query with $1, $2 ... (its constants, such as 'cancelled' and LIMIT 20, become parameters too).
SLOW_QUERIES: tuple[tuple[str, Sequence[object]], ...] = (
    # The sales report filters on a column of orders that has no index.
    (
        "SELECT count(*), sum(total_cents) FROM orders WHERE shipping_country = %s AND status <> 'cancelled'",
        ("DE", "FR", "NL", "US", "GB", "SE", "ES", "IT", "PL", "JP"),
    ),
    # "Who bought this product?" follows a foreign key that has no index.
    ("SELECT order_id, quantity FROM order_items WHERE product_id = %s", (7, 42, 99, 512, 1024, 1500, 1999, 3)),
    # A customer's recent activity, from a log table with no primary key and no index on customer_id.
    (
        "SELECT occurred_at, kind, path FROM events WHERE customer_id = %s ORDER BY occurred_at DESC LIMIT 20",
        (11, 222, 3333, 4444, 5555, 16000, 17777, 19999),
    ),
)

# The shop's day, with autovacuum off: bulk changes that leave dead rows for the vacuum job.
WORKLOAD = (
    # The paid orders were shipped: ~30% of orders rewritten.
    "UPDATE orders SET status = 'shipped', shipped_at = now() WHERE status = 'paid'",
    # A price rise on every product.
    "UPDATE products SET price_cents = price_cents * 105 / 100",
    # Retention: events older than 60 days go (about half).
    "DELETE FROM events WHERE occurred_at < now() - interval '60 days'",
    # The session expiry job finally runs: ~90% of the sessions go, scattered all over the token index.
    "DELETE FROM sessions WHERE last_seen_at < now() - interval '30 days'",
)
# ... and the expiry job vacuums what it purged: the rows go, the index keeps its pages (bloat).
AFTER_PURGE = "VACUUM (ANALYZE) sessions"
# Loading the sample is not the shop's workload: its one-off bulk INSERTs must not count as slow queries.
FORGET_LOAD = "SELECT pg_stat_statements_reset()"
# The summary quotes each recommended index's statement up to this many characters.
QUERY_WIDTH = 70


def _with_qualstats(cluster: Cluster) -> dict[str, str]:
    """pg_qualstats, when its package is installed, shows the advisor the shop's real predicate values.
    It must be preloaded, and a server refuses to start with a library it cannot find: so only if present."""
    settings = dict(cluster.settings)
    if (cluster.bindir.parent / "lib" / "pg_qualstats.so").exists():
        settings["shared_preload_libraries"] = "'pg_stat_statements,pg_qualstats'"
    return settings


def run(*, keep: bool = False, output_format: str = "text", quiet: bool = False) -> None:
    """The whole demo; the cluster is removed on every way out except a successful ``--keep``."""
    _progress.quiet = quiet
    started = time.monotonic()
    # Private: its Unix socket only, in a directory of mode 0700 (a kept demo server is a passwordless
    # superuser, so never on TCP). Finds the server binaries: nothing to clean up yet.
    cluster = Cluster(settings=SERVER_SETTINGS, private=True)
    cluster.settings = _with_qualstats(cluster)
    kept = False
    try:
        # The demo's own directory rather than one the Cluster owns and removes: the server log must
        # outlive a failed start, to say why it failed.
        cluster.base = Path(tempfile.mkdtemp(prefix="dbmaint-demo-"))
        _say("starting a throwaway PostgreSQL server (autovacuum off, so the sample's dead rows wait for dbmaint)")
        _start(cluster)
        dsn = cluster.dsn(DATABASE)
        _say(f"server up; connection string: {dsn}")
        _load(cluster)
        _dirty(dsn)
        _say("running the vacuum job, then the reindex job, as `dbmaint vacuum` and `dbmaint reindex` would")
        results = _run_jobs(cluster)
        summary = Summary.of(results, _user_tables(dsn))
        _print_result(results, summary, _server_info(cluster, keep), output_format)
        kept = keep
    finally:
        if not kept:
            _destroy(cluster)
    _say(f"done in {format_duration(time.monotonic() - started)}")
    jobs_run = (results.vacuum, results.reindex)
    failed = [f"{r.job} {r.status}" + (f" ({r.reason})" if r.reason else "") for r in jobs_run if r.failed]
    if failed:
        raise DatabaseError(f"the demo's jobs did not all succeed: {'; '.join(failed)}")


class _Progress:
    quiet = False


_progress = _Progress()


def _say(message: str) -> None:
    """A progress line on stderr, unless -q was given (stdout carries only the result)."""
    if not _progress.quiet:
        click.echo(f"dbmaint demo: {message}", err=True)


def _start(cluster: Cluster) -> None:
    try:
        cluster.start()
    except ClusterError as exc:
        # pg_ctl's own last line rarely says why (e.g. "Examine the log output."); the server log does.
        raise ClusterError(f"the demo server did not start: {cluster.fatal_log_line() or exc}") from None


def _destroy(cluster: Cluster) -> None:
    """Stop and remove the cluster. A second Ctrl-C must not interrupt this and leave a server behind."""
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if in_main else None
    try:
        cluster.destroy()
        if cluster.base is not None:
            remove_tree(cluster.base)
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)
    if cluster.base is not None:
        _say(f"stopped the server and removed {cluster.base}")


@contextmanager
def _session(dsn: str, doing: str) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    """One application session, closed at the end, with its statistics flushed before it closes.

    PostgreSQL 15+ flushes a session's table counters lazily; dbmaint (and the next step's VACUUM)
    must see every row this session touched, or a clean table would look dirty and vice versa.
    """
    try:
        with psycopg.connect(dsn, autocommit=True, application_name="shop") as conn:
            yield conn
            version = conn.info.server_version
            if version >= 150000:
                conn.execute("SELECT pg_catalog.pg_stat_force_next_flush()")
        if version < 150000:
            time.sleep(1.0)  # the statistics collector of PostgreSQL 14 is asynchronous
    except psycopg.Error as exc:
        raise ClusterError(f"the demo could not {doing}: {first_line(str(exc))}") from None


def _load(cluster: Cluster) -> None:
    with _session(cluster.dsn(), "create the sample database") as conn:
        conn.execute(f"CREATE DATABASE {DATABASE}")
    script = resources.files("dbmaint.demo").joinpath("sample_app.sql").read_text(encoding="utf-8")
    started = time.monotonic()
    dsn = cluster.dsn(DATABASE)
    with _session(dsn, "load the sample database") as conn:
        conn.execute(script)  # no parameters: psycopg sends the whole script as one simple query
    with _session(dsn, "vacuum the freshly loaded sample") as conn:
        conn.execute(BASELINE)
        conn.execute(FORGET_LOAD)
        rows, size = conn.execute(
            "SELECT sum(n_live_tup)::bigint, sum(pg_catalog.pg_total_relation_size(relid))::bigint"
            "  FROM pg_catalog.pg_stat_user_tables"
        ).fetchone() or (0, 0)
    _say(
        f"loaded the sample shop into database {DATABASE!r}: {rows or 0:,} rows, {format_size(size)}, "
        f"in {format_duration(time.monotonic() - started)}"
    )


def _dirty(dsn: str) -> None:
    with _session(dsn, "run the sample's slow queries") as conn:
        for statement, values in SLOW_QUERIES:
            for value in values:
                conn.execute(statement, (value,)).fetchall()
    with _session(dsn, "run the sample workload") as conn:
        for statement in WORKLOAD:
            conn.execute(statement)
    with _session(dsn, "vacuum the purged sessions table") as conn:
        conn.execute(AFTER_PURGE)
    _say(
        "made work for dbmaint: bulk UPDATE/DELETE on orders, products and events; 90% of sessions purged "
        f"(index left bloated); {sum(len(v) for _, v in SLOW_QUERIES)} runs of {len(SLOW_QUERIES)} slow queries"
    )


def _config(state_url: str) -> Config:
    defaults = Config()
    return defaults._replace(
        state=defaults.state._replace(url=state_url),
        reindex=defaults.reindex._replace(min_size=parse_size(REINDEX_MIN_SIZE)),
        advisor=defaults.advisor._replace(min_total_time=parse_duration(ADVISOR_MIN_TOTAL_TIME)),
        source="dbmaint demo",
    )


def _state_url(cluster: Cluster) -> str:
    assert cluster.base is not None
    return f"sqlite:///{cluster.base / 'state.db'}"


@dataclass(frozen=True)
class Results:
    vacuum: JobReport
    reindex: JobReport
    advice: AdviceReport
    check: CheckReport


def _run_jobs(cluster: Cluster) -> Results:
    config = _config(_state_url(cluster))
    target = Target(name=DATABASE, dsn=cluster.dsn(DATABASE))
    history = History(config.state.url)
    try:
        vacuum = jobs.vacuum(target, config, history)
        reindex = jobs.reindex(target, config, history)
        _say("running the index advisor and the checklist, as `dbmaint advise` and `dbmaint check` would")
        advice, check_report = _advise_and_check(target, config, history)
    finally:
        history.close()
    return Results(vacuum, reindex, advice, check_report)


def _advise_and_check(target: Target, config: Config, history: History) -> tuple[AdviceReport, CheckReport]:
    """After the jobs, on the maintained database: its vacuum run is in ``history`` for the checklist."""
    started = time.monotonic()
    conn = db.connect(target, config.safety)
    try:
        advice = recommend.advise(conn, target.name, config, recommend.Sources())
        check_report = checklist.run(conn, target.name, config, history, advice=advice)
    except psycopg.Error as exc:
        raise DatabaseError(f"the demo could not run the advisor and the checklist: {first_line(str(exc))}") from None
    finally:
        conn.close()
    _say(
        f"advised {len(advice.recommendations)} index(es) from {advice.analysed} analysed statement(s) "
        f"and checked {len(check_report.items)} item(s) in {format_duration(time.monotonic() - started)}"
    )
    return advice, check_report


def _user_tables(dsn: str) -> list[str]:
    with _session(dsn, "list the sample's tables") as conn:
        rows = conn.execute(
            "SELECT schemaname || '.' || relname FROM pg_catalog.pg_stat_user_tables ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


@dataclass(frozen=True)
class Summary:
    """What the jobs did to the sample, and what the advisor and the checklist found, in the demo's terms."""

    maintained: list[Action]  # vacuum job actions, whatever became of them
    left_alone: list[str]  # tables the vacuum job found nothing to do on
    indexes: list[Action]  # reindex job actions
    recommended: list[IndexRecommendation] = field(default_factory=list)
    findings: dict[str, int] = field(default_factory=dict)  # by kind, most important kind first
    check_status: str = "unknown"
    check_items: dict[str, str] = field(default_factory=dict)  # check -> status

    @classmethod
    def of(cls, results: Results, tables: list[str]) -> Summary:
        touched = {a.object for a in results.vacuum.actions}
        return cls(
            results.vacuum.actions,
            [t for t in tables if t not in touched],
            results.reindex.actions,
            list(results.advice.recommendations),
            dict(Counter(f.kind for f in results.advice.findings)),  # findings come most important kind first
            results.check.status,
            {item.check: item.status for item in results.check.items},
        )

    def lines(self) -> list[str]:
        lines = [
            "Summary (autovacuum was off in this demo server, so every dead row waited for dbmaint; for the "
            f"sample's small tables, reindex.min_size {REINDEX_MIN_SIZE} and advisor.min_total_time "
            f"{ADVISOR_MIN_TOTAL_TIME} instead of the defaults 10MB and 100ms):"
        ]
        for a in self.maintained:
            verb = "vacuumed" if a.kind == "vacuum" else "analyzed"
            lines.append(f"  {verb} {a.object}: {a.reason}" if a.status == "done" else _not_done(a))
        tables = len(self.left_alone) + len({a.object for a in self.maintained})
        lines.append(f"  left alone {len(self.left_alone)} of {tables} tables: {', '.join(self.left_alone) or '-'}")
        for a in self.indexes:
            if a.status == "done" and a.kind == "reindex":
                sizes = f"{format_size(a.size_before)} -> {format_size(a.size_after)}"
                lines.append(f"  rebuilt {a.object}: {sizes}; it had {a.reason}")
            else:
                lines.append(_not_done(a))
        if not self.indexes:
            lines.append("  no index needed a rebuild")
        return lines + self._advice_lines()

    def _advice_lines(self) -> list[str]:
        if self.recommended:
            lines = [f"  recommended {len(self.recommended)} index(es) (planner cost of one call, before -> after):"]
            lines += [f"    {_recommendation_line(r)}" for r in self.recommended]
        else:
            lines = ["  recommended no index"]
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.findings.items())
        lines.append(f"  advisor findings: {kinds or 'none'}")
        by_status = {
            status: [name for name, s in self.check_items.items() if s == status]
            for status in ("fail", "unknown", "warn", "pass")
        }
        items = "; ".join(f"{status}: {', '.join(names)}" for status, names in by_status.items() if names)
        lines.append(f"  checklist: {self.check_status}" + (f" ({items})" if items else ""))
        if self.check_items.get("autovacuum_keeps_up") == "fail":
            lines.append("    (autovacuum_keeps_up fails here by design: this demo server runs with autovacuum off)")
        return lines

    def to_json(self) -> dict[str, Any]:
        return {
            "maintained": [{"table": a.object, "kind": a.kind, "status": a.status} for a in self.maintained],
            "left_alone": self.left_alone,
            "indexes": [
                {"index": a.object, "status": a.status, "size_before": a.size_before, "size_after": a.size_after}
                for a in self.indexes
            ],
            "recommended": [
                {
                    "index": r.name,
                    "table": r.table,
                    "columns": list(r.columns),
                    "verified": r.verified,
                    "queries": [
                        {"query": q.query, "cost_before": round(q.cost_before, 2), "cost_after": round(q.cost_after, 2)}
                        for q in r.queries
                    ],
                }
                for r in self.recommended
            ],
            "findings": self.findings,
            "check": self.check_status,
        }


def _recommendation_line(recommendation: IndexRecommendation) -> str:
    """``name for "query": before -> after``, for the statement the index helps most."""
    if not recommendation.queries:
        return f"{recommendation.name} on {recommendation.table}"
    top, *others = recommendation.queries
    query = " ".join(top.query.split())
    if len(query) > QUERY_WIDTH:
        query = query[: QUERY_WIDTH - 3] + "..."
    cost = (
        f"{top.cost_before:,.0f} -> {top.cost_after:,.0f}"
        if recommendation.verified
        else "not proven on the planner (no hypopg)"
    )
    more = f" (and {len(others)} more statement(s))" if others else ""
    fixes = "; also fixes the unindexed foreign key" if recommendation.closes else ""
    return f'{recommendation.name} for "{query}": {cost}{more}{fixes}'


def _not_done(action: Action) -> str:
    return f"  {action.status}: {action.kind} of {action.object}: {action.detail or action.reason}"


@dataclass(frozen=True)
class ServerInfo:
    dsn: str
    kept: bool
    stop_command: str
    state_url: str

    def lines(self) -> list[str]:
        return [
            "The demo server is still running (--keep):",
            f"  connect:  psql {shlex.quote(self.dsn)}",
            f"  state:    export DBMAINT_STATE_URL={shlex.quote(self.state_url)}  # the demo's history, for all below",
            f"  try:      dbmaint --dsn {shlex.quote(self.dsn)} vacuum --dry-run",
            "  history:  dbmaint history",
            f"  stop it:  {self.stop_command}",
        ]


def _server_info(cluster: Cluster, keep: bool) -> ServerInfo:
    assert cluster.base is not None
    stop = shlex.join([str(cluster.bindir / "pg_ctl"), "-D", str(cluster.datadir), "stop"])
    if os.geteuid() == 0:  # the server runs as the postgres user, and pg_ctl refuses to run as root
        stop = f"su {SERVER_USER} -c {shlex.quote(stop)}"
    return ServerInfo(
        dsn=cluster.dsn(DATABASE),
        kept=keep,
        stop_command=f"{stop} && rm -rf {shlex.quote(str(cluster.base))}",
        state_url=_state_url(cluster),
    )


def _print_result(results: Results, summary: Summary, server: ServerInfo, output_format: str) -> None:
    if output_format == "json":
        report.print_json(
            {
                "vacuum": report.job_reports_json([results.vacuum]),
                "reindex": report.job_reports_json([results.reindex]),
                "advise": results.advice.to_json(),
                "check": results.check.to_json(),
                "summary": summary.to_json(),
                "server": dataclasses.asdict(server) if server.kept else {"kept": False},
            }
        )
        if server.kept:  # stdout holds only the JSON document
            for line in server.lines():
                click.echo(line, err=True)
        return
    report.print_job_reports([results.vacuum, results.reindex])
    click.echo()
    report.print_advice(results.advice)
    click.echo()
    report.print_check(results.check)
    click.echo()
    for line in summary.lines():
        click.echo(line)
    if server.kept:
        click.echo()
        for line in server.lines():
            click.echo(line)
