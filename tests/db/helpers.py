"""Helpers for the behaviour tests: other sessions holding locks, dbmaint as a real process, JSON output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
from click.testing import Result


def json_output(result: Result) -> Any:
    assert result.exit_code in (0, 1), result.output + result.stderr
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"not JSON: stdout {result.stdout!r}, stderr {result.stderr!r}") from None


def run_dbmaint_process(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """dbmaint as a real process, as a user would run it."""
    return subprocess.run(
        [sys.executable, "-m", "dbmaint", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


class LockHolder:
    """Another session holding a lock in an open transaction, in its own thread, until released."""

    def __init__(self, dsn: str, *statements: str) -> None:
        self.conn = psycopg.connect(dsn)
        self.pid = self.conn.info.backend_pid
        for statement in statements:
            self.conn.execute(statement)

    def still_alive(self) -> bool:
        row = self.conn.execute("SELECT 1").fetchone()
        return row == (1,)

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def in_thread(target: Callable[[], Any]) -> threading.Thread:
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread
