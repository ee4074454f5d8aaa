"""`dbmaint demo` end to end: its own throwaway cluster, the sample shop, one pass of each job."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from dbmaint.cli import cli
from dbmaint.cluster import find_bindir
from dbmaint.errors import ClusterError


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


def _actions(document: dict[str, Any], job: str) -> list[dict[str, Any]]:
    actions: list[dict[str, Any]] = document[job]["actions"]
    return actions


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
