"""Shared plumbing for the benchmarks: throwaway clusters, timed commands, dbmaint's command line, statistics.

The machine is small and noisy, so nothing here reports an absolute figure on its own: each benchmark
runs its baseline side by side with dbmaint and reports the ratio.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from dbmaint.pg.cluster import SERVER_USER, Cluster

Connection = psycopg.Connection[tuple[Any, ...]]

# Variables that would make a dbmaint subprocess read another configuration, database or state store
# than the one the benchmark gives it.
_DBMAINT_ENV = ("DBMAINT_CONFIG", "DBMAINT_DSN", "DBMAINT_STATE_URL")

_STARTED = time.monotonic()


class BenchError(Exception):
    """A benchmark could not be set up or run; the message says which step failed."""


def say(bench: str, message: str) -> None:
    """Progress on stderr, so that stdout holds only the summary."""
    print(f"[{time.monotonic() - _STARTED:7.1f}s] {bench}: {message}", file=sys.stderr, flush=True)


@contextmanager
def throwaway_cluster(settings: Mapping[str, str]) -> Iterator[Cluster]:
    """A cluster that is removed again whatever happens, Ctrl-C included."""
    cluster = Cluster(settings=dict(settings))
    try:
        yield cluster.start()
    except BaseException:
        _show_server_log(cluster)  # destroy() removes it, and it is where the server says what went wrong
        raise
    finally:
        cluster.destroy()


def _show_server_log(cluster: Cluster, lines: int = 30) -> None:
    if cluster.base is None or not cluster.logfile.exists():
        return
    tail = cluster.logfile.read_text(errors="replace").splitlines()[-lines:]
    print(f"--- last {len(tail)} lines of the server log ({cluster.logfile}):", file=sys.stderr)
    print("\n".join(tail), file=sys.stderr)


def create_database(cluster: Cluster, name: str) -> str:
    """Create ``name`` and return its DSN."""
    with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return cluster.dsn(name)


def client_args(cluster: Cluster) -> list[str]:
    """Connection options for the PostgreSQL client programs (vacuumdb, pgbench)."""
    return ["-h", "127.0.0.1", "-p", str(cluster.port), "-U", SERVER_USER]


def program(cluster: Cluster, name: str) -> str:
    """A client program of the same PostgreSQL version as the server."""
    return str(cluster.bindir / name)


def server_version(dsn: str) -> str:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "?"


def server_now(dsn: str) -> datetime:
    """The server's clock, to compare with the timestamps in pg_stat_user_tables."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_catalog.clock_timestamp()").fetchone()
    assert row is not None
    value: datetime = row[0]
    return value


def checkpoint(dsn: str) -> None:
    """Write out the dirty buffers left by a setup step now, rather than during the timed run after it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CHECKPOINT")


def dbmaint_executable() -> str:
    """The dbmaint script next to this interpreter (the venv's editable install of this tree), else PATH's."""
    beside = Path(sys.executable).parent / "dbmaint"  # not resolved: a venv's python is a symlink
    if beside.exists():
        return str(beside)
    found = shutil.which("dbmaint")
    if found is None:
        raise BenchError("no dbmaint executable: run with the venv's python (pip install -e .)")
    return found


def dbmaint_env(state_url: str | None = None) -> dict[str, str]:
    """The environment for a dbmaint subprocess: none of the caller's dbmaint settings leak in."""
    env = {key: value for key, value in os.environ.items() if key not in _DBMAINT_ENV}
    if state_url is not None:
        env["DBMAINT_STATE_URL"] = state_url
    return env


@dataclass(frozen=True)
class Timed:
    """A finished command and its wall time (process start to exit, so startup is counted)."""

    args: tuple[str, ...]
    seconds: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Timed:
        if self.returncode != 0:
            tail = (self.stderr or self.stdout).strip().splitlines()[-5:]
            raise BenchError(f"{what} exited with {self.returncode}: " + " | ".join(tail))
        return self


def run_timed(
    args: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None, timeout: float = 1800
) -> Timed:
    started = time.monotonic()
    try:
        done = subprocess.run(
            list(args), env=dict(env) if env is not None else None, cwd=cwd, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:  # subprocess.run has killed it
        raise BenchError(f"{Path(args[0]).name} still running after {timeout:.0f} s") from None
    return Timed(tuple(args), time.monotonic() - started, done.returncode, done.stdout, done.stderr)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def mean(values: Sequence[float]) -> float:
    return float(statistics.fmean(values)) if values else math.nan


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` 0.99 for p99): always one of the measured values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def rounded(value: float, digits: int = 3) -> float | None:
    """A figure for the JSON file: NaN (nothing measured) becomes null."""
    return None if math.isnan(value) else round(value, digits)


def json_ready(value: Any) -> Any:
    """``value`` with every float rounded to 4 digits and NaN or infinity, a figure not measured, as None."""
    if isinstance(value, float):
        return round(value, 4) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(item) for item in value]
    return value


def job_seconds(report: dict[str, Any]) -> float:
    """dbmaint's own account of a job (started_at to finished_at in its JSON): the process time less startup."""
    try:
        started = datetime.fromisoformat(report["started_at"])
        finished = datetime.fromisoformat(report["finished_at"])
    except (KeyError, TypeError, ValueError):
        return math.nan
    return (finished - started).total_seconds()


def format_bytes(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1024 / 1024:.1f} MB"


def git_commit(repo: Path) -> str | None:
    """The commit the working tree is on, with '+dirty' when it has changes: what the figures measured."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        changes = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if changes else "")


def compile_bytecode() -> str:
    """``python -m compileall -q dbmaint``: what an install does, and what PYTHONDONTWRITEBYTECODE=1 (set in
    some environments) prevents; without it every timed start would compile dbmaint's modules again."""
    args = [sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "dbmaint")]
    run_timed(args).check("compileall")
    return " ".join(args)
