"""Every statement pg_stat_statements stores (PG15: every constant a $n) is plannable by the advisor.

The statements are run for real, with literals as reporting tools send them and with parameters as
psycopg sends them; what the advisor then reads back is pg_stat_statements' normalized text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from bench import tpch
from dbmaint.advisor.recommend import plannable
from dbmaint.advisor.whatif import PlanError, WhatIf
from dbmaint.pg import collect
from dbmaint.pg.cluster import Cluster
from dbmaint.sql import sqlshape
from tests.db.conftest import Database, Invoke
from tests.db.helpers import json_output

FORMS_SCHEMA = (
    """CREATE TABLE t (id int PRIMARY KEY, n numeric, i int, s text, c char(10), d date, ts timestamptz,
       flag boolean, j jsonb)""",
    """INSERT INTO t SELECT g, g / 7.0, g % 100, 'ab' || g, 'c' || g % 9, date '2024-01-01' + g % 365,
       timestamptz '2024-01-01' + g * interval '1 minute', g % 2 = 0, jsonb_build_object('k', g % 5)
       FROM generate_series(1, 2000) g""",
    "ANALYZE t",
)

# One statement per form of constant that normalization turns into something PostgreSQL cannot parse or
# type as such: typed literals after every operator, arithmetic between constants, CASE results, function
# arguments, extract and substring, IN lists, row comparisons.
FORMS = (
    "SELECT id FROM t WHERE d >= date '2024-01-01' AND d < date '2024-01-01' + interval '1' month",
    "SELECT id FROM t WHERE d <= date '2024-03-01' AND d <> date '2024-02-01'",
    "SELECT id FROM t WHERE d BETWEEN date '2024-01-01' AND date '2024-02-01'",
    "SELECT id FROM t WHERE d > date '2024-01-01' - 30",
    "SELECT id FROM t WHERE n BETWEEN 0.06 - 0.01 AND 0.06 + 0.01",
    "SELECT id FROM t WHERE n <= 1 + 10 AND i >= 2 * 3",
    "SELECT id FROM t WHERE n * 2 > 10 + 5",
    "SELECT -1 * n FROM t WHERE id = 2",
    "SELECT id FROM t WHERE i % 2 = 0 AND n <> 5 AND s <> 'x'",
    "SELECT id FROM t WHERE id IN (1, 2, 3) AND c IN ('c1', 'c2')",
    "SELECT id FROM t WHERE ts > timestamp '2024-01-01 00:00' - interval '3 days'",
    "SELECT id FROM t WHERE ts > now() - interval '3 days'",
    "SELECT id FROM t WHERE ts >= timestamptz '2024-01-02' AND ts < timestamptz '2024-01-02' + interval '1 hour'",
    "SELECT id FROM t WHERE ts >= '2024-01-01'::timestamptz",
    "SELECT sum(CASE WHEN s = 'a' THEN 1 ELSE 0 END), avg(CASE WHEN flag THEN 1.5 END) FROM t WHERE i = 4",
    "SELECT 100.00 * sum(CASE WHEN s LIKE 'ab1%' THEN n ELSE 0 END) / sum(n) FROM t WHERE i = 5",
    "SELECT CASE WHEN n > 1 THEN 'big' ELSE 'small' END FROM t WHERE id = 3",
    "SELECT extract(year FROM d), count(*) FROM t WHERE i = 6 GROUP BY 1",
    "SELECT date_part('month', d) FROM t WHERE id = 1",
    "SELECT id FROM t WHERE substring(s FROM 1 FOR 2) IN ('ab', 'cd') AND substring(s, 2, 1) = 'b'",
    "SELECT id FROM t WHERE left(s, 2) = 'ab' AND coalesce(n, 0) > 5 AND round(n, 2) = 1.5",
    "SELECT id FROM t WHERE s LIKE 'ab%' AND s NOT LIKE '%z' AND s ILIKE 'AB1%'",
    "SELECT id FROM t WHERE flag = true AND j ->> 'k' = '3'",
    "SELECT id FROM t WHERE ts AT TIME ZONE 'UTC' > timestamp '2024-01-01'",
    "SELECT id FROM t WHERE (i, id) > (1, 2) ORDER BY i, id LIMIT 10 OFFSET 20",
    "SELECT id FROM t WHERE d = current_date - 7 OR d > make_date(2024, 1, 1)",
    "SELECT id FROM t WHERE s = ANY ('{ab1,ab2}') AND i = ANY (ARRAY[1, 2])",
    "SELECT id FROM t WHERE ts::date = date '2024-01-01' AND i + 1 BETWEEN 1 AND 2",
    "SELECT i, count(*) FROM t WHERE n > 0.5 GROUP BY i HAVING count(*) > 3 ORDER BY 2 DESC LIMIT 5",
)

# Parameters as psycopg sends them (server-side binding: int2/int4/int8/numeric/text chosen per value).
PARAMETERIZED: tuple[tuple[str, tuple[Any, ...]], ...] = (
    ("SELECT id FROM t WHERE i = %s AND d >= %s", (3, "2024-02-01")),
    ("SELECT id FROM t WHERE i = %s AND n < %s", (70000, 1.5)),
    ("SELECT id FROM t WHERE s = %s ORDER BY ts DESC LIMIT %s", ("ab5", 10)),
)


def plan_failures(document: dict[str, Any]) -> dict[str, int]:
    return {
        reason: count
        for reason, count in document["workload"]["left_out"].items()
        if reason.startswith(("cannot be planned", "not valid SQL"))
    }


@pytest.fixture
def every_statement(write_config: Callable[[str], str]) -> str:
    # The tables are small: every statement is weighed however fast it ran, to be planned.
    return write_config('[advisor]\nmin_total_time = "0s"\nmin_calls = 1\n')


def fresh(pg: Cluster, name: str, statements: tuple[str, ...]) -> Database:
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    database.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements", "CREATE EXTENSION hypopg", *statements)
    return database


@pytest.fixture(scope="module")
def tpch_db(pg: Cluster) -> Iterator[Database]:
    database = fresh(pg, "normalized_tpch", ())
    with database.connect() as conn:
        tpch.create_schema(conn)
        conn.execute("ANALYZE")
        conn.execute("SELECT pg_stat_statements_reset()")
        for query in tpch.QUERIES.values():
            conn.execute(query)
    yield database
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute('DROP DATABASE IF EXISTS "normalized_tpch" WITH (FORCE)')


def test_all_22_tpch_queries_as_pg_stat_statements_stores_them_are_planned(
    tpch_db: Database, dbmaint: Invoke, every_statement: str
) -> None:
    stored = tpch_db.value("SELECT count(*) FROM pg_stat_statements WHERE query ~* 'lineitem|partsupp|customer'")
    assert stored >= 22
    document = json_output(
        dbmaint("advise", "--config", every_statement, "--dsn", tpch_db.dsn, "--format", "json"), exit_code=0
    )
    assert plan_failures(document) == {}
    # Every query touches tables and has a join or predicate: each one is analysed, none left out.
    assert document["workload"]["analysed"] >= 22, document["workload"]


def test_a_catalogue_of_forms_is_planned(pg: Cluster, dbmaint: Invoke, every_statement: str) -> None:
    database = fresh(pg, "normalized_forms", FORMS_SCHEMA)
    with database.connect() as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
        for query in FORMS:
            conn.execute(query)
        for query, params in PARAMETERIZED:
            conn.execute(query, params)
        stored = [row[0] for row in conn.execute("SELECT query FROM pg_stat_statements WHERE query ~ ' t '")]
        assert len(stored) == len(FORMS) + len(PARAMETERIZED)
        # Planned as the advisor plans them, whether or not an index could serve them.
        catalog, whatif, failures = collect.catalog(conn), WhatIf(conn, None), []
        for query in stored:
            text = sqlshape.repair_normalized(query)
            try:
                whatif.cost(plannable(text, sqlshape.analyse(text, catalog), catalog))
            except PlanError as exc:
                failures.append(f"{exc}: {text}")
        assert failures == []
    document = json_output(
        dbmaint("advise", "--config", every_statement, "--dsn", database.dsn, "--format", "json"), exit_code=0
    )
    assert plan_failures(document) == {}
