"""Index revisions as text: the golden file, ruff and mypy on it, chaining, file names, refusals, offline SQL."""

from __future__ import annotations

import ast
import io
import os
import re
import subprocess
import sys
from argparse import Namespace
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory

from dbmaint.advisor.revision import render_revision, write_revision
from dbmaint.model import IndexRecommendation, QueryBenefit
from tests.unit.helpers import COMPOSITE, migrations_dir, revision_of

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden" / "index_revision.py.txt"
BINDIR = Path(sys.executable).parent  # ruff and mypy are installed next to the interpreter

PARTIAL = IndexRecommendation(
    schema="public",
    table_name="events",
    columns=("created_at",),
    where="status = 'pending'",
    name="ix_events_created_at_pending",
    definition="CREATE INDEX CONCURRENTLY ix_events_created_at_pending ON public.events (created_at)"
    " WHERE status = 'pending'",
    reason="The queue poller scans events for the few pending rows; 2 % of the table matches.",
    queries=(
        QueryBenefit(
            query="SELECT * FROM events WHERE status = 'pending' ORDER BY created_at LIMIT $1",
            queryid=3,
            calls=2_000_000,
            cost_before=2_400.0,
            cost_after=3.1,
        ),
    ),
)
# Text that must not break the revision: quotes, a triple quote, backslashes, control characters, wide characters.
HOSTILE = IndexRecommendation(
    schema="Sales",
    table_name='Ta"ble',
    columns=("Ünïcode", "col'quote"),
    include=tuple(f"include_column_{i}" for i in range(10)),
    where="note = E'a\\\\b' AND label <> '\"\"\"' AND note LIKE 'x%' AND code = ':name'" + " AND flag" * 20,
    name="i" * 63,
    definition="",
    reason='Ends with a quote " and a backslash \\',
    queries=tuple(QueryBenefit(f'SELECT """{i}""" \\ {"注文" * 16}\t\x00\n' * 3, None, i, 1.0, 0.5) for i in range(7)),
)


def render(*recommendations: IndexRecommendation) -> str:
    return render_revision(
        recommendations,
        revision="1f2e3d4c5b6a",
        down_revision=None,
        create_date=datetime(2026, 11, 26, 3, 0, tzinfo=UTC),
        message="Add indexes ix_Orders_customerId_created_at, ix_events_created_at_pending",
    )


def test_revision_matches_the_golden_file() -> None:
    text = render(COMPOSITE, PARTIAL)
    if os.environ.get("DBMAINT_UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text, encoding="utf-8")
    assert text == GOLDEN.read_text(encoding="utf-8"), "rerun with DBMAINT_UPDATE_GOLDEN=1 if the change is meant"


PARTITIONED = IndexRecommendation(
    schema="public",
    table_name="events",
    columns=("user_id", "at"),
    directions=("", "DESC"),
    where="kind <> ':none'",
    partitioned=True,
    name="events_user_id_at_idx",
    definition="CREATE INDEX events_user_id_at_idx ON public.events (user_id, at DESC) WHERE kind <> ':none'",
    reason="A user's latest events, over every month's partition.",
)


@pytest.mark.parametrize(
    "recommendations", [(COMPOSITE, PARTIAL), (HOSTILE,), (PARTITIONED,)], ids=["golden", "hostile", "partitioned"]
)
def test_revision_passes_ruff(recommendations: tuple[IndexRecommendation, ...], tmp_path: Path) -> None:
    path = tmp_path / "revision.py"
    path.write_text(render(*recommendations), encoding="utf-8")
    config = ["--config", str(ROOT / "pyproject.toml")]  # tmp_path is outside the project: name its settings
    for args in (["check", *config], ["format", "--check", "--diff", *config]):
        result = subprocess.run([BINDIR / "ruff", *args, path], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_revision_passes_mypy_strict(tmp_path: Path) -> None:
    # CI type-checks migrations/ with --strict, so a committed revision must pass it too.
    path = tmp_path / "revision.py"
    path.write_text(render(COMPOSITE, PARTIAL, HOSTILE, PARTITIONED), encoding="utf-8")
    settings = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")]
    result = subprocess.run([BINDIR / "mypy", "--strict", *settings, path], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_partition_helpers_only_where_a_table_is_partitioned() -> None:
    plain, partitioned = render(COMPOSITE), render(COMPOSITE, PARTITIONED)
    assert "create_partitioned_index" not in plain and "PARTITION_TREE" not in plain
    assert "        create_partitioned_index(" in partitioned and "drop_partitioned_index(" in partitioned
    assert "        create_index_concurrently(\n" in partitioned  # the plain table's index as before


def test_hostile_text_stays_in_the_docstring_and_literals() -> None:
    source = render(HOSTILE)
    module = ast.parse(source)
    doc = ast.get_docstring(module, clean=False) or ""
    assert 'Ends with a quote " and a backslash \\' in doc
    assert 'SELECT ""\\"0""\\" \\ 注文' in doc  # a triple quote cannot end the docstring early
    call = next(
        node
        for node in ast.walk(module)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "create_index_concurrently"
    )
    assert [ast.literal_eval(arg) for arg in call.args] == [HOSTILE.name, HOSTILE.table_name, list(HOSTILE.columns)]
    keywords = {keyword.arg: ast.literal_eval(keyword.value) for keyword in call.keywords}
    assert keywords == {"schema": "Sales", "include": list(HOSTILE.include), "where": HOSTILE.where}
    assert "# noqa: E501" in source  # the long WHERE, which no formatter can split either


def test_revisions_chain_to_the_head(tmp_path: Path) -> None:
    location = migrations_dir(tmp_path)
    first = write_revision([COMPOSITE], location / "versions")
    second = write_revision([PARTIAL], location / "versions", message="Pending events")

    script = ScriptDirectory(str(location))
    assert script.get_current_head() == revision_of(second)
    later, earlier = script.get_revision(revision_of(second)), script.get_revision(revision_of(first))
    assert later is not None and later.down_revision == revision_of(first) and later.doc == "Pending events"
    assert earlier is not None and earlier.down_revision is None


def test_file_name_follows_the_project_template(tmp_path: Path) -> None:
    location = migrations_dir(tmp_path)
    path = write_revision([COMPOSITE, PARTIAL], location / "versions")
    assert re.fullmatch(r"\d{8}_[0-9a-f]{12}_add_indexes_ix_orders_customerid_\.py", path.name), path.name
    assert path.read_text(encoding="utf-8").startswith(f'r"""Add indexes {COMPOSITE.name}, {PARTIAL.name}\n')


def test_versions_directory_outside_the_script_location(tmp_path: Path) -> None:
    location = migrations_dir(tmp_path)
    versions = tmp_path / "elsewhere"
    versions.mkdir()
    first = write_revision([COMPOSITE], versions, script_location=location)
    second = write_revision([PARTIAL], versions, script_location=location)
    later = ScriptDirectory(str(location), version_locations=[str(versions)]).get_revision(revision_of(second))
    assert later is not None and later.down_revision == revision_of(first)


@pytest.mark.parametrize(
    ("recommendations", "error"),
    [
        ((), "no index recommendations"),
        ((COMPOSITE, COMPOSITE), "recommended twice"),
        ((replace(COMPOSITE, name="x" * 64),), "1 to 63 bytes"),
        ((replace(COMPOSITE, columns=("é" * 32,)),), "1 to 63 bytes"),  # 64 bytes in UTF-8
        ((replace(COMPOSITE, columns=()),), "no columns"),
        ((replace(PARTIAL, where=" "),), "empty WHERE"),
    ],
)
def test_refuses_what_would_make_a_broken_revision(
    recommendations: tuple[IndexRecommendation, ...], error: str, tmp_path: Path
) -> None:
    location = migrations_dir(tmp_path)
    with pytest.raises(ValueError, match=error):
        write_revision(recommendations, location / "versions")
    assert not list((location / "versions").iterdir())


def test_missing_versions_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_revision([COMPOSITE], tmp_path / "nowhere" / "versions")


def test_offline_sql_builds_without_looking(tmp_path: Path) -> None:
    """``alembic upgrade head --sql``: no database to ask, so plain concurrent builds, each % as written."""
    location = migrations_dir(tmp_path)
    partial = replace(PARTIAL, where="status = 'pending' AND note LIKE 'retry%'")
    write_revision([COMPOSITE, partial], location / "versions")
    output = io.StringIO()
    config = Config(output_buffer=output)
    config.set_main_option("script_location", str(location))
    config.cmd_opts = Namespace(x=[])
    command.upgrade(config, "head", sql=True)
    sql = output.getvalue()
    assert (
        'CREATE INDEX CONCURRENTLY "ix_Orders_customerId_created_at" ON public."Orders" ("customerId", created_at DESC)'
        " INCLUDE (total);"
    ) in sql
    assert "WHERE status = 'pending' AND note LIKE 'retry%';" in sql
    assert sql.index("COMMIT;") < sql.index("SET lock_timeout = '5s';") < sql.index("CREATE INDEX")
