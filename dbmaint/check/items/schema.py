"""Items on the schema, from the index advisor's findings and recommendations: primary keys, foreign keys
that no index serves, and the queried columns the workload would have indexed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from dbmaint.check.item import CheckItem, Found, Item, register
from dbmaint.model import Finding


class AdviceReport(Protocol):
    """What these items read of the advisor's report (dbmaint.advisor.recommend.AdviceReport)."""

    @property
    def verified(self) -> bool: ...
    @property
    def recommendations(self) -> Sequence[Recommendation]: ...
    @property
    def analysed(self) -> int: ...


class Recommendation(Protocol):
    @property
    def definition(self) -> str: ...


def names(found: Sequence[Finding], limit: int = 5) -> str:
    shown = [f"{f.table}" + (f" ({', '.join(f.columns)})" if f.columns else "") for f in found]
    return ", ".join(shown[:limit]) + (f" and {len(shown) - limit} more" if len(shown) > limit else "")


@register
class PrimaryKeys(CheckItem):
    """Every table has a primary key: logical replication, pg_repack and most ORMs need one, and a table
    without one collects duplicate rows nobody can address."""

    name = "primary_keys"
    order = 10
    sources = ("advice",)

    def judge(self, found: Found) -> Item:
        return primary_keys(found["advice"].findings)


def primary_keys(findings: Sequence[Finding]) -> Item:
    missing = [f for f in findings if f.kind == "missing_primary_key"]
    if missing:
        return Item(
            "primary_keys", "fail", f"{len(missing)} table(s) without a primary key: {names(missing)}",
            "add one (ALTER TABLE ... ADD PRIMARY KEY, on a unique index built CONCURRENTLY first: "
            "ADD PRIMARY KEY USING INDEX)",
        )  # fmt: skip
    return Item("primary_keys", "pass", "every table has a primary key")


@register
class ForeignKeysIndexed(CheckItem):
    """Every foreign key leads an index: a DELETE or key UPDATE on the referenced table otherwise scans the
    referencing table once per row, under lock."""

    name = "foreign_keys_indexed"
    order = 20
    sources = ("advice",)

    def judge(self, found: Found) -> Item:
        return foreign_keys(found["advice"].findings)


def foreign_keys(findings: Sequence[Finding]) -> Item:
    unindexed = [f for f in findings if f.kind == "unindexed_foreign_key"]
    if unindexed:
        return Item(
            "foreign_keys_indexed", "fail", f"{len(unindexed)} unindexed foreign key(s): {names(unindexed)}",
            "dbmaint advise --write-migration writes the CREATE INDEX CONCURRENTLY of each",
        )  # fmt: skip
    return Item("foreign_keys_indexed", "pass", "every foreign key leads an index")


@register
class QueriedColumnsIndexed(CheckItem):
    """No index the advisor has verified with hypothetical indexes is missing for the recorded workload."""

    name = "queried_columns_indexed"
    order = 30
    sources = ("advice",)

    def judge(self, found: Found) -> Item:
        return indexed_columns(found["advice"])


def indexed_columns(advice: AdviceReport) -> Item:
    if not advice.verified:
        return Item(
            "queried_columns_indexed", "unknown", "hypopg is not installed: no recommendation can be verified",
            "CREATE EXTENSION hypopg (Debian: postgresql-15-hypopg)",
        )  # fmt: skip
    if advice.recommendations:
        shown = "; ".join(r.definition for r in advice.recommendations[:3])
        more = f" and {len(advice.recommendations) - 3} more" if len(advice.recommendations) > 3 else ""
        return Item(
            "queried_columns_indexed", "fail",
            f"{len(advice.recommendations)} verified index(es) missing: {shown}{more}",
            "dbmaint advise --write-migration writes them as a reviewed Alembic revision",
        )  # fmt: skip
    return Item(
        "queried_columns_indexed", "pass", f"no verified recommendation for {advice.analysed} analysed statement(s)"
    )
