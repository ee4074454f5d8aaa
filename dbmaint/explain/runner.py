"""`dbmaint explain`: the plan of one statement, what is wrong with it, and proven fixes.

Safe by construction (docs/contract.md rule 10): the statement is classified with PostgreSQL's parser first.
A query runs in a READ ONLY transaction; INSERT/UPDATE/DELETE/MERGE are executed (ANALYZE) only when
asked, inside a transaction that is always rolled back, with lock_timeout; anything else is refused
with the reason. Every run has a statement_timeout.

Statements with $1, $2 ... (copied from pg_stat_statements or a log) work on PostgreSQL 15: the
statement is PREPAREd, and either planned generically (force_generic_plan, estimates only) or run with
the values given by --param, or with representative values from pg_stats: a common value, and a rare one
for comparison.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import sql

from dbmaint.errors import DatabaseError, UsageError
from dbmaint.explain import plan_analysis, safety
from dbmaint.pg import catalog, db

if TYPE_CHECKING:
    from dbmaint.config import AdvisorConfig
    from dbmaint.sql import sqlshape

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]
_PREPARED = "dbmaint_explain"


@dataclass(frozen=True)
class Request:
    sql: str
    analyze: bool = True
    analyze_writes: bool = False
    params: tuple[str, ...] = ()
    timeout_s: float = 30.0
    lock_timeout_s: float = 5.0
    # Take user functions at their word (VOLATILE, SECURITY DEFINER, foreign tables): see dbmaint.explain.sandbox.
    trust_functions: bool = False
    # A weaker role to execute the statement as (SET LOCAL ROLE), from [explain] role.
    role: str | None = None
    # The rules index fixes are chosen by, as for dbmaint advise ([advisor]).
    advisor: AdvisorConfig | None = None


@dataclass(frozen=True)
class ProvenFix:
    problem: int  # index into the analysis' problems
    definition: str
    cost_before: float
    cost_after: float

    def to_json(self) -> dict[str, Any]:
        return {
            "problem": self.problem,
            "definition": self.definition,
            "cost_before": round(self.cost_before, 2),
            "cost_after": round(self.cost_after, 2),
        }


@dataclass
class Result:
    statement: str
    kind: str  # read or write
    analyzed: bool
    plan: Any
    analysis: plan_analysis.PlanAnalysis
    notes: list[str] = field(default_factory=list)
    values: dict[int, str] = field(default_factory=dict)
    rare: dict[str, Any] | None = None  # the same statement with rare values: timing and plan change
    fixes: list[ProvenFix] = field(default_factory=list)
    context: dict[str, plan_analysis.TableContext] = field(default_factory=dict)
    not_executed_because: str | None = None  # ANALYZE was asked, but running it was not proven harmless

    def to_json(self) -> dict[str, Any]:
        document = self.analysis.to_json()
        return {
            "statement": self.statement,
            "kind": self.kind,
            "analyzed": self.analyzed,
            "not_executed_because": self.not_executed_because,
            "parameters": {f"${n}": v for n, v in sorted(self.values.items())},
            "plan": self.plan,
            "nodes": document["nodes"],
            "problems": [
                {**problem, "proven": next((f.to_json() for f in self.fixes if f.problem == i), None)}
                for i, problem in enumerate(document["problems"])
            ],
            "execution_ms": document["execution_ms"],
            "planning_ms": document["planning_ms"],
            "total_cost": document["total_cost"],
            "settings": document["settings"],
            "rare_values": self.rare,
            "tables": {name: _context_json(c) for name, c in self.context.items()},
            "notes": self.notes,
        }


def _context_json(context: plan_analysis.TableContext) -> dict[str, Any]:
    return {
        "size_bytes": context.size_bytes,
        "rows": context.reltuples,
        "last_analyze": context.last_analyze.isoformat() if context.last_analyze else None,
        "rows_changed_since_analyze": context.n_mod_since_analyze,
        "indexes": list(context.indexes),
    }


def classify(text: str) -> safety.Verdict:
    try:
        verdict = safety.classify(text)
    except safety.SyntaxProblem as exc:
        raise UsageError(str(exc)) from None
    if verdict.kind == "refused":
        raise UsageError(f"refused: {verdict.reason}")
    return verdict


def explain(conn: Connection, request: Request, *, relations: sqlshape.Catalog | None = None) -> Result:
    """``relations``: the catalog, when the caller explains many statements (capture reads it once)."""
    verdict = classify(request.sql)
    statement = verdict.statement
    notes = list(verdict.notes)
    params = safety.highest_param(statement)
    if request.params and len(request.params) != params:
        raise UsageError(f"the statement has {params} parameter(s) ($1...), --param was given {len(request.params)}")
    analyze = request.analyze
    if analyze and verdict.kind == "write" and not request.analyze_writes:
        analyze = False
        notes.append(
            f"{verdict.reason}: estimates only (not executed); --analyze-writes runs it inside a transaction "
            "that is rolled back"
        )
    not_executed_because = None
    if analyze:
        from dbmaint.explain import sandbox

        not_executed_because = sandbox.unproven(conn, statement, trust_functions=request.trust_functions)
        if not_executed_because:
            analyze = False
            notes.append(
                f"not executed: {not_executed_because}; the plan shows estimates only (--trust-functions "
                "runs it when you know the functions are harmless)"
            )
    # The catalog (the statement's relations with their columns) is read only when $n need types or values.
    relation_catalog = (relations or _catalog_of(conn, statement)) if params else None
    shape = _shape(statement, relation_catalog) if relation_catalog is not None else None
    values: dict[int, str] = dict(enumerate(request.params, start=1))
    rare_values: dict[int, str] = {}
    if params and not values and analyze:
        values, rare_values = representative_values(conn, shape, params)
        if len(values) < params:
            analyze = False
            values = {}
            notes.append("no representative values for every $n in pg_stats: estimates from a generic plan")
        else:
            notes.append("$n planned and run with common values from pg_stats (--param gives your own)")
    if params and not values:
        notes.append("generic plan (plan_cache_mode = force_generic_plan): estimates that hold for any $n values")
    types = shape.param_types(relation_catalog) if shape and relation_catalog else {}
    plan = _run(conn, statement, verdict.kind, analyze, params, types, values, request)
    if params:  # dbmaint chose plan_cache_mode itself: not a setting of the user's to report
        top = plan[0] if isinstance(plan, list) else plan
        top.get("Settings", {}).pop("plan_cache_mode", None)
    context = table_context(conn, plan)
    analysis = plan_analysis.analyse(plan, context=context, query=statement)
    if analyze and verdict.kind == "write":
        notes.append("it ran inside a transaction that was rolled back: no change was kept")
    result = Result(
        statement, verdict.kind, analyze, plan, analysis, notes, values, context=context,
        not_executed_because=not_executed_because,
    )  # fmt: skip
    if rare_values and len(rare_values) == params:
        result.rare = _rare(conn, statement, verdict.kind, params, types, rare_values, request, analysis)
    result.fixes = prove_fixes(conn, result, request.advisor)
    return result


def _shape(statement: str, catalog: sqlshape.Catalog) -> sqlshape.Shape | None:
    from dbmaint.sql import sqlshape

    try:
        return sqlshape.analyse(statement, catalog)
    except sqlshape.ShapeError:
        return None


def representative_values(
    conn: Connection, shape: sqlshape.Shape | None, params: int
) -> tuple[dict[int, str], dict[int, str]]:
    """A common and a rare value for each $n, from the statistics of the column it is compared with."""
    if shape is None:
        return {}, {}
    common: dict[int, str] = dict(shape.limit_params)
    rare: dict[int, str] = dict(shape.limit_params)
    for use in shape.uses:
        if use.param is None or use.param in common:
            continue
        stats = catalog.column_stats(conn, use.schema, use.table, use.column)
        if stats is None:
            continue
        bounds = stats.histogram or []
        if use.role == "range" and bounds:
            low = use.operator in ("<", "<=")
            common[use.param] = bounds[len(bounds) // 2]
            rare[use.param] = bounds[len(bounds) // 10] if low else bounds[-1 - len(bounds) // 10]
        elif use.operator == "<>":
            common[use.param] = stats.least_common or (bounds[0] if bounds else "")
            rare[use.param] = stats.most_common or common[use.param]
        else:
            typical = stats.most_common or (bounds[len(bounds) // 2] if bounds else None)
            unusual = stats.least_common or (bounds[-1] if bounds else None)
            if typical is not None:
                common[use.param] = typical
                rare[use.param] = unusual if unusual is not None else typical
    return ({n: v for n, v in common.items() if n <= params}, {n: v for n, v in rare.items() if n <= params})


def _options(analyze: bool, kind: str) -> sql.Composable:
    options = ["ANALYZE", "BUFFERS", "VERBOSE", "SETTINGS"] if analyze else ["VERBOSE", "SETTINGS"]
    if analyze and kind == "write":
        options.append("WAL")
    return sql.SQL(", ".join([*options, "FORMAT JSON"]))


def _run(
    conn: Connection,
    statement: str,
    kind: str,
    analyze: bool,
    params: int,
    types: Mapping[int, str],
    values: Mapping[int, str],
    request: Request,
) -> Any:
    """EXPLAIN in a transaction that always rolls back: READ ONLY for queries, lock_timeout for writes."""
    settings = {
        "statement_timeout": str(round(request.timeout_s * 1000)),
        "lock_timeout": str(round(request.lock_timeout_s * 1000)),
    }
    if params:  # only then: EXPLAIN SETTINGS would otherwise report dbmaint's own choice as the user's
        settings["plan_cache_mode"] = "force_custom_plan" if values else "force_generic_plan"
    if kind == "read":
        settings["transaction_read_only"] = "on"
    explain = sql.SQL("EXPLAIN ({}) ").format(_options(analyze, kind))
    try:
        with conn.transaction(force_rollback=True):
            db.set_settings(conn, settings, local=True)
            if request.role and analyze:
                _set_role(conn, request.role)
            if params:
                from dbmaint.pg.prepared import Prepared  # only for $n: not on a plain statement's start-up

                prepared = Prepared(_PREPARED, statement, [types.get(n, "unknown") for n in range(1, params + 1)])
                conn.execute(prepared.prepare())
                row = conn.execute(explain + prepared.execute([values.get(n) for n in range(1, params + 1)])).fetchone()
            else:
                row = conn.execute(explain + sql.SQL(statement)).fetchone()
    except psycopg.errors.QueryCanceled as exc:
        raise DatabaseError(
            f"the statement ran past the {request.timeout_s:g} s statement_timeout ({db.first_line(str(exc))}); "
            "--timeout allows longer, --no-analyze shows estimates only"
        ) from None
    except psycopg.errors.LockNotAvailable:
        raise DatabaseError(
            f"the statement waited more than {request.lock_timeout_s:g} s for a lock another session holds; "
            "it was rolled back"
        ) from None
    except psycopg.Error as exc:
        if db.connection_lost(exc, conn):
            raise
        # Class 42 (syntax error, undefined table or column, insufficient privilege): the statement is at fault.
        if (exc.sqlstate or "").startswith("42"):
            hint = (
                " (the type of a $n cannot be inferred here: give values with --param)"
                if params and exc.sqlstate in ("42725", "42P18", "42883")
                else ""
            )
            raise UsageError(db.first_line(str(exc)) + hint) from None
        raise DatabaseError(db.first_line(str(exc))) from None
    finally:
        if params and not conn.closed:
            _deallocate(conn)
    assert row is not None
    return row[0]


def _set_role(conn: Connection, role: str) -> None:
    """Execute as the configured weaker role, for this transaction only (it is always rolled back)."""
    try:
        conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        raise UsageError(
            f"cannot run the statement as role {role!r} ([explain] role): {db.first_line(str(exc))}"
        ) from None


def _deallocate(conn: Connection) -> None:
    from dbmaint.pg.prepared import deallocate

    with contextlib.suppress(psycopg.Error):  # not prepared: the PREPARE itself failed
        conn.execute(deallocate(_PREPARED))


def _rare(
    conn: Connection,
    statement: str,
    kind: str,
    params: int,
    types: Mapping[int, str],
    values: Mapping[int, str],
    request: Request,
    common: plan_analysis.PlanAnalysis,
) -> dict[str, Any] | None:
    """The same statement with rare values: does it take another plan, and how long does it run?"""
    try:
        plan = _run(conn, statement, kind, True, params, types, values, request)
    except (DatabaseError, UsageError) as exc:
        return {"values": {f"${n}": v for n, v in sorted(values.items())}, "error": str(exc)}
    rare = plan_analysis.analyse(plan)
    return {
        "values": {f"${n}": v for n, v in sorted(values.items())},
        "execution_ms": rare.execution_ms,
        "total_cost": rare.total_cost,
        "same_plan": rare.shape_signature() == common.shape_signature(),
    }


# --- database context the web visualizers lack ---------------------------------------------------------


@dataclass(frozen=True)
class _ContextRow:
    relation: str
    last_analyze: Any
    n_mod_since_analyze: int
    reltuples: float
    size_bytes: int
    index_definitions: list[str]


def plan_relations(plan: Any) -> set[tuple[str | None, str]]:
    found: set[tuple[str | None, str]] = set()
    root = plan[0] if isinstance(plan, list) else plan
    stack = [root.get("Plan", root)]
    while stack:
        node = stack.pop()
        if "Relation Name" in node:
            found.add((node.get("Schema"), str(node["Relation Name"])))
        stack.extend(node.get("Plans", []))
    return found


def table_context(conn: Connection, plan: Any) -> dict[str, plan_analysis.TableContext]:
    """One query: the tables' statistics and their indexes' definitions, leaving out the definitions of a
    table that is locked (display only: never wait behind the application)."""
    relations = plan_relations(plan)
    if not relations:
        return {}
    names = [f"{schema}.{name}" if schema else name for schema, name in relations]
    try:
        with conn.transaction():
            db.set_settings(conn, {"lock_timeout": catalog.DEFINITION_LOCK_TIMEOUT_MS}, local=True)
            rows = db.fetch(conn, "explain_context", _ContextRow, {"names": names, "definitions": True})
    except psycopg.errors.LockNotAvailable:  # a lock request came in after the query looked at pg_locks
        rows = db.fetch(conn, "explain_context", _ContextRow, {"names": names, "definitions": False})
    return {
        row.relation: plan_analysis.TableContext(
            relation=row.relation,
            last_analyze=row.last_analyze,
            n_mod_since_analyze=row.n_mod_since_analyze,
            reltuples=row.reltuples,
            size_bytes=row.size_bytes,
            indexes=tuple(row.index_definitions),
        )
        for row in rows
    }


# --- index fixes, proven with hypothetical indexes -----------------------------------------------------


def prove_fixes(conn: Connection, result: Result, advisor_config: AdvisorConfig | None = None) -> list[ProvenFix]:
    """The index each problem's table should get, as `dbmaint advise -s` would recommend it for this
    statement: the same candidates (composites, sort order, INCLUDE), the same proof and choice rules, so
    that explain and advise never propose two different indexes for one statement."""
    candidates = [(i, p) for i, p in enumerate(result.analysis.problems) if p.index_candidate is not None]
    if not candidates:
        return []
    from dbmaint.advisor import recommend, workload
    from dbmaint.config import AdvisorConfig, Config

    if catalog.extension_schema(conn, "hypopg") is None:
        result.notes.append(
            "index fixes are not proven: hypopg is not installed (package postgresql-15-hypopg, then "
            "CREATE EXTENSION hypopg)"
        )
        return []
    statement = workload.Statement(result.statement, 1, 0.0, "explain")
    sources = recommend.Sources(statements=[statement], use_pg_stat_statements=False, findings=False)
    try:
        advice = recommend.advise(conn, "explain", Config(advisor=advisor_config or AdvisorConfig()), sources)
    finally:  # leave the session as explain found it: the what-if planning sets these for itself
        db.set_settings(
            conn, {"default_transaction_read_only": "off", "plan_cache_mode": "auto", "statement_timeout": "0"}
        )
    if not advice.analysed:
        why = "; ".join(f"{reason} ({count})" for reason, count in advice.left_out.items())
        result.notes.append(f"index fixes could not be proven: {why or 'the statement could not be planned'}")
        return []
    by_table = {rec.table: rec for rec in advice.recommendations}
    proven = []
    for position, problem in candidates:
        assert problem.index_candidate is not None
        schema, table, _ = problem.index_candidate
        rec = by_table.get(f"{schema}.{table}")
        if rec is None or not rec.queries:
            minimum = (advisor_config or AdvisorConfig()).min_improvement
            result.notes.append(
                f"no index on {schema}.{table} makes this statement {minimum:.0%} cheaper on the planner's "
                "estimate (the rule dbmaint advise applies): look elsewhere"
            )
            continue
        proven.append(ProvenFix(position, rec.definition, rec.queries[0].cost_before, rec.queries[0].cost_after))
    return proven


def statement_by_query_id(conn: Connection, query_id: int) -> str:
    """The text pg_stat_statements recorded for a query id (normalized: $n for the constants)."""
    schema = catalog.extension_schema(conn, "pg_stat_statements")
    if schema is None:
        raise UsageError(
            "--query-id needs pg_stat_statements in this database (shared_preload_libraries = "
            "'pg_stat_statements', then CREATE EXTENSION pg_stat_statements)"
        )
    query = sql.SQL("SELECT query FROM {}.pg_stat_statements WHERE queryid = %s LIMIT 1").format(sql.Identifier(schema))
    text = db.fetch_value(conn, query, (query_id,))
    if text is None:
        raise UsageError(f"no statement with query id {query_id} in pg_stat_statements")
    from dbmaint.sql import sqlshape

    return sqlshape.repair_normalized(str(text))


def _catalog_of(conn: Connection, statement: str) -> Any:
    """The relations ``statement`` names (all of them when it cannot be parsed here)."""
    from dbmaint.sql import sqlshape

    return catalog.catalog(conn, sqlshape.relation_names([statement]))
