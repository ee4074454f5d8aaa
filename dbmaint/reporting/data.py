"""What ``dbmaint report`` shows, gathered from history into plain values: pure apart from the store reads.

Per database: the runs over the period (durations, actions, failures), the health samples (dead rows,
transaction-ID ages, index bloat of the worst objects), the index rebuilds with their sizes, the slow
statements per capture pass, the advisor's latest recommendations and findings, and the live checklist
(run by the caller: this module reads nothing but the store). Charts carry their own series, aligned on one
time axis in Unix seconds (UTC), as the page's chart library wants them; the tables beside them carry the
latest figures, so that the page reads without JavaScript too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from dbmaint.check.item import CheckReport, Item
from dbmaint.store.health import HealthFigure, HealthReading, Rebuild, StatementSample
from dbmaint.store.history import History
from dbmaint.store.records import RunRecord

JOB_ORDER = ("vacuum", "reindex", "capture", "advisor")
# One colour per series position, readable on white and in print; red is kept for failures.
PALETTE = ("#2563eb", "#16a34a", "#d97706", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#475569")
FAILED_COLOUR = "#dc2626"
ACTION_COLOURS = {"done": "#16a34a", "skipped": "#94a3b8", "failed": FAILED_COLOUR, "proposed": "#2563eb"}
SERIES_PER_CHART = 5  # more lines than this on one small chart is a tangle: the tables list the rest
SLOW_STATEMENTS = 5
LABEL_CHARS = 60


@dataclass(frozen=True)
class Series:
    label: str
    values: tuple[float | None, ...]
    colour: str
    style: str = "line"  # line, or points (one mark per value, no line between)

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "values": list(self.values), "colour": self.colour, "style": self.style}


@dataclass(frozen=True)
class Chart:
    """One chart: series over a shared time axis (Unix seconds, UTC, ascending); None where a series has
    no value at that time."""

    id: str
    title: str
    caption: str
    unit: str  # count, bytes, s, ms
    x: tuple[float, ...]
    series: tuple[Series, ...]

    @property
    def empty(self) -> bool:
        return not self.x or not any(v is not None for s in self.series for v in s.values)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "unit": self.unit,
            "x": list(self.x),
            "series": [s.to_json() for s in self.series],
        }


@dataclass(frozen=True)
class JobSummary:
    job: str
    runs: int
    ok: int
    failed: int  # runs that failed (partial ones had some actions fail: counted in failed_actions)
    failed_actions: int
    last_started: datetime | None
    last_status: str | None
    mean_duration_s: float | None


@dataclass(frozen=True)
class FailedRun:
    run_id: int
    job: str
    started_at: datetime
    status: str
    reason: str | None


@dataclass(frozen=True)
class Recommendation:
    table: str
    statement: str
    reason: str | None
    estimated_size: int | None


@dataclass(frozen=True)
class Advice:
    """The latest advisor run of the database (it may be older than the period: advice stays current until
    the next run)."""

    run_id: int
    started_at: datetime
    status: str
    reason: str | None
    recommendations: tuple[Recommendation, ...]
    notes: tuple[str, ...]  # its findings and notes, as the run's warnings hold them


@dataclass(frozen=True)
class Checklist:
    """The live checklist, or why there is none (unreachable, not asked for)."""

    items: tuple[Item, ...] = ()
    status: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class SlowStatement:
    queryid: int
    query: str | None
    passes: int
    calls: int  # in the period
    total_ms: float
    last_captured_at: datetime
    last_calls: int
    last_mean_ms: float


@dataclass(frozen=True)
class DatabaseReport:
    name: str
    anchor: str  # the section's id on the page
    runs: int
    failed_runs: int
    jobs: tuple[JobSummary, ...]
    failures: tuple[FailedRun, ...]  # newest first
    health_at: datetime | None  # the latest health sample
    health_samples: int
    xid_age: int | None
    mxid_age: int | None
    tables: tuple[HealthFigure, ...]  # of the latest sample, most dead rows first
    indexes: tuple[HealthFigure, ...]  # of the latest sample, most bloat first
    rebuilds: tuple[Rebuild, ...]  # newest first
    slow: tuple[SlowStatement, ...]
    advice: Advice | None
    checklist: Checklist
    charts: tuple[Chart, ...]


@dataclass(frozen=True)
class Report:
    generated_at: datetime
    since: datetime
    until: datetime
    days: int
    databases: tuple[DatabaseReport, ...]
    notes: tuple[str, ...] = field(default=())

    def chart_data(self) -> dict[str, Any]:
        """What the page's script draws: every non-empty chart, and the period for a shared time axis."""
        return {
            "since": self.since.timestamp(),
            "until": self.until.timestamp(),
            "charts": [c.to_json() for d in self.databases for c in d.charts if not c.empty],
        }


def gather(
    history: History,
    databases: Sequence[str],
    *,
    until: datetime,
    days: int,
    checklists: Mapping[str, CheckReport | str] | None = None,
) -> Report:
    """The report of ``databases`` over the ``days`` before ``until``. ``checklists``: per database its live
    checklist, or the one-line reason it could not be run; a database missing from it gets no checklist."""
    since = until - timedelta(days=days)
    reports = []
    for position, name in enumerate(databases):
        check = (checklists or {}).get(name)
        reports.append(database_report(history, name, f"db{position}", since=since, until=until, check=check))
    return Report(generated_at=until, since=since, until=until, days=days, databases=tuple(reports))


def database_report(
    history: History,
    name: str,
    anchor: str,
    *,
    since: datetime,
    until: datetime,
    check: CheckReport | str | None,
) -> DatabaseReport:
    runs = sorted((r for r in history.runs_since(since, name) if r.started_at <= until), key=_run_order)
    readings = [r for r in history.health_readings(name, since) if r.sampled_at <= until]
    rebuilds = [r for r in history.rebuilds(name, since) if r.started_at <= until]
    samples = [s for s in history.statement_samples(name, since, SLOW_STATEMENTS) if s.captured_at <= until]
    latest = readings[-1] if readings else None
    own = next((f for f in latest.figures if f.kind == "database"), None) if latest else None
    charts = (
        runs_duration_chart(f"{anchor}-durations", runs),
        runs_actions_chart(f"{anchor}-actions", runs),
        *health_charts(anchor, readings),
        rebuild_chart(f"{anchor}-rebuilds", rebuilds),
        *statement_charts(anchor, samples),
    )
    return DatabaseReport(
        name=name,
        anchor=anchor,
        runs=len(runs),
        failed_runs=sum(1 for r in runs if r.status == "failed"),
        jobs=job_summaries(runs),
        failures=tuple(
            FailedRun(r.id, r.job, r.started_at, r.status, r.reason)
            for r in reversed(runs)
            if r.status in ("failed", "partial", "interrupted", "missed")
        ),
        health_at=latest.sampled_at if latest else None,
        health_samples=len(readings),
        xid_age=own.xid_age if own else None,
        mxid_age=own.mxid_age if own else None,
        tables=tuple(
            sorted(
                (f for f in latest.figures if f.kind == "table") if latest else (),
                key=lambda f: (-(f.dead_tuples or 0), -(f.xid_age or 0), f.object),
            )
        ),
        indexes=tuple(
            sorted(
                (f for f in latest.figures if f.kind == "index") if latest else (),
                key=lambda f: (-(f.bloat_bytes or 0), f.object),
            )
        ),
        rebuilds=tuple(reversed(rebuilds)),
        slow=slow_statements(samples),
        advice=latest_advice(history, name),
        checklist=_checklist(check),
        charts=charts,
    )


def _run_order(run: RunRecord) -> tuple[datetime, int]:
    return (run.started_at, run.id)


def job_summaries(runs: Sequence[RunRecord]) -> tuple[JobSummary, ...]:
    summaries = []
    for job in sorted({r.job for r in runs}, key=_job_position):
        of_job = [r for r in runs if r.job == job]
        durations = [r.duration_s for r in of_job if r.duration_s is not None and r.status not in ("missed",)]
        last = of_job[-1]
        summaries.append(
            JobSummary(
                job=job,
                runs=len(of_job),
                ok=sum(1 for r in of_job if r.status == "ok"),
                failed=sum(1 for r in of_job if r.status == "failed"),
                failed_actions=sum(r.failed for r in of_job),
                last_started=last.started_at,
                last_status=last.status,
                mean_duration_s=sum(durations) / len(durations) if durations else None,
            )
        )
    return tuple(summaries)


def _job_position(job: str) -> tuple[int, str]:
    return (JOB_ORDER.index(job) if job in JOB_ORDER else len(JOB_ORDER), job)


# --- charts ---------------------------------------------------------------------------------------------------


def _aligned(
    points: Mapping[str, Mapping[float, float | None]], order: Iterable[str]
) -> tuple[tuple[float, ...], dict[str, tuple[float | None, ...]]]:
    """Series given as {label: {x: value}} on one ascending x axis, None where a series has no value."""
    labels = list(order)
    xs = sorted({x for label in labels for x in points[label]})
    return tuple(xs), {label: tuple(points[label].get(x) for x in xs) for label in labels}


def _ts(moment: datetime) -> float:
    return round(moment.timestamp(), 3)


def runs_duration_chart(chart_id: str, runs: Sequence[RunRecord]) -> Chart:
    points: dict[str, dict[float, float | None]] = {}
    failed: dict[float, float | None] = {}
    for run in runs:
        if run.status in ("running", "missed"):
            continue  # no duration to show: a missed run is listed in the failures table
        duration = round(run.duration_s or 0.0, 3)
        points.setdefault(run.job, {})[_ts(run.started_at)] = duration
        if run.status == "failed":
            failed[_ts(run.started_at)] = duration
    jobs = sorted(points, key=_job_position)
    all_points = {**points, "failed run": failed}
    order = [*jobs, "failed run"] if failed else jobs
    x, values = _aligned(all_points, order)
    series = [
        Series(job, values[job], PALETTE[JOB_ORDER.index(job) if job in JOB_ORDER else -1], "points") for job in jobs
    ]
    if failed:
        series.append(Series("failed run", values["failed run"], FAILED_COLOUR, "points"))
    return Chart(
        chart_id,
        "Runs: duration by job",
        "Each run's duration in seconds, one mark per run; failed runs are marked in red.",
        "s",
        x,
        tuple(series),
    )


def runs_actions_chart(chart_id: str, runs: Sequence[RunRecord]) -> Chart:
    """Actions per run by how they ended (capture records statements, not actions: its runs are left out)."""
    counted = [r for r in runs if r.job != "capture" and r.status not in ("running", "missed")]
    points: dict[str, dict[float, float | None]] = {status: {} for status in ACTION_COLOURS}
    for run in counted:
        counts = run.action_counts
        for status in ACTION_COLOURS:
            points[status][_ts(run.started_at)] = counts[status]
    shown = [status for status in ACTION_COLOURS if any(points[status].values())]
    x, values = _aligned(points, shown)
    return Chart(
        chart_id,
        "Runs: actions by result",
        "Per vacuum, reindex and advisor run: its actions done, skipped, failed, and the advisor's proposals.",
        "count",
        x,
        tuple(Series(status, values[status], ACTION_COLOURS[status], "points") for status in shown),
    )


def _figure_chart(
    chart_id: str,
    title: str,
    caption: str,
    unit: str,
    readings: Sequence[HealthReading],
    kinds: tuple[str, ...],
    value: Callable[[HealthFigure], float | None],
) -> Chart:
    """One line per object (the worst SERIES_PER_CHART over the period by their highest value)."""
    points: dict[str, dict[float, float | None]] = {}
    for reading in readings:
        for figure in reading.figures:
            measured = value(figure) if figure.kind in kinds else None
            if measured is not None:
                label = f"{figure.object} (database)" if figure.kind == "database" else figure.object
                points.setdefault(label, {})[_ts(reading.sampled_at)] = measured
    worst = sorted(points, key=lambda label: (-max(v or 0 for v in points[label].values()), label))
    shown = worst[:SERIES_PER_CHART]
    # The axis is every sample's time, so a line stops where its object left the worst of the moment.
    times = {_ts(r.sampled_at) for r in readings}
    x = tuple(sorted(times))
    series = tuple(
        Series(_short(label), tuple(points[label].get(t) for t in x), PALETTE[i % len(PALETTE)])
        for i, label in enumerate(shown)
    )
    return Chart(chart_id, title, caption, unit, x if series else (), series)


def health_charts(anchor: str, readings: Sequence[HealthReading]) -> tuple[Chart, ...]:
    return (
        _figure_chart(
            f"{anchor}-dead",
            "Dead rows of the worst tables",
            "n_dead_tup of the tables with the most dead rows, from the service's hourly health samples.",
            "count",
            readings,
            ("table",),
            lambda f: f.dead_tuples,
        ),
        _figure_chart(
            f"{anchor}-xid",
            "Transaction-ID age: the database and its oldest tables",
            "age(datfrozenxid) of the database and age(relfrozenxid) of the oldest tables; wraparound is at 2^31.",
            "count",
            readings,
            ("database", "table"),
            lambda f: f.xid_age,
        ),
        _figure_chart(
            f"{anchor}-bloat",
            "Index bloat of the worst indexes (estimated)",
            "Bytes a rebuild would reclaim, estimated from statistics, of the most bloated indexes.",
            "bytes",
            readings,
            ("index",),
            lambda f: f.bloat_bytes,
        ),
    )


def rebuild_chart(chart_id: str, rebuilds: Sequence[Rebuild]) -> Chart:
    """Each rebuilt index's size before its REINDEX and after it: a drop at every rebuild, and between two
    rebuilds the line shows the index growing back."""
    points: dict[str, dict[float, float | None]] = {}
    saved: dict[str, int] = {}
    for rebuild in rebuilds:
        if rebuild.status != "done" or rebuild.size_before is None or rebuild.size_after is None:
            continue
        start = _ts(rebuild.started_at)
        end = round(start + max(1.0, rebuild.duration_s or 0.0), 3)  # after: where the rebuild ended
        points.setdefault(rebuild.index, {})[start] = float(rebuild.size_before)
        points[rebuild.index][end] = float(rebuild.size_after)
        saved[rebuild.index] = saved.get(rebuild.index, 0) + rebuild.size_before - rebuild.size_after
    shown = sorted(saved, key=lambda index: (-saved[index], index))[:SERIES_PER_CHART]
    x, values = _aligned(points, shown)
    return Chart(
        chart_id,
        "Index size before and after each rebuild",
        "Each rebuilt index's size when its REINDEX CONCURRENTLY started and when it ended (the most reclaimed).",
        "bytes",
        x,
        tuple(Series(_short(index), values[index], PALETTE[i % len(PALETTE)]) for i, index in enumerate(shown)),
    )


def _statement_label(sample: StatementSample) -> str:
    text = " ".join((sample.query or "").split())
    return _short(f"{sample.queryid}: {text}" if text else str(sample.queryid))


def statement_charts(anchor: str, samples: Sequence[StatementSample]) -> tuple[Chart, Chart]:
    calls: dict[str, dict[float, float | None]] = {}
    means: dict[str, dict[float, float | None]] = {}
    labels: dict[int, str] = {}
    for sample in samples:
        label = labels.setdefault(sample.queryid, _statement_label(sample))
        calls.setdefault(label, {})[_ts(sample.captured_at)] = float(sample.calls)
        means.setdefault(label, {})[_ts(sample.captured_at)] = round(sample.mean_ms, 3)
    order = list(dict.fromkeys(labels.values()))
    x, call_values = _aligned(calls, order)
    _, mean_values = _aligned(means, order)
    return (
        Chart(
            f"{anchor}-calls",
            "Slow statements: calls per capture pass",
            f"Calls since the previous pass of the {SLOW_STATEMENTS} statements that took the most time in the period.",
            "count",
            x,
            tuple(
                Series(label, call_values[label], PALETTE[i % len(PALETTE)], "points") for i, label in enumerate(order)
            ),
        ),
        Chart(
            f"{anchor}-mean",
            "Slow statements: mean time per capture pass",
            "Mean execution time since the previous pass, in milliseconds.",
            "ms",
            x,
            tuple(
                Series(label, mean_values[label], PALETTE[i % len(PALETTE)], "points") for i, label in enumerate(order)
            ),
        ),
    )


def slow_statements(samples: Sequence[StatementSample]) -> tuple[SlowStatement, ...]:
    by_query: dict[int, list[StatementSample]] = {}
    for sample in samples:
        by_query.setdefault(sample.queryid, []).append(sample)
    rows = []
    for queryid, passes in by_query.items():
        last = passes[-1]
        rows.append(
            SlowStatement(
                queryid=queryid,
                query=last.query,
                passes=len(passes),
                calls=sum(p.calls for p in passes),
                total_ms=sum(p.total_ms for p in passes),
                last_captured_at=last.captured_at,
                last_calls=last.calls,
                last_mean_ms=last.mean_ms,
            )
        )
    return tuple(sorted(rows, key=lambda row: (-row.total_ms, row.queryid)))


def _short(text: str) -> str:
    return text if len(text) <= LABEL_CHARS else text[: LABEL_CHARS - 1] + "…"


# --- the advisor and the checklist ----------------------------------------------------------------------


def latest_advice(history: History, database: str) -> Advice | None:
    """The advisor job's latest run: its proposed indexes (kept as 'proposed' actions holding the CREATE
    INDEX CONCURRENTLY) and its findings (kept as the run's warnings)."""
    found = history.recent_runs(limit=1, job="advisor", database=database)
    if not found:
        return None
    run = found[0]
    recommendations = tuple(
        Recommendation(row["object"], row["statement"], row["reason"], row["size_after"])
        for row in history.run_actions(run.id)
        if row["status"] == "proposed"
    )
    notes = tuple(line for line in (run.warnings or "").splitlines() if line.strip())
    return Advice(run.id, run.started_at, run.status, run.reason, recommendations, notes)


def _checklist(check: CheckReport | str | None) -> Checklist:
    if check is None:
        return Checklist(note="not run for this page")
    if isinstance(check, str):
        return Checklist(note=check)
    return Checklist(items=check.items, status=check.status)
