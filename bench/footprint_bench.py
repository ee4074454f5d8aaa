"""The service's footprint over time: `dbmaint run` with many databases and every job due seconds apart,
its threads and resident memory sampled from /proc while it works.

The baseline is the service itself at its start: what matters is that threads do not grow with the
number of databases and that memory levels off (the slope over the second half of the run, in MB per
hour, is near zero) rather than climbing with each run.
"""

from __future__ import annotations

import signal
import subprocess
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import common
from dbmaint.store.history import History

SETTINGS = {"autovacuum": "off", "shared_preload_libraries": "'pg_stat_statements'", "max_connections": "200"}
NAME = "footprint"
JOBS = ("vacuum", "reindex", "capture", "advisor")


@dataclass(frozen=True)
class Params:
    databases: int
    minutes: float
    every_seconds: int  # each job on each database is due this often
    sample_seconds: float = 5.0


FULL = Params(databases=50, minutes=60, every_seconds=10)
QUICK = Params(databases=50, minutes=3, every_seconds=10)


@dataclass
class Result:
    params: Params
    samples: list[tuple[float, float, int]] = field(default_factory=list)  # (seconds, RSS MB, threads)
    runs_by_status: dict[str, int] = field(default_factory=dict)
    exit_code: int | None = None

    @property
    def max_threads(self) -> int:
        return max((t for _, _, t in self.samples), default=0)

    @property
    def rss_start_mb(self) -> float:
        """The first sample of the running service (one taken before its interpreter was up reads 0)."""
        return next((r for _, r, _ in self.samples if r > 0), 0.0)

    @property
    def rss_max_mb(self) -> float:
        return max((r for _, r, _ in self.samples), default=0.0)

    @property
    def rss_end_mb(self) -> float:
        return self.samples[-1][1] if self.samples else 0.0

    @property
    def slope_mb_per_hour(self) -> float:
        """Least-squares slope of RSS over the second half of the samples."""
        half = self.samples[len(self.samples) // 2 :]
        if len(half) < 2:
            return 0.0
        xs, ys = [s for s, _, _ in half], [r for _, r, _ in half]
        mx, my = common.mean(xs), common.mean(ys)
        var = sum((x - mx) ** 2 for x in xs)
        return 0.0 if var == 0 else sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600

    @property
    def passed(self) -> bool:
        # Threads bounded by the job kinds (not databases x jobs), the service ended cleanly, runs happened.
        return self.max_threads <= 16 and self.exit_code == 0 and sum(self.runs_by_status.values()) > 0

    def to_json(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "max_threads": self.max_threads,
            "rss_start_mb": round(self.rss_start_mb, 1),
            "rss_max_mb": round(self.rss_max_mb, 1),
            "rss_end_mb": round(self.rss_end_mb, 1),
            "rss_slope_second_half_mb_per_hour": round(self.slope_mb_per_hour, 2),
            "runs_by_status": self.runs_by_status,
            "exit_code": self.exit_code,
            "samples": [[round(s, 1), round(r, 1), t] for s, r, t in self.samples],
        }

    def summary(self) -> list[str]:
        runs = sum(self.runs_by_status.values())
        return [
            f"footprint: {self.params.databases} databases x {len(JOBS)} jobs every {self.params.every_seconds} s "
            f"for {self.params.minutes:g} min: {runs} runs",
            f"  threads at most {self.max_threads}; RSS {self.rss_start_mb:.0f} MB at start, "
            f"{self.rss_max_mb:.0f} MB at most, {self.rss_end_mb:.0f} MB at the end; "
            f"second-half slope {self.slope_mb_per_hour:+.1f} MB/hour",
        ]


def run(params: Params) -> Result:
    result = Result(params)
    with common.throwaway_cluster(SETTINGS) as cluster, tempfile.TemporaryDirectory(prefix="dbmaint-fp-") as tmp:
        work = Path(tmp)
        lines = []
        common.say(NAME, f"creating {params.databases} databases")
        for i in range(params.databases):
            name = f"fp_{i}"
            dsn = common.create_database(cluster, name)
            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION pg_stat_statements")
                conn.execute("CREATE TABLE t (id int PRIMARY KEY, v text)")
                conn.execute("INSERT INTO t SELECT g, 'v' FROM generate_series(1, 2000) g")
            lines += ["[[databases]]", f'name = "{name}"', f'dsn = "{dsn}"']
        schedule = f"*/{params.every_seconds} * * * * *"
        for job in JOBS:
            lines += [f"[{job}]", f'schedule = "{schedule}"']
        (work / "config.toml").write_text("\n".join(lines) + "\n")
        state_url = f"sqlite:///{work / 'state.db'}"
        service = subprocess.Popen(
            [common.dbmaint_executable(), "run", "--config", str(work / "config.toml")],
            env={**common.dbmaint_env(state_url), "MALLOC_ARENA_MAX": "2"},  # as deploy/dbmaint.service sets it
            stdout=subprocess.DEVNULL,
            stderr=(work / "service.log").open("w"),
        )
        common.say(NAME, f"sampling the service for {params.minutes:g} min")
        started = time.monotonic()
        try:
            while time.monotonic() - started < params.minutes * 60:
                if service.poll() is not None:
                    raise common.BenchError(f"dbmaint run exited with {service.returncode}")
                result.samples.append((time.monotonic() - started, *_sample(service.pid)))
                time.sleep(params.sample_seconds)
        finally:
            service.send_signal(signal.SIGTERM)
            result.exit_code = service.wait(60)
        store = History(state_url)
        for run_record in store.recent_runs(limit=1_000_000):
            result.runs_by_status[run_record.status] = result.runs_by_status.get(run_record.status, 0) + 1
        store.close()
    return result


def _sample(pid: int) -> tuple[float, int]:
    rss_kb, threads = 0, 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
        elif line.startswith("Threads:"):
            threads = int(line.split()[1])
    return rss_kb / 1024, threads
