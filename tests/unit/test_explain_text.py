"""`dbmaint explain` as plain text: the plan tree drawn without rich, with the guides rich draws."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console
from rich.tree import Tree

from dbmaint.explain import text


def node(node_id: int, parent: int | None) -> SimpleNamespace:
    return SimpleNamespace(id=node_id, parent=parent, label=f"node {node_id}")


# A root with two children, the first with a child of two children: every kind of guide.
NODES = [node(0, None), node(1, 0), node(2, 1), node(3, 2), node(4, 2), node(5, 0), node(6, 5)]


def test_the_tree_has_rich_guides() -> None:
    trees = {0: Tree("node 0")}
    for n in NODES[1:]:
        trees[n.id] = trees[n.parent].add(n.label)
    drawn = io.StringIO()
    Console(file=drawn, width=200, color_system=None).print(trees[0])
    assert [guides + n.label for guides, n in text.tree(NODES)] == drawn.getvalue().splitlines()


def test_plain_lines_carry_no_style(capsys: pytest.CaptureFixture[str]) -> None:
    lines = text.Lines()
    lines.add(("plan", "bold"), ": estimated cost 1.00 (not executed)")
    lines.add(("[/red] not markup", "red"))
    lines.write()
    assert capsys.readouterr().out == "plan: estimated cost 1.00 (not executed)\n[/red] not markup\n"


@pytest.mark.parametrize(
    ("definition", "shown"),
    [
        ("CREATE UNIQUE INDEX orders_pkey ON public.orders USING btree (id)", "orders_pkey (id), unique"),
        (
            'CREATE UNIQUE INDEX "Odd Table_pkey" ON public."Odd Table" USING btree (id)',
            '"Odd Table_pkey" (id), unique',
        ),
        (
            'CREATE INDEX "a ON b" ON ONLY "my.schema"."t USING x" USING gin (doc) WHERE (x > 1)',
            '"a ON b" (doc) WHERE (x > 1), gin',
        ),
        ("CREATE INDEX i ON t USING btree (lower(email)) INCLUDE (id)", "i (lower(email)) INCLUDE (id)"),
    ],
)
def test_an_index_is_shown_by_its_name_and_columns_whatever_the_names_hold(definition: str, shown: str) -> None:
    assert text.short_index(definition) == shown
