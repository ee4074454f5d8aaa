"""The command group: options every command takes, errors as one line and an exit code, databases one by one.

This is the one place where errors become messages and exit codes (0 ok, 1 the command ran and found or
failed something, 2 bad usage or config, 3 cannot connect).
"""

from __future__ import annotations

import contextlib
import errno
import functools
import importlib
import logging
import os
import socket
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from dbmaint import __version__
from dbmaint.errors import ConnectError, DatabaseError, DbmaintError, Interrupted, StateStoreError

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


def global_options(f: F) -> F:
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


def format_option(f: F) -> F:
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


# Each command's module, imported only when that command runs (or help lists them all): a command pays for
# its own family's imports, not for the other commands' (``dbmaint explain`` starts in a few hundred ms).
COMMAND_MODULES = {
    "advise": "advisor",
    "check": "advisor",
    "capture": "capture",
    "slow": "capture",
    "demo": "demo",
    "explain": "explain",
    "vacuum": "maintenance",
    "reindex": "maintenance",
    "run": "service",
    "status": "service",
    "history": "service",
    "report": "report",
}


class _Group(click.Group):
    """Loads a command's module when it is asked for, and turns every dbmaint error into one line on stderr
    and its exit code."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = COMMAND_MODULES.get(cmd_name)
        if module is not None and cmd_name not in self.commands:
            importlib.import_module(f"dbmaint.cli.{module}")  # registers its commands on this group
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        for module in sorted(set(COMMAND_MODULES.values())):
            importlib.import_module(f"dbmaint.cli.{module}")
        return super().list_commands(ctx)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DbmaintError as exc:
            click.echo(f"dbmaint: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("dbmaint: interrupted", err=True)
            sys.exit(130)
        except (click.exceptions.Exit, click.ClickException, SystemExit, BrokenPipeError):
            raise  # a reader gone (| head) is main()'s to handle, quietly
        except Exception as exc:
            log.debug("unexpected error", exc_info=True)
            click.echo(f"dbmaint: unexpected error: {type(exc).__name__}: {exc} (run with -vv for details)", err=True)
            sys.exit(1)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@global_options
@click.version_option(__version__, prog_name="dbmaint")
@click.pass_context
def cli(ctx: click.Context, /, **kwargs: Any) -> None:
    """dbmaint keeps PostgreSQL healthy: need-based VACUUM ANALYZE, bloat-driven REINDEX CONCURRENTLY,
    an index advisor with Alembic migrations, plans explained, slow queries captured, and a history of
    everything it did."""
    ctx.obj = GlobalOptions(**kwargs)


def command(f: F) -> F:
    """Shared wiring: global options accepted after the command name too."""

    @functools.wraps(f)
    @click.pass_context
    def wrapper(ctx: click.Context, /, **kwargs: Any) -> Any:
        options = _options(ctx, kwargs)
        return f(options, **kwargs)

    return global_options(wrapper)  # type: ignore[return-value]


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


def each_database(targets: Sequence[Any], work: Callable[[Any], T]) -> tuple[list[T | DatabaseFailure], int]:
    """``work`` for every database; one database's failure is that database's failure.

    With several databases, an error of one (cannot connect, a query refused) is reported on stderr and
    in its place in the output, and the rest still run; the second value is the worst exit code met (3
    cannot connect, 2 a database's settings unusable, 1 a query failed). With one database the error
    ends the command as before. A state store failure or a stop request ends it whatever the count:
    neither belongs to one database.

    The databases of a ``databases = "all"`` entry are worked on side by side, as many at once as the
    entry's ``jobs`` (each with its share of the connections: :func:`connection_share`); the others one
    after the other. Outcomes keep the order of ``targets``.
    """
    import psycopg

    outcomes: list[T | DatabaseFailure | None] = [None] * len(targets)
    worst = 0
    lock = threading.Lock()

    def one(index: int) -> None:
        nonlocal worst
        target = targets[index]
        try:
            if target.unavailable is not None:
                raise ConnectError(target.unavailable)
            outcomes[index] = work(target)
        except (StateStoreError, Interrupted):
            raise
        except (DbmaintError, psycopg.Error) as exc:
            if len(targets) == 1:
                raise
            from dbmaint.pg.db import first_line

            error = exc if isinstance(exc, DbmaintError) else DatabaseError(first_line(str(exc)))
            click.echo(f"dbmaint: {target.name}: {error}", err=True)
            with lock:  # databases side by side may fail at once
                worst = max(worst, error.exit_code)
            outcomes[index] = DatabaseFailure(target.name, error)

    by_server: dict[str | None, list[int]] = {}
    for index, target in enumerate(targets):
        by_server.setdefault(target.server if target.jobs > 1 else None, []).append(index)
    for server, indexes in by_server.items():
        if server is None or len(indexes) == 1:
            for index in indexes:
                one(index)
        else:
            _side_by_side(indexes, targets[indexes[0]].jobs, one)
    return [o for o in outcomes if o is not None], worst


def _side_by_side(indexes: list[int], workers: int, one: Callable[[int], None]) -> None:
    """At most ``workers`` at once. The first error that ends the command (the state store, a stop) stops
    the rest from starting and cancels what runs, through each connection's own cancel key."""
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    from dbmaint.pg import stopping

    with ThreadPoolExecutor(max_workers=min(workers, len(indexes)), thread_name_prefix="dbmaint-db") as pool:
        futures = [pool.submit(one, index) for index in indexes]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = next((f for f in done if f.exception() is not None), None)
            if failed is not None:
                stopping.request(f"stopped: {failed.exception()}")
                stopping.cancel_all()
                failed.result()  # raises it, once the others have ended
        except KeyboardInterrupt:
            stopping.request("interrupted")
            stopping.cancel_all()
            raise
        finally:
            for future in futures:
                future.cancel()


def connection_share(target: Any, targets: Sequence[Any], wanted: int) -> int:
    """How many connections one database of a ``databases = "all"`` entry may use (``wanted``, such as
    vacuum.jobs) so that the databases worked on side by side stay within the entry's ``jobs`` together."""
    if target.server is None:
        return wanted
    budget = int(target.jobs)
    side_by_side = min(budget, sum(1 for t in targets if t.server == target.server))
    return max(1, min(wanted, budget // side_by_side))


def exit_worst(worst: int, found_problem: bool) -> None:
    """Exit with the worst status of the databases: a failed database outranks a found problem."""
    code = max(worst, 1 if found_problem else 0)
    if code:
        sys.exit(code)


def print_failure(command: str, failure: DatabaseFailure) -> None:
    click.echo(f"{command} on {failure.database}: error: {failure.error}")


def context(options: GlobalOptions, *, records_only: bool = False) -> Any:
    """The configuration, the databases and the state store. ``records_only``: the command only records its
    runs (a vacuum pass), so a store that needs nothing else is written without SQLAlchemy."""
    from dbmaint.config import load_config
    from dbmaint.pg.db import resolve_targets

    config = load_config(options.config_path)
    targets = resolve_targets(config, options.database, options.dsn)
    if records_only:
        from dbmaint.store.direct import open_direct

        direct = open_direct(config.state.url, socket.gethostname(), config.state.retention)
        if direct is not None:
            return config, targets, direct
    from dbmaint.store.history import History

    return config, targets, History(config.state.url)


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
    except BrokenPipeError:  # the reader is gone (| head): nothing more to say, and no error at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
    except OSError as exc:
        if exc.errno not in _OUTPUT_ERRORS:
            raise
        _output_lost(exc)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)


# Writing the output failed: the disk (or quota) is full, or the device is gone.
_OUTPUT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG}


def _output_lost(exc: OSError) -> None:
    """One line, not a traceback; stdout pointed at /dev/null so that its last flush cannot fail again."""
    with contextlib.suppress(OSError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.stderr.write(f"dbmaint: cannot write the output: {exc.strerror or exc}\n")


def console_main() -> None:
    """The console script (and ``python -m dbmaint``): ``main()``, then the process ends at once.

    An interpreter's own teardown (clearing every module, collecting what they hold) takes tens of
    milliseconds after a command like `dbmaint explain` has said everything: a tenth of its time. Once the
    command is done and its output flushed, nothing is left to tear down for: its connections are closed,
    its files written. The normal exit is kept when something may still need it: a thread of the command
    still running, Sentry (the service) with events to send, a profiler or coverage tracer.
    """
    try:
        main()
    except SystemExit as exc:
        code = exc.code
    else:
        code = 0
    busy = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    # A profiler or a coverage tracer writes what it gathered at the normal exit.
    watched = sys.getprofile() is not None or sys.gettrace() is not None
    if busy or watched or "sentry_sdk" in sys.modules or not isinstance(code, int | None):
        sys.exit(code)
    logging.shutdown()
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # a reader gone (| head): nothing more to say to it
        pass
    except OSError as exc:  # a full disk: the output is not all there, and the status says so
        _output_lost(exc)
        code = code or 1
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(code or 0)
