"""The checklist's items as the table of ``docs/checklist.md``, made from the registry. Pure.

``python -m dbmaint.check.catalogue --write docs/checklist.md`` rewrites the table; a unit test fails when
the file and the registry differ.
"""

from __future__ import annotations

import inspect
import sys

from dbmaint import generated_docs
from dbmaint.check.item import CheckItem, Query
from dbmaint.check.items import ITEMS

BEGIN = (
    "<!-- The items, generated from dbmaint/check/items: `python -m dbmaint.check.catalogue --write "
    "docs/checklist.md` rewrites what is between these lines. -->"
)
END = "<!-- End of the generated items. -->"


def description(item: CheckItem) -> str:
    return inspect.cleandoc(type(item).__doc__ or "")


def catalogue() -> str:
    lines = [
        BEGIN,
        "",
        "| item | module | reads | what it checks, and why |",
        "|---|---|---|---|",
    ]
    for item in ITEMS:
        reads = ", ".join(f"`queries/{s.name}.sql`" if isinstance(s, Query) else f"`{s}`" for s in item.sources)
        text = "<br><br>".join(" ".join(p.split()) for p in description(item).replace("``", "`").split("\n\n"))
        module = type(item).__module__.rpartition(".")[2]
        cells = [f"`{item.name}`", module, reads, text.replace("|", "\\|")]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    return generated_docs.main(
        argv, prog="python -m dbmaint.check.catalogue", description="The checklist's items, made from the registry.",
        generate=catalogue, begin=BEGIN, end=END,
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
