"""Stopping the service cleanly: no new work once a stop is requested, and this process's own running
statements cancelled (each through its own connection's cancel key, so no other session is ever touched).

The request is process-wide: the scheduler sets it on SIGTERM, and the long loops (the executor, the
advisor's planning, capture's EXPLAINs) look at it between statements.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from typing import Any

import psycopg

from dbmaint.errors import Interrupted

_requested = threading.Event()
_reason = "dbmaint is stopping"
_lock = threading.Lock()
_connections: weakref.WeakSet[psycopg.Connection[Any]] = weakref.WeakSet()
_connecting: set[int] = set()  # threads inside a connect


def register(conn: psycopg.Connection[Any]) -> None:
    """Every dbmaint connection is known here, so that a stop can cancel what it is running."""
    with _lock:
        _connections.add(conn)


@contextlib.contextmanager
def connecting() -> Iterator[None]:
    """Marks this thread as connecting. A connect cannot be cancelled, but it holds nothing on any server
    (a backend still authenticating ends when the socket closes), so a stop need not wait for it."""
    ident = threading.get_ident()
    with _lock:
        _connecting.add(ident)
    try:
        yield
    finally:
        with _lock:
            _connecting.discard(ident)


def connecting_threads() -> set[int]:
    with _lock:
        return set(_connecting)


def request(reason: str) -> None:
    global _reason
    _reason = reason
    _requested.set()


def requested() -> bool:
    return _requested.is_set()


def reason() -> str:
    return _reason


def check() -> None:
    """Raise ``Interrupted`` once a stop has been requested: called before each new statement."""
    if _requested.is_set():
        raise Interrupted(_reason)


def wait(seconds: float) -> bool:
    """Sleep up to ``seconds``; True when woken early by a stop request."""
    return _requested.wait(seconds)


def cancel_all(timeout: float = 2.0) -> int:
    """Cancel whatever this process's open connections are running; returns how many were asked."""
    with _lock:
        open_connections = [conn for conn in _connections if not conn.closed]
    for conn in open_connections:
        # A connection closing meanwhile, or a server already gone, is fine: nothing left to cancel.
        with contextlib.suppress(psycopg.Error, OSError):
            conn.cancel_safe(timeout=timeout)
    return len(open_connections)


def reset() -> None:
    """Forget a stop request (a new service in the same process: tests)."""
    _requested.clear()
