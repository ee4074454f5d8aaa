"""Which tables need VACUUM or ANALYZE, why, and in what order.

The model is autovacuum's own trigger, with each table's reloptions respected:

    vacuum  when  n_dead_tup          > threshold + scale_factor * reltuples
    analyze when  n_mod_since_analyze > threshold + scale_factor * reltuples
    vacuum  when  n_ins_since_vacuum  > insert_threshold + insert_scale_factor * reltuples

dbmaint acts at ``trigger_fraction`` of those points, so that the nightly pass does the work before
autovacuum would start it during the day. Transaction-ID and multixact age come first of all: a table
near wraparound is frozen before anything else is touched.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from psycopg import sql

from dbmaint.config import VacuumConfig
from dbmaint.pg.facts import TableStats

# Higher rank runs first.
WRAPAROUND, DEAD_TUPLES, INSERTS, ANALYZE = 3, 2, 1, 0


@dataclass(frozen=True)
class Need:
    kind: str  # wraparound, multixact, dead_tuples, inserts, analyze, never_analyzed
    rank: int
    severity: float  # how far past dbmaint's trigger (1.0 = just at it)
    detail: str


@dataclass(frozen=True)
class TablePlan:
    table: TableStats
    needs: tuple[Need, ...]

    @property
    def vacuum(self) -> bool:
        return any(n.kind in ("wraparound", "multixact", "dead_tuples", "inserts") for n in self.needs)

    @property
    def freeze(self) -> bool:
        return any(n.kind in ("wraparound", "multixact") for n in self.needs)

    @property
    def analyze(self) -> bool:
        # Freezing alone does not change the data: old, static tables keep their statistics.
        return any(n.kind not in ("wraparound", "multixact") for n in self.needs)

    @property
    def priority(self) -> tuple[int, float]:
        top = max(self.needs, key=lambda n: (n.rank, n.severity))
        return (top.rank, top.severity)

    @property
    def reason(self) -> str:
        return "; ".join(n.detail for n in self.needs)


def parse_reloptions(options: Iterable[str]) -> dict[str, str]:
    result = {}
    for option in options:
        key, _, value = option.partition("=")
        result[key] = value
    return result


def effective_setting(name: str, reloptions: Mapping[str, str], server: Mapping[str, float]) -> float:
    """A table's value of an autovacuum setting: its reloption where it has one, else the server's."""
    if name in reloptions:
        try:
            return float(reloptions[name])
        except ValueError:
            pass
    return server[name]


def _fmt(value: float) -> str:
    return f"{value:,.0f}"


def table_needs(table: TableStats, server: Mapping[str, float], config: VacuumConfig) -> tuple[Need, ...]:
    """Every reason ``table`` needs maintenance now (empty when it does not)."""
    opts = parse_reloptions(table.reloptions)
    fraction = config.trigger_fraction
    needs: list[Need] = []

    freeze_max = effective_setting("autovacuum_freeze_max_age", opts, server)
    xid_limit = min(float(config.freeze_age), 0.75 * freeze_max)
    if table.xid_age >= xid_limit:
        needs.append(
            Need(
                "wraparound",
                WRAPAROUND,
                table.xid_age / max(freeze_max, 1),
                f"transaction ID age {_fmt(table.xid_age)} >= {_fmt(xid_limit)} (wraparound protection)",
            )
        )
    mxid_max = effective_setting("autovacuum_multixact_freeze_max_age", opts, server)
    mxid_limit = min(float(config.multixact_freeze_age), 0.75 * mxid_max)
    if table.mxid_age >= mxid_limit:
        needs.append(
            Need(
                "multixact",
                WRAPAROUND,
                table.mxid_age / max(mxid_max, 1),
                f"multixact age {_fmt(table.mxid_age)} >= {_fmt(mxid_limit)} (wraparound protection)",
            )
        )
    if table.is_catalog:
        # System catalogs are autovacuum's business; dbmaint steps in only against wraparound.
        return tuple(needs)

    # reltuples is -1 until the first VACUUM or ANALYZE (PostgreSQL 14+): fall back to the live count.
    tuples = table.reltuples if table.reltuples >= 0 else float(table.n_live_tup)
    autovacuum_off = opts.get("autovacuum_enabled", "true").lower() in ("false", "off", "0", "no")
    off_note = " (autovacuum is disabled on this table)" if autovacuum_off else ""

    base = effective_setting("autovacuum_vacuum_threshold", opts, server)
    scale = effective_setting("autovacuum_vacuum_scale_factor", opts, server)
    trigger = fraction * (base + scale * tuples)
    if table.n_dead_tup > trigger:
        needs.append(
            Need(
                "dead_tuples",
                DEAD_TUPLES,
                table.n_dead_tup / max(trigger, 1),
                f"{_fmt(table.n_dead_tup)} dead rows > {_fmt(trigger)}{off_note}",
            )
        )

    ins_base = effective_setting("autovacuum_vacuum_insert_threshold", opts, server)
    ins_scale = effective_setting("autovacuum_vacuum_insert_scale_factor", opts, server)
    ins_trigger = fraction * (ins_base + ins_scale * tuples)
    if ins_base >= 0 and table.n_ins_since_vacuum > ins_trigger:
        visible = table.relallvisible / table.relpages if table.relpages else 0.0
        needs.append(
            Need(
                "inserts",
                INSERTS,
                table.n_ins_since_vacuum / max(ins_trigger, 1),
                f"{_fmt(table.n_ins_since_vacuum)} rows inserted since the last vacuum > "
                f"{_fmt(ins_trigger)} (visibility map {visible:.0%} set){off_note}",
            )
        )

    has_rows = table.n_live_tup > 0 or table.reltuples > 0 or table.n_mod_since_analyze > 0
    if table.last_analyze is None and has_rows:
        needs.append(Need("never_analyzed", ANALYZE, float("inf"), "never analyzed"))
    else:
        an_base = effective_setting("autovacuum_analyze_threshold", opts, server)
        an_scale = effective_setting("autovacuum_analyze_scale_factor", opts, server)
        an_trigger = fraction * (an_base + an_scale * tuples)
        if table.n_mod_since_analyze > an_trigger:
            needs.append(
                Need(
                    "analyze",
                    ANALYZE,
                    table.n_mod_since_analyze / max(an_trigger, 1),
                    f"{_fmt(table.n_mod_since_analyze)} rows changed since the last analyze > "
                    f"{_fmt(an_trigger)}{off_note}",
                )
            )
    return tuple(needs)


def is_excluded(qualified_name: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(qualified_name, pattern) for pattern in patterns)


def plan(tables: Iterable[TableStats], server: Mapping[str, float], config: VacuumConfig) -> list[TablePlan]:
    """The tables that need work, most urgent first: wraparound, then dead rows, inserts, statistics."""
    plans = []
    for table in tables:
        if is_excluded(table.qualified_name, config.exclude):
            continue
        needs = table_needs(table, server, config)
        if needs:
            plans.append(TablePlan(table, needs))
    return sorted(plans, key=lambda p: (p.priority, p.table.n_dead_tup), reverse=True)


# From PostgreSQL 16, each VACUUM can leave the database-wide datfrozenxid update (a scan of pg_class)
# to one VACUUM (ONLY_DATABASE_STATS) at the end, as vacuumdb does: with many tables that scan per
# table adds up.
DATABASE_STATS_ONCE = 160000


def statement(table_plan: TablePlan, server_version: int) -> sql.Composed:
    """VACUUM (..., SKIP_LOCKED) or, when only statistics are stale, the cheaper ANALYZE (SKIP_LOCKED)."""
    name = sql.Identifier(table_plan.table.schema, table_plan.table.name)
    if not table_plan.vacuum:
        return sql.SQL("ANALYZE (SKIP_LOCKED) {}").format(name)
    options = []
    if table_plan.freeze:
        options.append("FREEZE")
    if table_plan.analyze:
        options.append("ANALYZE")
    options.append("SKIP_LOCKED")
    if server_version >= DATABASE_STATS_ONCE:
        options.append("SKIP_DATABASE_STATS")
    return sql.SQL("VACUUM ({}) {}").format(sql.SQL(", ".join(options)), name)


def database_stats_statement(plans: list[TablePlan], server_version: int) -> sql.Composed | None:
    """The closing VACUUM (ONLY_DATABASE_STATS), when the table statements skipped that work."""
    if server_version < DATABASE_STATS_ONCE or not any(p.vacuum for p in plans):
        return None
    return sql.Composed([sql.SQL("VACUUM (ONLY_DATABASE_STATS)")])
