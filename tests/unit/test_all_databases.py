"""Databases of a databases = "all" entry: how they share the connection budget, and what the service keeps
when the server cannot be listed."""

from __future__ import annotations

from dbmaint.cli.base import connection_share
from dbmaint.pg.db import Target
from dbmaint.service.scheduler import keep_unlisted


def of_server(name: str, jobs: int = 4, unavailable: str | None = None) -> Target:
    return Target(name, f"dbname={name}", server="pg1", jobs=jobs, unavailable=unavailable)


def test_databases_side_by_side_share_the_budget() -> None:
    many = [of_server(f"pg1/db{n}") for n in range(10)]
    assert connection_share(many[0], many, wanted=4) == 1  # four databases at once, one connection each
    two = many[:2]
    assert connection_share(two[0], two, wanted=4) == 2  # two at once, two each
    one = many[:1]
    assert connection_share(one[0], one, wanted=4) == 4  # one database: the whole budget, as vacuumdb --jobs
    assert connection_share(one[0], one, wanted=1) == 1  # never more than it asks for
    plain = Target("app", "dbname=app")
    assert connection_share(plain, [plain, *many], wanted=3) == 3  # an entry of its own keeps vacuum.jobs


def test_a_server_that_cannot_be_listed_keeps_its_databases_scheduled() -> None:
    previous = {t.name: t for t in (of_server("pg1/a"), of_server("pg1/b"), Target("app", "dbname=app"))}
    down = {"pg1": of_server("pg1", unavailable="cannot list"), "app": Target("app", "dbname=app")}
    assert set(keep_unlisted(previous, down)) == {"pg1/a", "pg1/b", "app"}
    # Never listed before: the stand-in stays, and fails when due.
    assert set(keep_unlisted({}, down)) == {"pg1", "app"}
    # Listed again: what the server has now.
    now = {"pg1/b": of_server("pg1/b"), "pg1/c": of_server("pg1/c")}
    assert set(keep_unlisted(previous, now)) == {"pg1/b", "pg1/c"}
