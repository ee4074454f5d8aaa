"""Benchmark 4 (issue 4): what ``dbmaint explain`` costs over the floor, and a capture pass over 5,000 statements.

Part 1, explain. A primary-key lookup on a table of 100,000 rows, timed from process start to exit, side by
side and interleaved (the order rotates every round) with:

- ``psql -X -At -c "EXPLAIN (ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON) ..."``, for reference;
- ``python -c pass``, the interpreter alone;
- the floor any Python tool pays: a bare script that imports psycopg, connects, runs the same EXPLAIN and
  prints the plan as JSON;
- ``dbmaint explain --format json`` and ``dbmaint explain`` (text).

Reported: medians, dbmaint/floor (target: at most 1.35) and floor/psql, and where dbmaint's extra time goes:
``python -X importtime`` per top-level package, and a cProfile of one run by phase.

Part 2, capture. pg_stat_statements (``pg_stat_statements.max = 10000``) holds 5,000 distinct statements run a
few times each, and 5 slow ones (seq scans, sorts and aggregates over a 1M-row table, well over the
configured ``capture.min_mean_time = "50ms"``). ``dbmaint capture --format json`` is timed on a first pass
(empty state store) and on a second pass after the workload ran again (the deltas since the first). Each pass
is repeated from the same starting state, and right after each the same EXPLAINs are timed directly
(``dbmaint.explain.runner.explain`` in this process, as capture calls it): dbmaint's own time is the pass's wall time
less that. A cProfile of each kind of pass says where the rest goes.

Bytecode: this environment may set PYTHONDONTWRITEBYTECODE=1, and then Python compiles every module that has
no .pyc at each start. A real install has .pyc files, so ``python -m compileall -q dbmaint`` runs before each
timed part, and every module the timed commands load is checked for a missing or stale .pyc, before and after.
Other engineers edit the tree meanwhile: dbmaint's sources are hashed at the start and the end, and the summary
names any file that changed during the run.

    python bench/explain_bench.py [--quick] [--output FILE]

For bench/run.py: ``run(quick)`` returns the JSON-ready document, with ``"summary"`` (the lines to print)
and ``"check_passed"``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pstats
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPOSITORY = BENCH_DIR.parent
if __package__ in (None, ""):
    # Run as `python bench/explain_bench.py`: Python put bench/ itself on sys.path, but the modules are `bench.*`.
    sys.path.insert(0, str(REPOSITORY))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from psycopg.conninfo import make_conninfo  # noqa: E402

from bench import common  # noqa: E402
from dbmaint.pg.cluster import Cluster  # noqa: E402

NAME = "explain"
EXPLAIN_DB = "explainbench"
CAPTURE_DB = "capturebench"
RESULTS = BENCH_DIR / "results" / "explain.json"
SETTINGS = {
    # Nothing may vacuum or analyze behind the benchmark's back.
    "autovacuum": "off",
    "shared_preload_libraries": "'pg_stat_statements'",
    # Room for the 5,000 generated statements, the slow ones and dbmaint's own: none is evicted.
    "pg_stat_statements.max": "10000",
}
RATIO_TARGET = 1.35  # dbmaint explain / floor (importing pglast and click beside psycopg is already ~1.26)
OWN_TIME_TARGET_S = 5.0  # "a few seconds" of a capture pass besides its EXPLAINs
MIN_MEAN_TIME_MS = 50.0

EXPLAIN_OPTIONS = "ANALYZE, BUFFERS, VERBOSE, SETTINGS, FORMAT JSON"
LOOKUP = "SELECT * FROM accounts WHERE id = 4242"
EXPLAIN_LOOKUP = f"EXPLAIN ({EXPLAIN_OPTIONS}) {LOOKUP}"
COMMANDS = ("psql", "python", "floor", "dbmaint_json", "dbmaint_text")

FLOOR_SCRIPT = '''\
"""The floor any Python tool pays (bench/explain_bench.py): import psycopg, connect, EXPLAIN, print the plan."""

import json
import sys

import psycopg

with psycopg.connect(sys.argv[1]) as conn:
    row = conn.execute(sys.argv[2]).fetchone()
print(json.dumps(row[0], indent=2))
'''

# Runs a Python script as __main__, then writes which of the modules it loaded have no valid .pyc beside them.
PROBE = r"""
import importlib.util, json, os, runpy, sys
out, script = sys.argv[1], sys.argv[2]
sys.argv = [script, *sys.argv[3:]]


def state(module):
    spec = getattr(module, "__spec__", None)
    origin, cached = getattr(spec, "origin", None), getattr(spec, "cached", None)
    if not origin or not cached or not origin.endswith(".py"):
        return None
    try:
        with open(cached, "rb") as f:
            header = f.read(16)
    except OSError:
        return "missing"
    if header[:4] != importlib.util.MAGIC_NUMBER:
        return "stale"
    if int.from_bytes(header[4:8], "little") & 1:
        return None  # hash-based .pyc
    st = os.stat(origin)
    if (int.from_bytes(header[8:12], "little"), int.from_bytes(header[12:16], "little")) != (
        int(st.st_mtime) & 0xFFFFFFFF, st.st_size & 0xFFFFFFFF
    ):
        return "stale"
    return None


try:
    runpy.run_path(script, run_name="__main__")
except SystemExit:
    pass
finally:
    found = {"modules": 0, "missing": [], "stale": []}
    for name, module in sorted(sys.modules.items()):
        verdict = state(module)
        if getattr(getattr(module, "__spec__", None), "cached", None):
            found["modules"] += 1
        if verdict:
            found[verdict].append(name)
    with open(out, "w") as f:
        json.dump(found, f)
"""

CAPTURE_CONFIG = f"""\
# Written by bench/explain_bench.py. The state store comes from $DBMAINT_STATE_URL, one file per pass.
[capture]
min_mean_time = "{MIN_MEAN_TIME_MS:g}ms"
"""

# The slow statements: seq scans, sorts and aggregates over the big table (100 to 200 ms each on 2 cores), each
# with the parameters of its executions. Every constant is a parameter, so pg_stat_statements records them as
# written, with $n.
SLOW: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("SELECT count(*) FROM big WHERE payload LIKE %s", ("%abc%",)),
    ("SELECT val %% %s, count(*), avg(id) FROM big GROUP BY 1 ORDER BY 2 DESC LIMIT %s", (100, 5)),
    ("SELECT payload FROM big ORDER BY payload DESC LIMIT %s OFFSET %s", (20, 1000)),
    ("SELECT max(val), min(payload) FROM big WHERE val %% %s = %s OR payload LIKE %s", (1000, 7, "ff%")),
    ("SELECT count(*) FROM big b1 JOIN big b2 ON b2.id = b1.val WHERE b1.payload LIKE %s", ("a%",)),
)
SMALL_TABLES = 8
SMALL_COLUMNS = 10  # c0 .. c9: every non-empty subset is a distinct select list, so a distinct statement
SMALL_ROWS = 2_000


@dataclass(frozen=True)
class Params:
    rows: int  # part 1: rows of the table the lookup reads
    rounds: int  # part 1: each command once per round, the order rotating
    importtime_runs: int  # part 1: -X importtime runs per command (median per package)
    statements: int  # part 2: distinct fast statements in pg_stat_statements
    calls: int  # part 2: executions of each statement per workload run
    big_rows: int  # part 2: the table the slow statements scan
    repeats: int  # part 2: timed passes of each kind, each from the same starting state


FULL = Params(rows=100_000, rounds=15, importtime_runs=3, statements=5_000, calls=3, big_rows=1_000_000, repeats=3)
QUICK = Params(rows=100_000, rounds=5, importtime_runs=1, statements=500, calls=3, big_rows=1_000_000, repeats=1)


# ------------------------------------------------------------------------------------------ process figures


def source_digest() -> dict[str, str]:
    """dbmaint's sources by content: other engineers edit the tree, and a run should say if it changed under it."""
    files = sorted((REPOSITORY / "dbmaint").rglob("*.py"))
    return {str(f.relative_to(REPOSITORY)): hashlib.sha1(f.read_bytes()).hexdigest() for f in files}


def changed_sources(before: dict[str, str], after: dict[str, str]) -> list[str]:
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def bytecode_probe(script: str, args: Sequence[str], env: dict[str, str], workdir: Path) -> dict[str, Any]:
    """Run ``script args`` once (untimed) and list the modules it loaded without a valid .pyc."""
    out = workdir / "probe.json"
    common.run_timed([sys.executable, "-c", PROBE, str(out), script, *args], env=env, cwd=workdir).check(
        f"bytecode probe of {Path(script).name}"
    )
    found: dict[str, Any] = json.loads(out.read_text())
    return found


@dataclass
class Imported:
    """One line of ``python -X importtime``, with the modules it imported first."""

    name: str
    self_us: int
    cumulative_us: int
    children: list[Imported] = field(default_factory=list)


def parse_importtime(stderr: str) -> list[Imported]:
    """The import tree. A module's line comes after those of the modules it imports, one level deeper."""
    pending: dict[int, list[Imported]] = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3:
            continue
        try:
            self_us, cumulative_us = int(parts[0]), int(parts[1])
        except ValueError:
            continue  # the header
        text = parts[2][1:]
        name = text.lstrip(" ")
        level = (len(text) - len(name)) // 2
        entry = Imported(name, self_us, cumulative_us, pending.pop(level + 1, []))
        pending.setdefault(level, []).append(entry)
    return pending.get(0, [])


@dataclass(frozen=True)
class PackageImport:
    package: str  # top-level name: psycopg, pglast, dbmaint, asyncio ...
    own_ms: float  # its modules' own import time
    cumulative_ms: float  # its outermost imports, with what they imported first (overlaps other packages)
    modules: int
    via: str  # the package whose import pulled it in first ("-": the script itself)


def by_package(roots: Sequence[Imported]) -> dict[str, PackageImport]:
    own: dict[str, int] = {}
    cumulative: dict[str, int] = {}
    count: dict[str, int] = {}
    via: dict[str, str] = {}

    def walk(entry: Imported, ancestors: tuple[str, ...]) -> None:
        package = entry.name.split(".")[0]
        own[package] = own.get(package, 0) + entry.self_us
        count[package] = count.get(package, 0) + 1
        if package not in ancestors:
            cumulative[package] = cumulative.get(package, 0) + entry.cumulative_us
            via.setdefault(package, ancestors[-1] if ancestors else "-")
        for child in entry.children:
            walk(child, (*ancestors, package))

    for root in roots:
        walk(root, ())
    return {p: PackageImport(p, own[p] / 1000, cumulative.get(p, 0) / 1000, count[p], via.get(p, "-")) for p in own}


def own_by_module(roots: Sequence[Imported], prefix: str) -> dict[str, float]:
    """Own import time (ms) of each module whose name starts with ``prefix``."""
    found: dict[str, float] = {}
    stack = list(roots)
    while stack:
        entry = stack.pop()
        if entry.name == prefix or entry.name.startswith(prefix + "."):
            found[entry.name] = found.get(entry.name, 0.0) + entry.self_us / 1000
        stack.extend(entry.children)
    return found


@dataclass
class ImportProfile:
    """``python -X importtime`` of one command, median per package over the runs."""

    runs: int
    total_ms: float  # all modules' own times added up: the whole import cost
    wall_ms: float  # the process (importtime's own bookkeeping included)
    packages: list[PackageImport]  # by cumulative time, largest first
    dbmaint_modules: dict[str, float]  # dbmaint.* own times, largest first


def import_profile(
    args: Sequence[str], env: dict[str, str], workdir: Path, runs: int, fresh: Path | None = None
) -> ImportProfile:
    """``fresh``: a file removed before each run (a state store, so that every run does the same work)."""
    totals, walls = [], []
    packages: list[dict[str, PackageImport]] = []
    modules: list[dict[str, float]] = []
    for _ in range(runs):
        if fresh is not None:
            fresh.unlink(missing_ok=True)
        timed = common.run_timed([sys.executable, "-X", "importtime", *args], env=env, cwd=workdir)
        timed.check(f"python -X importtime {Path(args[0]).name}")
        roots = parse_importtime(timed.stderr)
        found = by_package(roots)
        totals.append(sum(p.own_ms for p in found.values()))
        walls.append(timed.seconds * 1000)
        packages.append(found)
        modules.append(own_by_module(roots, "dbmaint"))
    names = {name for found in packages for name in found}
    merged = []
    for name in names:
        seen = [found[name] for found in packages if name in found]
        merged.append(
            PackageImport(
                name,
                common.median([f.own_ms for f in seen] + [0.0] * (runs - len(seen))),
                common.median([f.cumulative_ms for f in seen] + [0.0] * (runs - len(seen))),
                seen[0].modules,
                seen[0].via,
            )
        )
    merged.sort(key=lambda p: p.cumulative_ms, reverse=True)
    module_names = {name for found in modules for name in found}
    per_module = {name: common.median([found.get(name, 0.0) for found in modules]) for name in module_names}
    ranked = dict(sorted(per_module.items(), key=lambda item: item[1], reverse=True))
    return ImportProfile(runs, common.median(totals), common.median(walls), merged, ranked)


# (label, the end of the file name, the function) whose cumulative time a profile reports; indented labels
# are parts of the one above. Lazy imports count both as imports and in the phase that triggers them.
EXPLAIN_PHASES = (
    ("imports (all, lazy ones included)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("load config", "dbmaint/config.py", "load_config"),
    ("connect (and session settings)", "dbmaint/pg/db.py", "connect"),
    ("explain.explain", "dbmaint/explain/runner.py", "explain"),
    ("  classify (pglast parser)", "dbmaint/explain/runner.py", "classify"),
    ("  $n scan", "dbmaint/explain/runner.py", "highest_param"),
    ("  the EXPLAIN ANALYZE transaction", "dbmaint/explain/runner.py", "_run"),
    ("  table context", "dbmaint/explain/runner.py", "table_context"),
    ("  plan analysis", "dbmaint/explain/plan_analysis.py", "analyse"),
    ("JSON output", "dbmaint/report.py", "print_json"),
)
CAPTURE_PHASES = (
    ("imports (all, lazy ones included)", "<frozen importlib._bootstrap>", "_find_and_load"),
    ("config, state store (open, create_all)", "dbmaint/cli/base.py", "context"),
    ("capture job (connect, guards, pass)", "dbmaint/jobs.py", "capture"),
    ("  history.prune", "dbmaint/store/history.py", "prune"),
    ("  capture.run", "dbmaint/capture/slow_statements.py", "run"),
    ("    read pg_stat_statements", "dbmaint/advisor/workload.py", "from_pg_stat_statements"),
    ("    previous counters (read twice)", "dbmaint/store/history.py", "counters"),
    ("    deltas", "dbmaint/capture/slow_statements.py", "deltas"),
    ("    slow filter", "dbmaint/capture/slow_statements.py", "slow"),
    ("    pglast fingerprints", "dbmaint/advisor/workload.py", "fingerprint"),
    ("    save counters (upsert)", "dbmaint/store/history.py", "save_counters"),
    ("    samples", "dbmaint/store/history.py", "add_sample"),
    ("    plans: explain and store", "dbmaint/capture/slow_statements.py", "_capture_plan"),
    ("      explain.explain", "dbmaint/explain/runner.py", "explain"),
    ("        catalog (relations, columns)", "dbmaint/pg/catalog.py", "catalog"),
    ("        the EXPLAIN transaction", "dbmaint/explain/runner.py", "_run"),
    ("        table context", "dbmaint/explain/runner.py", "table_context"),
    ("      store (latest plan, insert)", "dbmaint/capture/slow_statements.py", "_store_plan"),
    ("JSON output", "dbmaint/report.py", "print_json"),
)


def _short(filename: str) -> str:
    for marker in ("site-packages/", f"{REPOSITORY}/", "python3.11/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


def profile_breakdown(path: Path, phases: Sequence[tuple[str, str, str]], top: int = 12) -> dict[str, Any]:
    """Cumulative seconds of the ``phases`` in a cProfile file, and the functions with the most own time."""
    stats = pstats.Stats(str(path))
    table: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = stats.stats  # type: ignore[attr-defined]
    found: dict[str, float] = {}
    for label, file_end, function in phases:
        found[label] = sum(
            row[3] for (filename, _, name), row in table.items() if name == function and filename.endswith(file_end)
        )
    own = sorted(table.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "total_s": float(stats.total_tt),  # type: ignore[attr-defined]
        "phases_s": found,
        "top_own_time": [
            {"function": f"{_short(filename)}:{line}({name})", "calls": row[1], "own_s": row[2], "cumulative_s": row[3]}
            for (filename, line, name), row in own
        ],
    }


def profiled(args: Sequence[str], env: dict[str, str], workdir: Path, out: Path, what: str) -> common.Timed:
    return common.run_timed([sys.executable, "-m", "cProfile", "-o", str(out), *args], env=env, cwd=workdir).check(
        f"cProfile of {what}"
    )


# ---------------------------------------------------------------------------------------------- part 1


@dataclass
class ExplainPart:
    rows: int
    rounds: int
    commands: dict[str, str]
    seconds: dict[str, list[float]]  # per command, in round order
    output_bytes: dict[str, int]
    checks: dict[str, bool]
    importtime: dict[str, ImportProfile]
    profile: dict[str, Any]  # cProfile of one dbmaint explain --format json

    def median(self, command: str) -> float:
        return common.median(self.seconds[command])

    def ratio(self, numerator: str, denominator: str) -> float:
        return common.ratio(self.median(numerator), self.median(denominator))

    def paired(self, numerator: str, denominator: str) -> float:
        """Median of the per-round ratios: the least disturbed by drift across rounds."""
        pairs = zip(self.seconds[numerator], self.seconds[denominator], strict=True)
        return common.median([common.ratio(a, b) for a, b in pairs])

    @property
    def ratios(self) -> dict[str, float]:
        return {
            "dbmaint_json/floor": self.ratio("dbmaint_json", "floor"),
            "dbmaint_text/floor": self.ratio("dbmaint_text", "floor"),
            "floor/psql": self.ratio("floor", "psql"),
            "floor/python": self.ratio("floor", "python"),
        }

    @property
    def paired_ratios(self) -> dict[str, float]:
        return {
            "dbmaint_json/floor": self.paired("dbmaint_json", "floor"),
            "dbmaint_text/floor": self.paired("dbmaint_text", "floor"),
            "floor/psql": self.paired("floor", "psql"),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "rounds": self.rounds,
            "query": LOOKUP,
            "commands": self.commands,
            "seconds": self.seconds,
            "median_seconds": {c: self.median(c) for c in COMMANDS},
            "ratios_of_medians": self.ratios,
            "ratios_per_round_median": self.paired_ratios,
            "ratio_target": RATIO_TARGET,
            "target_met": {
                "json": self.ratios["dbmaint_json/floor"] <= RATIO_TARGET,
                "text": self.ratios["dbmaint_text/floor"] <= RATIO_TARGET,
            },
            "output_bytes": self.output_bytes,
            "importtime": {name: asdict(profile) for name, profile in self.importtime.items()},
            "profile_dbmaint_json": self.profile,
            "checks": self.checks,
        }


def load_accounts(dsn: str, rows: int) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE accounts (id integer NOT NULL, owner integer NOT NULL, balance numeric NOT NULL,"
                " note text NOT NULL);"
                "INSERT INTO accounts SELECT g, g % 1000, g * 1.5, md5(g::text) FROM generate_series(1, {}) AS g;"
                "ALTER TABLE accounts ADD PRIMARY KEY (id);"
            ).format(sql.Literal(rows))
        )
    # Another session, after the loading one has closed and reported its inserts: the statistics then say
    # "analyzed, nothing changed since", as on a database in steady state.
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE accounts")
    common.checkpoint(dsn)


def _plan_node(document: Any) -> str:
    """'Index Scan using accounts_pkey' from EXPLAIN's JSON, or what it says instead."""
    try:
        node = document[0]["Plan"]
        return f"{node['Node Type']} using {node.get('Index Name')}"
    except (KeyError, IndexError, TypeError):
        return "?"


def _check_outputs(outputs: dict[str, str]) -> dict[str, bool]:
    expected = "Index Scan using accounts_pkey"

    def parsed(text: str) -> Any:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return None

    dbmaint = parsed(outputs["dbmaint_json"]) or {}
    return {
        "psql_plan": _plan_node(parsed(outputs["psql"])) == expected,
        "floor_plan": _plan_node(parsed(outputs["floor"])) == expected,
        "dbmaint_json_plan": _plan_node(dbmaint.get("plan")) == expected and dbmaint.get("analyzed") is True,
        "dbmaint_text_plan": expected in outputs["dbmaint_text"],
    }


def explain_part(cluster: Cluster, params: Params, workdir: Path, bytecode: dict[str, Any]) -> ExplainPart:
    dsn = common.create_database(cluster, EXPLAIN_DB)
    common.say(NAME, f"part 1: loading accounts, {params.rows:,} rows")
    load_accounts(dsn, params.rows)
    floor_script = workdir / "floor.py"
    floor_script.write_text(FLOOR_SCRIPT)
    config = workdir / "explain.toml"
    config.write_text("# dbmaint's defaults: the explain benchmark sets nothing\n")
    dbmaint = common.dbmaint_executable()
    dbmaint_args = ["explain", "--config", str(config), "--dsn", dsn]
    args = {
        "psql": [common.program(cluster, "psql"), "-X", "-At", *common.client_args(cluster), "-d", EXPLAIN_DB,
                 "-c", EXPLAIN_LOOKUP],
        "python": [sys.executable, "-c", "pass"],
        "floor": [sys.executable, str(floor_script), dsn, EXPLAIN_LOOKUP],
        "dbmaint_json": [dbmaint, *dbmaint_args, "--format", "json", LOOKUP],
        "dbmaint_text": [dbmaint, *dbmaint_args, LOOKUP],
    }  # fmt: skip
    env = common.dbmaint_env(state_url=f"sqlite:///{workdir / 'explain-state.db'}")

    # Untimed: every command once (caches warm, outputs checked), and which modules lack a valid .pyc.
    outputs = {c: common.run_timed(args[c], env=env, cwd=workdir).check(c).stdout for c in COMMANDS}
    checks = _check_outputs(outputs)
    # The Python commands as script and arguments, without the interpreter.
    scripts = {"floor": args["floor"][1:], "dbmaint_json": args["dbmaint_json"], "dbmaint_text": args["dbmaint_text"]}
    for command, script in scripts.items():
        bytecode[f"before/{command}"] = bytecode_probe(script[0], script[1:], env, workdir)

    common.compile_bytecode()  # again: the tree may have changed since the start
    common.say(NAME, f"part 1: {params.rounds} rounds of {', '.join(COMMANDS)} (order rotating)")
    seconds: dict[str, list[float]] = {c: [] for c in COMMANDS}
    for round_no in range(params.rounds):
        shift = round_no % len(COMMANDS)
        for command in COMMANDS[shift:] + COMMANDS[:shift]:
            seconds[command].append(common.run_timed(args[command], env=env, cwd=workdir).check(command).seconds)
        common.say(NAME, f"round {round_no + 1}: " + ", ".join(f"{c} {seconds[c][-1]:.3f}" for c in COMMANDS))

    common.say(NAME, f"part 1: python -X importtime, {params.importtime_runs} run(s) per command; cProfile")
    importtime = {
        command: import_profile(script, env, workdir, params.importtime_runs) for command, script in scripts.items()
    }
    profile_file = workdir / "explain.prof"
    profiled(args["dbmaint_json"], env, workdir, profile_file, "dbmaint explain")
    profile = profile_breakdown(profile_file, EXPLAIN_PHASES)
    for command, script in scripts.items():
        bytecode[f"after/{command}"] = bytecode_probe(script[0], script[1:], env, workdir)

    shown = {c: shlex.join(a).replace(str(workdir), "<tmp>") for c, a in args.items()}
    return ExplainPart(
        params.rows, params.rounds, shown, seconds, {c: len(o.encode()) for c, o in outputs.items()}, checks,
        importtime, profile,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- part 2


def quiet_session(dsn: str) -> common.Connection:
    """A session pg_stat_statements does not record: the benchmark's own statements stay out of the workload."""
    return psycopg.connect(dsn, autocommit=True, options="-c pg_stat_statements.track=none")


def load_capture_tables(dsn: str, big_rows: int) -> None:
    columns = sql.SQL(", ").join(
        sql.SQL("{} integer NOT NULL").format(sql.Identifier(f"c{j}")) for j in range(SMALL_COLUMNS)
    )
    values = sql.SQL(", ").join(sql.SQL("g % {}").format(sql.Literal(j + 2)) for j in range(SMALL_COLUMNS))
    with quiet_session(dsn) as conn:
        for k in range(SMALL_TABLES):
            table = sql.Identifier(f"s{k}")
            conn.execute(sql.SQL("CREATE TABLE {} (id integer PRIMARY KEY, {})").format(table, columns))
            conn.execute(
                sql.SQL("INSERT INTO {} SELECT g, {} FROM generate_series(1, {}) AS g").format(
                    table, values, sql.Literal(SMALL_ROWS)
                )
            )
        conn.execute(
            sql.SQL(
                "CREATE TABLE big (id integer NOT NULL, val integer NOT NULL, payload text NOT NULL);"
                "INSERT INTO big SELECT g, (g::bigint * 7919 % 100000)::integer, md5(g::text)"
                "  FROM generate_series(1, {}) AS g;"
                "ALTER TABLE big ADD PRIMARY KEY (id);"
            ).format(sql.Literal(big_rows))
        )
    with quiet_session(dsn) as conn:
        conn.execute("CREATE EXTENSION pg_stat_statements")
        conn.execute("VACUUM ANALYZE")
    common.checkpoint(dsn)


def fast_statements(count: int) -> list[sql.Composed]:
    """``count`` distinct primary-key lookups: table k, and a select list from the bits of a number."""
    limit = SMALL_TABLES * (2**SMALL_COLUMNS - 1)
    if count > limit:
        raise common.BenchError(
            f"{SMALL_TABLES} tables of {SMALL_COLUMNS} columns give {limit} statements, not {count}"
        )
    result = []
    for i in range(count):
        mask = i // SMALL_TABLES + 1
        columns = [sql.Identifier(f"c{j}") for j in range(SMALL_COLUMNS) if mask & (1 << j)]
        result.append(
            sql.SQL("SELECT {} FROM {} WHERE id = %s").format(
                sql.SQL(", ").join(columns), sql.Identifier(f"s{i % SMALL_TABLES}")
            )
        )
    return result


def run_workload(dsn: str, statements: Sequence[sql.Composed], calls: int) -> float:
    """Every statement ``calls`` times with a different key each time, then each slow one as often."""
    started = time.monotonic()
    # No server-side preparing: the DEALLOCATEs of psycopg's statement cache would be recorded as statements.
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
        for call in range(calls):
            for i, statement in enumerate(statements):
                conn.execute(statement, ((i * 7 + call) % SMALL_ROWS + 1,)).fetchall()
            for text, values in SLOW:
                conn.execute(text, values).fetchall()
    return time.monotonic() - started


@dataclass(frozen=True)
class Recorded:
    queryid: int
    query: str
    calls: int
    mean_ms: float


def recorded(dsn: str) -> list[Recorded]:
    with quiet_session(dsn) as conn:
        rows = conn.execute(
            "SELECT s.queryid, s.query, s.calls, s.mean_exec_time FROM pg_stat_statements s"
            " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = current_database()"
        ).fetchall()
    return [Recorded(int(q), str(text), int(c), float(ms)) for q, text, c, ms in rows]


@dataclass
class CapturePass:
    kind: str  # first (empty state store) or second (after the workload ran again)
    repeat: int
    wall_s: float  # process start to exit
    job_s: float  # the JSON's started_at .. finished_at
    explain_s: float  # the same EXPLAINs, timed directly right after
    statements_seen: int
    captured: list[int]  # query ids
    plans: list[str | None]
    calls: list[int]  # since the last pass, per captured statement
    notes: list[str]
    regressions: int

    @property
    def own_s(self) -> float:
        return self.wall_s - self.explain_s


@dataclass
class CapturePart:
    statements: int
    calls: int
    big_rows: int
    recorded: int  # pg_stat_statements entries of the database after the first workload run
    slow: dict[int, float]  # query id -> mean ms, of the entries over the threshold
    slow_texts: dict[int, str]
    workload_s: list[float]
    passes: list[CapturePass]
    profiles: dict[str, dict[str, Any]]
    importtime: ImportProfile  # of a first pass
    command: str

    def of(self, kind: str) -> list[CapturePass]:
        return [p for p in self.passes if p.kind == kind]

    def medians(self, kind: str) -> dict[str, float]:
        passes = self.of(kind)
        return {
            "wall_s": common.median([p.wall_s for p in passes]),
            "job_s": common.median([p.job_s for p in passes]),
            "explain_s": common.median([p.explain_s for p in passes]),
            "own_s": common.median([p.own_s for p in passes]),
        }

    @property
    def checks(self) -> dict[str, bool]:
        slow_ids = set(self.slow)
        big = {q for q, text in self.slow_texts.items() if " big" in text}
        return {
            "all_statements_recorded": self.recorded >= self.statements + len(SLOW),
            "exactly_the_slow_statements_over_threshold": len(slow_ids) == len(SLOW) and slow_ids == big,
            "every_pass_captured_them": bool(self.passes) and all(set(p.captured) == slow_ids for p in self.passes),
            "every_pass_saw_all_statements": all(p.statements_seen >= self.recorded for p in self.passes),
            "every_captured_statement_has_a_plan": all(None not in p.plans and not p.notes for p in self.passes),
            "second_pass_counts_only_new_calls": all(set(p.calls) == {self.calls} for p in self.of("second")),
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "statements": self.statements,
            "calls": self.calls,
            "big_rows": self.big_rows,
            "min_mean_time_ms": MIN_MEAN_TIME_MS,
            "recorded": self.recorded,
            "slow": [
                {"queryid": q, "mean_ms": ms, "query": self.slow_texts.get(q)}
                for q, ms in sorted(self.slow.items(), key=lambda item: -item[1])
            ],
            "workload_s": self.workload_s,
            "command": self.command,
            "passes": [{**asdict(p), "own_s": p.own_s} for p in self.passes],
            "medians": {kind: self.medians(kind) for kind in ("first", "second")},
            "own_time_target_s": OWN_TIME_TARGET_S,
            "target_met": all(self.medians(k)["own_s"] <= OWN_TIME_TARGET_S for k in ("first", "second")),
            "profiles": self.profiles,
            "importtime_first_pass": asdict(self.importtime),
            "checks": self.checks,
        }


def time_explains(dsn: str, queries: Sequence[str]) -> float:
    """The EXPLAINs of a capture pass, timed directly: ``dbmaint.explain.runner.explain`` with the Request
    capture makes, on a connection like its own. A first, untimed call pays the lazy imports, which are not
    the EXPLAIN's."""
    from dbmaint.config import CaptureConfig, SafetyConfig
    from dbmaint.explain import runner
    from dbmaint.pg import db
    from dbmaint.sql import sqlshape

    capture, safety = CaptureConfig(), SafetyConfig()
    requests = [
        runner.Request(
            sqlshape.repair_normalized(q),
            analyze=capture.analyze,
            analyze_writes=False,
            timeout_s=capture.statement_timeout,
            lock_timeout_s=safety.lock_timeout,
        )
        for q in queries
    ]
    target = db.Target(CAPTURE_DB, make_conninfo(dsn, options="-c pg_stat_statements.track=none"))
    with db.connection(target, safety) as conn:
        if requests:
            runner.explain(conn, requests[0])
        started = time.perf_counter()
        for request in requests:
            runner.explain(conn, request)
        return time.perf_counter() - started


class CaptureRunner:
    """``dbmaint capture`` against the capture database, each pass with the state store it is given."""

    def __init__(self, dsn: str, workdir: Path) -> None:
        self.dsn = dsn
        self.workdir = workdir
        config = workdir / "capture.toml"
        config.write_text(CAPTURE_CONFIG)
        self.args = [common.dbmaint_executable(), "capture", "--config", str(config), "--dsn", dsn, "--format", "json"]

    def env(self, state: Path) -> dict[str, str]:
        return common.dbmaint_env(state_url=f"sqlite:///{state}")

    def document(self, timed: common.Timed) -> dict[str, Any]:
        try:
            document: dict[str, Any] = json.loads(timed.stdout)
        except json.JSONDecodeError:
            raise common.BenchError(f"dbmaint capture printed no JSON: {timed.stdout[:300]!r}") from None
        if document.get("status") != "ok":
            raise common.BenchError(f"dbmaint capture: status {document.get('status')}: {document.get('reason')}")
        return document

    def timed_pass(self, kind: str, repeat: int, state: Path) -> CapturePass:
        timed = common.run_timed(self.args, env=self.env(state), cwd=self.workdir).check("dbmaint capture")
        document = self.document(timed)
        captured = document["captured"]
        explain_s = time_explains(self.dsn, [c["query"] for c in captured])
        result = CapturePass(
            kind, repeat, timed.seconds, common.job_seconds(document), explain_s, int(document["statements_seen"]),
            [int(c["queryid"]) for c in captured], [c["plan"] for c in captured], [int(c["calls"]) for c in captured],
            [c["note"] for c in captured if c["note"]], sum(1 for c in captured if c["regression"]),
        )  # fmt: skip
        common.say(
            NAME,
            f"part 2: capture {kind} pass {repeat}: {timed.seconds:.2f} s (job {result.job_s:.2f} s, EXPLAINs timed "
            f"directly {explain_s:.3f} s), {result.statements_seen} seen, {len(captured)} captured",
        )
        return result

    def profiled_pass(self, kind: str, state: Path) -> dict[str, Any]:
        out = self.workdir / f"capture-{kind}.prof"
        timed = profiled(self.args, self.env(state), self.workdir, out, f"dbmaint capture ({kind} pass)")
        self.document(timed)
        return {"wall_s": timed.seconds, **profile_breakdown(out, CAPTURE_PHASES)}

    def probe(self, state: Path) -> dict[str, Any]:
        return bytecode_probe(self.args[0], self.args[1:], self.env(state), self.workdir)

    def import_profile(self, runs: int) -> ImportProfile:
        """-X importtime of first passes, each with an empty state store."""
        state = self.workdir / "importtime-state.db"
        return import_profile(self.args, self.env(state), self.workdir, runs, fresh=state)


def capture_part(cluster: Cluster, params: Params, workdir: Path, bytecode: dict[str, Any]) -> CapturePart:
    dsn = common.create_database(cluster, CAPTURE_DB)
    common.say(NAME, f"part 2: loading {SMALL_TABLES} tables of {SMALL_ROWS:,} rows and big, {params.big_rows:,} rows")
    load_capture_tables(dsn, params.big_rows)
    statements = fast_statements(params.statements)
    with quiet_session(dsn) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    common.say(NAME, f"part 2: workload, {len(statements):,} statements and {len(SLOW)} slow ones x {params.calls}")
    workload = [run_workload(dsn, statements, params.calls)]
    entries = recorded(dsn)
    slow = {e.queryid: e.mean_ms for e in entries if e.mean_ms > MIN_MEAN_TIME_MS}
    texts = {e.queryid: e.query for e in entries if e.queryid in slow}
    common.say(NAME, f"part 2: pg_stat_statements holds {len(entries):,} entries, {len(slow)} over the threshold")

    runner = CaptureRunner(dsn, workdir)
    # Untimed: a first pass whose state store is thrown away (caches warm), checking the .pyc files too.
    bytecode["before/dbmaint_capture"] = runner.probe(workdir / "probe-before.db")
    passes = []
    common.compile_bytecode()
    after_first = workdir / "after-first.db"  # the state every second pass starts from
    for repeat in range(1, params.repeats + 1):
        state = workdir / f"first-{repeat}.db"
        passes.append(runner.timed_pass("first", repeat, state))
        if repeat == 1:
            shutil.copy(state, after_first)
    profiles = {"first": runner.profiled_pass("first", workdir / "profiled-first.db")}
    importtime = runner.import_profile(params.importtime_runs)

    common.say(NAME, "part 2: the workload again")
    workload.append(run_workload(dsn, statements, params.calls))
    common.compile_bytecode()
    for repeat in range(1, params.repeats + 1):
        state = workdir / f"second-{repeat}.db"
        shutil.copy(after_first, state)
        passes.append(runner.timed_pass("second", repeat, state))
    state = workdir / "profiled-second.db"
    shutil.copy(after_first, state)
    profiles["second"] = runner.profiled_pass("second", state)
    bytecode["after/dbmaint_capture"] = runner.probe(workdir / "probe-after.db")
    command = "DBMAINT_STATE_URL=sqlite:///<tmp>/<pass>.db " + shlex.join(runner.args).replace(str(workdir), "<tmp>")
    return CapturePart(
        params.statements, params.calls, params.big_rows, len(entries), slow, texts, workload, passes, profiles,
        importtime, command,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------------ result


@dataclass
class Result:
    params: Params
    quick: bool
    compiled: str  # the compileall command run before timing
    bytecode: dict[str, Any]  # probe name -> modules loaded, and those without a valid .pyc
    explain: ExplainPart
    capture: CapturePart
    setup_seconds: dict[str, float]
    load_average: dict[str, list[float]]  # the machine's 1/5/15-minute load at the start and at the end
    commit: str | None  # at the start
    sources_changed: list[str]  # dbmaint/ files whose content changed during the run

    @property
    def bytecode_ok(self) -> bool:
        return all(not p["missing"] and not p["stale"] for p in self.bytecode.values())

    @property
    def checks(self) -> dict[str, bool]:
        return {**self.explain.checks, **self.capture.checks}

    @property
    def passed(self) -> bool:
        return all(self.checks.values())

    def to_json(self) -> dict[str, Any]:
        return common.json_ready(  # type: ignore[no-any-return]
            {
                "params": asdict(self.params),
                "quick": self.quick,
                "bytecode": {"compiled_before_timing": self.compiled, "probes": self.bytecode, "ok": self.bytecode_ok},
                "setup_seconds": self.setup_seconds,
                "load_average": self.load_average,
                "dbmaint_commit": self.commit,
                "sources_changed_during_run": self.sources_changed,
                "pythondontwritebytecode": os.environ.get("PYTHONDONTWRITEBYTECODE"),
                "explain": self.explain.to_json(),
                "capture": self.capture.to_json(),
                "checks": self.checks,
                "check_passed": self.passed,
                "summary": self.summary(),
            }
        )

    def summary(self) -> list[str]:
        start, end = self.load_average["start"], self.load_average["end"]
        load = (
            f"MACHINE: {os.cpu_count()} CPUs, load average (1/5/15 min) {'/'.join(f'{v:.1f}' for v in start)} at the "
            f"start, {'/'.join(f'{v:.1f}' for v in end)} at the end: other work shares it, figures are side by side"
        )
        sources = (
            f"SOURCES: {self.commit}; dbmaint/ unchanged during the run"
            if not self.sources_changed
            else f"SOURCES: {self.commit}; CHANGED during the run (figures mix versions): "
            + ", ".join(self.sources_changed)
        )
        return [
            load,
            sources,
            *self._bytecode_lines(),
            *self._explain_lines(),
            *self._capture_lines(),
            self._check_line(),
        ]

    def _bytecode_lines(self) -> list[str]:
        bad = {
            name: p["missing"] + p["stale"] for name, p in self.bytecode.items() if p["missing"] or p["stale"]
        }  # fmt: skip
        line = f"BYTECODE: `{self.compiled.replace(str(REPOSITORY) + '/', '')}` before each timed part; "
        if not bad:
            return [line + f"every module the timed commands load has a valid .pyc ({len(self.bytecode)} probes)"]
        return [line + "modules WITHOUT a valid .pyc (compiled at every start):"] + [
            f"  {name}: {', '.join(modules[:12])}{' ...' if len(modules) > 12 else ''}" for name, modules in bad.items()
        ]

    def _explain_lines(self) -> list[str]:
        e = self.explain
        ratios, paired = e.ratios, e.paired_ratios
        lines = [
            f"EXPLAIN: `{LOOKUP}` ({e.rows:,} rows), {e.rounds} rounds, order rotating; median wall time "
            "(process start to exit; text output goes to a pipe, as in a script):",
            *(f"  {c:13} {e.median(c) * 1000:7.1f} ms   ({_spread(e.seconds[c])})" for c in COMMANDS),
            f"  dbmaint json/floor {ratios['dbmaint_json/floor']:.2f} (per round {paired['dbmaint_json/floor']:.2f}), "
            f"text/floor {ratios['dbmaint_text/floor']:.2f} (per round {paired['dbmaint_text/floor']:.2f}): "
            f"target <= {RATIO_TARGET}: json {_met(ratios['dbmaint_json/floor'] <= RATIO_TARGET)}, "
            f"text {_met(ratios['dbmaint_text/floor'] <= RATIO_TARGET)}",
            f"  floor/psql {ratios['floor/psql']:.1f} (per round {paired['floor/psql']:.1f}); "
            f"floor/python -c pass {ratios['floor/python']:.1f}",
        ]
        for command in ("dbmaint_json", "dbmaint_text", "floor"):
            lines += _import_lines(command, e.importtime[command])
        phases = e.profile["phases_s"]
        lines.append(
            f"  cProfile of dbmaint explain --format json ({e.profile['total_s'] * 1000:.0f} ms profiled; phases "
            "overlap where a phase imports lazily): "
            + ", ".join(f"{label.strip()} {seconds * 1000:.0f}" for label, seconds in phases.items())
        )
        return lines

    def _capture_lines(self) -> list[str]:
        c = self.capture
        first, second = c.medians("first"), c.medians("second")
        slow = ", ".join(f"{ms:.0f}" for ms in sorted(c.slow.values(), reverse=True))
        lines = [
            f"CAPTURE: {c.recorded:,} pg_stat_statements entries ({c.statements:,} statements x {c.calls} calls, "
            f"{len(SLOW)} slow ones: {slow} ms mean), min_mean_time {MIN_MEAN_TIME_MS:g} ms, plans estimated "
            "(capture.analyze = false, the default); EXPLAINs = dbmaint.explain.runner.explain of the captured "
            "statements, "
            "timed directly after each pass; own = wall - EXPLAINs",
        ]
        for kind, figures in (("first", first), ("second", second)):
            passes = c.of(kind)
            seen = sorted({p.statements_seen for p in passes})
            captured = sorted({len(p.captured) for p in passes})
            spread = _spread([p.wall_s for p in passes])
            lines.append(
                f"  {kind} pass ({len(passes)}x): wall {figures['wall_s']:.2f} s ({spread}), job "
                f"{figures['job_s']:.2f} s, EXPLAINs {figures['explain_s'] * 1000:.0f} ms, own "
                f"{figures['own_s']:.2f} s; statements_seen {_values(seen)}, captured {_values(captured)}"
            )
        lines.append(
            f"  own time target <= {OWN_TIME_TARGET_S:g} s: "
            + _met(all(f["own_s"] <= OWN_TIME_TARGET_S for f in (first, second)))
        )
        for kind, profile in c.profiles.items():
            phases = profile["phases_s"]
            lines.append(
                f"  cProfile, {kind} pass ({profile['wall_s']:.2f} s profiled), cumulative ms: "
                + ", ".join(f"{label.strip()} {s * 1000:.0f}" for label, s in phases.items() if s >= 0.0005)
            )
            top = profile["top_own_time"][:5]
            lines.append("    most own time: " + ", ".join(f"{t['function']} {t['own_s'] * 1000:.0f}" for t in top))
        lines += _import_lines("dbmaint_capture (first pass)", c.importtime)
        return lines

    def _check_line(self) -> str:
        failed = [name for name, ok in self.checks.items() if not ok]
        verdict = "PASS" if not failed else "FAIL: " + ", ".join(failed)
        return f"  checks ({len(self.checks)}: plans of all tools, capture counts and deltas): {verdict}"


def _spread(values: Sequence[float]) -> str:
    return f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms" if values else "-"


def _values(values: Sequence[int]) -> str:
    return "/".join(f"{v:,}" for v in values)


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def _import_lines(command: str, profile: ImportProfile) -> list[str]:
    shown = [p for p in profile.packages if p.cumulative_ms >= 3.0][:14]
    lines = [
        f"  -X importtime {command}: imports {profile.total_ms:.0f} ms in all (median of {profile.runs}); "
        "by package, cumulative (own) ms:",
        "    " + ", ".join(_package(p) for p in shown),
    ]
    if profile.dbmaint_modules:
        top = list(profile.dbmaint_modules.items())[:8]
        lines.append("    dbmaint's modules, own ms: " + ", ".join(f"{m} {ms:.1f}" for m, ms in top))
    return lines


def _package(p: PackageImport) -> str:
    via = f" via {p.via}" if p.via not in ("-", p.package) else ""
    return f"{p.package} {p.cumulative_ms:.0f} ({p.own_ms:.0f}){via}"


# ------------------------------------------------------------------------------------------------------ run


def measure(params: Params, quick: bool = False) -> Result:
    setup: dict[str, float] = {}
    load = {"start": list(os.getloadavg())}
    commit, sources = common.git_commit(REPOSITORY), source_digest()
    started = time.monotonic()
    compiled = common.compile_bytecode()
    setup["compileall"] = time.monotonic() - started
    bytecode: dict[str, Any] = {}
    with common.throwaway_cluster(SETTINGS) as cluster, tempfile.TemporaryDirectory(prefix="dbmaint-bench-") as tmp:
        workdir = Path(tmp)
        started = time.monotonic()
        explain = explain_part(cluster, params, workdir, bytecode)
        setup["explain_part"] = time.monotonic() - started
        started = time.monotonic()
        capture = capture_part(cluster, params, workdir, bytecode)
        setup["capture_part"] = time.monotonic() - started
    load["end"] = list(os.getloadavg())
    changed = changed_sources(sources, source_digest())
    return Result(params, quick, compiled, bytecode, explain, capture, setup, load, commit, changed)


def run(quick: bool) -> dict[str, Any]:
    """The whole benchmark; the JSON-ready document, with "summary" (lines to print) and "check_passed"."""
    result = measure(QUICK if quick else FULL, quick)
    document: dict[str, Any] = result.to_json()
    return document


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and statements: does everything work?")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    started = time.monotonic()
    try:
        document = run(args.quick)
    except common.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started
    document["duration_s"] = round(elapsed, 1)
    write_json(args.output, document)
    print()
    print("\n".join(document["summary"]))
    print(f"\ntotal {elapsed / 60:.1f} min; results in {args.output}")
    return 0 if document["check_passed"] else 1


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document, indent=2, allow_nan=False, default=str) + "\n")
    temporary.replace(path)


if __name__ == "__main__":
    sys.exit(main())
