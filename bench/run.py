"""Run dbmaint's benchmarks, print a summary and write bench/results/latest.json.

    python bench/run.py                  # all benchmarks, full size (several minutes)
    python bench/run.py --quick          # smaller and faster: checks that everything works
    python bench/run.py --only vacuum    # or explain, reindex, advisor, tpch, index_size, service, footprint
    python bench/run.py --only footprint --minutes 60   # the service with 50 databases for an hour

Progress goes to stderr, the summary to stdout. The exit code is 1 when a correctness check failed
(a table left dirty, a rebuild that did not happen, an index the advisor gave the decoy), 0 otherwise; a
missed speed target is reported, not failed on, since timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
if __package__ in (None, ""):
    # Run as `python bench/run.py`: Python put bench/ itself on sys.path, but the modules are `bench.*`.
    sys.path.insert(0, str(BENCH_DIR.parent))

from bench import (  # noqa: E402
    advisor_bench,
    common,
    explain_bench,
    footprint_bench,
    index_size_bench,
    reindex_bench,
    service_bench,
    tpch_bench,
    vacuum_bench,
)
from dbmaint.pg.cluster import find_bindir  # noqa: E402

RESULTS = BENCH_DIR / "results" / "latest.json"
BENCHMARKS = ("vacuum", "explain", "reindex", "advisor", "tpch", "index_size", "service", "footprint")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller data and shorter runs (about a minute)")
    parser.add_argument("--only", choices=BENCHMARKS, help="run just this benchmark")
    parser.add_argument("--rounds", type=int, help="vacuum: timed runs of each tool (default 3, or 2 with --quick)")
    parser.add_argument("--seconds", type=int, help="reindex: length of each pgbench run (default 20, 8 with --quick)")
    parser.add_argument(
        "--script", choices=("tpcb-like", "simple-update", "select-only"), help="reindex: pgbench built-in script"
    )
    parser.add_argument(
        "--minutes", type=float, help="footprint: how long the service is sampled (default 60, 3 quick)"
    )
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"JSON results file (default {RESULTS})")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if args.seconds is not None and args.seconds < 4:
        parser.error("--seconds must be at least 4")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    chosen = [args.only] if args.only else list(BENCHMARKS)
    started_at, started = datetime.now(UTC), time.monotonic()
    results: dict[str, Any] = {}
    summaries: list[list[str]] = []
    passed: dict[str, bool] = {}
    try:
        if "vacuum" in chosen:
            vparams = vacuum_bench.QUICK if args.quick else vacuum_bench.FULL
            if args.rounds is not None:
                vparams = dataclasses.replace(vparams, rounds=args.rounds)
            vacuum = vacuum_bench.run(vparams)
            results["vacuum"], passed["vacuum"] = vacuum.to_json(), vacuum.passed
            summaries.append(vacuum.summary())
        if "explain" in chosen:
            explain = explain_bench.run(args.quick)
            results["explain"], passed["explain"] = explain, bool(explain["check_passed"])
            summaries.append(list(explain["summary"]))
        if "reindex" in chosen:
            rparams = reindex_bench.QUICK if args.quick else reindex_bench.FULL
            if args.seconds is not None:
                rparams = dataclasses.replace(rparams, seconds=args.seconds, reindex_after=args.seconds / 4)
            if args.script is not None:
                rparams = dataclasses.replace(rparams, script=args.script)
            reindex = reindex_bench.run(rparams)
            results["reindex"], passed["reindex"] = reindex.to_json(), reindex.passed
            summaries.append(reindex.summary())
        if "advisor" in chosen:
            advisor = advisor_bench.run(advisor_bench.QUICK if args.quick else advisor_bench.FULL)
            results["advisor"], passed["advisor"] = advisor.to_json(), advisor.passed
            summaries.append(advisor.summary())
        if "tpch" in chosen:
            tpch = tpch_bench.run(tpch_bench.QUICK if args.quick else tpch_bench.FULL)
            results["tpch"], passed["tpch"] = tpch.to_json(), tpch.passed
            summaries.append(tpch.summary())
        if "index_size" in chosen:
            sizes = index_size_bench.run(index_size_bench.QUICK if args.quick else index_size_bench.FULL)
            results["index_size"], passed["index_size"] = sizes.to_json(), sizes.passed
            summaries.append(sizes.summary())
        if "service" in chosen:
            service = service_bench.run(service_bench.QUICK if args.quick else service_bench.FULL)
            results["service"], passed["service"] = service.to_json(), service.passed
            summaries.append(service.summary())
        if "footprint" in chosen:
            fparams = footprint_bench.QUICK if args.quick else footprint_bench.FULL
            if args.minutes is not None:
                fparams = dataclasses.replace(fparams, minutes=args.minutes)
            footprint = footprint_bench.run(fparams)
            results["footprint"], passed["footprint"] = footprint.to_json(), footprint.passed
            summaries.append(footprint.summary())
    except common.BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    elapsed = time.monotonic() - started

    document = {
        "started_at": started_at.isoformat(timespec="seconds"),
        "duration_s": round(elapsed, 1),
        "quick": args.quick,
        "command": [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])],
        "environment": _environment(),
        "results": results,
        "checks_passed": passed,
    }
    write_json(args.output, document)
    print_summary(summaries, elapsed, args.output)
    return 0 if all(passed.values()) else 1


def _environment() -> dict[str, Any]:
    return {
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "dbmaint_commit": common.git_commit(BENCH_DIR.parent),
        "dbmaint": common.dbmaint_executable(),
        "postgres_bindir": str(find_bindir()),
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    # allow_nan=False: a figure that was not measured is null (common.json_ready), never NaN.
    text = json.dumps(common.json_ready(document), indent=2, allow_nan=False, default=str)
    temporary.write_text(text + "\n")
    temporary.replace(path)  # a reader never sees half a file


def print_summary(summaries: list[list[str]], elapsed: float, output: Path) -> None:
    print()
    for lines in summaries:
        print("\n".join(lines))
        print()
    print(f"total {elapsed / 60:.1f} min; results in {output}")


if __name__ == "__main__":
    sys.exit(main())
