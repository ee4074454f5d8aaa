"""The service's pure parts: which jobs it plans, the clocks-go-back rule, the log formatting, and the worst
index bloat for the metrics."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast
from zoneinfo import ZoneInfo

import pytest

from dbmaint.config import parse_config
from dbmaint.maintenance import reindex_analysis
from dbmaint.pg.facts import IndexStats
from dbmaint.service.metrics import IndexBloat
from dbmaint.service.schedule import next_fire_times, parse_cron
from dbmaint.service.scheduler import Planned, Service, _duration, _when, _worst_bloat, planned_jobs

# --- planned_jobs ------------------------------------------------------------------------------------------------


def test_every_enabled_job_on_every_database_in_a_stable_order() -> None:
    config = parse_config({"capture": {"enabled": False}}, "test")
    planned = planned_jobs(config, ["app", "sales"])
    assert [p.id for p in planned] == [
        "vacuum:app",
        "vacuum:sales",
        "reindex:app",
        "reindex:sales",
        "advisor:app",
        "advisor:sales",
    ]
    assert [(p.job, p.database) for p in planned][:2] == [("vacuum", "app"), ("vacuum", "sales")]


def test_no_databases_no_jobs() -> None:
    assert planned_jobs(parse_config({}, "test"), []) == []


def test_all_disabled_no_jobs() -> None:
    off = {"enabled": False}
    config = parse_config({"vacuum": off, "reindex": off, "capture": off, "advisor": off}, "test")
    assert planned_jobs(config, ["app"]) == []


def test_planned_jobs_carry_schedule_zone_grace_and_max_runtime() -> None:
    config = parse_config(
        {
            "timezone": "Europe/Berlin",
            "vacuum": {"schedule": "30 2 * * *", "window": "1h", "grace": "5min"},
            "reindex": {"window": "3h", "grace": "15min"},
            "capture": {"schedule": "*/5 * * * *"},
            "scheduler": {"misfire_grace": "20min"},
        },
        "test",
    )
    planned = {p.job: p for p in planned_jobs(config, ["app"])}
    assert set(planned) == {"vacuum", "reindex", "capture", "advisor"}
    vacuum = planned["vacuum"]
    assert vacuum == Planned("vacuum", "app", parse_cron("30 2 * * *"), "Europe/Berlin", 1200.0, 3900.0)
    assert vacuum.spec.text == "30 2 * * *"
    assert planned["reindex"].max_runtime_s == 3 * 3600 + 15 * 60
    assert planned["reindex"].spec.text == "0 4 1 * *"  # the default
    assert planned["capture"].max_runtime_s is None  # no window
    assert planned["capture"].spec.text == "*/5 * * * *"
    assert planned["advisor"].max_runtime_s is None
    assert {p.misfire_grace for p in planned.values()} == {1200.0}
    assert {p.timezone for p in planned.values()} == {"Europe/Berlin"}


def test_default_misfire_grace_and_windows() -> None:
    planned = {p.job: p for p in planned_jobs(parse_config({}, "test"), ["app"])}
    assert planned["vacuum"].misfire_grace == 3600.0
    assert planned["vacuum"].max_runtime_s == 2 * 3600 + 10 * 60
    assert planned["reindex"].max_runtime_s == 4 * 3600 + 10 * 60
    assert planned["vacuum"].timezone == "UTC"


# --- clocks go back: one run per wall-clock time -----------------------------------------------------------------


def stub() -> Service:
    """Just what _repeated_wall_clock uses: Service.__init__ would load a config and open history."""
    return cast(Service, SimpleNamespace(_lock=threading.Lock(), _last_wall_clock={}))


def repeated(service: Service, job_id: str, when: datetime, timezone: str = "Europe/Berlin") -> bool:
    return Service._repeated_wall_clock(service, job_id, when, timezone)


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 10, day, hour, minute, tzinfo=UTC)


def test_the_repeated_0230_runs_once() -> None:
    service = stub()
    # 2026-10-25: Berlin goes from CEST back to CET at 03:00; 00:30Z and 01:30Z are both 02:30 local.
    assert repeated(service, "vacuum:app", utc(25, 0, 30)) is False
    assert repeated(service, "vacuum:app", utc(25, 1, 30)) is True
    # The next day's 02:30 runs again.
    assert repeated(service, "vacuum:app", utc(26, 1, 30)) is False


def test_the_rule_matches_what_apscheduler_fires() -> None:
    service = stub()
    times = next_fire_times(parse_cron("30 2 * * *"), "Europe/Berlin", utc(24, 12), 3)
    assert [t.astimezone(UTC) for t in times] == [utc(25, 0, 30), utc(25, 1, 30), utc(26, 1, 30)]
    assert [repeated(service, "vacuum:app", t) for t in times] == [False, True, False]


def test_the_rule_is_per_job() -> None:
    service = stub()
    assert repeated(service, "vacuum:app", utc(25, 0, 30)) is False
    assert repeated(service, "vacuum:sales", utc(25, 1, 30)) is False
    assert repeated(service, "vacuum:app", utc(25, 1, 30)) is True


def test_every_repeated_fixed_time_of_the_hour_is_caught_not_only_the_last() -> None:
    """0,30 2 * * *: 02:00 and 02:30 CEST run; 02:00 and 02:30 CET (the same wall times again) do not."""
    service = stub()
    sequence = [utc(25, 0, 0), utc(25, 0, 30), utc(25, 1, 0), utc(25, 1, 30), utc(26, 1, 0)]
    assert [repeated(service, "vacuum:app", t) for t in sequence] == [False, False, True, True, False]


def test_in_utc_nothing_is_ever_repeated() -> None:
    service = stub()
    assert repeated(service, "vacuum:app", utc(25, 0, 30), "UTC") is False
    assert repeated(service, "vacuum:app", utc(25, 1, 30), "UTC") is False


def test_the_same_scheduled_time_twice_is_a_repeat() -> None:
    service = stub()
    assert repeated(service, "vacuum:app", utc(20, 1, 0)) is False
    assert repeated(service, "vacuum:app", utc(20, 1, 0)) is True


# --- formatting --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0 s"),
        (0.4, "0 s"),
        (59.6, "60 s"),
        (119, "119 s"),
        (120, "2 min"),
        (179, "2 min"),
        (3600, "60 min"),
        (7199, "119 min"),
        (7200, "2.0 h"),
        (9000, "2.5 h"),
        (86400, "24.0 h"),
        (-30, "0 s"),
    ],
)
def test_duration(seconds: float, text: str) -> None:
    assert _duration(timedelta(seconds=seconds)) == text


def test_when_is_utc() -> None:
    berlin = datetime(2026, 11, 26, 4, 5, 6, tzinfo=ZoneInfo("Europe/Berlin"))
    assert _when(berlin) == "2026-11-26 03:05:06 UTC"
    assert _when(datetime(2026, 7, 1, 0, 0, 0, 999999, tzinfo=UTC)) == "2026-07-01 00:00:00 UTC"
    assert _when(None) == "never"


# --- the worst index bloat ---------------------------------------------------------------------------------------

# An int4 btree of 1,000,000 rows needs about 2,733 pages freshly built (see test_reindex_analysis).
HEALTHY = IndexStats(
    index_oid=10, table_oid=1, schema="public", name="t_pkey", table_name="t", method="btree", relpages=2700,
    reltuples=1_000_000, size_bytes=2700 * 8192, reloptions=[], is_valid=True, is_catalog=False,
    is_exclusion=False, block_size=8192, missing_stats=0, data_width=4.0, max_null_frac=0.0, tablespace_oid=1663,
)  # fmt: skip


def bloated(name: str, relpages: int, schema: str = "public") -> IndexStats:
    return HEALTHY._replace(name=name, schema=schema, relpages=relpages, size_bytes=relpages * 8192)


def expected(index: IndexStats) -> IndexBloat:
    bloat = reindex_analysis.estimate_bloat(index)
    assert bloat is not None and bloat.bytes > 0
    return IndexBloat(index.qualified_name, bloat.bytes, bloat.ratio)


def test_worst_bloat_is_ordered_by_bytes_and_cut_at_top() -> None:
    small, big, middle = bloated("small", 4000), bloated("big", 20000, schema="sales"), bloated("middle", 9000)
    worst = _worst_bloat([small, big, middle], top=10)
    assert worst == [expected(big), expected(middle), expected(small)]
    assert [b.index for b in worst] == ["sales.big", "public.middle", "public.small"]
    assert worst[0].bytes > worst[1].bytes > worst[2].bytes
    assert _worst_bloat([small, big, middle], top=2) == [expected(big), expected(middle)]


def test_worst_bloat_leaves_out_healthy_and_unknown() -> None:
    unknown = bloated("gin_idx", 20000)._replace(method="gin")
    no_stats = bloated("no_stats", 20000)._replace(missing_stats=1)
    healthy = reindex_analysis.estimate_bloat(HEALTHY)
    assert healthy is not None and healthy.bytes == 0
    assert _worst_bloat([HEALTHY, unknown, no_stats], top=10) == []
    middle = bloated("middle", 9000)
    assert _worst_bloat([HEALTHY, unknown, middle, no_stats], top=10) == [expected(middle)]


def test_worst_bloat_of_nothing() -> None:
    assert _worst_bloat([], top=10) == []
