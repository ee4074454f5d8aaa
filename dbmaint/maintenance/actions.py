"""Carrying out planned actions safely (docs/contract.md section 4).

Every statement runs on an autocommit connection, one statement at a time, with lock_timeout and a
statement_timeout that ends with the maintenance window (plus a grace). A lock that is not available
is retried a bounded number of times, then the action is skipped with the reason; dbmaint never
cancels or terminates another session. Each action is recorded as started before it is sent.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import errors as pgerrors

from dbmaint.config import SafetyConfig
from dbmaint.model import Action, JobReport
from dbmaint.pg import collect, db, stopping
from dbmaint.store.recorder import RunRecorder

log = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[Any, ...]]
Hook = Callable[[Connection, Action], None]

# Advisory lock namespace: the first key says "dbmaint", the second names the job. Advisory locks are
# per database, so this also makes the lock per database.
_LOCK_NAMESPACE = 0x64626D74  # "dbmt"
_LOCK_NOT_AVAILABLE = "55P03"
_INSUFFICIENT_PRIVILEGE = "42501"

# The server's load is read again before an action at most this often: a pass of many small tables pays
# no query per table for it, and no action starts more than this long after the server became busy.
LOAD_CHECK_INTERVAL_S = 5.0
# A statement_timeout set on a connection is set again once it is this old: each statement ends at most
# this long after the window's end plus its grace, without a SET before every statement of a quick pass.
TIMEOUT_REFRESH_S = 1.0


def job_lock_key(job: str) -> tuple[int, int]:
    return _LOCK_NAMESPACE, zlib.crc32(job.encode()) & 0x7FFFFFFF


def try_job_lock(conn: Connection, job: str) -> bool:
    """A session-level advisory lock, tried and never waited for: one runner per database and job."""
    key1, key2 = job_lock_key(job)
    return bool(db.fetch_value(conn, "SELECT pg_catalog.pg_try_advisory_lock(%s, %s)", (key1, key2)))


def load_reason(conn: Connection, safety: SafetyConfig) -> str | None:
    """Why heavy work should wait now, or None when the server is quiet enough."""
    load = collect.server_load(conn)
    if load.active_connections > safety.max_active_connections:
        return (
            f"deferred: {load.active_connections} active connections "
            f"(limit {safety.max_active_connections}, safety.max_active_connections)"
        )
    if load.replication_lag_s is not None and load.replication_lag_s > safety.max_replication_lag:
        return (
            f"deferred: replication replay lag {load.replication_lag_s:.0f} s "
            f"(limit {safety.max_replication_lag:.0f} s, safety.max_replication_lag)"
        )
    return None


@dataclass
class Window:
    """The maintenance window: nothing starts after ``end``; statements may run ``grace`` past it."""

    end: float
    grace: float

    @classmethod
    def starting_now(cls, length_s: float, grace_s: float) -> Window:
        return cls(end=time.monotonic() + length_s, grace=grace_s)

    @property
    def open(self) -> bool:
        return time.monotonic() < self.end

    def statement_timeout(self) -> float:
        return max(0.001, self.end - time.monotonic() + self.grace)


@dataclass
class _Outcome:
    locked: bool = False


@dataclass
class Executor:
    """Runs a job's actions over one or more autocommit connections, in the order given."""

    target: db.Target
    safety: SafetyConfig
    report: JobReport
    history: RunRecorder
    window: Window
    retries: int = 2
    retry_delay: float = 15.0
    jobs: int = 1
    before: Hook | None = None
    after: Hook | None = None
    _stop_reason: str | None = field(default=None, init=False)
    _stop_lock: threading.Lock = field(default_factory=threading.Lock, init=False)
    _load_read_at: float = field(default=float("-inf"), init=False)  # the first action reads it
    _timeout_set_at: dict[int, float] = field(default_factory=dict, init=False)  # by id() of the connection

    def run(self, conn: Connection, actions: Sequence[Action]) -> None:
        try:
            self._run(conn, actions)
        finally:
            if self._timeout_set_at.pop(id(conn), None) is not None and not conn.closed:
                with contextlib.suppress(psycopg.Error):
                    db.set_settings(conn, {"statement_timeout": "0"})  # the job's own queries after the pass

    def _run(self, conn: Connection, actions: Sequence[Action]) -> None:
        pending = list(actions)
        for attempt in range(self.retries + 1):
            locked = self._run_pass(conn, pending)
            if not locked:
                return
            last_try = attempt == self.retries
            if last_try or time.monotonic() + self.retry_delay >= self.window.end:
                break
            log.info("%d object(s) locked by other sessions; retrying in %.0f s", len(locked), self.retry_delay)
            if stopping.wait(self.retry_delay):
                break
            pending = locked
        for action in locked:
            action.status = "skipped"
            action.detail = (
                f"lock not available after {action.attempts} attempt(s) (lock_timeout "
                f"{self.safety.lock_timeout:g} s): another session holds a conflicting lock"
            )
            self.history.finish_action(action)
            log.warning("%s: skipped, %s", action.object, action.detail)

    def _run_pass(self, conn: Connection, actions: Sequence[Action]) -> list[Action]:
        locked: list[Action] = []
        if self.jobs <= 1 or len(actions) <= 1:
            for action in actions:
                if self._one(conn, action).locked:
                    locked.append(action)
            return locked
        work: queue.Queue[Action] = queue.Queue()
        for action in actions:
            work.put(action)
        result_lock = threading.Lock()
        failures: list[BaseException] = []

        def worker(worker_conn: Connection) -> None:
            try:
                while True:
                    try:
                        action = work.get_nowait()
                    except queue.Empty:
                        return
                    if self._one(worker_conn, action).locked:
                        with result_lock:
                            locked.append(action)
            except BaseException as exc:  # surfaced in the calling thread below
                failures.append(exc)

        extra = [db.connect(self.target, self.safety) for _ in range(min(self.jobs, len(actions)) - 1)]
        threads = [threading.Thread(target=worker, args=(c,), daemon=True) for c in [conn, *extra]]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for c in extra:
                self._timeout_set_at.pop(id(c), None)  # a later connection may get the same id()
                c.close()
        if failures:
            raise failures[0]
        order = {id(a): i for i, a in enumerate(actions)}
        return sorted(locked, key=lambda a: order[id(a)])

    def _stop(self, conn: Connection) -> str | None:
        """Why nothing more should start: the window closed, or the server is too busy."""
        if stopping.requested():  # not cached: it is the one reason that can still come after a pass began
            return f"not started: {stopping.reason()}"
        with self._stop_lock:
            if self._stop_reason is None:
                if not self.window.open:
                    self._stop_reason = "maintenance window closed before it could start"
                elif time.monotonic() - self._load_read_at >= LOAD_CHECK_INTERVAL_S:
                    self._stop_reason = load_reason(conn, self.safety)
                    self._load_read_at = time.monotonic()
            return self._stop_reason

    def _one(self, conn: Connection, action: Action) -> _Outcome:
        reason = self._stop(conn)
        if reason is not None:
            action.status = "skipped"
            action.detail = reason
            if not action.recorded:
                self.history.record_skipped(self.report, action)
            else:
                self.history.finish_action(action)
            return _Outcome()
        if self.before is not None:
            self.before(conn, action)
        if not action.recorded:
            self.history.start_action(self.report, action)
        action.attempts += 1
        outcome = self._execute(conn, action)
        if outcome.locked:
            return outcome
        if self.after is not None:
            self.after(conn, action)
        self.history.finish_action(action)
        level = logging.INFO if action.status == "done" else logging.WARNING
        detail = f" ({action.detail})" if action.detail else ""
        log.log(level, "%s: %s %s%s", action.object, action.status, action.sql, detail)
        return outcome

    def _execute(self, conn: Connection, action: Action) -> _Outcome:
        notices: list[tuple[str | None, str | None]] = []

        def on_notice(diag: psycopg.errors.Diagnostic) -> None:
            # Read the fields now: the Diagnostic is only valid during the callback.
            notices.append((diag.sqlstate, diag.message_primary))

        conn.add_notice_handler(on_notice)
        started = time.monotonic()
        try:
            self._set_timeout(conn)
            conn.execute(action.statement)
        except pgerrors.LockNotAvailable:
            return _Outcome(locked=True)
        except pgerrors.QueryCanceled as exc:
            if stopping.requested():  # dbmaint cancelled its own statement on the way out
                action.status, action.detail = "interrupted", f"cancelled: {stopping.reason()}"
                if action.kind == "reindex":
                    action.detail += " (the next reindex run drops the invalid _ccnew index this leaves)"
            else:
                action.status = "failed"
                action.detail = (
                    "cancelled: the maintenance window closed (statement_timeout)"
                    if "statement timeout" in str(exc)
                    else f"cancelled by another session: {db.first_line(str(exc))}"
                )
        except pgerrors.InsufficientPrivilege as exc:
            action.status, action.detail = "skipped", f"insufficient privilege: {db.first_line(str(exc))}"
        except (pgerrors.UndefinedTable, pgerrors.UndefinedObject) as exc:
            action.status, action.detail = "skipped", f"no longer exists: {db.first_line(str(exc))}"
        except psycopg.OperationalError as exc:
            action.status, action.detail = "failed", f"connection problem: {db.first_line(str(exc))}"
            raise
        except psycopg.Error as exc:
            action.status, action.detail = "failed", db.first_line(str(exc))
        else:
            action.status = "done"
            for sqlstate, message in notices:
                if sqlstate == _LOCK_NOT_AVAILABLE:  # VACUUM/ANALYZE (SKIP_LOCKED) skipped the table
                    return _Outcome(locked=True)
                if sqlstate == _INSUFFICIENT_PRIVILEGE:
                    action.status = "skipped"
                    action.detail = f"insufficient privilege: {message}"
        finally:
            action.duration_s = time.monotonic() - started
            conn.remove_notice_handler(on_notice)
        return _Outcome()

    def _set_timeout(self, conn: Connection) -> None:
        """The window's statement_timeout, set again only once the last one set is TIMEOUT_REFRESH_S old."""
        set_at = self._timeout_set_at.get(id(conn))
        if set_at is not None and time.monotonic() - set_at < TIMEOUT_REFRESH_S:
            return
        now = time.monotonic()
        db.set_settings(conn, {"statement_timeout": str(round(self.window.statement_timeout() * 1000))})
        self._timeout_set_at[id(conn)] = now
