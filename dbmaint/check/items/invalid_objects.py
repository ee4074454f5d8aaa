"""Objects PostgreSQL keeps but does not trust: invalid indexes, and constraints added NOT VALID and never
validated."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, register
from dbmaint.model import Finding
from dbmaint.sql.identifiers import quote_ident
from dbmaint.units import format_size

SHOWN = 5  # the objects the evidence names; the count says how many more there are
# A REINDEX CONCURRENTLY builds its copy as <name>_ccnew and renames the original <name>_ccold before dropping
# it; a failed run leaves one of them invalid (as dbmaint.maintenance.reindex_analysis.leftovers sees it).
_CONCURRENT_LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")


def _more(count: int) -> str:
    return f" and {count - SHOWN} more" if count > SHOWN else ""


@register
class InvalidIndexes(CheckItem):
    """No index is invalid. A CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY that failed (a duplicate value
    for a unique index, a deadlock, a cancelled statement) leaves its index behind marked invalid, the
    ``_ccnew``/``_ccold`` copies of a reindex among them: no query uses it, yet once its build got far enough
    every write updates it, and a unique one enforces nothing. An index being built right now is invalid until
    its build ends: it is not counted (pg_stat_progress_create_index). The advisor's findings, which ``dbmaint
    advise`` lists too."""

    name = "invalid_indexes"
    order = 300
    sources = ("advice",)

    def judge(self, found: Found) -> Item:
        return invalid_indexes(found["advice"].findings)


def invalid_indexes(findings: Sequence[Finding]) -> Item:
    invalid = [f for f in findings if f.kind == "invalid_index"]
    if not invalid:
        return Item("invalid_indexes", "pass", "no invalid index (an index being built right now is not counted)")
    leftovers = [f for f in invalid if _is_leftover(f)]
    others = [f for f in invalid if not _is_leftover(f)]
    total = sum(_size(f) for f in invalid)
    shown = ", ".join(
        f"{f.index} ({format_size(_size(f))}{', left by a failed REINDEX CONCURRENTLY' if _is_leftover(f) else ''})"
        for f in invalid[:SHOWN]
    )
    fixes = [_rebuild(f) for f in others[:SHOWN]]
    if len(others) > SHOWN:
        fixes.append(f"dbmaint advise lists the {len(others) - SHOWN} others")
    if leftovers:
        fixes.append(
            f"dbmaint reindex drops the {len(leftovers)} leftover(s) of failed REINDEX CONCURRENTLY runs "
            f"(_ccnew, _ccold) on its next run, or {leftovers[0].fix}"
        )
    return Item(
        "invalid_indexes", "fail",
        f"{len(invalid)} invalid index(es), {format_size(total)} in all, which no query uses: "
        f"{shown}{_more(len(invalid))}",
        "; ".join(fixes),
    )  # fmt: skip


def _rebuild(finding: Finding) -> str:
    """The advisor's fix: the DROP, and the CREATE INDEX CONCURRENTLY when the definition could be read."""
    if finding.fix is None:  # a partitioned index: its detail says which partitions to attach
        return f"{finding.index}: {finding.detail}"
    if "CREATE" not in finding.fix:
        return f"{finding.fix}, then CREATE INDEX CONCURRENTLY it again"
    return finding.fix


def _is_leftover(finding: Finding) -> bool:
    return _CONCURRENT_LEFTOVER.search(finding.index or "") is not None


def _size(finding: Finding) -> int:
    """The index's size: the advisor ranks its index findings by it (schema_findings: rank=size_bytes)."""
    return int(finding.rank)


@dataclass(frozen=True)
class NotValidConstraint:
    """A CHECK or FOREIGN KEY constraint never validated: dbmaint/pg/queries/check_not_valid_constraints.sql."""

    schema: str
    table_name: str
    name: str
    kind: str  # "c" (CHECK) or "f" (FOREIGN KEY)
    table_bytes: int
    referenced_schema: str | None
    referenced_table: str | None

    @property
    def table(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.table_name)}"

    def describe(self) -> str:
        if self.kind == "f" and self.referenced_schema is not None and self.referenced_table is not None:
            referenced = f"{quote_ident(self.referenced_schema)}.{quote_ident(self.referenced_table)}"
            return f"foreign key {quote_ident(self.name)} on {self.table} (to {referenced})"
        return f"check {quote_ident(self.name)} on {self.table}"

    @property
    def validate(self) -> str:
        return f"ALTER TABLE {self.table} VALIDATE CONSTRAINT {quote_ident(self.name)}"


NOT_VALID = Query("check_not_valid_constraints", NotValidConstraint)


@register
class NotValidConstraints(CheckItem):
    """Every CHECK and FOREIGN KEY constraint is validated. One added NOT VALID (the way to add it without
    scanning the table under a lock that blocks writes) holds for new rows only until ALTER TABLE ... VALIDATE
    CONSTRAINT checks the old ones: until then rows may break it unnoticed, and the planner does not rely on it.
    VALIDATE CONSTRAINT takes a SHARE UPDATE EXCLUSIVE lock, which lets reads and writes go on."""

    name = "not_valid_constraints"
    order = 310
    sources = (NOT_VALID,)

    def judge(self, found: Found) -> Item:
        return not_valid_constraints(found.rows(NOT_VALID))


def not_valid_constraints(constraints: Sequence[NotValidConstraint]) -> Item:
    if not constraints:
        return Item("not_valid_constraints", "pass", "every CHECK and FOREIGN KEY constraint is validated")
    shown = ", ".join(c.describe() for c in constraints[:SHOWN])
    statements = "; ".join(c.validate for c in constraints[:SHOWN])
    more = f" (and the {len(constraints) - SHOWN} others likewise)" if len(constraints) > SHOWN else ""
    return Item(
        "not_valid_constraints", "warn",
        f"{len(constraints)} constraint(s) added NOT VALID and never validated, so rows written before them may "
        f"break them: {shown}{_more(len(constraints))}",
        f"{statements}{more}: each scans its table (a foreign key looks each row up in the referenced table) "
        "under a SHARE UPDATE EXCLUSIVE lock, which does not block reads or writes; a row that breaks the "
        "constraint makes the validation fail: correct or delete it, then validate again",
    )  # fmt: skip
