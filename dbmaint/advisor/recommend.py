"""`dbmaint advise`: schema findings, and index recommendations proven on the planner for the workload.

collect (catalog, statistics, workload) -> sqlshape (what each statement does with which columns) ->
analyse.advisor (candidates, greedy choice under the storage budget, costs from whatif/hypopg) ->
IndexRecommendation records with their evidence.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from dbmaint.advisor import choice, schema_findings, workload
from dbmaint.advisor.candidates import Candidate, Plannable, TableFacts, candidates_for
from dbmaint.advisor.sizing import Sizer
from dbmaint.advisor.whatif import PlanError, WhatIf
from dbmaint.config import Config, storage_budget_bytes
from dbmaint.errors import DatabaseError
from dbmaint.explain import safety
from dbmaint.explain.compare import ratio_phrase
from dbmaint.model import MAX_IDENTIFIER_BYTES, Finding, IndexRecommendation, QueryBenefit
from dbmaint.pg import collect, db
from dbmaint.sql import sqlshape
from dbmaint.units import format_size

log = logging.getLogger(__name__)
Connection = psycopg.Connection[tuple[Any, ...]]
_PLANNABLE_KINDS = ("select", "update", "delete", "insert")


@dataclass
class AdviceReport:
    database: str
    findings: list[Finding] = field(default_factory=list)
    recommendations: list[IndexRecommendation] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (definition, reason)
    statements: int = 0
    analysed: int = 0
    left_out: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    verified: bool = False
    plans: int = 0
    verification: list[Any] = field(default_factory=list)  # verify.Verdict, with --verify
    # For --verify: the statements each recommendation was chosen for, and the statements by key.
    helps: dict[str, list[str]] = field(default_factory=dict, repr=False)
    analysed_items: dict[str, Any] = field(default_factory=dict, repr=False)

    def to_json(self, *, rejections: bool = False) -> dict[str, Any]:
        document: dict[str, Any] = {
            "database": self.database,
            "findings": [f.to_json() for f in self.findings],
            "recommendations": [r.to_json() for r in self.recommendations],
            "workload": {
                "statements": self.statements,
                "analysed": self.analysed,
                "left_out": dict(sorted(self.left_out.items())),
                "plans": self.plans,
            },
            "verified": self.verified,
            "notes": self.notes,
        }
        if rejections:
            document["rejected"] = [{"definition": d, "reason": r} for d, r in self.rejected]
        if self.verification:
            document["verification"] = [v.to_json() for v in self.verification]
        return document


@dataclass(frozen=True)
class Sources:
    """Where the workload comes from, besides pg_stat_statements (unless that is switched off)."""

    statements: Sequence[workload.Statement] = ()
    use_pg_stat_statements: bool = True
    findings: bool = True  # the schema's findings too (explain asks for the recommendations alone)


@dataclass
class _Analysed:
    statement: workload.Statement
    plannable: Plannable
    shape: sqlshape.Shape
    baseline: float = 0.0


def advise(conn: Connection, database: str, config: Config, sources: Sources) -> AdviceReport:
    report = AdviceReport(database=database)
    # Statements given by hand and nothing else (-s, -f with --no-stats): only the tables they name are
    # read, so that a developer's check answers as fast on a schema of thousands of tables as on ten.
    names = sqlshape.relation_names(s.query for s in sources.statements) if _given_only(sources) else None
    catalog = collect.catalog(conn, names)
    if any(relation.kind == "v" for relation in catalog.relations.values()):
        names = None  # a view names other tables: the catalog was read whole, and so is the schema
    if sources.findings:
        report.findings = schema_findings.findings(collect.collect_schema(conn, names))
    statements = _workload(conn, config, sources, report)
    analysed = _analyse(statements, catalog, config, report, from_stats=sources.use_pg_stat_statements)
    hypopg = collect.extension_schema(conn, "hypopg")
    measured = _qualstats(conn, report)
    tables = _table_facts(conn, {key for item in analysed for key in item.shape.tables()}, measured)
    if hypopg is None:
        report.notes.append(
            "hypopg is not installed: recommendations are unverified heuristics (install the package "
            "postgresql-15-hypopg, then CREATE EXTENSION hypopg, to have each one proven on the planner)"
        )
        partitioned = {key for key, relation in catalog.relations.items() if relation.kind == "p"}
        report.recommendations = _heuristic(analysed, tables, _taken_names(conn), _built_size(Sizer(conn)), partitioned)
    else:
        report.verified = True
        # A column's statistics read once: a thousand statements use a few hundred columns.
        stats = functools.cache(functools.partial(collect.column_stats, conn))
        for item in analysed:  # before any planning: the cache knows a statement by its key alone
            item.plannable = _with_values(conn, item, catalog, measured=measured, column_stats=stats)
        whatif = WhatIf(conn, hypopg)
        with whatif.helped():
            analysed = _baselines(whatif, analysed, report)
            database_bytes = _database_size(conn)
            budget = storage_budget_bytes(config.advisor.storage_budget, database_bytes)
            partitioned = {key for key, relation in catalog.relations.items() if relation.kind == "p"}
            report.recommendations = _proven(
                conn, whatif, analysed, tables, config, budget, report, partitioned, database_bytes
            )
        report.plans = whatif.plans
    report.analysed = len(analysed)
    _close_findings(report)
    return report


def verify_recommendations(conn: Connection, report: AdviceReport, config: Config, *, force: bool) -> AdviceReport:
    """--verify: build the recommended indexes, time their read-only statements, keep what delivers."""
    from dbmaint.advisor import verify

    verify.refuse_on_production(conn, force)
    if not report.recommendations or not report.verified:
        return report
    catalog = collect.catalog(conn)
    statements = {
        key: _with_values(conn, item, catalog, always=True)
        for key, item in report.analysed_items.items()
        if item.shape.kind == "select"
    }
    tables = {key: item.shape.tables() for key, item in report.analysed_items.items()}
    report.verification = verify.verify(
        conn, report.recommendations, statements, report.helps, tables, lock_timeout_s=config.safety.lock_timeout
    )
    kept = {v.index for v in report.verification if v.kept}
    report.recommendations = [r for r in report.recommendations if r.name in kept]
    return report


def _given_only(sources: Sources) -> bool:
    """Whether the workload is only statements given by hand (-s, -f), some of them: then their tables are
    all it needs (a server log's, or the recorded workload's, may name any table: the schema is read whole)."""
    by_hand = all(s.source == "command line" or s.source.startswith("file ") for s in sources.statements)
    return bool(sources.statements) and by_hand and not sources.use_pg_stat_statements


# --- the workload ------------------------------------------------------------------------------------


def _workload(conn: Connection, config: Config, sources: Sources, report: AdviceReport) -> list[workload.Statement]:
    found = list(sources.statements)
    if sources.use_pg_stat_statements:
        recorded, note = workload.from_pg_stat_statements(conn, limit=config.advisor.max_statements)
        found += recorded
        if note:
            report.notes.append(note)
        found += workload.from_activity(conn, config.advisor.long_running)
    statements = workload.merged(found)
    report.statements = len(statements)
    return statements


def _left_out_by_weight(statement: workload.Statement, config: Config) -> str | None:
    """Whether a recorded statement weighs too little to be worth an index: what matters is its total
    time (merged across users, parameter types and nesting before this is asked). A statement run a few
    times counts when each run is slow (a 3 s report run once a day costs more than a thousand fast
    lookups); only few calls that are each fast are left out, with the statements under the total."""
    if statement.source != "pg_stat_statements":
        return None  # given on purpose, or seen running long: always weighed
    if statement.total_time_ms < config.advisor.min_total_time * 1000:
        return f"under {config.advisor.min_total_time * 1000:.0f} ms in total"
    slow_ms = config.capture.min_mean_time * 1000
    if statement.calls < config.advisor.min_calls and statement.mean_time_ms < slow_ms:
        return f"fewer than {config.advisor.min_calls} calls, each under {slow_ms:.0f} ms"
    return None


def _analyse(
    statements: Sequence[workload.Statement],
    catalog: sqlshape.Catalog,
    config: Config,
    report: AdviceReport,
    *,
    from_stats: bool,
) -> list[_Analysed]:
    analysed = []
    for statement in statements:
        reason = _left_out_by_weight(statement, config)
        if reason is not None:
            report.left_out[reason] += 1
            continue
        text = sqlshape.repair_normalized(statement.query)
        try:
            shape = sqlshape.analyse(text, catalog)
        except sqlshape.ShapeError as exc:
            report.left_out[f"not valid SQL ({exc})"[:120]] += 1
            continue
        if shape.kind not in _PLANNABLE_KINDS:
            report.left_out["utility statement (not planned)"] += 1
            continue
        if not shape.tables():  # one reason per statement: the counts add up to the statements
            report.left_out[_skip_reason((shape.skipped or ["no table an index could serve"])[0])] += 1
            continue
        if not any(u.role != "read" for u in shape.uses):
            report.left_out["nothing an index could serve (no predicate, join or sort)"] += 1
            continue
        analysed.append(_Analysed(statement, plannable(text, shape, catalog), shape))
    return analysed


def plannable(text: str, shape: sqlshape.Shape, catalog: sqlshape.Catalog) -> Plannable:
    """A repaired statement as the what-if planner takes it: each $n typed where its context says."""
    return Plannable(
        key=workload.fingerprint(text),
        text=text,
        params=safety.highest_param(text),
        param_types=shape.param_types(catalog),
    )


# Why a statement's relations leave nothing to index (sqlshape's "name: why"), said for the statement.
_SKIPPED = {
    "no such table": "a table that does not exist (or that this role cannot see)",
    "system catalog": "only system catalogs",
    "view definition not available": "only views whose definition this role cannot read",
}


def _skip_reason(skipped: str) -> str:
    _, _, why = skipped.partition(": ")
    if why.startswith("foreign table"):
        return "only foreign tables (indexes live on the remote server)"
    return _SKIPPED.get(why, why or skipped)


def _baselines(whatif: WhatIf, analysed: list[_Analysed], report: AdviceReport) -> list[_Analysed]:
    whatif.plan_many((item.plannable, frozenset()) for item in analysed)
    plannable = []
    for item in analysed:
        try:
            item.baseline = whatif.cost(item.plannable)
        except PlanError as exc:
            report.left_out[f"cannot be planned: {exc}"[:160]] += 1
            continue
        plannable.append(item)
    return plannable


# An equality on a column where one value covers this share of the rows: the generic plan's 1/n_distinct
# hides that most lookups hit that value, so the value itself is planned.
SKEWED = 0.2


def _with_values(
    conn: Connection,
    item: _Analysed,
    catalog: sqlshape.Catalog,
    *,
    always: bool = False,
    measured: Measured | None = None,
    column_stats: Callable[[str, str, str], collect.ColumnStats | None] | None = None,
) -> Plannable:
    """Where a generic plan misleads, plan with values from pg_stats instead.

    A generic plan prices `col > $1` at a third of the table, `col = $1` at 1/n_distinct even when most
    rows share one value, and `LIMIT $1` at a tenth of the rows. With a range on a parameter, an equality
    on a skewed column, or a LIMIT parameter, every $n gets a representative value: a selective histogram
    bound for ranges, the most common value for equalities (the lookup most rows answer), else the
    histogram's middle, and 20 for a LIMIT (a page).
    """
    params = {u.param: u for u in item.shape.uses if u.param is not None}
    offsets = {n: "0" for n in item.shape.offset_params if n not in params}  # $2 + $3: $3 planned as zero
    if len(params) + len(item.shape.limit_params) + len(offsets) < item.plannable.params:
        return item.plannable  # a parameter outside a plain comparison: no value to draw
    real = _real_constants(item, params, measured)
    if real is not None:  # pg_qualstats saw the application's own values: plan with those
        return dataclasses.replace(item.plannable, custom_values={**item.shape.limit_params, **real})
    read = column_stats or functools.partial(collect.column_stats, conn)
    stats = {n: read(use.schema, use.table, use.column) for n, use in params.items()}
    # LIMIT $n: a generic plan reads a tenth of the rows, where the application asks for a page of them
    # (an index on the ORDER BY's first column looked 1,000x costlier than with LIMIT 10).
    misleading = bool(item.shape.limit_params) or any(
        use.role == "range" or (stats[n] is not None and stats[n].most_common_freq >= SKEWED)  # type: ignore[union-attr]
        for n, use in params.items()
    )
    if not misleading and not always:
        return item.plannable
    values: dict[int, str] = {**item.shape.limit_params, **offsets}
    # A column bounded on both sides (col >= $1 AND col < $2): a window of a tenth of its rows around the
    # middle. Each bound drawn alone from the ends would make the range empty, and an index look free.
    ranges = [use for use in params.values() if use.role == "range"]
    sides = {(use.schema, use.table, use.column, use.operator in ("<", "<=")) for use in ranges}
    for number, use in params.items():
        column = stats[number]
        bounds = (column.histogram if column else None) or []
        if use.role == "range" and bounds:
            low_side = use.operator in ("<", "<=")
            both = (use.schema, use.table, use.column, not low_side) in sides
            if both:
                values[number] = bounds[len(bounds) * 11 // 20] if low_side else bounds[len(bounds) * 9 // 20]
            else:  # one bound: a selective one, what a range lookup usually asks for
                values[number] = bounds[len(bounds) // 10] if low_side else bounds[-1 - len(bounds) // 10]
        elif use.role == "read" and column is not None and column.least_common is not None:
            values[number] = column.least_common  # col <> $n: a rare value, so most rows pass
        elif column is not None and column.most_common is not None:  # the value most rows have
            values[number] = column.most_common
        elif bounds:
            values[number] = bounds[len(bounds) // 2]
        else:
            return item.plannable
    return dataclasses.replace(item.plannable, custom_values=values)


# --- pg_qualstats: what the application's predicates really look like ----------------------------------


@dataclass(frozen=True)
class _Qual:
    queryid: int | None
    schema: str
    table_name: str
    column_name: str
    operator: str
    constant: str | None
    evaluated: float
    filtered: float


@dataclass
class Measured:
    """pg_qualstats' samples: real constants per (queryid, table, column), selectivity per column."""

    constants: dict[tuple[int, str, str, str], str] = field(default_factory=dict)
    selectivity: dict[tuple[str, str, str], float] = field(default_factory=dict)


def _qualstats(conn: Connection, report: AdviceReport) -> Measured | None:
    schema = collect.extension_schema(conn, "pg_qualstats")
    if schema is None:
        return None
    try:
        rows = db.fetch(conn, "qualstats", _Qual, {}, identifiers={"schema": schema})
    except DatabaseError as exc:  # e.g. not in shared_preload_libraries: the extension exists, the hook not
        report.notes.append(f"pg_qualstats is installed but could not be read: {exc}")
        return None
    measured = Measured()
    evaluated: Counter[tuple[str, str, str]] = Counter()
    kept: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        column = (row.schema, row.table_name, row.column_name)
        if row.queryid is not None and row.constant is not None:
            measured.constants[(row.queryid, *column)] = _constant_text(row.constant)
        evaluated[column] += int(row.evaluated)
        kept[column] += int(row.evaluated - row.filtered)
    measured.selectivity = {column: kept[column] / n for column, n in evaluated.items() if n > 0}
    if measured.selectivity:
        report.notes.append(
            f"pg_qualstats: real values and measured selectivity for {len(measured.selectivity)} column(s)"
        )
    return measured


def _constant_text(constant: str) -> str:
    """pg_qualstats prints constants as SQL ('x3'::text, 95::integer): the bare value, for EXECUTE."""
    value = constant
    if "::" in value:
        value = value[: value.rindex("::")]
    if len(value) >= 2 and value[0] == value[-1] == "'":
        value = value[1:-1].replace("''", "'")
    return value


def _real_constants(
    item: _Analysed, params: Mapping[int, sqlshape.ColumnUse], measured: Measured | None
) -> dict[int, str] | None:
    queryid = item.statement.queryid
    if measured is None or queryid is None or not params:
        return None
    values = {}
    for number, use in params.items():
        value = measured.constants.get((queryid, use.schema, use.table, use.column))
        if value is None:
            return None
        values[number] = value
    return values


# --- catalog ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FactsRow:
    schema: str
    name: str
    reltuples: float
    existing: list[list[str]]
    n_distinct: dict[str, float]
    common_values: dict[str, dict[str, Any]]
    write_share: float


def _table_facts(
    conn: Connection, keys: set[tuple[str, str]], measured: Measured | None = None
) -> dict[tuple[str, str], TableFacts]:
    if not keys:
        return {}
    schemas, names = zip(*sorted(keys), strict=True)
    rows = db.fetch(conn, "advisor_table_facts", _FactsRow, {"schemas": list(schemas), "names": list(names)})
    facts = {}
    for row in rows:
        common = {
            column: dict(zip(entry.get("values") or [], entry.get("freqs") or [], strict=False))
            for column, entry in row.common_values.items()
        }
        facts[(row.schema, row.name)] = TableFacts(
            row.schema,
            row.name,
            row.reltuples,
            tuple(tuple(cols) for cols in row.existing),
            row.n_distinct,
            common,
            row.write_share,
            {
                column: value
                for (schema, table, column), value in (measured.selectivity.items() if measured else ())
                if (schema, table) == (row.schema, row.name)
            },
        )
    return facts


def _database_size(conn: Connection) -> int:
    return int(db.fetch_value(conn, "SELECT pg_catalog.pg_database_size(pg_catalog.current_database())") or 0)


# --- recommendations --------------------------------------------------------------------------------


def _proven(
    conn: Connection,
    whatif: WhatIf,
    analysed: list[_Analysed],
    tables: Mapping[tuple[str, str], TableFacts],
    config: Config,
    budget: int | None,
    report: AdviceReport,
    partitioned: set[tuple[str, str]],
    database_bytes: int,
) -> list[IndexRecommendation]:
    by_key = {item.plannable.key: item for item in analysed}
    candidates: set[Candidate] = set()
    for item in analysed:
        candidates |= candidates_for(item.shape, tables)

    def cost(key: str, indexes: frozenset[Candidate]) -> float:
        try:
            return whatif.cost(by_key[key].plannable, indexes)
        except PlanError:
            return float("inf")  # never counted as a gain

    def cached_only_cost(key: str, indexes: frozenset[Candidate]) -> float:
        try:
            return whatif.cost(by_key[key].plannable, indexes, cached_only=True)
        except PlanError:
            return float("inf")

    def plan_ahead(pairs: Iterable[tuple[str, frozenset[Candidate]]], cached_only: bool) -> None:
        whatif.plan_many(((by_key[key].plannable, indexes) for key, indexes in pairs), cached_only=cached_only)

    work = [
        choice.WorkItem(item.plannable.key, float(item.statement.calls), item.shape, item.statement.total_time_ms)
        for item in analysed
    ]
    selection = choice.choose(
        work,
        candidates,
        cost,
        _built_size(Sizer(conn)),
        budget_bytes=budget,
        max_new_indexes=config.advisor.max_new_indexes,
        max_per_table=config.advisor.max_indexes_per_table,
        tables=tables,
        min_improvement=config.advisor.min_improvement,
        write_penalty=config.advisor.write_penalty,
        robust_cost=cached_only_cost,
        database_bytes=database_bytes,
        min_saving_per_size=config.advisor.min_saving_per_size,
        plan_ahead=plan_ahead,
    )
    report.rejected += [(r.candidate.describe(), r.reason) for r in selection.rejected]
    names = _taken_names(conn)
    recommendations = [_recommendation(c, by_key, names, partitioned) for c in selection.chosen]
    for chosen, recommendation in zip(selection.chosen, recommendations, strict=True):
        report.helps[recommendation.name] = [key for key, _, _ in chosen.per_statement]
    report.analysed_items = dict(by_key)
    return recommendations


def _built_size(sizer: Sizer) -> Any:
    """The size each candidate will have once built (btree deduplication and suffix truncation counted:
    hypopg's own estimate overstates low-cardinality keys two to four times). Cached: greedy asks again
    each time it scores a candidate, and a partial index's size costs an EXPLAIN."""

    @functools.cache
    def size(candidate: Candidate) -> int:
        return sizer.size(candidate.schema, candidate.table, candidate.columns, candidate.include, candidate.where)

    return size


def _taken_names(conn: Connection) -> set[tuple[str, str]]:
    """Every relation's (schema, name): tables, views, sequences and indexes share one namespace per schema."""
    rows = conn.execute(
        "SELECT n.nspname, c.relname FROM pg_catalog.pg_class AS c"
        " JOIN pg_catalog.pg_namespace AS n ON n.oid = c.relnamespace"
    ).fetchall()
    return {(str(schema), str(name)) for schema, name in rows}


def _truncated(text: str, max_bytes: int) -> str:
    """``text`` cut to at most ``max_bytes`` of UTF-8, never inside a character."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def _unique_name(candidate: Candidate, taken: set[tuple[str, str]]) -> str:
    """table_col1_col2_idx, unless PostgreSQL would truncate it (63 bytes) or the schema already has a
    relation of that name: then cut, with a short hash of the whole definition to keep it apart."""
    base = f"{candidate.table}_{'_'.join(candidate.columns)}"
    name = f"{base}_idx"
    if len(name.encode()) <= MAX_IDENTIFIER_BYTES and (candidate.schema, name) not in taken:
        taken.add((candidate.schema, name))
        return name
    digest = hashlib.sha1(candidate.describe().encode()).hexdigest()
    for number in itertools.count():
        tag = digest[:6] if number == 0 else f"{digest[:6]}{number}"
        suffix = f"_{tag}_idx"
        name = _truncated(base, MAX_IDENTIFIER_BYTES - len(suffix)) + suffix
        if (candidate.schema, name) not in taken:
            taken.add((candidate.schema, name))
            return name
    raise AssertionError("unreachable")


PARTITIONED_NOTE = (
    "a partitioned table (CREATE INDEX CONCURRENTLY is refused there, and a plain CREATE INDEX blocks writes "
    "while it builds): the revision builds it on each partition concurrently, then creates it ON ONLY the "
    "parent and attaches them"
)


def _definition(candidate: Candidate, name: str, *, concurrently: bool = True) -> str:
    verb = "CREATE INDEX CONCURRENTLY " if concurrently else "CREATE INDEX "
    statement = candidate.body(concurrently=concurrently).as_string(None)
    return statement.replace(verb, f"{verb}{_quoted(name)} ", 1)


def _quoted(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def _recommendation(
    chosen: choice.Choice,
    by_key: Mapping[str, _Analysed],
    taken: set[tuple[str, str]],
    partitioned: set[tuple[str, str]],
) -> IndexRecommendation:
    candidate = chosen.candidate
    name = _unique_name(candidate, taken)
    queries = []
    before_total = after_total = 0.0
    for key, before, after in sorted(chosen.per_statement, key=lambda s: (s[1] - s[2]) * by_key[s[0]].statement.calls,
                                     reverse=True):  # fmt: skip
        statement = by_key[key].statement
        queries.append(QueryBenefit(statement.query, statement.queryid, statement.calls, before, after))
        before_total += before * statement.calls
        after_total += after * statement.calls
    # "1,079x cheaper", not "100% cheaper" for 11,870 -> 11; the same phrase explain and compare use.
    change = ratio_phrase(before_total, after_total, "cheaper", "costlier", whole=True)
    reason = (
        f"makes {len(queries)} statement(s) {change} on the planner's estimate, weighted by calls "
        f"({before_total:,.0f} -> {after_total:,.0f}), for about {format_size(chosen.size)}"
    )
    on_partitions = (candidate.schema, candidate.table) in partitioned
    if on_partitions:
        reason += f"; {PARTITIONED_NOTE}"
    return IndexRecommendation(
        schema=candidate.schema,
        table_name=candidate.table,
        columns=candidate.columns,
        name=name,
        definition=_definition(candidate, name, concurrently=not on_partitions),
        partitioned=on_partitions,
        reason=reason,
        include=candidate.include,
        where=candidate.where,
        directions=candidate.directions,
        queries=tuple(queries),
        cost_before=before_total,
        cost_after=after_total,
        estimated_size_bytes=chosen.size,
        verified=True,
    )


def _heuristic(
    analysed: list[_Analysed],
    tables: Mapping[tuple[str, str], TableFacts],
    taken: set[tuple[str, str]],
    size: Callable[[Candidate], int],
    partitioned: set[tuple[str, str]],
) -> list[IndexRecommendation]:
    """Without hypopg: per statement (heaviest first), its widest composite candidate, unverified."""
    seen: set[Candidate] = set()
    result = []
    for item in sorted(analysed, key=lambda a: a.statement.total_time_ms, reverse=True):
        found = sorted(candidates_for(item.shape, tables), key=lambda c: (len(c.columns), not c.include))
        if not found or found[-1] in seen:
            continue
        candidate = found[-1]
        seen.add(candidate)
        name = _unique_name(candidate, taken)
        on_partitions = (candidate.schema, candidate.table) in partitioned
        reason = "heuristic (not proven on the planner): serves the statement's predicates and sort"
        result.append(
            IndexRecommendation(
                schema=candidate.schema,
                table_name=candidate.table,
                columns=candidate.columns,
                name=name,
                definition=_definition(candidate, name, concurrently=not on_partitions),
                partitioned=on_partitions,
                reason=f"{reason}; {PARTITIONED_NOTE}" if on_partitions else reason,
                include=candidate.include,
                where=candidate.where,
                directions=candidate.directions,
                queries=(QueryBenefit(item.statement.query, item.statement.queryid, item.statement.calls, 0, 0),),
                estimated_size_bytes=size(candidate),
                verified=False,
            )
        )
    return result


def _close_findings(report: AdviceReport) -> None:
    """A recommended index leading with an unindexed foreign key's columns also fixes that finding."""
    updated = []
    for recommendation in report.recommendations:
        closes = [
            f"unindexed foreign key on {f.table} ({', '.join(f.columns)})"
            for f in report.findings
            if f.kind == "unindexed_foreign_key"
            and f.table == recommendation.table
            and set(recommendation.columns[: len(f.columns)]) == set(f.columns)
            and recommendation.where is None
        ]
        if closes:
            recommendation = IndexRecommendation(**{**recommendation.__dict__, "closes": tuple(closes)})
        updated.append(recommendation)
    report.recommendations = updated
