"""Benchmark: the index advisor on TPC-H, with the default configuration, as a new user would run it.

The data comes from ``tpchgen-cli`` (scale factor 1: 6M line items, about 1.4 GB with the primary keys),
loaded into a throwaway cluster with PostgreSQL's default settings. The 22 queries, with the
specification's validation parameters, run once each with ``statement_timeout = 60s``: that is the
workload pg_stat_statements records (q17 and q20 are cancelled, so only the server log holds them). Then
``dbmaint advise --log <server log> --write-migration`` with nothing but a state store configured,
``alembic upgrade head``, and every query ``rounds`` times with the indexes; ``alembic downgrade base`` and
``rounds - 1`` more runs without them. A query's "before" is the median of its runs without the indexes
(the recorded run included), its "after" the median with them; a timeout counts as the timeout.
"""

from __future__ import annotations

import json
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from bench import common, tpch
from bench.advisor_bench import Tools, index_facts, quiet_session

NAME = "tpch"
DATABASE = "tpch"
SETTINGS = {
    "autovacuum": "off",  # the statistics are those of the ANALYZE after the load, for every run
    "shared_preload_libraries": "'pg_stat_statements'",
    "log_line_prefix": "'%m [%p] %q%u@%d '",  # Debian's default: what a DBA's server log looks like
}
TARGETS = {
    "slow_queries_finish": "q17 and q20 no longer time out",
    "others_not_slower": "the other 20 queries not slower in total (before / after >= 1.0)",
    "no_query_much_slower": "no query more than 1.5x slower",
    "indexes_at_most_100_mb": "at most 100 MB of indexes",
}
SLOW = ("q17", "q20")


@dataclass(frozen=True)
class Params:
    scale: float
    rounds: int
    timeout_s: float


FULL = Params(scale=1.0, rounds=3, timeout_s=60.0)
QUICK = Params(scale=0.05, rounds=1, timeout_s=60.0)


@dataclass
class QueryResult:
    name: str
    before_ms: list[float] = field(default_factory=list)  # the timeout's length for a cancelled run
    after_ms: list[float] = field(default_factory=list)
    before_timeouts: int = 0
    after_timeouts: int = 0

    @property
    def before(self) -> float:
        return common.median(self.before_ms)

    @property
    def after(self) -> float:
        return common.median(self.after_ms)

    @property
    def speedup(self) -> float:
        return common.ratio(self.before, self.after)


@dataclass
class Result:
    params: Params
    load_seconds: float
    database_bytes: int
    queries: dict[str, QueryResult]
    advise_seconds: float
    advice: dict[str, Any]
    indexes: dict[str, tuple[int, bool, int]]  # name -> (bytes, valid, scans)
    upgrade_seconds: float

    @property
    def index_bytes(self) -> int:
        return sum(size for size, _, _ in self.indexes.values())

    @property
    def others_ratio(self) -> float:
        others = [q for name, q in self.queries.items() if name not in SLOW]
        return common.ratio(sum(q.before for q in others), sum(q.after for q in others))

    @property
    def checks(self) -> dict[str, bool]:
        return {
            "slow_queries_finish": all(self.queries[name].after_timeouts == 0 for name in SLOW),
            "others_not_slower": self.others_ratio >= 1.0,
            "no_query_much_slower": all(q.speedup >= 1 / 1.5 for q in self.queries.values()),
            "indexes_at_most_100_mb": self.index_bytes <= 100 * 1024 * 1024,
            "every_query_planned": not any(
                reason.startswith(("cannot be planned", "not valid SQL"))
                for reason in self.advice.get("workload", {}).get("left_out", {})
            ),
        }

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "params": asdict(self.params),
            "targets": TARGETS,
            "load_seconds": round(self.load_seconds, 1),
            "database_bytes": self.database_bytes,
            "queries": {
                name: {
                    "before_ms": common.rounded(q.before, 1),
                    "after_ms": common.rounded(q.after, 1),
                    "speedup": common.rounded(q.speedup),
                    "before_runs_ms": [round(v, 1) for v in q.before_ms],
                    "after_runs_ms": [round(v, 1) for v in q.after_ms],
                    "before_timeouts": q.before_timeouts,
                    "after_timeouts": q.after_timeouts,
                }
                for name, q in self.queries.items()
            },
            "others_before_over_after": common.rounded(self.others_ratio),
            "indexes": {name: {"bytes": b, "valid": v, "scans": s} for name, (b, v, s) in self.indexes.items()},
            "index_bytes": self.index_bytes,
            "advise_seconds": round(self.advise_seconds, 1),
            "alembic_upgrade_seconds": round(self.upgrade_seconds, 1),
            "advice_workload": self.advice.get("workload"),
            "recommendations": [
                {k: r.get(k) for k in ("definition", "estimated_size_bytes", "reason")}
                for r in self.advice.get("recommendations", [])
            ],
            "checks": self.checks,
        }

    def summary(self) -> list[str]:
        slow = ", ".join(
            f"{name} {_seconds(self.queries[name].before)} -> {_seconds(self.queries[name].after)}" for name in SLOW
        )
        worst = min(self.queries.values(), key=lambda q: q.speedup)
        return [
            f"TPC-H SF{self.params.scale:g}: {len(self.indexes)} index(es), {common.format_bytes(self.index_bytes)}"
            f" built (database {common.format_bytes(self.database_bytes)})",
            f"  {slow}; the other 20: before/after {self.others_ratio:.2f};"
            f" slowest change {worst.name} x{worst.speedup:.2f}",
            f"  advise {self.advise_seconds:.1f} s; checks: "
            + ", ".join(f"{k} {'ok' if v else 'FAILED'}" for k, v in self.checks.items()),
        ]


def _seconds(ms: float) -> str:
    return f"{ms / 1000:.1f} s"


def run_queries(dsn: str, results: dict[str, QueryResult], timeout_s: float, *, after: bool) -> None:
    """Every query once, in order, each in a fresh transaction, with the timeout."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"SET statement_timeout = '{int(timeout_s * 1000)}ms'")
        for name, query in tpch.QUERIES.items():
            result = results.setdefault(name, QueryResult(name))
            started = time.perf_counter()
            timed_out = False
            try:
                conn.execute(query).fetchall()
            except psycopg.errors.QueryCanceled:
                timed_out = True
            ms = timeout_s * 1000 if timed_out else (time.perf_counter() - started) * 1000
            (result.after_ms if after else result.before_ms).append(ms)
            if timed_out:
                if after:
                    result.after_timeouts += 1
                else:
                    result.before_timeouts += 1
            common.say(NAME, f"{'after ' if after else 'before'} {name}: {'timeout' if timed_out else f'{ms:,.0f} ms'}")


def run(params: Params) -> Result:
    data = tpch.generate(Path(tempfile.gettempdir()) / f"dbmaint-tpch-sf{params.scale:g}", params.scale)
    with common.throwaway_cluster(SETTINGS) as cluster, tempfile.TemporaryDirectory(prefix="dbmaint-tpch-") as work:
        dsn = common.create_database(cluster, DATABASE)
        common.say(NAME, f"loading TPC-H SF{params.scale:g} from {data}")
        started = time.monotonic()
        with quiet_session(dsn) as conn:
            conn.execute("CREATE EXTENSION pg_stat_statements")
            conn.execute("CREATE EXTENSION hypopg")
            tpch.create_schema(conn)
            tpch.load(conn, data)
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")
            conn.execute("SELECT pg_stat_statements_reset()")
            database_bytes = int(conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])  # type: ignore[index]
        load_seconds = time.monotonic() - started

        results: dict[str, QueryResult] = {}
        common.say(NAME, "the workload: each query once, statement_timeout 60s")
        run_queries(dsn, results, params.timeout_s, after=False)

        tools = Tools.prepare(Path(work))
        (tools.workdir / "tpch.toml").write_text(f'[state]\nurl = "sqlite:///{tools.workdir / "state.db"}"\n')
        common.say(NAME, "dbmaint advise --log <server log> --write-migration (default configuration)")
        timed, advice = tools.advise(
            "tpch.toml", dsn, "--log", str(cluster.logfile), "--write-migration", "--versions-dir", str(tools.versions)
        )
        names = [r["name"] for r in advice.get("recommendations", [])]
        common.say(NAME, f"advise: {len(names)} index(es) in {timed.seconds:.1f} s: {', '.join(names)}")
        # Rounds alternate, with the indexes then without them, so that a slow stretch of this shared
        # machine weighs on both sides alike (all the runs with the indexes in one stretch made queries no
        # index touches 10-30% "slower"). The workload's own run is the first without.
        upgrade_seconds = 0.0
        indexes: dict[str, tuple[int, bool, int]] = {}
        for round_number in range(params.rounds):
            if advice.get("migration"):
                upgrade_seconds = max(upgrade_seconds, tools.run_alembic(dsn, "upgrade", "head").seconds)
                common.checkpoint(dsn)
            run_queries(dsn, results, params.timeout_s, after=True)
            if round_number == params.rounds - 1:
                indexes = index_facts(dsn, names)
            if advice.get("migration"):
                tools.run_alembic(dsn, "downgrade", "base")
            if round_number < params.rounds - 1:
                run_queries(dsn, results, params.timeout_s, after=False)
    return Result(params, load_seconds, database_bytes, results, timed.seconds, advice, indexes, upgrade_seconds)


if __name__ == "__main__":  # python -m bench.tpch_bench [--quick]: this benchmark alone
    import sys

    result = run(QUICK if "--quick" in sys.argv else FULL)
    print(json.dumps(common.json_ready(result.to_json()), indent=2))
    print("\n".join(result.summary()), file=sys.stderr)
