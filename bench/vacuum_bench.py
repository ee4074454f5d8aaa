"""Benchmark 1: need-based ``dbmaint vacuum`` against ``vacuumdb --analyze`` on a database in steady state.

Many tables, few of them with real work to do: the nightly case dbmaint is for. vacuumdb vacuums and
analyzes every table; dbmaint should touch only the dirty ones and leave them just as clean. Both face
identical work: the same dirt is re-created on the same tables before every timed run, and the pair is
repeated with the order rotating, so a warm cache or a drifting machine favours none. A third
command, the floor, is the least any need-based vacuum in Python can take: what dbmaint costs beyond it is its own.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import class_row

from bench import common
from dbmaint.pg.cluster import Cluster

NAME = "vacuum"
DATABASE = "vacuumbench"
# autovacuum would clean the dirty tables on its own schedule, racing the tools being measured.
SETTINGS = {"autovacuum": "off"}
LOAD_WORKERS = 2  # one per core
SPEEDUP_TARGET = 8.0  # issue 13: at least 8x less wall time than vacuumdb --analyze
TOOLS = ("vacuumdb", "dbmaint", "floor")

# The least a need-based vacuum in Python can take: start Python, import psycopg, connect, one catalog read,
# VACUUM (ANALYZE) the tables with dead rows one after the other. dbmaint over this is its own cost.
FLOOR_SCRIPT = '''\
"""The floor of a need-based vacuum in Python (bench/vacuum_bench.py)."""

import sys

import psycopg
from psycopg import sql

DIRTY = "SELECT schemaname, relname FROM pg_catalog.pg_stat_user_tables WHERE n_dead_tup > 0"

with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    for schema, name in conn.execute(DIRTY).fetchall():
        conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(sql.Identifier(schema, name)))
'''


@dataclass(frozen=True)
class Params:
    tables: int
    rows: int  # per table
    dirty: int  # tables given real work before each timed run
    rounds: int  # timed runs of each tool, the order rotating


FULL = Params(tables=500, rows=10_000, dirty=10, rounds=3)  # the size
QUICK = Params(tables=100, rows=5_000, dirty=2, rounds=2)


@dataclass(frozen=True)
class TableState:
    """One dirty table after a run, from pg_stat_user_tables."""

    name: str
    n_dead_tup: int
    n_mod_since_analyze: int
    vacuumed: bool  # last_vacuum is after the run started
    analyzed: bool  # last_analyze is after the run started

    @property
    def clean(self) -> bool:
        return self.n_dead_tup == 0 and self.vacuumed and self.analyzed


@dataclass(frozen=True)
class Touched:
    """How many of all the tables a run vacuumed and analyzed."""

    vacuumed: int
    analyzed: int


@dataclass
class Run:
    tool: str  # "vacuumdb", "dbmaint" or "floor"
    round: int
    position: int  # 1 when it went first in its round
    seconds: float
    dead_rows_before: int  # over the dirty tables, just before the run
    touched: Touched
    dirty_after: list[TableState]
    dbmaint_actions: dict[str, int] = field(default_factory=dict)  # status -> count, dbmaint only
    dbmaint_job_seconds: float | None = None  # dbmaint's own start-to-finish: the run less process startup

    @property
    def clean(self) -> bool:
        return all(t.clean for t in self.dirty_after)


@dataclass
class Result:
    params: Params
    commands: dict[str, str]
    setup_seconds: dict[str, float]
    steady_state_plan: int  # statements dbmaint planned right after the untimed vacuumdb (expect 0)
    runs: list[Run]

    def seconds(self, tool: str) -> list[float]:
        return [r.seconds for r in self.runs if r.tool == tool]

    @property
    def speedup(self) -> float:
        return common.ratio(common.median(self.seconds("vacuumdb")), common.median(self.seconds("dbmaint")))

    @property
    def over_floor(self) -> float:
        """dbmaint / the floor script: what dbmaint itself costs beyond what any Python tool pays."""
        return common.ratio(common.median(self.seconds("dbmaint")), common.median(self.seconds("floor")))

    @property
    def job_seconds(self) -> list[float]:
        return [r.dbmaint_job_seconds for r in self.runs if r.dbmaint_job_seconds is not None]

    @property
    def paired_speedups(self) -> list[float]:
        """vacuumdb/dbmaint within each round: the ratio least disturbed by drift across rounds."""
        by_round: dict[int, dict[str, float]] = {}
        for r in self.runs:
            by_round.setdefault(r.round, {})[r.tool] = r.seconds
        return [
            common.ratio(pair["vacuumdb"], pair["dbmaint"])
            for pair in by_round.values()
            if {"vacuumdb", "dbmaint"} <= pair.keys()
        ]

    @property
    def passed(self) -> bool:
        # Dirt that did not show in the statistics would make "clean afterwards" prove nothing.
        return bool(self.runs) and all(r.clean and r.dead_rows_before > 0 for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        runs = [{**asdict(r), "clean": r.clean} for r in self.runs]
        return {
            "params": asdict(self.params),
            "commands": self.commands,
            "setup_seconds": {k: round(v, 2) for k, v in self.setup_seconds.items()},
            "steady_state_plan": self.steady_state_plan,
            "runs": runs,
            "median_seconds": {tool: common.rounded(common.median(self.seconds(tool))) for tool in TOOLS},
            "speedup_vacuumdb_over_dbmaint": common.rounded(self.speedup, 2),
            "speedup_vacuumdb_over_floor": common.rounded(
                common.ratio(common.median(self.seconds("vacuumdb")), common.median(self.seconds("floor"))), 2
            ),
            "dbmaint_over_floor": common.rounded(self.over_floor, 2),
            "paired_speedups": [common.rounded(s, 2) for s in self.paired_speedups],
            "speedup_target": SPEEDUP_TARGET,
            "target_met": self.speedup >= SPEEDUP_TARGET if self.full_size else None,
            "clean_check_passed": self.passed,
        }

    def summary(self) -> list[str]:
        p = self.params
        vdb, dbm, floor = self.seconds("vacuumdb"), self.seconds("dbmaint"), self.seconds("floor")
        paired = ", ".join(f"{s:.1f}x" for s in self.paired_speedups)
        dead = [r.dead_rows_before for r in self.runs]
        touched = {
            tool: {(r.touched.vacuumed, r.touched.analyzed) for r in self.runs if r.tool == tool} for tool in TOOLS
        }
        lines = [
            f"VACUUM: {p.tables} tables x {p.rows:,} rows, {p.dirty} dirty, {p.rounds} rounds (order rotating)",
            f"  dirt before each run: {_span(dead)} dead rows over the {p.dirty} dirty tables",
            f"  vacuumdb --analyze   median {common.median(vdb):6.2f} s   runs: {_list(vdb)}",
            f"  dbmaint vacuum       median {common.median(dbm):6.2f} s   runs: {_list(dbm)}",
            f"    of which dbmaint's job itself (its JSON's started_at..finished_at): median "
            f"{common.median(self.job_seconds):.2f} s; the rest is process startup",
            f"  floor (Python, psycopg, one catalog read, the VACUUMs) median {common.median(floor):6.2f} s   "
            f"runs: {_list(floor)}",
            f"  speedup vacuumdb/dbmaint: {self.speedup:.1f}x (median over median; per round: {paired}); "
            + self._target(),
            f"  vacuumdb/floor: {common.ratio(common.median(vdb), common.median(floor)):.1f}x (the most a serial pass "
            f"in Python can reach here); dbmaint/floor: {self.over_floor:.2f}",
            f"  tables vacuumed/analyzed per run: vacuumdb {_pairs(touched['vacuumdb'])}, "
            f"dbmaint {_pairs(touched['dbmaint'])}, floor {_pairs(touched['floor'])}",
            f"  steady state (before any dirt): dbmaint planned {self.steady_state_plan} statement(s)",
            self._clean_line(),
        ]
        return lines

    @property
    def full_size(self) -> bool:
        """The data the speed target is stated for (the number of rounds does not matter)."""
        p = self.params
        return (p.tables, p.rows, p.dirty) == (FULL.tables, FULL.rows, FULL.dirty)

    def _target(self) -> str:
        if not self.full_size:
            # At a smaller size dbmaint's fixed cost (Python startup) dominates: the target says nothing.
            return f"target >= {SPEEDUP_TARGET:.0f}x applies to the full size only"
        return f"target >= {SPEEDUP_TARGET:.0f}x: {'met' if self.speedup >= SPEEDUP_TARGET else 'NOT met'}"

    def _clean_line(self) -> str:
        verdict = "PASS" if self.passed else "FAIL"
        line = (
            f"  clean check: {verdict}: after each of the {len(self.runs)} runs, all {self.params.dirty} dirty tables "
            "have n_dead_tup = 0 and last_vacuum/last_analyze after the run started"
        )
        for run in self.runs:
            for table in run.dirty_after:
                if not table.clean:
                    line += (
                        f"\n    {run.tool} round {run.round}: {table.name} n_dead_tup={table.n_dead_tup} "
                        f"vacuumed={table.vacuumed} analyzed={table.analyzed}"
                    )
        return line


def _span(values: list[int]) -> str:
    low, high = min(values, default=0), max(values, default=0)
    return f"{low:,}" if low == high else f"{low:,} to {high:,}"


def _list(values: list[float]) -> str:
    return ", ".join(f"{v:.2f}" for v in values)


def _pairs(values: set[tuple[int, int]]) -> str:
    return ", ".join(f"{v}/{a}" for v, a in sorted(values))


def table_names(params: Params) -> list[str]:
    return [f"t{i:04d}" for i in range(params.tables)]


def dirty_names(params: Params) -> list[str]:
    """Spread over the whole range, so the dirty tables are not all neighbours in catalog order."""
    names = table_names(params)
    step = params.tables // params.dirty
    return [names[i * step] for i in range(params.dirty)]


# ---------------------------------------------------------------------------------------------------- setup


def _create_table(conn: common.Connection, name: str, rows: int) -> None:
    # Keys are added after the load: building an index once is much faster than maintaining it row by row.
    conn.execute(
        sql.SQL(
            "CREATE TABLE {t} (id integer NOT NULL, val integer NOT NULL, payload text NOT NULL);"
            "INSERT INTO {t} SELECT g, g, md5(g::text) FROM generate_series(1, {rows}) AS g;"
            "ALTER TABLE {t} ADD PRIMARY KEY (id);"
            "CREATE INDEX ON {t} (val);"
        ).format(t=sql.Identifier(name), rows=sql.Literal(rows))
    )


def load(dsn: str, params: Params) -> None:
    names = table_names(params)

    def worker(index: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            for name in names[index::LOAD_WORKERS]:
                _create_table(conn, name, params.rows)

    with ThreadPoolExecutor(LOAD_WORKERS) as pool:
        list(pool.map(worker, range(LOAD_WORKERS)))  # list() re-raises a worker's error here


def make_dirt(dsn: str, names: list[str], rows: int) -> None:
    """The same real work on the same tables every time: about 43% of each table's rows become dead.

    The UPDATE changes an indexed column, so it cannot be HOT: VACUUM has index entries to remove too.
    The deleted rows are inserted again so that every round starts from the same table contents.
    Closing the session flushes its pending statistics (PostgreSQL 15+ flushes them at session end at the
    latest), so both tools see the dead rows in pg_stat_user_tables.
    """
    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in names:
            t = sql.Identifier(name)
            conn.execute(sql.SQL("UPDATE {} SET val = val + 1 WHERE id % 3 = 0").format(t))
            conn.execute(sql.SQL("DELETE FROM {} WHERE id % 10 = 1").format(t))
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT g, g, md5(g::text) FROM generate_series(1, {}) AS g WHERE g % 10 = 1")
                .format(t, sql.Literal(rows))
            )  # fmt: skip
    common.checkpoint(dsn)


# ------------------------------------------------------------------------------------------------ inspection


_STATES = sql.SQL(
    "SELECT relname AS name, n_dead_tup, n_mod_since_analyze,"
    "       coalesce(last_vacuum >= %(since)s, false) AS vacuumed,"
    "       coalesce(last_analyze >= %(since)s, false) AS analyzed"
    "  FROM pg_catalog.pg_stat_user_tables"
    " WHERE schemaname = 'public' AND relname = ANY(%(names)s)"
    " ORDER BY relname"
)
_DEAD = sql.SQL(
    "SELECT coalesce(sum(n_dead_tup), 0) FROM pg_catalog.pg_stat_user_tables"
    " WHERE schemaname = 'public' AND relname = ANY(%(names)s)"
)
_TOUCHED = sql.SQL(
    "SELECT count(*) FILTER (WHERE last_vacuum >= %(since)s) AS vacuumed,"
    "       count(*) FILTER (WHERE last_analyze >= %(since)s) AS analyzed"
    "  FROM pg_catalog.pg_stat_user_tables"
)


def inspect(dsn: str, names: list[str], since: datetime) -> tuple[list[TableState], Touched]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        # A statistics snapshot taken earlier in this session would hide what the run just reported.
        conn.execute("SELECT pg_catalog.pg_stat_clear_snapshot()")
        params = {"since": since, "names": names}
        with conn.cursor(row_factory=class_row(TableState)) as cur:
            states = cur.execute(_STATES, params).fetchall()
        with conn.cursor(row_factory=class_row(Touched)) as cur:
            touched = cur.execute(_TOUCHED, params).fetchone()
    assert touched is not None
    return states, touched


def dead_rows(dsn: str, names: list[str]) -> int:
    """Dead rows over ``names`` as the tools will see them: the dirt is there before each timed run."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(_DEAD, {"names": names}).fetchone()
    return int(row[0]) if row else 0


# ---------------------------------------------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tools:
    """The two commands under test, ready to run against the benchmark database."""

    vacuumdb: list[str]
    dbmaint: list[str]
    floor: list[str]
    dbmaint_env: dict[str, str]
    workdir: Path

    @classmethod
    def prepare(cls, cluster: Cluster, dsn: str, workdir: Path) -> Tools:
        # An explicit, empty configuration: dbmaint's defaults, whatever config.toml the machine may have.
        config = workdir / "config.toml"
        config.write_text("# dbmaint's defaults: the vacuum benchmark sets nothing\n")
        common.compile_bytecode()  # as installed: dbmaint's modules read from .pyc, not compiled at each start
        floor = workdir / "floor.py"
        floor.write_text(FLOOR_SCRIPT)
        return cls(
            vacuumdb=[common.program(cluster, "vacuumdb"), "--analyze", *common.client_args(cluster), "-d", DATABASE],
            dbmaint=[common.dbmaint_executable(), "vacuum", "--config", str(config), "--dsn", dsn, "--format", "json"],
            floor=[sys.executable, str(floor), dsn],
            dbmaint_env=common.dbmaint_env(state_url=f"sqlite:///{workdir / 'state.db'}"),
            workdir=workdir,
        )

    def run(self, tool: str) -> tuple[common.Timed, dict[str, Any] | None]:
        """The timed command, and dbmaint's JSON report (None for the others)."""
        if tool == "vacuumdb":
            return common.run_timed(self.vacuumdb, cwd=self.workdir).check("vacuumdb"), None
        if tool == "floor":
            return common.run_timed(self.floor, cwd=self.workdir).check("floor script"), None
        timed = common.run_timed(self.dbmaint, env=self.dbmaint_env, cwd=self.workdir).check("dbmaint vacuum")
        return timed, json.loads(timed.stdout)

    def dry_run_plan(self) -> int:
        """How many statements dbmaint would send now (also warms its state file and bytecode caches)."""
        timed = common.run_timed([*self.dbmaint, "--dry-run"], env=self.dbmaint_env, cwd=self.workdir)
        document = json.loads(timed.check("dbmaint vacuum --dry-run").stdout)
        return len(document["actions"])


def _action_counts(report: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for action in report["actions"]:
        counts[action["status"]] = counts.get(action["status"], 0) + 1
    return counts


def timed_run(tools: Tools, tool: str, dsn: str, params: Params, round_no: int, position: int) -> Run:
    dirty = dirty_names(params)
    make_dirt(dsn, dirty, params.rows)
    before = dead_rows(dsn, dirty)
    since = common.server_now(dsn)
    timed, report = tools.run(tool)
    states, touched = inspect(dsn, dirty, since)
    run = Run(tool, round_no, position, timed.seconds, before, touched, states)
    if report is not None:
        run.dbmaint_actions, run.dbmaint_job_seconds = _action_counts(report), common.job_seconds(report)
    common.say(NAME, f"round {round_no}: {tool} {timed.seconds:.2f} s ({'clean' if run.clean else 'NOT clean'})")
    return run


# ------------------------------------------------------------------------------------------------------ run


def run(params: Params) -> Result:
    setup: dict[str, float] = {}
    with common.throwaway_cluster(SETTINGS) as cluster, tempfile.TemporaryDirectory(prefix="dbmaint-bench-") as tmp:
        dsn = common.create_database(cluster, DATABASE)
        tools = Tools.prepare(cluster, dsn, Path(tmp))

        common.say(NAME, f"loading {params.tables} tables of {params.rows:,} rows")
        started = time.monotonic()
        load(dsn, params)
        setup["load"] = time.monotonic() - started

        # Steady state: every table vacuumed and analyzed once, as after any earlier maintenance.
        common.say(NAME, "steady state: one untimed vacuumdb --analyze")
        setup["steady_state_vacuumdb"] = tools.run("vacuumdb")[0].seconds
        common.checkpoint(dsn)
        plan = tools.dry_run_plan()

        runs: list[Run] = []
        for round_no in range(1, params.rounds + 1):
            shift = round_no % len(TOOLS)  # each tool goes first, second and third in turn
            order = TOOLS[shift:] + TOOLS[:shift]
            for position, tool in enumerate(order, start=1):
                runs.append(timed_run(tools, tool, dsn, params, round_no, position))
        commands = {
            "vacuumdb": " ".join(tools.vacuumdb),
            "floor": "python <tmp>/floor.py " + tools.floor[-1],
            "dbmaint": "DBMAINT_STATE_URL=sqlite:///<tmp>/state.db " + " ".join(tools.dbmaint).replace(tmp, "<tmp>"),
        }
    return Result(params, commands, setup, plan, runs)
