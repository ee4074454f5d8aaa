"""The index advisor on a realistic workload run through pg_stat_statements with $n parameters (PG15)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from alembic import command

from dbmaint.pg.cluster import Cluster
from tests.db.conftest import Database, Invoke
from tests.db.helpers import alembic_config, in_thread, json_output

ROOT = Path(__file__).resolve().parents[2]

SCHEMA = (
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "CREATE EXTENSION hypopg",
    "CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL)",
    "CREATE TABLE users (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts, email text NOT NULL)",
    "CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, price_cents int NOT NULL)",
    """CREATE TABLE orders (id int PRIMARY KEY, account_id int NOT NULL REFERENCES accounts,
       user_id int NOT NULL REFERENCES users, status text NOT NULL, created_at timestamptz NOT NULL,
       total_cents int NOT NULL)""",
    "CREATE INDEX orders_account_id ON orders (account_id)",
    """CREATE TABLE order_items (order_id int NOT NULL REFERENCES orders, product_id int NOT NULL REFERENCES products,
       quantity int NOT NULL, PRIMARY KEY (order_id, product_id))""",
    "CREATE TABLE events (occurred_at timestamptz NOT NULL, account_id int, kind text)",
    "INSERT INTO accounts SELECT g, 'account ' || g FROM generate_series(1, 20) g",
    "INSERT INTO users SELECT g, 1 + g % 20, 'u' || g || '@example.com' FROM generate_series(1, 20000) g",
    "INSERT INTO products SELECT g, 'product ' || g, 100 + g % 900 FROM generate_series(1, 5000) g",
    """INSERT INTO orders SELECT g, 1 + g % 20, 1 + (g * 7) % 20000,
         CASE WHEN g % 10 < 6 THEN 'paid' WHEN g % 10 < 9 THEN 'shipped' ELSE 'cancelled' END,
         now() - (g % 5000) * interval '1 hour', g % 10000
       FROM generate_series(1, 200000) g""",
    "INSERT INTO order_items SELECT 1 + g % 200000, 1 + ((g % 200000) * 13 + (g / 200000) * 7) % 5000, 1 "
    "FROM generate_series(1, 400000) g",
    "INSERT INTO events SELECT now() - g * interval '1 minute', 1 + g % 20, 'click' FROM generate_series(1, 1000) g",
    "VACUUM ANALYZE",
)

# (SQL with %s, parameter sets): psycopg sends them with the extended protocol, so pg_stat_statements
# records $1, $2 ... exactly as an application's statements.
WORKLOAD: tuple[tuple[str, Callable[[int], tuple[Any, ...]]], ...] = (
    # An account's latest orders in a status: equality on two columns, ORDER BY ... LIMIT.
    (
        "SELECT id, total_cents FROM orders WHERE account_id = %s AND status = %s ORDER BY created_at DESC LIMIT 20",
        lambda i: (1 + i % 20, ("paid", "shipped", "cancelled")[i % 3]),
    ),
    # Who bought this product: the unindexed foreign key order_items.product_id... served by the PK? No:
    # the primary key leads with order_id.
    ("SELECT order_id, quantity FROM order_items WHERE product_id = %s", lambda i: (1 + i * 37 % 5000,)),
    # A user's orders: the unindexed foreign key orders.user_id.
    ("SELECT id, status FROM orders WHERE user_id = %s", lambda i: (1 + i * 101 % 20000,)),
    # The decoy: 60% of the rows are 'paid'; no index makes counting them cheaper.
    ("SELECT count(*) FROM orders WHERE status = %s", lambda i: ("paid",)),
)


def run_workload(dsn: str, rounds: int = 12) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(rounds):
            for query, params in WORKLOAD:
                conn.execute(query, params(i))
        # Typed literals, which pg_stat_statements normalizes to "date $1" (not plannable as such).
        for _ in range(6):
            conn.execute("SELECT count(*) FROM events WHERE occurred_at > date '2024-01-01' AND account_id = 3")


@pytest.fixture(scope="module")
def shop(pg: Cluster) -> Iterator[Database]:
    name = "advisor_shop"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    database.execute(*SCHEMA)
    with psycopg.connect(database.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_stat_statements_reset()")
    run_workload(database.dsn)
    yield database
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def budget(write_config: Callable[[str], str]) -> str:
    return write_config('[advisor]\nmin_total_time = "0s"\n')  # the default choice


def advise(dbmaint: Invoke, *args: str) -> dict[str, Any]:
    document = json_output(dbmaint("advise", *args, "--format", "json"), exit_code=0)
    assert isinstance(document, dict)
    return document


def test_recommends_what_a_careful_dba_would(shop: Database, dbmaint: Invoke, budget: str) -> None:
    document = advise(dbmaint, "--config", budget, "--dsn", shop.dsn)

    recommended = {(r["table"], tuple(r["columns"])): r for r in document["recommendations"]}
    composite = recommended[("public.orders", ("account_id", "status", "created_at"))]
    assert composite["verified"] is True
    assert composite["cost_after"] < composite["cost_before"] / 5
    # As a factor: "100% cheaper" said nothing about 11,870 -> 11.
    assert "x cheaper on the planner's estimate" in composite["reason"] and "%" not in composite["reason"]
    assert composite["definition"].startswith('CREATE INDEX CONCURRENTLY "orders_account_id_status_created_at_idx"')
    (helped,) = composite["queries"]
    assert "account_id = $1 AND status = $2 ORDER BY created_at DESC LIMIT $3" in helped["query"]
    assert helped["queryid"] is not None and helped["calls"] == 12

    product = recommended[("public.order_items", ("product_id",))]
    assert product["closes"] == ["unindexed foreign key on public.order_items (product_id)"]
    assert ("public.orders", ("user_id",)) in recommended
    assert all(r["estimated_size_bytes"] > 0 for r in document["recommendations"])
    # The decoy: counting the 60% 'paid' rows gets no index of its own.
    assert not any(columns == ("status",) for _, columns in recommended)


def test_findings_on_the_same_schema(shop: Database, dbmaint: Invoke, budget: str) -> None:
    document = advise(dbmaint, "--config", budget, "--dsn", shop.dsn)
    kinds = {(f["kind"], f["table"], tuple(f["columns"])) for f in document["findings"]}
    assert ("missing_primary_key", "public.events", ()) in kinds
    assert ("unindexed_foreign_key", "public.orders", ("user_id",)) in kinds
    assert ("unindexed_foreign_key", "public.order_items", ("product_id",)) in kinds
    # account_id has its own index; order_items.order_id leads the composite primary key.
    assert ("unindexed_foreign_key", "public.orders", ("account_id",)) not in kinds
    assert ("unindexed_foreign_key", "public.order_items", ("order_id",)) not in kinds


def test_parameterized_and_normalized_statements_are_planned_on_pg15(
    shop: Database, dbmaint: Invoke, budget: str
) -> None:
    document = advise(dbmaint, "--config", budget, "--dsn", shop.dsn, "--explain-rejections")
    workload = document["workload"]
    assert workload["analysed"] >= 5  # the four above and the repaired "date $1" one
    assert not any(reason.startswith("cannot be planned") for reason in workload["left_out"])
    assert any("saves at most" in r["reason"] or "adds too little" in r["reason"] for r in document["rejected"])


def test_the_storage_budget_is_respected(shop: Database, dbmaint: Invoke, write_config: Callable[[str], str]) -> None:
    small = write_config('[advisor]\nstorage_budget = "3MB"\n')
    document = advise(dbmaint, "--config", small, "--dsn", shop.dsn, "--explain-rejections")
    assert sum(r["estimated_size_bytes"] for r in document["recommendations"]) <= 3 * 1024 * 1024
    assert any("storage budget" in r["reason"] for r in document["rejected"])


def test_statements_from_the_command_line_without_pg_stat_statements(
    shop: Database, dbmaint: Invoke, budget: str
) -> None:
    document = advise(
        dbmaint, "--config", budget, "--dsn", shop.dsn, "--no-stats",
        "-s", "SELECT * FROM users WHERE email = 'u42@example.com'",
    )  # fmt: skip
    assert [(r["table"], r["columns"]) for r in document["recommendations"]] == [("public.users", ["email"])]
    assert document["workload"]["statements"] == 1


def test_without_hypopg_the_advice_is_labelled_unverified(database: Database, dbmaint: Invoke) -> None:
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY, code text)",
        "INSERT INTO t SELECT g, 'c' || g FROM generate_series(1, 10000) g",
        "ANALYZE t",
    )
    document = advise(dbmaint, "--dsn", database.dsn, "--no-stats", "-s", "SELECT id FROM t WHERE code = 'c7'")
    (recommendation,) = document["recommendations"]
    assert recommendation["verified"] is False and recommendation["columns"] == ["code"]
    assert any("hypopg is not installed" in note for note in document["notes"])


def test_recommendations_become_a_migration_that_deploys(
    shop: Database, dbmaint: Invoke, budget: str, migrations: Path
) -> None:
    write = ("--config", budget, "--dsn", shop.dsn, "--write-migration", "--versions-dir", str(migrations / "versions"))
    document = advise(dbmaint, *write)
    names = {r["name"] for r in document["recommendations"]}
    assert names and Path(document["migration"]).parent == migrations / "versions"
    # Asked again before the deploy: the pending revision already has them, nothing is written twice.
    again_written = advise(dbmaint, *write)
    assert again_written["migration"] is None
    assert sum("already in a revision" in note for note in again_written["notes"]) == len(names)
    assert len(list((migrations / "versions").glob("*.py"))) == 1
    config = alembic_config(migrations, shop.dsn)
    try:
        command.upgrade(config, "head")
        assert valid_indexes(shop) >= names
        command.downgrade(config, "base")
        assert not valid_indexes(shop) & names
        command.upgrade(config, "head")
        assert valid_indexes(shop) >= names
        # With the indexes in place, the advisor has nothing more to say about those statements.
        again = advise(dbmaint, "--config", budget, "--dsn", shop.dsn)
        assert not {(r["table"], tuple(r["columns"])) for r in again["recommendations"]} & {
            (r["table"], tuple(r["columns"])) for r in document["recommendations"]
        }
    finally:
        command.downgrade(config, "base")


def valid_indexes(database: Database) -> set[str]:
    with database.connect() as conn:
        rows = conn.execute(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indisvalid"
        ).fetchall()
    return {str(row[0]) for row in rows}


def test_verify_builds_times_and_keeps_what_delivers(database: Database, dbmaint: Invoke, budget: str) -> None:
    database.execute(
        "CREATE EXTENSION hypopg",
        "CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL)",
        "INSERT INTO t SELECT g, 'c' || g FROM generate_series(1, 100000) g",
        "ANALYZE t",
    )
    document = advise(
        dbmaint, "--config", budget, "--dsn", database.dsn, "--no-stats", "--verify",
        "-s", "SELECT id FROM t WHERE code = 'c777'",
    )  # fmt: skip
    (verdict,) = document["verification"]
    assert verdict["kept"] is True and verdict["index"] == "t_code_idx"
    (timing,) = verdict["timings"]
    assert timing["after_ms"] < timing["before_ms"]
    assert "t_code_idx" in valid_indexes(database)
    assert [r["name"] for r in document["recommendations"]] == ["t_code_idx"]
    database.execute("DROP INDEX t_code_idx")
    # The text output says what --verify built, kept and why (it used to say nothing of it).
    text = dbmaint("advise", "--config", budget, "--dsn", database.dsn, "--no-stats", "--verify",
                   "-s", "SELECT id FROM t WHERE code = 'c777'")  # fmt: skip
    assert "--verify: built, timed, kept or dropped" in text.stdout
    assert "t_code_idx" in text.stdout and "kept" in text.stdout


def test_verify_is_refused_on_a_server_with_replicas(database: Database, dbmaint: Invoke) -> None:
    database.execute("SELECT pg_create_physical_replication_slot('dbmaint_test_slot')")
    try:
        result = dbmaint("advise", "--dsn", database.dsn, "--no-stats", "--verify", "-s", "SELECT 1")
    finally:
        database.execute("SELECT pg_drop_replication_slot('dbmaint_test_slot')")
    assert result.exit_code == 2
    assert "looks like a production primary" in result.stderr and "--force" in result.stderr


def test_pg_qualstats_real_values_beat_the_generic_guess(database: Database, dbmaint: Invoke, budget: str) -> None:
    """99% of the rows are 'done', but the application only ever asks for the 1% 'pending' ones.

    From pg_stat_statements alone the typical value of status = $1 is the common one, and an index
    looks useless; pg_qualstats has seen the real constant and proves the index.
    """
    database.execute(
        "CREATE EXTENSION pg_stat_statements",
        "CREATE EXTENSION hypopg",
        "CREATE TABLE jobs (id int PRIMARY KEY, status text NOT NULL, payload text)",
        "INSERT INTO jobs SELECT g, CASE WHEN g % 100 = 0 THEN 'pending' ELSE 'done' END, 'x' "
        "FROM generate_series(1, 200000) g",
        "ANALYZE jobs",
    )

    def run_workload() -> None:
        with database.connect() as conn:
            conn.execute("SELECT pg_stat_statements_reset()")
            for _ in range(10):
                conn.execute("SELECT id, payload FROM jobs WHERE status = %s", ("pending",))

    def recommended() -> list[tuple[str, ...]]:
        document = advise(dbmaint, "--config", budget, "--dsn", database.dsn)
        return [tuple(r["columns"]) for r in document["recommendations"]]

    run_workload()
    assert ("status",) not in recommended()  # planned with the most common value: no gain
    database.execute("CREATE EXTENSION pg_qualstats")
    run_workload()
    assert ("status",) in recommended()


def test_a_server_log_is_a_workload_source(database: Database, dbmaint: Invoke, budget: str) -> None:
    database.execute(
        "CREATE EXTENSION hypopg",
        "CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)",
        "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100000) g",
        "ANALYZE items",
    )
    log = ROOT / "tests" / "data" / "logs" / "stderr.log"
    document = advise(dbmaint, "--config", budget, "--dsn", database.dsn, "--no-stats", "--log", str(log))
    assert document["workload"]["statements"] >= 5
    (recommendation,) = document["recommendations"]
    assert recommendation["table"] == "public.items" and recommendation["columns"][0] == "name"
    assert any("name = $1" in q["query"] for q in recommendation["queries"])


def test_statements_running_long_right_now_join_the_workload(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(
        "CREATE EXTENSION hypopg",
        "CREATE TABLE t (id int PRIMARY KEY, code text NOT NULL)",
        "INSERT INTO t SELECT g, 'c' || g FROM generate_series(1, 100000) g",
        "ANALYZE t",
    )
    config = write_config('[advisor]\nstorage_budget = "200MB"\nlong_running = "1s"\n')
    with database.connect() as slow:
        runner = in_thread(lambda: slow.execute("SELECT pg_sleep(4), id FROM t WHERE code = 'c5'"))
        time.sleep(2)
        document = advise(dbmaint, "--config", config, "--dsn", database.dsn)
        runner.join()
    assert [(r["table"], r["columns"][:1]) for r in document["recommendations"]] == [("public.t", ["code"])]


def test_the_scheduled_advisor_job_keeps_its_advice_in_history_and_creates_nothing(
    database: Database, dbmaint: Invoke, budget: str, state_url: str
) -> None:
    """What `dbmaint run` does weekly: the same advice as `dbmaint advise`, as proposed actions and notes.
    (A shop of its own: other tests of this module build indexes in the shared one.)"""
    database.execute(*SCHEMA)
    run_workload(database.dsn)
    shop = database
    from dbmaint import jobs
    from dbmaint.config import load_config
    from dbmaint.pg.db import Target
    from dbmaint.store.history import History

    indexes_before = valid_indexes(shop)
    expected = {r["definition"] for r in advise(dbmaint, "--config", budget, "--dsn", shop.dsn)["recommendations"]}
    store = History(state_url)
    try:
        report = jobs.advisor(Target("shop", shop.dsn), load_config(budget), store)
        (run,) = store.recent_runs(job="advisor")
        rows = store.run_actions(run.id)
    finally:
        store.close()

    assert report.status == "ok" and run.status == "ok" and run.proposed == len(expected) > 0
    assert {row["statement"] for row in rows} == expected
    assert {row["status"] for row in rows} == {"proposed"} and {row["kind"] for row in rows} == {"create_index"}
    assert run.warnings is not None and "unindexed foreign key" in run.warnings
    assert valid_indexes(shop) == indexes_before, "the service proposes indexes; migrations create them"


def test_the_workload_counts_add_up(shop: Database, dbmaint: Invoke, budget: str) -> None:
    """statements = analysed + left out, one reason per statement, whatever kind each is."""
    given = [
        "SELECT * FROM orders WHERE account_id = 7",
        "SELECT 1",
        "SELECT relname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace",
        "VACUUM orders",
        "SELECT count(*) FROM orders",
        "SELECT * FROM no_such_table WHERE x = 1",
    ]
    args = [arg for statement in given for arg in ("-s", statement)]
    document = advise(dbmaint, "--config", budget, "--dsn", shop.dsn, *args)
    counts = document["workload"]
    assert counts["statements"] == counts["analysed"] + sum(counts["left_out"].values()), counts
    assert counts["statements"] >= len(given)


def test_both_bounds_of_a_between_are_planned_with_values(database: Database, dbmaint: Invoke, budget: str) -> None:
    """`d BETWEEN $1 AND $2` is planned on a window of a tenth of the rows. With one bound left without a
    value it fell back to the generic plan, which prices the pair at 0.5% of the rows: the index on d then
    looked to take 65% off the cost (measured), where a tenth of the rows leaves it about 44%."""
    database.execute(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE EXTENSION hypopg",
        "CREATE TABLE t (id bigint PRIMARY KEY, d date NOT NULL, v numeric NOT NULL)",
        "INSERT INTO t SELECT g, date '2020-01-01' + ((g::bigint * 7919) % 2000)::int, g % 97"
        " FROM generate_series(1, 300000) g",
        "VACUUM ANALYZE t",
        "SELECT pg_stat_statements_reset()",
    )
    with database.connect() as conn:
        for _ in range(20):
            conn.execute("SELECT sum(v) FROM t WHERE d BETWEEN %s AND %s", ("2021-01-01", "2021-07-01"))
    document = advise(dbmaint, "--config", budget, "--dsn", database.dsn)
    (on_d,) = [r for r in document["recommendations"] if r["columns"] == ["d"]]
    (planned,) = on_d["queries"]
    assert planned["cost_after"] > 0.45 * planned["cost_before"], planned


def test_sorts_get_the_composite_in_their_order_and_directions(pg: Cluster, dbmaint: Invoke, budget: str) -> None:
    """Multi-column ORDER BY ... LIMIT: the whole sort in the index, mixed directions stated.

    40 users and 30 blogs: a page sorted out of 7,500-10,000 rows. (With 15-row groups an index on the
    first column and an incremental sort were as fast as the composite, measured: 0.11 ms each.)"""
    name = "advisor_sorts"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    database.execute(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE EXTENSION hypopg",
        "CREATE TABLE posts (id bigint PRIMARY KEY, user_id int NOT NULL, blog_id int NOT NULL,"
        " created_at timestamptz NOT NULL, title text)",
        "INSERT INTO posts SELECT g, (g::bigint * 7919) % 40, (g::bigint * 104729) % 30,"
        " timestamptz '2026-01-01' - g * interval '1 minute', md5(g::text) FROM generate_series(1, 300000) g",
        "VACUUM ANALYZE posts",
        "SELECT pg_stat_statements_reset()",
    )
    with database.connect() as conn:
        for i in range(20):
            conn.execute("SELECT id FROM posts WHERE blog_id = %s ORDER BY created_at DESC, user_id LIMIT 10", (i,))
            conn.execute("SELECT id, title FROM posts ORDER BY user_id, blog_id LIMIT %s", (10,))
    document = advise(dbmaint, "--config", budget, "--dsn", database.dsn)
    found = {tuple(r["columns"]): r for r in document["recommendations"]}
    mixed = found[("blog_id", "created_at", "user_id")]
    assert mixed["directions"] == ["", "", "DESC"], mixed
    assert '"created_at", "user_id" DESC)' in mixed["definition"]
    assert found[("user_id", "blog_id")]["directions"] == []
    # LIMIT $1 planned as the page the application asks for, not the generic plan's tenth of the table.
    (paged,) = found[("user_id", "blog_id")]["queries"]
    assert paged["cost_after"] < 0.01 * paged["cost_before"], paged
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_a_partitioned_table_gets_its_index_on_the_parent(pg: Cluster, dbmaint: Invoke, budget: str) -> None:
    """Proven with hypopg on the parent, sized as the sum of its partitions' indexes, built by partition."""
    name = "advisor_partitioned"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    database = Database(pg, name)
    database.execute(
        "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
        "CREATE EXTENSION hypopg",
        "CREATE TABLE events (id bigint, user_id int NOT NULL, at timestamptz NOT NULL) PARTITION BY RANGE (at)",
        *(
            f"CREATE TABLE events_{m} PARTITION OF events FOR VALUES FROM ('2026-{m:02}-01') TO ('2026-{m + 1:02}-01')"
            for m in range(1, 5)
        ),
        "INSERT INTO events SELECT g, g % 20000, timestamptz '2026-01-01' + g * interval '10 seconds'"
        " FROM generate_series(1, 400000) g",
        "VACUUM ANALYZE events",
        "SELECT pg_stat_statements_reset()",
    )
    with database.connect() as conn:
        for i in range(20):
            conn.execute("SELECT id, at FROM events WHERE user_id = %s", (i * 97,))
    document = advise(dbmaint, "--config", budget, "--dsn", database.dsn)
    found = {(r["table"], tuple(r["columns"])): r for r in document["recommendations"]}
    recommendation = found[("public.events", ("user_id",))]
    assert recommendation["partitioned"] is True
    assert recommendation["definition"].startswith('CREATE INDEX "events_user_id_idx" ON "public"."events"')
    assert "partition" in recommendation["reason"]
    # The sum of its partitions' indexes, as built.
    database.execute("CREATE INDEX events_user_id_idx ON events (user_id)")
    built = database.value(
        "SELECT sum(pg_relation_size(relid)) FROM pg_partition_tree('events_user_id_idx'::regclass) WHERE isleaf"
    )
    assert 0.75 < recommendation["estimated_size_bytes"] / built < 1.25, (recommendation["estimated_size_bytes"], built)
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_statements_given_alone_read_only_their_tables(database: Database, dbmaint: Invoke) -> None:
    """-s/-f without pg_stat_statements: the schema is read for the tables the statements name and those
    referencing them (a view's definition names others: then all of them), so findings elsewhere are not
    this check's business."""
    database.execute(
        "CREATE EXTENSION hypopg",
        "CREATE TABLE accounts (id int PRIMARY KEY, region text)",
        "CREATE TABLE orders (id int PRIMARY KEY, account_id int REFERENCES accounts, code text)",
        "INSERT INTO accounts SELECT g, 'r' || g % 10 FROM generate_series(1, 1000) g",
        "INSERT INTO orders SELECT g, g % 1000 + 1, 'c' || g FROM generate_series(1, 50000) g",
        "CREATE TABLE unrelated (a int)",  # no primary key: a finding of the whole schema
        "CREATE VIEW recent_orders AS SELECT o.* FROM orders o JOIN accounts a ON a.id = o.account_id",
        "ANALYZE",
    )
    lookup = "SELECT id FROM orders WHERE code = 'c42'"
    alone = advise(dbmaint, "--dsn", database.dsn, "--no-stats", "-s", lookup)
    assert [(r["table"], r["columns"]) for r in alone["recommendations"]] == [("public.orders", ["code"])]
    assert alone["verified"] is True
    kinds = {(f["kind"], f["table"]) for f in alone["findings"]}
    assert ("unindexed_foreign_key", "public.orders") in kinds  # orders is read, with its foreign keys
    assert not any(table == "public.unrelated" for _, table in kinds)
    # A DELETE of accounts looks up orders by account_id: the referencing table's foreign key is read too.
    delete = advise(dbmaint, "--dsn", database.dsn, "--no-stats", "-s", "DELETE FROM accounts WHERE id = 7")
    assert ("unindexed_foreign_key", "public.orders") in {(f["kind"], f["table"]) for f in delete["findings"]}
    assert not any(f["table"] == "public.unrelated" for f in delete["findings"])

    # Through a view: the whole schema, as with the recorded workload.
    through_view = advise(
        dbmaint, "--dsn", database.dsn, "--no-stats", "-s", "SELECT * FROM recent_orders WHERE code = 'c42'"
    )
    assert [(r["table"], r["columns"]) for r in through_view["recommendations"]] == [("public.orders", ["code"])]
    assert ("missing_primary_key", "public.unrelated") in {(f["kind"], f["table"]) for f in through_view["findings"]}
    # With the recorded workload (the default), the whole schema again.
    everything = advise(dbmaint, "--dsn", database.dsn, "-s", lookup)
    assert ("missing_primary_key", "public.unrelated") in {(f["kind"], f["table"]) for f in everything["findings"]}
