"""`dbmaint run`: the jobs on their cron schedules (APScheduler 3), until SIGTERM.

Each (job, database) is one APScheduler job calling the same use case as the CLI. The choices that matter
are explicit: schedules are read in the configured time zone; a run that is late (host down, service
stopped) still runs within ``scheduler.misfire_grace`` and is recorded as missed after that; missed runs
coalesce into one; runs of one job never overlap (max_instances=1, plus the advisory lock across hosts).
Each job's next due time is kept in the state store, so a restart neither loses a run nor repeats one.

SIGTERM: nothing new starts, this process's own running statements are cancelled (their runs end as
interrupted), and the process exits within ``scheduler.stop_timeout``. SIGHUP: the configuration is read
again; an invalid one is rejected and the running one kept.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from dbmaint import __version__, jobs
from dbmaint.config import JOB_NAMES, Config, load_config
from dbmaint.errors import DbmaintError, ServiceFailed, StateStoreError
from dbmaint.maintenance import reindex_analysis
from dbmaint.model import JobReport, now
from dbmaint.pg import collect, db, facts, stopping
from dbmaint.service import health_history
from dbmaint.service.metrics import HealthSample, IndexBloat, ScheduledJob, ServiceMetrics, serve
from dbmaint.service.schedule import CronSpec, build_trigger, next_fire_time, parse_cron, period_seconds
from dbmaint.service.status_report import service_running
from dbmaint.service.systemd import Notifier
from dbmaint.service.telemetry import Sentry, monitor_config
from dbmaint.store.history import History
from dbmaint.store.records import ScheduleState

log = logging.getLogger(__name__)

_HEARTBEAT_S = 30.0
_INDEX_BLOAT_EVERY_S = 900.0  # the index estimate reads pg_stats for every index: not every minute


@dataclass(frozen=True)
class Planned:
    """One job on one database, as the configuration schedules it."""

    job: str
    database: str
    spec: CronSpec
    timezone: str
    misfire_grace: float
    max_runtime_s: float | None  # for Sentry's monitor: the window plus its grace, where there is one

    @property
    def id(self) -> str:
        return f"{self.job}:{self.database}"


def planned_jobs(config: Config, databases: Sequence[str]) -> list[Planned]:
    """Every enabled job on every database, in a stable order."""
    planned = []
    for job in JOB_NAMES:
        section = getattr(config, job)
        if not section.enabled:
            continue
        window = getattr(section, "window", None)
        max_runtime = window + section.grace if window is not None else None
        spec = parse_cron(section.schedule)
        for database in databases:
            planned.append(Planned(job, database, spec, config.timezone, config.scheduler.misfire_grace, max_runtime))
    return planned


def _use_case(job: str) -> Callable[..., Any]:
    return jobs.USE_CASES[job]


def _job_executor(scheduled: dict[str, datetime], on_submit: Callable[[str, datetime], None]) -> Any:
    """One job kind's executor: one thread, so runs of that kind on several databases queue one after the
    other (not a thread each, waiting), and the service's threads stay few whatever the database count.

    Remembers the scheduled time each submission answers: the run records it as scheduled_for (safe per
    job because max_instances=1: a job is never submitted again before its run ended).
    """
    from apscheduler.executors.pool import ThreadPoolExecutor

    class RecordingExecutor(ThreadPoolExecutor):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(1)

        def _do_submit_job(self, job: Any, run_times: list[datetime]) -> None:
            scheduled[job.id] = run_times[-1]
            on_submit(job.id, run_times[-1])
            super()._do_submit_job(job, run_times)

    return RecordingExecutor()


class Service:
    def __init__(
        self,
        config_path: str | None,
        *,
        database: str | None = None,
        dsn: str | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config_path, self.database, self.dsn = config_path, database, dsn
        self.notifier = notifier or Notifier()
        self.host = socket.gethostname()
        self.config = load_config(config_path)
        self.targets = {t.name: t for t in db.resolve_targets(self.config, database, dsn)}
        self.planned: dict[str, Planned] = {}
        self.history = History(self.config.state.url)
        self.history.hold_refused_writes = True
        self.sentry = Sentry(self.config.sentry)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop_signal: str | None = None
        self._reload_requested = False
        self._fatal: DbmaintError | None = None
        self._running: set[str] = set()
        self._threads: dict[str, int] = {}  # running job -> its worker thread
        self._idle = threading.Event()
        self._job_locks = {job: threading.Lock() for job in JOB_NAMES}
        self._bloat_read_at: dict[str, float] = {}
        self._last_wall_clock: dict[str, datetime] = {}
        self._health_down: set[str] = set()
        self._health_history = health_history.HealthHistory(self.history)  # hourly samples for the report
        self._report_executor = False
        self.started_at = now()
        self.metrics: ServiceMetrics | None = None
        self._metrics_server: Any = None
        self._scheduler: Any = None
        self._scheduled: dict[str, datetime] = {}  # job -> the due time its submitted run answers
        self._queued: set[str] = set()  # jobs submitted, waiting for their kind's thread
        self._listed: dict[str, db.Target] | None = None  # databases listed again, for the main loop to apply

    # --- start, wait, stop ------------------------------------------------------------------------------

    def run(self) -> None:
        """Until SIGTERM/SIGINT. A fatal problem (state store unusable) raises its error after a clean stop."""
        # From the first moment: a SIGTERM during start-up ends it in order too, not by the default action.
        previous = self._install_signal_handlers()
        try:
            self._start()
            if self._stop_signal is None:
                self._scheduler.start()
                log.info("dbmaint %s scheduling: %s", __version__, self.summary())
                self.notifier.ready(self.summary())
                self._wait()
        finally:
            if self._scheduler is not None:  # else the start failed before anything ran: nothing to stop
                self._stop()
            for signum, handler in previous.items():
                signal.signal(signum, handler)
        if self._fatal is not None:
            raise ServiceFailed(f"stopped: {self._fatal}")

    def _start(self) -> None:
        """Everything before the first job can run: checks, metrics endpoint, history, the schedule."""
        from apscheduler.schedulers.background import BackgroundScheduler

        logging.getLogger("apscheduler").setLevel(logging.ERROR)  # our own log says what ran, skipped and why
        logging.getLogger("urllib3").setLevel(logging.ERROR)  # Sentry's retries: one line per event is plenty
        stopping.reset()
        self._refuse_a_second_service()
        if self.config.metrics.listen:  # first: a port already taken stops the start before anything is recorded
            self.metrics = ServiceMetrics(self.history, self.scheduled_jobs, self.started_at)
            self._metrics_server = serve(self.config.metrics.listen, self.metrics)
        # Runs a previous service process left "running" (killed, crashed, power lost) did not finish.
        closed = self.history.interrupt_running(
            self.host, datetime.min.replace(tzinfo=UTC), "the service stopped before this run finished (killed?)"
        )
        if closed:
            log.warning("%d run(s) the previous service process left running recorded as interrupted", closed)
        self.started_at = self.history.service_started(self.host, os.getpid(), __version__)
        # A thread per job kind, two for the service's own jobs, one for health figures: bounded whatever the
        # number of databases (it was a thread per job and database, each waiting its turn).
        executors = {job: _job_executor(self._scheduled, self._on_submit) for job in JOB_NAMES}
        self._scheduler = BackgroundScheduler(
            timezone=ZoneInfo(self.config.timezone),
            executors={**executors, "service": _pool(2), "health": _pool(1)},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        self._add_listeners()
        self._apply_schedule(planned_jobs(self.config, list(self.targets)))
        self._add_service_jobs()

    def _refuse_a_second_service(self) -> None:
        """Two services on one host and state store would share (and garble) one schedule and liveness row."""
        for record in self.history.services():
            if record.host == self.host and record.pid != os.getpid() and service_running(record, self.host, now()):
                # Exit 1, not 2 (which the unit does not restart): were the other one a stale record after
                # all, a later restart succeeds once its heartbeat has aged.
                raise ServiceFailed(
                    f"another dbmaint run (pid {record.pid}) already uses this state store on this host: "
                    "stop it first (systemctl stop dbmaint), or give this one its own DBMAINT_STATE_URL"
                )

    def _wait(self) -> None:
        while self._stop_signal is None and self._fatal is None:
            self._wake.wait(1.0)
            self._wake.clear()
            if self._reload_requested:
                self._reload_requested = False
                self.reload()
            self._apply_listed()

    def _stop(self) -> None:
        why = f"dbmaint was stopped ({self._stop_signal})" if self._stop_signal else "dbmaint stopped on an error"
        self.notifier.stopping()
        stopping.request(why)
        if self._scheduler is not None and self._scheduler.running:
            self._scheduler.shutdown(wait=False)
        deadline = time.monotonic() + self.config.scheduler.stop_timeout
        cancelled = 0
        while self._running_jobs(waited_for=True) and time.monotonic() < deadline:
            cancelled += stopping.cancel_all(timeout=max(0.1, min(2.0, deadline - time.monotonic())))
            self._idle.wait(0.2)  # set the moment the last job ends; else cancel again (a statement may start late)
        left = self._running_jobs(waited_for=True)
        connecting = self._running_jobs() - left
        try:
            if left:
                log.error("stop_timeout reached with %s still running: exiting anyway", ", ".join(sorted(left)))
                self.history.interrupt_running(self.host, self.started_at, f"{why}; stop_timeout reached")
            elif connecting:
                log.info("%s interrupted while connecting", ", ".join(sorted(connecting)))
                self.history.interrupt_running(self.host, self.started_at, f"{why} while connecting")
            self.history.service_stopped(self.host, os.getpid())
        except StateStoreError as exc:
            log.error("%s", exc)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.sentry.flush(2.0)
        log.info("stopped%s", f" (cancelled {cancelled} running statement(s))" if cancelled else "")
        if left or connecting:
            # Worker threads are stuck in a statement the server did not give up, or in a connect: leaving is
            # what matters. The server ends their sessions when the sockets close
            # (client_connection_check_interval). Only the first is a failure to stop in time.
            logging.shutdown()
            os._exit(1 if left else 0)
        self.history.close()

    def _install_signal_handlers(self) -> dict[int, Any]:
        previous: dict[int, Any] = {}
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload_requested = True
        else:
            self._stop_signal = signal.Signals(signum).name
        self._wake.set()

    def _store_refused(self, error: StateStoreError) -> None:
        """A write the store refused. One that still answers (a read-only or full disk) may take writes
        again, and the runs go on meanwhile, their records held in memory; one that does not is lost: stop."""
        if self.history.answers_reads():
            log.error("%s (the state store still answers: the service goes on)", error)
            return
        self._fail(error)

    def _fail(self, error: DbmaintError) -> None:
        """A problem the service cannot run on (the state store is unusable): stop, and exit non-zero."""
        if self._fatal is None:
            log.error("fatal: %s", error)
            self._fatal = error
        self._wake.set()

    # --- the schedule -----------------------------------------------------------------------------------

    def _apply_schedule(self, planned: list[Planned]) -> None:
        """Bring APScheduler's jobs in line with ``planned``; unchanged jobs keep their next run time."""
        desired = {p.id: p for p in planned}
        states = self.history.schedule_states(self.host)
        interrupted = self.history.last_interrupted(self.host) if not self.planned else {}
        for job_id in set(self.planned) - set(desired):
            self._scheduler.remove_job(job_id)
            log.info("unscheduled %s", job_id)
        for item in planned:
            old = self.planned.get(item.id)
            if old == item:
                continue
            if old is not None:
                self._scheduler.remove_job(item.id)
            # A schedule changed by a reload starts afresh; one unchanged since the last process carries on.
            key = (item.job, item.database)
            state, resumable = (states.get(key), interrupted.get(key)) if old is None else (None, None)
            first = self._first_run_time(item, state, resumable)
            self._scheduler.add_job(
                self._fire,
                trigger=build_trigger(item.spec, item.timezone),
                args=(item.job, item.database),
                id=item.id,
                name=item.id,
                next_run_time=first,
                misfire_grace_time=max(1, round(item.misfire_grace)),
                coalesce=True,
                max_instances=1,
                executor=item.job,
            )
            log.info("scheduled %s: %s (%s), next %s", item.id, item.spec.text, item.timezone, _when(first))
        self.planned = desired
        for item in planned:
            self._save_state(item.id)
        self.history.forget_schedules(self.host, {(p.job, p.database) for p in planned})

    def _first_run_time(
        self, item: Planned, state: ScheduleState | None, interrupted: datetime | None = None
    ) -> datetime | None:
        """The stored next due time when the schedule is unchanged, even if it is past: APScheduler then
        runs it (within the misfire grace) or reports it missed. Otherwise the next time from now.

        A run the last stop interrupted (a restart in the middle of the nightly vacuum) is due again: the
        new run plans afresh, so it does what is still needed and nothing twice."""
        if state is not None and (state.schedule, state.timezone) == (item.spec.text, item.timezone):
            # A margin below the grace: APScheduler judges lateness itself, a moment later, in whole seconds.
            if interrupted is not None and now() - interrupted <= timedelta(seconds=item.misfire_grace - 30):
                log.info("%s on %s: taking up the run due at %s, interrupted by the last stop", item.job,
                         item.database, _when(interrupted))  # fmt: skip
                return interrupted
            if state.next_run_at is not None:
                return state.next_run_at
        return next_fire_time(item.spec, item.timezone, now())

    def _save_state(self, job_id: str) -> None:
        item = self.planned.get(job_id)
        job = self._scheduler.get_job(job_id) if self._scheduler is not None else None
        if item is None or job is None:
            return
        try:
            self.history.save_schedule(
                self.host,
                ScheduleState(item.job, item.database, item.spec.text, item.timezone, job.next_run_time),
            )
        except StateStoreError as exc:
            self._fail(exc)

    def _next_runs(self) -> list[tuple[Planned, datetime | None]]:
        jobs = [(item, self._scheduler.get_job(item.id) if self._scheduler else None) for item in self.planned.values()]
        return [(item, getattr(job, "next_run_time", None)) for item, job in jobs]

    def scheduled_jobs(self) -> list[ScheduledJob]:
        """For the metrics endpoint: what runs next, and how often."""
        return [
            ScheduledJob(item.job, item.database, next_run, _period(item.spec, item.timezone))
            for item, next_run in self._next_runs()
        ]

    def summary(self) -> str:
        """The status line (log, systemd's STATUS=): how much is scheduled, and what comes next."""
        head = f"{len(self.planned)} job(s) on {len(self.targets)} database(s)"
        upcoming = [(when, item) for item, when in self._next_runs() if when is not None]
        if not upcoming:
            return head
        when, item = min(upcoming, key=lambda pair: pair[0])
        return f"{head}; next: {item.job} on {item.database} at {_when(when)}"

    def _add_listeners(self) -> None:
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, EVENT_JOB_SUBMITTED

        self._scheduler.add_listener(lambda event: self._save_state(event.job_id), EVENT_JOB_SUBMITTED)
        self._scheduler.add_listener(self._on_missed, EVENT_JOB_MISSED)
        self._scheduler.add_listener(self._on_overlap, EVENT_JOB_MAX_INSTANCES)

    def _on_missed(self, event: Any) -> None:
        item = self.planned.get(event.job_id)
        if item is None:
            return
        late = now() - event.scheduled_run_time
        reason = (
            f"missed: due at {_when(event.scheduled_run_time)} and {_duration(late)} late when the service could "
            f"run it, beyond scheduler.misfire_grace ({_duration(timedelta(seconds=item.misfire_grace))})"
        )
        log.warning("%s on %s %s", item.job, item.database, reason)
        self._record_not_run(item, "missed", reason, event.scheduled_run_time)
        self.sentry.report_missed(item.job, item.database, f"dbmaint {item.job} on {item.database} {reason}")
        self._save_state(event.job_id)

    def _on_submit(self, job_id: str, due: datetime) -> None:
        """A run handed to its kind's thread: said so when it must wait behind another database's run."""
        kind = job_id.partition(":")[0]
        with self._lock:
            ahead = sorted(j for j in self._running | self._queued if j.partition(":")[0] == kind and j != job_id)
            self._queued.add(job_id)
        if ahead:
            shown = [j for j in ahead if j in self._running] or ahead
            behind = ", ".join(j.replace(":", " on ", 1) for j in shown[:3]) + (" ..." if len(shown) > 3 else "")
            log.info(
                "%s: due at %s, queued behind %s (runs of one job go one database at a time)",
                job_id.replace(":", " on ", 1), _when(due), behind,
            )  # fmt: skip

    def _on_overlap(self, event: Any) -> None:
        """A job due while its previous run still goes, or still waits its turn: not started twice. Logged,
        not recorded as a run: the run going (or queued) answers for it."""
        item = self.planned.get(event.job_id)
        if item is None:
            return
        with self._lock:
            running = event.job_id in self._running
        if running:
            log.warning(
                "%s on %s: the run due at %s is not started: the previous run is still going (runs never overlap)",
                item.job, item.database, _when(event.scheduled_run_times[-1]),
            )  # fmt: skip
        else:
            log.info(
                "%s on %s: the run due at %s is not queued again: the run due at %s is still queued",
                item.job, item.database, _when(event.scheduled_run_times[-1]), _when(self._scheduled.get(event.job_id)),
            )  # fmt: skip
        self._save_state(event.job_id)

    def _record_not_run(self, item: Planned, status: str, reason: str, scheduled_for: datetime) -> None:
        try:
            self.history.record_not_run(item.job, item.database, status, reason, scheduled_for, self.host)
        except StateStoreError as exc:
            self._fail(exc)

    # --- running a job ----------------------------------------------------------------------------------

    def _fire(self, job: str, database: str) -> None:
        """One scheduled run: everything is caught here, so one failing job never stops the others."""
        job_id = f"{job}:{database}"
        scheduled_for = self._scheduled.get(job_id)
        with self._lock:
            self._queued.discard(job_id)
        with self._lock:
            config, target, item = self.config, self.targets.get(database), self.planned.get(job_id)
        if target is None or item is None:
            return
        # Tracked before anything else, so that a stop arriving now waits for this run or sees it never start.
        with self._tracked(job_id), self._one_at_a_time(job) as go:
            if not go or not self._due(item, scheduled_for):
                return
            check_in = self.sentry.checkin_started(
                job,
                database,
                monitor_config(item.spec.monitor_crontab(), item.timezone, item.misfire_grace, item.max_runtime_s),
            )
            started = time.monotonic()
            ok = False
            log.info("%s on %s: started (due %s)", job, database, _when(scheduled_for))
            try:
                result = _use_case(job)(target, config, self.history, scheduled_for=scheduled_for)
                report: JobReport = result if isinstance(result, JobReport) else result.job  # capture wraps it
                ok = not report.failed and report.status != "interrupted"
                self._log_run(report, time.monotonic() - started)
                self.sentry.report_run(report)
            except StateStoreError as exc:
                self._store_refused(exc)
            except Exception as exc:
                if stopping.requested():  # the stop cut the run short wherever it was: no failure to report
                    log.info("%s on %s: interrupted by the stop (%s)", job, database, db.first_line(str(exc)))
                elif isinstance(exc, DbmaintError):
                    log.error("%s on %s failed: %s", job, database, exc)
                    self.sentry.report_failure(job, database, str(exc), exc)
                else:
                    log.exception("%s on %s failed unexpectedly", job, database)
                    self.sentry.report_failure(job, database, str(exc), exc)
            finally:
                self.sentry.checkin_finished(job, database, check_in, ok, time.monotonic() - started)
                self.notifier.status(self.summary())  # `systemctl status` shows what is next, kept current

    def _due(self, item: Planned, scheduled_for: datetime | None) -> bool:
        """Whether this submission should run: not stopping, not already answered, not a DST repeat."""
        if stopping.requested():
            return False
        if scheduled_for is None:
            return True
        try:
            if self.history.has_run(self.host, item.job, item.database, scheduled_for):
                log.info("%s on %s: the run due at %s already happened", item.job, item.database, _when(scheduled_for))
                return False
        except StateStoreError as exc:
            self._fail(exc)
            return False
        fixed_time = not item.spec.hour.startswith("*") and not item.spec.minute.startswith("*")
        if fixed_time and self._repeated_wall_clock(item.id, scheduled_for, item.timezone):
            local = scheduled_for.astimezone(ZoneInfo(item.timezone)).strftime("%H:%M")
            log.info(
                "%s on %s: %s local time already ran (clocks went back): not again", item.job, item.database, local
            )
            return False
        return True

    def _repeated_wall_clock(self, job_id: str, scheduled_for: datetime, timezone: str) -> bool:
        """When clocks go back, a daily 02:30 comes twice (APScheduler fires both): cron runs such a job once.
        (Jobs with a wildcard hour or minute, hourly ones say, do run in the repeated hour, as in cron.)"""
        zone = ZoneInfo(timezone)
        wall = scheduled_for.astimezone(zone).replace(tzinfo=None)
        with self._lock:
            previous = self._last_wall_clock.get(job_id)
            if previous is not None and wall <= previous:
                return True  # the local clock is back at or before a time already run
            self._last_wall_clock[job_id] = wall
        return False

    @contextmanager
    def _tracked(self, job_id: str) -> Iterator[None]:
        with self._lock:
            self._running.add(job_id)
            self._threads[job_id] = threading.get_ident()
            self._idle.clear()
        try:
            yield
        finally:
            with self._lock:
                self._running.discard(job_id)
                self._threads.pop(job_id, None)
                if not self._running:
                    self._idle.set()

    @contextmanager
    def _one_at_a_time(self, job: str) -> Iterator[bool]:
        """One job kind at a time on this host: two databases' vacuums run one after the other, not at once
        (the later one's window counts from its scheduled time, so it cannot run on into the day)."""
        lock = self._job_locks[job]
        while not lock.acquire(timeout=0.5):
            if stopping.requested():
                yield False
                return
        try:
            yield True
        finally:
            lock.release()

    def _running_jobs(self, *, waited_for: bool = False) -> set[str]:
        """The jobs running now; ``waited_for``: less those only connecting, which a stop need not wait for."""
        with self._lock:
            if not waited_for:
                return set(self._running)
            connecting = stopping.connecting_threads()
            return {job for job in self._running if self._threads.get(job) not in connecting}

    @staticmethod
    def _log_run(report: JobReport, duration_s: float) -> None:
        counts: dict[str, int] = {}
        for action in report.actions:
            counts[action.status] = counts.get(action.status, 0) + 1
        detail = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no actions"
        level = logging.ERROR if report.failed else logging.INFO
        reason = f" ({report.reason})" if report.reason else ""
        log.log(level, "%s on %s: %s%s in %.1f s; %s", report.job, report.database, report.status, reason,
                duration_s, detail)  # fmt: skip

    # --- service jobs: watchdog, heartbeat, health figures -------------------------------------------------

    def _add_service_jobs(self) -> None:
        if self.notifier.watchdog_s is not None:
            # Fed by a scheduler job: if the scheduler stops dispatching, systemd notices and restarts us.
            self._scheduler.add_job(
                self.notifier.watchdog, "interval", seconds=self.notifier.watchdog_s, id="watchdog",
                executor="service", next_run_time=now(), misfire_grace_time=None,
            )  # fmt: skip
        self._scheduler.add_job(
            self._heartbeat, "interval", seconds=_HEARTBEAT_S, id="heartbeat", executor="service",
            misfire_grace_time=None,
        )  # fmt: skip
        # Health figures every metrics.refresh for the endpoint; without one, hourly for the history alone.
        health_every = self.config.metrics.refresh if self.metrics is not None else health_history.EVERY_S
        self._scheduler.add_job(
            self._sample_health, "interval", seconds=health_every, id="health",
            executor="health", next_run_time=now(), misfire_grace_time=None,
        )  # fmt: skip
        self._schedule_report(self.config)
        # Databases of a databases = "all" entry are listed again as often as the health figures are read
        # (metrics.refresh, a minute by default): one created is scheduled from its next due time, one
        # dropped is unscheduled.
        self._scheduler.add_job(
            self._list_databases, "interval", seconds=self.config.metrics.refresh, id="databases",
            executor="service", misfire_grace_time=None,
        )  # fmt: skip

    def _list_databases(self) -> None:
        with self._lock:
            config, previous = self.config, dict(self.targets)
        if not any(entry.databases == "all" for entry in config.databases):
            return
        try:
            listed = {t.name: t for t in db.resolve_targets(config, self.database, self.dsn)}
        except DbmaintError as exc:
            log.warning("could not list the databases again: %s", exc)
            return
        listed = keep_unlisted(previous, listed)
        if set(listed) == set(previous):
            return
        with self._lock:
            if self.config is not config:  # a reload came in between: it listed them itself
                return
            self._listed = listed
        self._wake.set()  # the main loop applies it, as it applies a reload: one thread changes the schedule

    def _apply_listed(self) -> None:
        with self._lock:
            listed, self._listed = self._listed, None
            if listed is None:
                return
            added, dropped = sorted(set(listed) - set(self.targets)), sorted(set(self.targets) - set(listed))
            self.targets = listed
        log.info("databases now: %s added, %s gone", ", ".join(added) or "none", ", ".join(dropped) or "none")
        try:
            self._apply_schedule(planned_jobs(self.config, list(listed)))
        except StateStoreError as exc:
            self._fail(exc)

    def _heartbeat(self) -> None:
        try:
            self.history.heartbeat(self.host, os.getpid())
        except StateStoreError as exc:
            self._store_refused(exc)

    def _sample_health(self) -> None:
        with self._lock:
            config, targets = self.config, dict(self.targets)
        if self.metrics is not None:
            self.metrics.forget_databases(set(targets))
        for target in targets.values():
            if stopping.requested():
                return
            sample = self._health(target, config)
            if self.metrics is not None:
                self.metrics.update_health(sample)

    def _health(self, target: db.Target, config: Config) -> HealthSample:
        taken = now()
        try:
            with db.connection(target, config.safety, statement_timeout=30.0) as conn:
                health = collect.database_health(conn)
                sample = HealthSample(
                    target.name,
                    taken,
                    up=True,
                    in_recovery=health.in_recovery,
                    xid_age=health.xid_age,
                    multixact_age=health.multixact_age,
                )
                leaders = collect.dead_tuple_leaders(conn, config.metrics.top)
                sample.dead_tuples = [(t.table_name, t.n_dead_tup) for t in leaders]
                if target.name in self._health_down:
                    log.info("health figures of %s available again", target.name)
                    self._health_down.discard(target.name)
                last_read = self._bloat_read_at.get(target.name)
                if last_read is None or time.monotonic() - last_read >= _INDEX_BLOAT_EVERY_S:
                    sample.index_bloat = _worst_bloat(collect.index_bloat_inputs(conn), config.metrics.top)
                    self._bloat_read_at[target.name] = time.monotonic()
                # Kept in history once an hour, on a primary only (a standby's statistics know no dead rows).
                if not health.in_recovery and self._health_history.due(target.name, taken):
                    self._health_history.record(conn, target.name, taken, health, config.metrics.top)
                return sample
        except (DbmaintError, psycopg.Error) as exc:
            if target.name not in self._health_down:  # said once when it goes down, not every refresh
                log.warning("health figures of %s unavailable: %s", target.name, db.first_line(str(exc)))
            self._health_down.add(target.name)
            return HealthSample(target.name, taken, up=False)

    def _schedule_report(self, config: Config) -> None:
        """With ``[report] html``, the page is written on its schedule, in an executor of its own: a slow
        checklist never holds up the jobs or the health figures. Without it, no page. A reload calls it again."""
        if self._scheduler.get_job("report") is not None:
            self._scheduler.remove_job("report")
        if config.report.html is None:
            return
        if not self._report_executor:
            self._scheduler.add_executor(_pool(1), "report")
            self._report_executor = True
        self._scheduler.add_job(
            self._write_report, trigger=build_trigger(parse_cron(config.report.schedule), config.timezone),
            id="report", executor="report", coalesce=True, max_instances=1, misfire_grace_time=None,
        )  # fmt: skip
        log.info("report page to %s: %s (%s)", config.report.html, config.report.schedule, config.timezone)

    def _write_report(self) -> None:
        from pathlib import Path

        from dbmaint.reporting import build  # Jinja2 and the page load only when a page is written

        with self._lock:
            config, targets = self.config, list(self.targets.values())
        if config.report.html is None or stopping.requested():
            return
        started = time.monotonic()
        try:
            page = build.write_report(
                Path(config.report.html), config, targets, self.history,
                days=config.report.days, checklist=config.report.checklist,
            )  # fmt: skip
        except (DbmaintError, OSError) as exc:
            if stopping.requested():  # the stop cut the checklist short: the last page stays as it was
                log.info("report page not written to %s: the service is stopping", config.report.html)
            else:
                log.error("report page not written to %s: %s", config.report.html, exc)
            return
        except Exception:
            log.exception("report page not written to %s", config.report.html)
            return
        log.info("report page written to %s: %d database(s) in %.1f s", config.report.html,
                 len(page.databases), time.monotonic() - started)  # fmt: skip

    # --- SIGHUP -------------------------------------------------------------------------------------------

    def reload(self) -> bool:
        """Read the configuration again; an invalid one is rejected and the running one kept."""
        self.notifier.reloading()
        try:
            config = load_config(self.config_path)
            targets = {t.name: t for t in db.resolve_targets(config, self.database, self.dsn)}
            planned = planned_jobs(config, list(targets))
        except DbmaintError as exc:
            log.error("configuration reload rejected, the running configuration stays: %s", exc)
            self.notifier.ready(f"configuration reload rejected ({exc}); running on the previous one")
            return False
        for section in ("state", "metrics", "sentry"):
            if getattr(config, section) != getattr(self.config, section):
                log.warning("[%s] changed: that takes effect when the service restarts", section)
        with self._lock:
            previous, self.config, self.targets = self.config, config, targets
        try:
            self._apply_schedule(planned)
        except StateStoreError as exc:
            self._fail(exc)
            return False
        if (config.report, config.timezone) != (previous.report, previous.timezone):
            self._schedule_report(config)
        log.info("configuration reloaded: %s", self.summary())
        self.notifier.ready(self.summary())
        return True


def keep_unlisted(previous: dict[str, db.Target], listed: dict[str, db.Target]) -> dict[str, db.Target]:
    """A server that cannot be asked right now keeps the databases it had: they stay scheduled (and fail
    to connect when due, which is recorded) rather than vanish from the schedule and its history."""
    kept = dict(listed)
    for name, target in listed.items():
        if target.unavailable is None:
            continue
        had = {n: t for n, t in previous.items() if t.server == target.server and t.unavailable is None}
        if had:
            del kept[name]
            kept.update(had)
    return kept


@functools.lru_cache(maxsize=256)
def _period(spec: CronSpec, timezone: str) -> float:
    """A schedule's longest gap, worked out once (it walks a year of days): metrics ask on every scrape."""
    return period_seconds(spec, timezone, now())


def _pool(workers: int) -> Any:
    from apscheduler.executors.pool import ThreadPoolExecutor

    return ThreadPoolExecutor(workers)


def _worst_bloat(indexes: list[facts.IndexStats], top: int) -> list[IndexBloat]:
    estimates = []
    for index in indexes:
        if index.is_catalog:  # dbmaint never rebuilds those: they would only crowd out the tables' indexes
            continue
        bloat = reindex_analysis.estimate_bloat(index)
        if bloat is not None and bloat.bytes > 0:
            estimates.append(IndexBloat(index.qualified_name, bloat.bytes, bloat.ratio))
    return sorted(estimates, key=lambda b: -b.bytes)[:top]


def _when(moment: datetime | None) -> str:
    if moment is None:
        return "never"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(delta: timedelta) -> str:
    seconds = max(0, round(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
