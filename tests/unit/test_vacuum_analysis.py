"""Which tables need VACUUM or ANALYZE, and in what order: pure decisions on collected statistics."""

from __future__ import annotations

from datetime import UTC, datetime

from dbmaint.config import VacuumConfig
from dbmaint.maintenance import vacuum_analysis
from dbmaint.pg.facts import TableStats

SERVER = {
    "autovacuum_vacuum_threshold": 50,
    "autovacuum_vacuum_scale_factor": 0.2,
    "autovacuum_analyze_threshold": 50,
    "autovacuum_analyze_scale_factor": 0.1,
    "autovacuum_vacuum_insert_threshold": 1000,
    "autovacuum_vacuum_insert_scale_factor": 0.2,
    "autovacuum_freeze_max_age": 200_000_000,
    "autovacuum_multixact_freeze_max_age": 400_000_000,
}
ANALYZED = datetime(2026, 1, 1, tzinfo=UTC)
CLEAN = TableStats(
    relid=1, schema="public", name="t", is_catalog=False, reltuples=100_000, relpages=1000, relallvisible=1000,
    size_bytes=8_192_000, reloptions=[], xid_age=1000, mxid_age=10, n_live_tup=100_000, n_dead_tup=0,
    n_mod_since_analyze=0, n_ins_since_vacuum=0, last_vacuum=ANALYZED, last_analyze=ANALYZED, can_maintain=True,
)  # fmt: skip
CONFIG = VacuumConfig()


def kinds(table: TableStats, config: VacuumConfig = CONFIG) -> list[str]:
    return [n.kind for n in vacuum_analysis.table_needs(table, SERVER, config)]


def test_a_clean_table_needs_nothing() -> None:
    assert kinds(CLEAN) == []


def test_dead_rows_past_half_of_autovacuums_trigger() -> None:
    # autovacuum would fire at 50 + 0.2 * 100,000 = 20,050 dead rows; dbmaint at half of that.
    assert kinds(CLEAN._replace(n_dead_tup=10_000)) == []
    assert kinds(CLEAN._replace(n_dead_tup=10_100)) == ["dead_tuples"]
    (need,) = vacuum_analysis.table_needs(CLEAN._replace(n_dead_tup=10_100), SERVER, CONFIG)
    assert need.detail == "10,100 dead rows > 10,025"


def test_table_reloptions_override_the_server_settings() -> None:
    table = CLEAN._replace(n_dead_tup=600, reloptions=["autovacuum_vacuum_scale_factor=0.01"])
    # 0.5 * (50 + 0.01 * 100,000) = 525
    assert kinds(table) == ["dead_tuples"]


def test_a_table_with_autovacuum_disabled_says_so() -> None:
    table = CLEAN._replace(n_dead_tup=20_000, reloptions=["autovacuum_enabled=false"])
    (need,) = vacuum_analysis.table_needs(table, SERVER, CONFIG)
    assert "autovacuum is disabled on this table" in need.detail


def test_never_analyzed_and_stale_statistics() -> None:
    assert kinds(CLEAN._replace(last_analyze=None)) == ["never_analyzed"]
    assert kinds(CLEAN._replace(last_analyze=None, n_live_tup=0, reltuples=0)) == []  # empty: nothing to learn
    assert kinds(CLEAN._replace(n_mod_since_analyze=6000)) == ["analyze"]


def test_insert_only_tables_need_their_visibility_map_set() -> None:
    assert kinds(CLEAN._replace(n_ins_since_vacuum=11_000, n_mod_since_analyze=0)) == ["inserts"]
    disabled = CLEAN._replace(n_ins_since_vacuum=11_000, reloptions=["autovacuum_vacuum_insert_threshold=-1"])
    assert kinds(disabled) == []


def test_unanalyzed_new_tables_use_their_live_row_count() -> None:
    fresh = CLEAN._replace(reltuples=-1, n_live_tup=1000, n_dead_tup=400)
    assert "dead_tuples" in kinds(fresh)  # 0.5 * (50 + 0.2 * 1000) = 125


def test_wraparound_and_multixact_age() -> None:
    assert kinds(CLEAN._replace(xid_age=150_000_000)) == ["wraparound"]
    assert kinds(CLEAN._replace(mxid_age=150_000_000)) == ["multixact"]
    # A table whose own freeze_max_age is lower is protected earlier: 0.75 * 100M.
    low = CLEAN._replace(xid_age=80_000_000, reloptions=["autovacuum_freeze_max_age=100000000"])
    assert kinds(low) == ["wraparound"]


def test_system_catalogs_only_for_wraparound() -> None:
    catalog = CLEAN._replace(schema="pg_catalog", is_catalog=True, n_dead_tup=1_000_000)
    assert kinds(catalog) == []
    assert kinds(catalog._replace(xid_age=160_000_000)) == ["wraparound"]


def test_plan_orders_by_risk_then_need() -> None:
    tables = [
        CLEAN._replace(relid=2, name="stats", n_mod_since_analyze=90_000),
        CLEAN._replace(relid=3, name="dead_small", n_dead_tup=11_000),
        CLEAN._replace(relid=4, name="dead_big", n_dead_tup=90_000),
        CLEAN._replace(relid=5, name="old", xid_age=170_000_000),
        CLEAN._replace(relid=6, name="older", xid_age=190_000_000),
        CLEAN._replace(relid=7, name="clean"),
    ]
    order = [p.table.name for p in vacuum_analysis.plan(tables, SERVER, CONFIG)]
    assert order == ["older", "old", "dead_big", "dead_small", "stats"]


def test_exclude_patterns() -> None:
    config = CONFIG._replace(exclude=("audit.*",))
    tables = [CLEAN._replace(schema="audit", n_dead_tup=90_000), CLEAN._replace(n_dead_tup=90_000)]
    assert [p.table.schema for p in vacuum_analysis.plan(tables, SERVER, config)] == ["public"]


def test_statements() -> None:
    def statement(table: TableStats) -> str:
        (table_plan,) = vacuum_analysis.plan([table], SERVER, CONFIG)
        return vacuum_analysis.statement(table_plan, 150000).as_string(None)

    assert statement(CLEAN._replace(n_dead_tup=90_000)) == 'VACUUM (ANALYZE, SKIP_LOCKED) "public"."t"'
    assert statement(CLEAN._replace(xid_age=190_000_000)) == 'VACUUM (FREEZE, SKIP_LOCKED) "public"."t"'
    assert statement(CLEAN._replace(n_mod_since_analyze=90_000)) == 'ANALYZE (SKIP_LOCKED) "public"."t"'
    odd = CLEAN._replace(schema='we"ird', name="Mixed Case", n_dead_tup=90_000)
    assert statement(odd) == 'VACUUM (ANALYZE, SKIP_LOCKED) "we""ird"."Mixed Case"'


def test_from_postgresql_16_database_stats_are_updated_once_at_the_end() -> None:
    plans = vacuum_analysis.plan([CLEAN._replace(n_dead_tup=90_000)], SERVER, CONFIG)
    assert vacuum_analysis.statement(plans[0], 160000).as_string(None) == (
        'VACUUM (ANALYZE, SKIP_LOCKED, SKIP_DATABASE_STATS) "public"."t"'
    )
    closing = vacuum_analysis.database_stats_statement(plans, 160000)
    assert closing is not None and closing.as_string(None) == "VACUUM (ONLY_DATABASE_STATS)"
    assert vacuum_analysis.database_stats_statement(plans, 150000) is None
    analyze_only = vacuum_analysis.plan([CLEAN._replace(n_mod_since_analyze=90_000)], SERVER, CONFIG)
    assert vacuum_analysis.database_stats_statement(analyze_only, 160000) is None
