"""The autovacuum settings item on a real server: a table's churn read from its statistics since its last
vacuum, the advice given with the statement, and a pass once the churn is gone."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from tests.db.conftest import Database, Invoke
from tests.db.helpers import json_output

DEAD = 1000


def item(document: dict[str, object], name: str) -> dict[str, str]:
    listed = document["items"]
    assert isinstance(listed, list)
    found: dict[str, str] = next(i for i in listed if i["check"] == name)
    return found


def test_a_table_the_nightly_pass_vacuums_every_day_gets_a_scale_factor(
    database: Database, dbmaint: Invoke, write_config: Callable[[str], str]
) -> None:
    database.execute(
        'CREATE TABLE "Order Lines" (id int PRIMARY KEY, v text)',
        "INSERT INTO \"Order Lines\" SELECT i, 'x' FROM generate_series(1, 20000) AS i",
        'ALTER TABLE "Order Lines" SET (autovacuum_vacuum_threshold = 0)',
        'VACUUM "Order Lines"',
    )
    with database.connect() as conn:
        conn.execute('DELETE FROM "Order Lines" WHERE id <= %s', (DEAD,))
        conn.execute("SELECT pg_stat_force_next_flush()")
    # A rate needs a day to be real; the test makes the table big instead. Its statistics say 1,000 dead
    # rows in the seconds since its vacuum: the table's size is set so that this rate is between half of
    # autovacuum's trigger and the trigger for the next few seconds, as a day's churn would be.
    time.sleep(5)
    observed = database.value(
        "SELECT extract(epoch FROM now() - last_vacuum) FROM pg_stat_user_tables WHERE relname = 'Order Lines'"
    )
    trigger = DEAD * 86_400 / (float(observed) - 0.2)  # in the band from now until nearly twice as long
    with database.connect() as conn:
        conn.execute("UPDATE pg_class SET reltuples = %s WHERE relname = 'Order Lines'", (trigger / 0.2,))
    config = write_config('[check]\nautovacuum_min_observed = "1s"\n')
    document = json_output(dbmaint("check", "--dsn", database.dsn, "--config", config, "--format", "json"), 1)
    advice = item(document, "autovacuum_settings")
    assert advice["status"] == "warn", advice
    assert "public.Order Lines:" in advice["evidence"] and "dead rows a day" in advice["evidence"]
    # A quarter of a day's churn is 2.5-5% of the table, rounded down on the ladder.
    statement = r'ALTER TABLE public."Order Lines" SET \(autovacuum_vacuum_scale_factor = 0\.0[25]\)'
    assert re.search(statement, advice["fix"])

    # Vacuumed, with nothing changed since: no churn, no advice (and the real size again).
    database.execute('VACUUM ANALYZE "Order Lines"')
    time.sleep(1.5)
    document = json_output(dbmaint("check", "--dsn", database.dsn, "--config", config, "--format", "json"), 1)
    assert item(document, "autovacuum_settings")["status"] == "pass"


def test_without_a_long_enough_observation_nothing_is_advised(database: Database, dbmaint: Invoke) -> None:
    """With the default (an hour since the last vacuum), a table vacuumed a moment ago says nothing yet."""
    database.execute(
        "CREATE TABLE t (id int PRIMARY KEY)",
        "INSERT INTO t SELECT generate_series(1, 20000)",
        "VACUUM t",
        "DELETE FROM t WHERE id <= 5000",
    )
    document = json_output(dbmaint("check", "--dsn", database.dsn, "--format", "json"), 1)
    assert item(document, "autovacuum_settings")["status"] == "pass"
