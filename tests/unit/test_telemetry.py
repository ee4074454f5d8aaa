"""Sentry without Sentry: what ``scrub`` removes from every event, the monitor slug and config, and that the
client stays off (and silent) without a DSN."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sentry_sdk
import sentry_sdk.crons
from psycopg import sql

from dbmaint.config import SentryConfig
from dbmaint.model import Action, JobReport
from dbmaint.service.telemetry import Sentry, monitor_config, monitor_slug, scrub, scrub_event

# --- scrub: passwords --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("cannot connect to postgresql://u:pw@h/db", "cannot connect to postgresql://u:***@h/db"),
        ("postgresql://app:s3cret@db.example:5432/app?sslmode=require", "postgresql://app:***@db.example:5432/app?sslmode=require"),
        ("postgres://a:one@h/x and sqlite+pysqlite://b:two@h/y", "postgres://a:***@h/x and sqlite+pysqlite://b:***@h/y"),
        ("postgresql://:pw@h/db", "postgresql://:***@h/db"),
    ],
)  # fmt: skip
def test_scrub_masks_the_password_of_a_url(text: str, expected: str) -> None:
    assert scrub(text) == expected


def test_scrub_keeps_a_url_without_password() -> None:
    assert scrub("postgresql://u@h/db") == "postgresql://u@h/db"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("host=h password=pw dbname=app", "host=h password=*** dbname=app"),
        ("host=h password='p w' dbname=app", "host=h password=*** dbname=app"),
        ("host=h password='it\\'s' dbname=app", "host=h password=*** dbname=app"),
        ("host=h PASSWORD = pw user=u", "host=h PASSWORD = *** user=u"),
    ],
)
def test_scrub_masks_the_password_of_a_keyword_dsn(text: str, expected: str) -> None:
    assert scrub(text) == expected


# --- scrub: values PostgreSQL quotes in its messages -------------------------------------------------------------


def test_scrub_masks_the_values_of_a_unique_violation_but_keeps_the_column() -> None:
    message = (
        'duplicate key value violates unique constraint "users_email"\nDETAIL:  Key (email)=(a@b.c) already exists.'
    )
    scrubbed = scrub(message)
    assert scrubbed == (
        'duplicate key value violates unique constraint "users_email"\nDETAIL:  Key (email)=(***) already exists.'
    )
    assert "a@b.c" not in scrubbed


def test_scrub_masks_detail_values_with_expressions_and_parentheses() -> None:
    assert scrub("Key (lower(email), tenant_id)=(a@b.c, 42) already exists.") == (
        "Key (lower(email), tenant_id)=(***) already exists."
    )
    assert scrub("Key (note)=(x (y) z) already exists.") == "Key (note)=(***) already exists."
    assert scrub('Key (id)=(17) is not present in table "t".') == 'Key (id)=(***) is not present in table "t".'


def test_scrub_masks_a_failing_row() -> None:
    assert scrub("DETAIL:  Failing row contains (1, alice, secret, null).") == "DETAIL:  Failing row contains (***)."
    assert scrub("Failing row contains (1, bob (x), null).") == "Failing row contains (***)."
    assert scrub("Failing row contains (1, a b, c) and more") == "Failing row contains (***) and more"


# --- scrub: SQL literals, only in SQL ----------------------------------------------------------------------------


def test_scrub_masks_literals_and_numbers_in_sql() -> None:
    scrubbed = scrub("SELECT * FROM users WHERE email = 'x@y.z' AND id = 42")
    assert scrubbed == "SELECT * FROM users WHERE email = '***' AND id = ?"


def test_scrub_masks_doubled_quotes_lists_and_negative_numbers() -> None:
    scrubbed = scrub("select * from t where a = 'it''s' and b in (1, 2, 3) and c > -4.5 and d<>7")
    assert scrubbed == "select * from t where a = '***' and b in (?, ?, ?) and c > ? and d<>?"
    assert scrub("update t set a = 5 where b = 'x'") == "update t set a = ? where b = '***'"


def test_scrub_keeps_quotes_and_numbers_outside_sql() -> None:
    assert scrub("database 'app' failed") == "database 'app' failed"
    assert scrub("vacuum of public.t_2024 = 3 tables, 'done'") == "vacuum of public.t_2024 = 3 tables, 'done'"


def test_scrub_keeps_identifiers_in_sql() -> None:
    assert scrub('SELECT "Email", t_2024.id FROM public.t_2024') == 'SELECT "Email", t_2024.id FROM public.t_2024'


# --- scrub_event -------------------------------------------------------------------------------------------------


def test_scrub_event_reaches_every_string_however_deep() -> None:
    event: dict[str, Any] = {
        "level": "error",
        "exception": {
            "values": [
                {"type": "OperationalError", "value": "connection to postgresql://u:pw@h/db failed"},
                {"type": "UniqueViolation", "value": "Key (email)=(a@b.c) already exists."},
            ]
        },
        "breadcrumbs": {
            "values": [
                {"category": "dbmaint", "message": "host=h password=hunter2", "data": {"n": 3}},
                {"message": "SELECT 1 FROM t WHERE name = 'alice'"},
            ]
        },
        "extra": {"nested": [("postgresql://x:tuple@h/db",), {"deeper": ["password=deep"]}]},
        "tags": {"job": "vacuum", "database": "app"},
        "timestamp": 1767225600.5,
        "handled": False,
        "nothing": None,
    }
    scrubbed = scrub_event(event)
    exceptions = scrubbed["exception"]["values"]
    assert exceptions[0]["value"] == "connection to postgresql://u:***@h/db failed"
    assert exceptions[1]["value"] == "Key (email)=(***) already exists."
    crumbs = scrubbed["breadcrumbs"]["values"]
    assert crumbs[0]["message"] == "host=h password=***"
    assert crumbs[0]["data"] == {"n": 3}
    assert crumbs[1]["message"] == "SELECT ? FROM t WHERE name = '***'"
    assert scrubbed["extra"]["nested"] == [["postgresql://x:***@h/db"], {"deeper": ["password=***"]}]
    # Everything else as it was, types included.
    assert scrubbed["tags"] == {"job": "vacuum", "database": "app"}
    assert (scrubbed["timestamp"], scrubbed["handled"], scrubbed["nothing"]) == (1767225600.5, False, None)
    assert "pw@" not in repr(scrubbed) and "hunter2" not in repr(scrubbed) and "alice" not in repr(scrubbed)


def test_scrub_event_of_a_plain_string_or_other_value() -> None:
    assert scrub_event("password=pw") == "password=***"
    assert scrub_event(42) == 42
    assert scrub_event(None) is None


# --- monitors ----------------------------------------------------------------------------------------------------


def test_monitor_slug_is_the_plain_name_when_it_fits() -> None:
    assert monitor_slug("vacuum", "app") == "dbmaint-vacuum-app"
    assert monitor_slug("capture", "sales_2026") == "dbmaint-capture-sales_2026"


def test_monitor_slug_of_a_name_that_had_to_change_carries_a_hash_of_the_real_one() -> None:
    assert monitor_slug("vacuum", "App.DB").startswith("dbmaint-vacuum-app-db-")
    assert monitor_slug("reindex", "my db!!").startswith("dbmaint-reindex-my-db-")
    # Names that would otherwise share a monitor (and mix their check-ins) do not.
    assert len({monitor_slug("vacuum", name) for name in ("app", "App", "a.b", "a-b", "a_b")}) == 5
    assert all(re.fullmatch(r"[a-z0-9_-]+", monitor_slug("vacuum", name)) for name in ("App", "a.b", "é"))


def test_monitor_slug_is_at_most_50_characters() -> None:
    long_a, long_b = "a" * 80, "a" * 79 + "b"
    assert all(len(monitor_slug("reindex", name)) <= 50 for name in (long_a, long_b))
    assert monitor_slug("reindex", long_a).startswith("dbmaint-reindex-aaaa")
    assert monitor_slug("reindex", long_a) != monitor_slug("reindex", long_b)


def test_monitor_config_has_the_schedule_and_the_margin_in_whole_minutes() -> None:
    assert monitor_config("0 3 * * *", "Europe/Berlin", 3600, None) == {
        "schedule": {"type": "crontab", "value": "0 3 * * *"},
        "timezone": "Europe/Berlin",
        "checkin_margin": 60,
    }


@pytest.mark.parametrize(("margin_s", "minutes"), [(61, 2), (119.5, 2), (120, 2), (30, 1), (0, 1)])
def test_monitor_config_rounds_the_margin_up_and_to_at_least_a_minute(margin_s: float, minutes: int) -> None:
    assert monitor_config("*/15 * * * *", "UTC", margin_s, None)["checkin_margin"] == minutes


def test_monitor_config_max_runtime_only_when_given() -> None:
    assert "max_runtime" not in monitor_config("0 3 * * *", "UTC", 60, None)
    assert monitor_config("0 3 * * *", "UTC", 60, 7800)["max_runtime"] == 130  # 2 h window + 10 min grace
    assert monitor_config("0 3 * * *", "UTC", 60, 7801)["max_runtime"] == 131
    assert monitor_config("0 3 * * *", "UTC", 60, 0.5)["max_runtime"] == 1


# --- the client, off ---------------------------------------------------------------------------------------------


def test_sentry_without_a_dsn_is_off_and_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOME_UNSET_VAR", raising=False)

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError("sentry_sdk called while Sentry is off")

    for name in ("init", "capture_message", "capture_exception", "flush", "new_scope"):
        monkeypatch.setattr(sentry_sdk, name, forbidden)
    monkeypatch.setattr(sentry_sdk.crons, "capture_checkin", forbidden)

    sentry = Sentry(SentryConfig(dsn_env="SOME_UNSET_VAR"))
    assert not sentry.enabled
    assert sentry.dsn == ""
    assert sentry.checkin_started("vacuum", "app", monitor_config("0 3 * * *", "UTC", 60, None)) is None
    sentry.checkin_finished("vacuum", "app", "some-id", False, 1.0)
    failed = JobReport(database="app", job="vacuum", status="failed", reason="boom")
    statement = sql.SQL("VACUUM {}").format(sql.Identifier("public", "t"))
    failed.actions = [Action("public.t", statement, "dead rows", "vacuum", status="failed")]
    sentry.report_run(failed)
    sentry.report_failure("vacuum", "app", "cannot connect", RuntimeError("x"))
    sentry.report_missed("vacuum", "app", "missed")
    sentry.flush()


def test_sentry_with_a_blank_dsn_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBMAINT_TEST_BLANK_DSN", "   ")
    monkeypatch.setattr(sentry_sdk, "init", lambda *a, **k: pytest.fail("sentry_sdk.init called"))
    assert not Sentry(SentryConfig(dsn_env="DBMAINT_TEST_BLANK_DSN")).enabled
