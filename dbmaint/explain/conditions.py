"""Conditions, queries and index definitions read with PostgreSQL's parser (pglast), for the plan rules. Pure.

A node's ``Filter``, ``Index Cond`` or ``Join Filter`` text gives the plain columns of one relation that an index
could serve (equality columns, range columns, every column mentioned); the statement's text gives its OFFSET and
ORDER BY; ``pg_get_indexdef`` gives an index's name and leading plain columns. pglast is imported when first
needed, not with the module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

_SUBPLAN_REFERENCE = re.compile(
    r"\((?:alternatives: )?(?:hashed )?(?:SubPlan|InitPlan) \d+(?: or hashed SubPlan \d+)?\)(?:\.col\d+)?"
)
_EQUALITY = {"="}
_RANGE = {"<", ">", "<=", ">="}


@dataclass(frozen=True)
class Conditions:
    """Plain columns of one relation in a condition: compared by equality, by range, or mentioned at all."""

    equality: tuple[str, ...] = ()
    ranges: tuple[str, ...] = ()
    columns: tuple[str, ...] = ()

    def index_columns(self) -> tuple[str, ...]:
        """Equality columns first, then the first range column (a btree seeks on one range only)."""
        extra = [c for c in self.ranges if c not in self.equality][:1]
        return tuple(unique([*self.equality, *extra]))

    def merge(self, other: Conditions) -> Conditions:
        return Conditions(
            tuple(unique([*self.equality, *other.equality])),
            tuple(unique([*self.ranges, *other.ranges])),
            tuple(unique([*self.columns, *other.columns])),
        )


def parse_conditions(text: str, names: set[str]) -> Conditions:
    """The plain columns of the relation known as ``names`` (alias, table name) in a condition's text."""
    from pglast import ast, enums, parse_sql
    from pglast.parser import ParseError

    try:
        statements = parse_sql(f"SELECT 1 WHERE {_SUBPLAN_REFERENCE.sub('NULL', text)}")
    except ParseError:
        return Conditions()
    where: Any = getattr(statements[0].stmt, "whereClause", None)
    equality: list[str] = []
    ranges: list[str] = []
    columns: list[str] = []

    def column(node: Any) -> str | None:
        while isinstance(node, ast.TypeCast):
            node = node.arg
        if not isinstance(node, ast.ColumnRef):
            return None
        fields = [str(f.sval) for f in node.fields or () if isinstance(f, ast.String)]
        if len(fields) != len(node.fields or ()):
            return None  # a * in the reference
        if len(fields) == 1:
            return fields[0]
        if len(fields) in (2, 3) and fields[-2] in names:
            return fields[-1]
        return None

    def mentions_own(node: Any) -> bool:
        return any(column(n) is not None for n in walk(node, ast.Node) if isinstance(n, ast.ColumnRef))

    stack = [where]
    conjuncts = []
    while stack:
        current = stack.pop()
        if isinstance(current, ast.BoolExpr) and current.boolop == enums.BoolExprType.AND_EXPR:
            stack.extend(reversed(current.args or ()))
        elif current is not None:
            conjuncts.append(current)
    for conjunct in conjuncts:
        for node in walk(conjunct, ast.Node):
            if isinstance(node, ast.ColumnRef):
                name = column(node)
                if name is not None:
                    columns.append(name)
        own = column(conjunct)
        if own is not None:  # a boolean column
            equality.append(own)
            continue
        if isinstance(conjunct, ast.BoolExpr) and conjunct.boolop == enums.BoolExprType.NOT_EXPR:
            negated = column((conjunct.args or (None,))[0])
            if negated is not None:
                equality.append(negated)
            continue
        if isinstance(conjunct, ast.NullTest):
            tested = column(conjunct.arg)
            if tested is not None and conjunct.nulltesttype == enums.NullTestType.IS_NULL:
                equality.append(tested)
            continue
        if not isinstance(conjunct, ast.A_Expr):
            continue
        operator = "".join(str(n.sval) for n in conjunct.name or () if isinstance(n, ast.String))
        kind = conjunct.kind
        left, right = conjunct.lexpr, conjunct.rexpr
        if kind == enums.A_Expr_Kind.AEXPR_OP_ANY and operator in _EQUALITY:
            own = column(left)
            if own is not None and not mentions_own(right):
                equality.append(own)
            continue
        if kind != enums.A_Expr_Kind.AEXPR_OP or operator not in _EQUALITY | _RANGE:
            continue
        for side, other in ((left, right), (right, left)):
            own = column(side)
            if own is not None and not mentions_own(other):
                (equality if operator in _EQUALITY else ranges).append(own)
                break
    return Conditions(tuple(unique(equality)), tuple(unique(ranges)), tuple(unique(columns)))


def walk(node: Any, base: Any) -> Iterator[Any]:
    """Every pglast node of type ``base`` in a tree (iterative: long AND chains nest deeply)."""
    stack = [node]
    while stack:
        current: Any = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(current)
        elif isinstance(current, base):
            yield current
            stack.extend(getattr(current, attribute) for attribute in current)


@dataclass(frozen=True)
class QueryFacts:
    has_offset: bool
    order_by: tuple[str, ...]  # the top-level ORDER BY expressions, as SQL
    order_columns: tuple[tuple[str | None, str], ...]  # (qualifier, column) when every one is a plain column


def query_facts(query: str) -> QueryFacts | None:
    from pglast import ast, parse_sql
    from pglast.parser import ParseError
    from pglast.stream import RawStream

    try:
        statements = parse_sql(query)
    except ParseError:
        return None
    if not statements:
        return None
    statement: Any = statements[0].stmt
    has_offset = any(
        getattr(node, "limitOffset", None) is not None
        for node in walk(statement, ast.Node)
        if isinstance(node, ast.SelectStmt)
    )
    order_by: list[str] = []
    columns: list[tuple[str | None, str]] = []
    plain = True
    if isinstance(statement, ast.SelectStmt):
        for sort in statement.sortClause or ():
            order_by.append(RawStream()(sort.node))
            node: Any = sort.node
            fields = [str(f.sval) for f in getattr(node, "fields", None) or () if isinstance(f, ast.String)]
            if isinstance(node, ast.ColumnRef) and fields and len(fields) == len(node.fields or ()):
                columns.append((fields[-2] if len(fields) > 1 else None, fields[-1]))
            else:
                plain = False
    return QueryFacts(has_offset, tuple(order_by), tuple(columns) if plain else ())


_INDEX_DEFINITION = re.compile(
    r'^CREATE (?:UNIQUE )?INDEX (?:CONCURRENTLY )?(?:IF NOT EXISTS )?("(?:[^"]|"")+"|\S+) ON (?:ONLY )?\S+ '
    r"(?:USING \w+ )?\((.*)\)",
    re.IGNORECASE,
)


_FIRST_IDENTIFIER = re.compile(r'("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)(?:\s|$)')


def index_definition(definition: str) -> tuple[str, tuple[str, ...]] | None:
    """(index name, leading plain columns) of a pg_get_indexdef text; columns stop at the first expression."""
    match = _INDEX_DEFINITION.match(definition.strip())
    if match is None:
        return None
    name = unquote(match.group(1))
    body = match.group(2)
    depth, start, items = 0, 0, []
    for position, char in enumerate(body):
        if char == "(":
            depth += 1
        elif char == ")":
            if depth == 0:
                body = body[:position]
                break
            depth -= 1
        elif char == "," and depth == 0:
            items.append(body[start:position])
            start = position + 1
    items.append(body[start:])
    columns: list[str] = []
    for item in items:
        first = _FIRST_IDENTIFIER.match(item.strip())
        if first is None:
            break  # an expression: the columns after it are not plain either
        columns.append(unquote(first.group(1)))
    return (name, tuple(columns))


def unquote(name: str) -> str:
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        return name[1:-1].replace('""', '"')
    return name


def unique(values: Iterable[str]) -> list[str]:
    """The values in their first order, each once."""
    seen: list[str] = []
    for value in values:
        if value not in seen:
            seen.append(value)
    return seen
