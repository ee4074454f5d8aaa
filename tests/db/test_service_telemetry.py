"""What the service tells the outside world: Sentry (a local HTTP endpoint standing in for Sentry's ingest,
receiving what the real sentry-sdk sends) and systemd's notify and watchdog protocol (a datagram socket)."""

from __future__ import annotations

import gzip
import json
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from dbmaint.pg.cluster import free_port
from tests.db.conftest import Database
from tests.db.helpers import EVERY_2S, ServiceProcess, service_config, wait_for

pytestmark = pytest.mark.slow


class SentryIngest:
    """Sentry's envelope endpoint, in a thread: every item received, decoded."""

    def __init__(self) -> None:
        self.items: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.raw: list[bytes] = []
        ingest = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                assert self.headers.get("Content-Encoding") in (None, "gzip"), self.headers
                ingest.raw.append(body)
                ingest.items.extend(_envelope_items(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def dsn(self) -> str:
        return f"http://publickey@127.0.0.1:{self.server.server_port}/42"

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [payload for header, payload in self.items if header.get("type") == kind]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _envelope_items(body: bytes) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """An envelope: a header line, then per item a header line and a payload (``length`` bytes, or a line)."""
    _, _, rest = body.partition(b"\n")
    while rest.strip():
        header_line, _, rest = rest.partition(b"\n")
        header = json.loads(header_line)
        if "length" in header:
            payload, rest = rest[: header["length"]], rest[header["length"] :].removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        yield header, json.loads(payload) if payload.strip() else {}


@pytest.fixture
def sentry() -> Iterator[SentryIngest]:
    ingest = SentryIngest()
    yield ingest
    ingest.close()


def test_sentry_receives_check_ins_and_error_events_without_secrets(
    database: Database, sentry: SentryIngest, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    secret = "s3cr3t-pw"
    gone = f"host=127.0.0.1 port={free_port()} dbname=nowhere user=postgres password={secret}"
    config = write_config(service_config({"app": database.dsn, "gone": gone}))
    service = ServiceProcess(
        config, f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "service.log", {"SENTRY_DSN": sentry.dsn}
    )
    try:

        def seen() -> bool:
            checkins = sentry.of_type("check_in")
            statuses = {(c["monitor_slug"], c["status"]) for c in checkins}
            return {
                ("dbmaint-vacuum-app", "in_progress"),
                ("dbmaint-vacuum-app", "ok"),
                ("dbmaint-vacuum-gone", "error"),
            } <= statuses and bool(sentry.of_type("event"))

        wait_for(seen, timeout=30)
    finally:
        assert service.stop() == 0

    checkins = sentry.of_type("check_in")
    started = [c for c in checkins if c["status"] == "in_progress" and c["monitor_slug"] == "dbmaint-vacuum-app"]
    assert started[0]["monitor_config"]["schedule"] == {"type": "crontab", "value": "* * * * *"}
    assert started[0]["monitor_config"]["timezone"] == "UTC"
    finished = {c["check_in_id"]: c for c in checkins if c["status"] != "in_progress"}
    assert started[0]["check_in_id"] in finished, "each run's check-ins are paired by their id"
    assert finished[started[0]["check_in_id"]]["duration"] >= 0

    events = sentry.of_type("event")
    failure = next(e for e in events if e["tags"].get("database") == "gone")
    assert failure["tags"]["job"] == "vacuum"
    assert failure["level"] == "error"
    assert failure["message"].startswith("dbmaint vacuum on gone failed: could not connect"), failure["message"]
    assert not [e for e in events if e["tags"].get("database") == "app"], "healthy runs send no events"
    everything = b"".join(sentry.raw).decode()
    assert secret not in everything
    assert "password=***" in everything, "the DSN is there, with its password masked"


def test_no_sentry_dsn_means_no_sentry_and_no_complaint(
    database: Database, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    config = write_config(service_config({"app": database.dsn}))
    service = ServiceProcess(config, f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "service.log", {"SENTRY_DSN": ""})
    try:
        service.wait_for_runs(1, job="vacuum")
    finally:
        assert service.stop() == 0
    assert "sentry" not in service.log.lower()


class NotifySocket:
    """The datagram socket systemd listens on for a Type=notify service."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[list[str]] = []

    def receive(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                return
            self.messages.append(data.decode().split("\n"))

    def saw(self, field: str) -> bool:
        self.receive()
        return any(field in message for message in self.messages)

    def count(self, field: str) -> int:
        self.receive()
        return sum(field in message for message in self.messages)


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[NotifySocket]:
    listener = NotifySocket(tmp_path / "notify.sock")
    yield listener
    listener.sock.close()


def test_notify_and_watchdog_protocol(
    database: Database, notify: NotifySocket, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    config = write_config(service_config({"app": database.dsn}, vacuum=EVERY_2S))
    service = ServiceProcess(
        config,
        f"sqlite:///{tmp_path / 'state.db'}",
        tmp_path / "service.log",
        {"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000"},
    )
    try:
        wait_for(lambda: notify.saw("READY=1"), timeout=20)
        ready = next(m for m in notify.messages if "READY=1" in m)
        assert any(f.startswith("STATUS=1 job(s) on 1 database(s); next: vacuum on app") for f in ready)
        wait_for(lambda: notify.count("WATCHDOG=1") >= 4, timeout=10)  # every half second
        service.signal(signal.SIGHUP)
        wait_for(lambda: notify.saw("RELOADING=1"), timeout=10)
        wait_for(lambda: notify.count("READY=1") >= 2, timeout=10)
        reloading = next(m for m in notify.messages if "RELOADING=1" in m)
        assert any(f.startswith("MONOTONIC_USEC=") for f in reloading)
    finally:
        assert service.stop() == 0
    assert notify.saw("STOPPING=1")


def test_a_stop_in_the_middle_of_a_run_is_no_failure_event(
    pg: Any, database: Database, sentry: SentryIngest, write_config: Callable[[str], str], tmp_path: Path
) -> None:
    """SIGTERM during a long VACUUM and during a connect that never gets an answer: no error event."""
    from tests.db.helpers import start_long_vacuum

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    hanging = f"host=127.0.0.1 port={listener.getsockname()[1]} dbname=app user=postgres"
    text = service_config({"app": database.dsn, "hang": hanging}, capture=EVERY_2S).replace(
        'connect_timeout = "2s"', 'connect_timeout = "60s"'
    )
    services: list[ServiceProcess] = []

    def start(config: str, **_: Any) -> ServiceProcess:
        service = ServiceProcess(
            config, f"sqlite:///{tmp_path / 'state.db'}", tmp_path / "service.log", {"SENTRY_DSN": sentry.dsn}
        )
        services.append(service)
        return service

    try:
        service = start_long_vacuum(pg, database, write_config(text), start)
        wait_for(lambda: "capture on hang: started" in service.log, timeout=30)
        assert service.stop(timeout=60) == 0, service.log
    finally:
        listener.close()
        for started in services:
            started.stop()
    assert not sentry.of_type("event"), sentry.of_type("event")
    assert "Traceback" not in service.log
