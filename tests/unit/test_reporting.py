"""`dbmaint report`: what is gathered from history, the page's escaping and policy, the command's errors.

The page itself in a real browser, on weeks of history, is tests/db/test_report_html.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path
from unittest import mock

import pytest
from click.testing import CliRunner
from psycopg import sql

from dbmaint.check.item import CheckReport, Item
from dbmaint.cli import cli
from dbmaint.config import parse_config
from dbmaint.errors import ConfigError
from dbmaint.model import Action, JobReport, RunStatus
from dbmaint.pg.db import Target
from dbmaint.reporting import build, data, html
from dbmaint.store.health import HealthFigure
from dbmaint.store.history import History

# Shortly before now: the command reports up to now, and history must not be in its future.
UNTIL = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=1)
HOSTILE = "</script><img src=x onerror=alert(1)>&'\""
STATIC = Path(html.__file__).parent / "static"


def run(
    store: History,
    job: str,
    started: datetime,
    seconds: float,
    status: RunStatus = "ok",
    actions: list[Action] | None = None,
    reason: str | None = None,
    database: str = "app",
) -> int:
    with mock.patch("dbmaint.store.history.now", lambda: started):
        report = JobReport(database=database, job=job, started_at=started)
        store.start_run(report, host="h")
        for action in actions or []:
            store.record_skipped(report, action)
    report.status, report.reason, report.finished_at = status, reason, started + timedelta(seconds=seconds)
    store.finish_run(report)
    assert report.run_id is not None
    return report.run_id


def action(obj: str, kind: str, status: str = "done", **values: object) -> Action:
    made = Action(object=obj, statement=sql.Composed([sql.SQL(f"-- {kind} {obj}")]), reason="why", kind=kind)
    made.status = status  # type: ignore[assignment]
    for name, value in values.items():
        setattr(made, name, value)
    return made


@pytest.fixture
def filled(store: History) -> History:
    """Two days of a database's history, one run before the period, and another database's run."""
    run(store, "vacuum", UNTIL - timedelta(days=40), 5)  # before the period: left out
    run(store, "vacuum", UNTIL - timedelta(days=2), 30, actions=[action("public.a", "vacuum")])
    run(store, "vacuum", UNTIL - timedelta(days=1), 12, status="failed", reason=f"lost {HOSTILE}")
    run(
        store, "reindex", UNTIL - timedelta(hours=30), 100,
        actions=[action("public.a_pkey", "reindex", size_before=1000, size_after=600, duration_s=50.0),
                 action("public.b_pkey", "reindex", status="failed", size_before=500)],
    )  # fmt: skip
    run(
        store, "advisor", UNTIL - timedelta(hours=20), 60,
        actions=[action("public.a", "create_index", status="proposed", size_after=4096)],
    )  # fmt: skip
    run(store, "vacuum", UNTIL - timedelta(hours=5), 3, database="other")
    for hours, dead in ((10, 100), (9, 300), (8, 50)):
        store.record_health(
            "app",
            UNTIL - timedelta(hours=hours),
            [
                HealthFigure("database", "app", xid_age=1_000 * hours, mxid_age=10),
                HealthFigure("table", "public.a", xid_age=900, dead_tuples=dead, live_tuples=5, size_bytes=8192),
                HealthFigure("table", HOSTILE, xid_age=800, dead_tuples=dead // 2),
                HealthFigure("index", "public.a_pkey", size_bytes=10_000, bloat_bytes=4_000, bloat_ratio=0.4),
            ],
        )
    capture = run(store, "capture", UNTIL - timedelta(hours=3), 1)
    store.save_counters("app", {}, [{"queryid": 7, "query": HOSTILE, "last_calls": 3, "last_total_ms": 900.0}], UNTIL)
    store.add_sample(
        capture, "app",
        {"queryid": 7, "captured_at": UNTIL - timedelta(hours=3), "calls": 3, "total_ms": 900.0, "mean_ms": 300.0,
         "cumulative_mean_ms": 300.0},
    )  # fmt: skip
    return store


def test_gather_counts_the_periods_runs_and_takes_the_latest_health(filled: History) -> None:
    report = data.gather(filled, ["app"], until=UNTIL, days=30)
    (app,) = report.databases
    assert app.runs == 5  # the run 40 days back and the other database's are left out
    assert app.failed_runs == 1
    assert [(j.job, j.runs, j.failed) for j in app.jobs] == [
        ("vacuum", 2, 1),
        ("reindex", 1, 0),
        ("capture", 1, 0),
        ("advisor", 1, 0),
    ]
    assert [(f.job, f.status, f.reason) for f in app.failures] == [("vacuum", "failed", f"lost {HOSTILE}")]
    assert app.health_samples == 3 and app.health_at == UNTIL - timedelta(hours=8)
    assert app.xid_age == 8_000  # the latest sample's, not the highest
    assert [t.object for t in app.tables] == ["public.a", HOSTILE]  # most dead rows first
    assert [(r.index, r.status, r.size_before, r.size_after) for r in app.rebuilds] == [
        ("public.b_pkey", "failed", 500, None),
        ("public.a_pkey", "done", 1000, 600),
    ]
    assert app.advice is not None and [r.estimated_size for r in app.advice.recommendations] == [4096]
    assert [(s.queryid, s.calls, s.last_mean_ms) for s in app.slow] == [(7, 3, 300.0)]


def test_every_chart_has_one_value_per_time_and_times_ascending(filled: History) -> None:
    (app,) = data.gather(filled, ["app"], until=UNTIL, days=30).databases
    assert not [c.id for c in app.charts if c.empty]
    for chart in app.charts:
        assert list(chart.x) == sorted(chart.x), chart.id
        assert all(len(s.values) == len(chart.x) for s in chart.series), chart.id
    charts = {c.id.split("-", 1)[1]: c for c in app.charts}
    durations = charts["durations"]
    failed = next(s for s in durations.series if s.label == "failed run")
    failed_at = [x for x, v in zip(durations.x, failed.values, strict=True) if v is not None]
    assert failed_at == [(UNTIL - timedelta(days=1)).timestamp()]
    dead = next(s for s in charts["dead"].series if s.label == "public.a")
    assert [v for v in dead.values if v is not None] == [100, 300, 50]
    rebuilt = charts["rebuilds"]
    assert [s.label for s in rebuilt.series] == ["public.a_pkey"]  # the failed rebuild has no "after"
    assert [v for v in rebuilt.series[0].values if v is not None] == [1000, 600]
    assert rebuilt.x[1] - rebuilt.x[0] == 50.0  # "after" where the rebuild ended


def test_an_empty_store_gives_empty_charts_and_no_error(store: History) -> None:
    (app,) = data.gather(store, ["app"], until=UNTIL, days=30).databases
    assert app.runs == 0 and app.health_at is None and app.advice is None
    assert all(c.empty for c in app.charts)
    page = html.render(data.gather(store, ["app"], until=UNTIL, days=30))
    assert page.count('class="plot"') == 0 and "No data in this period." in page


def chart_json(page: str) -> tuple[str, object]:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.DOTALL)
    assert match is not None
    return match[1], json.loads(match[1])


def test_values_from_the_store_are_text_in_the_markup_and_in_the_chart_data(filled: History) -> None:
    checks = {"app": CheckReport("app", (Item("primary_keys", "fail", HOSTILE, fix=HOSTILE),))}
    page = html.render(data.gather(filled, ["app"], until=UNTIL, days=30, checklists=checks))
    assert "<img" not in page and "onerror=alert(1)>" not in page
    assert page.count("&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&#39;&#34;") >= 4  # table, query, check
    raw, parsed = chart_json(page)
    assert "</" not in raw and "<" not in raw and "&" not in raw  # tojson: nothing ends or opens a tag
    labels = [s["label"] for c in parsed["charts"] for s in c["series"]]  # type: ignore[index]
    assert HOSTILE in labels  # and the label comes back whole once parsed
    assert any(label.startswith("7: </script>") for label in labels)


def test_the_policy_allows_exactly_the_pages_own_scripts_and_loads_nothing(filled: History) -> None:
    page = html.render(data.gather(filled, ["app"], until=UNTIL, days=30))
    policy = re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', page)
    assert policy is not None
    directives = dict(d.strip().split(" ", 1) for d in unescape(policy[1]).split(";"))
    assert directives["default-src"] == "'none'"
    scripts = re.findall(r"<script>(.*?)</script>", page, re.DOTALL)
    assert len(scripts) == 2 and "uPlot" in scripts[1]
    hashes = {f"'sha256-{base64.b64encode(hashlib.sha256(s.encode()).digest()).decode()}'" for s in scripts}
    assert set(directives["script-src"].split()) == hashes
    assert scripts[0] == (STATIC / "report.js").read_text() and scripts[1] == (STATIC / "uPlot.iife.min.js").read_text()
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", page)
    assert "All times are UTC." in page


def test_the_vendored_library_is_whole_with_its_licence() -> None:
    library = (STATIC / "uPlot.iife.min.js").read_text()
    assert library.startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */")
    assert "</script" not in library.lower()  # it is inlined as it is
    assert len(library.encode()) < 60_000
    assert "MIT License" in (STATIC / "uPlot.LICENSE").read_text()


def test_the_checklist_or_why_there_is_none() -> None:
    report = CheckReport("app", (Item("primary_keys", "pass", "all tables have one"),))
    assert data._checklist(report).status == "pass"
    assert data._checklist("checklist not run: could not connect").note == "checklist not run: could not connect"
    assert data._checklist(None).items == ()


def test_write_atomically_replaces_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    target.write_text("old")
    build.write_atomically(target, "new")
    assert target.read_text() == "new" and [p.name for p in tmp_path.iterdir()] == ["report.html"]
    assert target.stat().st_mode & 0o777 == 0o644
    with pytest.raises(OSError):
        build.write_atomically(tmp_path / "missing" / "report.html", "x")


def test_report_databases_adds_those_history_knows(filled: History) -> None:
    targets = [Target("app", "")]
    assert build.report_databases(targets, filled, UNTIL - timedelta(days=30), others=True) == ["app", "other"]
    assert build.report_databases(targets, filled, UNTIL - timedelta(days=30), others=False) == ["app"]


def test_the_report_section_of_the_configuration() -> None:
    config = parse_config({"report": {"html": "/var/lib/dbmaint/report.html", "days": 14}}, "c.toml")
    assert (config.report.html, config.report.schedule, config.report.days) == (
        "/var/lib/dbmaint/report.html",
        "0 * * * *",
        14,
    )
    assert parse_config({}, "c.toml").report.html is None  # off unless asked for
    with pytest.raises(ConfigError, match=r"report\.schedule"):
        parse_config({"report": {"schedule": "every hour"}}, "c.toml")


def test_the_command_writes_the_page_and_says_so(
    filled: History, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DBMAINT_STATE_URL", filled.url)
    monkeypatch.delenv("DBMAINT_CONFIG", raising=False)
    monkeypatch.setenv("DBMAINT_DSN", "dbname=app host=/nonexistent")
    monkeypatch.chdir(tmp_path)
    target = tmp_path / "page.html"
    result = CliRunner().invoke(cli, ["report", "--html", str(target), "--days", "3650", "--no-checklist"])
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith(f"wrote {target}: 2 database(s), ") and result.stdout == ""
    page = target.read_text()
    assert 'id="db0" data-database="app"' in page and 'data-database="other"' in page
    assert '<dd data-figure="runs">6</dd>' in page  # every run of app, the one 40 days back too


def test_the_command_fails_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBMAINT_STATE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.delenv("DBMAINT_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["report", "--html", str(tmp_path / "no" / "page.html"), "--no-checklist"])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0 and "cannot write the report to" in result.stderr
    missing = CliRunner().invoke(cli, ["report"])
    assert missing.exit_code == 2 and "--html" in missing.output
