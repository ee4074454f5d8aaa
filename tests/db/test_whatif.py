"""The what-if planner keeps its hypothetical indexes between plans and changes only the difference: every
cost must still be the cost with exactly the indexes asked for, whatever was planned before, and a failure
(a candidate hypopg refuses, a statement that cannot be planned) must leave nothing behind."""

from __future__ import annotations

import itertools
from typing import Any

import psycopg
import pytest

from dbmaint.advisor import whatif as whatif_module
from dbmaint.advisor.candidates import Candidate, Plannable
from dbmaint.advisor.whatif import PlanError, WhatIf
from tests.db.conftest import Database

SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS hypopg",
    "CREATE TABLE orders (id int PRIMARY KEY, account int, status text, created date, total numeric)",
    """INSERT INTO orders SELECT g, g % 500, (ARRAY['paid', 'shipped', 'pending'])[1 + g % 3],
       date '2024-01-01' + g % 700, g % 1000 FROM generate_series(1, 50000) g""",
    "ANALYZE orders",
)
STATEMENT = Plannable(
    "q", "SELECT id, total FROM orders WHERE account = $1 AND status = $2 ORDER BY created DESC LIMIT 10", 2
)
OTHER = Plannable("r", "SELECT count(*) FROM orders WHERE created >= $1", 1)
# Planned with values, as a custom plan: a generic plan prices the range at a third of the table.
RANGE = Plannable(
    "t",
    "SELECT id FROM orders WHERE created > $1 AND account = $2",
    2,
    {1: "date", 2: "int"},
    {1: "2025-11-20", 2: "7"},
)
A = Candidate("public", "orders", ("account",))
B = Candidate("public", "orders", ("account", "status", "created"), directions=("", "", "DESC"))
C = Candidate("public", "orders", ("created",))
SETS = [frozenset(s) for n in range(4) for s in itertools.combinations((A, B, C), n)]


def fresh_cost(database: Database, statement: Plannable, indexes: frozenset[Candidate]) -> float:
    with database.connect() as conn:
        return WhatIf(conn, "public").cost(statement, indexes)


def test_each_cost_is_planned_with_exactly_the_indexes_asked_for(database: Database) -> None:
    database.execute(*SCHEMA)
    expected = {(s.key, ix): fresh_cost(database, s, ix) for s in (STATEMENT, OTHER) for ix in SETS}
    assert expected[("q", frozenset({B}))] < expected[("q", frozenset({A}))] < expected[("q", frozenset())]
    with database.connect() as conn:
        whatif = WhatIf(conn, "public")
        # Back and forth between sets, so that each plan starts from another one's indexes.
        order = [*SETS, *reversed(SETS), *SETS[::2], *SETS[1::2]]
        for statement, indexes in itertools.product((STATEMENT, OTHER), order):
            assert whatif.cost(statement, indexes) == pytest.approx(expected[(statement.key, indexes)])
        # Nothing is planned twice, and the session holds no more hypothetical indexes than the last set.
        assert whatif.plans == 2 * len(SETS)
        assert conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone() == (len(indexes),)


def test_a_failure_leaves_no_index_and_no_prepared_statement_behind(database: Database) -> None:
    database.execute(*SCHEMA)
    with database.connect() as conn:
        whatif = WhatIf(conn, "public")
        whatif.cost(STATEMENT, {A, C})
        with pytest.raises(PlanError, match=r"hypothetical index .*missing"):
            whatif.cost(STATEMENT, {A, Candidate("public", "orders", ("missing",))})
        with pytest.raises(PlanError, match='column "nope" does not exist'):
            whatif.cost(Plannable("bad", "SELECT nope FROM orders WHERE id = $1", 1), {B})
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        # Planning goes on from a known state: the costs are those of the sets asked for.
        assert whatif.cost(STATEMENT, {B}) == pytest.approx(fresh_cost(database, STATEMENT, frozenset({B})))
        assert whatif.cost(OTHER, {C}) == pytest.approx(fresh_cost(database, OTHER, frozenset({C})))
        assert conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone() == (1,)


def test_planned_ahead_many_to_a_round_trip_each_with_exactly_its_indexes(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan_many puts several sets' definitions and plans in one string: an index created earlier in the
    same string (its oid not known yet) or in an earlier one must be gone when a set without it is planned,
    and a generic plan after a custom one (with values) must be generic again."""
    database.execute(*SCHEMA)
    statements = (STATEMENT, OTHER, RANGE)
    expected = {(s.key, ix): fresh_cost(database, s, ix) for s in statements for ix in SETS}
    monkeypatch.setattr(whatif_module, "BATCH", 5)  # several strings, so that some sets span two
    with database.connect() as conn:
        whatif = WhatIf(conn, "public")
        trips: list[Any] = []
        execute = conn.execute

        def counted(query: Any, *args: Any) -> Any:
            trips.append(query)
            return execute(query, *args)

        with monkeypatch.context() as patch:
            patch.setattr(conn, "execute", counted)
            whatif.plan_many((statement, indexes) for statement in statements for indexes in reversed(SETS))
        assert whatif.plans == 3 * len(SETS)
        assert len(trips) == 5  # 24 plans, 5 to a string, and none of the strings failed
        assert conn.execute("SHOW plan_cache_mode").fetchone() == ("force_generic_plan",)
        for statement, indexes in itertools.product(statements, SETS):
            assert whatif.cost(statement, indexes) == pytest.approx(expected[(statement.key, indexes)])
        assert whatif.plans == 3 * len(SETS)  # all of them from the cache
        # The session's hypothetical indexes are known after the batches: planning goes on from there.
        third = Plannable("s", "SELECT id FROM orders WHERE created = $1 ORDER BY account", 1)
        assert whatif.cost(third, {A}) == pytest.approx(fresh_cost(database, third, frozenset({A})))
        assert conn.execute("SELECT count(*) FROM hypopg_list_indexes").fetchone() == (1,)
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)


def test_a_statement_that_cannot_be_planned_leaves_the_rest_of_its_batch_planned(database: Database) -> None:
    database.execute(*SCHEMA)
    bad = Plannable("bad", "SELECT nope FROM orders WHERE id = $1", 1)
    with database.connect() as conn:
        whatif = WhatIf(conn, "public")
        whatif.plan_many([(STATEMENT, frozenset({A})), (bad, frozenset({A})), (OTHER, frozenset({A, C}))])
        assert whatif.plans == 2
        assert conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone() == (0,)
        with pytest.raises(PlanError, match='column "nope" does not exist'):
            whatif.cost(bad, {A})
        planned = whatif.plans
        assert whatif.cost(OTHER, {A, C}) == pytest.approx(fresh_cost(database, OTHER, frozenset({A, C})))
        assert whatif.cost(STATEMENT, {A}) == pytest.approx(fresh_cost(database, STATEMENT, frozenset({A})))
        assert whatif.plans == planned


def test_a_second_session_plans_half_with_the_first_ones_settings(database: Database) -> None:
    """Inside helped(), a second session of the same role on the same database plans half of each batch;
    it has the settings made in the first (a planner cost here), so the costs are the same as planned
    alone, and it is gone afterwards."""
    database.execute(*SCHEMA)
    with database.connect() as conn:
        conn.execute("SET random_page_cost = 40")
        alone = WhatIf(conn, "public")
        expected = {(s.key, ix): alone.cost(s, ix) for s in (STATEMENT, OTHER) for ix in SETS}
        conn.execute("SELECT hypopg_reset()")
    assert expected != {key: fresh_cost(database, STATEMENT if key[0] == "q" else OTHER, key[1]) for key in expected}

    def sessions(conn: psycopg.Connection[tuple[Any, ...]]) -> list[str]:
        return [row[0] for row in conn.execute(
            "SELECT query FROM pg_stat_activity WHERE application_name = 'whatif-helped' AND pid <> pg_backend_pid()"
        )]  # fmt: skip

    with database.connect(application_name="whatif-helped") as conn, database.connect() as watcher:
        conn.execute("SET random_page_cost = 40")
        whatif = WhatIf(conn, "public")
        with whatif.helped():
            whatif.plan_many((statement, indexes) for statement in (STATEMENT, OTHER) for indexes in SETS)
            helper = sessions(watcher)
            assert len(helper) == 2 and all("EXPLAIN (FORMAT JSON) EXECUTE" in query for query in helper)
        assert whatif.plans == 2 * len(SETS)
        for statement, indexes in itertools.product((STATEMENT, OTHER), SETS):
            assert whatif.cost(statement, indexes) == pytest.approx(expected[(statement.key, indexes)])
        assert whatif.plans == 2 * len(SETS)
        assert len(sessions(watcher)) == 1


def test_without_a_second_session_it_plans_on_one(database: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    database.execute(*SCHEMA)
    expected = fresh_cost(database, OTHER, frozenset({B, C}))

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise psycopg.OperationalError("too many clients already")

    with database.connect() as conn:
        monkeypatch.setattr(psycopg, "connect", refuse)
        whatif = WhatIf(conn, "public")
        with whatif.helped():
            whatif.plan_many((statement, indexes) for statement in (STATEMENT, OTHER) for indexes in SETS)
        assert whatif.plans == 2 * len(SETS)
        assert whatif.cost(OTHER, {B, C}) == pytest.approx(expected)
        assert whatif.plans == 2 * len(SETS)


def test_a_second_session_lost_midway_leaves_the_planning_to_the_first(database: Database) -> None:
    database.execute(*SCHEMA)
    expected = {(s.key, ix): fresh_cost(database, s, ix) for s in (STATEMENT, OTHER) for ix in SETS}
    with database.connect(application_name="whatif-lost") as conn, database.connect() as watcher:
        whatif = WhatIf(conn, "public")
        with whatif.helped():
            whatif.plan_many((statement, indexes) for statement in (STATEMENT, OTHER) for indexes in SETS[:4])
            watcher.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'whatif-lost' AND pid <> %s",
                (conn.info.backend_pid,),
            )
            whatif.plan_many((statement, indexes) for statement in (STATEMENT, OTHER) for indexes in SETS[4:])
        assert whatif.plans == 2 * len(SETS)
        for statement, indexes in itertools.product((STATEMENT, OTHER), SETS):
            assert whatif.cost(statement, indexes) == pytest.approx(expected[(statement.key, indexes)])
        assert whatif.plans == 2 * len(SETS)


def test_a_statement_on_a_locked_table_waits_once_not_once_a_plan(database: Database) -> None:
    """A table locked by another session: the first plan of a statement reading it waits out the timeout;
    every later plan of that statement is given up at once (it waited five times over before)."""
    from tests.db.helpers import LockHolder

    database.execute(*SCHEMA)
    holder = LockHolder(database.dsn, "LOCK orders IN ACCESS EXCLUSIVE MODE")
    try:
        with database.connect() as conn:
            whatif = WhatIf(conn, "public", statement_timeout=0.5)
            whatif.plan_many((STATEMENT, indexes) for indexes in SETS)
            attempted = whatif.plans
            for indexes in SETS:
                with pytest.raises(PlanError, match="locked by another session"):
                    whatif.cost(STATEMENT, indexes)
            assert whatif.plans == attempted  # given up: nothing sent again
            batches: list[int] = []
            planned_batch = whatif._plan_batch

            def counted(batch: Any, costs: Any) -> None:
                batches.append(len(batch))
                planned_batch(batch, costs)

            whatif._plan_batch = counted  # type: ignore[method-assign]
            whatif.plan_many((STATEMENT, indexes) for indexes in SETS)  # asked ahead again, as greedy does
            assert batches == []  # not batched again to wait out the timeout once more
            assert holder.still_alive()  # and the session holding the lock was left alone
    finally:
        holder.release()
