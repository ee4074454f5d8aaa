"""The checklist's rules, on evidence made by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dbmaint.advisor.workload import Statement
from dbmaint.check.item import CheckReport, Item
from dbmaint.check.items import connections, schema, vacuum, workload
from dbmaint.model import Finding
from dbmaint.store.records import RunRecord

NOW = datetime(2026, 11, 26, 12, tzinfo=UTC)


def run(hours_ago: float, status: str = "ok") -> RunRecord:
    started = NOW - timedelta(hours=hours_ago)
    return RunRecord(1, "vacuum", "app", status, None, started, started, "db1", None, 3, 0, 0)


def test_schema_items() -> None:
    missing = Finding("missing_primary_key", "public.events", "no key")
    unindexed = Finding("unindexed_foreign_key", "public.orders", "no index", columns=("user_id",))
    assert schema.primary_keys([missing]).status == "fail"
    assert "public.events" in schema.primary_keys([missing]).evidence
    assert schema.primary_keys([unindexed]).status == "pass"
    assert schema.foreign_keys([unindexed]).evidence == "1 unindexed foreign key(s): public.orders (user_id)"
    assert schema.foreign_keys([]).status == "pass"


def test_slow_queries_ignore_utility_statements() -> None:
    slow_select = Statement("SELECT * FROM t WHERE a = $1", 10, 5000.0, "pg_stat_statements")
    slow_vacuum = Statement("VACUUM t", 1, 60000.0, "pg_stat_statements")
    fast = Statement("SELECT 1", 100, 10.0, "pg_stat_statements")
    assert workload.slow_queries([slow_vacuum, fast], 100).status == "pass"
    one_off = Statement("UPDATE t SET a = 1", 1, 900.0, "pg_stat_statements")
    assert workload.slow_queries([one_off], 100, min_calls=5).status == "pass"
    item = workload.slow_queries([slow_select, slow_vacuum], 100)
    assert item.status == "fail" and "worst 500 ms over 10 calls" in item.evidence


def test_connections_and_vacuum_schedule() -> None:
    assert connections.connections(80, 80).status == "pass"  # maintenance defers above the limit, not at it
    assert connections.connections(81, 80).status == "fail"
    assert vacuum.vacuum_scheduled(True, run(5), NOW).status == "pass"
    assert vacuum.vacuum_scheduled(True, run(72), NOW).status == "fail"
    assert vacuum.vacuum_scheduled(True, run(5, "failed"), NOW).status == "fail"
    assert vacuum.vacuum_scheduled(True, None, NOW).status == "unknown"
    assert vacuum.vacuum_scheduled(False, run(1), NOW).status == "fail"


def test_overall_status() -> None:
    items = (Item("a", "pass", ""), Item("b", "unknown", ""))
    assert CheckReport("app", items).status == "unknown"
    assert CheckReport("app", (*items, Item("c", "fail", ""))).status == "fail"


def test_every_item_is_complete_and_the_catalogue_is_what_the_registry_generates() -> None:
    from pathlib import Path

    from dbmaint.check.catalogue import catalogue, description, main
    from dbmaint.check.items import ITEMS

    assert len({item.name for item in ITEMS}) == len(ITEMS) and len({item.order for item in ITEMS}) == len(ITEMS)
    for item in ITEMS:
        assert len(description(item)) > 40, item.name
        assert item.sources, item.name
    document = Path(__file__).resolve().parents[2] / "docs" / "checklist.md"
    assert all(f"| `{item.name}` |" in document.read_text() for item in ITEMS)
    assert catalogue().count("\n| `") == len(ITEMS)
    assert main(["--check", str(document)]) == 0, "run: python -m dbmaint.check.catalogue --write docs/checklist.md"
