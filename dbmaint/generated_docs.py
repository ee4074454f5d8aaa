"""Sections of ``docs/`` made from a registry (the plan rules, the checklist's items), between a BEGIN and
an END line of the document: rewritten with ``--write FILE``, compared with ``--check FILE``. Pure."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


def with_section(document: str, begin: str, end: str, section: str) -> str:
    """``document`` with what is between its ``begin`` and ``end`` lines (both included) made ``section``."""
    start, stop = document.find(begin), document.find(end)
    if start < 0 or stop < start:
        raise ValueError("the document has no generated section (its BEGIN and END lines)")
    return document[:start] + section + document[stop + len(end) :]


def main(argv: list[str] | None, *, prog: str, description: str, generate: Callable[[], str], begin: str,
         end: str) -> int:  # fmt: skip
    """Without arguments, print the section; ``--write FILE`` puts it in FILE; ``--check FILE`` exits with 1
    when FILE's section differs from the registry."""
    import argparse  # the registries import this module at every start: the command line only when run

    parser = argparse.ArgumentParser(prog=prog, description=description)
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", metavar="FILE", type=Path, help="rewrite the generated section of FILE")
    action.add_argument("--check", metavar="FILE", type=Path, help="exit with 1 if FILE's section is out of date")
    args = parser.parse_args(argv)
    if args.write is None and args.check is None:
        print(generate())
        return 0
    path: Path = args.write or args.check
    text = path.read_text(encoding="utf-8")
    updated = with_section(text, begin, end, generate())
    if args.check is not None:
        if updated != text:
            print(f"{path} is out of date: {prog} --write {path}", file=sys.stderr)
            return 1
        return 0
    if updated != text:
        path.write_text(updated, encoding="utf-8")
    return 0
