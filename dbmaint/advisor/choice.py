"""The set of indexes recommended, chosen among the candidates ``candidates.candidates_for`` finds.

The choice is greedy over the whole workload: each round takes the candidate that saves the most
workload cost (planner cost x calls, re-planned with what was already chosen) per byte of index, with a
penalty for write-heavy tables, until nothing saves enough or the storage budget is spent. The cost
oracle is passed in, so this module stays free of I/O.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from dbmaint.advisor.candidates import Candidate, TableFacts
from dbmaint.sql.sqlshape import Shape
from dbmaint.units import format_size


@dataclass(frozen=True)
class WorkItem:
    """A statement of the workload as the chooser sees it."""

    key: str
    weight: float  # calls (or a stand-in for statements seen once)
    shape: Shape
    time_ms: float = 0.0  # its real execution time in all (pg_stat_statements, the log); 0 when unknown


def _listed(candidates: Iterable[Candidate]) -> str:
    shown = sorted(f"({', '.join(c.columns)})" + (" INCLUDE" if c.include else "") for c in candidates)
    return (
        ("an index on " if len(shown) == 1 else "indexes on ")
        + ", ".join(shown)
        + (" is" if len(shown) == 1 else " are")
    )


# --- choosing the set ----------------------------------------------------------------------------------

CostFn = Callable[[str, frozenset[Candidate]], float]
# The (statement key, indexes) pairs whose costs are asked for next, and whether of ``robust_cost``: an oracle
# that plans faster many at a time (one round trip for many EXPLAINs) plans them now. The values still come
# from the cost functions, so this only changes how fast.
PlanAhead = Callable[[Iterable[tuple[str, frozenset[Candidate]]], bool], None]


def _no_plans_ahead(pairs: Iterable[tuple[str, frozenset[Candidate]]], robust: bool) -> None:
    pass


def _with_and_without(
    candidate: Candidate, present: Iterable[tuple[WorkItem, frozenset[Candidate]]]
) -> Iterator[tuple[str, frozenset[Candidate]]]:
    """The plans a pick's saving is restated from: each statement with the indexes present, less the pick."""
    for item, indexes in present:
        yield item.key, indexes - {candidate}
        yield item.key, indexes


@dataclass(frozen=True)
class Choice:
    candidate: Candidate
    size: int
    gain: float  # workload cost saved (weighted), given what was chosen before it
    per_statement: tuple[tuple[str, float, float], ...]  # (statement key, cost before, cost after)


@dataclass(frozen=True)
class Rejection:
    candidate: Candidate
    reason: str
    # Dropped from the final set for what it does there (not worth its size, fragile, a regression): the
    # choice is made again without it, since greedy may have turned others down in its favour.
    final: bool = False


@dataclass
class Selection:
    chosen: list[Choice] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)


def _affected(
    work: Sequence[WorkItem], candidates: Iterable[Candidate], item_tables: Mapping[str, frozenset[tuple[str, str]]]
) -> dict[Candidate, list[WorkItem]]:
    """The statements each candidate is scored against, in the workload's order: those on its table that use
    its leading column in a predicate, join, sort or group (a btree can only help those)."""
    using: dict[tuple[str, str, str], list[WorkItem]] = {}
    for item in work:
        for column in dict.fromkeys((u.schema, u.table, u.column) for u in item.shape.uses if u.role != "read"):
            using.setdefault(column, []).append(item)
    return {
        c: [w for w in using.get((c.schema, c.table, c.columns[0]), ()) if (c.schema, c.table) in item_tables[w.key]]
        for c in candidates
    }


# Rounds of the choice: each made again without what the final-set rules dropped in the one before.
CHOICE_ROUNDS = 3


def choose(
    work: Sequence[WorkItem],
    candidates: Iterable[Candidate],
    cost: CostFn,
    size: Callable[[Candidate], int],
    *,
    budget_bytes: int | None = None,
    max_new_indexes: int = 10,
    max_per_table: int = 3,
    tables: Mapping[tuple[str, str], TableFacts],
    min_improvement: float = 0.2,
    write_penalty: float = 0.5,
    robust_cost: CostFn | None = None,
    database_bytes: int = 0,
    min_saving_per_size: float = 0.0,
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> Selection:
    """The set of indexes to recommend (see ``_choose_round``), chosen again without the picks the
    final-set rules drop: greedy turned other candidates down beside them (on TPC-H, ``lineitem
    (l_shipdate)`` was not worth its size "once (l_suppkey) is chosen", and l_suppkey was then dropped as
    fragile). The planner's costs are cached, so a round costs only the plans it has not seen."""
    everything = list(candidates)
    banned: dict[Candidate, Rejection] = {}
    density: _Density | None = None
    for _ in range(CHOICE_ROUNDS):
        selection, density = _choose_round(
            work, [c for c in everything if c not in banned], cost, size,
            budget_bytes=budget_bytes, max_new_indexes=max_new_indexes, max_per_table=max_per_table,
            tables=tables, min_improvement=min_improvement, write_penalty=write_penalty,
            robust_cost=robust_cost, database_bytes=database_bytes, min_saving_per_size=min_saving_per_size,
            density=density, plan_ahead=plan_ahead,
        )  # fmt: skip
        dropped = {r.candidate: r for r in selection.rejected if r.final and r.candidate not in banned}
        if not dropped:
            break
        banned.update(dropped)
    turned_down = {r.candidate for r in selection.rejected}
    selection.rejected += [r for candidate, r in banned.items() if candidate not in turned_down]
    return selection


def _choose_round(
    work: Sequence[WorkItem],
    candidates: Iterable[Candidate],
    cost: CostFn,
    size: Callable[[Candidate], int],
    *,
    budget_bytes: int | None = None,
    max_new_indexes: int = 10,
    max_per_table: int = 3,
    tables: Mapping[tuple[str, str], TableFacts],
    min_improvement: float = 0.2,
    write_penalty: float = 0.5,
    robust_cost: CostFn | None = None,
    database_bytes: int = 0,
    min_saving_per_size: float = 0.0,
    density: _Density | None = None,
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> tuple[Selection, _Density | None]:
    """Greedy: the best saving per byte first, re-planning with the earlier choices in place.

    Then what greedy cannot see is taken back: picks a later one made redundant or marginal, picks past the
    count caps, a set that makes a statement costlier, picks whose saving does not survive ``robust_cost``
    (the planner with only shared_buffers taken as cached), and picks that save a smaller share of the
    workload's cost than ``min_saving_per_size`` times the share of the database they add.

    A candidate is scored against the statements that use its leading column; after a choice only the
    candidates sharing a statement with that choice's table can have lost value (every cost is a function
    of the statement and the chosen indexes on its tables), and they are scored again lazily, when one
    comes out best on its old score.
    """
    selection = Selection()
    item_tables = {item.key: frozenset(item.shape.tables()) for item in work}
    affected = _affected(work, candidates, item_tables)
    pool = set(affected)
    # Indexes of the above, so that a pick finds what it made stale without a pass over everything.
    on_table: dict[tuple[str, str], list[str]] = {}
    for key, found in item_tables.items():
        for table in found:
            on_table.setdefault(table, []).append(key)
    serving: dict[str, list[Candidate]] = {}
    for candidate, items in affected.items():
        for item in items:
            serving.setdefault(item.key, []).append(candidate)
    candidates_on = _by_table(affected)
    chosen_on: dict[tuple[str, str], set[Candidate]] = {}
    contexts: dict[str, frozenset[Candidate]] = {}
    scores: dict[Candidate, tuple[float, float, int, tuple[tuple[str, float, float], ...]]] = {}
    used = 0

    def context(item: WorkItem) -> frozenset[Candidate]:
        if item.key not in contexts:
            contexts[item.key] = frozenset().union(*(chosen_on.get(t, set()) for t in item_tables[item.key]))
        return contexts[item.key]

    def score(candidate: Candidate) -> None:
        """Its saving with the current choices in place, or its rejection when that is too little."""
        per_statement = []
        gain = 0.0
        plans = [(item, context(item), context(item) | {candidate}) for item in affected[candidate]]
        plan_ahead(((item.key, indexes) for item, *sets in plans for indexes in sets), False)
        for item, without, with_it in plans:
            before = cost(item.key, without)
            after = cost(item.key, with_it)
            if after < before:
                per_statement.append((item.key, before, after))
                gain += item.weight * (before - after)
        best_ratio = max(((b - a) / b for _, b, a in per_statement if b > 0), default=0.0)
        if best_ratio < min_improvement:
            earlier = chosen_on.get((candidate.schema, candidate.table), set())
            if earlier:
                reason = f"adds too little once {_listed(earlier)} chosen"
            elif not per_statement:
                reason = "no statement's plan gets cheaper with it"
            else:
                reason = f"saves at most {best_ratio:.0%} of a statement's cost (minimum {min_improvement:.0%})"
            selection.rejected.append(Rejection(candidate, reason))
            pool.discard(candidate)
            scores.pop(candidate, None)
            return
        facts = tables.get((candidate.schema, candidate.table))
        penalty = 1.0 - write_penalty * (facts.write_share if facts else 0.0)
        bytes_needed = max(size(candidate), 8192)
        earlier = chosen_on.get((candidate.schema, candidate.table), set())
        # What it adds beside the earlier picks must be worth its size too: an INCLUDE variant 5x the size of
        # the plain index chosen first, for an index-only scan over 200 rows, is not.
        short = density.shortfall(candidate, bytes_needed, per_statement) if density and earlier else None
        if short is not None:
            selection.rejected.append(Rejection(candidate, f"once {_listed(earlier)} chosen, it {short}"))
            pool.discard(candidate)
            scores.pop(candidate, None)
            return
        scores[candidate] = (gain * penalty / bytes_needed, gain, bytes_needed, tuple(per_statement))

    plan_ahead(((item.key, context(item) | {c}) for c in pool for item in affected[c]), False)
    for candidate in sorted(pool, key=repr):
        score(candidate)
    if database_bytes > 0 and min_saving_per_size > 0:
        # Each candidate on its own (nothing chosen yet): what it could save at best. One that is not
        # worth its size alone never will be; whether it still adds enough beside the others is
        # min_improvement's question during the choice, and this rule's again on the final set.
        # The improvable workload is the first round's: a later round without a dropped candidate must not
        # find its statements' time gone from the denominator (and everything else worth more).
        if density is None:
            improvable = {key for _, _, _, evidence in scores.values() for key, _, _ in evidence}
            density = _Density.of(work, improvable, cost, database_bytes, min_saving_per_size)
        for candidate in sorted(scores, key=repr):
            short = density.shortfall(candidate, scores[candidate][2], scores[candidate][3]) if density else None
            if short is not None:
                selection.rejected.append(Rejection(candidate, short))
                pool.discard(candidate)
                del scores[candidate]
    # Lazy greedy: a candidate's saving only shrinks as others are chosen, so a stale score is an upper
    # bound. Only the best is scored again, and it is picked once its fresh score is still the best: the
    # same picks as scoring every affected candidate after each choice, for a fraction of the plans.
    stale: set[Candidate] = set()
    names = {c: repr(c) for c in scores}
    ranked = [(-value[0], len(c.columns), names[c], c) for c, value in scores.items()]
    heapq.heapify(ranked)
    while ranked:
        ratio, _, _, candidate = heapq.heappop(ranked)
        if candidate not in scores or -ratio != scores[candidate][0]:
            continue  # rejected or picked since, or scored again: a newer entry stands for it
        if candidate in stale:
            stale.discard(candidate)
            score(candidate)
            if candidate in scores:
                heapq.heappush(ranked, (-scores[candidate][0], len(candidate.columns), names[candidate], candidate))
            continue
        _, gain, bytes_needed, evidence = scores.pop(candidate)
        pool.discard(candidate)
        table = (candidate.schema, candidate.table)
        if budget_bytes is not None and used + bytes_needed > budget_bytes:
            left = max(0, budget_bytes - used)
            reason = (
                f"needs {format_size(bytes_needed)}, {format_size(left)} of the storage budget "
                f"({format_size(budget_bytes)}, advisor.storage_budget) is left"
            )
            selection.rejected.append(Rejection(candidate, reason))
            continue
        chosen_on.setdefault(table, set()).add(candidate)
        used += bytes_needed
        selection.chosen.append(Choice(candidate, bytes_needed, gain, evidence))
        if _greedy_full(selection, pool, scores, table, max_new_indexes, max_per_table, candidates_on):
            break
        for key in on_table.get(table, ()):
            contexts.pop(key, None)
            stale.update(c for c in serving.get(key, ()) if c in scores)
    selection = _without_redundant(selection, affected, cost, item_tables, plan_ahead)
    selection = _without_marginal(selection, affected, cost, item_tables, min_improvement, plan_ahead)
    if robust_cost is not None:
        selection = _without_fragile(
            selection, affected, cost, robust_cost, item_tables, min_improvement, density, plan_ahead
        )
    if density is not None:
        selection = _without_costly(selection, affected, cost, item_tables, density, plan_ahead)
    capped = _capped(selection, max_new_indexes, max_per_table)
    if _without_regressions(selection, work, cost, item_tables, plan_ahead) or capped:
        # the survivors' savings changed
        selection = _without_redundant(selection, affected, cost, item_tables, plan_ahead)
        selection = _without_marginal(selection, affected, cost, item_tables, min_improvement, plan_ahead)
    return selection, density


# Greedy stops choosing on a table, and in all, once this many times the count caps of its picks save more
# than any candidate left could (a candidate's saving only shrinks as others are chosen): the later passes
# may drop picks (redundant, marginal, not worth their size), and the caps then keep those that save the
# most. Choosing on past it re-planned hundreds of picks on a workload of a thousand statements, for picks
# the caps would drop anyway.
GREEDY_SLACK = 2


def _greedy_full(
    selection: Selection,
    pool: set[Candidate],
    scores: dict[Candidate, tuple[float, float, int, tuple[tuple[str, float, float], ...]]],
    table: tuple[str, str],
    max_new_indexes: int,
    max_per_table: int,
    candidates_on: Mapping[tuple[str, str], Iterable[Candidate]],
) -> bool:
    """After a pick on ``table``: leave out what the caps could not keep any more; True when nothing is left.
    ``candidates_on``: every candidate, by table."""
    # What is still scored is in the pool: a pick, a rejection or a closing takes a candidate out of both.
    if not scores:
        return not pool
    best_left = max(value[1] for value in scores.values())
    ahead = sum(1 for c in selection.chosen if c.gain >= best_left)
    if ahead >= GREEDY_SLACK * max_new_indexes:
        reason = f"advisor.max_new_indexes ({max_new_indexes})"
        closed = set(scores)
    else:
        on_table = {c: scores[c][1] for c in candidates_on.get(table, ()) if c in scores}
        best_here = max(on_table.values(), default=0.0)
        ahead = sum(
            1 for c in selection.chosen if (c.candidate.schema, c.candidate.table) == table and c.gain >= best_here
        )
        if not on_table or ahead < GREEDY_SLACK * max_per_table:
            return False
        reason = f"advisor.max_indexes_per_table ({max_per_table})"
        closed = set(on_table)
    for candidate in sorted(closed, key=repr):
        selection.rejected.append(
            Rejection(candidate, f"{ahead} new indexes that save more are chosen, more than {reason} keeps")
        )
        pool.discard(candidate)
        scores.pop(candidate, None)
    return not pool


def _without_fragile(
    selection: Selection,
    affected: Mapping[Candidate, Sequence[WorkItem]],
    cost: CostFn,
    robust_cost: CostFn,
    item_tables: Mapping[str, frozenset[tuple[str, str]]],
    min_improvement: float,
    density: _Density | None = None,
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> Selection:
    """Drop a pick whose saving rests on the planner's assumption that the OS caches much of the table
    (effective_cache_size): planned again as if only shared_buffers held pages, it must still make some
    statement ``min_improvement`` cheaper, and (with ``density``) still be worth its size. On TPC-H, the
    index scans it leaves out (lineitem by supplier for q21: 57% cheaper on the estimate, 2x slower in
    reality) were exactly those whose estimate leaned on it.
    """
    while True:
        kept = _by_table(c.candidate for c in selection.chosen)
        plans = [
            (chosen, [(item, _on_its_tables(kept, item, item_tables)) for item in affected[chosen.candidate]])
            for chosen in selection.chosen
        ]
        plan_ahead((pair for chosen, present in plans for pair in _with_and_without(chosen.candidate, present)), True)
        judged = []
        for chosen, present_sets in plans:
            evidence = []
            for item, present in present_sets:
                before, after = robust_cost(item.key, present - {chosen.candidate}), robust_cost(item.key, present)
                evidence.append((item.key, before, after))
            judged.append((chosen, evidence, max(((b - a) / b for _, b, a in evidence if b > 0), default=0.0)))
        baselines_wanted = [key for _, evidence, best in judged if best >= min_improvement for key, _, _ in evidence]
        plan_ahead(((key, frozenset()) for key in baselines_wanted), True)
        fragile: list[tuple[str, Choice]] = []
        for chosen, evidence, best in judged:
            if best < min_improvement:
                fragile.append(
                    (f"saves at most {best:.0%} of a statement's cost (minimum {min_improvement:.0%})", chosen)
                )
                continue
            baselines = {key: robust_cost(key, frozenset()) for key, _, _ in evidence}
            short = density.shortfall(chosen.candidate, chosen.size, evidence, baselines) if density else None
            if short is None and density is not None:
                short = _bet(chosen, evidence, baselines, min_improvement, density)
            if short is not None:
                fragile.append((short, chosen))
        if not fragile:
            return selection
        # All at once: each is judged with the others in place, and one at a time re-plans the workload per
        # drop (minutes on a thousand statements).
        for why, dropped in fragile:
            selection.rejected.append(
                Rejection(
                    dropped.candidate,
                    "its saving rests on the planner counting on the OS cache (effective_cache_size): planned "
                    f"with only shared_buffers cached it {why}",
                    final=True,
                )
            )
        gone = {id(chosen) for _, chosen in fragile}
        selection.chosen = [c for c in selection.chosen if id(c) not in gone]
        selection = _without_redundant(selection, affected, cost, item_tables, plan_ahead)


def _bet(
    chosen: Choice,
    robust: Sequence[tuple[str, float, float]],
    baselines: Mapping[str, float],
    min_improvement: float,
    density: _Density,
) -> str | None:
    """Why the pick wagers more than it surely saves, or None. A statement it makes ``min_improvement``
    cheaper on the planner's estimate but not at all with only shared_buffers cached is a bet: the real
    planner switches to the index on an estimate that rests on the OS cache. On TPC-H, ``orders
    (o_custkey)`` was such a bet for q05, q07 and q13 (0.60x, 0.69x and 0.80x as fast once built) and a sure
    saving only for q22 (2.1x): the time of the statements at stake must not exceed the time saved surely."""
    robust_saving = {key: (b - a) / b for key, b, a in robust if b > 0}
    at_stake = [
        key
        for key, b, a in chosen.per_statement
        if b > 0 and (b - a) / b >= min_improvement and robust_saving.get(key, 0.0) < 0.01
    ]
    stake_ms = sum(density.times.get(key, 0.0) for key in at_stake)
    sure_ms = density.saved(robust, baselines) * density.total
    if stake_ms <= sure_ms:
        return None
    return (
        f"loses its saving on {len(at_stake)} statement(s) taking {stake_ms:,.0f} ms, which the planner would "
        f"switch to it on the estimate, and saves {sure_ms:,.0f} ms for sure"
    )


@dataclass(frozen=True)
class _Density:
    """An index must save at least ``factor`` times the share of the database it adds, as a share of the
    real time of the statements some candidate makes cheaper (the improvable workload: a count over most
    of a table, which no index helps, does not dilute every index's share). A statement's time scales with
    its cost: what the index takes off the cost, as a share of the cost with none of the new indexes, is
    the share of its time it saves. Real time, not planner cost: one correlated subquery estimated at
    1.9e9 would dwarf every other statement. 180 MB on TPC-H's lineitem for 1.3% of that time is no
    bargain. Off when no statement's time is known (statements given with -s or -f)."""

    times: Mapping[str, float]
    baselines: Mapping[str, float]
    total: float
    database_bytes: int
    factor: float

    @classmethod
    def of(
        cls, work: Sequence[WorkItem], improvable: set[str], cost: CostFn, database_bytes: int, factor: float
    ) -> _Density | None:
        times = {item.key: item.time_ms for item in work if item.key in improvable}
        total = sum(times.values())
        if total <= 0:
            return None
        return cls(times, {key: cost(key, frozenset()) for key in times}, total, database_bytes, factor)

    def saved(
        self, evidence: Sequence[tuple[str, float, float]], baselines: Mapping[str, float] | None = None
    ) -> float:
        costs = self.baselines if baselines is None else baselines
        saved = sum(
            self.times.get(key, 0.0) * (b - a) / costs[key] for key, b, a in evidence if costs.get(key, 0.0) > 0
        )
        return saved / self.total

    def shortfall(
        self,
        candidate: Candidate,
        size: int,
        evidence: Sequence[tuple[str, float, float]],
        baselines: Mapping[str, float] | None = None,
    ) -> str | None:
        """Why the index is not worth its size, or None when it is. ``baselines``: each statement's cost with
        none of the new indexes, when ``evidence`` was planned otherwise than the choice."""
        share, size_share = self.saved(evidence, baselines), size / self.database_bytes
        if share >= self.factor * size_share:
            return None
        return (
            f"would save about {share:.1%} of the time indexes could save for {size_share:.1%} of the database's "
            f"size (advisor.min_saving_per_size {self.factor:g})"
        )


def _without_costly(
    selection: Selection,
    affected: Mapping[Candidate, Sequence[WorkItem]],
    cost: CostFn,
    item_tables: Mapping[str, frozenset[tuple[str, str]]],
    density: _Density,
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> Selection:
    """The same rule on the final set's restated evidence (with all the others in place), least worth first."""
    while True:
        costly = {
            c.candidate: reason
            for c in selection.chosen
            if (reason := density.shortfall(c.candidate, c.size, c.per_statement)) is not None
        }
        if not costly:
            return selection
        dropped = min(
            (c for c in selection.chosen if c.candidate in costly),
            key=lambda c: (density.saved(c.per_statement) / c.size, repr(c.candidate)),
        )
        selection.rejected.append(Rejection(dropped.candidate, costly[dropped.candidate], final=True))
        selection.chosen = [c for c in selection.chosen if c is not dropped]
        selection = _without_redundant(selection, affected, cost, item_tables, plan_ahead)


def _without_marginal(
    selection: Selection,
    affected: Mapping[Candidate, Sequence[WorkItem]],
    cost: CostFn,
    item_tables: Mapping[str, frozenset[tuple[str, str]]],
    min_improvement: float,
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> Selection:
    """Drop a pick that, with all the others in place, no longer makes any statement ``min_improvement``
    cheaper (greedy chose it before a wider index that now does its work): the least useful first, the
    others' evidence restated after each, since their savings change without it."""
    while True:
        weak = [c for c in selection.chosen if _best_ratio(c) < min_improvement]
        if not weak:
            return selection
        dropped = min(weak, key=lambda c: (c.gain, repr(c.candidate)))
        best = _best_ratio(dropped)
        others = {c.candidate for c in selection.chosen if c is not dropped}
        reason = (
            f"adds too little once {_listed(others)} chosen: saves at most {best:.0%} of a statement's cost "
            f"(minimum {min_improvement:.0%})"
            if others
            else f"saves at most {best:.0%} of a statement's cost (minimum {min_improvement:.0%})"
        )
        selection.rejected.append(Rejection(dropped.candidate, reason))
        selection.chosen = [c for c in selection.chosen if c is not dropped]
        selection = _without_redundant(selection, affected, cost, item_tables, plan_ahead)


def _best_ratio(chosen: Choice) -> float:
    return max(((b - a) / b for _, b, a in chosen.per_statement if b > 0), default=0.0)


# A statement costlier by more than this share with the chosen set than without it is a predicted regression
# (below it: the planner's own fuzz when it compares paths, 1%).
REGRESSION_TOLERANCE = 0.01


def _without_regressions(
    selection: Selection,
    work: Sequence[WorkItem],
    cost: CostFn,
    item_tables: Mapping[str, frozenset[tuple[str, str]]],
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> bool:
    """Re-plan every statement of the workload with the final set: where one gets costlier than with none of
    the new indexes, drop the index whose absence helps it most, and say so. Whether a dropped index was
    chosen for other statements does not save it: the set must make nothing worse."""
    dropped = False
    while True:
        kept = {c.candidate for c in selection.chosen}
        worst: tuple[float, WorkItem, float, float] | None = None
        on_table = _by_table(kept)
        sets = [(item, _on_its_tables(on_table, item, item_tables)) for item in work]
        plan_ahead(((item.key, s) for item, present in sets if present for s in (frozenset(), present)), False)
        for item, present in sets:
            if not present:
                continue
            before, after = cost(item.key, frozenset()), cost(item.key, present)
            if after > before * (1 + REGRESSION_TOLERANCE) and (worst is None or after / before > worst[0]):
                worst = (after / max(before, 1e-9), item, before, after)
        if worst is None:
            return dropped
        _, item, before, after = worst
        present = frozenset(c for c in kept if (c.schema, c.table) in item_tables[item.key])
        plan_ahead(((item.key, present - {c}) for c in present), False)
        culprit = min(sorted(present, key=repr), key=lambda c: cost(item.key, present - {c}))
        selection.chosen = [c for c in selection.chosen if c.candidate != culprit]
        reason = (
            f"with the other chosen indexes it makes a statement costlier on the planner's estimate "
            f"({before:,.0f} -> {after:,.0f}): {item.key[:80]}"
        )
        selection.rejected.append(Rejection(culprit, reason, final=True))
        dropped = True


def _capped(selection: Selection, max_new_indexes: int, max_per_table: int) -> bool:
    """Keep the choices that save the most, at most ``max_per_table`` on a table and ``max_new_indexes`` in
    all (counted after redundant picks are gone, so a pick a later one replaced takes no place)."""
    kept: list[Choice] = []
    per_table: dict[tuple[str, str], int] = {}
    for choice_ in sorted(selection.chosen, key=lambda c: c.gain, reverse=True):
        table = (choice_.candidate.schema, choice_.candidate.table)
        if len(kept) >= max_new_indexes:
            reason = f"{max_new_indexes} new indexes that save more are chosen (advisor.max_new_indexes)"
        elif per_table.get(table, 0) >= max_per_table:
            reason = (
                f"{max_per_table} new indexes that save more are chosen on this table (advisor.max_indexes_per_table)"
            )
        else:
            kept.append(choice_)
            per_table[table] = per_table.get(table, 0) + 1
            continue
        selection.rejected.append(Rejection(choice_.candidate, reason))
    dropped = len(kept) < len(selection.chosen)
    selection.chosen = [c for c in selection.chosen if c in kept]
    return dropped


def _by_table(indexes: Iterable[Candidate]) -> dict[tuple[str, str], set[Candidate]]:
    found: dict[tuple[str, str], set[Candidate]] = {}
    for candidate in indexes:
        found.setdefault((candidate.schema, candidate.table), set()).add(candidate)
    return found


def _on_its_tables(
    indexes: Mapping[tuple[str, str], set[Candidate]],
    item: WorkItem,
    item_tables: Mapping[str, frozenset[tuple[str, str]]],
) -> frozenset[Candidate]:
    """Those of the indexes (by table) on the statement's tables: all its plan depends on."""
    return frozenset().union(*(indexes.get(table, ()) for table in item_tables[item.key]))


def _without_redundant(
    selection: Selection,
    affected: Mapping[Candidate, Sequence[WorkItem]],
    cost: CostFn,
    item_tables: Mapping[str, frozenset[tuple[str, str]]],
    plan_ahead: PlanAhead = _no_plans_ahead,
) -> Selection:
    """Drop what a later, better choice made useless, and restate each survivor's evidence as its saving
    with all the others in place (greedy cannot take back an early, narrower pick)."""
    kept = _by_table(c.candidate for c in selection.chosen)
    for choice_ in sorted(selection.chosen, key=lambda c: c.gain):
        candidate = choice_.candidate
        sets = [(item, _on_its_tables(kept, item, item_tables)) for item in affected[candidate]]
        plan_ahead(_with_and_without(candidate, sets), False)
        if all(cost(item.key, indexes - {candidate}) <= cost(item.key, indexes) for item, indexes in sets):
            kept[(candidate.schema, candidate.table)].discard(candidate)
            selection.rejected.append(
                Rejection(candidate, "redundant: the other chosen indexes serve its statements as well")
            )
    plans = [
        (choice_, [(item, _on_its_tables(kept, item, item_tables)) for item in affected[choice_.candidate]])
        for choice_ in selection.chosen
        if choice_.candidate in kept.get((choice_.candidate.schema, choice_.candidate.table), ())
    ]
    plan_ahead((pair for choice_, sets in plans for pair in _with_and_without(choice_.candidate, sets)), False)
    restated = []
    for choice_, sets in plans:
        per_statement, gain = [], 0.0
        for item, present in sets:
            before, after = cost(item.key, present - {choice_.candidate}), cost(item.key, present)
            if after < before:
                per_statement.append((item.key, before, after))
                gain += item.weight * (before - after)
        restated.append(Choice(choice_.candidate, choice_.size, gain, tuple(per_statement)))
    selection.chosen = restated
    return selection
