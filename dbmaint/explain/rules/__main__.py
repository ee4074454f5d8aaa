"""``python -m dbmaint.explain.rules``: the catalogue of plan rules, made from the registry.

Without arguments it prints the generated section; ``--write FILE`` puts it in FILE between its BEGIN and END
lines (docs/plan-problems.md), ``--check FILE`` exits with 1 when FILE's section differs from the registry.
"""

from __future__ import annotations

import sys

from dbmaint import generated_docs
from dbmaint.explain.rules import BEGIN, END, catalogue


def main(argv: list[str] | None = None) -> int:
    return generated_docs.main(
        argv,
        prog="python -m dbmaint.explain.rules",
        description="The catalogue of plan rules, made from the registry.",
        generate=catalogue,
        begin=BEGIN,
        end=END,
    )


if __name__ == "__main__":
    sys.exit(main())
