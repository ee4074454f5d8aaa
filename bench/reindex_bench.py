"""Benchmark 2: what ``dbmaint reindex`` (REINDEX CONCURRENTLY) costs a pgbench load running beside it.

pgbench_accounts_pkey is bloated to about half empty, then the same pgbench load runs three times:
alone, with dbmaint rebuilding the index part-way through, and alone again. The baseline is the mean of
the two runs alone, which cancels a slow drift of the machine. Besides the whole-run figures, the
loaded run's stretch of time while the rebuild ran is compared with the same stretch of the runs alone.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psycopg

from bench import common, pgbench
from dbmaint.pg.cluster import Cluster

NAME = "reindex"
DATABASE = "pgbench"
INDEX = "public.pgbench_accounts_pkey"
# Deterministic figures: autovacuum would visit pgbench's tables at moments of its own choosing.
SETTINGS = {"autovacuum": "off"}

# Low enough thresholds that the bloated index qualifies at any scale the benchmark uses.
CONFIG = """\
# Written by bench/reindex_bench.py.
[reindex]
min_size = "1MB"
min_bloat_ratio = 0.2

[state]
url = "{state_url}"
"""


@dataclass(frozen=True)
class Params:
    scale: int  # pgbench -s: 100,000 accounts per unit
    seconds: int  # length of each pgbench run
    reindex_after: float  # seconds into the loaded run when dbmaint starts
    clients: int = 4
    threads: int = 2  # one per core
    # tpcb-like: the standard mixed read/write load, whose UPDATEs of pgbench_accounts go through the
    # very index being rebuilt (each transaction looks up one account by its key).
    script: str = "tpcb-like"

    @property
    def load(self) -> pgbench.Load:
        return pgbench.Load(self.script, self.clients, self.threads, self.seconds)


FULL = Params(scale=20, seconds=20, reindex_after=5)
QUICK = Params(scale=5, seconds=8, reindex_after=2)


@dataclass(frozen=True)
class Sizes:
    index_clean: int  # right after pgbench -i
    index_bloated: int
    table_bloated: int


@dataclass(frozen=True)
class Rebuild:
    """What dbmaint reported for the index, and when it ran relative to the loaded pgbench run."""

    status: str
    detail: str | None
    reason: str | None
    statement_seconds: float | None  # the REINDEX statement alone, as dbmaint timed it
    job_seconds: float  # dbmaint's job from its own start to finish: all but the process startup
    wall_seconds: float  # the whole dbmaint process, Python startup included
    size_before: int | None
    size_after: int | None
    start_offset: float  # seconds after the loaded run's first transaction
    end_offset: float
    within_load: bool  # finished before pgbench did, so the whole rebuild was under load
    report: dict[str, Any]


@dataclass(frozen=True)
class Figures:
    """One pgbench run, with its figures for the stretch of time the rebuild took."""

    label: str
    tps: float
    latency_avg_ms: float
    p99_ms: float
    max_ms: float
    worst_interval_latency_ms: float
    lowest_interval_tps: float
    transactions: int
    failed: int
    window: pgbench.Window

    @classmethod
    def of(cls, run: pgbench.Measured, rebuild: Rebuild) -> Figures:
        return cls(
            run.label, run.tps, run.latency_avg_ms, run.p99_ms, run.max_ms, run.worst_interval_latency_ms,
            run.lowest_interval_tps, run.transactions, run.failed,
            run.window(rebuild.start_offset, rebuild.end_offset),
        )  # fmt: skip


@dataclass
class Result:
    params: Params
    commands: dict[str, str]
    setup_seconds: dict[str, float]
    sizes: Sizes
    rebuild: Rebuild
    runs: list[Figures]  # alone, with the rebuild, alone again
    invalid_indexes_after: list[str]

    @property
    def alone(self) -> list[Figures]:
        return [self.runs[0], self.runs[2]]

    @property
    def loaded(self) -> Figures:
        return self.runs[1]

    def ratios(self) -> dict[str, float]:
        """Loaded run over the mean of the runs alone: 1.0 means the rebuild cost nothing."""
        base, load = self.alone, self.loaded

        def over(value: float, values: list[float]) -> float:
            return common.ratio(value, common.mean(values))

        return {
            "tps": over(load.tps, [r.tps for r in base]),
            "latency_avg": over(load.latency_avg_ms, [r.latency_avg_ms for r in base]),
            "latency_p99": over(load.p99_ms, [r.p99_ms for r in base]),
            "during_rebuild_tps": over(load.window.tps, [r.window.tps for r in base]),
            "during_rebuild_p99": over(load.window.p99_ms, [r.window.p99_ms for r in base]),
        }

    @property
    def checks(self) -> dict[str, bool]:
        r = self.rebuild
        return {
            "reindex_done": r.status == "done",
            "index_shrank": r.size_before is not None and r.size_after is not None and r.size_after < r.size_before,
            "rebuild_within_load": r.within_load,
            "no_invalid_index_left": not self.invalid_indexes_after,
            "no_failed_transactions": all(f.failed == 0 for f in self.runs),
        }

    @property
    def passed(self) -> bool:
        # Whether the rebuild fit inside the load is reported, not failed on: the figures still stand.
        return all(ok for name, ok in self.checks.items() if name != "rebuild_within_load")

    def to_json(self) -> dict[str, Any]:
        rebuild = asdict(self.rebuild)
        return {
            "params": asdict(self.params),
            "commands": self.commands,
            "setup_seconds": {k: round(v, 2) for k, v in self.setup_seconds.items()},
            "sizes": asdict(self.sizes),
            "rebuild": rebuild,
            "runs": [asdict(f) for f in self.runs],
            "ratios_loaded_over_alone": {k: common.rounded(v) for k, v in self.ratios().items()},
            "invalid_indexes_after": self.invalid_indexes_after,
            "checks": self.checks,
            "check_passed": self.passed,
        }

    def summary(self) -> list[str]:
        p, r, ratios = self.params, self.rebuild, self.ratios()
        lines = [
            f"REINDEX UNDER LOAD: pgbench -s {p.scale}, -b {p.script} -c {p.clients} -j {p.threads} -T {p.seconds}; "
            f"{INDEX} {common.format_bytes(self.sizes.index_clean)} when built, "
            f"{common.format_bytes(self.sizes.index_bloated)} bloated",
            f"  {'run':<16}{'tps':>9}{'avg ms':>9}{'p99 ms':>9}{'max ms':>9}{'worst 1s avg':>14}"
            f"{'| rebuild stretch: tps':>23}{'p99 ms':>9}",
        ]
        for f in self.runs:
            lines.append(
                f"  {f.label:<16}{f.tps:>9.0f}{f.latency_avg_ms:>9.2f}{f.p99_ms:>9.2f}{f.max_ms:>9.1f}"
                f"{f.worst_interval_latency_ms:>14.2f}{f.window.tps:>23.0f}{f.window.p99_ms:>9.2f}"
            )
        lines += [
            f"  loaded / alone: tps {ratios['tps']:.3f}, avg latency {ratios['latency_avg']:.3f}, "
            f"p99 {ratios['latency_p99']:.3f}; during the rebuild: tps {ratios['during_rebuild_tps']:.3f}, "
            f"p99 {ratios['during_rebuild_p99']:.3f}",
            f"  rebuild: {r.status}, REINDEX {_seconds(r.statement_seconds)}, dbmaint job {r.job_seconds:.2f} s, "
            f"dbmaint process {r.wall_seconds:.2f} s "
            f"(from {r.start_offset:.1f} s to {r.end_offset:.1f} s into the run), "
            f"{common.format_bytes(r.size_before)} -> {common.format_bytes(r.size_after)}",
            self._check_line(),
        ]
        return lines

    def _check_line(self) -> str:
        checks = self.checks
        verdict = "PASS" if self.passed else "FAIL"
        failed = [name for name, ok in checks.items() if not ok]
        detail = f" (not: {', '.join(failed)})" if failed else ""
        return (
            f"  reindex check: {verdict}: {INDEX} status {self.rebuild.status!r} in dbmaint's JSON, "
            f"index smaller afterwards, no invalid index left, no failed transaction{detail}"
        )


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


# ---------------------------------------------------------------------------------------------------- setup


def relation_size(dsn: str, name: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT pg_catalog.pg_relation_size(%s::regclass)", (name,)).fetchone()
    return int(row[0]) if row else 0


def bloat(dsn: str) -> None:
    """Leave pgbench_accounts_pkey about half empty, with every account still there for pgbench.

    pgbench -i fills the table's pages completely (fillfactor 100), so no UPDATE can be HOT: every row
    gets a second version on another page and a second index entry. VACUUM removes the old entries, but
    a btree gives back only completely empty pages, so the leaves stay about half full.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("UPDATE pgbench_accounts SET abalance = abalance")
        conn.execute("VACUUM ANALYZE pgbench_accounts")
        conn.execute("CHECKPOINT")


def invalid_indexes(dsn: str) -> list[str]:
    """Invalid indexes: what a failed REINDEX CONCURRENTLY leaves behind (_ccnew)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT indexrelid::regclass::text FROM pg_catalog.pg_index WHERE NOT indisvalid ORDER BY 1"
        ).fetchall()
    return [str(row[0]) for row in rows]


@dataclass(frozen=True)
class Tools:
    pgbench_bin: str
    connection: list[str]
    dbmaint: list[str]
    dbmaint_env: dict[str, str]
    workdir: Path

    @classmethod
    def prepare(cls, cluster: Cluster, dsn: str, workdir: Path) -> Tools:
        config = workdir / "config.toml"
        config.write_text(CONFIG.format(state_url=f"sqlite:///{workdir / 'state.db'}"))
        return cls(
            pgbench_bin=common.program(cluster, "pgbench"),
            connection=common.client_args(cluster),
            dbmaint=[common.dbmaint_executable(), "reindex", "--config", str(config), "--dsn", dsn, "--format", "json"],
            dbmaint_env=common.dbmaint_env(),  # the state store comes from the config file
            workdir=workdir,
        )

    def pgbench_init(self, scale: int) -> float:
        args = [self.pgbench_bin, *self.connection, "-i", "-q", "-s", str(scale), DATABASE]
        return common.run_timed(args, cwd=self.workdir).check("pgbench -i").seconds

    def pgbench_run(self, label: str, load: pgbench.Load) -> pgbench.Measured:
        return pgbench.run(label, load, self.pgbench_bin, self.connection, DATABASE, self.workdir)

    def dbmaint_reindex(self, *extra: str) -> tuple[common.Timed, dict[str, Any]]:
        timed = common.run_timed([*self.dbmaint, *extra], env=self.dbmaint_env, cwd=self.workdir)
        try:
            document: dict[str, Any] = json.loads(timed.stdout)
        except json.JSONDecodeError:
            timed.check("dbmaint reindex")  # a non-zero exit explains more than the JSON error would
            raise common.BenchError(f"dbmaint reindex printed no JSON: {timed.stdout[:300]!r}") from None
        return timed, document


def _index_action(document: dict[str, Any]) -> dict[str, Any] | None:
    return next((a for a in document.get("actions", []) if a.get("object") == INDEX), None)


def check_qualifies(tools: Tools) -> None:
    """A dry run must plan the rebuild; otherwise the loaded run would measure nothing."""
    _, document = tools.dbmaint_reindex("--dry-run")
    action = _index_action(document)
    if action is None or action.get("status") != "planned":
        raise common.BenchError(f"dbmaint does not plan to rebuild {INDEX}: {json.dumps(document)[:500]}")
    common.say(NAME, f"dry run plans: {action['statement']} ({action['reason']})")


# ------------------------------------------------------------------------------------------------------ run


def loaded_run(tools: Tools, params: Params) -> tuple[pgbench.Measured, Rebuild]:
    """pgbench with dbmaint reindex started ``reindex_after`` seconds in, while pgbench goes on."""
    prefix = tools.workdir / "with-reindex-tx"
    args = params.load.args(tools.pgbench_bin, tools.connection, DATABASE, prefix)
    running = pgbench.Running("with-reindex", args, tools.workdir, prefix)
    time.sleep(max(0.0, running.started + params.reindex_after - time.time()))
    started = time.time()
    try:
        timed, document = tools.dbmaint_reindex()
    except BaseException:
        running.stop()
        raise
    ended = time.time()
    within = running.process.poll() is None
    measured = running.finish(timeout=params.seconds + 120)
    action = _index_action(document) or {}
    rebuild = Rebuild(
        status=str(action.get("status", f"absent (run status {document.get('status')!r})")),
        detail=action.get("detail"),
        reason=action.get("reason"),
        statement_seconds=action.get("duration_s"),
        job_seconds=common.job_seconds(document),
        wall_seconds=timed.seconds,
        size_before=action.get("size_before"),
        size_after=action.get("size_after"),
        start_offset=started - measured.first_completed,
        end_offset=ended - measured.first_completed,
        within_load=within,
        report=document,
    )
    return measured, rebuild


def alone(tools: Tools, dsn: str, label: str, params: Params) -> pgbench.Measured:
    common.checkpoint(dsn)  # every run starts with no dirty buffers left over from the one before
    common.say(NAME, f"pgbench run {label} ({params.seconds} s)")
    return tools.pgbench_run(label, params.load)


def run(params: Params) -> Result:
    setup: dict[str, float] = {}
    with common.throwaway_cluster(SETTINGS) as cluster, tempfile.TemporaryDirectory(prefix="dbmaint-bench-") as tmp:
        dsn = common.create_database(cluster, DATABASE)
        tools = Tools.prepare(cluster, dsn, Path(tmp))

        common.say(NAME, f"pgbench -i -s {params.scale}")
        setup["pgbench_init"] = tools.pgbench_init(params.scale)
        clean = relation_size(dsn, INDEX)
        common.say(NAME, "bloating the primary key index (UPDATE every account, VACUUM)")
        started = time.monotonic()
        bloat(dsn)
        setup["bloat"] = time.monotonic() - started
        sizes = Sizes(clean, relation_size(dsn, INDEX), relation_size(dsn, "public.pgbench_accounts"))
        check_qualifies(tools)

        # Untimed: brings the tables into the caches, so the first measured run is not the cold one.
        tools.pgbench_run("warm-up", pgbench.Load(params.script, params.clients, params.threads, params.seconds // 4))
        before = alone(tools, dsn, "alone-before", params)
        common.checkpoint(dsn)
        common.say(
            NAME, f"pgbench run with-reindex ({params.seconds} s), dbmaint reindex after {params.reindex_after} s"
        )
        loaded, rebuild = loaded_run(tools, params)
        common.say(NAME, f"dbmaint reindex: {rebuild.status} in {rebuild.wall_seconds:.2f} s")
        after = alone(tools, dsn, "alone-after", params)
        invalid = invalid_indexes(dsn)
        commands = {
            "pgbench": " ".join(params.load.args(tools.pgbench_bin, tools.connection, DATABASE, Path("<tmp>/tx"))),
            "dbmaint": " ".join(tools.dbmaint).replace(tmp, "<tmp>"),
            "config": CONFIG.format(state_url="sqlite:///<tmp>/state.db"),
        }
    runs = [Figures.of(m, rebuild) for m in (before, loaded, after)]
    return Result(params, commands, setup, sizes, rebuild, runs, invalid)
