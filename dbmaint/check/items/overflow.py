"""Integer columns and sequences running out of numbers: once a serial or identity column reaches its type's
limit, or its sequence its own, every INSERT into the table fails."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, Status, register
from dbmaint.sql.identifiers import quote_ident
from dbmaint.units import format_count, format_share

# The values each integer type holds: a column's, and a sequence's own (its AS type).
TYPE_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
SHOWN = 5  # the worst ones the evidence names


@dataclass(frozen=True)
class SequenceRow:
    """A sequence and one column it feeds (the column fields are None when it feeds none):
    dbmaint/pg/queries/check_overflow.sql."""

    sequence_schema: str
    sequence_name: str
    sequence_type: str
    increment: int
    min_value: int
    max_value: int
    cycle: bool
    last_value: int | None  # None: never called, or not readable by this role
    readable: bool
    table_schema: str | None = None
    table_name: str | None = None
    column_name: str | None = None
    column_type: str | None = None  # as declared (a domain's name)
    column_base_type: str | None = None  # the domain's base type
    identity: bool | None = None

    @property
    def sequence(self) -> str:
        return f"{quote_ident(self.sequence_schema)}.{quote_ident(self.sequence_name)}"

    @property
    def table(self) -> str:
        return f"{quote_ident(self.table_schema or '')}.{quote_ident(self.table_name or '')}"

    @property
    def column(self) -> str | None:
        return None if self.column_name is None else f"{self.table}.{quote_ident(self.column_name)}"


@dataclass(frozen=True)
class Usage:
    """How far one sequence, and the column it feeds, has gone toward the first limit it will hit."""

    row: SequenceRow
    value: int
    limit: int
    by_column: bool  # the column's type is the limit (else the sequence's own MAXVALUE / MINVALUE)
    share: float

    def describe(self) -> str:
        row = self.row
        own = "MINVALUE" if row.increment < 0 else "MAXVALUE"
        limit = format_count(self.limit) if self.by_column else f"its {own} {format_count(self.limit)}"
        figures = f"{format_count(self.value)} of {limit}, {format_share(self.share)}"
        if row.increment < 0:
            figures += ", descending"
        if row.column is None:
            return f"sequence {row.sequence} ({row.sequence_type}: {figures})"
        column_type = row.column_type or ""
        if row.column_base_type and row.column_base_type != column_type:  # a domain
            column_type += f" over {row.column_base_type}"
        if self.by_column:
            return f"{row.column} ({column_type}: {figures})"
        return f"{row.column} ({column_type}, fed by {row.sequence_type} sequence {row.sequence}: {figures})"

    def statements(self) -> list[str]:
        """What moves the first limit out of reach: bigint for the column and its sequence when the column's
        type is the limit, else the sequence widened to its column's type and its own MAXVALUE lifted. None
        when all is bigint already."""
        row = self.row
        descending = row.increment < 0
        if self.by_column:
            steps = []
            if row.column_base_type in ("smallint", "integer"):
                steps.append(f"ALTER TABLE {row.table} ALTER COLUMN {quote_ident(row.column_name or '')} TYPE bigint")
            # ALTER TABLE ... TYPE changes an identity column's sequence with it, never a serial's.
            if row.sequence_type != "bigint" and not row.identity:
                steps.append(f"ALTER SEQUENCE {row.sequence} AS bigint")
            return steps
        # The sequence's own limit comes first: a type narrower than its column's (bigint when it feeds no
        # integer column), or a MAXVALUE / MINVALUE set within its type, which AS bigint would keep.
        own_range = TYPE_RANGES.get(row.sequence_type, TYPE_RANGES["bigint"])
        column_range = TYPE_RANGES.get(row.column_base_type or "", TYPE_RANGES["bigint"])
        bound = 0 if descending else 1
        options = ["AS bigint"] if abs(own_range[bound]) < abs(column_range[bound]) else []
        if (row.min_value if descending else row.max_value) != own_range[bound]:
            options.append("NO MINVALUE" if descending else "NO MAXVALUE")
        return [f"ALTER SEQUENCE {row.sequence} {' '.join(options)}"] if options else []


def usage(row: SequenceRow) -> Usage | None:
    """The share of its range a readable sequence has used, against the first limit it meets: its column's
    type (a serial's integer) or its own MAXVALUE (a bigint column fed by an integer sequence stops at the
    sequence's). A descending sequence counts toward the minimum. None when it was never called, or when it
    cannot run out: it cycles, and feeds no column that stops it first."""
    if row.last_value is None:
        return None
    descending = row.increment < 0
    own = None if row.cycle else (row.min_value if descending else row.max_value)
    column_range = TYPE_RANGES.get(row.column_base_type or "") if row.column_name is not None else None
    column = None if column_range is None else (column_range[0] if descending else column_range[1])
    limits = [limit for limit in (column, own) if limit is not None]
    if not limits:
        return None
    limit = max(limits) if descending else min(limits)
    # Counted from zero, as pghero does (a sequence from 1 to 100 at 90 has used 90%); from the start of its
    # range for one that never crosses zero on the way to its limit.
    beyond_zero = limit < 0 if descending else limit > 0
    origin = 0 if beyond_zero else (row.max_value if descending else row.min_value)
    span = (origin - limit) if descending else (limit - origin)
    gone = (origin - row.last_value) if descending else (row.last_value - origin)
    share = max(gone, 0) / span if span > 0 else 1.0
    return Usage(row, row.last_value, limit, limit == column, share)


@register
class IntegerOverflow(CheckItem):
    """Integer columns fed by a sequence (serial, ``DEFAULT nextval(...)``) or an identity, and sequences of
    their own, have used less than ``check.overflow_warn`` (70%) of their range, and fail at
    ``check.overflow_fail`` (90%): at the limit every INSERT fails ("integer out of range", "nextval: reached
    maximum value"), and widening a big table takes planning. The range is the column type's, or the
    sequence's own MAXVALUE when that comes first (a bigint column fed by an integer sequence); a descending
    sequence counts toward its minimum; a CYCLE sequence runs out only through its column. A sequence this
    role may not read (pg_monitor gives no privilege on sequences) makes the item unknown, unless another
    fails."""

    name = "integer_overflow"
    order = 100
    sources = (Query("check_overflow", SequenceRow),)

    def judge(self, found: Found) -> Item:
        check = found.config.check
        return integer_overflow(found.rows(self.sources[0]), check.overflow_warn, check.overflow_fail)


def integer_overflow(rows: Sequence[SequenceRow], warn: float, fail: float) -> Item:
    unreadable = sorted({row.sequence for row in rows if not row.readable})
    usages = sorted(
        (u for u in (usage(row) for row in rows if row.readable) if u is not None),
        key=lambda u: (-u.share, u.row.column or u.row.sequence),
    )
    near = [u for u in usages if u.share >= warn]
    thresholds = f"warn at {format_share(warn)}, fail at {format_share(fail)}"
    listed = _listed([u.describe() for u in near])
    fix = _fix(near) if near else None
    if near and near[0].share >= fail:
        status: Status = "fail"
        evidence = f"{len(near)} column(s) or sequence(s) near overflow ({thresholds}): {listed}"
        if unreadable:
            evidence += f"; {len(unreadable)} sequence(s) this role cannot read"
    elif unreadable:
        status = "unknown"
        evidence = (
            f"this role cannot read {len(unreadable)} sequence(s) (it needs SELECT or USAGE on them; "
            f"pg_monitor gives neither): {_listed(unreadable)}"
        )
        if near:
            evidence += f"; {len(near)} column(s) or sequence(s) near overflow ({thresholds}): {listed}"
        schemas = sorted({quote_ident(row.sequence_schema) for row in rows if not row.readable})
        on = (
            f"SEQUENCE {', '.join(unreadable)}"
            if len(unreadable) <= SHOWN
            else f"ALL SEQUENCES IN SCHEMA {', '.join(schemas)}"
        )
        grant = f"GRANT SELECT ON {on} TO <the role dbmaint runs as> (SELECT reads a sequence, it cannot advance it)"
        fix = grant if fix is None else f"{grant}; {fix}"
    elif near:
        status = "warn"
        evidence = f"{len(near)} column(s) or sequence(s) near overflow ({thresholds}): {listed}"
    else:
        status = "pass"
        count = len({row.sequence for row in rows})
        most = f"; the most used: {usages[0].describe()}" if usages else ""
        evidence = f"{count} sequence(s), none past {format_share(warn)} of its range{most}" if rows else "no sequence"
    return Item("integer_overflow", status, evidence, fix)


def _listed(names: Sequence[str]) -> str:
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return "; ".join(names[:SHOWN]) + more


def _fix(near: Sequence[Usage]) -> str:
    statements = list(dict.fromkeys(s for u in near[:SHOWN] for s in u.statements()))  # once each, in order
    if not statements:
        return f"nothing is wider than bigint: find out what draws {near[0].row.sequence}'s values so fast"
    fix = "; ".join(statements)
    if len(near) > SHOWN:
        fix += f"; likewise for the other {len(near) - SHOWN}"
    if any(s.startswith("ALTER TABLE") for s in statements):
        fix += (
            ". ALTER TABLE ... TYPE bigint rewrites the table and its indexes under an ACCESS EXCLUSIVE lock: "
            "for a big table, add a bigint column, fill it in batches and swap it in one short transaction"
        )
    return fix
