"""What a statement does with which columns, read with PostgreSQL's own parser (pglast, libpg_query).

The advisor needs, per base table, the columns a statement compares with equality, with a range, joins
on, sorts and groups by, and the columns it reads. Names are resolved the way PostgreSQL resolves them:
aliases, CTEs (materialized or not), subqueries in FROM, views (their definitions are parsed in turn),
quoted mixed-case identifiers, and ORDER BY / GROUP BY by output alias or position. Catalog tables,
foreign tables and tables that do not exist are reported as skipped, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pglast import ast as _ast
from pglast import enums, parse_sql
from pglast.parser import ParseError, scan
from pglast.stream import RawStream

from dbmaint.sql.syntax import syntax_message

# pglast annotates every node attribute as Optional; the grammar guarantees what each node kind carries,
# so nodes are handled as Any here rather than asserted non-None at every step.
ast: Any = _ast

Role = Literal["eq", "range", "join", "order", "group", "read"]
_RANGE_OPERATORS = {"<", ">", "<=", ">="}
_FLIPPED = {"<": ">", ">": "<", "<=": ">=", ">=": "<="}
_MAX_VIEW_DEPTH = 8


@dataclass(frozen=True)
class Relation:
    """A relation of the catalog, as far as the advisor cares."""

    schema: str
    name: str
    kind: str  # r table, p partitioned table, v view, m materialized view, f foreign table
    columns: Mapping[str, str]  # column name -> type, in order
    view_definition: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class Catalog:
    relations: Mapping[tuple[str, str], Relation]
    search_path: tuple[str, ...] = ("public",)

    def lookup(self, schema: str | None, name: str) -> Relation | None:
        if schema is not None:
            return self.relations.get((schema, name))
        for candidate in ("pg_catalog", *self.search_path):
            found = self.relations.get((candidate, name))
            if found is not None:
                return found
        return None


@dataclass(frozen=True)
class ColumnUse:
    schema: str
    table: str
    column: str
    role: Role
    param: int | None = None  # the $n compared with this column, if any
    constant: str | None = None  # SQL text of the constant compared with it (col = 'x'), if any
    operator: str | None = None
    descending: bool = False
    # ORDER BY's ordering as an index column states it: "", "DESC", "NULLS FIRST" or "DESC NULLS LAST".
    ordering: str = ""


@dataclass
class Shape:
    """The column uses of one statement, and what could not be resolved."""

    kind: str  # select, insert, update, delete, merge, utility
    uses: list[ColumnUse] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    has_limit: bool = False
    # $n in LIMIT and OFFSET, with a value to plan them with (they compare with no column).
    limit_params: dict[int, str] = field(default_factory=dict)
    # $n whose type only their context gives (arithmetic between parameters, CASE results summed), and
    # the $n that appear at all: a repaired text can lose one (extract($1 from x)).
    context_types: dict[int, str] = field(default_factory=dict)
    params_seen: set[int] = field(default_factory=set)
    array_params: set[int] = field(default_factory=set)
    # $n added to or taken from a range's bound ($2 + $3): planned as zero, so the bound alone counts.
    offset_params: set[int] = field(default_factory=set)

    def tables(self) -> set[tuple[str, str]]:
        return {(u.schema, u.table) for u in self.uses}

    def param_types(self, catalog: Catalog) -> dict[int, str]:
        """$n -> the type of the column it is compared with (for PREPARE when the server cannot infer)."""
        types: dict[int, str] = {}
        for use in self.uses:
            relation = catalog.relations.get((use.schema, use.table))
            if use.param is not None and relation is not None and use.column in relation.columns:
                suffix = "[]" if use.param in self.array_params else ""
                types.setdefault(use.param, relation.columns[use.column] + suffix)
        for number, type_name in self.context_types.items():
            types.setdefault(number, type_name)
        for number in range(1, max(self.params_seen, default=0)):
            if number not in self.params_seen:
                types.setdefault(number, "text")  # declared but unused: any type will do
        return types


class ShapeError(ValueError):
    """The statement is not valid SQL for the parser; str() says where."""


# A column as seen from a query: the base table (None when it is computed) and its column name.
Origin = tuple[Relation, str] | None


@dataclass
class _Source:
    """One FROM item: a base relation (all its columns) or a derived one (a column -> origin map)."""

    alias: str
    relation: Relation | None
    derived: dict[str, Origin] | None = None

    def column(self, name: str) -> tuple[bool, Origin]:
        if self.relation is not None:
            return (name in self.relation.columns, (self.relation, name) if name in self.relation.columns else None)
        assert self.derived is not None
        return (name in self.derived, self.derived.get(name))

    def all_columns(self) -> list[tuple[str, Origin]]:
        if self.relation is not None:
            return [(c, (self.relation, c)) for c in self.relation.columns]
        return list((self.derived or {}).items())


@dataclass
class _Scope:
    sources: list[_Source]
    parent: _Scope | None = None
    ctes: dict[str, ast.Node] = field(default_factory=dict)

    def find_cte(self, name: str) -> ast.Node | None:
        scope: _Scope | None = self
        while scope is not None:
            if name in scope.ctes:
                return scope.ctes[name]
            scope = scope.parent
        return None

    def resolve(self, fields: Sequence[str]) -> Origin:
        scope: _Scope | None = self
        while scope is not None:
            found, origin = scope._resolve_here(fields)
            if found:
                return origin
            scope = scope.parent
        return None

    def _resolve_here(self, fields: Sequence[str]) -> tuple[bool, Origin]:
        column = fields[-1]
        qualifier = fields[-2] if len(fields) >= 2 else None
        for source in self.sources:
            if qualifier is not None and source.alias != qualifier:
                continue
            found, origin = source.column(column)
            if found:
                return True, origin
        return False, None


def parse(query: str) -> list[ast.Node]:
    try:
        return [raw.stmt for raw in parse_sql(query)]
    except ParseError as exc:
        raise ShapeError(syntax_message(exc)) from None


def relation_names(queries: Iterable[str]) -> set[str] | None:
    """The names of the relations the statements name, as written (the catalog resolves their schemas),
    in subqueries and CTEs too (a CTE's own name is taken along: a relation of that name is harmless);
    None when one of them cannot be parsed, and so its relations are not known."""
    names: set[str] = set()
    for query in queries:
        try:
            stack: list[Any] = parse(repair_normalized(query))
        except ShapeError:
            return None
        while stack:
            current = stack.pop()
            if isinstance(current, (list, tuple)):
                stack.extend(current)
            elif isinstance(current, ast.Node):
                if isinstance(current, ast.RangeVar) and current.relname:
                    names.add(current.relname)
                stack.extend(getattr(current, attribute) for attribute in current)
    return names


def analyse(query: str, catalog: Catalog) -> Shape:
    """The shape of a single statement (the first one, when there are several)."""
    try:
        statements = parse(query)
        if not statements:
            raise ShapeError("empty statement")
        shape = _Walker(catalog).statement(statements[0])
        shape.params_seen, shape.context_types = _context_types(statements[0])
        return shape
    except RecursionError:
        raise ShapeError("statement nested too deeply to analyse") from None


class _Walker:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.shape = Shape(kind="utility")
        self.view_depth = 0

    def statement(self, node: ast.Node) -> Shape:
        if isinstance(node, ast.SelectStmt):
            self.shape.kind = "select"
            self.select(node, None)
        elif isinstance(node, ast.InsertStmt):
            self.shape.kind = "insert"
            if node.selectStmt is not None:
                self.select(node.selectStmt, None)
        elif isinstance(node, ast.UpdateStmt):
            self.shape.kind = "update"
            self._modify(node.relation, node.fromClause, node.whereClause, node.withClause)
        elif isinstance(node, ast.DeleteStmt):
            self.shape.kind = "delete"
            self._modify(node.relation, node.usingClause, node.whereClause, node.withClause)
        elif isinstance(node, ast.ExplainStmt):
            self.shape.kind = "utility"  # EXPLAIN ... of something: not workload
        return self.shape

    def _modify(self, relation: ast.RangeVar, extra_from: Any, where: Any, with_clause: Any) -> None:
        scope = _Scope(sources=[])
        self._with(with_clause, scope)
        for item in [relation, *(extra_from or ())]:
            source = self.from_item(item, scope)
            if source is not None:
                scope.sources.append(source)
        self.predicate(where, scope)

    # --- SELECT -------------------------------------------------------------------------------------

    def select(self, node: ast.SelectStmt, parent: _Scope | None) -> dict[str, Origin]:
        """Walk a SELECT; return its output columns' origins (for use as a derived relation)."""
        if node.op is not None and node.op != enums.SetOperation.SETOP_NONE:
            scope = _Scope(sources=[], parent=parent)
            self._with(node.withClause, scope)
            left = self.select(node.larg, scope)
            self.select(node.rarg, scope)
            return dict.fromkeys(left)  # origins differ per branch: treat the result as computed
        if node.valuesLists:
            return {}
        scope = _Scope(sources=[], parent=parent)
        self._with(node.withClause, scope)
        for item in node.fromClause or ():
            source = self.from_item(item, scope)
            if source is not None:
                scope.sources.append(source)
        outputs = self._outputs(node.targetList or (), scope)
        self.predicate(node.whereClause, scope)
        self.predicate(node.havingClause, scope)
        if node.limitCount is not None or node.limitOffset is not None:
            self.shape.has_limit = True
            for clause, value in ((node.limitCount, "20"), (node.limitOffset, "0")):
                number = _param(clause)
                if number is not None:
                    self.shape.limit_params[number] = value
        self._clause_columns(node.groupClause or (), scope, outputs, "group")
        self._clause_columns(node.sortClause or (), scope, outputs, "order")
        return {name: origin for name, origin, _ in outputs}

    def _with(self, with_clause: ast.WithClause | None, scope: _Scope) -> None:
        for cte in (with_clause.ctes if with_clause else None) or ():
            scope.ctes[cte.ctename] = cte.ctequery

    def _outputs(self, targets: Iterable[ast.ResTarget], scope: _Scope) -> list[tuple[str, Origin, ast.Node]]:
        outputs: list[tuple[str, Origin, ast.Node]] = []
        for target in targets:
            value = target.val
            if isinstance(value, ast.ColumnRef) and isinstance(value.fields[-1], ast.A_Star):
                qualifier = _names(value.fields[:-1])
                for source in scope.sources:
                    if qualifier and source.alias != qualifier[-1]:
                        continue
                    for name, origin in source.all_columns():
                        self._read(origin)
                        outputs.append((name, origin, value))
                continue
            origin = self.expression_origin(value, scope)
            self.reads(value, scope)
            name = target.name or (_names(value.fields)[-1] if isinstance(value, ast.ColumnRef) else "?column?")
            outputs.append((name, origin, value))
        return outputs

    def _clause_columns(
        self, items: Iterable[ast.Node], scope: _Scope, outputs: list[tuple[str, Origin, ast.Node]], role: Role
    ) -> None:
        for item in items:
            node = item.node if isinstance(item, ast.SortBy) else item
            descending = isinstance(item, ast.SortBy) and item.sortby_dir == enums.SortByDir.SORTBY_DESC
            ordering = _ordering(item) if isinstance(item, ast.SortBy) else ""
            origin: Origin = None
            if isinstance(node, ast.A_Const) and isinstance(node.val, ast.Integer):  # ORDER BY 2
                position = node.val.ival - 1
                origin = outputs[position][1] if 0 <= position < len(outputs) else None
            elif isinstance(node, ast.ColumnRef) and len(node.fields) == 1:
                name = _names(node.fields)[-1]
                by_alias = [o for n, o, _ in outputs if n == name]
                # An output alias wins in ORDER BY; in GROUP BY an input column does (PostgreSQL's rules).
                resolved = scope.resolve([name])
                origin = (by_alias[0] if by_alias else resolved) if role == "order" else (resolved or _first(by_alias))
            else:
                origin = self.expression_origin(node, scope)
            if origin is not None:
                self._use(origin, role, descending=descending, ordering=ordering)

    # --- FROM ---------------------------------------------------------------------------------------

    def from_item(self, item: ast.Node, scope: _Scope) -> _Source | None:
        if isinstance(item, ast.RangeVar):
            return self.range_var(item, scope)
        if isinstance(item, ast.JoinExpr):
            left = self.from_item(item.larg, scope)
            right = self.from_item(item.rarg, scope)
            for source in (left, right):
                if source is not None:
                    scope.sources.append(source)
            if item.usingClause:
                for name in _names(item.usingClause):
                    self._join_pair(left, right, name)
            self.predicate(item.quals, scope)
            # Both sides are already in the scope; the join itself adds no new names.
            return None
        if isinstance(item, ast.RangeSubselect):
            derived = self.select(item.subquery, scope if item.lateral else scope.parent)
            alias = item.alias.aliasname if item.alias else "?subquery?"
            return _Source(alias, None, _renamed(derived, item.alias))
        if isinstance(item, ast.RangeFunction):
            return None  # set-returning functions have no indexes
        return None

    def _join_pair(self, left: _Source | None, right: _Source | None, column: str) -> None:
        for source in (left, right):
            if source is not None:
                _, origin = source.column(column)
                if origin is not None:
                    self._use(origin, "join")

    def range_var(self, item: ast.RangeVar, scope: _Scope) -> _Source | None:
        alias = item.alias.aliasname if item.alias else item.relname
        if item.schemaname is None:
            cte = scope.find_cte(item.relname)
            if cte is not None:
                derived = self.select(cte, scope) if isinstance(cte, ast.SelectStmt) else {}
                return _Source(alias, None, _renamed(derived, item.alias))
        relation = self.catalog.lookup(item.schemaname, item.relname)
        shown = f"{item.schemaname}.{item.relname}" if item.schemaname else item.relname
        if relation is None:
            self._skip(f"{shown}: no such table")
            return None
        if relation.schema in ("pg_catalog", "information_schema"):
            self._skip(f"{relation.qualified_name}: system catalog")
            return None
        if relation.kind == "f":
            self._skip(f"{relation.qualified_name}: foreign table (indexes live on the remote server)")
            return None
        if relation.kind == "v":
            return _Source(alias, None, _renamed(self.view(relation, scope), item.alias))
        return _Source(alias, relation)

    def view(self, relation: Relation, scope: _Scope) -> dict[str, Origin]:
        if relation.view_definition is None or self.view_depth >= _MAX_VIEW_DEPTH:
            self._skip(f"{relation.qualified_name}: view definition not available")
            return {}
        self.view_depth += 1
        try:
            (definition,) = parse(relation.view_definition)
            derived = self.select(definition, None) if isinstance(definition, ast.SelectStmt) else {}
        finally:
            self.view_depth -= 1
        # A view's output columns carry the view's own column names, in order.
        return dict(zip(relation.columns, derived.values(), strict=False))

    # --- WHERE and friends --------------------------------------------------------------------------

    def predicate(self, node: Any, scope: _Scope) -> None:
        if node is None:
            return
        if isinstance(node, ast.BoolExpr):
            if node.boolop == enums.BoolExprType.AND_EXPR:
                for arg in node.args:
                    self.predicate(arg, scope)
            else:  # OR and NOT: no single index serves them; the columns are still read
                if node.boolop == enums.BoolExprType.OR_EXPR:
                    for left, right in self._joins_in_every_arm(node.args, scope):
                        self._use(left, "join")
                        self._use(right, "join")
                self.reads(node, scope)
            return
        if isinstance(node, ast.A_Expr):
            self._comparison(node, scope)
            return
        if isinstance(node, ast.NullTest):
            origin = self.expression_origin(node.arg, scope)
            if origin is not None:
                self._use(origin, "eq", constant="NULL", operator="IS")
            return
        if isinstance(node, ast.SubLink):
            self._sublink(node, scope)
            return
        self.reads(node, scope)

    def _comparison(self, node: ast.A_Expr, scope: _Scope) -> None:
        operator = _names(node.name)[-1] if node.name else ""
        kind = node.kind
        left = self.expression_origin(node.lexpr, scope)
        if kind in (enums.A_Expr_Kind.AEXPR_IN, enums.A_Expr_Kind.AEXPR_OP_ANY) and operator == "=":
            if kind == enums.A_Expr_Kind.AEXPR_OP_ANY and isinstance(node.rexpr, ast.ParamRef):
                self.shape.array_params.add(node.rexpr.number)  # col = ANY ($1): $1 is an array
            elements = node.rexpr.elements if isinstance(node.rexpr, ast.A_ArrayExpr) else None
            numbers = [e.number for e in elements or () if isinstance(e, ast.ParamRef)]
            if left is not None and numbers:  # col = ANY (ARRAY[$1, $2]): ARRAY of unknown is text[]
                for number in numbers:
                    self._use(left, "read", param=number)
            if left is not None:
                self._use(left, "eq", param=_param(node.rexpr))
            self.reads(node.rexpr, scope)
            return
        if kind == enums.A_Expr_Kind.AEXPR_BETWEEN:
            self._subqueries(node, scope)
            if left is not None:
                bounds = node.rexpr if isinstance(node.rexpr, (list, tuple)) else ()
                # Each bound a range use of its own, as `col >= $1 AND col <= $2` would be: both need a
                # value to plan with (one left out, the statement fell back to a generic plan, which
                # prices a two-sided range at 0.5% of the rows: TPC-H q06's year looked 2.7x cheaper
                # with an index on l_shipdate and ran 1.6x slower).
                sides = [
                    (_param(bound) or self._offset_bound(bound), operator)
                    for bound, operator in zip(bounds, (">=", "<="), strict=False)
                ]
                if not any(param for param, _ in sides):
                    self._use(left, "range")
                for param, operator in sides:
                    if param:
                        self._use(left, "range", param=param, operator=operator)
            return
        if kind != enums.A_Expr_Kind.AEXPR_OP or (operator != "=" and operator not in _RANGE_OPERATORS):
            self.reads(node, scope)  # LIKE, <>, IS DISTINCT FROM ...: no plain btree use
            if left is not None and _param(node.rexpr) is not None:  # but $n needs a value to plan with
                self._use(left, "read", param=_param(node.rexpr), operator=operator)
            return
        right = self.expression_origin(node.rexpr, scope)
        # x > (SELECT ... FROM lineitem WHERE l_partkey = outer.col): the subquery's own uses count
        # (TPC-H q17, q20), whatever the comparison makes of its value.
        self._subqueries(node, scope)
        if left is not None and right is not None:
            if left[0] is not right[0]:
                self._use(left, "join")
                self._use(right, "join")
            return
        role: Role = "eq" if operator == "=" else "range"
        if left is not None and not self._mentions_columns(node.rexpr, scope):
            param = _param(node.rexpr) or self._offset_bound(node.rexpr)
            self._use(left, role, param=param, constant=_constant(node.rexpr), operator=operator)
        elif right is not None and not self._mentions_columns(node.lexpr, scope):
            flipped = _FLIPPED.get(operator, operator)
            param = _param(node.lexpr) or self._offset_bound(node.lexpr)
            self._use(right, role, param=param, constant=_constant(node.lexpr), operator=flipped)
        else:
            self.reads(node, scope)

    def _joins_in_every_arm(self, arms: Sequence[Any], scope: _Scope) -> list[tuple[Any, Any]]:
        """Join equalities that every arm of an OR repeats (TPC-H q19: ``(p_partkey = l_partkey AND ...)
        OR (p_partkey = l_partkey AND ...)``): the join is on them whichever arm holds."""
        common: dict[tuple[str, ...], tuple[Any, Any]] | None = None
        for arm in arms:
            conjuncts = (
                arm.args if isinstance(arm, ast.BoolExpr) and arm.boolop == enums.BoolExprType.AND_EXPR else [arm]
            )
            found: dict[tuple[str, ...], tuple[Any, Any]] = {}
            for conjunct in conjuncts:
                if not (
                    isinstance(conjunct, ast.A_Expr)
                    and conjunct.kind == enums.A_Expr_Kind.AEXPR_OP
                    and _names(conjunct.name)[-1:] == ["="]
                ):
                    continue
                left = self.expression_origin(conjunct.lexpr, scope)
                right = self.expression_origin(conjunct.rexpr, scope)
                if left is not None and right is not None and left[0] is not right[0]:
                    ends = sorted([(left[0].schema, left[0].name, left[1]), (right[0].schema, right[0].name, right[1])])
                    found[tuple(part for end in ends for part in end)] = (left, right)
            common = found if common is None else {key: common[key] for key in common.keys() & found.keys()}
        return list((common or {}).values())

    def _offset_bound(self, node: Any) -> int | None:
        """``$2::date + $3::interval`` (TPC-H's ``date '1994-01-01' + interval '1' year``): the bound is $2,
        and $3 an offset that can be planned as zero (recorded in offset_params)."""
        if not (isinstance(node, ast.A_Expr) and _is_arithmetic(node) and _names(node.name)[-1] in ("+", "-")):
            return None
        bound, offset = _param(node.lexpr), _param(node.rexpr)
        if bound is None or offset is None:
            return None
        self.shape.offset_params.add(offset)
        return bound

    def _subqueries(self, node: Any, scope: _Scope) -> None:
        for found in _walk(node):
            if isinstance(found, ast.SubLink):
                self._sublink(found, scope)

    def _sublink(self, node: ast.SubLink, scope: _Scope) -> None:
        if node.subLinkType == enums.SubLinkType.ANY_SUBLINK and node.testexpr is not None:
            origin = self.expression_origin(node.testexpr, scope)
            if origin is not None:
                self._use(origin, "join")  # x IN (SELECT ...) is a semi-join on x
        if isinstance(node.subselect, ast.SelectStmt):
            outputs = self.select(node.subselect, scope)
            if node.subLinkType == enums.SubLinkType.ANY_SUBLINK:
                for origin in list(outputs.values())[:1]:
                    if origin is not None:
                        self._use(origin, "join")

    def expression_origin(self, node: Any, scope: _Scope) -> Origin:
        """The base column an expression is, when it is one (through casts); None otherwise."""
        while isinstance(node, ast.TypeCast):
            node = node.arg
        if isinstance(node, ast.ColumnRef) and not isinstance(node.fields[-1], ast.A_Star):
            return scope.resolve(_names(node.fields))
        return None

    def _mentions_columns(self, node: Any, scope: _Scope) -> bool:
        return any(True for _ in self._column_refs(node))

    def reads(self, node: Any, scope: _Scope) -> None:
        """Record every column an expression reads (for covering indexes); descend into subqueries."""
        for found in _walk(node):
            if isinstance(found, ast.ColumnRef) and not isinstance(found.fields[-1], ast.A_Star):
                self._read(scope.resolve(_names(found.fields)))
            elif isinstance(found, ast.SubLink):
                self._sublink(found, scope)

    def _column_refs(self, node: Any) -> Iterator[ast.ColumnRef]:
        for found in _walk(node):
            if isinstance(found, ast.ColumnRef):
                yield found

    # --- recording ----------------------------------------------------------------------------------

    def _use(
        self,
        origin: tuple[Relation, str],
        role: Role,
        *,
        param: int | None = None,
        constant: str | None = None,
        operator: str | None = None,
        descending: bool = False,
        ordering: str = "",
    ) -> None:
        relation, column = origin
        use = ColumnUse(relation.schema, relation.name, column, role, param, constant, operator, descending, ordering)
        self.shape.uses.append(use)

    def _read(self, origin: Origin) -> None:
        if origin is not None:
            self._use(origin, "read")

    def _skip(self, reason: str) -> None:
        if reason not in self.shape.skipped:
            self.shape.skipped.append(reason)


def _walk(node: Any) -> Iterator[Any]:
    """Every node under ``node``, not descending into subqueries (SubLinks are yielded, not entered).

    Iterative: a long chain such as a + b + c ... or a thousand-item IN list nests deeper than Python's
    recursion limit.
    """
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend(reversed(current))
        elif isinstance(current, ast.Node):
            yield current
            if not isinstance(current, ast.SubLink):
                stack.extend(getattr(current, attribute) for attribute in reversed(list(current)))


_ARITHMETIC = frozenset({"+", "-", "*", "/", "%", "^"})
_NUMERIC_AGGREGATES = frozenset({"sum", "avg", "stddev", "stddev_pop", "stddev_samp", "variance", "var_pop",
                                 "var_samp", "min", "max"})  # fmt: skip


def _context_types(statement: Any) -> tuple[set[int], dict[int, str]]:
    """Every $n of the statement, and a type for those PostgreSQL cannot resolve from their context.

    Normalizing turns ``0.06 - 0.01`` into ``$4 - $5`` (unknown - unknown: "operator is not unique") and
    ``sum(case when ... then 1 else 0 end)`` into a CASE of parameters only (resolved as text: "function
    sum(text) does not exist"). Both were numbers, and are planned as numeric. Subqueries are entered.
    """
    seen: set[int] = set()
    types: dict[int, str] = {}
    stack: list[tuple[Any, Any]] = [(statement, None)]
    while stack:
        current, parent = stack.pop()
        if isinstance(current, (list, tuple)):
            stack.extend((item, parent) for item in current)
            continue
        if not isinstance(current, ast.Node):
            continue
        if isinstance(current, ast.ParamRef):
            seen.add(current.number)
        elif _is_arithmetic(current) and (numbers := _bare_params(current)) is not None:
            types.update(dict.fromkeys(numbers, "numeric"))
        elif _is_arithmetic(current) and _names(current.name)[-1] in ("+", "-"):
            # date - $1 resolves as date - date (an integer, compared with a date: "operator does not
            # exist"); the constant was a number of days, or an interval for a timestamp.
            for operand, other in ((current.lexpr, current.rexpr), (current.rexpr, current.lexpr)):
                if isinstance(operand, ast.ParamRef) and (temporal := _temporal(other)) is not None:
                    types[operand.number] = "integer" if temporal == "date" else "interval"
        elif isinstance(current, ast.CaseExpr) and _numeric_context(parent):
            results = [when.result for when in current.args or ()] + [current.defresult]
            if all(r is None or isinstance(r, ast.ParamRef) for r in results):
                types.update(dict.fromkeys((r.number for r in results if r is not None), "numeric"))
        stack.extend((getattr(current, attribute), current) for attribute in current)
    return seen, types


def _is_arithmetic(node: Any) -> bool:
    return (
        isinstance(node, ast.A_Expr)
        and node.kind == enums.A_Expr_Kind.AEXPR_OP
        and bool(node.name)
        and _names(node.name)[-1] in _ARITHMETIC
    )


def _bare_params(node: Any) -> list[int] | None:
    """The $n of an expression made only of $n and arithmetic; None when anything else is in it.

    Iterative: a chain a + b + c ... nests deeper than Python's recursion limit.
    """
    numbers: list[int] = []
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, ast.ParamRef):
            numbers.append(current.number)
        elif _is_arithmetic(current):
            stack.extend(operand for operand in (current.lexpr, current.rexpr) if operand is not None)
        else:
            return None
    return numbers


_TIMESTAMP_FUNCTIONS = frozenset({"now", "clock_timestamp", "statement_timestamp", "transaction_timestamp"})


def _temporal(node: Any) -> str | None:
    """'date' or 'timestamp' when the expression is plainly one (a cast, current_date, now())."""
    if isinstance(node, ast.TypeCast):
        name = _names(node.typeName.names)[-1]
        return "date" if name == "date" else "timestamp" if name.startswith("timestamp") else None
    if isinstance(node, ast.SQLValueFunction):
        if node.op == enums.SQLValueFunctionOp.SVFOP_CURRENT_DATE:
            return "date"
        return "timestamp" if "TIMESTAMP" in node.op.name else None
    if isinstance(node, ast.FuncCall) and _names(node.funcname)[-1].lower() in _TIMESTAMP_FUNCTIONS:
        return "timestamp"
    return None


def _numeric_context(parent: Any) -> bool:
    if isinstance(parent, ast.FuncCall):
        return _names(parent.funcname)[-1].lower() in _NUMERIC_AGGREGATES
    return _is_arithmetic(parent)


def _ordering(item: Any) -> str:
    """ORDER BY x [DESC] [NULLS FIRST|LAST], said the shortest way an index column says it."""
    descending = item.sortby_dir == enums.SortByDir.SORTBY_DESC
    nulls_first = {
        enums.SortByNulls.SORTBY_NULLS_FIRST: True,
        enums.SortByNulls.SORTBY_NULLS_LAST: False,
    }.get(item.sortby_nulls, descending)  # the default: NULLS LAST ascending, NULLS FIRST descending
    if descending:
        return "DESC" if nulls_first else "DESC NULLS LAST"
    return "NULLS FIRST" if nulls_first else ""


def _names(fields: Iterable[Any]) -> list[str]:
    return [f.sval for f in fields if isinstance(f, ast.String)]


def _renamed(derived: dict[str, Origin], alias: ast.Alias | None) -> dict[str, Origin]:
    """Apply a column alias list: ``FROM (SELECT ...) AS s(a, b)``."""
    if alias is None or not alias.colnames:
        return derived
    names = _names(alias.colnames)
    values = list(derived.values())
    renamed = dict(zip(names, values, strict=False))
    renamed.update({k: v for k, v in list(derived.items())[len(names) :]})
    return renamed


def _param(node: Any) -> int | None:
    while isinstance(node, ast.TypeCast):
        node = node.arg
    return node.number if isinstance(node, ast.ParamRef) else None


def _constant(node: Any) -> str | None:
    inner = node
    while isinstance(inner, ast.TypeCast):
        inner = inner.arg
    if isinstance(inner, ast.A_Const) and not inner.isnull:
        return str(RawStream()(node))
    return None


def _first(values: Sequence[Any]) -> Any:
    return values[0] if values else None


# --- repairing pg_stat_statements' normalized text ----------------------------------------------------

# Type names that pg_stat_statements leaves in front of a normalized literal: date '2024-01-01' -> date $1.
_TYPED_LITERAL_TOKENS = {"IDENT", "TIME", "TIMESTAMP", "INTERVAL", "DOUBLE_P", "REAL", "SMALLINT", "INT_P",
                         "INTEGER", "BIGINT", "NUMERIC", "DECIMAL_P", "BOOLEAN_P", "CHARACTER", "CHAR_P",
                         "VARCHAR", "BIT", "JSON"}  # fmt: skip
_INTERVAL_UNITS = {"YEAR_P", "MONTH_P", "DAY_P", "HOUR_P", "MINUTE_P", "SECOND_P"}


def repair_normalized(query: str) -> str:
    """Make pg_stat_statements' normalized text plannable again.

    Literals replaced by $n leave constructs PostgreSQL cannot parse with a parameter in them:
    ``date $1`` and ``interval $1 month`` (typed literals) become ``$1::date`` and ``$1::interval``, and
    ``extract($1 from x)`` gets a field name back (``epoch``; any field plans the same). The scanner
    (not a regular expression) finds them, so strings and comments are never touched.
    """
    try:
        tokens = list(scan(query))
    except ParseError:
        return query
    edits: list[tuple[int, int, str]] = []
    for i, token in enumerate(tokens):
        if token.name != "PARAM":
            continue
        text = query[token.start : token.end + 1]
        previous = tokens[i - 1] if i > 0 else None
        before = tokens[i - 2] if i > 1 else None
        if previous is not None and previous.name == "ASCII_40" and before is not None and before.name == "EXTRACT":
            edits.append((token.start, token.end + 1, "epoch"))
        elif previous is not None and previous.name in _TYPED_LITERAL_TOKENS and _is_type_prefix(tokens, i - 1):
            type_name = query[previous.start : previous.end + 1]
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            end = token.end + 1
            if previous.name == "INTERVAL" and following is not None and following.name in _INTERVAL_UNITS:
                end = following.end + 1  # interval $1 month -> $1::interval
            edits.append((previous.start, end, f"{text}::{type_name}"))
    for start, end, replacement in sorted(edits, reverse=True):
        query = query[:start] + replacement + query[end:]
    return query


def _is_type_prefix(tokens: Sequence[Any], index: int) -> bool:
    """A type name directly before $n is a typed literal (no other SQL puts a name right before $n).

    Whatever precedes it (``=``, ``>=``, ``<>``, ``+``, BETWEEN, AND, a comma, a parenthesis) does not
    matter; a qualified type name (``s.t $1``) is left alone, its prefix is not read here.
    """
    return index > 0 and tokens[index - 1].name != "ASCII_46"
