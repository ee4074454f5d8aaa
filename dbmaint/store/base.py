"""The state store: every run and every action, recorded before it acts (SQLAlchemy; SQLite or PostgreSQL).

A store that is busy (another writer holds SQLite's lock) or briefly away does not stop maintenance: the
records of a run are written in order, and while the store cannot take them they wait in memory and go
in with the next write that succeeds; only a run's end insists (``StoreBusy`` retried, then
``StateStoreError``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DataError, IntegrityError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from dbmaint.errors import ConfigError, StateStoreDataError, StateStoreError
from dbmaint.store import limits, versioning
from dbmaint.store.schema import runs

log = logging.getLogger(__name__)


class Store:
    """The connection to the state store: writes in order, retried, held in memory while it is away."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        # A run's records not yet written (the store was busy or away), oldest first.
        self._pending: list[Callable[[sa.Connection], Callable[[], None] | None]] = []
        self._abandoned_closed = False
        # The service's mode: a run's last record the store refuses while it still answers reads waits in
        # memory for the next write, instead of failing (a command by hand fails and says so).
        self.hold_refused_writes = False
        try:
            parsed = make_url(url)
            sqlite_file = parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:")
            if sqlite_file:
                Path(str(parsed.database)).expanduser().parent.mkdir(parents=True, exist_ok=True)
            if parsed.drivername in ("postgresql", "postgres"):
                parsed = parsed.set(drivername="postgresql+psycopg")
            # pre_ping: a PostgreSQL store that restarted costs a reconnect, not a failed write.
            options: dict[str, Any] = {"pool_pre_ping": True}
            if parsed.drivername.startswith("sqlite"):
                options = {"connect_args": {"timeout": limits.SQLITE_BUSY_TIMEOUT_S}}
            if sqlite_file:
                # A SQLite file opened per transaction (microseconds): an open handle between them would
                # keep the service's disk from being remounted read-only, and hold a file a DBA removed.
                # (An in-memory store lives only as long as its one connection: it keeps the default pool.)
                options["poolclass"] = NullPool
            self.engine = sa.create_engine(parsed, future=True, **options)
            self._with_retries(self._create_tables, "open")
        except (ArgumentError, ValueError) as exc:
            raise ConfigError(f"invalid state store URL {_masked(url)}: {exc}") from None
        except (ImportError, NoSuchModuleError):  # mysql://, oracle://: no driver, and not supported anyway
            raise ConfigError(
                f"unsupported state store URL {_masked(url)}: use sqlite:///PATH or postgresql://..."
            ) from None
        except (SQLAlchemyError, OSError) as exc:
            raise StateStoreError(f"cannot open the state store {_masked(url)}: {_short(exc)}") from None

    def _write(self, statement: Any) -> Any:
        with self._lock:
            return self._with_retries(lambda: self._execute(statement))

    def _execute(self, statement: Any) -> Any:
        with self.engine.begin() as conn:
            return conn.execute(statement)

    def _create_tables(self) -> None:
        versioning.ensure_current(self.engine)

    def _with_retries(self, work: Callable[[], Any], what: str = "write to") -> Any:
        for delay in (*limits.WRITE_RETRY_DELAYS_S, None):
            try:
                return work()
            except (IntegrityError, DataError) as exc:  # the data, not the store: trying again cannot help
                raise _refused(self.url, exc) from None
            except SQLAlchemyError as exc:
                if delay is None or _read_only(exc):
                    raise StateStoreError(f"cannot {what} the state store {_masked(self.url)}: {_short(exc)}") from None
                log.warning("state store %s: %s; trying again in %g s", _masked(self.url), _short(exc), delay)
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _record(self, op: Callable[[sa.Connection], Callable[[], None] | None], *, final: bool = False) -> None:
        """Write one of a run's records after those still waiting, each in a transaction of its own.

        ``op`` runs in the transaction and may return what to do once it committed (keep an inserted id).
        When the store cannot take it (busy past its timeout, away), it waits in memory with the others
        and goes in with the next record; a run's last record (``final``) is retried, then fails.
        """
        with self._lock:
            self._pending.append(op)
            try:
                (self._with_retries if final else _once)(self._flush_pending)
            except (SQLAlchemyError, StateStoreError) as exc:
                holding = self.hold_refused_writes and len(self._pending) <= limits.MAX_HELD_RECORDS
                if final and holding and self.answers_reads():
                    log.error(
                        "state store %s answers but refuses writes (%s): %d record(s) kept in memory, written "
                        "as soon as it takes them", _masked(self.url), _short(exc), len(self._pending),
                    )  # fmt: skip
                    return
                if final:
                    raise StateStoreError(
                        f"cannot write to the state store {_masked(self.url)}: {_short(exc)} "
                        f"({len(self._pending)} record(s) of this run not written)"
                    ) from None
                held = len(self._pending)
                if held == 1 or held % limits.HELD_RECORDS_LOGGED_EVERY == 0:
                    log.warning(
                        "state store %s cannot take records now (%s): %d kept in memory, written with the next",
                        _masked(self.url), _short(exc), held,
                    )  # fmt: skip

    def answers_reads(self) -> bool:
        """Whether the store is there at all: a store that reads but refuses writes (a read-only or full
        disk) may take them again, one that does not answer is lost."""
        try:
            with self.engine.connect() as conn:
                conn.execute(sa.select(runs.c.id).limit(1)).all()
        except SQLAlchemyError:
            return False
        return True

    @property
    def held_records(self) -> int:
        return len(self._pending)

    def settle(self) -> None:
        """Every record still waiting in memory is written now (retried, then ``StateStoreError``)."""
        self._record(lambda conn: None, final=True)

    def _flush_pending(self) -> None:
        while self._pending:
            with self.engine.begin() as conn:
                committed = self._pending[0](conn)
            self._pending.pop(0)
            if committed is not None:
                committed()

    def _read(self, query: Any) -> list[Any]:
        try:
            with self.engine.connect() as conn:
                return list(conn.execute(query).all())
        except SQLAlchemyError as exc:
            raise StateStoreError(f"cannot read the state store {_masked(self.url)}: {_short(exc)}") from None

    def _housekeeping(self, work: Callable[[], Any], skipped: str) -> Any:
        """Upkeep the run does not depend on: a service whose store refuses writes but answers goes on
        without it (the next run does it), anything else raises."""
        try:
            return work()
        except StateStoreError as exc:
            if not (self.hold_refused_writes and self.answers_reads()):
                raise
            log.warning("%s: %s", skipped, exc)
            return None

    def close(self) -> None:
        self.engine.dispose()


def _once(work: Callable[[], Any]) -> Any:
    return work()


def masked_url(url: str) -> str:
    """The state store URL with its password hidden."""
    return _masked(url)


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return "<unparseable URL>"


def _refused(url: str, exc: BaseException) -> StateStoreDataError:
    return StateStoreDataError(f"the state store {_masked(url)} refused this run's data: {_short(exc)}")


def _read_only(exc: SQLAlchemyError) -> bool:
    """A store that refuses writes for good (a read-only disk, a PostgreSQL store now a standby): waiting
    seconds for it, as for a busy one, cannot help."""
    original = getattr(exc, "orig", None)
    return getattr(original, "sqlite_errorname", None) == "SQLITE_READONLY" or (
        getattr(original, "sqlstate", None) == "25006"  # read_only_sql_transaction
    )


def _short(exc: BaseException) -> str:
    return str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
