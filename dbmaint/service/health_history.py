"""The health figures the service keeps in history, for ``dbmaint report``'s trend charts.

The metrics endpoint reads health every ``[metrics] refresh`` and forgets it; a trend needs it kept, and an
hour apart is enough to see dead rows pile up or a transaction-ID age climb: one sample an hour per database
(at least ``EVERY_S - SLACK_S`` apart, counted from the store, so a restart does not add one), holding the
database's ages and the worst ``top`` tables by dead rows, by transaction-ID age, and indexes by estimated
bloat. At most 1 + 3 x top rows an hour, pruned with the runs. Only a primary's figures are kept: a standby's
statistics know no dead rows, and its ages are the primary's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from dbmaint.errors import DbmaintError
from dbmaint.maintenance import reindex_analysis
from dbmaint.pg import collect, db, facts
from dbmaint.store.health import HealthFigure
from dbmaint.store.history import History

log = logging.getLogger(__name__)

EVERY_S = 3600.0
# A sample a little early still counts as the hour's: one due at 60 min that a slow connect delayed to
# 60.2 min must not push the next one to two hours.
SLACK_S = 300.0


def figures(
    database: str,
    health: facts.DatabaseHealth,
    tables: Sequence[facts.TableStats],
    indexes: Sequence[tuple[facts.IndexStats, reindex_analysis.Bloat]],
    top: int,
) -> list[HealthFigure]:
    """What one sample keeps (pure). ``indexes`` are ``(IndexStats, Bloat)`` pairs, estimated already."""
    kept = [HealthFigure("database", database, xid_age=health.xid_age, mxid_age=health.multixact_age)]
    user_tables = [t for t in tables if not t.is_catalog]
    by_dead = sorted((t for t in user_tables if t.n_dead_tup > 0), key=lambda t: (-t.n_dead_tup, t.qualified_name))
    by_age = sorted(tables, key=lambda t: (-t.xid_age, t.qualified_name))  # catalogs age too: wraparound
    seen: set[str] = set()
    for table in [*by_dead[:top], *by_age[:top]]:
        if table.qualified_name in seen:
            continue
        seen.add(table.qualified_name)
        kept.append(
            HealthFigure(
                "table",
                table.qualified_name,
                xid_age=table.xid_age,
                mxid_age=table.mxid_age,
                dead_tuples=table.n_dead_tup,
                live_tuples=table.n_live_tup,
                size_bytes=table.size_bytes,
            )
        )
    bloated = sorted(
        ((index, bloat) for index, bloat in indexes if bloat.bytes > 0), key=lambda pair: -int(pair[1].bytes)
    )
    for index, bloat in bloated[:top]:
        kept.append(
            HealthFigure(
                "index",
                index.qualified_name,
                size_bytes=index.size_bytes,
                bloat_bytes=int(bloat.bytes),
                bloat_ratio=round(float(bloat.ratio), 4),
            )
        )
    return kept


def estimated_bloat(indexes: Sequence[facts.IndexStats]) -> list[tuple[facts.IndexStats, reindex_analysis.Bloat]]:
    """Each user index with its estimated bloat (catalog indexes left out: dbmaint never rebuilds them)."""
    pairs = []
    for index in indexes:
        if index.is_catalog:
            continue
        bloat = reindex_analysis.estimate_bloat(index)
        if bloat is not None:
            pairs.append((index, bloat))
    return pairs


class HealthHistory:
    """Decides when a database's sample is due and writes it; never raises (a gap in a chart is all a
    failure costs, and the metrics read beside it must not be taken for a database that is down)."""

    def __init__(self, history: History) -> None:
        self.history = history
        self._last: dict[str, datetime] = {}

    def due(self, database: str, at: datetime) -> bool:
        last = self._last.get(database)
        if last is None:
            try:
                last = self.history.last_health_sample(database)
            except DbmaintError as exc:
                log.warning("health history of %s: %s", database, exc)
                return False
            if last is not None:
                self._last[database] = last
        return last is None or (at - last).total_seconds() >= EVERY_S - SLACK_S

    def record(
        self, conn: psycopg.Connection[Any], database: str, at: datetime, health: facts.DatabaseHealth, top: int
    ) -> bool:
        """Read the tables and indexes and keep the sample; False (logged) when it could not be had."""
        self._last[database] = at  # tried this hour, kept or not: not again at every refresh
        try:
            sample = figures(
                database, health, collect.vacuum_tables(conn), estimated_bloat(collect.index_bloat_inputs(conn)), top
            )
            self.history.record_health(database, at, sample)
        except (DbmaintError, psycopg.Error) as exc:
            log.warning("health history of %s not kept this hour: %s", database, db.first_line(str(exc)))
            return False
        return True
