"""Transaction-ID and multixact wraparound: how old the oldest unfrozen rows of the database and its tables
are, and what keeps VACUUM from freezing them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, Status, register
from dbmaint.pg.facts import XminHolder
from dbmaint.sql.identifiers import quote_ident
from dbmaint.units import format_count

SHOWN = 5  # the worst tables the evidence names (the query reads five by each age)

# What ends each kind of xmin_holders.sql's holders.
ENDING = {
    "session": "commit it or end it with pg_terminate_backend(pid)",
    "prepared transaction": "COMMIT PREPARED or ROLLBACK PREPARED it",
    "replication slot": "drop it with pg_drop_replication_slot() if nothing consumes it any more",
    "standby feedback": "end the standby's long query (hot_standby_feedback sends its horizon here)",
}


@dataclass(frozen=True)
class AgeRow:
    """The database's ages, or one of its oldest tables' (its TOAST table's included):
    dbmaint/pg/queries/check_wraparound.sql."""

    kind: str  # "database" or "table"
    schema: str | None
    name: str
    xid_age: int
    mxid_age: int
    toast_oldest: bool = False  # the TOAST table is older than the table itself
    temporary: bool = False  # another session's temporary table

    @property
    def age(self) -> int:
        return max(self.xid_age, self.mxid_age)

    @property
    def qualified_name(self) -> str:
        return f"{quote_ident(self.schema or '')}.{quote_ident(self.name)}"

    def describe(self, threshold: int) -> str:
        """The table and its ages; the multixact age only when it matters (most tables have none)."""
        ages = [f"transaction ID age {format_count(self.xid_age)}"]
        if self.mxid_age >= threshold or self.mxid_age > self.xid_age:
            ages.append(f"multixact age {format_count(self.mxid_age)}")
        if self.toast_oldest:
            ages.append("in its TOAST table")
        if self.temporary:
            ages.append("another session's temporary table")
        return f"{self.qualified_name} ({', '.join(ages)})"


@register
class XidAge(CheckItem):
    """The transaction-ID age (``age(datfrozenxid)``) and multixact age (``mxid_age(datminmxid)``) of the
    database and of its oldest tables (a TOAST table counting as its table's) stay below
    ``check.xid_age_warn`` (500 million), and fail at ``check.xid_age_fail`` (1 billion). Autovacuum freezes a
    table at 200 million by default (autovacuum_freeze_max_age); a table older than that has been kept from
    it, most often by what holds the xmin horizon back (a long transaction, a forgotten prepared transaction,
    a replication slot), which the evidence names. At about 2.1 billion PostgreSQL stops assigning
    transaction IDs, and so every write, until the oldest tables are vacuumed."""

    name = "xid_age"
    order = 110
    sources = (Query("check_wraparound", AgeRow), Query("xmin_holders", XminHolder))

    def judge(self, found: Found) -> Item:
        check = found.config.check
        ages, holders = (found.rows(source) for source in self.sources)
        return xid_age(ages, holders, check.xid_age_warn, check.xid_age_fail)


def xid_age(rows: Sequence[AgeRow], holders: Sequence[XminHolder], warn: int, fail: int) -> Item:
    database = next((row for row in rows if row.kind == "database"), None)
    # The query reads the five oldest by each age: a table may come twice.
    tables = sorted(
        {(row.schema, row.name): row for row in rows if row.kind == "table"}.values(),
        key=lambda row: (-row.age, row.schema or "", row.name),
    )
    if database is None:  # pg_database always has it: only a query gone wrong comes here
        return Item("xid_age", "unknown", "the database's row of pg_database was not read")
    worst = max(row.age for row in (database, *tables))
    status: Status = "fail" if worst >= fail else "warn" if worst >= warn else "pass"
    head = f"transaction ID age {format_count(database.xid_age)}, multixact age {format_count(database.mxid_age)}"
    if status == "pass":
        oldest = f"; oldest table {tables[0].describe(warn)}" if tables else ""
        return Item("xid_age", "pass", f"{head}, below {format_count(warn)}{oldest}")

    old = [row for row in tables if row.age >= warn]
    shown = "; ".join(row.describe(warn) for row in old[:SHOWN])
    if old:
        evidence = f"{head} (warn at {format_count(warn)}, fail at {format_count(fail)}); tables: {shown}"
    else:  # the database's figure lags until a VACUUM recomputes it (a dropped old table, say)
        evidence = f"{head} (warn at {format_count(warn)}, fail at {format_count(fail)}); no table is that old"
    # VACUUM cannot freeze past the oldest xmin still needed: a holder older than the warning age keeps the
    # tables above it whatever VACUUM does.
    blocking = [h for h in holders if h.xmin_age is not None and h.xmin_age >= warn]
    if blocking:
        more = f" and {len(blocking) - 1} more" if len(blocking) > 1 else ""
        evidence += f"; the xmin horizon is held back by {blocking[0].describe()}{more}"
    elif old:
        evidence += "; nothing holds the xmin horizon back that far: autovacuum has not frozen them (is it keeping up?)"
    return Item("xid_age", status, evidence, _fix(old or tables[:1], blocking))


def _fix(tables: Sequence[AgeRow], blocking: Sequence[XminHolder]) -> str:
    steps = []
    if blocking:
        kinds = dict.fromkeys(h.kind for h in blocking)  # in order, once each
        ending = "; ".join(f"{kind}: {ENDING.get(kind, 'end it')}" for kind in kinds)
        steps.append(f"first end what holds the xmin horizon back ({ending})")
    vacuums = [f"VACUUM (FREEZE, VERBOSE) {row.qualified_name}" for row in tables[:SHOWN] if not row.temporary]
    if vacuums:
        steps.append(
            "; ".join(vacuums) + " (dbmaint vacuum freezes the oldest tables first; its VACUUM recomputes the "
            "database's age)"
        )
    temporary = [row.qualified_name for row in tables[:SHOWN] if row.temporary]
    if temporary:
        steps.append(
            f"only the session owning {', '.join(temporary)} can vacuum it: end that session and the table goes"
        )
    return ", then ".join(steps) or "VACUUM (FREEZE, VERBOSE) each table of the database (dbmaint vacuum)"
