"""Sentry for the service: error events for failed runs and actions, and cron check-ins per scheduled job.

Off, silently, unless the environment variable named by ``[sentry] dsn_env`` holds a DSN. Nothing secret
leaves the host: every string of every event and breadcrumb goes through ``scrub`` (passwords in DSNs
and URLs, the values PostgreSQL quotes in error details, literals in SQL text), local variables and
argv are never attached, and the SQLAlchemy/psycopg auto-instrumentation (which would send statements)
is not enabled.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import re
import socket
from collections.abc import Mapping
from typing import Any

from dbmaint import __version__
from dbmaint.config import SentryConfig
from dbmaint.errors import DbmaintError
from dbmaint.model import JobReport

log = logging.getLogger(__name__)

_URL_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@\s]*@", re.IGNORECASE)
# password=, sslpassword=, PGPASSWORD=: any key ending in "password".
_KEYWORD_PASSWORD = re.compile(r"(\b\w*password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
_DETAIL_KEY = re.compile(r"(Key \((?:[^()]|\([^()]*\))*\))=\((?:[^()]|\([^()]*\))*\)")
_FAILING_ROW = re.compile(r"(Failing row contains )\(.*?\)(?=\.?$|\s)", re.MULTILINE)
_LOOKS_LIKE_SQL = re.compile(r"\b(select|insert|update|delete|values|where)\b", re.IGNORECASE)
# E'...' strings may escape a quote with a backslash; plain ones double it.
_STRING_LITERAL = re.compile(r"[eE]'(?:[^'\\]|\\.|'')*'|'(?:[^']|'')*'")
# Every standalone number (not $1, not part of a name such as t_2024 or a qualified name).
_NUMBER = re.compile(r"(?<![\w$.])-?\d+(?:\.\d+)?\b")


def scrub(text: str) -> str:
    """``text`` without passwords or data values; dbmaint's own names and reasons stay readable."""
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _KEYWORD_PASSWORD.sub(r"\1***", text)
    text = _DETAIL_KEY.sub(r"\1=(***)", text)
    text = _FAILING_ROW.sub(r"\1(***)", text)
    if _LOOKS_LIKE_SQL.search(text):
        text = _STRING_LITERAL.sub("'***'", text)
        text = _NUMBER.sub("?", text)
    return text


def scrub_event(event: Any) -> Any:
    """Every string in an event (or breadcrumb), however deep, scrubbed."""
    if isinstance(event, str):
        return scrub(event)
    if isinstance(event, Mapping):
        return {key: scrub_event(value) for key, value in event.items()}
    if isinstance(event, list | tuple):
        return [scrub_event(value) for value in event]
    return event


def monitor_slug(job: str, database: str) -> str:
    """Sentry's monitor slug: lowercase letters, digits, - and _ (at most 50 characters). When the database
    name had to change to fit ("App" and "app", "a.b" and "a-b", long names), a short hash of the real
    name keeps two databases from sharing one monitor."""
    readable = f"dbmaint-{job}-{database}"
    slug = re.sub(r"[^a-z0-9_-]+", "-", readable.lower()).strip("-")
    if slug == readable and len(slug) <= 50:
        return slug
    digest = hashlib.sha1(f"{job}:{database}".encode()).hexdigest()[:8]
    return f"{slug[:41].rstrip('-')}-{digest}"


class Sentry:
    """The service's Sentry client; every method is a no-op while Sentry is off."""

    def __init__(self, config: SentryConfig) -> None:
        self.dsn = os.environ.get(config.dsn_env, "").strip()
        self.enabled = bool(self.dsn)
        if not self.enabled:
            return
        import sentry_sdk
        from sentry_sdk.integrations.atexit import AtexitIntegration
        from sentry_sdk.integrations.dedupe import DedupeIntegration
        from sentry_sdk.integrations.logging import LoggingIntegration
        from sentry_sdk.integrations.threading import ThreadingIntegration

        sentry_sdk.init(
            dsn=self.dsn,
            environment=config.environment,
            release=f"dbmaint@{__version__}",
            server_name=socket.gethostname(),
            send_default_pii=False,
            include_local_variables=False,
            # Only what is listed: no argv (a --dsn may carry a password), no SQL auto-instrumentation.
            default_integrations=False,
            auto_enabling_integrations=False,
            integrations=[
                LoggingIntegration(level=logging.INFO, event_level=None),  # breadcrumbs; events are explicit
                DedupeIntegration(),
                ThreadingIntegration(propagate_scope=True),
                AtexitIntegration(callback=lambda pending, timeout: None),
            ],
            before_send=lambda event, hint: scrub_event(event),
            before_breadcrumb=lambda crumb, hint: scrub_event(crumb),
        )
        log.info("Sentry on (environment %s)", config.environment)

    def checkin_started(self, job: str, database: str, monitor_config: dict[str, Any]) -> str | None:
        if not self.enabled:
            return None
        from sentry_sdk.crons import capture_checkin
        from sentry_sdk.crons.consts import MonitorStatus

        return capture_checkin(
            monitor_slug=monitor_slug(job, database),
            status=MonitorStatus.IN_PROGRESS,
            monitor_config=monitor_config,  # type: ignore[arg-type]
        )

    def checkin_finished(self, job: str, database: str, check_in_id: str | None, ok: bool, duration_s: float) -> None:
        if not self.enabled:
            return
        from sentry_sdk.crons import capture_checkin
        from sentry_sdk.crons.consts import MonitorStatus

        capture_checkin(
            monitor_slug=monitor_slug(job, database),
            check_in_id=check_in_id,
            status=MonitorStatus.OK if ok else MonitorStatus.ERROR,
            duration=duration_s,
        )

    def report_run(self, report: JobReport) -> None:
        """A failed run is one event; each failed action of a run is one more, tagged with its object."""
        if not self.enabled:
            return
        tags = {"job": report.job, "database": report.database}
        if report.run_id is not None:
            tags["run_id"] = str(report.run_id)
        if report.status == "failed":
            self._send(
                f"dbmaint {report.job} on {report.database} failed: {report.reason or 'see history'}",
                tags=tags,
                fingerprint=[report.job, report.database, "run failed"],
            )
        for action in report.actions:
            if action.status == "failed":
                self._send(
                    f"{action.kind} of {action.object} failed: {action.detail or 'see history'}",
                    tags={**tags, "action": action.object, "action_kind": action.kind},
                    fingerprint=[report.job, report.database, action.kind, action.object],
                )

    def report_failure(self, job: str, database: str, message: str, exc: BaseException | None = None) -> None:
        """A run that ended in an error before it had a report (cannot connect, unexpected exception)."""
        if self.enabled:
            self._send(
                f"dbmaint {job} on {database} failed: {message}",
                tags={"job": job, "database": database},
                fingerprint=[job, database, type(exc).__name__ if exc else "failure"],
                # An exception dbmaint did not expect goes with its traceback; dbmaint's own errors are messages.
                exc=None if isinstance(exc, DbmaintError) else exc,
            )

    def report_missed(self, job: str, database: str, message: str) -> None:
        if self.enabled:
            self._send(
                message, tags={"job": job, "database": database}, fingerprint=[job, database, "missed"], level="warning"
            )

    @staticmethod
    def _send(
        message: str,
        *,
        tags: dict[str, str],
        fingerprint: list[str],
        level: str = "error",
        exc: BaseException | None = None,
    ) -> None:
        import sentry_sdk

        with sentry_sdk.new_scope() as scope:
            for name, value in tags.items():
                scope.set_tag(name, value)
            scope.fingerprint = fingerprint
            if exc is not None:
                sentry_sdk.capture_exception(exc)
            else:
                sentry_sdk.capture_message(message, level=level)  # type: ignore[arg-type]

    def flush(self, timeout_s: float = 5.0) -> None:
        if self.enabled:
            import sentry_sdk

            sentry_sdk.flush(timeout=timeout_s)


def monitor_config(crontab: str, timezone: str, margin_s: float, max_runtime_s: float | None) -> dict[str, Any]:
    """The monitor Sentry creates on the first check-in: the schedule, and how late or long is too much."""
    config: dict[str, Any] = {
        "schedule": {"type": "crontab", "value": crontab},
        "timezone": timezone,
        "checkin_margin": max(1, math.ceil(margin_s / 60)),
    }
    if max_runtime_s is not None:
        config["max_runtime"] = max(1, math.ceil(max_runtime_s / 60))
    return config
