"""Cron schedules from config.toml -> APScheduler 3 triggers, with standard crontab meaning.

APScheduler 3's ``CronTrigger`` differs from crontab in two ways that would silently move jobs:
weekday numbers start at 0 = Monday (crontab: 0 and 7 = Sunday; ``CronTrigger.from_crontab`` does not
translate), and it ANDs day-of-month with day-of-week where crontab ORs them when both are restricted.
``parse_cron`` therefore writes weekdays as names only and marks the OR case, and ``build_trigger``
turns that into an ``OrTrigger`` of two cron triggers.

Pure: no database, and APScheduler is imported only by the functions that build triggers.
"""

from __future__ import annotations

import calendar
import itertools
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

_WEEKDAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # crontab numbering: index = number
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_NUMBER = re.compile(r"[0-9]+")
# Quartz/Jenkins day syntax ("L", "15W", "LW", "5L"); only digits and L/W, so never a name such as "jul".
_QUARTZ_DAY = re.compile(r"[0-9]*[LW]+", re.IGNORECASE)
# period_seconds looks this far ahead, which covers every pattern that repeats yearly, then on to the
# first firing day past it; for a schedule firing on fewer than two days in that time (Feb 29: 4 years
# apart; "0 0 29 2 */7", a Feb 29 that is a Sunday: 28 years), up to _MAX_SCAN_DAYS.
_WINDOW_DAYS = 400
_MAX_SCAN_DAYS = 100 * 366


@dataclass(frozen=True)
class _Field:
    name: str  # as the user-facing messages call it
    lo: int
    hi: int  # weekday: 7, because crontab accepts 7 for Sunday
    names: tuple[str, ...] = ()  # names[i] is the value lo + i


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES)
_WEEKDAY = _Field("weekday", 0, 7, _WEEKDAY_NAMES)


@dataclass(frozen=True)
class CronSpec:
    """A parsed cron schedule; the field strings are in APScheduler 3 ``CronTrigger`` syntax."""

    text: str  # as written in the config
    second: str
    minute: str
    hour: str
    day: str  # day of month
    month: str
    day_of_week: str  # names only (sun,mon,...) or "*", so APScheduler's 0 = Monday never applies
    or_days: bool  # crontab's rule: day and weekday both restricted -> a day matching either fires

    def trigger_fields(self) -> list[dict[str, str]]:
        """Keyword arguments for CronTrigger(...): one dict, or two when or_days (the scheduler ORs them)."""
        common = {"second": self.second, "minute": self.minute, "hour": self.hour, "month": self.month}
        if not self.or_days:
            return [{**common, "day": self.day, "day_of_week": self.day_of_week}]
        return [
            {**common, "day": self.day, "day_of_week": "*"},
            {**common, "day": "*", "day_of_week": self.day_of_week},
        ]

    def monitor_crontab(self) -> str:
        """A 5-field crontab for Sentry's monitor config: minute..weekday in crontab syntax, seconds dropped."""
        weekdays = _spec_weekdays(self)
        # All seven days and or_days: "0-6", since a bare "*" would switch Sentry from the OR rule to AND.
        dow = ("0-6" if self.or_days else "*") if len(weekdays) == 7 else _compact(sorted(weekdays))
        # Not expressible: an AND of two restricted day fields (only when one is spelt "*/n"), which Sentry
        # reads as OR. Such schedules are rare enough to leave as they are.
        return f"{self.minute} {self.hour} {self.day} {self.month} {dow}"


def parse_cron(text: str) -> CronSpec:
    """Parse a crontab schedule (5 fields, 6 with seconds first, or an @alias); ValueError says what is wrong."""
    fields = text.split()
    if len(fields) == 1 and fields[0].startswith("@"):
        alias = _ALIASES.get(fields[0].lower())
        if alias is None:
            raise ValueError(
                f'unknown shortcut "{fields[0]}" (use @yearly, @annually, @monthly, @weekly, @daily, @midnight'
                f' or @hourly) in "{text}"'
            )
        fields = alias.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise ValueError(
            f'expected 5 fields (minute hour day month weekday) or 6 with seconds first, got {len(fields)} in "{text}"'
        )
    day, weekday = fields[3], fields[5]
    parsed = [
        _parse_field(raw, fld, text)
        for raw, fld in zip(fields, (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY), strict=True)
    ]
    days, months = parsed[3][0], parsed[4][0]
    weekdays = {v % 7 for v in parsed[5][0]}  # 7 is Sunday too
    # cron decides "restricted" from the field's first character, before expanding it (vixie and cronie
    # entry.c: `if (ch == '*') e->flags |= DOM_STAR`), so "*/2" counts as unrestricted.
    or_days = not day.startswith("*") and not weekday.startswith("*")
    if not or_days and not any(d <= _days_in(m) for m in months for d in days):
        shown_days = ",".join(str(d) for d in sorted(days))
        shown_months = ",".join(_MONTH_NAMES[m - 1] for m in sorted(months))
        raise ValueError(f'never fires: there is no day {shown_days} in {shown_months} in "{text}"')
    return CronSpec(
        text=text,
        second=parsed[0][1],
        minute=parsed[1][1],
        hour=parsed[2][1],
        day=parsed[3][1],
        month=parsed[4][1],
        day_of_week=_weekday_names(weekdays),
        or_days=or_days,
    )


def build_trigger(spec: CronSpec, timezone: str) -> Any:
    """An APScheduler trigger: a CronTrigger, or an OrTrigger of two when ``spec.or_days``."""
    # Imported here: APScheduler costs ~80 ms to import and most dbmaint commands never schedule anything.
    from apscheduler.triggers.cron import CronTrigger

    zone = ZoneInfo(timezone)
    triggers = [CronTrigger(**fields, timezone=zone) for fields in spec.trigger_fields()]
    if len(triggers) == 1:
        return triggers[0]
    from apscheduler.triggers.combining import OrTrigger

    # OrTrigger takes the earliest of the two, so a day matching both fires once.
    return OrTrigger(triggers)


def next_fire_times(spec: CronSpec, timezone: str, after: datetime, count: int) -> list[datetime]:
    """The next ``count`` fire times strictly after ``after`` (aware), as APScheduler will produce them.

    They are in ``timezone`` and normalised through UTC, so a time APScheduler gives as the skipped 02:30+01:00
    reads as the 03:30+02:00 at which it runs. Subtract them in UTC: same-zone subtraction is wall-clock.
    """
    _require_aware(after, "after")
    zone = ZoneInfo(timezone)
    trigger = build_trigger(spec, timezone)
    times: list[datetime] = []
    previous: datetime | None = None
    # 1 µs later makes "strictly after"; APScheduler rounds the start up to the next whole second.
    now = after.astimezone(UTC) + timedelta(microseconds=1)
    while len(times) < count:
        # The scheduler's own call after each run: (last fire time, now), with now no earlier than it.
        fire: datetime | None = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        times.append(fire.astimezone(UTC).astimezone(zone))
        previous = now = fire  # APScheduler's own value, fold included
    return times


def next_fire_time(spec: CronSpec, timezone: str, after: datetime) -> datetime | None:
    """The next fire time strictly after ``after``; None for a schedule that never fires again."""
    upcoming = next_fire_times(spec, timezone, after, 1)
    return upcoming[0] if upcoming else None


def period_seconds(spec: CronSpec, timezone: str, now: datetime) -> float:
    """The longest gap between consecutive fire times over the ~400 days from ``now``, in seconds.

    Computed from the fields, not by walking fire times: a capped walk misses the gaps between bursts (a job
    every 5 s on Mondays fires 17,280 times before its 6-day gap). The gaps within a day come from the
    time-of-day fields, those between firing days from one check per calendar day: about 400 checks (~2 ms,
    no APScheduler), more only for schedules firing on fewer than two days a year (Feb 29: ~1,500;
    "0 0 29 2 */7", Feb 29 on a Sunday: ~11,000, ~20 ms; at most 36,600). Gaps between days are real
    elapsed time in ``timezone`` (a daily job is 25 h across the autumn DST change); gaps within a day
    are wall-clock, so on a DST change day one of them can really be an hour off.
    """
    _require_aware(now, "now")
    zone = ZoneInfo(timezone)
    seconds = sorted(_values(spec.second, _SECOND))
    minutes = sorted(_values(spec.minute, _MINUTE))
    hours = sorted(_values(spec.hour, _HOUR))
    days = _values(spec.day, _DAY)
    months = _values(spec.month, _MONTH)
    weekdays = _spec_weekdays(spec)
    # Every firing day fires at the same times of day, so one day's gaps stand for all of them:
    # within a minute, across a minute boundary, across an hour boundary.
    span_in_minute = seconds[-1] - seconds[0]
    span_in_hour = (minutes[-1] * 60 + seconds[-1]) - (minutes[0] * 60 + seconds[0])
    longest = float(
        max(
            _largest_step(seconds),
            60 * _largest_step(minutes) - span_in_minute,
            3600 * _largest_step(hours) - span_in_hour,
            0,
        )
    )
    first = time(hours[0], minutes[0], seconds[0])
    last = time(hours[-1], minutes[-1], seconds[-1])

    def fires_on(day: date) -> bool:
        if day.month not in months:
            return False
        by_day = day.day in days
        by_weekday = (day.weekday() + 1) % 7 in weekdays  # Python: Monday = 0
        return by_day or by_weekday if spec.or_days else by_day and by_weekday

    start = now.astimezone(zone).date()
    previous: date | None = None
    firing_days = 0
    for offset in range(_MAX_SCAN_DAYS):
        day = start + timedelta(days=offset)
        if not fires_on(day):
            continue
        if previous is not None:
            # fold=0 at an ambiguous or skipped wall time, as APScheduler resolves it.
            gap = datetime.combine(day, first, zone).timestamp() - datetime.combine(previous, last, zone).timestamp()
            longest = max(longest, gap)
        previous = day
        firing_days += 1
        # Stop at the first firing day past the window, so that the gap crossing its end counts too
        # (a January-and-March job's gap runs from March to the next January).
        if offset > _WINDOW_DAYS and firing_days >= 2:
            break
    if firing_days < 2:
        raise ValueError(f'"{spec.text}" fires on fewer than two days in the next 100 years')
    return longest


def _parse_field(raw: str, fld: _Field, text: str) -> tuple[frozenset[int], str]:
    """The values a crontab field selects, and the field in APScheduler syntax (numbers only)."""
    for char in "?#":
        if char in raw:
            raise ValueError(_quartz(fld, raw, char, text))
    values: set[int] = set()
    terms: list[str] = []
    for term in raw.split(","):
        if not term:
            raise ValueError(f'{fld.name} "{raw}" has an empty list item in "{text}"')
        base, slash, step_text = term.partition("/")
        if base == "*":
            start, end = fld.lo, fld.hi
        else:
            first_text, dash, last_text = base.partition("-")
            start = _number(first_text, base, fld, text)
            if dash:
                end = _number(last_text, base, fld, text)
                if fld is _WEEKDAY and last_text.lower() == "sun" and start > 0:
                    end = 7  # "fri-sun": a Sunday that closes a range is the 7 at the end of the week
            else:
                end = fld.hi if slash else start  # "a/n" runs to the end of the field, as in cronie
            if end < start:
                raise ValueError(f'{fld.name} range "{base}" goes backwards (cron ranges do not wrap) in "{text}"')
        step = 1
        if slash:
            if not step_text:
                raise ValueError(f'{fld.name} "{term}" has an empty step after "/" in "{text}"')
            if not _NUMBER.fullmatch(step_text):
                raise ValueError(f'{fld.name} step "{step_text}" is not a number in "{text}"')
            step = int(step_text)
            if step == 0:
                raise ValueError(f'{fld.name} step must be at least 1 in "{text}"')
            # APScheduler rejects these; cron would quietly run only at `start`, which is rarely meant.
            if step > end - start:
                raise ValueError(
                    f'{fld.name} step {step} is too large for {start}-{end} (only {start} would match) in "{text}"'
                )
        values.update(range(start, end + 1, step))
        if base == "*":
            terms.append(f"*/{step}" if slash else "*")
        elif start == end:
            terms.append(str(start))
        else:
            terms.append(f"{start}-{end}/{step}" if slash else f"{start}-{end}")
    return frozenset(values), ",".join(terms)


def _number(token: str, base: str, fld: _Field, text: str) -> int:
    if not token:
        raise ValueError(f'{fld.name} range "{base}" is missing a number in "{text}"')
    if _NUMBER.fullmatch(token):
        value = int(token)
        if not fld.lo <= value <= fld.hi:
            raise ValueError(f'{fld.name} {value} is out of range {fld.lo}-{fld.hi} in "{text}"')
        return value
    if token.lower() in fld.names:
        return fld.lo + fld.names.index(token.lower())
    if _QUARTZ_DAY.fullmatch(token):
        raise ValueError(_quartz(fld, token, "L" if "l" in token.lower() else "W", text))
    if fld.names:
        raise ValueError(
            f'{fld.name} "{token}" is not a number or a name ({fld.names[0]}..{fld.names[-1]}) in "{text}"'
        )
    raise ValueError(f'{fld.name} "{token}" is not a number in "{text}"')


def _quartz(fld: _Field, raw: str, char: str, text: str) -> str:
    return f'{fld.name} "{raw}" uses "{char}", a Quartz/Jenkins extension that cron does not support, in "{text}"'


def _values(field_text: str, fld: _Field) -> frozenset[int]:
    """A CronSpec field's values (its syntax is also crontab syntax for that field)."""
    return _parse_field(field_text, fld, field_text)[0]


def _spec_weekdays(spec: CronSpec) -> frozenset[int]:
    """Crontab weekday numbers 0-6, 0 = Sunday."""
    return frozenset(v % 7 for v in _values(spec.day_of_week, _WEEKDAY))


def _weekday_names(weekdays: set[int]) -> str:
    # Names only: a number would be read by APScheduler with 0 = Monday.
    if len(weekdays) == 7:
        return "*"
    return ",".join(_WEEKDAY_NAMES[v] for v in sorted(weekdays))


def _compact(values: list[int]) -> str:
    """1,2,3,5 -> "1-3,5"."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ",".join(f"{r[0]}-{r[-1]}" if len(r) >= 3 else ",".join(map(str, r)) for r in runs)


def _largest_step(values: list[int]) -> int:
    return max((b - a for a, b in itertools.pairwise(values)), default=0)


def _days_in(month: int) -> int:
    return calendar.monthrange(2024, month)[1]  # a leap year, so Feb 29 counts as existing


def _require_aware(moment: datetime, name: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
