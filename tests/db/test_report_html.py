"""`dbmaint report --html` on weeks of history, opened in a real headless Chromium; the service's page.

The state store holds 16 days of two databases' runs, health samples, rebuilds, capture passes and advisor
runs, made through the History API (tests/report_history.py). The command writes the page of the last 15
days with the checklist run live on one database and the other unreachable; Chromium must draw every chart
(each gets a canvas of non-zero size, and the page records no error), and the figures on the page must be
history's. Chromium comes from .ci/setup (Debian's chromium); without it the browser tests are skipped.

``DBMAINT_REPORT_SCREENSHOT=docs/images/report.png pytest tests/db/test_report_html.py -k screenshot`` writes
the README's screenshot.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner

from dbmaint.cli import cli
from dbmaint.pg.cluster import Cluster, free_port
from dbmaint.store.history import History
from dbmaint.units import format_count, format_size
from tests.browser import chromium, needs_chromium, png_size_and_colours
from tests.db.conftest import Database
from tests.db.helpers import NEVER_TODAY, ServiceProcess, service_config, wait_for
from tests.report_history import FAILED_VACUUM_REASON, HOSTILE_QUERY, HOSTILE_TABLE, Made, generate

pytestmark = pytest.mark.slow

DAYS_SHOWN = 15
CHARTS_PER_DATABASE = 8


@dataclass(frozen=True)
class Page:
    path: Path
    state_url: str
    made: Made
    stderr: str


@pytest.fixture(scope="module")
def page(pg: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    """The page of 15 of the 16 days, as `dbmaint report --html` writes it: app reachable, sales not."""
    where = tmp_path_factory.mktemp("report")
    state_url = f"sqlite:///{where / 'state.db'}"
    store = History(state_url)
    made = generate(store, ("app", "sales"), days=16)
    store.close()
    name = "report_app"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {name}")
    config = where / "config.toml"
    dead_port = f"host=127.0.0.1 port={free_port()} dbname=sales"
    config.write_text(service_config({"app": pg.dsn(name), "sales": dead_port}))
    target = where / "report.html"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DBMAINT_STATE_URL", state_url)
        env.delenv("DBMAINT_CONFIG", raising=False)
        env.chdir(where)
        result = CliRunner().invoke(
            cli, ["report", "--config", str(config), "--html", str(target), "--days", str(DAYS_SHOWN)]
        )
    assert result.exit_code == 0, result.output
    yield Page(target, state_url, made, result.stderr)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def sections(dom: str) -> dict[str, str]:
    """Each database's section of the page, by name."""
    found = re.findall(r'<section class="database" id="db\d+" data-database="([^"]+)">(.*?)</section>', dom, re.DOTALL)
    return dict(found)


def figure(section: str, name: str) -> str:
    match = re.search(rf'data-figure="{name}"[^>]*>(.*?)</dd>', section, re.DOTALL)
    assert match is not None, name
    return re.sub(r"<[^>]+>", "", match[1]).strip()


def generated_at(text: str) -> datetime:
    match = re.search(r'<time datetime="([^"]+)">', text)
    assert match is not None
    return datetime.fromisoformat(match[1])


def test_the_command_says_what_it_wrote(page: Page) -> None:
    assert page.stderr.splitlines()[-1].startswith(f"wrote {page.path}: 2 database(s), ")
    assert "no checklist of sales" in page.stderr  # the unreachable one: a note, not a failure


def test_the_figures_on_the_page_are_historys(page: Page) -> None:
    text = page.path.read_text(encoding="utf-8")
    since = generated_at(text) - timedelta(days=DAYS_SHOWN)
    store = History(page.state_url)
    try:
        parts = sections(text)
        assert list(parts) == ["app", "sales"]
        for name, section in parts.items():
            runs = store.runs_since(since, name)
            assert len(runs) < page.made.runs[name]  # the first day is outside the 15 days shown
            assert figure(section, "runs") == format_count(len(runs))
            assert figure(section, "failed-runs") == format_count(sum(r.status == "failed" for r in runs)) == "1"
            last = store.health_readings(name, since)[-1]
            own = next(f for f in last.figures if f.kind == "database")
            assert own.xid_age == page.made.last_xid_age[name]
            assert figure(section, "xid-age") == format_count(own.xid_age)
            assert f"{format_count(len(store.health_readings(name, since)))} samples in the period" in section
            for index, before, after in page.made.rebuilds[name]:
                row = f'<td>{index}</td><td><span class="status status-done">done</span></td>'
                row += f'<td class="n">{format_size(before)}</td><td class="n">{format_size(after)}</td>'
                assert row in section
            assert escape(FAILED_VACUUM_REASON) in section
            assert escape(page.made.recommendation) in section  # the advisor's proposed index
        assert 'data-table="checklist"' in parts["app"] and "primary_keys" in parts["app"]
        assert "checklist not run: " in parts["sales"] and 'data-table="checklist"' not in parts["sales"]
    finally:
        store.close()


@needs_chromium
def test_chromium_draws_every_chart_with_no_error(page: Page, tmp_path: Path) -> None:
    result = chromium(
        tmp_path / "profile", "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000", "--dump-dom",
        page.path.as_uri(),
    )  # fmt: skip
    dom = result.stdout.decode()
    console = [line for line in result.stderr.decode(errors="replace").splitlines() if "CONSOLE" in line]
    assert not [line for line in console if re.search(r"Uncaught|Refused|Error", line)], console
    found = re.search(r"<html[^>]*>", dom)
    assert found is not None
    root = found[0]
    assert "data-errors" not in root, root
    assert f'data-charts-rendered="{2 * CHARTS_PER_DATABASE}"' in root
    plots = re.findall(r'<div class="plot" id="([^"]+)" data-chart="[^"]+"([^>]*)>(.*?)</figure>', dom, re.DOTALL)
    assert len(plots) == 2 * CHARTS_PER_DATABASE  # every chart of both databases had data, and a place
    for chart_id, attributes, inside in plots:
        assert 'data-rendered="true"' in attributes, chart_id
        canvas = re.search(r'<canvas width="(\d+)" height="(\d+)"', inside)
        assert canvas is not None and int(canvas[1]) > 200 and int(canvas[2]) > 100, chart_id
    # Markup from the store is text: no element came of it, and the page kept its title.
    title = re.search(r"<title>(.*?)</title>", dom, re.DOTALL)
    assert title is not None and title[1] == "dbmaint report: app, sales"
    assert "<img" not in dom and escape(HOSTILE_QUERY, quote=False) in dom
    assert escape(HOSTILE_TABLE, quote=False) in dom
    assert dom.count("<script") == 3  # the data block and the page's two scripts


@needs_chromium
def test_a_screenshot_of_the_report(page: Page, tmp_path: Path) -> None:
    picture = tmp_path / "report.png"
    chromium(
        tmp_path / "profile", "--window-size=1400,2300", "--hide-scrollbars", "--virtual-time-budget=5000",
        f"--screenshot={picture}", page.path.as_uri(),
    )  # fmt: skip
    width, height, colours = png_size_and_colours(picture.read_bytes())
    assert (width, height) == (1400, 2300)
    assert colours > 100  # charts, text and badges: not a blank page
    wanted = os.environ.get("DBMAINT_REPORT_SCREENSHOT")
    if wanted:  # the README's picture, made again
        shutil.copyfile(picture, wanted)


def test_the_service_keeps_hourly_health_and_writes_the_page_on_its_schedule(
    database: Database,
    write_config: Callable[[str], str],
    tmp_path: Path,
    state_url: str,
) -> None:
    database.execute(
        "CREATE TABLE dirty (id int PRIMARY KEY, pad text)",
        "INSERT INTO dirty SELECT g, repeat('x', 100) FROM generate_series(1, 5000) g",
        "DELETE FROM dirty",
    )
    target = tmp_path / "www" / "report.html"
    target.parent.mkdir()
    extra = f'[report]\nhtml = "{target}"\nschedule = "*/2 * * * * *"\nchecklist = false\n'
    config = write_config(service_config({"app": database.dsn}, vacuum=NEVER_TODAY, extra=extra))
    service = ServiceProcess(config, state_url, tmp_path / "service.log")
    try:
        wait_for(lambda: target.exists() and "report page written" in service.log, timeout=60)
        first = target.stat().st_mtime_ns
        wait_for(lambda: target.stat().st_mtime_ns != first, timeout=30)  # again, on its schedule
        # A reload without [report] html stops the page.
        Path(config).write_text(service_config({"app": database.dsn}, vacuum=NEVER_TODAY))
        service.signal(signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in service.log)
        time.sleep(0.5)  # a write already going when the reload came in may still end
        last = target.stat().st_mtime_ns
        time.sleep(4.5)
        assert target.stat().st_mtime_ns == last
        assert service.alive(), service.log
    finally:
        assert service.stop() == 0, service.log
    store = History(state_url)
    try:
        readings = store.health_readings("app", datetime(2000, 1, 1, tzinfo=UTC))
    finally:
        store.close()
    # One sample in the whole run (an hour apart), with the database's ages and the dirty table's dead rows.
    assert len(readings) == 1
    own = next(f for f in readings[0].figures if f.kind == "database")
    dirty = next(f for f in readings[0].figures if f.object == "public.dirty")
    assert dirty.dead_tuples == database.value("SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'dirty'")
    assert own.xid_age is not None and own.xid_age > 0
    page_text = target.read_text()
    assert figure(sections(page_text)["app"], "xid-age") == format_count(own.xid_age)
    assert not [p.name for p in target.parent.iterdir() if p.name != "report.html"]  # no temporary file left
