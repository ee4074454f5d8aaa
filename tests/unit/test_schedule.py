"""Cron schedules: crontab meaning on APScheduler 3 (weekday numbers, the day OR rule, seconds, DST)."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from dbmaint.service.schedule import CronSpec, build_trigger, next_fire_times, parse_cron, period_seconds

BERLIN = ZoneInfo("Europe/Berlin")
THURSDAY = datetime(2026, 11, 26, tzinfo=UTC)  # 2026-11-26 is a Thursday
DAY = 86400.0


def fires(text: str, after: datetime = THURSDAY, count: int = 5, timezone: str = "UTC") -> list[datetime]:
    return next_fire_times(parse_cron(text), timezone, after, count)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def gaps(times: list[datetime]) -> list[float]:
    """Real elapsed seconds (subtracting two datetimes of one ZoneInfo zone would give wall-clock time)."""
    in_utc = [t.astimezone(UTC) for t in times]
    return [(b - a).total_seconds() for a, b in itertools.pairwise(in_utc)]


# --- weekdays: crontab 0 and 7 are Sunday, APScheduler 3's 0 is Monday ---------------------------------


@pytest.mark.parametrize("text", ["0 5 * * 0", "0 5 * * 7", "0 5 * * sun", "0 5 * * SUN"])
def test_sunday_job_fires_on_sundays(text: str) -> None:
    assert THURSDAY.weekday() == 3
    assert fires(text, count=3) == [utc(2026, 11, 29, 5), utc(2026, 12, 6, 5), utc(2026, 12, 13, 5)]


def test_weekday_range_skips_the_weekend() -> None:
    times = fires("0 3 * * 1-5", count=7)
    assert times == [
        utc(2026, 11, 26, 3),  # Thu
        utc(2026, 11, 27, 3),  # Fri
        utc(2026, 11, 30, 3),  # Mon
        utc(2026, 12, 1, 3),
        utc(2026, 12, 2, 3),
        utc(2026, 12, 3, 3),
        utc(2026, 12, 4, 3),
    ]


@pytest.mark.parametrize(
    ("weekday", "names"),
    [
        ("1-5", "mon,tue,wed,thu,fri"),
        ("mon-fri", "mon,tue,wed,thu,fri"),
        ("*/2", "sun,tue,thu,sat"),
        ("7", "sun"),
        ("0", "sun"),
        ("5-7", "sun,fri,sat"),
        ("fri-sun", "sun,fri,sat"),
        ("1/2", "sun,mon,wed,fri"),  # cronie: 1-7/2 = 1,3,5,7
        ("1,3,5", "mon,wed,fri"),
        ("sat,Sun", "sun,sat"),
        ("0-6", "*"),
        ("0-7", "*"),
        ("*", "*"),
    ],
)
def test_weekdays_are_written_as_names_for_apscheduler(weekday: str, names: str) -> None:
    spec = parse_cron(f"0 3 * * {weekday}")
    assert spec.day_of_week == names
    build_trigger(spec, "UTC")  # APScheduler accepts it


def test_step_over_weekdays_runs_on_the_right_days() -> None:
    # */2 = Sun, Tue, Thu, Sat; from Thursday 00:00 that is Thu, Sat, Sun, Tue.
    assert [t.date().isoformat() for t in fires("0 0 * * */2", count=4, after=THURSDAY - timedelta(seconds=1))] == [
        "2026-11-26",
        "2026-11-28",
        "2026-11-29",
        "2026-12-01",
    ]


# --- day of month OR day of week ----------------------------------------------------------------------


def test_day_and_weekday_both_restricted_fire_on_either() -> None:
    spec = parse_cron("0 4 1 * 1")
    assert spec.or_days
    assert len(spec.trigger_fields()) == 2
    assert next_fire_times(spec, "UTC", THURSDAY, 8) == [
        utc(2026, 11, 30, 4),  # Monday
        utc(2026, 12, 1, 4),  # the 1st, a Tuesday
        utc(2026, 12, 7, 4),
        utc(2026, 12, 14, 4),
        utc(2026, 12, 21, 4),
        utc(2026, 12, 28, 4),
        utc(2027, 1, 1, 4),  # the 1st, a Friday
        utc(2027, 1, 4, 4),
    ]


def test_a_day_that_matches_both_fires_once() -> None:
    # 2027-02-01 is a Monday and the 1st.
    times = fires("0 4 1 * 1", after=utc(2027, 1, 30), count=3)
    assert times == [utc(2027, 2, 1, 4), utc(2027, 2, 8, 4), utc(2027, 2, 15, 4)]


def test_a_day_field_starting_with_star_is_unrestricted_as_in_cron() -> None:
    # vixie cron and cronie look at the first character: "*/2" is a star, so the two fields are ANDed:
    # Mondays that are odd days of the month.
    spec = parse_cron("0 4 */2 * 1")
    assert not spec.or_days
    assert next_fire_times(spec, "UTC", THURSDAY, 3) == [utc(2026, 12, 7, 4), utc(2026, 12, 21, 4), utc(2027, 1, 11, 4)]


@pytest.mark.parametrize(
    ("text", "or_days"),
    [("0 4 1 * *", False), ("0 4 * * 1", False), ("0 4 1 * 1", True), ("0 4 1-31 * 0-6", True), ("@weekly", False)],
)
def test_or_days_follows_crontab(text: str, or_days: bool) -> None:
    assert parse_cron(text).or_days is or_days


def test_or_of_every_weekday_is_every_day() -> None:
    times = fires("0 4 1 * mon-sun", count=3)
    assert times == [utc(2026, 11, 26, 4), utc(2026, 11, 27, 4), utc(2026, 11, 28, 4)]


# --- seconds, aliases, syntax -------------------------------------------------------------------------


def test_six_fields_put_seconds_first() -> None:
    times = fires("*/5 * * * * *", count=6)
    assert times[0] == utc(2026, 11, 26, 0, 0, 5)
    assert gaps(times) == [5.0] * 5
    assert fires("30 0 3 * * *", count=1) == [utc(2026, 11, 26, 3, 0, 30)]


def test_five_fields_fire_on_second_zero() -> None:
    assert parse_cron("0 3 * * *").second == "0"
    assert fires("0 3 * * *", count=1) == [utc(2026, 11, 26, 3)]


def test_fire_times_are_strictly_after() -> None:
    assert fires("0 3 * * *", after=utc(2026, 11, 26, 3), count=1) == [utc(2026, 11, 27, 3)]
    assert fires("0 3 * * *", after=datetime(2026, 11, 26, 2, 59, 59, 999999, tzinfo=UTC), count=1) == [
        utc(2026, 11, 26, 3)
    ]


@pytest.mark.parametrize(
    ("alias", "crontab", "first"),
    [
        ("@yearly", "0 0 1 1 *", utc(2027, 1, 1)),
        ("@annually", "0 0 1 1 *", utc(2027, 1, 1)),
        ("@monthly", "0 0 1 * *", utc(2026, 12, 1)),
        ("@weekly", "0 0 * * 0", utc(2026, 11, 29)),
        ("@daily", "0 0 * * *", utc(2026, 11, 27)),
        ("@midnight", "0 0 * * *", utc(2026, 11, 27)),
        ("@hourly", "0 * * * *", utc(2026, 11, 26, 1)),
        ("@DAILY", "0 0 * * *", utc(2026, 11, 27)),
    ],
)
def test_aliases(alias: str, crontab: str, first: datetime) -> None:
    spec = parse_cron(alias)
    assert spec.text == alias
    assert spec.trigger_fields() == parse_cron(crontab).trigger_fields()
    assert spec.monitor_crontab() == crontab
    assert next_fire_times(spec, "UTC", THURSDAY, 1) == [first]


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("5/10 * * * *", "minute", "5-59/10"),
        ("0-30/10 * * * *", "minute", "0-30/10"),
        ("0 */6 * * *", "hour", "*/6"),
        ("0 1,13 * * *", "hour", "1,13"),
        ("0 0 * jan-mar *", "month", "1-3"),
        ("0 0 * JUL,dec *", "month", "7,12"),
        ("0 0 * */3 *", "month", "*/3"),
        ("0 0 1-7 * *", "day", "1-7"),
        ("0 0 5-5 * *", "day", "5"),
    ],
)
def test_fields_in_apscheduler_syntax(text: str, field: str, expected: str) -> None:
    spec = parse_cron(text)
    assert getattr(spec, field) == expected
    build_trigger(spec, "UTC")


def test_month_names_select_those_months() -> None:
    times = fires("0 0 1 jan,jul *", count=3)
    assert times == [utc(2027, 1, 1), utc(2027, 7, 1), utc(2028, 1, 1)]


def test_spec_is_a_frozen_value() -> None:
    spec = parse_cron("0 3 * * *")
    assert spec == CronSpec("0 3 * * *", "0", "0", "3", "*", "*", "*", False)
    with pytest.raises(AttributeError):
        spec.hour = "4"  # type: ignore[misc]


# --- Sentry monitor crontab ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "crontab"),
    [
        ("*/5 * * * * *", "* * * * *"),
        ("30 0 3 * * *", "0 3 * * *"),
        ("0 3 * * mon-fri", "0 3 * * 1-5"),
        ("0 5 * * 7", "0 5 * * 0"),
        ("0 0 * jan,jul sun", "0 0 * 1,7 0"),
        ("0 4 1 * 1", "0 4 1 * 1"),
        ("0 4 1 * mon-sun", "0 4 1 * 0-6"),  # not "*": that would make Sentry AND the days
        ("0 0 * * 0-7", "0 0 * * *"),
        ("5/10 * * * *", "5-59/10 * * * *"),
    ],
)
def test_monitor_crontab(text: str, crontab: str) -> None:
    assert parse_cron(text).monitor_crontab() == crontab


# --- time zones and DST -------------------------------------------------------------------------------


def test_berlin_spring_gap_runs_the_0230_job_once_an_hour_late() -> None:
    # On 2026-03-29 Berlin skips 02:00-03:00. APScheduler 3.11 reads the missing 02:30 with the offset from
    # before the change (+01:00), i.e. 01:30 UTC = 03:30 CEST: the job runs once that day, an hour late
    # by the wall clock; no day is lost and none runs twice.
    times = fires("30 2 * * *", after=datetime(2026, 3, 26, tzinfo=BERLIN), count=7, timezone="Europe/Berlin")
    local_days = [t.astimezone(BERLIN).date().isoformat() for t in times]
    assert local_days == [f"2026-03-{d}" for d in (26, 27, 28, 29, 30, 31)] + ["2026-04-01"]
    assert times[3].astimezone(UTC) == utc(2026, 3, 29, 1, 30)
    assert times[3].astimezone(BERLIN).strftime("%H:%M %Z") == "03:30 CEST"
    assert [t.astimezone(BERLIN).strftime("%H:%M") for t in times[4:]] == ["02:30"] * 3
    assert gaps(times) == [DAY, DAY, DAY, 23 * 3600, DAY, DAY]


def test_berlin_autumn_overlap_runs_a_0230_job_twice() -> None:
    # Known APScheduler 3.11 behaviour, pinned so a change is noticed: on 2026-10-25 Berlin repeats
    # 02:00-03:00 and a job at 02:30 fires in both (00:30 UTC in CEST and 01:30 UTC in CET). Cron would run it
    # once. dbmaint's default schedules (03:00, 04:00, 05:00, */15) are not in the repeated hour.
    times = fires("30 2 * * *", after=datetime(2026, 10, 24, 12, tzinfo=BERLIN), count=3, timezone="Europe/Berlin")
    assert [t.astimezone(UTC) for t in times] == [
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_daily_utc_job_is_unaffected_by_the_dst_week() -> None:
    times = fires("0 3 * * *", after=utc(2026, 3, 26), count=7)
    assert times == [utc(2026, 3, d, 3) for d in range(26, 32)] + [utc(2026, 4, 1, 3)]
    assert set(gaps(times)) == {DAY}


def test_berlin_0300_job_keeps_its_wall_time_across_the_change() -> None:
    times = fires("0 3 * * *", after=datetime(2026, 3, 28, tzinfo=BERLIN), count=3, timezone="Europe/Berlin")
    assert [t.astimezone(BERLIN).strftime("%d %H:%M %Z") for t in times] == [
        "28 03:00 CET",
        "29 03:00 CEST",
        "30 03:00 CEST",
    ]
    assert gaps(times) == [23 * 3600, DAY]


def test_triggers_carry_the_time_zone() -> None:
    single = build_trigger(parse_cron("0 3 * * *"), "Europe/Berlin")
    assert type(single).__name__ == "CronTrigger"
    assert str(single.timezone) == "Europe/Berlin"
    combined = build_trigger(parse_cron("0 4 1 * 1"), "Europe/Berlin")
    assert type(combined).__name__ == "OrTrigger"
    assert [str(t.timezone) for t in combined.triggers] == ["Europe/Berlin", "Europe/Berlin"]


def test_after_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire_times(parse_cron("0 3 * * *"), "UTC", datetime(2026, 11, 26), 1)
    with pytest.raises(ValueError, match="timezone-aware"):
        period_seconds(parse_cron("0 3 * * *"), "UTC", datetime(2026, 11, 26))
    assert next_fire_times(parse_cron("0 3 * * *"), "UTC", THURSDAY, 0) == []


# --- period -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0 3 * * *", DAY),
        ("0 4 1 * *", 31 * DAY),
        ("*/15 * * * *", 900.0),
        ("*/5 * * * * *", 5.0),
        ("0 5 * * 0", 7 * DAY),
        ("0 3 * * 1-5", 3 * DAY),  # Friday to Monday
        ("*/15 * * * 1-5", 2 * DAY + 900),  # Friday 23:45 to Monday 00:00: bursts do not hide the weekend
        ("0 9-17 * * 1-5", 64 * 3600.0),  # Friday 17:00 to Monday 09:00
        ("0 4 1 * 1", 7 * DAY),
        ("0 0 1 1,7 *", 184 * DAY),  # July to January: the gap crossing the end of the window counts
        ("@yearly", 365 * DAY),
        ("0 0 29 2 *", 1461 * DAY),  # 2028-02-29 to 2032-02-29
        ("0 0 29 2 */7", 10227 * DAY),  # ANDed ("*/7" starts with *): Feb 29 on a Sunday, 2032 and 2060
    ],
)
def test_period_seconds(text: str, seconds: float) -> None:
    assert period_seconds(parse_cron(text), "UTC", THURSDAY) == seconds


@pytest.mark.parametrize("text", ["0 3 * * 1-5", "0 4 1 * 1", "*/15 * * * *", "30 */6 * * *", "0 9-17 * * 1-5"])
def test_period_agrees_with_apschedulers_fire_times(text: str) -> None:
    spec = parse_cron(text)
    assert period_seconds(spec, "UTC", THURSDAY) == max(gaps(next_fire_times(spec, "UTC", THURSDAY, 64)))


def test_period_is_real_time_across_the_autumn_change() -> None:
    spec = parse_cron("0 3 * * *")
    # 2026-10-24 03:00 CEST to 2026-10-25 03:00 CET is 25 hours.
    assert period_seconds(spec, "Europe/Berlin", utc(2026, 6, 1)) == 25 * 3600
    assert period_seconds(spec, "UTC", utc(2026, 6, 1)) == DAY


# --- errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("61 3 * * *", 'minute 61 is out of range 0-59 in "61 3 * * *"'),
        ("0 24 * * *", 'hour 24 is out of range 0-23 in "0 24 * * *"'),
        ("0 0 0 * *", 'day 0 is out of range 1-31 in "0 0 0 * *"'),
        ("0 0 32 * *", 'day 32 is out of range 1-31 in "0 0 32 * *"'),
        ("0 0 * 13 *", 'month 13 is out of range 1-12 in "0 0 * 13 *"'),
        ("0 0 * * 8", 'weekday 8 is out of range 0-7 in "0 0 * * 8"'),
        ("60 0 3 * * *", 'second 60 is out of range 0-59 in "60 0 3 * * *"'),
        ("0 0-25 * * *", 'hour 25 is out of range 0-23 in "0 0-25 * * *"'),
        (
            "0 3 * *",
            'expected 5 fields (minute hour day month weekday) or 6 with seconds first, got 4 in "0 3 * *"',
        ),
        ("0 0 1 2 3 4 5", "got 7 in"),
        ("", 'got 0 in ""'),
        ("@daily 5", "got 2 in"),
        ("0 0 * foo *", 'month "foo" is not a number or a name (jan..dec) in "0 0 * foo *"'),
        ("0 0 * * fun", 'weekday "fun" is not a number or a name (sun..sat) in "0 0 * * fun"'),
        ("0 0 * * monday", 'weekday "monday" is not a number or a name (sun..sat)'),
        ("0 mon * * *", 'hour "mon" is not a number in "0 mon * * *"'),
        ("*/ * * * *", 'minute "*/" has an empty step after "/" in "*/ * * * *"'),
        ("0 0-10/ * * *", 'hour "0-10/" has an empty step after "/"'),
        ("*/0 * * * *", 'minute step must be at least 1 in "*/0 * * * *"'),
        ("*/x * * * *", 'minute step "x" is not a number'),
        ("*/60 * * * *", 'minute step 60 is too large for 0-59 (only 0 would match) in "*/60 * * * *"'),
        ("0 5-2 * * *", 'hour range "5-2" goes backwards (cron ranges do not wrap) in "0 5-2 * * *"'),
        ("0 0 * * sat-mon", 'weekday range "sat-mon" goes backwards'),
        ("0 0 * dec-jan *", 'month range "dec-jan" goes backwards'),
        ("0 -5 * * *", 'hour range "-5" is missing a number'),
        ("0 0 * * 1-", 'weekday range "1-" is missing a number'),
        ("1,,2 * * * *", 'minute "1,,2" has an empty list item'),
        ("0 0 L * *", 'day "L" uses "L", a Quartz/Jenkins extension that cron does not support, in "0 0 L * *"'),
        ("0 0 15W * *", 'day "15W" uses "W"'),
        ("0 0 ? * 1", 'day "?" uses "?"'),
        ("0 0 * * 5#3", 'weekday "5#3" uses "#"'),
        ("0 0 * * 5L", 'weekday "5L" uses "L"'),
        ("0 0 30 2 *", 'never fires: there is no day 30 in feb in "0 0 30 2 *"'),
        ("0 0 31 apr,jun *", "never fires: there is no day 31 in apr,jun"),
        ("@reboot", 'unknown shortcut "@reboot" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight'),
    ],
)
def test_bad_schedules(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_cron(text)


def test_impossible_day_is_fine_when_weekdays_are_ored_in() -> None:
    # Feb 30 never comes, but "or a Monday in February" does.
    assert fires("0 0 30 2 1", count=1) == [utc(2027, 2, 1)]


def test_importing_the_module_does_not_import_apscheduler() -> None:
    code = "import sys, dbmaint.service.schedule; print('apscheduler' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
