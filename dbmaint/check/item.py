"""What a checklist item is: its verdict, the evidence it judges, and how an item is registered. Pure.

An item is a class decorated with :func:`register`, in its own module of ``dbmaint.check.items``::

    @register
    class InvalidIndexes(CheckItem):
        \"\"\"Indexes a failed CREATE INDEX CONCURRENTLY left invalid: ...\"\"\"   # what it checks, and why

        name = "invalid_indexes"
        order = 120
        sources = (Query("check_invalid_indexes", InvalidIndexRow),)

        def judge(self, found: Found) -> Item: ...

Its ``sources`` say what it judges: a query of ``dbmaint/pg/queries`` with the record of its rows, or a
name of :data:`dbmaint.check.checklist.SOURCES` (the advisor's report, the workload, the last vacuum run,
the standbys' index usage...). The checklist reads each source once, whatever the number of items that
judge it, and an item whose source could not be read is ``unknown`` with the reason. ``judge`` is pure:
it gets the rows and the configuration, and says pass, warn, fail or unknown, the evidence in a sentence,
and the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, TypeVar

if TYPE_CHECKING:
    from dbmaint.config import Config

Status = Literal["pass", "warn", "fail", "unknown"]
# A report's status is the worst of its items'; "warn" never fails a deploy pipeline, "fail" does.
WORST_FIRST: tuple[Status, ...] = ("fail", "unknown", "warn", "pass")


@dataclass(frozen=True)
class Item:
    """One item's verdict: the evidence in one sentence, and what to do about it when it is not a pass."""

    check: str
    status: Status
    evidence: str
    fix: str | None = None

    def to_json(self) -> dict[str, str | None]:
        return {"check": self.check, "status": self.status, "evidence": self.evidence, "fix": self.fix}


def worst(statuses: set[Status]) -> Status:
    return next((status for status in WORST_FIRST if status in statuses), "pass")


@dataclass(frozen=True)
class CheckReport:
    """The checklist of one database."""

    database: str
    items: tuple[Item, ...]

    @property
    def status(self) -> Status:
        return worst({item.status for item in self.items})

    def to_json(self) -> dict[str, Any]:
        return {"database": self.database, "status": self.status, "items": [i.to_json() for i in self.items]}


@dataclass(frozen=True)
class Query:
    """A source that is a query of ``dbmaint/pg/queries`` (``name``.sql), read on the checked database."""

    name: str
    row: type


@dataclass(frozen=True)
class Found:
    """What the items judge: each source's value (a query's rows as a list of its records), and the
    configuration in force."""

    database: str
    config: Config
    values: Mapping[str, Any]

    def __getitem__(self, source: str) -> Any:
        return self.values[source]

    def rows(self, query: Query) -> list[Any]:
        rows: list[Any] = self.values[query.name]
        return rows


class CheckItem:
    """One item of the checklist. Subclass it in a module of ``dbmaint.check.items`` and :func:`register` it."""

    name: ClassVar[str]  # what it is called in the output (Item.check)
    order: ClassVar[int]  # its place in the checklist: lower first, steps of 10
    sources: ClassVar[tuple[Query | str, ...]] = ()

    def judge(self, found: Found) -> Item:
        raise NotImplementedError

    def source_names(self) -> tuple[str, ...]:
        return tuple(s.name if isinstance(s, Query) else s for s in self.sources)


REGISTERED: list[CheckItem] = []
_I = TypeVar("_I", bound=type[CheckItem])


def register(cls: _I) -> _I:
    REGISTERED.append(cls())
    return cls
