"""dbmaint check on a real server: invalid indexes and constraints, cache hits, heap bloat, and unused or
duplicate indexes with the scans of a standby; each item made to fail or warn, then to pass."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import psycopg
import pytest

from dbmaint.advisor import schema_findings
from dbmaint.pg import db
from dbmaint.pg.cluster import Cluster, free_port
from dbmaint.units import format_size
from tests.db.conftest import Database, Invoke
from tests.db.helpers import LockHolder, database_exists, json_output, replayed, wait_for

WriteConfig = Callable[[str], str]


def check(dbmaint: Invoke, *args: str) -> dict[str, dict[str, Any]]:
    """The items of one database's checklist by name. The test cluster runs with autovacuum off, so its
    autovacuum_keeps_up item fails, and with it the command: exit 1 whatever the items here say."""
    document = json_output(dbmaint("check", *args, "--format", "json"), exit_code=1)
    return {item["check"]: item for item in document["items"]}


# --- invalid_indexes ---


def test_an_invalid_index_fails_until_dropped(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, email text)",
        "INSERT INTO accounts SELECT g, 'user' || (g % 500) FROM generate_series(1, 1000) AS g",
    )
    with pytest.raises(psycopg.errors.UniqueViolation):  # duplicate emails: the build fails, its index stays
        database.execute("CREATE UNIQUE INDEX CONCURRENTLY accounts_email ON accounts (email)")

    item = check(dbmaint, "--dsn", database.dsn)["invalid_indexes"]
    assert item["status"] == "fail"
    size = format_size(database.value("SELECT relpages * 8192 FROM pg_class WHERE relname = 'accounts_email'"))
    assert item["evidence"].startswith("1 invalid index(es)")
    assert f"public.accounts_email ({size})" in item["evidence"]
    assert 'DROP INDEX CONCURRENTLY "public"."accounts_email"; ' in item["fix"]
    assert "CREATE UNIQUE INDEX CONCURRENTLY accounts_email ON public.accounts USING btree (email)" in item["fix"]

    database.execute('DROP INDEX CONCURRENTLY "public"."accounts_email"')
    assert check(dbmaint, "--dsn", database.dsn)["invalid_indexes"]["status"] == "pass"


def test_an_index_being_built_is_not_invalid(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, email text)",
        "CREATE TABLE other (id int)",
        "INSERT INTO accounts SELECT g, 'user' || g FROM generate_series(1, 1000) AS g",
    )
    # An open snapshot elsewhere makes CREATE INDEX CONCURRENTLY wait, its index invalid meanwhile.
    holder = LockHolder(database.dsn, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", "SELECT count(*) FROM other")
    build = threading.Thread(
        target=lambda: database.execute("CREATE INDEX CONCURRENTLY accounts_email ON accounts (email)"), daemon=True
    )
    build.start()
    try:
        wait_for(lambda: database.value("SELECT count(*) FROM pg_index WHERE NOT indisvalid") == 1)
        wait_for(lambda: database.value("SELECT count(*) FROM pg_stat_progress_create_index") == 1)
        item = check(dbmaint, "--dsn", database.dsn)["invalid_indexes"]
        assert item["status"] == "pass", item
    finally:
        holder.release()
        build.join(timeout=30)
    assert database.value("SELECT bool_and(indisvalid) FROM pg_index WHERE indexrelid = 'accounts_email'::regclass")


# --- not_valid_constraints ---


def test_not_valid_constraints_warn_until_validated(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE parents (id int PRIMARY KEY)",
        'CREATE TABLE "Children" (id int PRIMARY KEY, parent_id int)',
        "INSERT INTO parents SELECT generate_series(1, 10)",
        'INSERT INTO "Children" SELECT g, g FROM generate_series(1, 10) AS g',
        'ALTER TABLE "Children" ADD CONSTRAINT children_parent FOREIGN KEY (parent_id) REFERENCES parents NOT VALID',
        'ALTER TABLE "Children" ADD CONSTRAINT "positive id" CHECK (id > 0) NOT VALID',
    )
    item = check(dbmaint, "--dsn", database.dsn)["not_valid_constraints"]
    assert item["status"] == "warn"
    assert item["evidence"].startswith("2 constraint(s) added NOT VALID and never validated")
    assert item["evidence"].endswith(
        'foreign key children_parent on public."Children" (to public.parents), check "positive id" on public."Children"'
    )

    statements = item["fix"].split(":")[0].split("; ")  # the fix runs as it is written
    assert statements == [
        'ALTER TABLE public."Children" VALIDATE CONSTRAINT children_parent',
        'ALTER TABLE public."Children" VALIDATE CONSTRAINT "positive id"',
    ]
    database.execute(*statements)
    assert check(dbmaint, "--dsn", database.dsn)["not_valid_constraints"]["status"] == "pass"


# --- cache_hit ---


def test_cache_hit_from_unknown_to_pass_to_warn(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE hot (id int, pad text)",
        "INSERT INTO hot SELECT g, repeat('h', 60) FROM generate_series(1, 8000) AS g",  # ~90 pages, in memory
        "SELECT pg_stat_reset()",
    )
    item = check(dbmaint, "--dsn", database.dsn)["cache_hit"]
    assert item["status"] == "unknown" and "too few to tell a cache hit rate" in item["evidence"]

    database.execute("DO $$ BEGIN FOR i IN 1..150 LOOP PERFORM count(*) FROM hot; END LOOP; END $$")
    item = check(dbmaint, "--dsn", database.dsn)["cache_hit"]
    assert item["status"] == "pass"
    rate = re.match(r"tables (\d+\.\d)% of block accesses found in shared_buffers \(128MB\) since", item["evidence"])
    assert rate is not None and float(rate.group(1)) >= 99.0, item
    assert "too few index block accesses to tell theirs" in item["evidence"]

    # 47 MB written by CREATE TABLE AS keeps at most 16 MB in shared_buffers (its ring of buffers), and a
    # table over a quarter of shared_buffers (128 MB) is scanned through a small ring: each scan reads it in.
    database.execute(
        "CREATE TABLE cold AS SELECT g AS id, repeat('c', 200) AS pad FROM generate_series(1, 200000) AS g",
        "SET max_parallel_workers_per_gather = 0",  # the scans' counts in this session, flushed with it
        "SELECT count(*) FROM cold",
        "SELECT count(*) FROM cold",
    )
    item = check(dbmaint, "--dsn", database.dsn)["cache_hit"]
    assert item["status"] == "warn", item
    assert "below check.cache_hit_warn 99.0%; the most read in: table public.cold (" in item["evidence"]
    assert "shared_buffers" in item["fix"]


# --- heap_bloat ---


def test_heap_bloat_estimated_then_measured_then_gone(
    database: Database, dbmaint: Invoke, write_config: WriteConfig
) -> None:
    database.execute(
        "CREATE TABLE events (id int PRIMARY KEY, pad text)",
        "INSERT INTO events SELECT g, repeat('e', 100) FROM generate_series(1, 40000) AS g",  # ~5.5 MB
        "DELETE FROM events WHERE id % 10 <> 0",  # 90% of the rows, spread over every page: nothing to truncate
        "VACUUM ANALYZE events",
    )
    # At the default thresholds (100 MB wasted at least) a table of a few MB passes.
    assert check(dbmaint, "--dsn", database.dsn)["heap_bloat"]["status"] == "pass"

    config = write_config(f'[[databases]]\nname = "app"\ndsn = "{database.dsn}"\n[check]\nbloat_min_wasted = "1MB"\n')
    item = check(dbmaint, "--config", config)["heap_bloat"]
    assert item["status"] == "warn"
    assert item["evidence"].startswith("1 table(s) waste at least 30% of its size and 1.0 MB: public.events (")
    assert ", estimated)" in item["evidence"]
    assert "pgstattuple is not installed" in item["evidence"]
    assert item["fix"].startswith("VACUUM FULL public.events rewrites it compactly but holds an ACCESS EXCLUSIVE")
    assert "plain VACUUM only makes the room reusable" in item["fix"]

    database.execute("CREATE EXTENSION pgstattuple")
    item = check(dbmaint, "--config", config)["heap_bloat"]
    assert item["status"] == "warn"
    assert ", measured)" in item["evidence"]
    assert "1 table(s) measured with pgstattuple_approx()" in item["evidence"]
    wasted = database.value("SELECT approx_free_space + dead_tuple_len FROM pgstattuple_approx('events')")
    table_len = database.value("SELECT table_len FROM pgstattuple_approx('events')")
    assert f"({wasted / 2**20:.1f} MB of {table_len / 2**20:.1f} MB wasted" in item["evidence"]

    # A role without pg_stat_scan_tables may read the estimate, not run pgstattuple: it says so.
    database.execute("CREATE ROLE bloat_reader LOGIN", "GRANT SELECT ON events TO bloat_reader")
    try:
        as_reader = write_config(
            f'[[databases]]\nname = "app"\ndsn = "{database.dsn.replace("user=postgres", "user=bloat_reader")}"\n'
            '[check]\nbloat_min_wasted = "1MB"\n'
        )
        item = check(dbmaint, "--config", as_reader)["heap_bloat"]
        assert item["status"] == "warn" and ", estimated)" in item["evidence"]
        assert "this role may not run pgstattuple_approx() (it needs pg_stat_scan_tables" in item["evidence"]
    finally:
        database.execute("REVOKE SELECT ON events FROM bloat_reader", "DROP ROLE bloat_reader")

    database.execute("VACUUM FULL events", "ANALYZE events")
    item = check(dbmaint, "--config", config)["heap_bloat"]
    assert item["status"] == "pass", item
    assert item["evidence"].startswith("no table wastes at least 30% of its size and 1.0 MB")


# --- unused_indexes and duplicate_indexes, with a standby ---


@pytest.fixture
def counted_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """A database minutes old proves nothing unused (a week of statistics is asked for): count from now."""
    monkeypatch.setattr(schema_findings, "findings", partial(schema_findings.findings, min_observed=timedelta(0)))


def indexed_table(database: Database) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, a int, b int)",
        "INSERT INTO t SELECT g, g, g FROM generate_series(1, 10000) AS g",
        "CREATE INDEX t_a ON t (a)",
        "CREATE INDEX t_b ON t (b)",
        "CREATE INDEX t_b_twin ON t (b)",
        "ANALYZE t",
    )


def standby_config(write_config: WriteConfig, database: Database, *standbys: str) -> str:
    listed = ", ".join(f'"{dsn}"' for dsn in standbys)
    return write_config(
        f'[[databases]]\nname = "app"\ndsn = "{database.dsn}"\nstandbys = [{listed}]\n'
        '[safety]\nconnect_timeout = "2s"\n'
    )


def test_an_index_scanned_on_a_standby_is_not_unused(
    database: Database,
    standby: Cluster,
    dbmaint: Invoke,
    write_config: WriteConfig,
    counted_from_now: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    indexed_table(database)
    wait_for(lambda: database_exists(standby, database.name))
    wait_for(replayed(database, standby))
    with psycopg.connect(standby.dsn(database.name), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT count(*) FROM t WHERE a = 5")  # t_a, on the standby only
        conn.execute("SELECT pg_stat_force_next_flush()")

    # Without the standby, both look unused: and a standby streams from this server, unlisted.
    items = check(dbmaint, "--dsn", database.dsn)
    alone = items["unused_indexes"]
    assert alone["status"] == "warn"
    assert "public.t_a (" in alone["evidence"] and "public.t_b (" in alone["evidence"]
    assert "physical standby(s) stream from this server but none is listed" in alone["evidence"]
    duplicates = items["duplicate_indexes"]
    assert duplicates["status"] == "warn"
    assert "public.t_b_twin (" in duplicates["evidence"] and "duplicate)" in duplicates["evidence"]
    assert 'DROP INDEX CONCURRENTLY "public"."t_b_twin"' in duplicates["fix"]

    config = standby_config(write_config, database, standby.dsn(database.name))
    # The standby started minutes ago: its zeros say nothing yet, so t_b is not called unused.
    young = check(dbmaint, "--config", config)["unused_indexes"]
    assert young["status"] == "unknown"
    assert f"standby {db.mask_dsn(standby.dsn(database.name))} counts scans only since" in young["evidence"]
    assert "public.t_a (1 scans) scanned on a standby, so not counted" in young["evidence"]

    monkeypatch.setattr(schema_findings, "MIN_OBSERVED", timedelta(0))
    item = check(dbmaint, "--config", config)["unused_indexes"]
    assert item["status"] == "warn"
    assert item["evidence"].startswith("1 index(es),")
    assert "never scanned on the primary and on 1 standby(s)" in item["evidence"]
    assert "public.t_b (" in item["evidence"]
    assert "public.t_a (1 scans) scanned on a standby, so not counted" in item["evidence"]
    assert "none is listed" not in item["evidence"]
    assert item["fix"].startswith('DROP INDEX CONCURRENTLY "public"."t_b";') and "t_a" not in item["fix"]


def test_a_standby_that_cannot_be_read_makes_unused_indexes_unknown(
    database: Database,
    standby: Cluster,
    dbmaint: Invoke,
    write_config: WriteConfig,
    counted_from_now: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(schema_findings, "MIN_OBSERVED", timedelta(0))
    indexed_table(database)
    nobody_listens = f"host=127.0.0.1 port={free_port()} dbname={database.name} user=postgres"
    other_database = standby.dsn("postgres")  # a standby of this server, but not of this database
    the_primary = database.dsn  # a "replica" name that reaches the primary: its zeros are not a standby's
    config = standby_config(write_config, database, nobody_listens, other_database, the_primary)
    items = check(dbmaint, "--config", config)
    item = items["unused_indexes"]
    assert item["status"] == "unknown"
    assert "public.t_a (" in item["evidence"] and "public.t_b (" in item["evidence"]
    assert (
        f"standby {db.mask_dsn(nobody_listens)} could not be read: could not connect: connection to server"
        in (item["evidence"])
    )
    assert "Connection refused" in item["evidence"]
    assert (
        f"standby {db.mask_dsn(other_database)} could not be read: the DSN reaches database 'postgres'"
        in (item["evidence"])
    )
    assert f"standby {db.mask_dsn(the_primary)} could not be read: not a standby" in item["evidence"]
    assert "do not drop these" in item["fix"]
    assert items["duplicate_indexes"]["status"] == "warn"  # the standbys change nothing there


def dropped(revision: str) -> set[str]:
    """The indexes a drop revision's DROPS list names."""
    return set(re.findall(r'^    \("public", "([^"]+)", "t", ', revision, re.MULTILINE))


def test_drop_unused_leaves_out_an_index_a_standby_scans(
    database: Database,
    standby: Cluster,
    dbmaint: Invoke,
    write_config: WriteConfig,
    migrations: Path,
    counted_from_now: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`advise --write-migration --drop-unused` judges the standbys as the checklist does: an index scanned
    there, or with a standby whose counters say nothing yet, is left out of the revision with a note."""
    indexed_table(database)
    wait_for(lambda: database_exists(standby, database.name))
    wait_for(replayed(database, standby))
    with psycopg.connect(standby.dsn(database.name), autocommit=True) as conn:
        conn.execute("SET enable_seqscan = off")
        conn.execute("SELECT count(*) FROM t WHERE a = 5")  # t_a, on the standby only
        conn.execute("SELECT pg_stat_force_next_flush()")
    versions = str(migrations / "versions")
    advise = ("advise", "--no-stats", "--write-migration", "--drop-unused", "--versions-dir", versions)

    # Unlisted, the streaming standby may scan any of them: only the duplicate goes.
    alone = json_output(dbmaint(*advise, "--dsn", database.dsn, "--format", "json"), exit_code=0)
    [path] = alone["migrations"]
    source = Path(path).read_text()
    assert dropped(source) == {"t_b_twin"}
    Path(path).unlink()

    config = standby_config(write_config, database, standby.dsn(database.name))
    young = dbmaint(*advise, "--config", config)
    assert young.exit_code == 0, young.stderr
    assert "public.t_a: scanned on a standby (1 scans): not dropped" in young.output
    assert "public.t_b: not known to be unused on every standby: standby" in young.output
    for written in (migrations / "versions").glob("*drop_indexes*.py"):
        written.unlink()

    monkeypatch.setattr(schema_findings, "MIN_OBSERVED", timedelta(0))
    counted = json_output(dbmaint(*advise, "--config", config, "--format", "json"), exit_code=0)
    [path] = counted["migrations"]
    source = Path(path).read_text()
    assert dropped(source) == {"t_b", "t_b_twin"}


def test_heap_bloat_on_a_standby_leaves_unlogged_tables_out(
    database: Database, standby: Cluster, dbmaint: Invoke
) -> None:
    """A standby has no data for an unlogged table: measuring it would fail the item ("could not open file")."""
    database.execute(
        "CREATE EXTENSION IF NOT EXISTS pgstattuple",
        "CREATE UNLOGGED TABLE scratch (id int, pad text)",
        "INSERT INTO scratch SELECT g, repeat('x', 200) FROM generate_series(1, 20000) g",
        "DELETE FROM scratch WHERE id % 2 = 0",
        "ANALYZE scratch",
    )
    wait_for(lambda: database_exists(standby, database.name))
    wait_for(replayed(database, standby))
    items = check(dbmaint, "--dsn", standby.dsn(database.name))
    assert items["heap_bloat"]["status"] != "unknown", items["heap_bloat"]
