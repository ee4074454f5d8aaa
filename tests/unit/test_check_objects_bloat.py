"""The checklist's items on invalid objects, cache hits, heap bloat and unused or duplicate indexes, judged on
hand-made rows; the index items on findings the advisor itself makes from hand-made catalog records."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from dbmaint.advisor import schema_findings
from dbmaint.check import checklist
from dbmaint.check.item import Query
from dbmaint.check.items import ITEMS, cache_hit, heap_bloat, invalid_objects, unused_indexes
from dbmaint.check.items.unused_indexes import StandbyIndexScan, StandbyIndexScans, StandbyRead
from dbmaint.model import Finding
from dbmaint.pg.facts import IndexDefinition, SchemaFacts, SchemaIndex, StatsWindow
from tests.unit.helpers import ORDERS_A_INDEX, ORDERS_TABLE

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)
WEEK = timedelta(days=7)
MB = 1024 * 1024
TABLE = ORDERS_TABLE
INDEX = ORDERS_A_INDEX._replace(idx_scan=0)
WINDOW = StatsWindow(stats_reset=NOW - timedelta(days=30), database_created=None, collected_at=NOW)


def index(oid: int, name: str, columns: list[int], **changes: Any) -> SchemaIndex:
    """An index on public.orders over attribute numbers: 1 is column a, 2 is b, and so on."""
    n = len(columns)
    fields: dict[str, Any] = {
        "index_oid": oid,
        "name": name,
        "key_attnums": columns,
        "key_columns": [chr(ord("a") + c - 1) for c in columns],
        "opclasses": [1978] * n,
        "collations": [0] * n,
        "options": [0] * n,
    }
    return INDEX._replace(**(fields | changes))


def advisor_findings(*indexes: SchemaIndex, definitions: dict[int, IndexDefinition] | None = None) -> list[Finding]:
    facts = SchemaFacts((TABLE,), indexes, (), definitions or {}, NOW - timedelta(days=30), NOW)
    return schema_findings.findings(facts)


def standby(name: str, scans: dict[str, int], counted: timedelta = timedelta(days=20)) -> StandbyRead:
    return StandbyRead(name, scans, NOW - counted, NOW)


# --- the items as registered ---


def test_the_items_are_registered_in_their_order_with_their_sources() -> None:
    by_name = {item.name: item for item in ITEMS}
    expected = {
        "invalid_indexes": 300,
        "not_valid_constraints": 310,
        "cache_hit": 320,
        "heap_bloat": 330,
        "unused_indexes": 340,
        "duplicate_indexes": 350,
    }
    assert {name: by_name[name].order for name in expected} == expected
    assert "standby_index_scans" in by_name["unused_indexes"].source_names()
    assert "standby_index_scans" not in by_name["duplicate_indexes"].source_names()
    for item in ITEMS:  # every source an item names can be read
        for source in item.sources:
            assert isinstance(source, Query) or source in checklist.SOURCES, (item.name, source)


# --- invalid_indexes ---


def test_invalid_indexes_name_each_with_its_size_and_fix() -> None:
    failed = index(1001, "orders_b", [2], is_valid=False, is_unique=True, size_bytes=3 * MB)
    leftover = index(1002, "orders_a_ccnew", [1], is_valid=False, size_bytes=MB)
    building = index(1003, "orders_c", [3], is_valid=False, build_running=True)
    definition = IndexDefinition(1001, "CREATE UNIQUE INDEX orders_b ON public.orders USING btree (b)", ["b"], None)
    item = invalid_objects.invalid_indexes(advisor_findings(failed, leftover, building, definitions={1001: definition}))
    assert item.status == "fail"
    assert item.evidence.startswith("2 invalid index(es), 4.0 MB in all")
    assert "public.orders_b (3.0 MB)" in item.evidence
    assert "public.orders_a_ccnew (1.0 MB, left by a failed REINDEX CONCURRENTLY)" in item.evidence
    assert "orders_c" not in item.evidence  # a build in progress is invalid until it ends
    assert item.fix is not None
    assert (
        'DROP INDEX CONCURRENTLY "public"."orders_b"; '
        "CREATE UNIQUE INDEX CONCURRENTLY orders_b ON public.orders USING btree (b)" in item.fix
    )
    assert "dbmaint reindex drops the 1 leftover(s)" in item.fix
    assert 'DROP INDEX CONCURRENTLY "public"."orders_a_ccnew"' in item.fix


def test_an_invalid_index_whose_definition_could_not_be_read_is_dropped_then_built_again() -> None:
    failed = index(1001, "orders_b", [2], is_valid=False)  # its table was locked: no printed definition
    item = invalid_objects.invalid_indexes(advisor_findings(failed))
    assert item.status == "fail"
    assert item.fix == 'DROP INDEX CONCURRENTLY "public"."orders_b", then CREATE INDEX CONCURRENTLY it again'


def test_no_invalid_index_passes() -> None:
    assert invalid_objects.invalid_indexes(advisor_findings(index(1001, "orders_b", [2]))).status == "pass"
    building = index(1003, "orders_c", [3], is_valid=False, build_running=True)
    assert invalid_objects.invalid_indexes(advisor_findings(building)).status == "pass"


# --- not_valid_constraints ---


def constraint(name: str, kind: str = "c", table: str = "orders") -> invalid_objects.NotValidConstraint:
    referenced = ("public", "customers") if kind == "f" else (None, None)
    return invalid_objects.NotValidConstraint("public", table, name, kind, 8192, *referenced)


def test_not_valid_constraints_warn_with_quoted_validate_statements() -> None:
    item = invalid_objects.not_valid_constraints([constraint("Positive total", table="Orders"), constraint("fk", "f")])
    assert item.status == "warn"
    assert 'check "Positive total" on public."Orders"' in item.evidence
    assert "foreign key fk on public.orders (to public.customers)" in item.evidence
    assert item.fix is not None
    assert item.fix.startswith(
        'ALTER TABLE public."Orders" VALIDATE CONSTRAINT "Positive total"; '
        "ALTER TABLE public.orders VALIDATE CONSTRAINT fk:"
    )
    assert "SHARE UPDATE EXCLUSIVE" in item.fix
    assert invalid_objects.not_valid_constraints([]).status == "pass"


# --- cache_hit ---


def totals(heap: tuple[int, int], index: tuple[int, int]) -> cache_hit.CacheTotals:
    return cache_hit.CacheTotals(*heap, *index, 8192, "128MB", datetime(2026, 11, 1, tzinfo=UTC))


READERS = [
    cache_hit.CacheReader("table", "public", "events", 9_000, 1_000),
    cache_hit.CacheReader("table", "Sales", "big", 100, 100),
    cache_hit.CacheReader("index", "public", "events_pkey", 5, 50_000),
]


def test_cache_hit_warns_below_the_threshold_naming_the_readers() -> None:
    item = cache_hit.cache_hit(totals((90_000, 10_000), (99_995, 5)), READERS, 0.99)
    assert item.status == "warn"
    assert "tables 90.0%, indexes 99.9% of block accesses found in shared_buffers (128MB)" in item.evidence
    assert "since the statistics reset of 2026-11-01" in item.evidence
    # The tables' rate is low: the tables that read the most are named, not the indexes.
    assert 'table public.events (70.3 MB read in), table "Sales".big (800.0 kB read in)' in item.evidence
    assert "events_pkey" not in item.evidence
    assert item.fix is not None and "shared_buffers" in item.fix


def test_cache_hit_passes_and_never_rounds_up_to_the_threshold() -> None:
    assert cache_hit.cache_hit(totals((99_500, 500), (99_990, 10)), READERS, 0.99).status == "pass"
    short = cache_hit.cache_hit(totals((98_996, 1_004), (99_990, 10)), READERS, 0.99)
    assert short.status == "warn" and "tables 98.9%" in short.evidence


def test_cache_hit_is_unknown_with_too_few_accesses() -> None:
    item = cache_hit.cache_hit(totals((5_000, 10), (100, 0)), READERS, 0.99)
    assert item.status == "unknown"
    assert "only 5,010 table and 100 index block accesses" in item.evidence
    # One side with enough accesses is judged alone, and says the other could not be.
    partial = cache_hit.cache_hit(totals((50_000, 10), (100, 0)), READERS, 0.99)
    assert partial.status == "pass"
    assert "tables 99.9%" in partial.evidence and "too few index block accesses" in partial.evidence


# --- heap_bloat ---


def bloat(name: str, size: int, wasted: int, **changes: Any) -> heap_bloat.HeapBloatRow:
    fields: dict[str, Any] = {
        "schema": "public", "name": name, "size_bytes": size, "has_stats": True, "fillfactor": 100,
        "wasted_bytes": wasted, "exact_size_bytes": None, "exact_wasted_bytes": None, "measure": "not a candidate",
    }  # fmt: skip
    return heap_bloat.HeapBloatRow(**(fields | changes))


def test_heap_bloat_warns_past_both_thresholds_on_the_estimate() -> None:
    rows = [
        bloat("events", 1000 * MB, 600 * MB, measure="not installed"),
        bloat("small", 10 * MB, 9 * MB),  # most of it wasted, but under bloat_min_wasted
        bloat("huge", 10_000 * MB, 500 * MB),  # 500 MB, but only 5% of it
    ]
    item = heap_bloat.heap_bloat(rows, {}, 0.3, 100 * MB)
    assert item.status == "warn"
    assert item.evidence.startswith(
        "1 table(s) waste at least 30% of its size and 100.0 MB: public.events (600.0 MB of 1000.0 MB wasted, "
        "60%, estimated)"
    )
    assert "pgstattuple is not installed" in item.evidence
    assert "small" not in item.evidence and "huge" not in item.evidence
    assert item.fix is not None
    assert item.fix.startswith("VACUUM FULL public.events rewrites it compactly but holds an ACCESS EXCLUSIVE lock")
    assert "(pg_repack or pg_squeeze, once installed, rewrite a table online)" in item.fix
    assert "plain VACUUM only makes the room reusable" in item.fix


def test_heap_bloat_takes_the_measure_over_the_estimate() -> None:
    measured = bloat("events", 1000 * MB, 600 * MB, exact_size_bytes=990 * MB, exact_wasted_bytes=50 * MB)
    item = heap_bloat.heap_bloat([replace(measured, measure="measured")], {}, 0.3, 100 * MB)
    assert item.status == "pass"  # the estimate was wrong: pgstattuple read the table
    assert "1 table(s) measured with pgstattuple_approx(), only the most wasteful by the estimate" in item.evidence
    confirmed = replace(measured, measure="measured", exact_wasted_bytes=700 * MB)
    item = heap_bloat.heap_bloat([confirmed], {}, 0.3, 100 * MB)
    assert item.status == "warn"
    assert "public.events (700.0 MB of 990.0 MB wasted, 71%, measured)" in item.evidence


def test_heap_bloat_says_why_a_table_was_not_measured_or_not_estimated() -> None:
    rows = [
        bloat("events", 1000 * MB, 600 * MB, measure="not allowed"),
        bloat("locked", 1000 * MB, 500 * MB, measure="locked"),
        bloat("unanalysed", 5000 * MB, 0, has_stats=False),
        bloat("tiny", MB, 0, has_stats=False),
    ]
    item = heap_bloat.heap_bloat(rows, {}, 0.3, 100 * MB)
    assert item.status == "warn"
    assert "this role may not run pgstattuple_approx() (it needs pg_stat_scan_tables, or superuser)" in item.evidence
    assert "public.locked not measured: an ACCESS EXCLUSIVE lock is held or awaited on it" in item.evidence
    assert "1 table(s) of 100.0 MB or more not estimated" in item.evidence and "public.unanalysed" in item.evidence
    assert "tiny" not in item.evidence
    assert heap_bloat.heap_bloat(rows[2:], {}, 0.3, 100 * MB).status == "pass"


def test_heap_bloat_offers_the_online_rewrites_installed() -> None:
    rows = [bloat("Event log", 1000 * MB, 600 * MB, schema="o'hara")]
    extensions = {
        "pg_repack": heap_bloat.Extension("pg_repack", "public", "1.5.0"),
        "pg_squeeze": heap_bloat.Extension("pg_squeeze", "squeeze", "1.7"),
    }
    fix = heap_bloat.heap_bloat(rows, extensions, 0.3, 100 * MB).fix
    assert fix is not None
    assert fix.startswith('VACUUM FULL "o\'hara"."Event log" rewrites it')
    assert 'pg_repack --table=\'"o\'"\'"\'hara"."Event log"\' rewrites it online' in fix
    assert "SELECT squeeze.squeeze_table('o''hara', 'Event log', NULL, NULL, NULL)" in fix
    assert "once installed" not in fix


# --- unused_indexes and duplicate_indexes ---

UNUSED_A = index(1001, "orders_a", [1])
UNUSED_B = index(1002, "orders_b", [2], size_bytes=3 * MB)


def test_unused_indexes_without_standbys() -> None:
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), StandbyIndexScans(), WINDOW, 0, WEEK)
    assert item.status == "warn"
    assert item.evidence.startswith(
        "2 index(es), 5.0 MB in all, never scanned on the primary (statistics counting since 2026-10-27 12:00 UTC)"
    )
    assert "public.orders_b (3.0 MB), public.orders_a (2.0 MB)" in item.evidence
    assert item.fix is not None
    assert item.fix.startswith(
        'DROP INDEX CONCURRENTLY "public"."orders_b"; DROP INDEX CONCURRENTLY "public"."orders_a"'
    )
    assert "dbmaint advise lists them" in item.fix and "migration" in item.fix
    # Standbys stream from this server, but none is listed: their scans are not counted, and it says so.
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), StandbyIndexScans(), WINDOW, 2, WEEK)
    assert item.status == "warn"
    assert "2 physical standby(s) stream from this server but none is listed" in item.evidence


def test_an_index_scanned_on_a_standby_is_not_unused() -> None:
    scans = StandbyIndexScans((standby("host=replica1", {"public.orders_a": 42, "public.orders_b": 0}),))
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), scans, WINDOW, 1, WEEK)
    assert item.status == "warn"
    assert "1 index(es), 3.0 MB in all, never scanned on the primary and on 1 standby(s)" in item.evidence
    assert "on standby host=replica1 since 2026-11-06 12:00 UTC" in item.evidence
    assert "public.orders_a (42 scans) scanned on a standby, so not counted" in item.evidence
    assert item.fix is not None and "orders_a" not in item.fix
    assert "none is listed" not in item.evidence and "are listed" not in item.evidence
    # Two stream, one is listed: the other's scans are not counted, and it says so.
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), scans, WINDOW, 2, WEEK)
    assert "2 physical standbys stream from this server and 1 are listed" in item.evidence
    everything = StandbyIndexScans((standby("host=replica1", {"public.orders_a": 1, "public.orders_b": 7}),))
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), everything, WINDOW, 1, WEEK)
    assert item.status == "pass"
    assert "scanned on a standby: public.orders_b (7 scans), public.orders_a (1 scans)" in item.evidence


def test_scans_on_a_duplicate_count_for_the_index_kept_in_its_place() -> None:
    twin = index(1003, "orders_a_twin", [1])  # identical to orders_a: the advisor keeps the older orders_a
    found = advisor_findings(UNUSED_A, twin)
    assert {(f.kind, f.index) for f in found} == {
        ("duplicate_index", "public.orders_a_twin"),
        ("unused_index", "public.orders_a"),
    }
    scans = StandbyIndexScans((standby("host=replica1", {"public.orders_a": 0, "public.orders_a_twin": 9}),))
    assert unused_indexes.unused_indexes(found, scans, WINDOW, 1, WEEK).status == "pass"


def test_a_standby_not_read_makes_the_unused_indexes_unknown() -> None:
    scans = StandbyIndexScans(
        (standby("host=replica1", {"public.orders_a": 0, "public.orders_b": 5}),),
        {"host=replica2": "connection refused"},
    )
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), scans, WINDOW, 2, WEEK)
    assert item.status == "unknown"
    assert "public.orders_a (2.0 MB)" in item.evidence
    assert "standby host=replica2 could not be read: connection refused" in item.evidence
    assert item.fix is not None and "do not drop" in item.fix
    # Nothing is unused on the primary: there is nothing a standby could change.
    assert unused_indexes.unused_indexes([], scans, WINDOW, 2, WEEK).status == "pass"


def test_a_standby_counting_briefly_or_missing_an_index_makes_them_unknown() -> None:
    young = StandbyIndexScans(
        (standby("host=replica1", {"public.orders_a": 0, "public.orders_b": 0}, timedelta(hours=3)),)
    )
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), young, WINDOW, 1, WEEK)
    assert item.status == "unknown"
    assert "standby host=replica1 counts scans only since 2026-11-26 09:00 UTC" in item.evidence
    lagging = StandbyIndexScans((standby("host=replica1", {"public.orders_a": 0}),))
    item = unused_indexes.unused_indexes(advisor_findings(UNUSED_A, UNUSED_B), lagging, WINDOW, 1, WEEK)
    assert item.status == "unknown"
    assert "standby host=replica1 does not have public.orders_b" in item.evidence


def test_standby_scans_are_summed_over_the_standbys() -> None:
    rows = [
        StandbyIndexScan("public", "orders_a", 3, NOW - WEEK, NOW),
        StandbyIndexScan("public", "orders_b", 0, NOW - WEEK, NOW),
    ]
    one = StandbyRead.from_rows("host=replica1", rows)
    assert one.observed() == WEEK
    both = StandbyIndexScans((one, standby("host=replica2", {"public.orders_a": 4})))
    assert both.scans == {"public.orders_a": 7, "public.orders_b": 0}
    assert StandbyRead.from_rows("host=replica3", []).observed() is None


def test_duplicate_indexes() -> None:
    twin = index(1003, "orders_a_twin", [1], size_bytes=MB)
    wide = index(1004, "orders_b_c", [2, 3])
    found = advisor_findings(
        index(1001, "orders_a", [1], idx_scan=5), twin, index(1002, "orders_b", [2], idx_scan=1), wide
    )
    item = unused_indexes.duplicate_indexes(found)
    assert item.status == "warn"
    assert item.evidence.startswith("1 duplicate and 1 redundant index(es), 3.0 MB in all:")
    assert "public.orders_a_twin (1.0 MB, duplicate)" in item.evidence
    assert "public.orders_b (2.0 MB, redundant)" in item.evidence
    assert item.fix is not None
    assert 'DROP INDEX CONCURRENTLY "public"."orders_b"' in item.fix
    assert 'DROP INDEX CONCURRENTLY "public"."orders_a_twin"' in item.fix
    only_twin = unused_indexes.duplicate_indexes(advisor_findings(index(1001, "orders_a", [1], idx_scan=5), twin))
    assert only_twin.evidence.startswith("1 duplicate index(es), 1.0 MB in all: public.orders_a_twin")
    assert unused_indexes.duplicate_indexes(advisor_findings(index(1001, "orders_a", [1]))).status == "pass"


def test_no_unused_index_while_the_statistics_are_too_young_is_unknown_not_a_pass() -> None:
    """The advisor calls nothing unused under a week of counting: with unscanned indexes, that silence is no pass."""
    young = StatsWindow(stats_reset=NOW - timedelta(hours=3), database_created=None, collected_at=NOW)
    item = unused_indexes.unused_indexes([], StandbyIndexScans(), young, 0, WEEK, unscanned=4)
    assert item.status == "unknown"
    assert item.evidence.startswith("4 index(es) not scanned yet, but the statistics have counted for 3 hour(s)")
    unknown_start = StatsWindow(stats_reset=None, database_created=None, collected_at=NOW)
    item = unused_indexes.unused_indexes([], StandbyIndexScans(), unknown_start, 0, WEEK, unscanned=1)
    assert item.status == "unknown" and "for an unknown time" in item.evidence
    created = StatsWindow(stats_reset=None, database_created=NOW - timedelta(days=40), collected_at=NOW)
    assert unused_indexes.unused_indexes([], StandbyIndexScans(), created, 0, WEEK, unscanned=1).status == "pass"
    # Every index scanned: nothing to doubt, however young the statistics.
    assert unused_indexes.unused_indexes([], StandbyIndexScans(), young, 0, WEEK, unscanned=0).status == "pass"
