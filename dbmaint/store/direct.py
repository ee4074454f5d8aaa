"""A vacuum pass's records written with the store's own driver (sqlite3, psycopg), without SQLAlchemy.

Importing SQLAlchemy costs `dbmaint vacuum` more time than the pass itself on a quiet night (about 0.15 s
of a 0.4 s run). So a vacuum pass writes its run and actions with plain statements when that is all the
store needs: it exists, its schema is at the head this dbmaint knows, nothing in it is past the retention
period, and no run of this host is left marked running. Anything else (a new or older store, pruning due,
a run to close as interrupted, a URL of another kind) goes through ``History``, which does all of that.
The rows are the ones ``History`` writes (a test records the same run both ways and compares them), and
the behaviour is the store's: an action is recorded as started, and committed, before its statement is
sent; a record the store cannot take now waits in memory and goes in with the next one; a run's last
record is tried again, then fails with ``StateStoreError``. One difference, for speed: an action's end is
written with the next record (the next action's start, or the run's end), so that a pass commits once per
table; should dbmaint die in between, that action is later closed as interrupted, as a running one is.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote, urlsplit

import psycopg

from dbmaint.errors import StateStoreDataError, StateStoreError
from dbmaint.model import Action, JobReport, now
from dbmaint.pg import db
from dbmaint.store import limits

log = logging.getLogger(__name__)

SCHEMA_HEAD = "0002"  # dbmaint.store.versioning.HEAD (a test checks they agree)

# Whether the store needs only inserts and updates: its version, runs of this host marked running, and
# whether anything is older than the retention period (what History.prune would delete).
STATE = """
SELECT
    (SELECT version_num FROM dbmaint_schema_version),
    (SELECT count(*) FROM dbmaint_runs WHERE host = ? AND status = 'running' AND pid IS NOT NULL),
    (SELECT count(*) FROM dbmaint_runs WHERE started_at < ?)
    + (SELECT count(*) FROM dbmaint_statements WHERE last_seen < ?)
    + (SELECT count(*) FROM dbmaint_health_samples WHERE sampled_at < ?)
"""
INSERT_RUN = """
INSERT INTO dbmaint_runs (job, database, status, started_at, host, scheduled_for, pid)
VALUES (?, ?, 'running', ?, ?, ?, ?)
"""
FINISH_RUN = "UPDATE dbmaint_runs SET status = ?, reason = ?, finished_at = ?, warnings = ?, server = ? WHERE id = ?"
INSERT_ACTION = """
INSERT INTO dbmaint_actions (run_id, object, kind, statement, reason, status, started_at, size_before)
VALUES (?, ?, ?, ?, ?, 'started', ?, ?)
"""
FINISH_ACTION = """
UPDATE dbmaint_actions SET status = ?, duration_s = ?, detail = ?, size_before = ?, size_after = ? WHERE id = ?
"""

# The data, not the store: trying again cannot help.
DATA_ERRORS = (sqlite3.IntegrityError, sqlite3.DataError, psycopg.IntegrityError, psycopg.DataError)

Record = Callable[["_Cursor"], Callable[[], None] | None]


class _Cursor(Protocol):
    def execute(self, statement: str, parameters: tuple[Any, ...] = ...) -> Any: ...
    def fetchone(self) -> Any: ...


class DirectHistory:
    """The run records of a vacuum pass, as ``History`` writes them. Thread-safe, as History is."""

    def __init__(self, url: str, conn: Any, sqlite: bool, conninfo: str = "") -> None:
        self.url = url
        self._conn = conn
        self._sqlite = sqlite
        self._conninfo = conninfo  # a PostgreSQL store's, to connect again
        self._lock = threading.Lock()
        self._pending: list[Record] = []
        self._held_logged = 0  # records held when that was last logged; 0 while none are

    # What a job calls on its history (dbmaint.jobs, dbmaint.maintenance.actions).

    def prune(self, retention_s: float) -> int:
        return 0  # nothing was past the retention when the store was opened: no other way here

    def close_abandoned_runs(self, host: str) -> int:
        return 0  # none of this host's runs was marked running when the store was opened

    def start_run(self, report: JobReport, host: str | None = None) -> int | None:
        values = (report.job, report.database, self._time(report.started_at), host,
                  self._time(report.scheduled_for), os.getpid())  # fmt: skip

        def insert(cursor: _Cursor) -> Callable[[], None]:
            run_id = self._insert(cursor, INSERT_RUN, values)
            return lambda: setattr(report, "run_id", run_id)

        report.recorded = True
        self._record(insert)
        return report.run_id

    def finish_run(self, report: JobReport) -> None:
        if not report.recorded:
            return
        values = (report.status, report.reason, self._time(report.finished_at or now()),
                  "\n".join(report.warnings) or None, report.server)  # fmt: skip

        def update(cursor: _Cursor) -> None:
            cursor.execute(self._sql(FINISH_RUN), (*values, report.run_id))

        self._record(update, final=True)

    def start_action(self, report: JobReport, action: Action) -> None:
        if not report.recorded:
            return
        values = (action.object, action.kind, action.sql, action.reason, self._time(now()), action.size_before)

        def insert(cursor: _Cursor) -> Callable[[], None]:
            action_id = self._insert(cursor, INSERT_ACTION, (report.run_id, *values))
            return lambda: setattr(action, "history_id", action_id)

        action.recorded = True
        self._record(insert)

    def finish_action(self, action: Action) -> None:
        if not action.recorded:
            return
        values = (action.status, action.duration_s, action.detail, action.size_before, action.size_after)

        def update(cursor: _Cursor) -> None:
            cursor.execute(self._sql(FINISH_ACTION), (*values, action.history_id))

        with self._lock:  # goes in with the next record: one commit per table, not two
            self._pending.append(update)

    def record_skipped(self, report: JobReport, action: Action) -> None:
        self.start_action(report, action)
        self.finish_action(action)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    # The store.

    def _record(self, record: Record, *, final: bool = False) -> None:
        """``record`` after those still waiting, in one transaction; a record the store refuses is tried alone,
        so that it does not take the others with it (as in dbmaint.store.base)."""
        with self._lock:
            self._pending.append(record)
            for delay in (*limits.WRITE_RETRY_DELAYS_S, None) if final else (None,):
                try:
                    self._flush()
                    self._held_logged = 0
                    return
                except (sqlite3.Error, psycopg.Error) as exc:
                    if final and isinstance(exc, DATA_ERRORS):  # held until then, as the store's base does
                        raise StateStoreDataError(
                            f"the state store {_masked(self.url)} refused this run's data: {db.first_line(str(exc))}"
                        ) from None
                    if final and (delay is None or _read_only(exc)):
                        raise StateStoreError(
                            f"cannot write to the state store {_masked(self.url)}: {db.first_line(str(exc))} "
                            f"({len(self._pending)} record(s) of this run not written)"
                        ) from None
                    if not final:  # it waits in memory and goes in with the next record
                        held = len(self._pending)
                        if not self._held_logged or held - self._held_logged >= limits.HELD_RECORDS_LOGGED_EVERY:
                            self._held_logged = held
                            log.warning(
                                "state store %s cannot take records now (%s): %d kept in memory, written with the next",
                                _masked(self.url), db.first_line(str(exc)), held,
                            )  # fmt: skip
                        return
                    time.sleep(delay or 0)

    def _flush(self) -> None:
        if len(self._pending) > 1:
            # The last table's end and the next one's start: one commit (a SQLite commit is several fsyncs).
            try:
                self._transaction(*self._pending)
            except DATA_ERRORS:
                pass  # one at a time below: the others still go in, and the one refused says so
            else:
                self._pending.clear()
                return
        while self._pending:
            self._transaction(self._pending[0])
            self._pending.pop(0)

    def _transaction(self, *records: Record) -> None:
        """The records in one transaction. What a record returns is called at once: a later record of the same
        transaction may need the id it sets; on a rollback the records stay pending and set it again."""
        if self._sqlite:
            cursor = self._conn.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                self._apply(cursor, records)
                cursor.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    cursor.execute("ROLLBACK")
                raise
            return
        if self._conn.closed or self._conn.broken:
            # A store restarted, failed over, or ended an idle session while a long VACUUM ran: connect again,
            # as History's pool does, rather than hold every later record against a dead connection.
            self._conn = psycopg.connect(self._conninfo, autocommit=True, connect_timeout=10)
        with self._conn.transaction(), self._conn.cursor() as cursor:
            self._apply(cursor, records)

    @staticmethod
    def _apply(cursor: _Cursor, records: tuple[Record, ...]) -> None:
        for record in records:
            callback = record(cursor)
            if callback is not None:
                callback()

    def _insert(self, cursor: _Cursor, statement: str, values: tuple[Any, ...]) -> int:
        if self._sqlite:
            cursor.execute(statement, values)
            return int(cursor.lastrowid)  # type: ignore[attr-defined]
        cursor.execute(self._sql(statement) + " RETURNING id", values)
        return int(cursor.fetchone()[0])

    def _sql(self, statement: str) -> str:
        return statement if self._sqlite else statement.replace("?", "%s")

    def _time(self, value: datetime | None) -> Any:
        """A time as SQLAlchemy stores it: SQLite keeps UTC as text without an offset, PostgreSQL a timestamptz."""
        if value is None or not self._sqlite:
            return value
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def open_direct(url: str, host: str, retention_s: float) -> DirectHistory | None:
    """The store opened for a vacuum pass's records alone; None when it needs ``History`` (see above)."""
    sqlite_path = _sqlite_file(url)
    cutoff = now() - timedelta(seconds=retention_s)
    try:
        if sqlite_path is not None:
            if not sqlite_path.is_file():
                return None
            conn: Any = sqlite3.connect(
                sqlite_path, timeout=limits.SQLITE_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            direct = DirectHistory(url, conn, sqlite=True)
        elif (conninfo := _postgresql_conninfo(url)) is not None:
            conn = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
            direct = DirectHistory(url, conn, sqlite=False, conninfo=conninfo)
        else:
            return None
    except Exception:  # History says what is wrong with the store, in its words
        return None
    try:
        cursor = conn.cursor()
        cursor.execute(direct._sql(STATE), (host, *(direct._time(cutoff),) * 3))
        version, running, expired = cursor.fetchone()
    except Exception:  # a table missing: a store of another version
        conn.close()
        return None
    if version != SCHEMA_HEAD or running or expired:
        conn.close()
        return None
    return direct


def _sqlite_file(url: str) -> Path | None:
    """The file of a ``sqlite:///path`` URL (the driver's own part, ``+pysqlite``, allowed)."""
    scheme, _, rest = url.partition(":///")
    if scheme not in ("sqlite", "sqlite+pysqlite") or not rest or "?" in rest or rest == ":memory:":
        return None
    return Path(unquote(rest)).expanduser()


def _postgresql_conninfo(url: str) -> str | None:
    """A ``postgresql://`` URL as libpq takes it (SQLAlchemy's ``+psycopg`` driver part removed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres", "postgresql+psycopg"):
        return None
    return "postgresql" + url[len(parts.scheme) :]


def _read_only(exc: BaseException) -> bool:
    """A store that refuses writes for good (a read-only disk, a PostgreSQL store now a standby)."""
    return getattr(exc, "sqlite_errorname", None) == "SQLITE_READONLY" or getattr(exc, "sqlstate", None) == "25006"


def _masked(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)
