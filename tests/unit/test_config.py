"""Config parsing: typed values, defaults, and one clear error for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbmaint.config import Config, find_config_path, load_config, parse_config
from dbmaint.errors import ConfigError
from dbmaint.units import format_duration, format_size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100ms", 0.1), ("5s", 5.0), ("30min", 1800.0), ("2h", 7200.0), ("7d", 604800.0), ("1.5 h", 5400.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(("text", "size"), [("10MB", 10 * 1024**2), ("8kB", 8192), ("1GB", 1024**3), ("512", 512)])
def test_sizes(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["", "soon", "5 parsecs", "-1s", "1e3s"])
def test_bad_durations(bad: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(bad)


def test_formatting_is_readable() -> None:
    assert format_size(10 * 1024**2) == "10.0 MB"
    assert format_size(None) == "-"
    assert format_duration(0.0123) == "12 ms"
    assert format_duration(7300) == "2 h 1 min"


def test_example_config_at_the_top_level_is_valid() -> None:
    config = load_config(str(Path(__file__).parents[2] / "config.toml"))
    assert config.vacuum.window == 7200.0
    assert config.reindex.min_size == 10 * 1024**2
    assert config.safety.lock_timeout == 5.0
    assert [db.name for db in config.databases] == ["local"]


def test_defaults_are_those_a_dba_would_choose() -> None:
    config = parse_config({}, "test.toml")
    assert config.vacuum.trigger_fraction == 0.5
    assert config.reindex.min_bloat_ratio == 0.3
    assert config.reindex.max_per_run == 5
    assert config.safety.max_active_connections == 80
    assert config.capture.min_mean_time == pytest.approx(0.1)
    assert config.timezone == "UTC"


def test_values_are_typed_and_frozen() -> None:
    config = parse_config(
        {"vacuum": {"window": "30min", "jobs": 2, "exclude": ["audit.*"]}, "reindex": {"min_size": "1GB"}}, "x"
    )
    assert config.vacuum.window == 1800.0 and config.vacuum.jobs == 2 and config.vacuum.exclude == ("audit.*",)
    assert config.reindex.min_size == 1024**3
    with pytest.raises(AttributeError):
        config.vacuum.jobs = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"vacum": {}}, "unknown key 'vacum' (allowed at the top level:"),
        ({"vacuum": {"jobs": "2"}}, "'vacuum.jobs': expected an integer, got a string"),
        ({"vacuum": {"jobs": 0}}, "'vacuum.jobs' must be between 1 and 16"),
        ({"vacuum": {"enabled": "yes"}}, "'vacuum.enabled': expected true or false"),
        ({"vacuum": {"schedule": "every day"}}, "'vacuum.schedule': expected 5 fields"),
        ({"vacuum": {"trigger_fraction": 2}}, "'vacuum.trigger_fraction' must be above 0 and at most 1"),
        ({"vacuum": {"exclude": "audit.*"}}, "'vacuum.exclude': expected a list of strings"),
        ({"vacuum": {"freeze_age": 0}}, "'vacuum.freeze_age' must be above 0 and below 2^31"),
        ({"vacuum": {"multixact_freeze_age": 2**31}}, "'vacuum.multixact_freeze_age' must be above 0 and below"),
        ({"vacuum": {"retries": -1}}, "'vacuum.retries': expected a number >= 0"),
        ({"reindex": {"retries": 1000}}, "'reindex.retries' must be at most 100"),
        ({"reindex": {"disk_headroom": 0.5}}, "'reindex.disk_headroom' must be at least 1"),
        ({"capture": {"max_per_pass": 0}}, "'capture.max_per_pass' must be at least 1"),
        ({"capture": {"regression_factor": 0.9}}, "'capture.regression_factor' must be above 1"),
        ({"advisor": {"max_statements": 0}}, "'advisor.max_statements' must be at least 1"),
        ({"report": {"days": 0}}, "'report.days' must be between 1 and 3650"),
        ({"vacuum": 3}, "[vacuum] must be a table"),
        ({"databases": {"name": "x"}}, "'databases' must be an array of tables"),
        ({"databases": [{"name": "a b", "dsn": ""}]}, "'databases[0].name': use letters"),
        ({"databases": [{"name": "a", "dsn": "", "port": 1}]}, "unknown key 'databases[0].port'"),
        ({"databases": [{"name": "a", "dsn": "x"}, {"name": "a", "dsn": "y"}]}, "database name 'a' is used twice"),
    ],
)
def test_every_mistake_names_the_file_and_key(document: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "/etc/dbmaint/config.toml")
    assert str(caught.value).startswith("/etc/dbmaint/config.toml: ")
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_config_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DBMAINT_CONFIG", raising=False)
    assert find_config_path(None) in (None, Path("/etc/dbmaint/config.toml"))
    (tmp_path / "config.toml").write_text("")
    assert find_config_path(None) == Path("config.toml")
    monkeypatch.setenv("DBMAINT_CONFIG", "/from/env.toml")
    assert find_config_path(None) == Path("/from/env.toml")
    assert find_config_path("/explicit.toml") == Path("/explicit.toml")


def test_state_url_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DBMAINT_STATE_URL", "sqlite:///elsewhere.db")
    path = tmp_path / "c.toml"
    path.write_text("[state]\nurl = 'sqlite:///config.db'\n")
    assert load_config(str(path)).state.url == "sqlite:///elsewhere.db"
    assert Config().state.url.startswith("sqlite:///")
