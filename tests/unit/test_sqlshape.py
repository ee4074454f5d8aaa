"""Column uses read with PostgreSQL's parser, resolved through aliases, CTEs, subqueries and views."""

from __future__ import annotations

import pytest

from dbmaint.sql.sqlshape import Catalog, Relation, ShapeError, analyse, relation_names, repair_normalized

CATALOG = Catalog(
    relations={
        ("public", "orders"): Relation(
            "public", "orders", "r",
            {"id": "integer", "customer_id": "integer", "status": "text", "created_at": "timestamptz"},
        ),
        ("public", "customers"): Relation("public", "customers", "r", {"id": "integer", "Country": "text"}),
        ("public", "events"): Relation("public", "events", "p", {"at": "timestamptz", "kind": "text"}),
        ("public", "recent_orders"): Relation(
            "public", "recent_orders", "v", {"order_id": "integer", "cust": "integer"},
            "SELECT o.id AS order_id, o.customer_id AS cust FROM orders o WHERE o.status <> 'cancelled'",
        ),
        ("public", "remote"): Relation("public", "remote", "f", {"id": "integer"}),
        ("pg_catalog", "pg_class"): Relation("pg_catalog", "pg_class", "r", {"oid": "oid", "relname": "name"}),
    }
)  # fmt: skip


def uses(query: str) -> set[tuple[str, str, str]]:
    return {(u.table, u.column, u.role) for u in analyse(query, CATALOG).uses if u.role != "read"}


def test_equality_range_join_and_sort_through_aliases() -> None:
    found = uses(
        "SELECT o.id FROM orders o JOIN customers c ON c.id = o.customer_id "
        "WHERE o.status = $1 AND o.created_at >= $2 ORDER BY o.created_at DESC LIMIT 10"
    )
    assert found == {
        ("customers", "id", "join"), ("orders", "customer_id", "join"), ("orders", "status", "eq"),
        ("orders", "created_at", "range"), ("orders", "created_at", "order"),
    }  # fmt: skip
    shape = analyse("SELECT 1 FROM orders WHERE status = $1 LIMIT $2", CATALOG)
    assert shape.has_limit and shape.param_types(CATALOG) == {1: "text"}


def test_views_resolve_to_their_base_columns() -> None:
    assert ("orders", "customer_id", "eq") in uses("SELECT order_id FROM recent_orders WHERE cust = 42")


@pytest.mark.parametrize(
    "query",
    [
        "WITH x AS (SELECT customer_id AS cid FROM orders) SELECT * FROM x WHERE cid = $1",
        "WITH x AS MATERIALIZED (SELECT customer_id AS cid FROM orders) SELECT * FROM x WHERE cid = $1",
        "WITH x AS NOT MATERIALIZED (SELECT customer_id AS cid FROM orders) SELECT * FROM x WHERE cid = $1",
    ],
)
def test_ctes_resolve_to_their_base_columns(query: str) -> None:
    assert ("orders", "customer_id", "eq") in uses(query)


def test_subquery_with_column_aliases() -> None:
    query = "SELECT s.a FROM (SELECT id, status FROM orders) AS s(a, st) WHERE s.st = 'open' ORDER BY a"
    assert uses(query) == {("orders", "status", "eq"), ("orders", "id", "order")}


def test_quoted_mixed_case_names() -> None:
    assert ("customers", "Country", "eq") in uses('SELECT id FROM customers WHERE "Country" = $1')


def test_order_and_group_by_alias_and_position() -> None:
    found = uses("SELECT status AS s, created_at AS t FROM orders GROUP BY 1, t ORDER BY s, 2")
    assert found == {
        ("orders", "status", "group"), ("orders", "created_at", "group"),
        ("orders", "status", "order"), ("orders", "created_at", "order"),
    }  # fmt: skip


def test_partitioned_tables_are_tables() -> None:
    assert ("events", "at", "range") in uses("SELECT kind FROM events WHERE at > now() - interval '1 day'")


def test_subqueries_in_where_are_followed() -> None:
    found = uses("SELECT id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id)")
    assert ("orders", "customer_id", "join") in found
    assert ("orders", "customer_id", "join") in uses(
        "SELECT 1 FROM customers WHERE id IN (SELECT customer_id FROM orders)"
    )


def test_or_and_functions_are_not_index_uses() -> None:
    assert uses("SELECT 1 FROM orders WHERE status = 'a' OR customer_id = 3") == set()
    assert uses("SELECT 1 FROM orders WHERE lower(status) = 'a'") == set()


def test_constants_are_kept_for_partial_indexes() -> None:
    (use,) = [u for u in analyse("SELECT 1 FROM orders WHERE status = 'pending'", CATALOG).uses if u.role == "eq"]
    assert use.constant == "'pending'"


def test_dml_and_utility_statements() -> None:
    assert analyse("DELETE FROM orders WHERE customer_id = $1", CATALOG).kind == "delete"
    assert ("orders", "customer_id", "eq") in uses("UPDATE orders SET status = 'x' WHERE customer_id = $1")
    assert analyse("VACUUM orders", CATALOG).kind == "utility"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("SELECT relname FROM pg_class WHERE oid = 1", "pg_catalog.pg_class: system catalog"),
        ("SELECT * FROM remote WHERE id = 1", "public.remote: foreign table"),
        ("SELECT * FROM missing WHERE id = 1", "missing: no such table"),
    ],
)
def test_tables_an_index_cannot_help_are_skipped_with_the_reason(query: str, reason: str) -> None:
    shape = analyse(query, CATALOG)
    assert shape.uses == [] and shape.skipped and shape.skipped[0].startswith(reason)


def test_syntax_errors_are_one_clear_error() -> None:
    with pytest.raises(ShapeError, match="syntax error"):
        analyse("SELEC 1", CATALOG)


def test_normalized_text_is_repaired_with_the_scanner() -> None:
    assert repair_normalized("SELECT 1 FROM t WHERE d > date $1") == "SELECT 1 FROM t WHERE d > $1::date"
    assert repair_normalized("SELECT now() - interval $1 month") == "SELECT now() - $1::interval"
    assert repair_normalized("SELECT extract($1 from d) FROM t") == "SELECT extract(epoch from d) FROM t"
    untouched = "SELECT 'date $1', d FROM t WHERE x = $1 -- interval $2 month"
    assert repair_normalized(untouched) == untouched
    # After every operator and keyword: >=, <, +, BETWEEN ... AND, IN lists, CASE.
    assert repair_normalized("WHERE d >= date $1 AND d < date $2 + interval $3 year") == (
        "WHERE d >= $1::date AND d < $2::date + $3::interval"
    )
    assert repair_normalized("WHERE d BETWEEN date $1 AND date $2 OR d IN (date $3)") == (
        "WHERE d BETWEEN $1::date AND $2::date OR d IN ($3::date)"
    )
    assert (
        repair_normalized("CASE WHEN d <> date $1 THEN timestamp $2 END")
        == "CASE WHEN d <> $1::date THEN $2::timestamp END"
    )


def test_parameters_get_a_type_from_their_context() -> None:
    query = (
        "SELECT sum(CASE WHEN status = $1 THEN $2 ELSE $3 END), extract(epoch FROM created_at) FROM orders"
        " WHERE id BETWEEN $5 - $6 AND $7 + $8 AND created_at > now() - $9 AND created_at::date = current_date - $10"
        " AND customer_id = ANY ($11) AND id = ANY (ARRAY[$12, $13])"
    )
    types = analyse(query, CATALOG).param_types(CATALOG)
    assert {types[n] for n in (2, 3, 6, 8)} == {"numeric"}  # numbers the server cannot type
    assert types[5] == types[7] == "integer"  # a BETWEEN's bounds: the column's type, their offsets numeric
    assert types[4] == "text"  # $4 was extract's field, repaired away: any type declares it
    assert (types[9], types[10]) == ("interval", "integer")  # timestamp - interval, date - days
    assert (types[11], types[12], types[13]) == ("integer[]", "integer", "integer")


def test_a_join_repeated_in_every_arm_of_an_or_is_a_join() -> None:
    """TPC-H q19: (p_partkey = l_partkey AND ...) OR (p_partkey = l_partkey AND ...)."""
    query = (
        "SELECT 1 FROM orders o, customers c WHERE (o.customer_id = c.id AND o.status = $1)"
        " OR (c.id = o.customer_id AND o.status = $2)"
    )
    assert {("orders", "customer_id", "join"), ("customers", "id", "join")} <= uses(query)
    assert ("orders", "customer_id", "join") not in uses(
        "SELECT 1 FROM orders o, customers c WHERE (o.customer_id = c.id) OR o.status = $1"
    )


def test_very_long_statements_do_not_exhaust_the_stack() -> None:
    long_in = "SELECT id FROM orders WHERE customer_id IN (" + ", ".join(map(str, range(5000))) + ")"
    assert ("orders", "customer_id", "eq") in uses(long_in)
    long_sum = "SELECT " + " + ".join(["id"] * 3000) + " FROM orders WHERE status = $1"
    assert ("orders", "status", "eq") in uses(long_sum)
    unions = " UNION ALL ".join(["SELECT id FROM orders WHERE status = 'x'"] * 3000)
    try:
        analyse(unions, CATALOG)
    except ShapeError as exc:  # acceptable: one clear reason instead of a crash
        assert "nested too deeply" in str(exc)


def test_statements_on_different_tables_are_never_merged() -> None:
    from dbmaint.advisor.workload import Statement, fingerprint, merged

    assert fingerprint("SELECT 1 FROM a.t WHERE x = 1") != fingerprint("SELECT 1 FROM b.t WHERE x = 1")
    assert fingerprint("SELECT 1 FROM t_2023 WHERE x = 1") != fingerprint("SELECT 1 FROM t_2024 WHERE x = 1")
    # The same statement seen with literals (a log) and normalized (pg_stat_statements) is one.
    same = merged([Statement("SELECT 1 FROM t WHERE x = 42", 1, 5.0, "log"),
                   Statement("SELECT 1 FROM t WHERE x = $1", 10, 50.0, "pg_stat_statements")])  # fmt: skip
    assert [(s.calls, s.total_time_ms) for s in same] == [(11, 55.0)]


def test_a_bound_plus_an_offset_is_the_bound() -> None:
    """date $2 + interval $3 year, normalized: the range's bound is $2, and $3 is planned as zero."""
    shape = analyse("SELECT 1 FROM orders WHERE created_at >= $1 AND created_at < $2::date + $3::interval", CATALOG)
    assert {(u.column, u.role, u.param) for u in shape.uses if u.role == "range"} == {
        ("created_at", "range", 1),
        ("created_at", "range", 2),
    }
    assert shape.offset_params == {3}


def test_both_bounds_of_a_between_are_range_parameters() -> None:
    """Each bound gets a value to plan with; a bound left without one sent the statement to a generic plan."""
    shape = analyse("SELECT id FROM orders WHERE created_at BETWEEN $1 AND $2 AND id < $3", CATALOG)
    bounds = {(u.column, u.param, u.operator) for u in shape.uses if u.role == "range"}
    assert bounds == {("created_at", 1, ">="), ("created_at", 2, "<="), ("id", 3, "<")}
    # TPC-H q06 as pg_stat_statements keeps it: each bound $n plus or minus an offset planned as zero.
    offsets = analyse("SELECT id FROM orders WHERE id BETWEEN $4 - $5 AND $6 + $7", CATALOG)
    assert {(u.param, u.operator) for u in offsets.uses if u.role == "range"} == {(4, ">="), (6, "<=")}
    assert offsets.offset_params == {5, 7}
    constant = analyse("SELECT id FROM orders WHERE id BETWEEN 1 AND 9", CATALOG)
    assert [(u.column, u.role) for u in constant.uses if u.role != "read"] == [("id", "range")]


def test_relation_names_are_every_relation_the_statements_name() -> None:
    names = relation_names(
        [
            "WITH recent AS (SELECT * FROM orders WHERE created_at > $1) "
            "SELECT * FROM recent JOIN shop.customers c ON c.id = recent.customer_id "
            "WHERE EXISTS (SELECT 1 FROM returns r WHERE r.order_id = recent.id)",
            'UPDATE "Line Items" SET qty = 0 WHERE order_id IN (SELECT id FROM orders WHERE status = $2)',
        ]
    )
    # Schemas are the catalog's to resolve; a CTE's name comes along, harmlessly.
    assert names == {"orders", "recent", "customers", "returns", "Line Items"}
    assert relation_names(["SELECT FROM WHERE"]) is None  # not parsed: its relations are not known
