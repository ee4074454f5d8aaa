"""The schema findings of the index advisor, decided from hand-made catalog records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from dbmaint.advisor import schema_findings
from dbmaint.model import Finding
from dbmaint.pg.facts import IndexDefinition, SchemaFacts, SchemaForeignKey, SchemaIndex, SchemaTable
from tests.unit.helpers import ORDERS_A_INDEX, ORDERS_TABLE

NOW = datetime(2026, 11, 26, 3, 0, tzinfo=UTC)
INT4_OPS, TEXT_PATTERN_OPS = 1978, 4217  # pg_opclass OIDs
TABLE, INDEX = ORDERS_TABLE, ORDERS_A_INDEX
FK = SchemaForeignKey(
    constraint_oid=500, name="orders_a_fkey", schema="public", table_name="orders", table_oid=100, columns=["a"],
    attnums=[1], referenced_schema="public", referenced_table="customers", referenced_oid=200,
)  # fmt: skip
CUSTOMERS = TABLE._replace(relid=200, name="customers", relpages=10, size_bytes=10 * 8192)


def index(oid: int, columns: list[str], **changes: Any) -> SchemaIndex:
    """An index on public.orders over named columns: a is attribute 1, b is 2, and so on."""
    attnums = [ord(c) - ord("a") + 1 for c in columns]
    defaults: dict[str, Any] = {
        "index_oid": oid,
        "name": f"orders_{'_'.join(columns)}_{oid}",
        "key_attnums": attnums,
        "key_columns": columns,
        "opclasses": [INT4_OPS] * len(columns),
        "collations": [0] * len(columns),
        "options": [0] * len(columns),
    }
    return INDEX._replace(**{**defaults, **changes})


def facts(
    tables: tuple[SchemaTable, ...] = (TABLE, CUSTOMERS),
    indexes: tuple[SchemaIndex, ...] = (),
    foreign_keys: tuple[SchemaForeignKey, ...] = (),
    definitions: dict[int, IndexDefinition] | None = None,
    stats_reset: datetime | None = None,
) -> SchemaFacts:
    return SchemaFacts(tables, indexes, foreign_keys, definitions or {}, stats_reset, NOW)


def kinds(found: list[Finding], kind: str) -> dict[str | None, Finding]:
    """Findings of one kind by index (or by table, for findings about no index)."""
    return {(f.index if f.index is not None else f.table): f for f in found if f.kind == kind}


# --- missing_primary_key ---


def test_table_without_primary_key_is_flagged_with_its_size() -> None:
    table = TABLE._replace(has_primary_key=False)
    (finding,) = schema_findings.missing_primary_keys(facts(tables=(table,)))
    assert finding.kind == "missing_primary_key" and finding.table == "public.orders"
    assert "8.0 MB, about 100,000 rows" in finding.detail and "no unique index on NOT NULL columns" in finding.detail
    assert finding.fix is None


def test_tables_with_a_key_partitions_and_extension_tables_are_not_flagged() -> None:
    tables = (
        TABLE,
        TABLE._replace(relid=101, name="orders_2026", has_primary_key=False, is_partition=True),
        TABLE._replace(relid=102, name="spatial_ref_sys", has_primary_key=False, extension_member=True),
    )
    assert schema_findings.missing_primary_keys(facts(tables=tables)) == []


def test_unique_index_on_not_null_columns_is_suggested_as_the_key() -> None:
    table = TABLE._replace(has_primary_key=False)
    candidate = index(1, ["a", "b"], is_unique=True, key_not_null=True)
    nullable = index(2, ["c"], is_unique=True, key_not_null=False)
    partial = index(3, ["d"], is_unique=True, key_not_null=True, predicate="{OPEXPR}")
    (finding,) = schema_findings.missing_primary_keys(facts(tables=(table,), indexes=(candidate, nullable, partial)))
    assert finding.index == "public.orders_a_b_1" and finding.columns == ("a", "b")
    assert "unique index public.orders_a_b_1 on NOT NULL columns (a, b) could serve as one" in finding.detail
    assert finding.fix == 'ALTER TABLE "public"."orders" ADD PRIMARY KEY USING INDEX "orders_a_b_1"'
    assert finding.rank < table.size_bytes  # a table that has a usable key is less urgent


def test_a_unique_constraint_or_a_descending_index_is_adopted_through_a_twin_built_concurrently() -> None:
    table = TABLE._replace(has_primary_key=False)
    constraint = index(1, ["a"], is_unique=True, key_not_null=True, constraint_name="orders_a_key", constraint_type="u")
    (finding,) = schema_findings.missing_primary_keys(facts(tables=(table,), indexes=(constraint,)))
    assert "unique constraint orders_a_key on NOT NULL columns (a)" in finding.detail
    assert finding.fix == (
        'CREATE UNIQUE INDEX CONCURRENTLY "orders_pkey" ON "public"."orders" ("a"); '
        'ALTER TABLE "public"."orders" ADD PRIMARY KEY USING INDEX "orders_pkey"'
    )
    descending = index(2, ["a"], is_unique=True, key_not_null=True, key_default_sorting=False, options=[3])
    (finding,) = schema_findings.missing_primary_keys(facts(tables=(table,), indexes=(descending,)))
    assert finding.fix is not None and finding.fix.startswith("CREATE UNIQUE INDEX CONCURRENTLY")


def test_partitioned_table_names_its_partition_key() -> None:
    table = TABLE._replace(has_primary_key=False, is_partitioned=True, partitions=12, partition_key=["created_at"])
    (finding,) = schema_findings.missing_primary_keys(facts(tables=(table,)))
    assert finding.detail.startswith("Partitioned table public.orders (12 partitions,")
    assert "must include the partition key (created_at)" in finding.detail
    candidate = index(1, ["a", "b"], is_unique=True, key_not_null=True, is_partitioned=True)
    (finding,) = schema_findings.missing_primary_keys(facts(tables=(table,), indexes=(candidate,)))
    assert finding.fix == 'ALTER TABLE "public"."orders" ADD PRIMARY KEY ("a", "b")'


# --- unindexed_foreign_key ---


def test_foreign_key_without_index_is_flagged_with_a_concurrent_build() -> None:
    (finding,) = schema_findings.unindexed_foreign_keys(facts(foreign_keys=(FK,)))
    assert finding.kind == "unindexed_foreign_key" and finding.table == "public.orders"
    assert finding.columns == ("a",)
    assert finding.fix == 'CREATE INDEX CONCURRENTLY "orders_a_idx" ON "public"."orders" ("a")'
    assert "every delete or key update on public.customers" in finding.detail
    assert "public.orders (8.0 MB, about 100,000 rows)" in finding.detail


def test_foreign_key_served_by_leading_columns_in_any_order_is_not_flagged() -> None:
    composite = FK._replace(columns=["a", "b"], attnums=[1, 2])
    for covering in (index(1, ["a"]), index(2, ["a", "c"]), index(3, ["a", "b"], is_unique=True)):
        assert schema_findings.unindexed_foreign_keys(facts(indexes=(covering,), foreign_keys=(FK,))) == [], covering
    assert (
        schema_findings.unindexed_foreign_keys(facts(indexes=(index(3, ["b", "a", "c"]),), foreign_keys=(composite,)))
        == []
    )


def test_foreign_key_not_leading_an_index_is_flagged() -> None:
    composite = FK._replace(columns=["a", "b"], attnums=[1, 2])
    cases = [
        (FK, index(1, ["c", "a"])),  # second column only
        (composite, index(2, ["a", "c", "b"])),  # b not among the first two
        (composite, index(3, ["a"])),  # only part of the key
        (FK, index(4, ["a"], is_valid=False)),
        (FK, index(5, ["a"], method="brin")),
        (FK, index(6, ["a"])._replace(key_attnums=[0], expressions="({FUNCEXPR})")),
    ]
    for fk, other in cases:
        (finding,) = schema_findings.unindexed_foreign_keys(facts(indexes=(other,), foreign_keys=(fk,)))
        assert finding.columns == tuple(fk.columns), other


def test_partial_index_does_not_serve_a_foreign_key_and_is_named() -> None:
    partial = index(1, ["a"], predicate="{OPEXPR}")
    (finding,) = schema_findings.unindexed_foreign_keys(facts(indexes=(partial,), foreign_keys=(FK,)))
    assert "the partial index public.orders_a_1 does not count" in finding.detail


def test_foreign_keys_rank_by_referenced_writes_and_referencing_size() -> None:
    busy = CUSTOMERS._replace(relid=201, name="busy", n_tup_upd=5000, n_tup_del=1000)
    quiet = CUSTOMERS._replace(relid=202, name="quiet")
    small = TABLE._replace(relid=101, name="small", relpages=1)
    keys = (
        FK._replace(name="to_quiet", referenced_oid=202, referenced_table="quiet"),
        FK._replace(name="to_busy", referenced_oid=201, referenced_table="busy"),
        FK._replace(name="small_to_busy", table_oid=101, table_name="small", referenced_oid=201),
    )
    found = schema_findings.findings(facts(tables=(TABLE, small, busy, quiet), foreign_keys=keys))
    names = [f.detail.split()[2] for f in found if f.kind == "unindexed_foreign_key"]
    assert names == ["to_busy", "small_to_busy", "to_quiet"]
    assert "(6,000 updates and deletes counted)" in found[0].detail


def test_fix_quotes_names_and_avoids_taken_ones() -> None:
    odd = TABLE._replace(relid=300, schema="Sales", name="Order Lines")
    fk = FK._replace(schema="Sales", table_name="Order Lines", table_oid=300, columns=["Order Id"], attnums=[1])
    taken = INDEX._replace(index_oid=9, schema="Sales", name="Order Lines_Order Id_idx", table_oid=999)
    (finding,) = schema_findings.unindexed_foreign_keys(
        facts(tables=(odd, CUSTOMERS), indexes=(taken,), foreign_keys=(fk,))
    )
    assert finding.fix == 'CREATE INDEX CONCURRENTLY "Order Lines_Order Id_idx1" ON "Sales"."Order Lines" ("Order Id")'


def test_long_index_names_are_truncated_as_postgresql_would() -> None:
    fk = FK._replace(columns=["c" * 40, "d" * 40], attnums=[3, 4])
    (finding,) = schema_findings.unindexed_foreign_keys(facts(foreign_keys=(fk,)))
    assert finding.fix is not None
    name = finding.fix.split('"')[1]
    assert len(name.encode()) == 63 and name.startswith("orders_cccc")


def test_partitioned_referencing_table_gets_a_plain_build() -> None:
    table = TABLE._replace(is_partitioned=True)
    (finding,) = schema_findings.unindexed_foreign_keys(facts(tables=(table, CUSTOMERS), foreign_keys=(FK,)))
    assert finding.fix == 'CREATE INDEX "orders_a_idx" ON "public"."orders" ("a")'
    assert "refused on a partitioned table" in finding.detail


# --- duplicate_index ---


def test_identical_indexes_keep_the_older_one() -> None:
    older, newer = index(1, ["a", "b"]), index(2, ["a", "b"])
    (finding,) = schema_findings.duplicate_indexes(facts(indexes=(newer, older)))
    assert finding.index == "public.orders_a_b_2" and finding.fix == 'DROP INDEX CONCURRENTLY "public"."orders_a_b_2"'
    assert "duplicates public.orders_a_b_1 (the older one)" in finding.detail and "2.0 MB" in finding.detail


def test_index_backing_a_constraint_is_kept_even_when_newer() -> None:
    plain = index(1, ["a"])
    pkey = index(2, ["a"], is_unique=True, constraint_name="orders_pkey", constraint_type="p")
    (finding,) = schema_findings.duplicate_indexes(facts(indexes=(plain, pkey)))
    assert finding.index == "public.orders_a_1"
    assert "(which backs constraint orders_pkey)" in finding.detail


def test_protected_duplicates_are_never_suggested_for_dropping() -> None:
    pkey = index(1, ["a"], is_unique=True, constraint_name="orders_pkey", constraint_type="p")
    unique = index(2, ["a"], is_unique=True, constraint_name="orders_a_key", constraint_type="u")
    referenced = index(3, ["a"], is_unique=True, referenced_by_foreign_key=True)
    identity = index(4, ["a"], is_unique=True, is_replica_identity=True)
    attached = index(5, ["a"], is_partition=True)
    assert schema_findings.duplicate_indexes(facts(indexes=(pkey, unique, referenced, identity, attached))) == []


def test_uniqueness_is_not_dropped_in_favour_of_a_plain_index() -> None:
    exclusion = index(1, ["a"], constraint_name="orders_excl", constraint_type="x")
    unique = index(2, ["a"], is_unique=True)
    assert schema_findings.duplicate_indexes(facts(indexes=(exclusion, unique))) == []
    plain = index(3, ["a"])
    (finding,) = schema_findings.duplicate_indexes(facts(indexes=(plain, unique)))
    assert finding.index == "public.orders_a_3" and "(unique)" in finding.detail


def test_indexes_differing_in_predicate_opclass_order_or_include_are_not_duplicates() -> None:
    base = index(1, ["a"])
    others = [
        index(2, ["a"], predicate="{OPEXPR :opno 521}"),
        index(3, ["a"], opclasses=[TEXT_PATTERN_OPS]),
        index(4, ["a"], options=[3]),
        index(5, ["a"], include_columns=["c"]),
        index(6, ["a"], method="hash"),
    ]
    for other in others:
        assert schema_findings.duplicate_indexes(facts(indexes=(base, other))) == [], other


def test_expression_indexes_compare_their_expressions() -> None:
    lower = index(1, ["a"])._replace(key_attnums=[0], key_columns=["(expression)"], expressions="({FUNCEXPR :a})")
    same = lower._replace(index_oid=2, name="orders_lower_again")
    upper = lower._replace(index_oid=3, name="orders_upper", expressions="({FUNCEXPR :b})")
    definitions = {2: IndexDefinition(2, "CREATE INDEX ...", ["lower(a)"], None)}
    (finding,) = schema_findings.duplicate_indexes(facts(indexes=(lower, same, upper), definitions=definitions))
    assert finding.index == "public.orders_lower_again" and finding.columns == ("lower(a)",)


# --- redundant_index ---


def test_leading_prefix_of_another_index_is_redundant() -> None:
    narrow, wide = index(1, ["a"]), index(2, ["a", "b"])
    (finding,) = schema_findings.redundant_indexes(facts(indexes=(narrow, wide)))
    assert finding.index == "public.orders_a_1" and finding.fix == 'DROP INDEX CONCURRENTLY "public"."orders_a_1"'
    assert "is a leading part of public.orders_a_b_2 on (a, b)" in finding.detail
    assert "its 5 scans would use the larger index" in finding.detail


def test_the_widest_covering_index_is_named() -> None:
    found = schema_findings.redundant_indexes(
        facts(indexes=(index(1, ["a"]), index(2, ["a", "b"]), index(3, ["a", "b", "c"])))
    )
    assert {f.index: f.detail.split(" is a leading part of ")[1].split()[0] for f in found} == {
        "public.orders_a_1": "public.orders_a_b_c_3",
        "public.orders_a_b_2": "public.orders_a_b_c_3",
    }


def test_wider_include_columns_make_an_index_redundant_but_missing_ones_do_not() -> None:
    plain, covering = index(1, ["a"]), index(2, ["a"], include_columns=["c"])
    assert [f.index for f in schema_findings.redundant_indexes(facts(indexes=(plain, covering)))] == [
        "public.orders_a_1"
    ]
    narrow_include, wide = index(3, ["a"], include_columns=["d"]), index(4, ["a", "b"])
    assert schema_findings.redundant_indexes(facts(indexes=(narrow_include, wide))) == []


def test_prefixes_that_are_not_redundant() -> None:
    wide = index(9, ["a", "b"])
    others = [
        index(1, ["a"], is_unique=True),
        index(2, ["a"], constraint_name="orders_a_excl", constraint_type="x"),
        index(3, ["a"], predicate="{OPEXPR}"),
        index(4, ["b"]),
        index(5, ["a"], options=[3]),
        index(6, ["a"], method="hash"),
    ]
    for other in others:
        assert schema_findings.redundant_indexes(facts(indexes=(other, wide))) == [], other
    assert schema_findings.redundant_indexes(facts(indexes=(index(7, ["a"]), wide._replace(is_valid=False)))) == []


# --- unused_index ---


def test_unused_index_since_the_database_was_created() -> None:
    unused = index(1, ["b"], idx_scan=0)
    old_database = facts(indexes=(unused,))._replace(database_created=NOW - timedelta(days=60))
    (finding,) = schema_findings.unused_indexes(old_database)
    assert finding.index == "public.orders_b_1" and finding.fix == 'DROP INDEX CONCURRENTLY "public"."orders_b_1"'
    assert "has not been scanned since the database was created (statistics never reset) 60 days ago" in finding.detail
    assert "takes 2.0 MB" in finding.detail and "scans on standbys are not counted here" in finding.detail


def test_nothing_is_claimed_when_the_count_start_is_unknown() -> None:
    # A database created seconds ago, or a role that cannot see when: a zero proves nothing.
    assert schema_findings.unused_indexes(facts(indexes=(index(1, ["b"], idx_scan=0),))) == []


def test_unused_index_since_a_reset_shows_the_reset_time() -> None:
    unused = index(1, ["b"], idx_scan=0)
    (finding,) = schema_findings.unused_indexes(facts(indexes=(unused,), stats_reset=NOW - timedelta(days=30)))
    assert "since the statistics were reset 30 days ago (2026-10-27 03:00 UTC)" in finding.detail


def test_a_short_count_says_nothing() -> None:
    unused = index(1, ["b"], idx_scan=0)
    assert schema_findings.unused_indexes(facts(indexes=(unused,), stats_reset=NOW - timedelta(hours=2))) == []
    young = unused._replace(created_at=NOW - timedelta(days=1))
    assert schema_findings.unused_indexes(facts(indexes=(young,), stats_reset=NOW - timedelta(days=90))) == []
    older = unused._replace(created_at=NOW - timedelta(days=20))
    (finding,) = schema_findings.unused_indexes(facts(indexes=(older,), stats_reset=NOW - timedelta(days=90)))
    assert "since it was created 20 days ago" in finding.detail


def test_used_unique_protected_and_invalid_indexes_are_not_unused() -> None:
    others = [
        index(1, ["a"], idx_scan=3),
        index(2, ["a"], idx_scan=0, is_unique=True),
        index(3, ["a"], idx_scan=0, constraint_name="orders_excl", constraint_type="x"),
        index(4, ["a"], idx_scan=0, is_partition=True),
        index(5, ["a"], idx_scan=0, is_valid=False),
        index(6, ["a"], idx_scan=0, extension_member=True),
    ]
    for other in others:
        assert schema_findings.unused_indexes(facts(indexes=(other,), stats_reset=NOW - timedelta(days=30))) == [], (
            other
        )


def test_partitioned_index_is_dropped_without_concurrently() -> None:
    partitioned = index(1, ["a"], idx_scan=0, is_partitioned=True)
    (finding,) = schema_findings.unused_indexes(facts(indexes=(partitioned,), stats_reset=NOW - timedelta(days=30)))
    assert finding.fix == 'DROP INDEX "public"."orders_a_1"'


# --- invalid_index ---


def test_reindex_leftover_is_only_dropped() -> None:
    leftover = index(1, ["a"], name="orders_a_ccnew1", is_valid=False)
    (finding,) = schema_findings.invalid_indexes(facts(indexes=(leftover,)))
    assert finding.kind == "invalid_index" and finding.fix == 'DROP INDEX CONCURRENTLY "public"."orders_a_ccnew1"'
    assert "the new copy left by a failed REINDEX CONCURRENTLY" in finding.detail
    assert "still updated on every write" in finding.detail


def test_failed_build_is_dropped_and_built_again() -> None:
    failed = index(1, ["a"], name="orders_a_key", is_valid=False, is_ready=False, is_unique=True)
    definition = IndexDefinition(1, "CREATE UNIQUE INDEX orders_a_key ON public.orders USING btree (a)", ["a"], None)
    (finding,) = schema_findings.invalid_indexes(facts(indexes=(failed,), definitions={1: definition}))
    assert finding.fix == (
        'DROP INDEX CONCURRENTLY "public"."orders_a_key"; '
        "CREATE UNIQUE INDEX CONCURRENTLY orders_a_key ON public.orders USING btree (a)"
    )
    assert "failed CREATE INDEX CONCURRENTLY" in finding.detail and "duplicate values" in finding.detail
    assert "still updated" not in finding.detail


def test_invalid_index_being_built_is_left_alone_and_partitioned_one_is_explained() -> None:
    building = index(1, ["a"], is_valid=False, build_running=True)
    assert schema_findings.invalid_indexes(facts(indexes=(building,))) == []
    partitioned = index(2, ["a"], is_valid=False, is_partitioned=True)
    (finding,) = schema_findings.invalid_indexes(facts(indexes=(partitioned,)))
    assert "ATTACH PARTITION" in finding.detail and finding.fix is None


# --- all together ---


def test_findings_are_ordered_by_kind_then_rank_and_an_index_is_reported_once() -> None:
    table = TABLE._replace(has_primary_key=False)
    small_unused = index(1, ["c"], idx_scan=0, size_bytes=8192)
    big_unused = index(2, ["d"], idx_scan=0, size_bytes=10 * 8192)
    duplicate = index(3, ["c"], idx_scan=0)  # a duplicate of small_unused, unused too
    prefix = index(4, ["e"], idx_scan=0)
    wide = index(5, ["e", "f"], idx_scan=1)
    invalid = index(6, ["g"], is_valid=False)
    found = schema_findings.findings(
        facts(
            tables=(table, CUSTOMERS),
            indexes=(small_unused, big_unused, duplicate, prefix, wide, invalid),
            foreign_keys=(FK,),
            stats_reset=NOW - timedelta(days=30),
        )
    )
    assert [(f.kind, f.index) for f in found] == [
        ("invalid_index", "public.orders_g_6"),
        ("unindexed_foreign_key", None),
        ("missing_primary_key", None),
        ("duplicate_index", "public.orders_c_3"),
        ("redundant_index", "public.orders_e_4"),
        ("unused_index", "public.orders_d_2"),
        ("unused_index", "public.orders_c_1"),
    ]


def test_the_index_kept_inherits_the_scans_of_the_ones_it_replaces() -> None:
    kept, used_duplicate = index(1, ["a"], idx_scan=0), index(2, ["a"], idx_scan=40)
    wide, used_prefix = index(3, ["b", "c"], idx_scan=0), index(4, ["b"], idx_scan=7)
    found = schema_findings.findings(facts(indexes=(kept, used_duplicate, wide, used_prefix)))
    assert [(f.kind, f.index) for f in found] == [
        ("duplicate_index", "public.orders_a_2"),
        ("redundant_index", "public.orders_b_4"),
    ]
    # Through a chain: the duplicate's keeper is itself covered by a wider index.
    chain = (index(1, ["a"], idx_scan=0), index(2, ["a"], idx_scan=9), index(5, ["a", "b"], idx_scan=0))
    assert [f.kind for f in schema_findings.findings(facts(indexes=chain))] == ["duplicate_index", "redundant_index"]


def test_the_only_index_serving_a_foreign_key_is_never_unused() -> None:
    window = NOW - timedelta(days=30)
    fk_index = index(1, ["a"], idx_scan=0)
    assert schema_findings.unused_indexes(facts(indexes=(fk_index,), foreign_keys=(FK,), stats_reset=window)) == []
    # With a second index leading with a, the unscanned one may go.
    wider = index(2, ["a", "b"], idx_scan=9)
    found = schema_findings.unused_indexes(facts(indexes=(fk_index, wider), foreign_keys=(FK,), stats_reset=window))
    assert [f.index for f in found] == ["public.orders_a_1"]
