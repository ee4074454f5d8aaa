"""dbmaint explain --format html, checked in a real headless Chromium; -o/--output; --compare on a real server.

The page must show the plan and its problems, and show whatever came from the database as text: a statement
with a <script> in a string literal is displayed, never run. Chromium comes from .ci/setup (Debian's chromium);
without it the browser tests are skipped with the reason.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from html import escape, unescape
from pathlib import Path
from typing import Any

import markupsafe
import pytest

from dbmaint.config import SafetyConfig
from dbmaint.explain import html, runner
from dbmaint.explain.compare import compare
from dbmaint.explain.plan import TableContext
from dbmaint.explain.plan_analysis import analyse
from dbmaint.pg import db
from tests.browser import chromium, needs_chromium, png_size_and_colours
from tests.db.conftest import Database, Invoke
from tests.db.helpers import json_output

PLANS = Path(__file__).resolve().parents[1] / "data" / "plans"
INJECTED = '<script>document.title="pwned"</script>'
SCRIPTED = """SELECT '<script>document.title="pwned"</script>' AS x, count(*) FROM orders o WHERE o.sku = 'SKU-42'"""
# The same rows, once from a scan of the whole table and once from the index on customer_id.
SLOW = "SELECT id, amount FROM orders WHERE customer_id + 0 = 42"
FAST = "SELECT id, amount FROM orders WHERE customer_id = 42"


def explained(database: Database, statement: str) -> runner.Result:
    with db.connection(db.Target(database.name, database.dsn), SafetyConfig()) as conn:
        return runner.explain(conn, runner.Request(statement))


@pytest.fixture(scope="module")
def page(shop: Database, tmp_path_factory: pytest.TempPathFactory) -> tuple[runner.Result, Path]:
    """The HTML page of a statement with a <script> in a string literal, written to a file."""
    result = explained(shop, SCRIPTED)
    path = tmp_path_factory.mktemp("html") / "plan.html"
    path.write_text(html.render(result), encoding="utf-8")
    return result, path


def test_the_page_escapes_what_comes_from_the_database(page: tuple[runner.Result, Path]) -> None:
    result, path = page
    text = path.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and text.count("<script>") == 1  # the page's own, at the end
    assert INJECTED not in text and markupsafe.escape(INJECTED) in text  # Jinja2's autoescaping
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", text)  # loads nothing from anywhere
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', text)
    assert policy and "default-src 'none'" in unescape(policy[1])  # and its Content-Security-Policy would not let it
    assert {p.kind for p in result.analysis.problems} >= {"seq_scan_filter"}


@needs_chromium
def test_a_browser_shows_the_plan_and_the_problems_and_runs_no_script_from_the_statement(
    page: tuple[runner.Result, Path], tmp_path: Path
) -> None:
    result, path = page
    dom = chromium(tmp_path / "profile", "--dump-dom", path.as_uri()).stdout.decode()
    for node in result.analysis.nodes:
        assert escape(node.label, quote=False) in dom, node.label
    for problem in result.analysis.problems:
        assert f">{problem.kind}<" in dom, problem.kind
    assert result.fixes and escape(result.fixes[0].definition, quote=False) in dom  # the proven index fix
    assert "public.orders" in dom and "orders_pkey" in dom  # the tables and their indexes
    # The statement is text on the page: its <script> is no element, and did not retitle the page.
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title is not None and title.group(1).startswith("Query plan: SELECT '&lt;script&gt;document.title=")
    assert "pwned</title>" not in dom
    assert dom.count("<script") == 1
    assert escape(INJECTED, quote=False) in dom
    # The page's own script did run (the policy allows it by its hash): the plan's subtrees fold.
    assert re.search(r'<html[^>]*class="[^"]*\bjs\b', dom)
    assert 'button class="toggle"' in dom


@needs_chromium
def test_a_screenshot_of_the_page(page: tuple[runner.Result, Path], tmp_path: Path) -> None:
    _, path = page
    picture = tmp_path / "plan.png"
    chromium(tmp_path / "profile", "--window-size=1400,1400", f"--screenshot={picture}", path.as_uri())
    width, height, colours = png_size_and_colours(picture.read_bytes())
    assert (width, height) == (1400, 1400)
    assert colours > 50  # text, badges and bars: not a blank page


@pytest.mark.parametrize("output_format", ["text", "json", "html"])
def test_output_goes_to_a_file_in_every_format(
    shop: Database,
    dbmaint: Invoke,
    tmp_path: Path,
    output_format: str,
) -> None:
    target = tmp_path / f"plan.{output_format}"
    result = dbmaint("explain", "--dsn", shop.dsn, "--format", output_format, "-o", str(target), FAST)
    assert result.exit_code == 0, result.output
    assert result.stdout == "" and f"wrote {target}" in result.stderr
    written = target.read_text(encoding="utf-8")
    if output_format == "json":
        assert json.loads(written)["nodes"]
    elif output_format == "html":
        assert written.startswith("<!DOCTYPE html>") and "orders_customer_id_idx" in written
    else:
        assert "orders_customer_id_idx" in written and "\x1b[" not in written  # no terminal colours in a file


def test_html_goes_to_stdout_by_default(shop: Database, dbmaint: Invoke) -> None:
    result = dbmaint("explain", "--dsn", shop.dsn, "--format", "html", FAST)
    assert result.exit_code == 0 and result.stdout.startswith("<!DOCTYPE html>")
    assert result.stdout.rstrip().endswith("</html>")


def test_compare_two_statements_in_json(shop: Database, dbmaint: Invoke) -> None:
    document = json_output(
        dbmaint("explain", "--dsn", shop.dsn, "--format", "json", FAST, "--compare", SLOW), exit_code=0
    )
    assert set(document) == {"before", "after", "comparison"}
    assert document["before"]["statement"] == SLOW and document["after"]["statement"] == FAST
    comparison = document["comparison"]
    figures = {f["figure"]: f for f in comparison["figures"]}
    assert figures["execution_ms"]["change"].endswith("x faster") and figures["execution_ms"]["better"] is True
    assert figures["total_cost"]["change"].endswith("x cheaper")
    assert figures["rows"]["change"] == "same"  # the same rows, another way
    removed = [n for n in comparison["nodes"] if n["change"] == "removed"]
    added = [n for n in comparison["nodes"] if n["change"] == "added"]
    assert any(n["node_type"] == "Seq Scan" and n["relation"] == "public.orders" for n in removed)
    assert any(n["index"] == "orders_customer_id_idx" for n in added)
    assert "seq_scan_filter" in {p["kind"] for p in comparison["problems_only_before"]}
    assert comparison["summary"].startswith(f"after: {figures['execution_ms']['change']}")


def test_compare_with_a_file_as_text_and_as_html(shop: Database, dbmaint: Invoke, tmp_path: Path) -> None:
    other = tmp_path / "before.sql"
    other.write_text(SLOW + "\n")
    text = dbmaint("explain", "--dsn", shop.dsn, FAST, "--compare", f"@{other}")
    assert text.exit_code == 0, text.output
    assert "differences" in text.stdout and "x faster" in text.stdout and "x cheaper" in text.stdout
    assert "removed Seq Scan on public.orders" in text.stdout

    target = tmp_path / "compare.html"
    result = dbmaint("explain", "--dsn", shop.dsn, FAST, "--compare", str(other), "--format", "html", "-o", str(target))
    assert result.exit_code == 0, result.output
    page = target.read_text(encoding="utf-8")
    assert "Plan comparison" in page and 'id="before"' in page and 'id="after"' in page
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # the two plans' nodes and problems link to their own side


def test_compare_with_the_plan_the_state_store_captured(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(
        "CREATE EXTENSION pg_stat_statements",
        "CREATE TABLE t (id int PRIMARY KEY, k int NOT NULL, v text NOT NULL)",
        "INSERT INTO t SELECT g, g % 1000, md5(g::text) FROM generate_series(1, 100000) g",
        "ANALYZE t",
        "SELECT pg_stat_statements_reset()",
    )
    with database.connect() as conn:
        for k in (1, 2, 3):
            conn.execute("SELECT count(*) FROM t WHERE k = %s", (k,))
    config = write_config('[capture]\nmin_mean_time = "0ms"\n')
    captured = json_output(
        dbmaint("capture", "--config", config, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    (queryid,) = [c["queryid"] for c in captured["captured"] if c["query"].startswith("SELECT count(*) FROM t")]
    database.execute("CREATE INDEX t_k ON t (k)")

    document = json_output(
        dbmaint("explain", "--config", config, "--dsn", database.dsn, "--format", "json",
                "SELECT count(*) FROM t WHERE k = 7", "--compare", f"queryid:{queryid}")
    , exit_code=0)  # fmt: skip
    before, comparison = document["before"], document["comparison"]
    assert before["statement"] == "SELECT count(*) FROM t WHERE k = $1" and before["analyzed"] is False
    assert any("from the state store" in note for note in before["notes"])
    figures = {f["figure"]: f for f in comparison["figures"]}
    assert figures["execution_ms"]["before"] is None and figures["execution_ms"]["change"] is None
    assert figures["total_cost"]["change"].endswith("x cheaper")
    assert "only after was executed" in comparison["summary"]
    assert any(n["change"] == "added" and n["index"] == "t_k" for n in comparison["nodes"])

    missing = dbmaint("explain", "--config", config, "--dsn", database.dsn, "SELECT 1", "--compare", "queryid:42")
    assert missing.exit_code == 2 and "no plan of query id 42" in missing.stderr


def test_a_comparison_page_escapes_names_and_values_too() -> None:
    """Pure: names from the catalog and values from pg_stats are as untrusted as the statement."""
    hostile = "<img src=x onerror=alert(1)>"
    plan: Any = json.loads((PLANS / "seq_scan_filter.json").read_text())
    plan[0]["Plan"]["Alias"] = hostile
    plan[0]["Plan"]["Filter"] = f"(sku = '{hostile}'::text)"
    plan[0]["Settings"] = {"search_path": hostile}
    context = {"public.orders": TableContext("public.orders", None, 0, 1.0, 8192, (f"CREATE INDEX {hostile}",))}
    after = runner.Result(
        statement=f"SELECT '{hostile}'", kind="read", analyzed=True, plan=plan, analysis=analyse(plan),
        notes=[hostile], values={1: hostile}, context=context,
    )  # fmt: skip
    other = json.loads((PLANS / "healthy_pk_lookup.json").read_text())
    before = runner.Result(f"-- {hostile}", "read", True, other, analyse(other))
    for text in (html.render(after), html.render_comparison(before, after, compare(before.analysis, after.analysis))):
        assert "<img" not in text and escape(hostile) in text
