"""pg_stat_statements created in the database but not loaded by the server (not in shared_preload_libraries,
or a standby restarted without it): every read of it fails with SQLSTATE 55000, which psycopg raises as an
OperationalError like a lost connection. It is the one source missing, not the session: the schema findings,
the rest of the checklist and the pass go on, and nothing is reported as a lost connection."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest

from dbmaint.pg.cluster import Cluster
from tests.db.conftest import Invoke
from tests.db.helpers import json_output


@pytest.fixture(scope="module")
def dsn() -> Iterator[str]:
    cluster = Cluster(settings={"autovacuum": "off"}).start()  # nothing preloaded
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE app")
        with psycopg.connect(cluster.dsn("app"), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE TABLE customers (id int PRIMARY KEY)")
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, customer_id int REFERENCES customers)")
            conn.execute("CREATE INDEX orders_a ON orders (customer_id) WHERE false")  # serves no FK
        yield cluster.dsn("app")
    finally:
        cluster.destroy()


def test_check_judges_the_schema_items_without_the_workload(dsn: str, dbmaint: Invoke) -> None:
    document = json_output(dbmaint("check", "--dsn", dsn, "--format", "json"), exit_code=1)
    items = {item["check"]: item for item in document["items"]}
    for name in ("foreign_keys_indexed", "invalid_indexes", "duplicate_indexes"):
        assert items[name]["status"] != "unknown", items[name]
    assert items["foreign_keys_indexed"]["status"] in ("warn", "fail")
    assert "orders" in items["foreign_keys_indexed"]["evidence"]
    assert "connection lost" not in str(document)
    assert items["slow_queries"]["status"] == "unknown"
    assert items["slow_queries"]["fix"] == "add pg_stat_statements to shared_preload_libraries and restart the server"


def test_advise_gives_the_schema_findings_and_says_why_there_is_no_workload(dsn: str, dbmaint: Invoke) -> None:
    document = json_output(dbmaint("advise", "--dsn", dsn, "--format", "json"), exit_code=0)
    assert any(f["kind"] == "unindexed_foreign_key" for f in document["findings"]), document["findings"]
    notes = " ".join(document["notes"])
    assert "pg_stat_statements could not be read" in notes and "shared_preload_libraries" in notes


def test_capture_is_skipped_with_the_reason_not_failed_as_a_lost_connection(dsn: str, dbmaint: Invoke) -> None:
    result = dbmaint("capture", "--dsn", dsn, "--format", "json")
    assert result.exit_code == 0, result.output
    assert "connection lost" not in result.output + result.stderr
    assert "shared_preload_libraries" in result.output + result.stderr
