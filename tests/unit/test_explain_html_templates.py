"""The HTML pages of dbmaint explain, rendered from Jinja2 templates: pure, on the plans of tests/data/plans.

Whatever comes from the database (the statement, table names, conditions, problem details) must come out as
text, in element content and in attribute values alike; the page must load nothing from anywhere, and its own
inline script must stay the one its Content-Security-Policy allows by hash.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from dbmaint.explain import html, runner
from dbmaint.explain.compare import compare
from dbmaint.explain.plan import TableContext
from dbmaint.explain.plan_analysis import analyse

PLANS = Path(__file__).resolve().parents[1] / "data" / "plans"
HOSTILE = "<script>alert(1)</script>\"&'"
STATEMENT = f"SELECT '{HOSTILE}' FROM orders"  # noqa: S608 (page input, never run)
TABLE = f"t{HOSTILE}"
ALIAS = '" onmouseover="alert(2)'  # would add an attribute if a quote broke out of one


class Page(HTMLParser):
    """The elements of a page: (tag, attributes) in order, and the text inside each element type."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[tuple[str, dict[str, str | None]]] = []
        self.text: dict[str, list[str]] = {}
        self._open: list[str] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))
        if tag not in ("meta", "br"):
            self._open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self._open:
            del self._open[len(self._open) - 1 - self._open[::-1].index(tag) :]

    def handle_data(self, data: str) -> None:
        for tag in set(self._open):
            self.text.setdefault(tag, []).append(data)

    def all_text(self, tag: str) -> str:
        return "".join(self.text.get(tag, []))

    def attributes(self) -> list[tuple[str, str, str | None]]:
        return [(tag, name, value) for tag, attrs in self.elements for name, value in attrs.items()]


def plan(name: str) -> Any:
    return json.loads((PLANS / f"{name}.json").read_text())


def hostile_result() -> runner.Result:
    """A statement, a table and an alias with markup in them, and a proven fix naming the table."""
    document = copy.deepcopy(plan("seq_scan_filter"))
    document[0]["Plan"]["Relation Name"] = TABLE
    document[0]["Plan"]["Alias"] = ALIAS
    document[0]["Settings"] = {"search_path": HOSTILE}
    context = {f"public.{TABLE}": TableContext(f"public.{TABLE}", None, 0, 1.0, 8192, (f"CREATE INDEX ON {TABLE}",))}
    return runner.Result(
        statement=STATEMENT, kind="read", analyzed=True, plan=document, analysis=analyse(document),
        notes=[HOSTILE], values={1: HOSTILE}, context=context,
        fixes=[runner.ProvenFix(0, f"CREATE INDEX ON public.{TABLE} (sku)", 2000.0, 10.0)],
    )  # fmt: skip


def pages() -> dict[str, str]:
    after = hostile_result()
    other = plan("healthy_pk_lookup")
    before = runner.Result(f"-- {HOSTILE}", "read", True, other, analyse(other))
    return {
        "plan": html.render(after),
        "comparison": html.render_comparison(before, after, compare(before.analysis, after.analysis)),
    }


@pytest.fixture(scope="module", params=["plan", "comparison"])
def page(request: pytest.FixtureRequest) -> str:
    return pages()[request.param]


def test_markup_from_the_database_is_text_on_both_pages(page: str) -> None:
    assert "<script>alert" not in page and "\"&'" not in page  # nothing raw
    assert "&amp;lt;" not in page  # and nothing escaped twice
    parsed = Page(page)
    assert [tag for tag, _ in parsed.elements].count("script") == 1  # the page's own
    assert STATEMENT in parsed.all_text("pre")  # the statement, shown as it is
    labels = parsed.all_text("td")
    assert f"Seq Scan on public.{TABLE} {ALIAS}" in labels  # the node's label, table name and alias
    assert f"CREATE INDEX ON public.{TABLE} (sku)" in parsed.all_text("div")  # the proven fix
    assert parsed.all_text("title").endswith(STATEMENT)  # the title element holds no markup either


def test_attribute_values_keep_their_quotes_inside(page: str) -> None:
    parsed = Page(page)
    names = {name for _, name, _ in parsed.attributes()}
    assert not {n for n in names if n.startswith("on")}  # no event handler smuggled in by a quote
    titles = [value or "" for tag, name, value in parsed.attributes() if tag == "a" and name == "title"]
    assert any(f"public.{TABLE} {ALIAS}" in title for title in titles)  # the problem badge's detail, whole


def test_the_plan_page_escapes_the_tables_values_and_notes() -> None:
    parsed = Page(pages()["plan"])
    cells = parsed.all_text("td")
    assert f"public.{TABLE}" in cells and f"CREATE INDEX ON {TABLE}" in cells  # the Tables section
    notes = parsed.all_text("li")
    assert HOSTILE in notes and f"search_path = {HOSTILE}" in notes
    quoted = HOSTILE.replace("'", "''")
    assert f"with $1 = '{quoted}'" in parsed.all_text("p")  # the parameter values, quoted as SQL


def test_the_comparison_page_escapes_the_differences_and_the_baseline() -> None:
    parsed = Page(pages()["comparison"])
    changes = parsed.all_text("li")
    assert f"added: Seq Scan on public.{TABLE} {ALIAS}" in changes  # only after has the node
    assert f"seq_scan_filter at Seq Scan on public.{TABLE} {ALIAS}:" in changes  # the problem only after has
    assert f"-- {HOSTILE}" in parsed.all_text("pre")  # the baseline's statement


def test_the_page_loads_nothing_from_anywhere(page: str) -> None:
    parsed = Page(page)
    assert "link" not in {tag for tag, _ in parsed.elements}
    for tag, name, value in parsed.attributes():
        if name in ("src", "href", "action", "srcset", "poster", "data"):
            assert name == "href" and (value or "").startswith("#"), (tag, name, value)  # only links within the page
    assert "http://" not in page and "https://" not in page
    policy = next(a["content"] for _, a in parsed.elements if a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in (policy or "")


def test_the_inline_script_is_the_one_the_policy_allows(page: str) -> None:
    """The templates insert the script byte for byte: trimming a newline in it would make the browser refuse it."""
    parsed = Page(page)
    script = parsed.all_text("script")
    static = Path(html.__file__).with_name("static")
    assert script == (static / "explain.js").read_text(encoding="utf-8")
    assert parsed.all_text("style") == (static / "explain.css").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    policy = next(a["content"] for _, a in parsed.elements if a.get("http-equiv") == "Content-Security-Policy")
    assert f"script-src 'sha256-{digest}'" in (policy or "")


def test_the_fold_button_shows_arrows_not_escape_codes() -> None:
    """The script was a Python string once: a doubled backslash there is a literal "\\u25b8" in a .js file."""
    script = (Path(html.__file__).with_name("static") / "explain.js").read_text(encoding="utf-8")
    assert '"\\u25b8"' in script and "\\\\u" not in script


def test_importing_the_module_does_not_load_jinja2() -> None:
    """html.py is imported only for HTML output, and Jinja2 only on the first page rendered."""
    probe = "import sys, dbmaint.explain.html; assert 'jinja2' not in sys.modules, 'jinja2 loaded on import'"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
