"""Per-table autovacuum settings computed from each table's churn, so that autovacuum keeps up by day and the
nightly pass has less to do."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from dbmaint.check.item import CheckItem, Found, Item, Query, register
from dbmaint.maintenance.vacuum_analysis import effective_setting, parse_reloptions
from dbmaint.sql.identifiers import quote_ident

DAY_S = 86_400.0
# Autovacuum should reach a churning table about this often a day: each pass then has a quarter of a day's
# dead rows to clean, not a day's, and the table never carries a day of them.
RUNS_PER_DAY = 4
# Scale factors are proposed from this ladder, rounded down: values a reviewer reads at a glance.
LADDER = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)


@dataclass(frozen=True)
class TableChurn:
    schema: str
    name: str
    reltuples: float
    reloptions: list[str]
    n_dead_tup: int
    n_ins_since_vacuum: int
    observed_s: float  # since its last vacuum (manual or autovacuum)
    autovacuum_count: int


@dataclass(frozen=True)
class Advice:
    table: TableChurn
    setting: str  # autovacuum_vacuum_scale_factor or autovacuum_vacuum_insert_scale_factor
    current: float
    proposed: float
    per_day: float  # dead rows (or inserts) a day
    trigger_now: float  # rows at which autovacuum starts today
    trigger_then: float

    @property
    def qualified(self) -> str:
        return f"{quote_ident(self.table.schema)}.{quote_ident(self.table.name)}"


CHURN = Query("check_autovacuum_rates", TableChurn)


@register
class AutovacuumSettings(CheckItem):
    """Tables whose churn takes them past dbmaint's nightly trigger every day while autovacuum's own
    trigger is never reached by day: the nightly pass is doing autovacuum's work, and the table carries a
    whole day of dead rows (or of inserts not yet in the visibility map). For each, a scale factor computed
    from its rate since its last vacuum that would have autovacuum reach it about four times a day, as an
    ``ALTER TABLE ... SET (...)`` to review (a SHARE UPDATE EXCLUSIVE lock, taken for a moment)."""

    name = "autovacuum_settings"
    order = 80
    sources = (CHURN, "autovacuum_settings")

    def judge(self, found: Found) -> Item:
        config = found.config
        advice = advise(
            found.rows(CHURN),
            found["autovacuum_settings"],
            trigger_fraction=config.vacuum.trigger_fraction,
            min_observed_s=config.check.autovacuum_min_observed,
        )
        return item(advice)


def advise(
    tables: Sequence[TableChurn], server: Mapping[str, float], *, trigger_fraction: float, min_observed_s: float
) -> list[Advice]:
    """Tables whose daily churn is at least the nightly pass's trigger (``trigger_fraction`` of autovacuum's)
    but below autovacuum's own, observed for at least ``min_observed_s``, with a lower scale factor."""
    found = []
    for table in tables:
        if table.observed_s < min_observed_s or table.reltuples <= 0:
            continue
        options = parse_reloptions(table.reloptions)
        if options.get("autovacuum_enabled", "true").lower() in ("false", "off", "0", "no"):
            continue  # switched off on purpose: not a setting to tune
        for setting, threshold_name, count in (
            ("autovacuum_vacuum_scale_factor", "autovacuum_vacuum_threshold", table.n_dead_tup),
            ("autovacuum_vacuum_insert_scale_factor", "autovacuum_vacuum_insert_threshold", table.n_ins_since_vacuum),
        ):
            base = effective_setting(threshold_name, options, server)
            scale = effective_setting(setting, options, server)
            if base < 0:  # autovacuum_vacuum_insert_threshold = -1: insert-driven vacuums are off
                continue
            per_day = count * DAY_S / table.observed_s
            trigger = base + scale * table.reltuples
            if not trigger_fraction * trigger <= per_day < trigger:
                continue
            proposed = _rounded_down((per_day / RUNS_PER_DAY - base) / table.reltuples)
            if proposed is None or proposed > scale / 2:  # not worth a setting of its own
                continue
            found.append(Advice(table, setting, scale, proposed, per_day, trigger, base + proposed * table.reltuples))
            break  # one advice per table: the dead rows' first
    return sorted(found, key=lambda a: -a.per_day)


def _rounded_down(value: float) -> float | None:
    fitting = [step for step in LADDER if step <= value]
    return fitting[-1] if fitting else None


def item(advice: Sequence[Advice]) -> Item:
    if not advice:
        return Item("autovacuum_settings", "pass", "no table's churn calls for autovacuum settings of its own")
    shown = "; ".join(
        f"{a.table.schema}.{a.table.name}: {a.per_day:,.0f} {_what(a)} a day, autovacuum starts at "
        f"{a.trigger_now:,.0f} ({a.setting} = {a.current:g})"
        for a in advice[:3]
    )
    more = f" and {len(advice) - 3} more" if len(advice) > 3 else ""
    fix = "; ".join(
        f"ALTER TABLE {a.qualified} SET ({a.setting} = {a.proposed:g})  -- starts at {a.trigger_then:,.0f}"
        for a in advice[:3]
    )
    return Item(
        "autovacuum_settings", "warn",
        f"{len(advice)} table(s) past the nightly pass's trigger every day but never autovacuum's: {shown}{more}",
        f"{fix} (dbmaint advise --write-migration --autovacuum-settings writes them as a revision)",
    )  # fmt: skip


def _what(advice: Advice) -> str:
    return "inserts" if "insert" in advice.setting else "dead rows"
