"""sd_notify over a real datagram socket: the lines each state change sends, abstract sockets, no socket at all,
and the watchdog interval from WATCHDOG_USEC / WATCHDOG_PID."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbmaint.service.systemd import Notifier


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """systemd's side: a datagram socket bound to a path, and that path for NOTIFY_SOCKET."""
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(5)
    yield sock, str(path)
    sock.close()


def received(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode().split("\n")


def nothing_waiting(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        sock.recv(4096)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(5)
    return False


def test_ready_sends_ready_and_the_status(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.enabled
    assert notifier.ready("4 job(s) on 1 database(s)") is True
    assert received(sock) == ["READY=1", "STATUS=4 job(s) on 1 database(s)"]


def test_status_watchdog_and_stopping_lines(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier({"NOTIFY_SOCKET": path})
    assert notifier.status("vacuum on app running") is True
    assert received(sock) == ["STATUS=vacuum on app running"]
    assert notifier.watchdog() is True
    assert received(sock) == ["WATCHDOG=1"]
    assert notifier.stopping() is True
    assert received(sock) == ["STOPPING=1", "STATUS=stopping: cancelling running statements"]
    assert notifier.notify("EXTEND_TIMEOUT_USEC=5000000") is True
    assert received(sock) == ["EXTEND_TIMEOUT_USEC=5000000"]


def test_reloading_sends_the_monotonic_clock(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert Notifier({"NOTIFY_SOCKET": path}).reloading() is True
    first, second = received(sock)
    assert first == "RELOADING=1"
    key, _, value = second.partition("=")
    assert key == "MONOTONIC_USEC"
    assert value.isdigit()
    assert int(value) >= before  # CLOCK_MONOTONIC in microseconds, as systemd compares it


def test_an_abstract_socket_is_written_with_a_leading_nul() -> None:
    name = f"dbmaint-test-{secrets.token_hex(8)}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.address == "\0" + name
        assert notifier.ready("up") is True
        assert received(sock) == ["READY=1", "STATUS=up"]


def test_without_notify_socket_nothing_is_sent(listener: tuple[socket.socket, str]) -> None:
    sock, _path = listener
    for environ in ({}, {"NOTIFY_SOCKET": ""}):
        notifier = Notifier(environ)
        assert not notifier.enabled
        assert notifier.notify("READY=1") is False
        assert notifier.ready("up") is False
        assert notifier.watchdog() is False
        assert notifier.reloading() is False
        assert notifier.stopping() is False
    assert nothing_waiting(sock)


def test_an_unreachable_socket_is_logged_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "missing.sock")})
    assert notifier.enabled
    with caplog.at_level(logging.WARNING, logger="dbmaint.service.systemd"):
        assert notifier.ready("up") is False
        assert notifier.watchdog() is False
    assert [r.getMessage().split(" failed:")[0] for r in caplog.records] == [
        "systemd notify READY=1",
        "systemd notify WATCHDOG=1",
    ]


def test_the_environment_given_is_used_not_os_environ(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    notifier = Notifier({})
    assert not notifier.enabled and notifier.watchdog_s is None
    assert notifier.notify("READY=1") is False
    assert nothing_waiting(sock)


# --- the watchdog interval ---------------------------------------------------------------------------------------


def test_watchdog_interval_is_half_of_watchdog_usec() -> None:
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 15.0
    assert Notifier({"WATCHDOG_USEC": "500000"}).watchdog_s == 0.25


@pytest.mark.parametrize("usec", [None, "", "0", "abc", "-5"])
def test_no_watchdog_without_a_positive_watchdog_usec(usec: str | None) -> None:
    environ = {} if usec is None else {"WATCHDOG_USEC": usec}
    assert Notifier(environ).watchdog_s is None


def test_the_watchdog_of_another_process_is_not_ours() -> None:
    other = str(os.getpid() + 1)
    assert Notifier({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": other}).watchdog_s is None


def test_the_watchdog_of_this_process_is_ours() -> None:
    mine = str(os.getpid())
    assert Notifier({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": mine}).watchdog_s == 10.0
