"""The pure half of explain's sandbox: what SQL text refers to, and the policy for one function."""

from __future__ import annotations

from dbmaint.explain import sandbox_policy
from dbmaint.explain.sandbox_policy import Function


def fn(name: str, volatility: str = "v", schema: str = "public", **kwargs: object) -> Function:
    return Function(0, schema, name, volatility, bool(kwargs.get("definer", False)), str(kwargs.get("lang", "sql")))


def test_references_find_functions_operators_relations_and_casts() -> None:
    refs = sandbox_policy.references(
        "WITH c AS (SELECT 1 AS x) SELECT f(a), s.g(b) FROM public.t JOIN v ON v.id OPERATOR(o.===) t.id, c "
        "WHERE x::mytype > 0"
    )
    assert refs.functions == {(None, "f"), ("s", "g")}
    assert {(None, "="), ("o", "===")} & refs.operators == {("o", "===")}
    assert (None, ">") in refs.operators
    assert refs.relations == {("public", "t"), (None, "v")}  # the CTE c is no relation
    assert refs.types == {(None, "mytype")}
    assert refs.blocked is None


def test_utility_statements_block_the_proof() -> None:
    assert sandbox_policy.references("COPY t TO PROGRAM 'x'").blocked == "it runs COPY"
    assert sandbox_policy.references("SELECT 1; VACUUM t").blocked == "it runs VACUUM"
    assert sandbox_policy.references("SELEC 1").blocked == "its SQL cannot be read"


def test_begin_atomic_bodies_are_read_from_their_definition() -> None:
    refs = sandbox_policy.references(
        "CREATE OR REPLACE FUNCTION public.f() RETURNS boolean LANGUAGE sql STABLE\n"
        "BEGIN ATOMIC\n SELECT pg_terminate_backend(pid) FROM pg_stat_activity;\nEND"
    )
    assert (None, "pg_terminate_backend") in refs.functions
    assert (None, "pg_stat_activity") in refs.relations


PLPGSQL = """CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$
DECLARE r record; x int := g0();
BEGIN
  x := g1(2) + 1;
  x = g2(3);
  PERFORM g3();
  IF x > g4() THEN RETURN g5(); END IF;
  FOR r IN SELECT g6() FROM t6 LOOP NULL; END LOOP;
  RETURN (SELECT count(*) FROM t7);
END $$"""


def test_plpgsql_bodies_every_expression_and_statement() -> None:
    refs = sandbox_policy.plpgsql_references(PLPGSQL)
    assert {name for _, name in refs.functions} >= {"g0", "g1", "g2", "g3", "g4", "g5", "g6", "count"}
    assert refs.relations == {(None, "t6"), (None, "t7")}
    assert refs.blocked is None


def test_plpgsql_that_builds_sql_at_run_time_cannot_be_proven() -> None:
    dynamic = PLPGSQL.replace("PERFORM g3();", "EXECUTE 'DROP TABLE t';")
    assert sandbox_policy.plpgsql_references(dynamic).blocked == "it runs EXECUTE of a string"
    copy = PLPGSQL.replace("PERFORM g3();", "COPY t TO PROGRAM 'touch x';")
    assert sandbox_policy.plpgsql_references(copy).blocked == "it runs COPY"
    cursor = PLPGSQL.replace("PERFORM g3();", "OPEN c FOR EXECUTE 'SELECT 1';")
    assert sandbox_policy.plpgsql_references(cursor.replace("DECLARE x", "DECLARE c refcursor; x")).blocked


def test_written_relations() -> None:
    assert sandbox_policy.written_relations("UPDATE s.a SET x = 1 FROM b WHERE a.id = b.id") == {("s", "a")}
    written = sandbox_policy.written_relations("WITH d AS (DELETE FROM c RETURNING *) INSERT INTO e SELECT * FROM d")
    assert written == {(None, "c"), (None, "e")}
    assert sandbox_policy.written_relations("SELECT * FROM a") == set()


def test_policy() -> None:
    assert sandbox_policy.judge(fn("lower", "i", "pg_catalog")) is None
    assert sandbox_policy.judge(fn("now", "s", "pg_catalog")) is None
    assert sandbox_policy.judge(fn("random", "v", "pg_catalog")) is None
    assert (
        sandbox_policy.judge(fn("pg_terminate_backend", "v", "pg_catalog")) == "is a built-in not known to be read-only"
    )
    assert sandbox_policy.judge(fn("query_to_xml", "s", "pg_catalog")) == "runs SQL given as text or acts on the server"
    assert sandbox_policy.judge(fn("mine", "v")) == "is VOLATILE (it may change data or act outside the database)"
    assert sandbox_policy.judge(fn("mine", "s", definer=True)) == "runs with its owner's rights (SECURITY DEFINER)"
    assert sandbox_policy.judge(fn("mine", "s")) is None
    assert sandbox_policy.judge(fn("mine", "v"), trust_functions=True) is None
    assert sandbox_policy.judge(fn("pg_terminate_backend", "v", "pg_catalog"), trust_functions=True) is not None
