"""Running pgbench and reading what it measured: its summary, its per-second progress and per-transaction log.

The summary gives throughput and mean latency; tail latency needs the per-transaction log (--log), whose
lines are ``client_id transaction_no latency_us script_no epoch_s epoch_us``.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import common

_SUMMARY = {
    "tps": re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M),
    "latency_avg_ms": re.compile(r"^latency average = ([\d.]+) ms", re.M),
    "transactions": re.compile(r"^number of transactions actually processed: (\d+)", re.M),
    "failed": re.compile(r"^number of failed transactions: (\d+)", re.M),
}
_PROGRESS = re.compile(r"^progress: ([\d.]+) s, ([\d.]+) tps, lat ([\d.]+|NaN) ms", re.M)


@dataclass(frozen=True)
class Sample:
    """One transaction: when it completed (Unix time) and how long it took."""

    completed: float
    latency_ms: float


@dataclass(frozen=True)
class Interval:
    """One line of pgbench -P output."""

    at_s: float
    tps: float
    latency_ms: float


@dataclass(frozen=True)
class Window:
    """Transactions that completed in a stretch of time."""

    seconds: float
    transactions: int
    tps: float
    p99_ms: float
    max_ms: float


@dataclass
class Measured:
    label: str
    tps: float
    latency_avg_ms: float
    transactions: int
    failed: int
    intervals: list[Interval]
    samples: list[Sample]

    @property
    def first_completed(self) -> float:
        return self.samples[0].completed if self.samples else math.nan

    @property
    def p99_ms(self) -> float:
        return common.percentile([s.latency_ms for s in self.samples], 0.99)

    @property
    def max_ms(self) -> float:
        return max((s.latency_ms for s in self.samples), default=math.nan)

    @property
    def worst_interval_latency_ms(self) -> float:
        """The highest mean latency of any one -P interval: a stall shows here even when the total hides it."""
        return max((i.latency_ms for i in self.intervals), default=math.nan)

    @property
    def lowest_interval_tps(self) -> float:
        # The last interval can be a fraction of a second, with a meaningless rate: leave it out.
        return min((i.tps for i in self.intervals[:-1]), default=math.nan)

    def window(self, start_offset: float, end_offset: float) -> Window:
        """Transactions completed between the two offsets (seconds after this run's first completion)."""
        start, end = self.first_completed + start_offset, self.first_completed + end_offset
        inside = [s.latency_ms for s in self.samples if start <= s.completed <= end]
        length = max(end - start, 1e-9)
        return Window(
            length, len(inside), len(inside) / length, common.percentile(inside, 0.99), max(inside, default=math.nan)
        )


@dataclass(frozen=True)
class Load:
    """What pgbench runs: the same for every run of a benchmark, so runs compare."""

    script: str  # a built-in: tpcb-like, simple-update or select-only
    clients: int
    threads: int
    seconds: int

    def args(self, pgbench: str, connection: Sequence[str], database: str, log_prefix: Path | None) -> list[str]:
        args = [pgbench, *connection, "-b", self.script, "-c", str(self.clients), "-j", str(self.threads)]
        args += ["-T", str(self.seconds), "-P", "1"]
        if log_prefix is not None:
            args += ["--log", f"--log-prefix={log_prefix}"]
        return [*args, database]


class Running:
    """A pgbench started in the background; ``finish()`` waits for it and reads its results."""

    def __init__(self, label: str, args: Sequence[str], workdir: Path, log_prefix: Path | None) -> None:
        self.label = label
        self.workdir = workdir
        self.log_prefix = log_prefix
        # Files, not pipes: nobody reads a pipe while pgbench runs, and a full pipe would stall it.
        self._stdout = (workdir / f"{label}.out").open("w")
        self._stderr = (workdir / f"{label}.err").open("w")
        self.started = time.time()
        self.process = subprocess.Popen(list(args), stdout=self._stdout, stderr=self._stderr, cwd=workdir)

    def stop(self) -> None:
        """End it early (the benchmark failed elsewhere): it is ours, and would outlive us otherwise."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._stdout.close()
        self._stderr.close()

    def finish(self, timeout: float) -> Measured:
        try:
            returncode = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise common.BenchError(f"pgbench ({self.label}) still running after {timeout:.0f} s") from None
        finally:
            self._stdout.close()
            self._stderr.close()
        stdout = (self.workdir / f"{self.label}.out").read_text()
        stderr = (self.workdir / f"{self.label}.err").read_text()
        if returncode != 0:
            raise common.BenchError(f"pgbench ({self.label}) exited with {returncode}: {stderr.strip()[-500:]}")
        return parse(self.label, stdout, stderr, read_log(self.log_prefix) if self.log_prefix else [])


def run(label: str, load: Load, pgbench: str, connection: Sequence[str], database: str, workdir: Path) -> Measured:
    prefix = workdir / f"{label}-tx"
    running = Running(label, load.args(pgbench, connection, database, prefix), workdir, prefix)
    return running.finish(timeout=load.seconds + 120)


def parse(label: str, stdout: str, stderr: str, samples: list[Sample]) -> Measured:
    values: dict[str, float] = {}
    for key, pattern in _SUMMARY.items():
        match = pattern.search(stdout)
        if match is None:
            raise common.BenchError(f"pgbench ({label}): no '{key}' in its summary")
        values[key] = float(match.group(1))
    intervals = [
        Interval(float(m.group(1)), float(m.group(2)), float(m.group(3)) if m.group(3) != "NaN" else math.nan)
        for m in _PROGRESS.finditer(stderr)
    ]
    return Measured(
        label, values["tps"], values["latency_avg_ms"], int(values["transactions"]), int(values["failed"]),
        intervals, samples,
    )  # fmt: skip


def read_log(prefix: Path) -> list[Sample]:
    """Every transaction from every thread's log file, in completion order."""
    samples: list[Sample] = []
    for path in sorted(prefix.parent.glob(prefix.name + ".*")):
        for line in path.read_text().splitlines():
            fields = line.split()
            if len(fields) < 6 or not fields[2].isdigit():
                continue  # a failed or skipped transaction has a word instead of a latency
            samples.append(Sample(int(fields[4]) + int(fields[5]) / 1e6, int(fields[2]) / 1000))
    samples.sort(key=lambda s: s.completed)
    return samples
