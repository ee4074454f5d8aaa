"""config.toml -> frozen, typed settings.

Every key is declared once, in a section class below, with its type and default. Loading walks those
declarations: an unknown key or a value of the wrong type is a ``ConfigError`` naming the file and the
key, so a typo never silently falls back to a default.

The sections are named tuples rather than frozen dataclasses: every command builds all 14 at start-up, and a
NamedTuple class costs about a quarter of a dataclass to create (about 3 against 14 ms in all on a small machine,
where `dbmaint explain` has ~100 ms to spend beyond the bare minimum). Change a copy with ``_replace``.
"""

from __future__ import annotations

import os
import re
import tomllib
import zoneinfo
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ForwardRef, NamedTuple, TypeVar

from dbmaint.errors import ConfigError
from dbmaint.units import parse_duration, parse_size

CONFIG_SEARCH_PATH = (Path("config.toml"), Path("/etc/dbmaint/config.toml"))

# What a TOML value means is told by the field's annotation: a Duration is written "5s" and kept in seconds, a
# Size "10MB" kept in bytes, a Cron is a cron expression checked on load.
Duration = float
Size = int
Cron = str
_KINDS = {"Duration": "duration", "Size": "size", "Cron": "cron"}
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class DatabaseConfig(NamedTuple):
    """One [[databases]] entry: its name and how to connect (a DSN, or the variable holding one)."""

    name: str
    dsn: str | None = None
    dsn_env: str | None = None
    # The database on each physical standby (libpq DSNs; passwords from ~/.pgpass or PGPASSFILE): read-only,
    # for what only a standby knows, such as the indexes its queries use.
    standbys: tuple[str, ...] = ()
    # "all": every database of the server the DSN reaches that allows connections, except templates (as
    # vacuumdb --all), listed again at every run: each is named "<name>/<database>" in history and output.
    databases: str | None = None
    exclude: tuple[str, ...] = ()  # with databases = "all": database names to leave out (shell patterns)
    # With databases = "all": at most this many maintenance connections to the server at once, shared among
    # the databases worked on side by side (as vacuumdb --jobs).
    jobs: int = 1


class VacuumConfig(NamedTuple):
    """[vacuum]: the daily VACUUM ANALYZE of the tables that need it."""

    enabled: bool = True
    schedule: Cron = "0 3 * * *"
    window: Duration = parse_duration("2h")
    # A statement still running when the window closes gets this much longer before it is cancelled.
    grace: Duration = parse_duration("10min")
    # Act on a table once it is this far toward autovacuum's own trigger (1.0 = the trigger itself),
    # so that the nightly pass does the work autovacuum would otherwise start during the day.
    trigger_fraction: float = 0.5
    # Transaction-ID / multixact age at which a table is frozen first (wraparound protection).
    freeze_age: int = 150_000_000
    multixact_freeze_age: int = 150_000_000
    jobs: int = 1
    retries: int = 2
    retry_delay: Duration = parse_duration("15s")
    exclude: tuple[str, ...] = ()


class ReindexConfig(NamedTuple):
    """[reindex]: the monthly REINDEX CONCURRENTLY of bloated indexes."""

    enabled: bool = True
    schedule: Cron = "0 4 1 * *"
    window: Duration = parse_duration("4h")
    grace: Duration = parse_duration("10min")
    min_bloat_ratio: float = 0.3
    min_size: Size = parse_size("10MB")
    max_per_run: int = 5
    # An index rebuilt less than this long ago (according to history) is left alone.
    min_interval: Duration = parse_duration("7d")
    # Free disk needed, as a multiple of the index size (the new copy plus its WAL).
    disk_headroom: float = 2.0
    use_pgstattuple: bool = True
    retries: int = 2
    retry_delay: Duration = parse_duration("15s")
    exclude: tuple[str, ...] = ()


class CaptureConfig(NamedTuple):
    """[capture]: slow statements from pg_stat_statements, with their plans."""

    enabled: bool = True
    schedule: Cron = "*/15 * * * *"
    # A statement is slow when its mean time since the last pass (or ever, on the first) is over this.
    min_mean_time: Duration = parse_duration("100ms")
    max_per_pass: int = 20
    # Time allowed for a pass's EXPLAINs; what does not fit waits for the next pass.
    time_budget: Duration = parse_duration("30s")
    # EXPLAIN ANALYZE (read-only queries only, with representative values) instead of estimates alone.
    analyze: bool = False
    statement_timeout: Duration = parse_duration("10s")
    # A plan whose shape changed and whose cost grew by this factor is flagged as a regression.
    regression_factor: float = 1.2
    # auto_explain's JSON plans are read from this server log on each pass (csvlog, jsonlog or stderr).
    auto_explain_log: str | None = None


class AdvisorConfig(NamedTuple):
    """[advisor]: the indexes to recommend, and what they may cost."""

    enabled: bool = True
    schedule: Cron = "0 5 * * 0"
    # New indexes may take this much space in all: a share of the database size, or a size ("2GB").
    # The default choice is capped by count, not bytes (a budget in bytes was spent on the first pick and
    # starved the rest): at most max_new_indexes per run, max_indexes_per_table on one table. An explicit
    # cap on their size can still be set: a share of the database ("20%") or a size ("2GB").
    storage_budget: str = "none"
    max_new_indexes: int = 10
    max_indexes_per_table: int = 3
    # A pg_stat_statements entry under min_total_time in all is not worth an index, nor one with fewer
    # than min_calls calls that are each faster than capture.min_mean_time (counted as such).
    min_calls: int = 5
    min_total_time: Duration = parse_duration("100ms")
    max_statements: int = 1000
    # A candidate must make at least one statement this much cheaper on the planner's estimate.
    min_improvement: float = 0.2
    # An index must save at least this many times the share of the database's size it adds, as a share of
    # the time of the statements indexes could make faster (0.5: 4% of the size for at least 2% of that
    # time); 0 switches the rule off.
    min_saving_per_size: float = 0.5
    # Saving per byte is scaled by (1 - write_penalty x the table's share of writes): indexes cost writes.
    write_penalty: float = 0.5
    # Statements running longer than this right now join the workload (pg_stat_activity).
    long_running: Duration = parse_duration("30s")
    versions_dir: str = "migrations/versions"


class SafetyConfig(NamedTuple):
    """[safety]: the limits every session of dbmaint works within."""

    lock_timeout: Duration = parse_duration("5s")
    connect_timeout: Duration = parse_duration("10s")
    # How often the server checks that dbmaint is still connected (client_connection_check_interval).
    connection_check_interval: Duration = parse_duration("10s")
    max_active_connections: int = 80
    max_replication_lag: Duration = parse_duration("5min")


def _default_state_url() -> str:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return f"sqlite:///{base / 'dbmaint' / 'state.db'}"


class StateConfig(NamedTuple):
    """[state]: where runs, plans and the service's state are kept."""

    url: str = _default_state_url()  # read once, at import
    retention: Duration = parse_duration("90d")


class SentryConfig(NamedTuple):
    """[sentry]: errors and cron check-ins sent to Sentry."""

    # The DSN comes from this environment variable (kept out of config files); unset or empty: Sentry off.
    dsn_env: str = "SENTRY_DSN"
    environment: str = "production"


class MetricsConfig(NamedTuple):
    """[metrics]: the Prometheus endpoint and how often its health figures are read."""

    # "host:port" for /metrics (Prometheus text format); unset: no metrics endpoint.
    listen: str | None = None
    # How often the health figures (dead tuples, transaction-ID age, index bloat) are read per database.
    refresh: Duration = parse_duration("1min")
    # How many of the worst tables and indexes each database reports.
    top: int = 10


class ReportConfig(NamedTuple):
    """[report]: the HTML page of `dbmaint report`, written by the service on a schedule."""

    # Where the service writes the page (written whole, then renamed over the old one); unset: no page.
    html: str | None = None
    schedule: Cron = "0 * * * *"
    days: int = 30  # the period the page covers
    # The checklist is run live for the page; it plans the workload with hypothetical indexes (as
    # `dbmaint check` does), which takes a while on a large workload: a longer schedule, or false.
    checklist: bool = True


class SchedulerConfig(NamedTuple):
    """[scheduler]: what happens to runs missed while the service was down."""

    # A run missed by at most this much (host down, service stopped) runs when the service is back;
    # a later one is recorded as missed. Runs missed several times over are coalesced into one.
    misfire_grace: Duration = parse_duration("1h")
    # On SIGTERM running statements are cancelled; the service exits within this, whatever happens.
    stop_timeout: Duration = parse_duration("30s")


class ExplainConfig(NamedTuple):
    """[explain]: how `dbmaint explain` and capture run statements."""

    # A role with read access only, to execute statements as (SET LOCAL ROLE) under EXPLAIN ANALYZE, in
    # `dbmaint explain` and in capture; unset: the connecting role. dbmaint's role must be a member of it.
    role: str | None = None


class CheckConfig(NamedTuple):
    """[check]: the thresholds of `dbmaint check`'s items (warn: reported, exit 0; fail: exit 1)."""

    # Integer columns fed by a sequence or identity, and sequences: the share of their range used.
    overflow_warn: float = 0.7
    overflow_fail: float = 0.9
    # Transaction-ID and multixact age of the database and its tables: wraparound stops writes at 2^31.
    xid_age_warn: int = 500_000_000
    xid_age_fail: int = 1_000_000_000
    # WAL a replication slot keeps on disk; an inactive slot is a warning at any size.
    slot_retained_warn: Size = parse_size("1GB")
    slot_retained_fail: Size = parse_size("10GB")
    # A session idle in a transaction holds back every vacuum and keeps its locks: fail beyond this.
    idle_in_transaction: Duration = parse_duration("5min")
    # A statement running longer than this: a warning (it holds back vacuum too).
    long_running: Duration = parse_duration("1h")
    # A session waiting on a lock longer than this: fail, with who blocks it.
    lock_wait: Duration = parse_duration("1min")
    # Connections in use, of max_connections less the reserved ones.
    connections_warn: float = 0.8
    connections_fail: float = 0.9
    # Cache hit rate of tables and of indexes below this: a warning.
    cache_hit_warn: float = 0.99
    # Heap bloat: a warning when a table wastes this share of itself and at least bloat_min_wasted.
    bloat_warn: float = 0.3
    bloat_min_wasted: Size = parse_size("100MB")
    # Autovacuum settings are advised from a table's churn since its last vacuum, once it is this old.
    autovacuum_min_observed: Duration = parse_duration("1h")


class Config(NamedTuple):
    """The whole configuration file."""

    databases: tuple[DatabaseConfig, ...] = ()
    timezone: str = "UTC"
    vacuum: VacuumConfig = VacuumConfig()
    reindex: ReindexConfig = ReindexConfig()
    capture: CaptureConfig = CaptureConfig()
    advisor: AdvisorConfig = AdvisorConfig()
    safety: SafetyConfig = SafetyConfig()
    state: StateConfig = StateConfig()
    sentry: SentryConfig = SentryConfig()
    metrics: MetricsConfig = MetricsConfig()
    report: ReportConfig = ReportConfig()
    scheduler: SchedulerConfig = SchedulerConfig()
    explain: ExplainConfig = ExplainConfig()
    check: CheckConfig = CheckConfig()
    source: str = "defaults"


T = TypeVar("T")


def _type_name(value: object) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(
        type(value), type(value).__name__
    )


def _convert(where: str, annotation: str, value: object) -> object:
    kind = _KINDS.get(annotation)
    if kind in ("duration", "size"):
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            example = '"30min"' if kind == "duration" else '"10MB"'
            raise ValueError(f"expected a {kind} such as {example}")
        if isinstance(value, int | float):  # a bare number: seconds or bytes
            return float(value) if kind == "duration" else int(value)
        return parse_duration(value) if kind == "duration" else parse_size(value)
    if kind == "cron":
        if not isinstance(value, str):
            raise ValueError('expected a cron expression such as "0 3 * * *"')
        from dbmaint.service.schedule import parse_cron

        parse_cron(value)  # ValueError with the reason
        return value
    if annotation.startswith("tuple"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValueError("expected a list of strings")
        return tuple(value)
    if annotation == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {_type_name(value)}")
        return value
    if annotation == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_type_name(value)}")
        if value < 0:
            raise ValueError("expected a number >= 0")
        return value
    if annotation == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"expected a number, got {_type_name(value)}")
        if value < 0:
            raise ValueError("expected a number >= 0")
        return float(value)
    if annotation in ("str", "str | None"):
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_type_name(value)}")
        return value
    raise AssertionError(f"no conversion for {where} ({annotation})")


def _annotations(cls: type[Any]) -> dict[str, str]:
    """Each key of a section with its annotation as written ("Duration", "tuple[str, ...]", "str | None")."""
    # typing.NamedTuple keeps the annotations postponed by `from __future__ import annotations` as ForwardRefs.
    return {
        name: hint.__forward_arg__ if isinstance(hint, ForwardRef) else str(hint)
        for name, hint in cls.__annotations__.items()
    }


def _section(cls: type[T], table: object, where: str, source: str) -> T:
    if not isinstance(table, Mapping):
        raise ConfigError(f"{source}: [{where}] must be a table")
    declared = _annotations(cls)
    kwargs: dict[str, object] = {}
    for key, value in table.items():
        annotation = declared.get(key)
        if annotation is None:
            allowed = ", ".join(sorted(declared))
            raise ConfigError(f"{source}: unknown key '{where}.{key}' (allowed in [{where}]: {allowed})")
        try:
            kwargs[key] = _convert(f"{where}.{key}", annotation, value)
        except ValueError as exc:
            raise ConfigError(f"{source}: '{where}.{key}': {exc}") from None
    return cls(**kwargs)


# The jobs the service schedules, in this order (status, metrics, `history --job` and the scheduler).
JOB_NAMES = ("vacuum", "reindex", "capture", "advisor")

_SECTIONS: dict[str, type[Any]] = {
    "vacuum": VacuumConfig,
    "reindex": ReindexConfig,
    "capture": CaptureConfig,
    "advisor": AdvisorConfig,
    "safety": SafetyConfig,
    "state": StateConfig,
    "sentry": SentryConfig,
    "metrics": MetricsConfig,
    "report": ReportConfig,
    "scheduler": SchedulerConfig,
    "explain": ExplainConfig,
    "check": CheckConfig,
}


def parse_config(document: Mapping[str, Any], source: str) -> Config:
    """Validate a parsed TOML document; ``source`` names it in error messages."""
    kwargs: dict[str, Any] = {"source": source}
    for key, value in document.items():
        if key == "databases":
            kwargs["databases"] = _databases(value, source)
        elif key == "timezone":
            if not isinstance(value, str):
                raise ConfigError(f"{source}: 'timezone': expected a string such as \"UTC\"")
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ConfigError(f"{source}: 'timezone': unknown time zone {value!r}") from None
            kwargs["timezone"] = value
        elif key in _SECTIONS:
            kwargs[key] = _section(_SECTIONS[key], value, key, source)
        else:
            allowed = ", ".join(sorted([*_SECTIONS, "databases", "timezone"]))
            raise ConfigError(f"{source}: unknown key '{key}' (allowed at the top level: {allowed})")
    config = Config(**kwargs)
    _check_ranges(config, source)
    return config


def _databases(value: object, source: str) -> tuple[DatabaseConfig, ...]:
    if not isinstance(value, list):
        raise ConfigError(f"{source}: 'databases' must be an array of tables ([[databases]])")
    result = []
    for index, table in enumerate(value):
        where = f"databases[{index}]"
        entry = _section(DatabaseConfig, table, where, source) if isinstance(table, Mapping) else None
        if entry is None:
            raise ConfigError(f"{source}: '{where}' must be a table")
        if not _NAME.match(entry.name):
            raise ConfigError(f"{source}: '{where}.name': use letters, digits, '_', '-' or '.'")
        if (entry.dsn is None) == (entry.dsn_env is None):
            raise ConfigError(f"{source}: '{where}' needs exactly one of 'dsn' or 'dsn_env'")
        if entry.databases not in (None, "all"):
            raise ConfigError(f"{source}: '{where}.databases': the only value is \"all\" (every database)")
        if entry.databases is None and (entry.exclude or entry.jobs != 1):
            raise ConfigError(f"{source}: '{where}': exclude and jobs go with databases = \"all\"")
        if not 1 <= entry.jobs <= 64:
            raise ConfigError(f"{source}: '{where}.jobs' must be between 1 and 64")
        result.append(entry)
    names = [db.name for db in result]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{source}: database name {duplicates[0]!r} is used twice")
    return tuple(result)


def _check_ranges(config: Config, source: str) -> None:
    checks = [
        ("vacuum.jobs", 1 <= config.vacuum.jobs <= 16, "between 1 and 16"),
        ("vacuum.trigger_fraction", 0 < config.vacuum.trigger_fraction <= 1, "above 0 and at most 1"),
        # Ages are XID distances: 2^31 is wraparound itself, and 0 would freeze every table every night.
        ("vacuum.freeze_age", 0 < config.vacuum.freeze_age < 2**31, "above 0 and below 2^31"),
        ("vacuum.multixact_freeze_age", 0 < config.vacuum.multixact_freeze_age < 2**31, "above 0 and below 2^31"),
        ("vacuum.retries", config.vacuum.retries <= 100, "at most 100"),
        ("reindex.retries", config.reindex.retries <= 100, "at most 100"),
        # The rebuild writes a whole new copy of the index (and its WAL) before the old one goes.
        ("reindex.disk_headroom", config.reindex.disk_headroom >= 1, "at least 1"),
        ("capture.max_per_pass", config.capture.max_per_pass >= 1, "at least 1"),
        ("capture.regression_factor", config.capture.regression_factor > 1, "above 1"),
        ("advisor.max_statements", config.advisor.max_statements >= 1, "at least 1"),
        ("report.days", 1 <= config.report.days <= 3650, "between 1 and 3650"),
        ("reindex.min_bloat_ratio", 0 < config.reindex.min_bloat_ratio < 1, "between 0 and 1"),
        ("reindex.max_per_run", config.reindex.max_per_run >= 1, "at least 1"),
        ("advisor.min_improvement", 0 < config.advisor.min_improvement < 1, "between 0 and 1"),
        ("advisor.min_saving_per_size", config.advisor.min_saving_per_size >= 0, "0 or more"),
        ("advisor.write_penalty", 0 <= config.advisor.write_penalty <= 1, "between 0 and 1"),
        (
            "advisor.storage_budget",
            _budget_ok(config.advisor.storage_budget),
            '"none", a share such as "20%" or a size',
        ),
        ("advisor.max_new_indexes", config.advisor.max_new_indexes >= 1, "at least 1"),
        ("advisor.max_indexes_per_table", config.advisor.max_indexes_per_table >= 1, "at least 1"),
        ("safety.lock_timeout", config.safety.lock_timeout > 0, "above 0"),
        ("safety.max_active_connections", config.safety.max_active_connections >= 1, "at least 1"),
        (
            "check.overflow_fail",
            0 < config.check.overflow_warn <= config.check.overflow_fail <= 1,
            "at most 1, and at least check.overflow_warn (above 0)",
        ),
        (
            "check.xid_age_fail",
            0 < config.check.xid_age_warn <= config.check.xid_age_fail < 2**31,
            "below 2^31, and at least check.xid_age_warn (above 0)",
        ),
        (
            "check.slot_retained_fail",
            0 < config.check.slot_retained_warn <= config.check.slot_retained_fail,
            "at least check.slot_retained_warn (above 0)",
        ),
        (
            "check.connections_fail",
            0 < config.check.connections_warn <= config.check.connections_fail <= 1,
            "at most 1, and at least check.connections_warn (above 0)",
        ),
        ("check.cache_hit_warn", 0 < config.check.cache_hit_warn <= 1, "above 0 and at most 1"),
        ("check.bloat_warn", 0 < config.check.bloat_warn < 1, "between 0 and 1"),
        ("metrics.refresh", config.metrics.refresh >= 1, "at least 1s"),
        ("metrics.top", 1 <= config.metrics.top <= 1000, "between 1 and 1000"),
        ("metrics.listen", config.metrics.listen is None or _listen_ok(config.metrics.listen), '"host:port"'),
        ("scheduler.stop_timeout", 1 <= config.scheduler.stop_timeout <= 600, "between 1s and 10min"),
    ]
    for key, ok, allowed in checks:
        if not ok:
            raise ConfigError(f"{source}: '{key}' must be {allowed}")


def parse_listen(text: str) -> tuple[str, int]:
    """ "127.0.0.1:9188", "[::1]:9188" or ":9188" (all addresses) -> (host, port); ValueError otherwise."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"expected host:port, got {text!r}")
    return host.removeprefix("[").removesuffix("]") or "0.0.0.0", int(port)


def _listen_ok(text: str) -> bool:
    try:
        parse_listen(text)
    except ValueError:
        return False
    return True


def _budget_ok(text: str) -> bool:
    try:
        storage_budget_bytes(text, 1)
    except ValueError:
        return False
    return True


def storage_budget_bytes(text: str, database_size: int) -> int | None:
    """advisor.storage_budget in bytes: "10%" of the database, an absolute size such as "2GB", or None
    for "none" (no cap on size)."""
    if text.strip().lower() in ("none", ""):
        return None
    if text.strip().endswith("%"):
        share = float(text.strip()[:-1])
        if not 0 < share <= 1000:
            raise ValueError(text)
        return int(database_size * share / 100)
    return parse_size(text)


def find_config_path(explicit: str | None) -> Path | None:
    """The file to read: --config, then $DBMAINT_CONFIG, then ./config.toml, then /etc/dbmaint."""
    if explicit:
        return Path(explicit)
    from_env = os.environ.get("DBMAINT_CONFIG")
    if from_env:
        return Path(from_env)
    return next((path for path in CONFIG_SEARCH_PATH if path.is_file()), None)


def load_config(explicit: str | None = None) -> Config:
    path = find_config_path(explicit)
    if path is None:
        return _with_env_state(Config())
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read the configuration file: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return _with_env_state(parse_config(document, str(path)))


def _with_env_state(config: Config) -> Config:
    url = os.environ.get("DBMAINT_STATE_URL")
    if url:
        return config._replace(state=config.state._replace(url=url))
    return config
