"""What the change revisions write, read from the database: the indexes the advisor found unused or
duplicated (with their exact definitions), and the autovacuum settings the checklist advises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dbmaint.advisor import schema_findings
from dbmaint.advisor.change_revisions import IndexDrop, SettingChange
from dbmaint.check.items import autovacuum_settings, unused_indexes
from dbmaint.check.items.unused_indexes import StandbyIndexScans
from dbmaint.config import Config
from dbmaint.maintenance.vacuum_analysis import parse_reloptions
from dbmaint.model import Finding
from dbmaint.pg import catalog, collect, db

Connection = psycopg.Connection[tuple[Any, ...]]
DROP_KINDS = ("duplicate_index", "redundant_index", "unused_index")
NO_STANDBYS = StandbyIndexScans()


@dataclass(frozen=True)
class _DropTarget:
    index_oid: int
    schema: str
    name: str
    table_name: str
    is_partitioned: bool
    backs_constraint: bool


def index_drops(
    conn: Connection, findings: Sequence[Finding], standbys: StandbyIndexScans = NO_STANDBYS
) -> tuple[list[IndexDrop], list[str]]:
    """The indexes to drop, and a note for each left out: an unused one scanned on a standby, or with a
    standby that could not be read (an index used only on a replica is not unused); partitioned; backing a
    constraint; or its table locked right now."""
    chosen = {f.index_oid: f for f in findings if f.kind in DROP_KINDS and f.index_oid is not None}
    if not chosen:
        return [], []
    targets = db.fetch(conn, "advisor_drop_targets", _DropTarget, {"index_oids": list(chosen)})
    definitions = catalog.index_definitions(conn, [t.index_oid for t in targets])
    (streaming,) = db.fetch(conn, unused_indexes.STREAMING.name, unused_indexes.PhysicalStandbys)
    drops, notes = [], []
    for target in targets:
        finding = chosen[target.index_oid]
        qualified = f"{target.schema}.{target.name}"
        definition = definitions.get(target.index_oid)
        if finding.kind == "unused_index" and (why := _used_elsewhere(finding, findings, standbys, streaming)):
            notes.append(f"{qualified}: {why}: not dropped")
        elif target.is_partitioned:
            notes.append(f"{qualified} is a partitioned index (no DROP INDEX CONCURRENTLY): drop it by hand")
        elif target.backs_constraint:
            notes.append(f"{qualified} backs a constraint: not dropped")
        elif definition is None:
            notes.append(f"{qualified}: its table is locked, its definition could not be read: not dropped")
        else:
            drops.append(
                IndexDrop(target.schema, target.name, target.table_name, definition.definition, finding.kind,
                          finding.detail)
            )  # fmt: skip
    return drops, notes


def _used_elsewhere(
    finding: Finding,
    findings: Sequence[Finding],
    standbys: StandbyIndexScans,
    streaming: unused_indexes.PhysicalStandbys,
) -> str | None:
    """Why an index unscanned on the primary may still serve a replica's queries, as the checklist's
    unused_indexes item judges it: none when it is unused everywhere dbmaint can see."""
    drops = [f for f in findings if f.kind in DROP_KINDS]
    scans = unused_indexes.scans_on_standbys(finding, drops, standbys)
    if scans:
        return f"scanned on a standby ({scans:,} scans)"
    doubts = unused_indexes.standby_doubts([finding], standbys, schema_findings.MIN_OBSERVED)
    if doubts:
        return "not known to be unused on every standby: " + "; ".join(doubts)
    if unused_indexes.unlisted_standbys(streaming.streaming, standbys):
        return (
            f"{streaming.streaming} physical standby(s) stream from this server and {len(standbys.read)} of them "
            "are listed in [[databases]] standbys: the others' queries may scan it"
        )
    return None


def standby_scans(conn: Connection, database: str, config: Config) -> StandbyIndexScans:
    """The scans counted on the standbys configured for ``database``, as the checklist reads them."""
    from dbmaint.check import checklist  # the checklist imports the advisor: imported when drops are asked for

    return checklist.standby_index_scans(conn, database, config)


def autovacuum_changes(conn: Connection, config: Config) -> list[SettingChange]:
    advice = autovacuum_settings.advise(
        db.fetch(conn, autovacuum_settings.CHURN.name, autovacuum_settings.TableChurn),
        collect.autovacuum_settings(conn),
        trigger_fraction=config.vacuum.trigger_fraction,
        min_observed_s=config.check.autovacuum_min_observed,
    )
    changes = []
    for a in advice:
        what = "inserts" if "insert" in a.setting else "dead rows"
        changes.append(
            SettingChange(
                a.table.schema, a.table.name, a.setting, parse_reloptions(a.table.reloptions).get(a.setting),
                f"{a.proposed:g}",
                f"{a.per_day:,.0f} {what} a day since its last vacuum; autovacuum started at {a.trigger_now:,.0f}, "
                f"now at {a.trigger_then:,.0f}, about four times a day.",
            )
        )  # fmt: skip
    return changes
