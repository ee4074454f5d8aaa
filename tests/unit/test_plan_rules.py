"""The registry of plan rules: every rule is complete, the order of kinds is today's, and docs/plan-problems.md
is what the registry generates."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from dbmaint.explain import rules
from dbmaint.explain.plan_analysis import analyse
from dbmaint.explain.rules import FAMILIES, KINDS, RULES, catalogue, description, with_catalogue
from dbmaint.explain.rules.__main__ import main
from dbmaint.explain.rules.base import NodeRule, PlanRule, ReviewRule
from dbmaint.explain.rules.filters_indexes import WrongIndexOrderBy

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "docs" / "plan-problems.md"
PLANS = ROOT / "tests" / "data" / "plans"

# The order problems of the same severity are listed in: the catalogue's order before the registry.
KINDS_BEFORE_THE_REGISTRY = (
    "hot_node",
    "row_misestimate",
    "stale_statistics",
    "seq_scan_filter",
    "inefficient_index",
    "disk_sort",
    "hash_spill",
    "hashagg_spill",
    "temp_spill",
    "lossy_bitmap",
    "heap_fetches",
    "nested_loop_underestimate",
    "join_filter_waste",
    "large_offset",
    "wrong_index_order_by",
    "poor_cache_hit",
    "read_efficiency",
    "jit_overhead",
    "planning_time",
    "workers_not_launched",
    "slow_trigger",
    "memoize_thrash",
    "non_default_settings",
)


def test_kinds_keep_their_order() -> None:
    assert KINDS == KINDS_BEFORE_THE_REGISTRY


def test_every_rule_is_complete() -> None:
    assert len({rule.kind for rule in RULES}) == len(RULES)
    assert len({rule.order for rule in RULES}) == len(RULES)
    for rule in RULES:
        assert len(description(rule)) > 40, rule.kind
        assert rule.family in FAMILIES, rule.kind
        assert rule.scope == ("node" if isinstance(rule, NodeRule) else "plan"), rule.kind
        assert isinstance(rule, (NodeRule, PlanRule, ReviewRule)), rule.kind
        assert set(rule.suppresses) <= set(KINDS) - {rule.kind}, rule.kind
        assert all(isinstance(value, (int, float)) for value in rule.thresholds().values()), rule.kind
        assert not rule.on_estimates or isinstance(rule, NodeRule), rule.kind
    assert set(FAMILIES) == {rule.family for rule in RULES}  # no family module without a rule


def test_the_catalogue_is_what_the_registry_generates() -> None:
    text = CATALOGUE.read_text(encoding="utf-8")
    assert with_catalogue(text) == text, "run: .venv/bin/python -m dbmaint.explain.rules --write docs/plan-problems.md"
    for rule in RULES:
        assert f"| `{rule.kind}` | {rule.family} |" in text
    assert main(["--check", str(CATALOGUE)]) == 0


def test_the_catalogue_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert capsys.readouterr().out == catalogue() + "\n"
    stale = tmp_path / "plan-problems.md"
    stale.write_text(f"intro\n\n{rules.BEGIN}\nold table\n{rules.END}\n\nafter\n", encoding="utf-8")
    assert main(["--check", str(stale)]) == 1
    assert main(["--write", str(stale)]) == 0
    assert stale.read_text(encoding="utf-8") == f"intro\n\n{catalogue()}\n\nafter\n"
    assert main(["--check", str(stale)]) == 0
    with pytest.raises(ValueError, match="no generated section"):
        with_catalogue("no markers")


def test_a_wrong_order_problem_silences_the_filter_rules_on_its_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    plan = json.loads((PLANS / "wrong_index_order_by.json").read_text())
    kinds = [(p.kind, p.node) for p in analyse(plan).problems]
    assert ("wrong_index_order_by", 1) in kinds and ("inefficient_index", 1) not in kinds
    monkeypatch.setattr(WrongIndexOrderBy, "suppresses", ())
    kinds = [(p.kind, p.node) for p in analyse(plan).problems]
    assert ("wrong_index_order_by", 1) in kinds and ("inefficient_index", 1) in kinds


def test_rules_use_no_private_member_of_another_module() -> None:
    offences = []
    for path in sorted((ROOT / "dbmaint" / "explain" / "rules").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                offences += [f"{path.name}: {a.name}" for a in node.names if a.name.startswith("_")]
            elif isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
                offences += [] if own else [f"{path.name}: .{node.attr}"]
    assert offences == []
