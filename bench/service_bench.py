"""The service (`dbmaint run`): how promptly SIGTERM ends a long VACUUM, against PostgreSQL's own cancel
(pg_cancel_backend from another session) as the baseline; and, while it schedules jobs seconds apart,
how late each run starts and what the service costs (RSS, CPU seconds).

Correctness checks: after every stop, no dbmaint backend is left and the run is recorded as interrupted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import common
from dbmaint.store.history import History

SETTINGS = {"autovacuum": "off", "shared_preload_libraries": "'pg_stat_statements'"}
NAME = "service"


@dataclass(frozen=True)
class Params:
    rounds: int  # SIGTERM rounds, each beside one baseline cancel
    rows: int  # of the table whose VACUUM is made to crawl
    schedule_seconds: int  # how long the scheduling run lasts


FULL = Params(rounds=5, rows=20_000, schedule_seconds=60)
QUICK = Params(rounds=2, rows=10_000, schedule_seconds=15)


@dataclass
class Result:
    params: Params
    cancel_seconds: list[float]  # baseline: pg_cancel_backend until the VACUUM's backend is idle
    stop_seconds: list[float]  # dbmaint: SIGTERM until the process has exited and left no backend
    clean_stops: list[bool]  # no dbmaint backend left, the run recorded as interrupted
    lateness_s: list[float]  # started_at - scheduled_for of each scheduled run
    runs_by_status: dict[str, int]
    rss_mb: float
    cpu_seconds: float

    @property
    def stop_ratio(self) -> float:
        return common.ratio(common.median(self.stop_seconds), common.median(self.cancel_seconds))

    @property
    def passed(self) -> bool:
        return bool(self.clean_stops) and all(self.clean_stops) and bool(self.lateness_s)

    def to_json(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "cancel_seconds": self.cancel_seconds,
            "stop_seconds": self.stop_seconds,
            "stop_over_cancel": common.rounded(self.stop_ratio, 2),
            "clean_stops": self.clean_stops,
            "lateness_s": {
                "median": common.rounded(common.median(self.lateness_s)),
                "p95": common.rounded(common.percentile(self.lateness_s, 0.95)),
                "max": common.rounded(max(self.lateness_s, default=float("nan"))),
                "runs": len(self.lateness_s),
            },
            "runs_by_status": self.runs_by_status,
            "rss_mb": round(self.rss_mb, 1),
            "cpu_seconds": round(self.cpu_seconds, 2),
            "checks_passed": self.passed,
        }

    def summary(self) -> list[str]:
        p = self.params
        late = self.lateness_s
        return [
            f"SERVICE: SIGTERM during a crawling VACUUM ({p.rounds} rounds), then {p.schedule_seconds} s of scheduling",
            f"  pg_cancel_backend (baseline)  median {common.median(self.cancel_seconds):.2f} s",
            f"  dbmaint run, SIGTERM to exit  median {common.median(self.stop_seconds):.2f} s  "
            f"({self.stop_ratio:.1f}x the bare cancel, process exit and history included)",
            f"  run start lateness over {len(late)} runs: median {common.median(late) * 1000:.0f} ms, "
            f"p95 {common.percentile(late, 0.95) * 1000:.0f} ms, max {max(late, default=0) * 1000:.0f} ms",
            f"  service footprint: {self.rss_mb:.0f} MB RSS, {self.cpu_seconds:.1f} CPU s over "
            f"{p.schedule_seconds} s; runs {self.runs_by_status}",
            f"  clean stop check: {'PASS' if self.passed else 'FAIL'}: no dbmaint backend left, runs interrupted",
        ]


def run(params: Params) -> Result:
    with common.throwaway_cluster(SETTINGS) as cluster:
        dsn = common.create_database(cluster, "bench_service")
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            # Cost-based delay after nearly every page: each VACUUM of the table takes far longer than a stop.
            conn.execute("ALTER DATABASE bench_service SET vacuum_cost_delay = 50")
            conn.execute("ALTER DATABASE bench_service SET vacuum_cost_limit = 1")
        result = Result(params, [], [], [], [], {}, 0.0, 0.0)
        with tempfile.TemporaryDirectory(prefix="dbmaint-bench-service-") as scratch:
            work = Path(scratch)
            for round_no in range(params.rounds):
                common.say(NAME, f"round {round_no + 1}: baseline cancel, then dbmaint's stop")
                _dirty(dsn, params.rows)
                result.cancel_seconds.append(_baseline_cancel(common.program(cluster, "psql"), dsn, cluster.dsn()))
                _dirty(dsn, params.rows)
                seconds, clean = _service_stop(dsn, cluster.dsn(), work / f"stop{round_no}")
                result.stop_seconds.append(seconds)
                result.clean_stops.append(clean)
            common.say(NAME, f"scheduling for {params.schedule_seconds} s")
            _scheduling(dsn, work / "schedule", params.schedule_seconds, result)
    return result


def _dirty(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS crawl")
        conn.execute("CREATE TABLE crawl (id int PRIMARY KEY, pad text)")
        conn.execute("INSERT INTO crawl SELECT g, repeat('x', 200) FROM generate_series(1, %s) AS g", (rows,))
        conn.execute("DELETE FROM crawl")
        conn.execute("SELECT pg_stat_force_next_flush()")


def _vacuum_backends(admin_dsn: str, application: str) -> list[int]:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND query LIKE '%%VACUUM%%' "
            "AND state = 'active'",
            (application,),
        ).fetchall()
    return [int(pid) for (pid,) in rows]


def _wait(condition: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise common.BenchError("a condition was not met in time")
        time.sleep(0.02)


def _baseline_cancel(psql: str, dsn: str, admin_dsn: str) -> float:
    """A VACUUM in a session of its own, cancelled by PostgreSQL's own means from another session."""
    victim = subprocess.Popen(
        [psql, "-X", "-q", "-d", f"{dsn} application_name=baseline", "-c", "VACUUM (ANALYZE) crawl"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait(lambda: bool(_vacuum_backends(admin_dsn, "baseline")))
    time.sleep(1)
    (pid,) = _vacuum_backends(admin_dsn, "baseline")
    started = time.monotonic()
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_cancel_backend(%s)", (pid,))
    _wait(lambda: not _vacuum_backends(admin_dsn, "baseline"))
    seconds = time.monotonic() - started
    victim.wait(30)
    return seconds


def _config(dsn: str, vacuum: str, others: str | None) -> str:
    lines = ["[[databases]]", 'name = "bench"', f'dsn = "{dsn}"', "[vacuum]", f'schedule = "{vacuum}"']
    for job in ("reindex", "capture", "advisor"):
        lines += [f"[{job}]", f'schedule = "{others}"' if others else "enabled = false"]
    return "\n".join(lines) + "\n"


def _start(work: Path, config: str) -> subprocess.Popen[bytes]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "config.toml").write_text(config)
    return subprocess.Popen(
        [common.dbmaint_executable(), "run", "--config", str(work / "config.toml")],
        env=common.dbmaint_env(f"sqlite:///{work / 'state.db'}"),
        stdout=subprocess.DEVNULL,
        stderr=(work / "service.log").open("w"),
    )


def _service_stop(dsn: str, admin_dsn: str, work: Path) -> tuple[float, bool]:
    service = _start(work, _config(dsn, "* * * * * *", None))
    try:
        _wait(lambda: bool(_vacuum_backends(admin_dsn, "dbmaint")))
        time.sleep(1)
        started = time.monotonic()
        service.send_signal(signal.SIGTERM)
        service.wait(60)
        _wait(lambda: not _vacuum_backends(admin_dsn, "dbmaint"), timeout=10)
        seconds = time.monotonic() - started
    finally:
        if service.poll() is None:
            service.kill()
    store = History(f"sqlite:///{work / 'state.db'}")
    statuses = [r.status for r in store.recent_runs(job="vacuum")]
    store.close()
    # (While the VACUUM crawls, each second's due time is recorded as skipped: runs never overlap.)
    return seconds, service.returncode == 0 and "interrupted" in statuses and "running" not in statuses


def _scheduling(dsn: str, work: Path, seconds: int, result: Result) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:  # quick VACUUMs now: this part measures scheduling
        conn.execute("ALTER DATABASE bench_service RESET vacuum_cost_delay")
        conn.execute("ALTER DATABASE bench_service RESET vacuum_cost_limit")
    service = _start(work, _config(dsn, "*/2 * * * * *", "*/3 * * * * *"))
    try:
        time.sleep(seconds)
        with open(f"/proc/{service.pid}/status") as status:
            rss_kb = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
        with open(f"/proc/{service.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[11]) + int(fields[12])  # utime + stime
        result.cpu_seconds = ticks / os.sysconf("SC_CLK_TCK")
        result.rss_mb = rss_kb / 1024
    finally:
        service.send_signal(signal.SIGTERM)
        service.wait(60)
    store = History(f"sqlite:///{work / 'state.db'}")
    runs = [r for r in store.recent_runs(limit=10_000) if r.scheduled_for is not None]
    store.close()
    result.lateness_s = [(r.started_at - r.scheduled_for).total_seconds() for r in runs if r.scheduled_for]
    for run in runs:
        result.runs_by_status[run.status] = result.runs_by_status.get(run.status, 0) + 1
