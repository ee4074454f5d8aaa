"""`dbmaint demo` end to end: its own throwaway cluster, the sample shop, one pass of each job."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from dbmaint.check.items import ITEMS
from dbmaint.cli import cli
from dbmaint.config import AdvisorConfig
from dbmaint.demo import sample
from dbmaint.errors import ClusterError
from dbmaint.pg.cluster import find_bindir


def _have_server() -> bool:
    try:
        find_bindir()
    except ClusterError:
        return False
    return True


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not _have_server(), reason="PostgreSQL server binaries not installed"),
]

DIRTY = {"public.orders", "public.products", "public.events"}
CLEAN = {"public.customers", "public.order_items", "public.sessions"}
# The index each of the sample's slow queries lacks, by (table, leading column).
NEEDED = {("public.orders", "shipping_country"), ("public.order_items", "product_id"), ("public.events", "customer_id")}
CHECKS = {item.name for item in ITEMS}  # every item of the checklist


def _actions(document: dict[str, Any], job: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = document[job]["actions"]
    return actions


def test_every_slow_query_runs_often_enough_for_the_advisor() -> None:
    assert all(len(values) >= AdvisorConfig().min_calls for _, values in sample.SLOW_QUERIES)


def test_demo_vacuums_the_dirty_tables_and_rebuilds_the_bloated_index() -> None:
    result = CliRunner().invoke(cli, ["demo", "--format", "json"])

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)  # progress goes to stderr: stdout is one JSON document
    vacuumed = {a["object"] for a in _actions(document, "vacuum") if a["kind"] == "vacuum" and a["status"] == "done"}
    assert vacuumed >= DIRTY
    touched = {a["object"] for a in _actions(document, "vacuum")}
    assert not touched & CLEAN
    assert set(document["summary"]["left_alone"]) >= CLEAN
    rebuilt = [a for a in _actions(document, "reindex") if a["kind"] == "reindex" and a["status"] == "done"]
    assert rebuilt, _actions(document, "reindex")
    assert all(a["size_after"] < a["size_before"] for a in rebuilt)
    assert document["server"] == {"kept": False}
    assert "stopped the server and removed" in result.stderr

    # The advisor: an index for each slow query, proven with hypopg, and the sample's schema flaws.
    advice = document["advise"]
    assert advice["database"] == "shop"
    assert advice["verified"] is True, advice["notes"]
    assert advice["workload"]["analysed"] >= len(NEEDED)
    recommended = {(r["table"], r["columns"][0]): r for r in advice["recommendations"]}
    assert set(recommended) >= NEEDED, advice
    for key in NEEDED:
        (query, *_) = recommended[key]["queries"]
        assert "$1" in query["query"]  # recorded by pg_stat_statements with parameters
        assert query["calls"] >= AdvisorConfig().min_calls
        assert query["cost_after"] < query["cost_before"]
    fixes = recommended[("public.order_items", "product_id")]["closes"]
    assert fixes == ["unindexed foreign key on public.order_items (product_id)"]
    findings = {(f["kind"], f["table"], tuple(f["columns"])) for f in advice["findings"]}
    assert ("unindexed_foreign_key", "public.order_items", ("product_id",)) in findings
    assert any(kind == "missing_primary_key" and table == "public.events" for kind, table, _ in findings)
    # Seconds-old indexes are not yet "unused" (the demo server knows their age).
    assert not [f for f in advice["findings"] if f["kind"] == "unused_index"]

    # The checklist: every item with a status, failing on the sample's flaws, the vacuum run recorded.
    check = document["check"]
    statuses = {item["check"]: item["status"] for item in check["items"]}
    assert set(statuses) == CHECKS
    assert set(statuses.values()) <= {"pass", "warn", "fail", "unknown"}
    assert all(item["evidence"] for item in check["items"])
    assert check["status"] == "fail"
    assert statuses["primary_keys"] == statuses["foreign_keys_indexed"] == "fail"
    assert statuses["queried_columns_indexed"] == "fail"
    assert statuses["vacuum_scheduled"] == "pass"
    assert statuses["autovacuum_keeps_up"] == "fail"  # off in the demo server, on purpose

    summary = document["summary"]
    assert {(r["table"], r["columns"][0]) for r in summary["recommended"]} >= NEEDED
    assert summary["findings"]["unindexed_foreign_key"] == 1
    assert summary["findings"]["missing_primary_key"] == 1
    assert summary["check"] == "fail"


def test_demo_text_ends_with_the_advisor_and_the_checklist_in_the_summary() -> None:
    result = CliRunner().invoke(cli, ["demo"])

    assert result.exit_code == 0, result.output
    summary = result.stdout[result.stdout.index("Summary (") :]
    assert "order_items_product_id_idx for " in summary
    assert "also fixes the unindexed foreign key" in summary
    assert "advisor findings: 1 unindexed_foreign_key, 1 missing_primary_key" in summary
    assert "checklist: fail (fail: primary_keys, foreign_keys_indexed" in summary
    # What the demo changed from the defaults, said where its figures are.
    assert "reindex.min_size 5MB and advisor.min_total_time 10ms instead of the defaults 10MB and 100ms" in summary


def test_a_kept_demo_server_is_reachable_through_its_private_socket_only() -> None:
    """--keep leaves a passwordless superuser running: never on TCP, its socket in a 0700 directory."""
    import os
    import stat
    import subprocess

    import psycopg

    result = CliRunner().invoke(cli, ["demo", "--keep", "--format", "json", "--quiet"])
    assert result.exit_code == 0, result.output
    server = json.loads(result.stdout)["server"]
    assert server["kept"] is True
    fields = dict(part.split("=", 1) for part in server["dsn"].split())
    directory = fields["host"]
    try:
        assert directory.startswith("/") and stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        with psycopg.connect(server["dsn"]) as conn:
            assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(f"host=127.0.0.1 port={fields['port']} dbname=shop user=postgres", connect_timeout=3)
    finally:
        subprocess.run(server["stop_command"], shell=True, check=False, capture_output=True)
