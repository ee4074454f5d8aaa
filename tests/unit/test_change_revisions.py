"""Drop and autovacuum-setting revisions as text: ruff, ruff format and mypy --strict pass on them, hostile
names stay in literals, the downgrade rebuilds the exact definition concurrently, and they chain."""

from __future__ import annotations

import ast
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory

from dbmaint.advisor.change_revisions import (
    IndexDrop,
    SettingChange,
    render_drops,
    render_settings,
    write_drops,
    write_settings,
)
from dbmaint.advisor.revision import write_revision
from tests.unit.helpers import COMPOSITE, migrations_dir, revision_of

ROOT = Path(__file__).resolve().parents[2]
BINDIR = Path(sys.executable).parent
WHEN = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)

UNUSED = IndexDrop(
    "public", "orders_status_idx", "orders", "CREATE INDEX orders_status_idx ON public.orders USING btree (status)",
    "unused_index", "Index public.orders_status_idx on (status) has not been scanned since the statistics reset.",
)  # fmt: skip
HOSTILE = IndexDrop(
    "Sales", 'ix "x": \\ 注文', "Order Lines",
    'CREATE UNIQUE INDEX "ix ""x"": \\ 注文" ON "Sales"."Order Lines" USING btree (lower(note)) '
    "WHERE (note <> ':x'::text)",
    "duplicate_index", 'Ends with """ a triple quote and a backslash \\',
)  # fmt: skip
SETTING = SettingChange(
    "Sales", "Order Lines", "autovacuum_vacuum_scale_factor", None, "0.02", "120,000 dead rows a day."
)
INSERTS = SettingChange("public", "events", "autovacuum_vacuum_insert_scale_factor", "0.1", "0.01", "inserts")


def drops_source(*drops: IndexDrop) -> str:
    return render_drops(drops, revision="aaaaaaaaaaaa", down_revision="bbbbbbbbbbbb", create_date=WHEN, message="Drop")


def settings_source(*changes: SettingChange) -> str:
    return render_settings(changes, revision="cccccccccccc", down_revision=None, create_date=WHEN, message="Settings")


def test_the_downgrade_builds_the_exact_definition_again_concurrently() -> None:
    assert UNUSED.rebuild == (
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS orders_status_idx ON public.orders USING btree (status)"
    )
    assert HOSTILE.rebuild.startswith('CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS "ix ""x"": \\ 注文" ON "Sales"')
    partitioned = IndexDrop("public", "p_idx", "p", "CREATE INDEX p_idx ON ONLY public.p USING btree (a)", "x", "")
    with pytest.raises(ValueError, match="concurrently"):
        _ = partitioned.rebuild


@pytest.mark.parametrize(
    "source", [drops_source(UNUSED, HOSTILE), settings_source(SETTING, INSERTS)], ids=["drops", "settings"]
)
def test_revisions_pass_ruff_and_mypy(source: str, tmp_path: Path) -> None:
    path = tmp_path / "revision.py"
    path.write_text(source, encoding="utf-8")
    config = ["--config", str(ROOT / "pyproject.toml")]
    for args in (["check", *config], ["format", "--check", "--diff", *config]):
        result = subprocess.run([BINDIR / "ruff", *args, path], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr
    settings = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run([BINDIR / "mypy", "--strict", *settings, path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hostile_names_stay_in_literals_and_the_docstring() -> None:
    module = ast.parse(drops_source(HOSTILE))
    doc = ast.get_docstring(module, clean=False) or ""
    assert "a triple quote and a backslash" in doc and "Sales.ix" in doc
    drops = next(n for n in ast.walk(module) if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "DROPS")
    assert drops.value is not None
    assert ast.literal_eval(drops.value) == [("Sales", HOSTILE.name, "Order Lines", HOSTILE.rebuild)]
    settings = ast.parse(settings_source(SETTING, INSERTS))
    table = next(
        n for n in ast.walk(settings) if isinstance(n, ast.AnnAssign) and getattr(n.target, "id", "") == "SETTINGS"
    )
    assert table.value is not None
    assert ast.literal_eval(table.value) == [
        ("Sales", "Order Lines", "autovacuum_vacuum_scale_factor", None, "0.02"),
        ("public", "events", "autovacuum_vacuum_insert_scale_factor", "0.1", "0.01"),
    ]


def test_only_autovacuum_scale_factors_with_numbers_are_written() -> None:
    with pytest.raises(ValueError, match="not an autovacuum setting"):
        settings_source(SettingChange("public", "t", "fillfactor", None, "70", ""))
    with pytest.raises(ValueError):
        settings_source(SettingChange("public", "t", "autovacuum_vacuum_scale_factor", None, "0.1); DROP TABLE t", ""))
    with pytest.raises(ValueError, match="no index to drop"):
        drops_source()


def test_each_kind_is_a_revision_of_its_own_chained_after_the_indexes(tmp_path: Path) -> None:
    versions = migrations_dir(tmp_path) / "versions"
    indexes = write_revision([COMPOSITE], versions)
    drops = write_drops([UNUSED], versions)
    settings = write_settings([SETTING], versions)
    script = ScriptDirectory(str(versions.parent))
    assert script.get_current_head() == revision_of(settings)
    chain = [script.get_revision(revision_of(p)) for p in (indexes, drops, settings)]
    assert [r.down_revision if r else "?" for r in chain] == [None, revision_of(indexes), revision_of(drops)]
    assert "drop_index_orders_status_idx" in drops.name and "autovacuum_settings_of_order_lines" in settings.name
