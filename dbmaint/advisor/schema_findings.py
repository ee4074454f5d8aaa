"""Schema findings of the index advisor, decided from catalog facts alone (no workload needed).

Missing primary keys, foreign keys no index serves, duplicate, redundant, unused and invalid indexes. An index
that backs a constraint (primary key, unique, exclusion, the unique index a foreign key references), the
replica identity, or a partition's share of a partitioned index is never suggested for dropping.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import datetime, timedelta

from psycopg import sql

from dbmaint.model import Finding, render
from dbmaint.pg.facts import IndexDefinition, SchemaFacts, SchemaForeignKey, SchemaIndex, SchemaTable
from dbmaint.units import format_size

# Most important first: broken objects, then locking and replication hazards, then waste.
KIND_ORDER = (
    "invalid_index",
    "unindexed_foreign_key",
    "missing_primary_key",
    "duplicate_index",
    "redundant_index",
    "unused_index",
)
# idx_scan = 0 means little until the statistics have counted for a while (after a reset, or a creation).
MIN_OBSERVED = timedelta(days=7)
NAMEDATALEN = 64  # PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes
_CONCURRENT_LEFTOVER = re.compile(r"_cc(new|old)[0-9]*$")


def findings(facts: SchemaFacts, *, min_observed: timedelta = MIN_OBSERVED) -> list[Finding]:
    """All schema findings, most important kind first and, within a kind, the highest rank first."""
    duplicates = _duplicate_pairs(facts)
    redundant = _redundant_pairs(facts, dropped={drop.index_oid for drop, _ in duplicates})
    # Each index reported once; the one kept inherits the scans of those it replaces.
    replaced_by = {drop.index_oid: keep.index_oid for drop, keep in [*duplicates, *redundant]}
    found = [
        *invalid_indexes(facts),
        *unindexed_foreign_keys(facts),
        *missing_primary_keys(facts),
        *(_duplicate_finding(drop, keep, facts.definitions) for drop, keep in duplicates),
        *(_redundant_finding(drop, keep, facts.definitions) for drop, keep in redundant),
        *unused_indexes(facts, replaced_by=replaced_by, min_observed=min_observed),
    ]
    return sorted(found, key=lambda f: (KIND_ORDER.index(f.kind), -f.rank, f.table, f.index or "", f.columns))


# --- missing_primary_key ---


def missing_primary_keys(facts: SchemaFacts) -> list[Finding]:
    """Tables without a primary key. Partitions are left to their partitioned table: a key declared there is
    created on every partition, and a partition of a table that has one has it too."""
    by_table = _indexes_by_table(facts.indexes)
    taken = _names_by_schema(facts)
    found = []
    for table in facts.tables:
        if table.has_primary_key or table.is_partition or table.extension_member:
            continue
        candidate = _key_candidate(by_table.get(table.relid, []))
        found.append(_missing_key_finding(table, candidate, taken[table.schema]))
    return found


def _key_candidate(indexes: Sequence[SchemaIndex]) -> SchemaIndex | None:
    """A valid unique btree index on plain NOT NULL columns, total and not partial: it already is a key.

    Prefer one that ADD PRIMARY KEY USING INDEX takes as it is (no constraint, default sort order), then the
    narrowest, then the smallest.
    """
    usable = [
        i
        for i in indexes
        if i.is_valid and i.is_unique and i.method == "btree" and i.key_not_null and i.predicate is None
        if i.expressions is None and not i.is_partition
    ]
    return min(usable, key=lambda i: (not _adoptable(i), len(i.key_attnums), i.size_bytes, i.index_oid), default=None)


def _adoptable(index: SchemaIndex) -> bool:
    """Whether ALTER TABLE ... ADD PRIMARY KEY USING INDEX accepts the index (no scan, no new build)."""
    return index.constraint_name is None and index.key_default_sorting and not index.is_partitioned


def _missing_key_finding(table: SchemaTable, candidate: SchemaIndex | None, taken: set[str]) -> Finding:
    what = (
        f"Partitioned table {table.qualified_name} ({_count(table.partitions, 'partition')}, {_size_rows(table)})"
        if table.is_partitioned
        else f"Table {table.qualified_name} ({_size_rows(table)})"
    )
    if candidate is None:
        must = (
            f"; a key on it must include the partition key ({', '.join(table.partition_key)})"
            if table.is_partitioned
            else ""
        )
        detail = (
            f"{what} has no primary key and no unique index on NOT NULL columns, so its rows have no identity "
            f"(logical replication cannot publish its updates and deletes, duplicate rows go unnoticed){must}."
        )
        return Finding("missing_primary_key", table.qualified_name, detail, rank=float(table.size_bytes + 1))
    columns = tuple(candidate.key_columns)
    backing = (
        f"unique constraint {candidate.constraint_name}"
        if candidate.constraint_name
        else f"unique index {candidate.qualified_name}"
    )
    detail = (
        f"{what} has no primary key, but its {backing} on NOT NULL columns ({', '.join(columns)}) could serve as one."
    )
    return Finding(
        "missing_primary_key",
        table.qualified_name,
        detail,
        columns=columns,
        index=candidate.qualified_name,
        fix=_primary_key_fix(table, candidate, taken),
        rank=(table.size_bytes + 1) / 2,  # a unique NOT NULL key already identifies the rows
    )


def _primary_key_fix(table: SchemaTable, candidate: SchemaIndex, taken: set[str]) -> str:
    name = sql.Identifier(table.schema, table.name)
    columns = sql.SQL(", ").join(sql.Identifier(c) for c in candidate.key_columns)
    if table.is_partitioned:  # USING INDEX and CONCURRENTLY are refused on partitioned tables
        return render(sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(name, columns))
    if _adoptable(candidate):
        return render(
            sql.SQL("ALTER TABLE {} ADD PRIMARY KEY USING INDEX {}").format(name, sql.Identifier(candidate.name))
        )
    # Its index belongs to a constraint (or sorts differently): build a twin without blocking writes, adopt that.
    index = sql.Identifier(_unique_name(f"{table.name}_pkey", taken))
    build = sql.SQL("CREATE UNIQUE INDEX CONCURRENTLY {} ON {} ({})").format(index, name, columns)
    adopt = sql.SQL("ALTER TABLE {} ADD PRIMARY KEY USING INDEX {}").format(name, index)
    return f"{render(build)}; {render(adopt)}"


# --- unindexed_foreign_key ---


def unindexed_foreign_keys(facts: SchemaFacts) -> list[Finding]:
    """Foreign keys whose columns no valid, total index on the referencing table leads with.

    Deleting or updating a referenced key makes PostgreSQL look up the referencing rows; without such an
    index that is a full scan of the referencing table, under a lock, for every referenced row.
    """
    tables = {t.relid: t for t in facts.tables}
    by_table = _indexes_by_table(facts.indexes)
    taken = _names_by_schema(facts)
    found = []
    for fk in facts.foreign_keys:
        table = tables.get(fk.table_oid)
        candidates = by_table.get(fk.table_oid, [])
        if (table is not None and table.extension_member) or any(serves_foreign_key(i, fk) for i in candidates):
            continue
        partial = [i for i in candidates if i.is_valid and i.predicate is not None and _leads_with(i, fk.attnums)]
        found.append(_foreign_key_finding(fk, table, tables.get(fk.referenced_oid), partial, taken[fk.schema]))
    return found


def serves_foreign_key(index: SchemaIndex, fk: SchemaForeignKey) -> bool:
    """Whether the index can find a foreign key's referencing rows: valid, over all rows, and its first n key
    columns are exactly the key's n columns, in any order. A BRIN index is only a summary and does not count."""
    return index.is_valid and index.predicate is None and index.method != "brin" and _leads_with(index, fk.attnums)


def _leads_with(index: SchemaIndex, attnums: Sequence[int]) -> bool:
    leading = index.key_attnums[: len(attnums)]
    return len(leading) == len(attnums) and Counter(leading) == Counter(attnums)


def _foreign_key_finding(
    fk: SchemaForeignKey,
    table: SchemaTable | None,
    referenced: SchemaTable | None,
    partial: Sequence[SchemaIndex],
    taken: set[str],
) -> Finding:
    writes = referenced.n_tup_upd + referenced.n_tup_del if referenced else 0
    pages = table.relpages if table else 0
    size = f" ({_size_rows(table)})" if table else ""
    partial_names = ", ".join(i.qualified_name for i in partial)
    partial_note = f"; the partial index {partial_names} does not count, as it covers only some rows" if partial else ""
    partitioned = table is not None and table.is_partitioned
    lock_note = (
        "; CREATE INDEX CONCURRENTLY is refused on a partitioned table, so the build blocks writes"
        if partitioned
        else ""
    )
    detail = (
        f"Foreign key {fk.name} ({', '.join(fk.columns)}) has no index on {fk.table}{size} leading with its "
        f"columns, so every delete or key update on {fk.referenced} ({writes:,} updates and deletes counted) "
        f"must scan {fk.table}{partial_note}{lock_note}."
    )
    name = _unique_name(f"{fk.table_name}_{'_'.join(fk.columns)}_idx", taken)
    verb = "CREATE INDEX" if partitioned else "CREATE INDEX CONCURRENTLY"
    create = sql.SQL(verb + " {} ON {} ({})").format(
        sql.Identifier(name),
        sql.Identifier(fk.schema, fk.table_name),
        sql.SQL(", ").join(sql.Identifier(c) for c in fk.columns),
    )
    return Finding(
        "unindexed_foreign_key",
        fk.table,
        detail,
        columns=tuple(fk.columns),
        fix=render(create),
        # Referenced-side writes each pay a scan of the referencing table: both make it worse.
        rank=float((writes + 1) * (pages + 1)),
    )


# --- duplicate_index and redundant_index ---


def duplicate_indexes(facts: SchemaFacts) -> list[Finding]:
    """Valid indexes identical in method, key columns (with operator classes, collations, order), expressions,
    INCLUDE columns and predicate. One of each set is kept: one backing a constraint, else a unique one, else
    the oldest (lowest OID)."""
    return [_duplicate_finding(drop, keep, facts.definitions) for drop, keep in _duplicate_pairs(facts)]


def _duplicate_pairs(facts: SchemaFacts) -> list[tuple[SchemaIndex, SchemaIndex]]:
    """(index to drop, index kept) for every droppable duplicate."""
    groups: defaultdict[tuple[object, ...], list[SchemaIndex]] = defaultdict(list)
    for index in _valid_user_indexes(facts):
        groups[_signature(index)].append(index)
    pairs = []
    for group in groups.values():
        keep = max(group, key=lambda i: (_protected(i), i.is_unique, i.nulls_not_distinct, -i.index_oid))
        pairs += [(index, keep) for index in group if index is not keep and _may_drop_for(index, keep)]
    return pairs


def _signature(index: SchemaIndex) -> tuple[object, ...]:
    return (
        index.table_oid,
        index.method,
        tuple(index.key_attnums),
        tuple(index.opclasses),
        tuple(index.collations),
        tuple(index.options),
        index.expressions,
        tuple(index.include_columns),
        index.predicate,
    )


def _may_drop_for(index: SchemaIndex, keep: SchemaIndex) -> bool:
    """Droppable in favour of ``keep``: not protected, and no uniqueness guarantee lost with it."""
    if _protected(index):
        return False
    return not index.is_unique or (keep.is_unique and (keep.nulls_not_distinct or not index.nulls_not_distinct))


def _duplicate_finding(index: SchemaIndex, keep: SchemaIndex, definitions: Mapping[int, IndexDefinition]) -> Finding:
    why = f"which backs constraint {keep.constraint_name}" if keep.constraint_name else _kept_because(keep)
    columns = _display_columns(index, definitions)
    detail = (
        f"Index {index.qualified_name} on ({', '.join(columns)}) duplicates {keep.qualified_name} ({why}): same "
        f"method, key columns, INCLUDE columns and predicate; dropping it saves {format_size(index.size_bytes)} "
        f"and its upkeep on every write."
    )
    return _drop_finding("duplicate_index", index, columns, detail)


def _kept_because(keep: SchemaIndex) -> str:
    if keep.referenced_by_foreign_key:
        return "which a foreign key references"
    if keep.is_replica_identity:
        return "the replica identity"
    if keep.is_partition:
        return "part of a partitioned index"
    return "unique" if keep.is_unique else "the older one"


def redundant_indexes(facts: SchemaFacts, dropped: Collection[int] = ()) -> list[Finding]:
    """Btree indexes whose key columns lead another valid btree index with the same predicate (and whose INCLUDE
    columns that one also holds): the longer index serves the same lookups. Unique and protected ones stay.
    ``dropped``: OIDs of indexes already to be dropped, which cannot cover another."""
    return [_redundant_finding(drop, keep, facts.definitions) for drop, keep in _redundant_pairs(facts, dropped)]


def _redundant_pairs(facts: SchemaFacts, dropped: Collection[int] = ()) -> list[tuple[SchemaIndex, SchemaIndex]]:
    """(index to drop, the widest index covering it) for every redundant index."""
    pairs = []
    for indexes in _indexes_by_table(_valid_user_indexes(facts)).values():
        remaining = [i for i in indexes if i.index_oid not in dropped]
        for index in remaining:
            if index.is_unique or _protected(index) or index.method != "btree" or index.expressions is not None:
                continue
            covering = [other for other in remaining if other is not index and covers(other, index)]
            if covering:
                pairs.append((index, max(covering, key=lambda i: (_protected(i), len(i.key_attnums), -i.index_oid))))
    return pairs


def covers(wide: SchemaIndex, narrow: SchemaIndex) -> bool:
    """Whether ``wide`` serves every lookup ``narrow`` serves, and is not merely its duplicate."""
    n = len(narrow.key_attnums)
    same_prefix = (
        wide.method == narrow.method == "btree"
        and wide.predicate == narrow.predicate
        and 0 not in narrow.key_attnums
        and wide.key_attnums[:n] == narrow.key_attnums
        and wide.opclasses[:n] == narrow.opclasses
        and wide.collations[:n] == narrow.collations
        and wide.options[:n] == narrow.options
    )
    if not same_prefix:
        return False
    wide_columns = {*wide.key_columns, *wide.include_columns}
    if not set(narrow.include_columns) <= wide_columns:
        return False  # narrow answers index-only scans on columns wide lacks
    return len(wide.key_attnums) > n or set(wide.include_columns) > set(narrow.include_columns)


def _redundant_finding(index: SchemaIndex, wide: SchemaIndex, definitions: Mapping[int, IndexDefinition]) -> Finding:
    columns = _display_columns(index, definitions)
    scans = f"its {index.idx_scan:,} scans would use the larger index" if index.idx_scan else "it has no scans"
    detail = (
        f"Index {index.qualified_name} on ({', '.join(columns)}) is a leading part of {wide.qualified_name} on "
        f"({', '.join(_display_columns(wide, definitions))}), which serves the same lookups; dropping it saves "
        f"{format_size(index.size_bytes)} and its upkeep on every write ({scans})."
    )
    return _drop_finding("redundant_index", index, columns, detail)


# --- unused_index ---


def unused_indexes(
    facts: SchemaFacts, replaced_by: Mapping[int, int] | None = None, min_observed: timedelta = MIN_OBSERVED
) -> list[Finding]:
    """Valid, non-unique, unprotected indexes with no scan since the statistics began counting for them.

    The count starts at the statistics reset (never reset: the database's creation), or at the index's
    creation when that is later and known (track_commit_timestamp); under ``min_observed`` of counting, a
    zero says nothing yet, and when the start cannot be known nothing is claimed. An index that alone serves
    a foreign key is never reported: dropping it would make deletes on the referenced table scan. ``replaced_by`` maps
    indexes reported as duplicate or redundant to the index that takes over their scans.
    """
    scans = _scans_with_replaced(facts.indexes, replaced_by or {})
    found = []
    for index in _valid_user_indexes(facts):
        if scans[index.index_oid] or index.is_unique or _protected(index) or index.index_oid in (replaced_by or {}):
            continue
        if _sole_foreign_key_index(index, facts):
            continue
        since = _counting_since(facts.stats_reset or facts.database_created, index.created_at)
        if since is None or facts.collected_at - since < min_observed:
            continue
        found.append(_unused_finding(index, since, facts))
    return found


def _scans_with_replaced(indexes: Iterable[SchemaIndex], replaced_by: Mapping[int, int]) -> Counter[int]:
    """Each index's scans plus those of the indexes it replaces (a duplicate's keeper may be redundant in turn)."""
    scans: Counter[int] = Counter()
    for index in indexes:
        target, seen = index.index_oid, set()
        while target in replaced_by and target not in seen:
            seen.add(target)
            target = replaced_by[target]
        scans[target] += index.idx_scan
    return scans


def _ago(elapsed: timedelta) -> str:
    days = elapsed.days
    return "less than a day ago" if days < 1 else "1 day ago" if days == 1 else f"{days:,} days ago"


def _counting_since(stats_reset: datetime | None, created_at: datetime | None) -> datetime | None:
    known = [t for t in (stats_reset, created_at) if t is not None]
    return max(known) if known else None


def _sole_foreign_key_index(index: SchemaIndex, facts: SchemaFacts) -> bool:
    """The index serves a foreign key of its table that no other valid index serves."""
    others = [i for i in facts.indexes if i.table_oid == index.table_oid and i.index_oid != index.index_oid]
    return any(
        serves_foreign_key(index, fk) and not any(serves_foreign_key(other, fk) for other in others)
        for fk in facts.foreign_keys
        if fk.table_oid == index.table_oid
    )


def _unused_finding(index: SchemaIndex, since: datetime, facts: SchemaFacts) -> Finding:
    if since == index.created_at:
        origin = "it was created"
    elif since == facts.stats_reset:
        origin = "the statistics were reset"
    else:
        origin = "the database was created (statistics never reset)"
    window = f"since {origin} {_ago(facts.collected_at - since)} ({since:%Y-%m-%d %H:%M %Z})".replace(" )", ")")
    columns = _display_columns(index, facts.definitions)
    detail = (
        f"Index {index.qualified_name} on ({', '.join(columns)}) has not been scanned {window} and takes "
        f"{format_size(index.size_bytes)}; scans on standbys are not counted here, so check them before dropping it."
    )
    return _drop_finding("unused_index", index, columns, detail)


# --- invalid_index ---


def invalid_indexes(facts: SchemaFacts) -> list[Finding]:
    """Indexes left invalid by a failed concurrent build, except while a build runs on their table (an index
    being built concurrently is invalid until it is done)."""
    return [
        _invalid_finding(index, facts.definitions.get(index.index_oid))
        for index in facts.indexes
        if not index.is_valid and not index.build_running and not index.extension_member
    ]


def _invalid_finding(index: SchemaIndex, definition: IndexDefinition | None) -> Finding:
    columns = tuple(definition.key_columns) if definition else tuple(index.key_columns)
    size = format_size(index.size_bytes)
    upkeep = "is still updated on every write but" if index.is_ready else "is"
    leftover = _CONCURRENT_LEFTOVER.search(index.name)
    drop = _drop_statement(index)
    if index.is_partitioned:
        detail = (
            f"Partitioned index {index.qualified_name} is invalid because not every partition has a matching "
            f"index attached; create the missing ones and attach them with ALTER INDEX {index.qualified_name} "
            f"ATTACH PARTITION."
        )
        return _invalid(index, columns, detail, None)
    if leftover:
        copy = "new copy" if leftover.group(1) == "new" else "old copy"
        other = "the original is still in place" if copy == "new copy" else "its replacement is in place"
        detail = (
            f"Index {index.qualified_name} ({size}) is invalid, the {copy} left by a failed REINDEX CONCURRENTLY; "
            f"it {upkeep} never used and {other}, so drop it (dbmaint reindex does)."
        )
        return _invalid(index, columns, detail, drop)
    unique = (
        "; as a unique index it enforces nothing, and the build may have failed on duplicate values"
        if index.is_unique
        else ""
    )
    detail = (
        f"Index {index.qualified_name} ({size}) is invalid, most likely from a failed CREATE INDEX CONCURRENTLY: "
        f"it {upkeep} never used{unique}; drop it and build it again."
    )
    fix = f"{drop}; {_concurrent_create(definition.definition)}" if definition else drop
    return _invalid(index, columns, detail, fix)


def _invalid(index: SchemaIndex, columns: tuple[str, ...], detail: str, fix: str | None) -> Finding:
    return Finding(
        "invalid_index",
        index.table,
        detail,
        columns=columns,
        index=index.qualified_name,
        fix=fix,
        rank=float(index.size_bytes),
    )


def _concurrent_create(definition: str) -> str:
    return re.sub(r"^CREATE (UNIQUE )?INDEX ", r"CREATE \1INDEX CONCURRENTLY ", definition, count=1)


# --- shared ---


def _protected(index: SchemaIndex) -> bool:
    """Whether dropping the index would break something other than queries' speed."""
    return (
        index.constraint_name is not None
        or index.referenced_by_foreign_key
        or index.is_replica_identity
        or index.is_partition  # refused alone: it goes with its partitioned index
    )


def _valid_user_indexes(facts: SchemaFacts) -> list[SchemaIndex]:
    return [i for i in facts.indexes if i.is_valid and not i.extension_member]


def _indexes_by_table(indexes: Iterable[SchemaIndex]) -> dict[int, list[SchemaIndex]]:
    grouped: defaultdict[int, list[SchemaIndex]] = defaultdict(list)
    for index in indexes:
        grouped[index.table_oid].append(index)
    return dict(grouped)


def _display_columns(index: SchemaIndex, definitions: Mapping[int, IndexDefinition]) -> tuple[str, ...]:
    definition = definitions.get(index.index_oid)
    return tuple(definition.key_columns if definition else index.key_columns)


def _drop_statement(index: SchemaIndex) -> str:
    # DROP INDEX CONCURRENTLY is refused on a partitioned index.
    verb = "DROP INDEX" if index.is_partitioned else "DROP INDEX CONCURRENTLY"
    return render(sql.SQL(verb + " {}").format(sql.Identifier(index.schema, index.name)))


def _drop_finding(kind: str, index: SchemaIndex, columns: tuple[str, ...], detail: str) -> Finding:
    return Finding(
        kind,
        index.table,
        detail,
        columns=columns,
        index=index.qualified_name,
        fix=_drop_statement(index),
        rank=float(index.size_bytes),
        index_oid=index.index_oid,
    )


def _size_rows(table: SchemaTable) -> str:
    rows = f", about {round(table.reltuples):,} rows" if table.reltuples > 0 else ""
    return f"{format_size(table.size_bytes)}{rows}"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def _names_by_schema(facts: SchemaFacts) -> defaultdict[str, set[str]]:
    """Relation names known in each schema, which a new index's name must not collide with."""
    names: defaultdict[str, set[str]] = defaultdict(set)
    for schema, name in [*((t.schema, t.name) for t in facts.tables), *((i.schema, i.name) for i in facts.indexes)]:
        names[schema].add(name)
    return names


def _unique_name(base: str, taken: set[str]) -> str:
    """An index name as PostgreSQL would keep it (at most 63 bytes), made unique with a number if need be."""
    for n in range(1000):
        suffix = str(n) if n else ""
        name = _truncate(base, NAMEDATALEN - 1 - len(suffix)) + suffix
        if name not in taken:
            return name
    return base  # unreachable in practice; PostgreSQL would then report the clash itself


def _truncate(name: str, max_bytes: int) -> str:
    return name.encode()[:max_bytes].decode(errors="ignore")
