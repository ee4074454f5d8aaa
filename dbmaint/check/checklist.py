"""`dbmaint check`: the database checklist (docs/contract.md section 5), evaluated live.

Each item (``dbmaint.check.items``) says pass, warn, fail or unknown (the evidence could not be had: an
extension is missing, a privilege), with the evidence in one sentence and the fix. This module reads what
the items judge, each source once, and runs them in their order; a source that cannot be read makes the
items that need it unknown, never the whole checklist. A deploy pipeline gates on the exit status: 1 when
any item fails.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dbmaint import model
from dbmaint.advisor import recommend, workload
from dbmaint.check.item import CheckItem, CheckReport, Found, Item, Query
from dbmaint.check.items import ITEMS
from dbmaint.check.items.unused_indexes import StandbyIndexScan, StandbyIndexScans, StandbyRead
from dbmaint.config import Config
from dbmaint.errors import ConfigError, ConnectError, DatabaseError
from dbmaint.pg import collect, db
from dbmaint.store.history import History

Connection = psycopg.Connection[tuple[Any, ...]]
log = logging.getLogger(__name__)


@dataclass
class Reader:
    """What the sources are read from: the checked database, its configuration and the state store."""

    conn: Connection
    database: str
    config: Config
    history: History
    advice: recommend.AdviceReport | None = None  # when the caller has just run the advisor
    values: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def read(self, source: Query | str) -> None:
        name = source.name if isinstance(source, Query) else source
        if name in self.values or name in self.failures:
            return
        try:
            if isinstance(source, Query):
                self.values[name] = db.fetch(self.conn, source.name, source.row)
            else:
                self.values[name] = SOURCES[name](self)
        except (DatabaseError, psycopg.Error) as exc:
            self.failures[name] = db.first_line(str(exc))


def _advice(reader: Reader) -> recommend.AdviceReport:
    if reader.advice is None:
        reader.advice = recommend.advise(reader.conn, reader.database, reader.config, recommend.Sources())
    return reader.advice


def _last_vacuum_run(reader: Reader) -> Any:
    runs = reader.history.recent_runs(limit=1, job="vacuum", database=reader.database)
    return runs[0] if runs else None


def _autovacuum_switches(reader: Reader) -> dict[str, Any]:
    return {
        name: db.fetch_value(reader.conn, "SELECT pg_catalog.current_setting(%s)", (name,))
        for name in ("autovacuum", "track_counts")
    }


STANDBY_STATEMENT_TIMEOUT = 30.0  # seconds: reading a standby's counters takes milliseconds


def standby_index_scans(conn: Connection, database: str, config: Config) -> StandbyIndexScans:
    """Index scans on each standby of ``database``: the ``standbys`` of the ``[[databases]]`` entry of its name
    (none for a name the configuration does not have, as with a --dsn alone). A standby's queries use the
    primary's indexes but count their scans there. A standby that cannot be read, or is not a copy of this
    database, is named with the reason: never taken for one where nothing is scanned."""
    entry = next((d for d in config.databases if d.name == database), None)
    read: list[StandbyRead] = []
    unread: dict[str, str] = {}
    for dsn in entry.standbys if entry else ():
        shown = db.mask_dsn(dsn)
        try:
            read.append(_read_standby(conn, config, db.Target(database, dsn), shown))
        except ConnectError as exc:  # its message names the DSN again: the evidence names the standby already
            unread[shown] = "could not connect: " + str(exc).split(f"({shown}): ", 1)[-1]
        except (ConfigError, DatabaseError, psycopg.Error) as exc:
            unread[shown] = db.first_line(str(exc))
    return StandbyIndexScans(tuple(read), unread)


def _read_standby(primary: Connection, config: Config, target: db.Target, shown: str) -> StandbyRead:
    with db.connection(target, config.safety, statement_timeout=STANDBY_STATEMENT_TIMEOUT) as conn:
        db.set_settings(conn, {"default_transaction_read_only": "on"})  # read-only, whatever the DSN reaches
        # Scans are matched by index name: they are the primary's only on a copy of this very database.
        if not db.is_in_recovery(conn):  # a failover, or a "replica" name that falls back to a primary
            raise DatabaseError("not a standby: the server is not in recovery")
        ours, theirs = db.server_identity(primary), db.server_identity(conn)
        if ours is not None and theirs is not None and ours != theirs:
            raise DatabaseError(f"not a standby of this server (system identifier {theirs}, this server's {ours})")
        here, there = (db.fetch_value(c, "SELECT pg_catalog.current_database()") for c in (primary, conn))
        if here != there:
            raise DatabaseError(f"the DSN reaches database {there!r}, not {here!r}")
        return StandbyRead.from_rows(shown, db.fetch(conn, "check_standby_index_scans", StandbyIndexScan))


# The sources items name as strings: what is not one query's rows.
SOURCES: dict[str, Callable[[Reader], Any]] = {
    "advice": _advice,
    "statements": lambda reader: workload.from_pg_stat_statements(reader.conn, limit=5000),
    "server_load": lambda reader: collect.server_load(reader.conn),
    "vacuum_tables": lambda reader: collect.vacuum_tables(reader.conn),
    "autovacuum_settings": lambda reader: collect.autovacuum_settings(reader.conn),
    "autovacuum_switches": _autovacuum_switches,
    "last_vacuum_run": _last_vacuum_run,
    "standby_index_scans": lambda reader: standby_index_scans(reader.conn, reader.database, reader.config),
    "stats_window": lambda reader: collect.stats_window(reader.conn),
    "now": lambda reader: model.now(),
}


def run(
    conn: Connection, database: str, config: Config, history: History, advice: recommend.AdviceReport | None = None
) -> CheckReport:
    """The checklist; ``advice`` when the caller has just run the advisor (it is not run twice)."""
    reader = Reader(conn, database, config, history, advice)
    return CheckReport(database, tuple(check_item(reader, item) for item in ITEMS))


def _unread(source: str, reason: str) -> str:
    """A source's failure, said once: db.fetch's errors already begin "could not read <query>"."""
    said = f"could not read {source.replace('_', ' ')}"
    return reason if reason.startswith(said) else f"{said}: {reason}"


def check_item(reader: Reader, item: CheckItem) -> Item:
    for source in item.sources:
        reader.read(source)
    failed = [name for name in item.source_names() if name in reader.failures]
    if failed:
        reasons = "; ".join(_unread(name, reader.failures[name]) for name in failed)
        return Item(item.name, "unknown", reasons)
    try:
        return item.judge(Found(reader.database, reader.config, reader.values))
    except Exception as exc:  # one item's surprise is that item's unknown, not the checklist's end
        log.debug("check item %s failed", item.name, exc_info=True)
        return Item(item.name, "unknown", f"dbmaint could not judge it: {type(exc).__name__}: {exc}")
