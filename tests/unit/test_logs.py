"""Reading server logs: the fixtures of a real PostgreSQL 15 in three formats, and hand-written edge cases.

tests/data/logs/make_logs.py regenerates the fixtures; the exact durations below then change with them.
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import pytest

import dbmaint.advisor.server_log
from dbmaint.advisor.server_log import LoggedStatement, LogReadResult, read_log
from dbmaint.errors import UsageError

DATA = Path(__file__).parents[1] / "data" / "logs"
FIXTURES = {"stderr": DATA / "stderr.log", "csvlog": DATA / "postgresql.csv", "jsonlog": DATA / "postgresql.json"}

# (kind, duration_ms, query, parameters, user) of every statement of the fixtures, in log order.
EXPECTED = [
    ("duration", 1.317, "SELECT count(*) FROM items", None, "clerk"),
    ("duration", 0.043, "SELECT name FROM items WHERE id = $1", "$1 = '42'", "clerk"),
    ("duration", 0.257, "SELECT 1", None, "postgres"),
    ("duration", 0.022, "SELECT name FROM items WHERE id = $1", "$1 = '43'", "clerk"),  # execute _pg3_0
    ("duration", 0.276, "SELECT id FROM items WHERE name = $1 AND id > $2", "$1 = 'O''Reilly', $2 = '7'", "clerk"),
    ("duration", 0.482, "SELECT id,\n       name\n  FROM items\n WHERE id < 5\n ORDER BY id", None, "clerk"),
    ("duration", 0.066, "SET statement_timeout = '100ms'", None, "clerk"),
    ("cancelled", None, "SELECT pg_sleep(5)", None, "clerk"),
    ("duration", 0.084, "SET log_parameter_max_length_on_error = -1", None, "clerk"),
    ("cancelled", None, "SELECT pg_sleep($1)", "$1 = '5'", "clerk"),  # parameters from the CONTEXT line
    ("duration", 0.059, "RESET statement_timeout", None, "clerk"),
    ("cancelled", None, "SELECT pg_sleep(5) AS cancelled_by_user", None, "clerk"),
    ("duration", 0.074, "SET log_statement = 'all'", None, "postgres"),
    ("duration", 0.101, "SELECT 2", None, "postgres"),  # log_statement line paired with its bare duration
    ("duration", 0.105, "SELECT id FROM items WHERE id = $1", "$1 = '3'", "postgres"),  # the same, extended
    ("duration", 0.082, "SET log_statement = 'none'", None, "postgres"),
    ("duration", 0.04, "SET auto_explain.log_min_duration = 0", None, "postgres"),
    ("duration", 0.024, "SET auto_explain.log_format = 'json'", None, "postgres"),
    ("auto_explain", 0.024, "SELECT count(*) FROM items WHERE id > 990", None, "postgres"),
    ("duration", 0.552, "SELECT count(*) FROM items WHERE id > 990", None, "postgres"),
    ("duration", 0.016, "SELECT name\n  FROM items\n WHERE id = $1", "$1 = '7'", "postgres"),
    ("auto_explain", 0.013, "SELECT name\n  FROM items\n WHERE id = $1", None, "postgres"),  # after, when extended
    ("duration", 0.038, "SET auto_explain.log_format = 'text'", None, "postgres"),
    ("auto_explain", 0.345, "SELECT name FROM items WHERE name LIKE 'item 9%'\n ORDER BY name", None, "postgres"),
    ("duration", 1.124, "SELECT name FROM items WHERE name LIKE 'item 9%'\n ORDER BY name", None, "postgres"),
    ("duration", 0.035, "SET auto_explain.log_min_duration = -1", None, "postgres"),
]
# Startup and shutdown messages; parse and bind of 6 extended-protocol statements; the missing table.
EXPECTED_SKIPPED = {"not_a_statement": 10, "parse_bind": 12, "error": 1}


def summary(result: LogReadResult) -> list[tuple[str, float | None, str, str | None, str | None]]:
    return [(s.kind, s.duration_ms, s.query, s.parameters, s.user) for s in result.statements]


def write(tmp_path: Path, text: str | bytes, name: str = "postgresql.log") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text)
    else:
        path.write_bytes(text)
    return path


# --- the fixtures of a real server ---------------------------------------------------------------------


@pytest.mark.parametrize("format", FIXTURES)
def test_fixture_statements_are_all_found_exactly(format: str) -> None:
    result = read_log(FIXTURES[format])
    assert result.format == format
    assert summary(result) == EXPECTED
    assert result.skipped == EXPECTED_SKIPPED
    assert result.messages == 52
    assert {s.database for s in result.statements} == {"shop"}
    assert result.statements[0].timestamp == "2026-11-26 11:20:08.113 UTC"
    assert read_log(FIXTURES[format], format=format) == result


def test_the_three_formats_agree() -> None:
    stderr, csvlog, jsonlog = (read_log(path).statements for path in FIXTURES.values())
    assert csvlog == jsonlog
    # The stderr prefix '%m [%p] %q%u@%d ' has no application name and no query id.
    assert stderr == [dataclasses.replace(s, application=None, query_id=None) for s in csvlog]


@pytest.mark.parametrize("format", FIXTURES)
def test_auto_explain_json_plans_are_parsed(format: str) -> None:
    plans = [s.plan for s in read_log(FIXTURES[format]).statements if s.kind == "auto_explain"]
    aggregate, index_scan, text_plan = plans
    assert aggregate is not None and index_scan is not None
    assert aggregate["Node Type"] == "Aggregate"
    assert aggregate["Plans"][0]["Node Type"] == "Index Only Scan"
    assert aggregate["Plans"][0]["Index Cond"] == "(id > 990)"
    assert index_scan == {
        "Node Type": "Index Scan",
        "Parallel Aware": False,
        "Async Capable": False,
        "Scan Direction": "Forward",
        "Index Name": "items_pkey",
        "Relation Name": "items",
        "Alias": "items",
        "Startup Cost": 0.28,
        "Total Cost": 8.29,
        "Plan Rows": 1,
        "Plan Width": 8,
        "Index Cond": "(id = '7'::smallint)",
    }
    assert text_plan is None  # auto_explain.log_format = text: the query only
    assert [s.plan for s in read_log(FIXTURES[format]).statements if s.kind != "auto_explain"] == [None] * 23


def test_csv_and_json_carry_application_and_query_id() -> None:
    statements = read_log(FIXTURES["jsonlog"]).statements
    assert [s.application for s in statements[:3]] == ["shop-web", "shop-web", "make_logs"]
    by_query = {(s.kind, s.query): s.query_id for s in statements}
    assert by_query[("duration", "SELECT count(*) FROM items")] == -4371285609345134945
    # pg_stat_statements ignores the alias, and the plan belongs to the statement it explains.
    assert (
        by_query[("cancelled", "SELECT pg_sleep(5)")]
        == by_query[("cancelled", "SELECT pg_sleep(5) AS cancelled_by_user")]
    )
    explained = "SELECT count(*) FROM items WHERE id > 990"
    assert by_query[("auto_explain", explained)] == by_query[("duration", explained)] is not None


def test_fixtures_are_small() -> None:
    assert all(path.stat().st_size < 32 * 1024 for path in FIXTURES.values())


# --- stderr edge cases ---------------------------------------------------------------------------------


def test_detail_lines_follow_the_message_of_their_pid(tmp_path: Path) -> None:
    log = (
        "2026-01-01 00:00:00.001 UTC [11] app@db ERROR:  canceling statement due to statement timeout\n"
        "2026-01-01 00:00:00.002 UTC [22] other@db LOG:  duration: 5.000 ms  execute <unnamed>: SELECT $1\n"
        "2026-01-01 00:00:00.003 UTC [11] app@db STATEMENT:  SELECT pg_sleep(10)\n"
        "2026-01-01 00:00:00.004 UTC [33] LOG:  checkpoint starting: time\n"
        "2026-01-01 00:00:00.005 UTC [22] other@db DETAIL:  parameters: $1 = 'x'\n"
    )
    result = read_log(write(tmp_path, log))
    assert summary(result) == [
        ("cancelled", None, "SELECT pg_sleep(10)", None, "app"),
        ("duration", 5.0, "SELECT $1", "$1 = 'x'", "other"),
    ]
    assert result.skipped == {"not_a_statement": 1}


def test_continuation_lines_keep_the_text_exactly(tmp_path: Path) -> None:
    log = (
        "2026-01-01 00:00:00 UTC [1] LOG:  duration: 12.5 ms  statement: SELECT a,\n"
        "\t\tb  -- a line that itself starts with a tab\n"
        "\t\n"
        "\tFROM t\n"
        "2026-01-01 00:00:01 UTC [1] LOG:  duration: 1 ms  statement: SELECT 1\n"
    )
    result = read_log(write(tmp_path, log))
    assert summary(result) == [
        ("duration", 12.5, "SELECT a,\n\tb  -- a line that itself starts with a tab\n\nFROM t", None, None),
        ("duration", 1.0, "SELECT 1", None, None),
    ]
    assert result.statements[0].timestamp == "2026-01-01 00:00:00 UTC"


@pytest.mark.parametrize(
    ("prefix", "user", "database", "application"),
    [
        ("2026-01-01 00:00:00.000 UTC [42] ", None, None, None),  # the default '%m [%p] '
        ("2026-01-01 00:00:00.000 UTC [42] u@d ", "u", "d", None),  # Debian's '%m [%p] %q%u@%d '
        ("2026-01-01 00:00:00 UTC [42]: [3-1] user=u,db=d,app=psql 16,client=::1 ", "u", "d", "psql 16"),  # pgBadger
        ("2026-01-01 00:00:00 UTC:10.0.0.1(5432):u@d:[42]:", "u", "d", None),  # Amazon RDS
        ("2026-01-01 00:00:00.000 UTC [42] [unknown]@[unknown] ", None, None, None),
        ("", None, None, None),  # no prefix at all
    ],
)
def test_common_prefixes(
    prefix: str, user: str | None, database: str | None, application: str | None, tmp_path: Path
) -> None:
    log = f"{prefix}ERROR:  canceling statement due to user request\n{prefix}STATEMENT:  SELECT 1\n"
    [statement] = read_log(write(tmp_path, log), format="stderr").statements
    assert (statement.kind, statement.query) == ("cancelled", "SELECT 1")
    assert (statement.user, statement.database, statement.application) == (user, database, application)


def test_verbose_error_verbosity(tmp_path: Path) -> None:
    log = (
        "2026-01-01 00:00:00 UTC [7] LOG:  00000: duration: 3.250 ms  statement: SELECT 1\n"
        "2026-01-01 00:00:00 UTC [7] LOCATION:  exec_simple_query, postgres.c:1300\n"
        "2026-01-01 00:00:01 UTC [7] ERROR:  57014: canceling statement due to statement timeout\n"
        "2026-01-01 00:00:01 UTC [7] LOCATION:  ProcessInterrupts, postgres.c:3300\n"
        "2026-01-01 00:00:01 UTC [7] STATEMENT:  SELECT pg_sleep(9)\n"
    )
    assert summary(read_log(write(tmp_path, log))) == [
        ("duration", 3.25, "SELECT 1", None, None),
        ("cancelled", None, "SELECT pg_sleep(9)", None, None),
    ]


def test_log_statement_and_log_duration_lines(tmp_path: Path) -> None:
    log = (
        "t [1] LOG:  statement: CREATE TABLE t (a int)\n"  # log_statement = ddl, fast: no duration follows
        "t [1] LOG:  duration: 150.000 ms  statement: SELECT * FROM big\n"
        "t [1] LOG:  duration: 0.100 ms\n"  # log_duration, nothing to pair with
        "t [1] LOG:  statement: SELECT * FROM t\n"
        "t [1] LOG:  duration: 0.010 ms  plan:\n"  # auto_explain comes before the duration it belongs with
        "\tQuery Text: SELECT * FROM t\n"
        "\tSeq Scan on t  (cost=0.00..35.50 rows=2550 width=4)\n"
        "t [1] NOTICE:  something the statement said\n"
        "t [1] LOG:  duration: 0.200 ms\n"
        "t [1] LOG:  statement: SELECT 'never finished'\n"
    )
    result = read_log(write(tmp_path, log))
    assert summary(result) == [
        ("duration", 150.0, "SELECT * FROM big", None, None),
        ("auto_explain", 0.01, "SELECT * FROM t", None, None),
        ("duration", 0.2, "SELECT * FROM t", None, None),
    ]
    assert result.skipped == {"log_statement": 2, "duration_only": 1, "not_a_statement": 1}


def test_other_errors_and_cancellations_are_not_statements(tmp_path: Path) -> None:
    log = (
        "t [1] ERROR:  canceling statement due to lock timeout\n"
        "t [1] STATEMENT:  LOCK TABLE t\n"
        "t [2] ERROR:  canceling autovacuum task\n"
        't [2] CONTEXT:  automatic vacuum of table "db.public.t"\n'
        "t [3] FATAL:  terminating connection due to administrator command\n"
        't [4] LOG:  duration: 1.000 ms  fastpath function call: "lo_open" (OID 952)\n'
        "t [4] LOG:  duration: 1.000 ms  execute fetch from S_1/C_2: SELECT * FROM t\n"
    )
    result = read_log(write(tmp_path, log))
    assert summary(result) == [("duration", 1.0, "SELECT * FROM t", None, None)]
    assert result.skipped == {"error": 3, "not_a_statement": 1}


@pytest.mark.parametrize(
    ("plan", "query"),
    [
        ('Query Text: "SELECT \\"a\\"\\nFROM t"\nPlan: \n  Node Type: "Seq Scan"', 'SELECT "a"\nFROM t'),  # yaml
        (
            '<explain xmlns="http://www.postgresql.org/2009/explain">\n  <Query>\n'
            "    <Query-Text>SELECT a FROM t WHERE a &lt; 3</Query-Text>\n",
            "SELECT a FROM t WHERE a < 3",
        ),  # xml
    ],
)
def test_yaml_and_xml_plans_give_the_query(plan: str, query: str, tmp_path: Path) -> None:
    log = "t [1] LOG:  duration: 2.000 ms  plan:\n" + "".join(f"\t{line}\n" for line in plan.splitlines())
    assert summary(read_log(write(tmp_path, log))) == [("auto_explain", 2.0, query, None, None)]


def test_json_plan_at_another_level_and_a_broken_one(tmp_path: Path) -> None:
    log = (
        't [1] NOTICE:  duration: 2.000 ms  plan:\n\t{"Query Text": "SELECT 1", "Plan": {"Node Type": "Result"}}\n'
        't [1] LOG:  duration: 2.000 ms  plan:\n\t{"Query Text": "SELECT 1", "Plan": {"Node Ty\n'
        't [1] LOG:  duration: 2.000 ms  plan:\n\t["not", "a", "plan"]\n'
    )
    result = read_log(write(tmp_path, log))
    assert [(s.query, s.plan) for s in result.statements] == [("SELECT 1", {"Node Type": "Result"})]
    assert result.skipped == {"bad_plan": 2}


def test_garbage_is_counted_never_raised(tmp_path: Path) -> None:
    garbage = bytes(range(256)) + b"\n\x00\x00\xff\xfe LOG \n\n{not json\n\tcontinuation with no message\n"
    log = garbage + b"t [1] LOG:  duration: 1.000 ms  statement: SELECT '\xe9t\xc3\xa9'\n" + garbage
    result = read_log(write(tmp_path, log))
    assert summary(result) == [("duration", 1.0, "SELECT '\ufffdt\u00e9'", None, None)]
    # Per copy: two lines of bytes (one ends at the newline byte), one of a few, one of JSON; a tab line.
    assert result.skipped == {"unparseable": 8, "orphaned_detail": 2}


def test_orphaned_detail_lines(tmp_path: Path) -> None:
    log = "t [1] STATEMENT:  SELECT 1\n\tcontinued\nt [2] LOG:  duration: 1 ms  statement: SELECT 2\n"
    result = read_log(write(tmp_path, log))
    assert summary(result) == [("duration", 1.0, "SELECT 2", None, None)]
    assert result.skipped == {"orphaned_detail": 2}


def test_very_long_statements(tmp_path: Path) -> None:
    query = "SELECT " + ", ".join(f"'{i}'" for i in range(200_000))  # about 2 MB
    log = f"t [1] LOG:  duration: 1.000 ms  statement: {query}\n"
    assert summary(read_log(write(tmp_path, log))) == [("duration", 1.0, query, None, None)]


def test_lines_over_the_limit_are_skipped(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dbmaint.advisor.server_log, "MAX_LINE", 100)
    log = f"t [1] LOG:  duration: 1.000 ms  statement: SELECT '{'x' * 300}'\n\tmore\n"
    log += "t [1] LOG:  duration: 2.000 ms  statement: SELECT 2\n"
    result = read_log(write(tmp_path, log))
    assert summary(result) == [("duration", 2.0, "SELECT 2", None, None)]
    assert result.skipped == {"too_long": 1, "orphaned_detail": 1}


# --- csvlog and jsonlog edge cases ---------------------------------------------------------------------

CSV_ROW = (
    '2026-01-01 00:00:00.000 UTC,"u","d",{pid},,s.1,1,,,,0,{level},{state},"{message}",{detail},,,,,{query},,,'
    '"app",client backend,,0\n'
)


def csv_row(message: str, level: str = "LOG", state: str = "00000", detail: str = "", query: str = "") -> str:
    quoted = (f'"{value}"' if value else "" for value in (detail, query))
    return CSV_ROW.format(pid=5, level=level, state=state, message=message, detail=next(quoted), query=next(quoted))


def test_csv_damaged_record_costs_only_itself(tmp_path: Path) -> None:
    log = (
        csv_row("duration: 1.000 ms  statement: SELECT 1")
        + '2026-01-01 00:00:00.000 UTC,"u","d",5,,s.1,1,,,,0,LOG,00000,"duration: 2 ms  statement: SELECT \'cut\n'
        + csv_row('duration: 3.000 ms  statement: SELECT\n  ""quoted""')
        + "garbage, with, commas\n\x00\x01\x02\n"
        + csv_row("canceling statement due to user request", level="ERROR", state="57014", query="SELECT 4")
    )
    result = read_log(write(tmp_path, log, "postgresql.csv"))
    assert summary(result) == [
        ("duration", 1.0, "SELECT 1", None, "u"),
        ("duration", 3.0, 'SELECT\n  "quoted"', None, "u"),
        ("cancelled", None, "SELECT 4", None, "u"),
    ]
    assert result.statements[0].application == "app"
    assert result.skipped == {"unparseable": 3}


def test_csv_long_fields_and_parameters(tmp_path: Path) -> None:
    query = "SELECT " + "x" * 500_000  # more than the csv module's default field limit
    log = csv_row(f"duration: 1.000 ms  execute <unnamed>: {query}", detail="parameters: $1 = ''''")
    assert summary(read_log(write(tmp_path, log, "postgresql.csv"))) == [("duration", 1.0, query, "$1 = ''''", "u")]


def test_a_cancellation_is_known_by_its_sqlstate_in_any_language(tmp_path: Path) -> None:
    log = csv_row("Abbruch der Anweisung wegen Zeitüberschreitung", level="FEHLER", state="57014", query="SELECT 1")
    log += csv_row("storniere Anfrage", level="ERROR", state="57014", query="SELECT 2")
    result = read_log(write(tmp_path, log, "postgresql.csv"))
    assert summary(result) == [("cancelled", None, "SELECT 1", None, "u"), ("cancelled", None, "SELECT 2", None, "u")]
    assert result.skipped == {}


def test_jsonlog_garbage_and_missing_keys(tmp_path: Path) -> None:
    log = (
        '{"error_severity": "LOG", "message": "duration: 1.5 ms  statement: SELECT 1", "pid": 3, "query_id": 0}\n'
        "[1, 2]\n"
        "{broken\n"
        + "[" * 100_000
        + "\n"
        + '{"error_severity": "LOG"}\n'
        + '{"error_severity": "ERROR", "state_code": "57014", "message": "canceling statement due to user request"}\n'
    )
    result = read_log(write(tmp_path, log, "postgresql.json"))
    assert result.statements == [LoggedStatement(query="SELECT 1", duration_ms=1.5, kind="duration")]
    assert result.skipped == {"unparseable": 4, "error": 1}  # the cancellation has no statement


# --- files and formats ---------------------------------------------------------------------------------


def test_gzip_compressed_logs(tmp_path: Path) -> None:
    path = tmp_path / "postgresql.csv.1.gz"
    path.write_bytes(gzip.compress(FIXTURES["csvlog"].read_bytes()))
    result = read_log(path)
    assert (result.format, summary(result)) == ("csvlog", EXPECTED)
    path.write_bytes(gzip.compress(FIXTURES["csvlog"].read_bytes())[:-100])
    with pytest.raises(UsageError, match=r"^cannot read the server log .*postgresql.csv.1.gz: Compressed file ended"):
        read_log(path)


def test_the_file_name_decides_when_the_content_cannot(tmp_path: Path) -> None:
    for name, format in [("x.csv", "csvlog"), ("x.json", "jsonlog"), ("x.log", "stderr"), ("empty", "stderr")]:
        assert read_log(write(tmp_path, b"\x00garbage\n" if name != "empty" else b"", name)).format == format


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"^cannot read the server log /nonexistent/x.log: No such file or directory$"):
        read_log(Path("/nonexistent/x.log"))
    with pytest.raises(UsageError, match=r"^cannot read the server log .*: Is a directory$"):
        read_log(tmp_path)
    with pytest.raises(UsageError, match=r"^unknown server log format 'syslog' \(expected one of: auto, stderr"):
        read_log(FIXTURES["stderr"], format="syslog")
