"""What a plan rule is: the record the registry holds, and how a rule is registered. Pure.

A rule is a frozen dataclass decorated with :func:`register`, in the module of its family. Its class variables
say what it is and what it looks at; its dataclass fields are its thresholds (their defaults are the values in
force); its docstring says what it flags and when, and is what the catalogue (``docs/plan-problems.md``) shows::

    @register
    @dataclass(frozen=True)
    class LossyBitmap(NodeRule):  # its docstring: what it flags and when
        kind = "lossy_bitmap"
        order = 100
        node_types = ("Bitmap Heap Scan",)

        def check(self, plan: Plan, node: Node) -> list[Problem]: ...
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import ClassVar, TypeVar

from dbmaint.explain.plan import Node, Plan, Problem


@dataclass(frozen=True)
class Rule:
    """One kind of problem. Subclass :class:`NodeRule`, :class:`PlanRule` or :class:`ReviewRule`."""

    kind: ClassVar[str]  # what its problems are called (Problem.kind)
    # Where its problems are listed among those of the same severity, and its place in the catalogue: lower
    # first. Steps of 10 leave room for a new rule anywhere.
    order: ClassVar[int]
    scope: ClassVar[str]  # "node": called for each node; "plan": called once with the whole plan
    node_types: ClassVar[tuple[str, ...]] = ()  # the node types it looks at; () = every node
    # Also called for the never-executed nodes of a plan without ANALYZE (estimates only); an executed plan's
    # never-executed nodes are looked at by no rule.
    on_estimates: ClassVar[bool] = False
    suppresses: ClassVar[tuple[str, ...]] = ()  # kinds whose problems on the same node its problem silences

    @property
    def family(self) -> str:
        """The module of ``dbmaint.explain.rules`` it is defined in (one of ``FAMILIES`` there)."""
        return type(self).__module__.rpartition(".")[2]

    def thresholds(self) -> dict[str, float]:
        """Its thresholds by name, in the order they are declared."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def looks_at(self, node: Node) -> bool:
        return not self.node_types or node.type in self.node_types

    def nodes(self, plan: Plan) -> list[Node]:
        """The plan's nodes of the types it looks at, in the plan's order."""
        return [node for node in plan.nodes if self.looks_at(node)]


@dataclass(frozen=True)
class NodeRule(Rule):
    """A rule called once for each node of a type it looks at, in the plan's order."""

    scope: ClassVar[str] = "node"

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        raise NotImplementedError


@dataclass(frozen=True)
class PlanRule(Rule):
    """A rule called once with the whole plan. Those listed before every node rule run before the nodes are
    looked at, the others after them (the order problems are found in, before they are sorted)."""

    scope: ClassVar[str] = "plan"

    def check(self, plan: Plan) -> list[Problem]:
        raise NotImplementedError


@dataclass(frozen=True)
class ReviewRule(Rule):
    """A rule called once with the whole plan after all the others, with their problems (less those suppressed)
    in the registry's order; its own problems are put before theirs."""

    scope: ClassVar[str] = "plan"

    def review(self, plan: Plan, others: Sequence[Problem]) -> list[Problem]:
        raise NotImplementedError


REGISTERED: list[Rule] = []
_R = TypeVar("_R", bound=type[Rule])


def register(cls: _R) -> _R:
    """Add one instance of the rule, with its thresholds' default values, to the registry."""
    REGISTERED.append(cls())
    return cls
