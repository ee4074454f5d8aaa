"""Sessions that hold the database back: idle in an open transaction, running for long, or waiting on a lock.

One query (dbmaint/pg/queries/check_sessions.sql) reads every session of the cluster; the items judge those
of the checked database. Since PostgreSQL 14 a session holds back vacuum's horizon in its own database only
(and on the shared catalogs everywhere), and it locks its own database's objects: a session elsewhere is
mentioned, and judged when its own database is checked. A blocking tree shows its sessions wherever they are,
since a blocker may sit in another database (on a shared catalog).

dbmaint never cancels or ends another session itself: the fixes say what a DBA would run.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, register
from dbmaint.sql.identifiers import quote_ident
from dbmaint.units import format_count, format_duration


@dataclass(frozen=True)
class SessionRow:
    """A session, as pg_stat_activity and pg_locks show it (dbmaint/pg/queries/check_sessions.sql)."""

    pid: int
    database: str | None
    in_database: bool  # a session of the checked database
    user_name: str | None
    application_name: str | None
    client: str | None  # its address, 'local' over a Unix socket
    backend_type: str | None  # NULL (like state and the times) for another role's session without pg_monitor
    state: str | None
    query: str | None  # its statement, or its last one when idle; HIDDEN without pg_monitor
    state_s: float | None  # seconds in its current state
    xact_s: float | None  # seconds since its transaction began
    query_s: float | None  # seconds since its (last) statement began
    xmin_age: int | None  # age of the transaction ID or snapshot it holds: it holds back vacuum
    relation_locks: int  # relation locks it holds
    waiting: bool  # waits for a lock
    wait_s: float | None  # how long it has waited
    blocked_by: list[int]  # who it waits for (pg_blocking_pids: 0 is a prepared transaction)

    @property
    def hidden(self) -> bool:
        return self.query == HIDDEN


QUERY = Query("check_sessions", SessionRow)
HIDDEN = "<insufficient privilege>"  # another role's query, without pg_monitor (pg_read_all_stats)
IDLE_IN_TRANSACTION = ("idle in transaction", "idle in transaction (aborted)")
# Active for as long as they live, by design; a parallel worker's statement is its leader's.
ALWAYS_ACTIVE = ("autovacuum worker", "walsender", "parallel worker", "logical replication worker")
OWN_APPLICATION = "dbmaint"  # dbmaint's sessions' application_name starts with it
QUERY_CHARS = 100
SHOWN = 3  # sessions, or blocking trees, described in the evidence
TREE_CHILDREN = 5  # sessions shown blocked by one session
TREE_DEPTH = 8
NEVER_ENDS = "dbmaint never cancels or ends another session itself"
MONITOR_FIX = "GRANT pg_monitor TO the role dbmaint connects as, so that it sees every session's state"


@register
class IdleInTransaction(CheckItem):
    """No session of the database has been idle in an open transaction (``idle in transaction``, or
    ``(aborted)`` after an error) for longer than ``check.idle_in_transaction`` (5 min).

    Such a session keeps the locks it took, which queue every DDL statement on those tables and everything
    behind it, and while it holds a transaction ID or a snapshot, vacuum cannot remove any row deleted
    since: tables and indexes bloat. It is almost always an application that forgot to commit, or a
    connection pool that checked a connection in with its transaction still open.
    """

    name = "idle_in_transaction"
    order = 210
    sources = (QUERY,)

    def judge(self, found: Found) -> Item:
        return idle_in_transaction(found.rows(QUERY), found.config.check.idle_in_transaction)


@register
class LongRunning(CheckItem):
    """No statement of the database has been running for longer than ``check.long_running`` (1 h): a
    warning. Autovacuum workers, walsenders, dbmaint's own sessions, and statements waiting on a lock (the
    blocking_locks item reports those, with who blocks them) do not count.

    A long statement holds its snapshot, and so back vacuum, for as long as it runs, and keeps its locks;
    a report or a migration that runs for hours is worth knowing of even when it is intended.
    """

    name = "long_running"
    order = 220
    sources = (QUERY,)

    def judge(self, found: Found) -> Item:
        return long_running(found.rows(QUERY), found.config.check.long_running)


@register
class BlockingLocks(CheckItem):
    """No session of the database has waited on a lock for longer than ``check.lock_wait`` (1 min); when
    one has, the evidence is the blocking tree: who blocks whom (``pg_blocking_pids``), for how long, running
    what.

    The usual tree is a transaction left open holding a lock, an ALTER TABLE waiting for it behind, and
    every query on that table waiting behind the ALTER TABLE: one idle session stops the application.
    Lock waits are seen without pg_monitor too (pg_locks shows every role's); only the others' statements
    are hidden then.
    """

    name = "blocking_locks"
    order = 230
    sources = (QUERY,)

    def judge(self, found: Found) -> Item:
        return blocking_locks(found.rows(QUERY), found.config.check.lock_wait)


# --- idle in transaction, long running ------------------------------------------------------------------------


def idle_in_transaction(rows: Sequence[SessionRow], threshold: float) -> Item:
    over = sorted(
        (r for r in rows if r.state in IDLE_IN_TRANSACTION and (r.state_s or 0) > threshold),
        key=lambda r: -(r.state_s or 0),
    )
    here = [r for r in over if r.in_database]
    elsewhere = elsewhere_note([r for r in over if not r.in_database])
    limit = setting_duration(threshold)
    if here:
        shown = "; ".join(describe(r, held=True) for r in here[:SHOWN]) + more(here)
        prevent = alter_roles(here, "idle_in_transaction_session_timeout", limit)
        return Item(
            "idle_in_transaction", "fail",
            f"{len(here)} session(s) idle in transaction for longer than {limit}: {shown}{elsewhere}",
            f"{calls('pg_terminate_backend', here)} ends {them(here)}, rolling back the transaction(s) ({NEVER_ENDS}); "
            f"{prevent} ends such sessions from then on; and find the application's code path that does not commit",
        )  # fmt: skip
    passed = f"no session idle in transaction for longer than {limit}"
    return unseen(rows, "idle_in_transaction", passed) or Item("idle_in_transaction", "pass", passed + elsewhere)


def long_running(rows: Sequence[SessionRow], threshold: float) -> Item:
    over = sorted(
        (
            r
            for r in rows
            if r.state == "active"
            and not r.waiting  # a lock wait is blocking_locks' to report, with who blocks it
            and (r.query_s or 0) > threshold
            and r.backend_type not in ALWAYS_ACTIVE
            and not (r.application_name or "").startswith(OWN_APPLICATION)
        ),
        key=lambda r: -(r.query_s or 0),
    )
    here = [r for r in over if r.in_database]
    elsewhere = elsewhere_note([r for r in over if not r.in_database])
    limit = setting_duration(threshold)
    if here:
        shown = "; ".join(describe(r) for r in here[:SHOWN]) + more(here)
        prevent = alter_roles(here, "statement_timeout", limit)
        return Item(
            "long_running", "warn",
            f"{len(here)} statement(s) running for longer than {limit}: {shown}{elsewhere}",
            f"if it should not run this long: {calls('pg_cancel_backend', here)} cancels {them(here)} "
            f"(pg_terminate_backend ends the session; {NEVER_ENDS}); {prevent} bounds them from then on",
        )  # fmt: skip
    passed = f"no statement running for longer than {limit}"
    return unseen(rows, "long_running", passed) or Item("long_running", "pass", passed + elsewhere)


def unseen(rows: Sequence[SessionRow], name: str, passed: str) -> Item | None:
    """Unknown rather than pass when other roles' sessions of the database cannot be seen (no pg_monitor):
    their state and times are hidden. (One without a user is autovacuum's.)"""
    hidden = [r for r in rows if r.in_database and r.hidden and r.user_name is not None]
    if not hidden:
        return None
    roles = ", ".join(sorted({r.user_name or "" for r in hidden}))
    return Item(
        name, "unknown",
        f"{passed} among the sessions this role may see; {len(hidden)} session(s) of other roles ({roles}) "
        "show neither state nor statement",
        MONITOR_FIX,
    )  # fmt: skip


# --- blocking locks ---------------------------------------------------------------------------------------------


def blocking_locks(rows: Sequence[SessionRow], threshold: float) -> Item:
    limit = setting_duration(threshold)
    waiting = [r for r in rows if r.waiting and r.in_database]
    long = sorted((r for r in waiting if (r.wait_s or 0) > threshold), key=lambda r: -(r.wait_s or 0))
    if not long:
        now = f" ({len(waiting)} waiting now, for less)" if waiting else ""
        return Item("blocking_locks", "pass", f"no session has waited on a lock for longer than {limit}{now}")
    tree = Tree(rows)
    roots = tree.roots(r.pid for r in long)
    rendered = tree.render(roots[:SHOWN])
    others = f". And {len(roots) - SHOWN} more blocking tree(s)" if len(roots) > SHOWN else ""
    # Ending a session that waits for nothing frees its tree; a cycle, the deadlock detector breaks itself.
    blockers = [pid for pid in roots if pid > 0 and pid not in tree.blockers]
    fixes = []
    if blockers:
        ends = ", ".join(f"pg_catalog.pg_terminate_backend({pid})" for pid in blockers[:SHOWN])
        fixes.append(f"SELECT {ends} ends the blocking session(s) and rolls their transactions back ({NEVER_ENDS})")
    if 0 in roots:
        fixes.append("a prepared transaction blocks: COMMIT PREPARED or ROLLBACK PREPARED it (pg_prepared_xacts)")
    fixes.append(
        "to prevent it: idle_in_transaction_session_timeout and statement_timeout bound what holds a lock, and "
        "SET lock_timeout = '5s' before DDL (retried) keeps an ALTER TABLE from queueing every query behind it"
    )
    return Item(
        "blocking_locks", "fail",
        f"{len(long)} session(s) waiting on a lock for longer than {limit}: {'. '.join(rendered)}{others}",
        "; ".join(fixes),
    )  # fmt: skip


class Tree:
    """Who blocks whom: edges from pg_blocking_pids, which may hold cycles (a deadlock the detector has not
    yet broken, or sessions read at slightly different moments) and a session blocked by several."""

    def __init__(self, rows: Sequence[SessionRow]) -> None:
        self.sessions: Mapping[int, SessionRow] = {r.pid: r for r in rows}
        # A parallel query's leader is listed once per worker: each blocker once.
        self.blockers: dict[int, list[int]] = {r.pid: list(dict.fromkeys(r.blocked_by)) for r in rows if r.waiting}
        self.blocked: dict[int, list[int]] = {}
        for pid in sorted(self.blockers, key=lambda p: -(self.sessions[p].wait_s or 0)):
            for blocker in self.blockers[pid]:
                self.blocked.setdefault(blocker, []).append(pid)

    def roots(self, waiters: Iterable[int]) -> list[int]:
        """Where the trees of these waiters start: the sessions blocking them that wait for nothing, in the
        order of the waiters; a waiter in a cycle that nothing outside blocks starts its own."""
        found: list[int] = []
        covered: set[int] = set()  # the sessions in the trees found so far
        for waiter in waiters:
            if waiter in covered:
                continue
            seen: set[int] = set()
            todo = [waiter]
            tops: list[int] = []
            while todo:
                pid = todo.pop(0)
                if pid in seen:
                    continue
                seen.add(pid)
                above = self.blockers.get(pid)
                if above:
                    todo.extend(above)
                else:
                    tops.append(pid)
            for top in tops or [waiter]:
                if top not in found:
                    found.append(top)
                    covered |= self._below(top)
        return found

    def _below(self, root: int) -> set[int]:
        seen: set[int] = set()
        todo = [root]
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo.extend(self.blocked.get(pid, ()))
        return seen

    def render(self, roots: Sequence[int]) -> list[str]:
        """One sentence per tree: "pid 1 (...) blocks pid 2 (...) which blocks [pid 3 (...); pid 4 (...)]"; a
        session already shown is named again by its pid only."""
        shown: set[int] = set()
        return [self._render(root, 0, shown, set()) for root in roots]

    def _render(self, pid: int, depth: int, shown: set[int], path: set[int]) -> str:
        if pid in path:
            return f"pid {pid} again (a cycle: a deadlock the deadlock detector will break)"
        if pid in shown:
            return f"pid {pid} (above)"
        shown.add(pid)
        text = self.node(pid)
        below = self.blocked.get(pid, [])
        if not below:
            return text
        verb = "blocks" if depth == 0 else "which blocks"
        if depth >= TREE_DEPTH:
            return f"{text} {verb} {len(below)} more session(s)"
        path = path | {pid}
        parts = [self._render(child, depth + 1, shown, path) for child in below[:TREE_CHILDREN]]
        if len(below) > TREE_CHILDREN:
            parts.append(f"{len(below) - TREE_CHILDREN} more")
        return f"{text} {verb} " + (parts[0] if len(parts) == 1 else "[" + "; ".join(parts) + "]")

    def node(self, pid: int) -> str:
        if pid == 0:
            return "a prepared transaction"
        row = self.sessions.get(pid)
        if row is None:
            return f"pid {pid} (gone since)"
        return describe(row)


# --- how sessions are written ---------------------------------------------------------------------------------


def describe(row: SessionRow, *, held: bool = False) -> str:
    """pid 123 (user alice, app psql, from 10.0.0.5, idle in transaction 7 min 3 s, ...: UPDATE t ...)."""
    parts = []
    if row.user_name:
        parts.append(f"user {row.user_name}")
    if row.application_name:
        parts.append(f"app {row.application_name}")
    if row.client:
        parts.append(f"from {row.client}")
    if row.database and not row.in_database:
        parts.append(f"database {row.database}")
    if row.backend_type and row.backend_type != "client backend":
        parts.append(row.backend_type)
    if row.hidden:  # pg_locks still tells how long it has waited
        if row.waiting:
            parts.append(f"waiting {duration(row.wait_s)}")
        parts.append("its state and statement need pg_monitor")
        return f"pid {row.pid} ({', '.join(parts)})"
    if row.waiting:
        parts.append(f"waiting {duration(row.wait_s)}")
    elif row.state == "active":
        parts.append(f"active {duration(row.query_s)}")
    elif row.state:
        parts.append(f"{row.state} {duration(row.state_s)}")
    if held:
        if row.xact_s is not None:
            parts.append(f"transaction open {duration(row.xact_s)}")
        holds = [f"{row.relation_locks} relation lock(s)"] if row.relation_locks else []
        if row.xmin_age is not None:
            holds.append(f"the xmin horizon (age {format_count(row.xmin_age)})")
        parts.append("holds " + " and ".join(holds) if holds else "holds no lock or snapshot")
    text = statement(row.query)
    if not text:
        return f"pid {row.pid} ({', '.join(parts)})"
    after = " after" if row.state in ("idle", *IDLE_IN_TRANSACTION) and not row.waiting else ":"
    return f"pid {row.pid} ({', '.join(parts)}{after} {text})"


def statement(query: str | None) -> str:
    """The first QUERY_CHARS characters, whitespace collapsed."""
    text = " ".join((query or "").split())
    return text if len(text) <= QUERY_CHARS else text[:QUERY_CHARS] + "…"


def duration(seconds: float | None) -> str:
    return "for an unknown time" if seconds is None else format_duration(max(0.0, seconds))


def them(rows: Sequence[SessionRow]) -> str:
    return "it" if len(rows) == 1 else "them"


def more(rows: Sequence[SessionRow]) -> str:
    return f"; and {len(rows) - SHOWN} more" if len(rows) > SHOWN else ""


def elsewhere_note(rows: Sequence[SessionRow]) -> str:
    """Sessions over the threshold in other databases: mentioned, not counted (see the module's docstring)."""
    if not rows:
        return ""
    databases = ", ".join(sorted({r.database or "?" for r in rows}))
    return f" (and {len(rows)} in other databases, not counted here: {databases})"


def calls(function: str, rows: Sequence[SessionRow]) -> str:
    """SELECT pg_catalog.pg_terminate_backend(123), ... for the first sessions."""
    return "SELECT " + ", ".join(f"pg_catalog.{function}({r.pid})" for r in rows[:SHOWN])


def alter_roles(rows: Sequence[SessionRow], setting: str, value: str) -> str:
    """ALTER ROLE ... SET for the roles of these sessions: each role's new sessions get the setting (a batch
    role may need another value than the application's)."""
    roles = list(dict.fromkeys(r.user_name for r in rows if r.user_name))[:SHOWN]
    if not roles:
        return f"{setting} = '{value}'"
    return "; ".join(f"ALTER ROLE {quote_ident(role)} SET {setting} = '{value}'" for role in roles)


def setting_duration(seconds: float) -> str:
    """A duration as postgresql.conf writes it: '5min', '1h', '90s', '1500ms'."""
    ms = round(seconds * 1000)
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"
