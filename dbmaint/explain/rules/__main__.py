"""``python -m dbmaint.explain.rules``: the catalogue of plan rules, made from the registry.

Without arguments it prints the generated section; ``--write FILE`` puts it in FILE between its BEGIN and END
lines (docs/plan-problems.md), ``--check FILE`` exits with 1 when FILE's section differs from the registry.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dbmaint.explain.rules import catalogue, with_catalogue


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dbmaint.explain.rules", description="The catalogue of plan rules, made from the registry."
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="FILE", type=Path, help="rewrite the generated section of FILE")
    action.add_argument("--check", metavar="FILE", type=Path, help="exit with 1 if FILE's section is out of date")
    args = parser.parse_args(argv)
    if args.write is None and args.check is None:
        print(catalogue())
        return 0
    path: Path = args.write or args.check
    text = path.read_text(encoding="utf-8")
    updated = with_catalogue(text)
    if args.check is not None:
        if updated != text:
            print(f"{path} is out of date: python -m dbmaint.explain.rules --write {path}", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
