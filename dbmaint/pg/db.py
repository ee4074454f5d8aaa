"""The one thin layer over psycopg: connecting with dbmaint's session settings, and typed rows.

Every dbmaint session is named ``dbmaint`` in pg_stat_activity, has a lock_timeout, a bounded
idle-in-transaction time and, on PostgreSQL 14+, ``client_connection_check_interval`` so that a killed
dbmaint leaves no orphaned maintenance backend behind.
"""

from __future__ import annotations

import fnmatch
import logging
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import Row, class_row

from dbmaint.config import Config, DatabaseConfig, SafetyConfig
from dbmaint.errors import ConfigError, ConnectError, DatabaseError, UsageError
from dbmaint.pg import own_statements, queries, stopping

log = logging.getLogger(__name__)
APPLICATION_NAME = "dbmaint"
T = TypeVar("T")
Params = dict[str, Any] | Sequence[Any] | None


@dataclass(frozen=True)
class Target:
    """A database dbmaint works on: the config's name for it and its connection string.

    A database of a ``databases = "all"`` entry also has its ``server`` (the entry's name) and the entry's
    connection budget (``jobs``); ``unavailable`` says why the entry's databases could not be listed (the
    target then stands for all of them, and fails in their place)."""

    name: str
    dsn: str
    server: str | None = None
    jobs: int = 1
    unavailable: str | None = None

    @property
    def display(self) -> str:
        return mask_dsn(self.dsn)


def mask_dsn(dsn: str) -> str:
    """The DSN with any password replaced, safe for logs, history and Sentry."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error:
        return "<unparseable DSN>"
    for key in params:
        if key.endswith("password"):  # password, and sslpassword (the client key's passphrase)
            params[key] = "***"
    return make_conninfo("", **params) or "(libpq defaults)"


def resolve_targets(config: Config, database: str | None, dsn: str | None) -> list[Target]:
    """The databases a command acts on: --dsn, else the config's, else $DBMAINT_DSN, else libpq's defaults."""
    if dsn is not None:
        if database is not None and config.databases and database not in {db.name for db in config.databases}:
            known = ", ".join(db.name for db in config.databases)
            raise UsageError(f"no database named {database!r} in {config.source} (configured: {known})")
        # With --dsn, --database names it in history (and must be a configured name when there is a config).
        return [Target(database or _dbname(dsn), dsn)]
    if config.databases:
        # --database names an entry, or one database of a databases = "all" entry ("<entry>/<database>").
        chosen = [db for db in config.databases if database in (None, db.name) or _of_server(database, db)]
        if not chosen:
            known = ", ".join(db.name for db in config.databases)
            raise UsageError(f"no database named {database!r} in {config.source} (configured: {known})")
        targets = []
        for db in chosen:
            value = db.dsn if db.dsn is not None else os.environ.get(db.dsn_env or "")
            if not value:
                raise ConfigError(
                    f"{config.source}: database {db.name!r} takes its DSN from ${db.dsn_env}, which is not set"
                )
            if db.databases == "all":
                targets += server_databases(db, value, config.safety, only=database)
            else:
                targets.append(Target(db.name, value))
        return targets
    env_dsn = os.environ.get("DBMAINT_DSN")
    if env_dsn:
        return [Target(database or _dbname(env_dsn), env_dsn)]
    if database is not None:
        raise UsageError(f"--database {database!r} given but no configuration file names databases")
    return [Target(_dbname(""), "")]


def _of_server(name: str | None, entry: DatabaseConfig) -> bool:
    return entry.databases == "all" and name is not None and name.startswith(f"{entry.name}/")


def server_databases(entry: DatabaseConfig, dsn: str, safety: SafetyConfig, only: str | None = None) -> list[Target]:
    """Every database of the server that allows connections, except templates and the excluded ones, as
    listed now: one created since the last run is in, one dropped is out. When the server cannot be asked,
    one unavailable target stands for them all (it fails in their place; other entries still run)."""
    try:
        with connection(Target(entry.name, dsn), safety, statement_timeout=30.0) as conn:
            names = [row[0] for row in conn.execute(queries.query("server_databases", conn.info.server_version))]
    except (ConnectError, ConfigError, DatabaseError, psycopg.Error) as exc:
        reason = f"cannot list the databases of {entry.name!r}: {first_line(str(exc))}"
        return [Target(entry.name, dsn, server=entry.name, jobs=entry.jobs, unavailable=reason)]
    targets = [
        Target(f"{entry.name}/{name}", make_conninfo(dsn, dbname=name), server=entry.name, jobs=entry.jobs)
        for name in names
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in entry.exclude)
    ]
    if only is not None and only != entry.name:
        targets = [t for t in targets if t.name == only]
        if not targets:
            raise UsageError(f"no database {only!r}: {entry.name!r} has no such database now (or it is excluded)")
    return targets


def recorded_name(database: str | None, dsn: str | None) -> str | None:
    """The name a --database/--dsn pair's runs are recorded under (as resolve_targets names a --dsn target);
    None for every database, when neither is given."""
    if database is not None or dsn is None:
        return database
    return _dbname(dsn)


def _dbname(dsn: str) -> str:
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.Error as exc:
        raise ConfigError(f"invalid DSN: {_parse_problem(exc)}") from None
    return str(params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "default")


def _parse_problem(exc: psycopg.Error) -> str:
    """libpq's complaint about a DSN, unless it quotes a piece of it (which may be the password)."""
    message = first_line(str(exc))
    return (
        "libpq cannot parse it (check its key=value pairs, or the URI)" if '"' in message or "'" in message else message
    )


# Besides class 08: the server shutting down, crashed, or not yet accepting sessions.
_SESSION_ENDED = ("57P01", "57P02", "57P03")


def connection_lost(exc: BaseException, conn: psycopg.Connection[Any] | None = None) -> bool:
    """Whether ``exc`` means the session is gone, not only this statement refused. psycopg's OperationalError
    also stands for statement-level states: 55000 (pg_stat_statements not preloaded, say), 55P03 (a lock
    not available), 57014 (a statement timeout), 53xxx (out of memory or disk)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if conn is not None and (conn.closed or conn.broken):
        return True
    state = exc.sqlstate
    return state is None or state.startswith("08") or state in _SESSION_ENDED


def first_line(message: str) -> str:
    return message.strip().splitlines()[0].strip() if message.strip() else "unknown error"


def connect(
    target: Target,
    safety: SafetyConfig,
    *,
    autocommit: bool = True,
    statement_timeout: float | None = None,
) -> psycopg.Connection[tuple[Any, ...]]:
    """A connection with dbmaint's session settings; ``ConnectError`` with one clear line otherwise."""
    if target.unavailable is not None:  # stands for a server's databases that could not be listed: none of them
        raise ConnectError(target.unavailable)
    try:
        with stopping.connecting():
            conn = psycopg.connect(
                target.dsn,
                autocommit=autocommit,
                application_name=APPLICATION_NAME,
                connect_timeout=max(1, round(safety.connect_timeout)),
                cursor_factory=MarkedCursor,
            )
    except psycopg.ProgrammingError as exc:  # malformed DSN
        raise ConfigError(f"invalid DSN for database {target.name!r}: {_parse_problem(exc)}") from None
    except psycopg.OperationalError as exc:
        raise ConnectError(_connect_message(target, exc)) from None
    settings = {
        "lock_timeout": _ms(safety.lock_timeout),
        "statement_timeout": _ms(statement_timeout or 0),
        # A dbmaint transaction left open by a bug must not hold back vacuum for long.
        "idle_in_transaction_session_timeout": "60000",
    }
    stopping.register(conn)
    if conn.info.server_version >= 140000:
        settings["client_connection_check_interval"] = _ms(safety.connection_check_interval)
    try:
        set_settings(conn, settings)
    except psycopg.Error as exc:
        conn.close()
        raise DatabaseError(f"could not configure the session on {target.name!r}: {first_line(str(exc))}") from None
    _untracked(conn)
    return conn


def sibling(conn: psycopg.Connection[Any], *, except_settings: Sequence[str] = ()) -> psycopg.Connection[Any]:
    """A second session as ``conn``: the same connection parameters (password included), and the settings
    made in it (dbmaint's timeouts, the planner's), except ``except_settings``. Raises ``psycopg.Error``:
    the caller decides whether it can do without."""
    info = conn.info
    with stopping.connecting():
        other = psycopg.connect(
            make_conninfo("", **info.get_parameters()),
            password=info.password,
            autocommit=True,
            cursor_factory=MarkedCursor,
        )
    stopping.register(other)
    try:
        settings = conn.execute(
            "SELECT name, pg_catalog.current_setting(name) FROM pg_catalog.pg_settings"
            " WHERE source = 'session' AND name <> ALL(%s)",
            [list(except_settings)],
        ).fetchall()
        if settings:
            set_settings(other, {str(name): str(value) for name, value in settings})
    except BaseException:
        other.close()
        raise
    return other


class MarkedCursor(psycopg.Cursor[Row]):
    """Every statement dbmaint sends carries own_statements.MARKER, so reading pg_stat_statements (or a
    server log) back can leave dbmaint's own statements out."""

    def execute(
        self, query: Any, params: Any = None, *, prepare: bool | None = None, binary: bool | None = None
    ) -> Any:
        return super().execute(own_statements.mark(query), params, prepare=prepare, binary=binary)


def _untracked(conn: psycopg.Connection[Any]) -> None:
    """pg_stat_statements off for this session where the role may set it (superuser, or GRANT SET ON
    PARAMETER): explaining or planning an application's statement then adds nothing to its entry."""
    try:
        if conn.autocommit:
            conn.execute("SET pg_stat_statements.track = 'none'")
        else:
            with conn.transaction():  # a refusal must not leave the session's transaction aborted
                conn.execute("SET pg_stat_statements.track = 'none'")
    except psycopg.errors.InsufficientPrivilege:
        log.debug("pg_stat_statements.track cannot be set by this role: dbmaint's statements are told by their marker")
    except psycopg.Error as exc:
        log.debug("pg_stat_statements.track not set: %s", first_line(str(exc)))


def _ms(seconds: float) -> str:
    return str(max(0, round(seconds * 1000)))


def set_settings(conn: psycopg.Connection[Any], settings: dict[str, str], *, local: bool = False) -> None:
    """Set several GUCs in one round trip (set_config, so values are parameters, never spliced)."""
    calls = sql.SQL(", ").join(
        sql.SQL("pg_catalog.set_config({}, {}, {})").format(sql.Literal(name), sql.Placeholder(), sql.Literal(local))
        for name in settings
    )
    conn.execute(sql.SQL("SELECT {}").format(calls), list(settings.values()))


def _connect_message(target: Target, exc: psycopg.OperationalError) -> str:
    detail = "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())
    detail = detail.removeprefix("connection failed: ")
    return f"could not connect to PostgreSQL database {target.name!r} ({target.display}): {detail}"


@contextmanager
def connection(
    target: Target, safety: SafetyConfig, *, statement_timeout: float | None = None
) -> Iterator[psycopg.Connection[tuple[Any, ...]]]:
    conn = connect(target, safety, statement_timeout=statement_timeout)
    try:
        yield conn
    finally:
        conn.close()


def fetch(
    conn: psycopg.Connection[Any],
    name: str,
    row_type: type[T],
    params: Params = None,
    identifiers: dict[str, str] | None = None,
) -> list[T]:
    """Run the named query from ``dbmaint/queries`` and return typed rows.

    ``identifiers`` fill ``{name}`` slots in the query text, quoted by psycopg.sql.Identifier.
    """
    stopping.check()
    statement: sql.SQL | sql.Composed = queries.query(name, conn.info.server_version)
    if identifiers:
        statement = queries.query(name, conn.info.server_version).format(
            **{key: sql.Identifier(value) for key, value in identifiers.items()}
        )
    try:
        with conn.cursor(row_factory=class_row(row_type)) as cur:
            # Always pass parameters, even none, so that '%%' in the SQL files means '%' everywhere.
            cur.execute(statement, params if params is not None else {})
            return cur.fetchall()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise DatabaseError(
            f"insufficient privilege to read {name.replace('_', ' ')}: {first_line(str(exc))}"
        ) from None
    except psycopg.Error as exc:
        if connection_lost(exc, conn):
            raise  # the connection is gone: the job's caller handles that
        raise DatabaseError(f"could not read {name.replace('_', ' ')}: {first_line(str(exc))}") from None


def fetch_value(conn: psycopg.Connection[Any], statement: sql.SQL | sql.Composed | str, params: Params = None) -> Any:
    stopping.check()
    row = conn.execute(statement, params).fetchone()
    return None if row is None else row[0]


def is_in_recovery(conn: psycopg.Connection[Any]) -> bool:
    return bool(fetch_value(conn, "SELECT pg_catalog.pg_is_in_recovery()"))


def server_identity(conn: psycopg.Connection[Any]) -> str | None:
    """The cluster's system_identifier: the same on a cluster and its physical standbys (one history across
    a failover), different for two clusters that each have a database of the same name."""
    try:
        value = fetch_value(conn, "SELECT system_identifier::text FROM pg_catalog.pg_control_system()")
    except psycopg.Error:  # a server that hides it: runs are then told apart by database name only
        return None
    return None if value is None else str(value)
