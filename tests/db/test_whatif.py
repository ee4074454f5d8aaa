"""The what-if planner keeps its hypothetical indexes between plans and changes only the difference: every
cost must still be the cost with exactly the indexes asked for, whatever was planned before, and a failure
(a candidate hypopg refuses, a statement that cannot be planned) must leave nothing behind."""

from __future__ import annotations

import itertools

import pytest

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
