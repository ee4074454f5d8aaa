"""The deployment files in deploy/: the systemd unit, the production config, the Prometheus rules and the
Grafana dashboard are valid, say what the service needs, and use only the metrics dbmaint exports.

Where systemd-analyze and promtool are installed they check the files as systemd and Prometheus would.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from dbmaint.config import load_config
from dbmaint.service.metrics import METRIC_NAMES
from dbmaint.units import parse_duration

DEPLOY = Path(__file__).parents[2] / "deploy"
UNIT = DEPLOY / "dbmaint.service"
CONFIG = DEPLOY / "config.toml"
RULES = DEPLOY / "prometheus" / "dbmaint.rules.yml"
RULES_TESTS = DEPLOY / "prometheus" / "dbmaint.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dbmaint-dashboard.json"

_METRIC = re.compile(r"\bdbmaint_[A-Za-z0-9_]+")

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """A unit file as section -> key -> values (a key may repeat; systemd has no inline comments)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    lines = iter(text.splitlines())
    for raw in lines:
        line = raw.strip()
        while line.endswith("\\"):  # continuation line
            line = line[:-1] + " " + next(lines).strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], {})
            continue
        assert section is not None, f"{raw!r} outside a section"
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {raw!r}"
        section.setdefault(key.strip(), []).append(value.strip())
    return unit


def systemd_seconds(text: str) -> float:
    """A systemd time span such as "60", "60s", "1min 30s" in seconds."""
    units = {"": 1.0, "s": 1.0, "sec": 1.0, "min": 60.0, "m": 60.0, "h": 3600.0, "ms": 0.001}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", text):
        total += float(number) * units[unit]
    return total


@pytest.fixture(scope="module")
def unit() -> Unit:
    return parse_unit(UNIT.read_text(encoding="utf-8"))


def test_unit_runs_the_service_under_systemd_supervision(unit: Unit) -> None:
    service = unit["Service"]
    assert service["Type"] == ["notify"]
    assert service["NotifyAccess"] == ["main"]
    assert systemd_seconds(service["WatchdogSec"][0]) == 60
    assert service["ExecStart"] == ["/opt/dbmaint/bin/dbmaint run --config /etc/dbmaint/config.toml"]
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert service["Restart"] == ["on-failure"]
    assert service["User"] == ["postgres"] and service["Group"] == ["postgres"]
    assert service["Environment"] == ["DBMAINT_STATE_URL=sqlite:////var/lib/dbmaint/state.db", "MALLOC_ARENA_MAX=2"]
    assert service["EnvironmentFile"] == ["-/etc/dbmaint/environment"]
    assert service["StateDirectory"] == ["dbmaint"]
    assert unit["Install"]["WantedBy"] == ["multi-user.target"]
    assert "postgresql.service" in " ".join(unit["Unit"]["After"]).split()


def test_unit_is_hardened(unit: Unit) -> None:
    service = unit["Service"]
    for key in (
        "NoNewPrivileges",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectClock",
        "ProtectHostname",
        "RestrictNamespaces",
        "RestrictRealtime",
        "RestrictSUIDSGID",
        "LockPersonality",
        "MemoryDenyWriteExecute",
    ):
        assert service.get(key) == ["true"], key
    assert service["ProtectSystem"] == ["strict"]
    assert service["CapabilityBoundingSet"] == [""]
    assert service["SystemCallFilter"][0] == "@system-service"
    assert set(service["RestrictAddressFamilies"][0].split()) == {"AF_UNIX", "AF_INET", "AF_INET6"}
    assert service["UMask"] == ["0077"]
    # RemoveIPC would delete PostgreSQL's own shared memory, which belongs to the same user.
    assert "RemoveIPC" not in service


def test_unit_waits_longer_than_dbmaint_takes_to_stop(unit: Unit) -> None:
    # Read straight from the file, so that this holds whatever the loader's defaults are.
    stop_timeout = parse_duration(tomllib.loads(CONFIG.read_text(encoding="utf-8"))["scheduler"]["stop_timeout"])
    assert systemd_seconds(unit["Service"]["TimeoutStopSec"][0]) > stop_timeout


def test_unit_has_no_comment_at_the_end_of_a_line(unit: Unit) -> None:
    # systemd would take "# ..." as part of the value.
    for section in unit.values():
        for key, values in section.items():
            assert not any("#" in value for value in values), key


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    # verify checks that ExecStart's program exists: point it at this environment's dbmaint.
    dbmaint = Path(sys.executable).parent / "dbmaint"
    assert dbmaint.is_file(), f"{dbmaint}: the dbmaint console script is not installed next to {sys.executable}"
    text = UNIT.read_text(encoding="utf-8")
    assert "/opt/dbmaint/bin/dbmaint" in text
    copy = tmp_path / "dbmaint.service"
    copy.write_text(text.replace("/opt/dbmaint/bin/dbmaint", str(dbmaint)), encoding="utf-8")
    result = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    # Without the postgres user (no PostgreSQL installed) the complaint about User= is expected.
    problems = [
        line
        for line in output.splitlines()
        if "dbmaint.service" in line and not re.search(r"\buser\b", line, re.IGNORECASE)
    ]
    assert result.returncode == 0 and not problems, output


def test_systemd_analyze_security_rates_the_unit_ok(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    copy = tmp_path / "dbmaint.service"
    shutil.copy(UNIT, copy)
    result = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(copy)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if "--offline" in result.stderr and "unrecognized" in result.stderr:
        pytest.skip("this systemd-analyze cannot review a unit file offline (systemd < 250)")
    match = re.search(r"Overall exposure level for dbmaint\.service: (\d+(?:\.\d+)?)", result.stdout)
    assert match, result.stdout + result.stderr
    # 0 is fully locked down, 10 not at all; under 2 needs almost every option above.
    assert float(match.group(1)) < 2.0, result.stdout


def test_production_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DBMAINT_STATE_URL", raising=False)
    config = load_config(str(CONFIG))
    assert [db.name for db in config.databases] == ["app"]
    assert "host=/var/run/postgresql" in (config.databases[0].dsn or "")
    assert config.metrics.listen == "127.0.0.1:9188"
    assert config.metrics.refresh == 60.0
    assert config.metrics.top == 10
    assert config.sentry.dsn_env == "SENTRY_DSN"
    assert config.state.url == "sqlite:////var/lib/dbmaint/state.db"  # where the unit puts it
    assert config.scheduler.misfire_grace == 3600.0
    assert config.scheduler.stop_timeout == 30.0


def test_production_config_keeps_to_the_shape_of_the_example() -> None:
    example = tomllib.loads((DEPLOY.parent / "config.toml").read_text(encoding="utf-8"))
    production = tomllib.loads(CONFIG.read_text(encoding="utf-8"))
    new = {
        "scheduler": {"misfire_grace", "stop_timeout"},
        "metrics": {"listen", "refresh", "top"},
        "sentry": {"dsn_env"},
        "state": {"url"},  # commented out in the example
    }
    for section, table in production.items():
        if not isinstance(table, dict):
            continue
        known = set(example.get(section, {})) | new.get(section, set())
        assert set(table) <= known, f"[{section}]: {sorted(set(table) - known)}"


def metric_names(expr: str) -> set[str]:
    return set(_METRIC.findall(expr))


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    assert isinstance(document, dict) and document["groups"], "no rule groups"
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_alert_rules_are_complete() -> None:
    alerts = rules()
    for rule in alerts:
        name = rule.get("alert")
        assert name, f"not an alerting rule: {rule}"
        assert isinstance(rule.get("expr"), str) and rule["expr"].strip(), name
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"].strip(), name
        assert rule["annotations"]["description"].strip(), name
        assert metric_names(rule["expr"]) <= METRIC_NAMES, name
    names = {rule["alert"] for rule in alerts}
    expected = {
        "DbmaintJobNotSucceeding",
        "DbmaintJobNeverSucceeded",
        "DbmaintJobFailed",
        "DbmaintRunMissed",
        "DbmaintWraparoundRisk",
        "DbmaintDatabaseDown",
        "DbmaintNoMetrics",
        "DbmaintStateStoreDown",
    }
    assert expected <= names, sorted(expected - names)
    severities = {rule["labels"]["severity"] for rule in alerts if rule["alert"] == "DbmaintWraparoundRisk"}
    assert severities == {"warning", "critical"}


def test_success_is_judged_over_the_cluster() -> None:
    # Standbys never succeed at vacuum, reindex or advisor: a per-host success alert would always fire there.
    for rule in rules():
        if "dbmaint_last_success_timestamp_seconds" in rule["expr"]:
            assert "max by (cluster, task, database)" in rule["expr"], rule["alert"]


def without_scrape_job(text: str) -> str:
    """``text`` without the matchers on Prometheus's own target label (``up{job="dbmaint"}``)."""
    return text.replace('job="dbmaint"', "")


def test_rules_name_dbmaint_jobs_by_the_task_label() -> None:
    # Not "job": that is Prometheus's target label, it would arrive as exported_job.
    for rule in rules():
        assert not re.search(r"\bjob\b", without_scrape_job(rule["expr"])), rule["alert"]
        for text in rule["annotations"].values():
            assert "$labels.job" not in text, rule["alert"]


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian: apt-get install prometheus)")
    return path


def test_promtool_accepts_the_rules() -> None:
    result = subprocess.run(
        [promtool(), "check", "rules", str(RULES)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_fire_when_they_should() -> None:
    # Standby versus primary, clusters, never-succeeded, wraparound thresholds: dbmaint.rules.test.yml.
    result = subprocess.run(
        [promtool(), "test", "rules", RULES_TESTS.name],
        cwd=RULES_TESTS.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for item in items:
        yield item
        yield from panels(item.get("panels", []))  # collapsed rows hold their panels


def dashboard_exprs() -> list[str]:
    return [
        target["expr"]
        for panel in panels(dashboard()["panels"])
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def test_dashboard_panels_all_query_dbmaint_metrics() -> None:
    board = dashboard()
    assert board["schemaVersion"] == 39
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("database", "task"):
        assert variables[name]["type"] == "query"
        assert "label_values(" in variables[name]["query"], name
    ids = []
    for panel in panels(board["panels"]):
        if panel["type"] == "row":
            continue
        ids.append(panel["id"])
        exprs = [target.get("expr", "") for target in panel.get("targets", [])]
        assert any(expr.strip() for expr in exprs), f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for expr in dashboard_exprs() + [str(variable.get("query", "")) for variable in variables.values()]:
        unknown = metric_names(expr) - METRIC_NAMES
        assert not unknown, f"{sorted(unknown)} in {expr}"


def test_dashboard_names_dbmaint_jobs_by_the_task_label() -> None:
    board = dashboard()
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert "job" not in variables
    assert re.fullmatch(r"label_values\(dbmaint_last_run_status(\{[^}]*\})?, task\)", variables["task"]["query"])
    for panel in panels(board["panels"]):
        for target in panel.get("targets", []):
            for key in ("expr", "legendFormat"):
                assert not re.search(r"\bjob\b", target.get(key, "")), f"{panel['title']!r}: {target.get(key)}"


def test_promtool_parses_the_dashboard_queries(tmp_path: Path) -> None:
    tool = promtool()
    variables = {"$cluster": ".*", "$database": ".*", "$task": ".*"}
    recorded = []
    for number, expr in enumerate(dashboard_exprs()):
        for name, value in variables.items():
            expr = expr.replace(name, value)
        assert "$" not in expr, expr
        recorded.append({"record": f"dashboard:query_{number}", "expr": expr})
    path = tmp_path / "dashboard.rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recorded}]}), encoding="utf-8")
    result = subprocess.run(
        [tool, "check", "rules", "--lint=none", str(path)], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr
