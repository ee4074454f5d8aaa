"""What a plan rule is: the record the registry holds, and how a rule is registered. Pure.

A rule is a class decorated with :func:`register`, in the module of its family. Its ``ClassVar`` attributes
say what it is and what it looks at; its other annotated attributes are its thresholds (the values in force);
its docstring says what it flags and when, and is what the catalogue (``docs/plan-problems.md``) shows::

    @register
    class LossyBitmap(NodeRule):  # its docstring: what it flags and when
        kind = "lossy_bitmap"
        order = 100
        node_types = ("Bitmap Heap Scan",)
        max_lossy: float = 0  # a threshold

        def check(self, plan: Plan, node: Node) -> list[Problem]: ...

Rules are plain classes rather than dataclasses: each of them is one immutable instance, and making ~25
dataclasses cost ~20 ms of every ``dbmaint explain``'s start-up (their methods are generated with ``exec``).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import ClassVar, TypeVar

from dbmaint.explain.plan import Node, Plan, Problem


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
        """Its thresholds by name, in the order they are declared (a shared mixin's first): the annotated
        attributes of its classes that are not ``ClassVar`` (annotations are strings: ``from __future__``)."""
        names: dict[str, None] = {}
        for cls in reversed(type(self).__mro__):
            for name, kind in inspect.get_annotations(cls).items():
                if not kind.startswith("ClassVar"):
                    names[name] = None
        return {name: getattr(self, name) for name in names}

    def looks_at(self, node: Node) -> bool:
        return not self.node_types or node.type in self.node_types

    def nodes(self, plan: Plan) -> list[Node]:
        """The plan's nodes of the types it looks at, in the plan's order."""
        return [node for node in plan.nodes if self.looks_at(node)]


class NodeRule(Rule):
    """A rule called once for each node of a type it looks at, in the plan's order."""

    scope: ClassVar[str] = "node"

    def check(self, plan: Plan, node: Node) -> list[Problem]:
        raise NotImplementedError


class PlanRule(Rule):
    """A rule called once with the whole plan. Those listed before every node rule run before the nodes are
    looked at, the others after them (the order problems are found in, before they are sorted)."""

    scope: ClassVar[str] = "plan"

    def check(self, plan: Plan) -> list[Problem]:
        raise NotImplementedError


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
