"""Statements read from a PostgreSQL server log, as a workload for the index advisor and slow-query capture.

Three kinds of entry are statements: log_min_duration_statement's ``duration: ... ms  statement: ...``
lines, auto_explain's ``duration: ... ms  plan: ...`` entries, and statements cancelled by
statement_timeout or on request, the slowest of all, which pg_stat_statements never records.

Pure parsing: a file in, records out, no database. The stderr, csvlog and jsonlog formats are each read
into the same kind of message first; what a message means is then decided once, for all three.
"""

from __future__ import annotations

import csv
import gzip
import html
import io
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from dbmaint.errors import UsageError

FORMATS = ("auto", "stderr", "csvlog", "jsonlog")
StatementKind = Literal["duration", "auto_explain", "cancelled"]

# Why a line, record or message was skipped: the keys of LogReadResult.skipped.
UNPARSEABLE = "unparseable"  # a line (stderr, jsonlog) or record (csvlog) that is not a log message
TOO_LONG = "too_long"  # a line longer than MAX_LINE bytes, not read
ORPHANED = "orphaned_detail"  # a DETAIL/STATEMENT/continuation line with no message of its pid before it
NOT_A_STATEMENT = "not_a_statement"  # checkpoints, connections, warnings, ...
LOG_STATEMENT = "log_statement"  # logged by log_statement, and no duration followed
PARSE_BIND = "parse_bind"  # the parse and bind steps of the extended protocol (its execute is kept)
DURATION_ONLY = "duration_only"  # log_duration's bare ``duration: ... ms`` with no statement to pair with
ERROR = "error"  # errors other than cancellations
BAD_PLAN = "bad_plan"  # an auto_explain entry whose plan cannot be read

# A guard against unbounded memory on a file that is not a log (a binary with no newline in it).
MAX_LINE = 64 * 1024 * 1024

_ERROR_LEVELS = frozenset({"ERROR", "FATAL", "PANIC"})
# Lines that belong to the message before them; the values are the _Message fields they fill.
_DETAIL_LEVELS: dict[str, str | None] = {
    "DETAIL": "detail",
    "CONTEXT": "context",
    "STATEMENT": "statement",
    "HINT": None,
    "QUERY": None,
    "LOCATION": None,
}
_LEVELS = ("DEBUG1", "DEBUG2", "DEBUG3", "DEBUG4", "DEBUG5", "LOG", "INFO", "NOTICE", "WARNING", *_ERROR_LEVELS)
_CANCELLATIONS = ("canceling statement due to statement timeout", "canceling statement due to user request")
_QUERY_CANCELED = "57014"
_NOT_ERRORS = ("00", "01", "02")  # SQLSTATE classes of success, warning and no data

_DURATION = re.compile(r"duration: (?P<ms>\d+(?:\.\d+)?) ms(?:  (?P<rest>.*))?\Z", re.DOTALL)
# The statement of a duration line or of a log_statement line: simple protocol, or the execute step of the
# extended one (``execute <unnamed>: ``, ``execute S_1/C_2: ``, ``execute fetch from S_1/C_2: ``).
_STATEMENT = re.compile(r"(?:statement|execute(?: fetch from)? [^\n]*?): (?P<query>.*)\Z", re.DOTALL)
_PARSE_BIND = re.compile(r"(?:parse|bind) [^\n]*?: ")
_PORTAL_PARAMETERS = re.compile(r'(?:unnamed portal|portal "[^"]*") with parameters: (?P<parameters>.*)\Z', re.DOTALL)

# stderr: whatever log_line_prefix wrote, then the level and two spaces.
_LEVEL = re.compile(r"\b(" + "|".join([*_LEVELS, *_DETAIL_LEVELS]) + r"):  ")
_MAX_PREFIX = 1024
_SQLSTATE = re.compile(r"([0-9A-Z]{5}): ")
_PID = re.compile(r"\[(\d+)(?:-\d+)?\]")
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Za-z]{2,6}| ?[+-]\d\d(?::?\d\d)?)?")
# %u@%d: the words either side of an @, which neither contains
_USER = re.compile(r"(?:^|[\s:])([^\s@:\[\]]+)\Z")
_DB = re.compile(r"([^\s@:\[\]]+)(?:[\s:]|\Z)")
_KEY_VALUE = re.compile(r"(?<!\w)(user|db|app)=(.*?)(?=,|\s+\w+=|\s*$)")  # user=%u,db=%d,app=%a
_UNKNOWN = "[unknown]"  # what %u and %d print before the session knows them
_SWEEP = 10_000  # stderr lines after which a message still waiting for its DETAIL lines is closed

# csvlog: a record starts with log_time, user_name, database_name and process_id.
_CSV_START = re.compile(r'\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [^,"]*,(?:"(?:[^"]|"")*")?,(?:"(?:[^"]|"")*")?,\d*,')
_CSV_COLUMNS = 23  # up to application_name: every PostgreSQL since 9.0 writes at least these
_CSV = {"time": 0, "user": 1, "db": 2, "pid": 3, "level": 11, "sqlstate": 12, "message": 13, "detail": 14}
_CSV |= {"context": 18, "statement": 19, "app": 22, "query_id": 25}


@dataclass(frozen=True)
class LoggedStatement:
    """One statement found in the log, with how long it ran when the log says."""

    query: str
    duration_ms: float | None
    kind: StatementKind
    plan: dict[str, Any] | None = None  # auto_explain's "Plan" object, when it logged JSON
    database: str | None = None
    user: str | None = None
    application: str | None = None
    timestamp: str | None = None  # as the server printed it, e.g. "2026-11-26 11:16:38.599 UTC"
    parameters: str | None = None  # the extended protocol's "DETAIL:  parameters: ", e.g. "$1 = '42', $2 = 'x'"
    query_id: int | None = None  # pg_stat_statements' queryid (csvlog and jsonlog, with compute_query_id)


@dataclass(frozen=True)
class LogReadResult:
    """The statements of one log file, in log order, and what was passed over and why."""

    path: Path
    format: str  # the format read: stderr, csvlog or jsonlog
    statements: list[LoggedStatement]
    skipped: dict[str, int]  # reason (the constants above) -> lines, records or messages
    messages: int  # log messages read (a message with its DETAIL and STATEMENT lines is one)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class _Message:
    """One log message with the lines that belong to it, whatever format it came from."""

    level: str
    text: str
    order: int  # position in the file: statements are reported in log order
    pid: str | None = None
    timestamp: str | None = None
    user: str | None = None
    database: str | None = None
    application: str | None = None
    sqlstate: str | None = None
    query_id: int | None = None
    detail: str | None = None
    context: str | None = None
    statement: str | None = None
    prefix: str | None = None  # stderr's log_line_prefix, read only for the messages that are statements
    query: str = field(default="", repr=False)  # of a log_statement line, once recognised


def read_log(path: Path, *, format: str = "auto") -> LogReadResult:
    """Read the statements of a server log (plain or gzip-compressed) in one of FORMATS."""
    if format not in FORMATS:
        raise UsageError(f"unknown server log format '{format}' (expected one of: {', '.join(FORMATS)})")
    path = Path(path)
    classifier = _Classifier()
    try:
        chosen = _detect(path) if format == "auto" else format
        with _open(path) as stream:
            for item in _READERS[chosen](_lines(stream)):
                classifier.add(item)
    except (OSError, EOFError) as exc:  # EOFError: a truncated gzip file
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(f"cannot read the server log {path}: {reason}") from None
    return classifier.result(path, chosen)


# --- reading the file --------------------------------------------------------------------------------


@contextmanager
def _open(path: Path) -> Iterator[io.BufferedIOBase]:
    with path.open("rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"  # rotated logs are often gzipped
        raw.seek(0)
        if not compressed:
            yield raw
            return
        with gzip.GzipFile(fileobj=raw) as unzipped:
            yield unzipped


def _lines(stream: io.BufferedIOBase) -> Iterator[str | None]:
    """Decoded lines with their newline; None for a line over MAX_LINE bytes, which is skipped unread.

    Each message is in its database's encoding, so a log can mix encodings: what is not UTF-8 is replaced
    rather than refused.
    """
    while line := stream.readline(MAX_LINE):
        if len(line) == MAX_LINE and not line.endswith(b"\n"):
            while (rest := stream.readline(MAX_LINE)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line.decode("utf-8", "replace")


def _detect(path: Path) -> str:
    """The format from the first non-empty line, or else from the file name."""
    with _open(path) as stream:
        first = next((line for line in _lines(stream) if line is None or line.strip()), None)
    if first is not None:
        if first.startswith("{"):
            return "jsonlog"
        if _CSV_START.match(first):
            return "csvlog"
        if _LEVEL.search(first[:_MAX_PREFIX]):
            return "stderr"
    if ".csv" in path.suffixes:
        return "csvlog"
    return "jsonlog" if ".json" in path.suffixes else "stderr"


# --- stderr ------------------------------------------------------------------------------------------


def _read_stderr(lines: Iterable[str | None]) -> Iterator[_Message | str]:
    """Messages of the stderr format, whose DETAIL and STATEMENT lines follow the message of their pid.

    Continuation lines of a multi-line text start with a tab; they extend the line just before them.
    """
    open_by_pid: dict[str | None, _Message] = {}
    target: tuple[_Message, str | None] | None = None  # where a continuation line goes
    for number, line in enumerate(lines):
        if number and number % _SWEEP == 0:
            yield from _close_stale(open_by_pid, number - _SWEEP)
        if line is None:
            target = None
            yield TOO_LONG
            continue
        line = line.rstrip("\r\n")
        if line.startswith("\t"):
            if target is None:
                yield ORPHANED
            else:
                _extend(*target, line[1:])
            continue
        if not line.strip():
            continue
        match = _LEVEL.search(line[:_MAX_PREFIX])
        if match is None:
            target = None
            yield UNPARSEABLE
            continue
        level, prefix, text = match[1], line[: match.start()], line[match.end() :]
        pid = _first(_PID, prefix)
        if level in _DETAIL_LEVELS:
            owner = open_by_pid.get(pid)
            if owner is None:
                target = None
                yield ORPHANED
                continue
            target = (owner, _DETAIL_LEVELS[level])
            _extend(*target, text, first=True)
            continue
        if (previous := open_by_pid.pop(pid, None)) is not None:
            yield previous
        sqlstate = _SQLSTATE.match(text)  # log_error_verbosity = verbose
        if sqlstate:
            text = text[sqlstate.end() :]
        message = _Message(level, text, number, pid, sqlstate=sqlstate[1] if sqlstate else None, prefix=prefix)
        open_by_pid[pid] = message
        target = (message, "text")
    yield from open_by_pid.values()


def _read_prefix(message: _Message, prefix: str) -> None:
    """What can be known from a log_line_prefix that may be any mix of escapes."""
    user = database = None
    at = prefix.rfind("@")
    if at > 0:
        user_match, db_match = _USER.search(prefix, 0, at), _DB.match(prefix, at + 1)
        if user_match and db_match:
            user, database = user_match[1], db_match[1]
    pairs = dict(_KEY_VALUE.findall(prefix)) if "=" in prefix else {}  # the regex is slow: most prefixes have none
    message.timestamp = _first(_TIMESTAMP, prefix, group=0)
    message.user = _known(pairs.get("user") or user)
    message.database = _known(pairs.get("db") or database)
    message.application = _known(pairs.get("app"))


def _extend(message: _Message, name: str | None, text: str, *, first: bool = False) -> None:
    if name is None:  # HINT, QUERY, LOCATION: not needed
        return
    current = getattr(message, name)
    setattr(message, name, text if first or current is None else f"{current}\n{text}")


def _close_stale(open_by_pid: dict[str | None, _Message], before: int) -> Iterator[_Message]:
    """Messages whose detail lines can no longer come: they keep memory bounded on a long log."""
    for pid in [pid for pid, message in open_by_pid.items() if message.order < before]:
        yield open_by_pid.pop(pid)


def _first(pattern: re.Pattern[str], text: str, group: int = 1) -> str | None:
    match = pattern.search(text)
    return match[group] if match else None


def _known(value: str | None) -> str | None:
    return None if not value or value == _UNKNOWN else value


# --- csvlog ------------------------------------------------------------------------------------------


def _read_csv(lines: Iterable[str | None]) -> Iterator[_Message | str]:
    """Messages of the csvlog format: one record each, over several lines when a field has newlines.

    Records are cut at the line where the quotes balance, so that a damaged record (a stray quote, a
    file cut in the middle) costs only itself instead of swallowing the rest of the file.
    """
    csv.field_size_limit(max(csv.field_size_limit(), MAX_LINE))  # the default 128 kB is less than a long query
    buffer: list[str] = []
    quotes = size = records = 0
    for line in lines:
        if line is None:
            yield TOO_LONG
            continue
        if buffer and (_CSV_START.match(line) or size > MAX_LINE):
            yield UNPARSEABLE  # the record before never closed its quotes
            buffer, quotes, size = [], 0, 0
        buffer.append(line)
        quotes += line.count('"')
        size += len(line)
        if quotes % 2 == 0:
            record = "".join(buffer)
            buffer, quotes, size = [], 0, 0
            if record.strip():
                records += 1
                yield _csv_message(record, records)
    if buffer:
        yield UNPARSEABLE


def _csv_message(record: str, order: int) -> _Message | str:
    try:
        row = next(csv.reader(io.StringIO(record, newline="")), [])
    except csv.Error:
        return UNPARSEABLE
    if len(row) < _CSV_COLUMNS or not row[_CSV["level"]] or not row[_CSV["pid"]].isdigit():
        return UNPARSEABLE

    def column(name: str) -> str | None:
        index = _CSV[name]
        return (row[index] or None) if index < len(row) else None

    return _Message(
        level=row[_CSV["level"]],
        text=row[_CSV["message"]],
        order=order,
        pid=column("pid"),
        timestamp=column("time"),
        user=column("user"),
        database=column("db"),
        application=column("app"),
        sqlstate=column("sqlstate"),
        query_id=_query_id(column("query_id")),
        detail=column("detail"),
        context=column("context"),
        statement=column("statement"),
    )


# --- jsonlog -----------------------------------------------------------------------------------------


def _read_json(lines: Iterable[str | None]) -> Iterator[_Message | str]:
    """Messages of the jsonlog format (PostgreSQL 15+): one object a line, absent keys for empty fields."""
    for number, line in enumerate(lines):
        if line is None:
            yield TOO_LONG
        elif line.strip():
            yield _json_message(line, number)


def _json_message(line: str, order: int) -> _Message | str:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return UNPARSEABLE
    if not isinstance(record, dict):
        return UNPARSEABLE

    def text(key: str) -> str | None:
        value = record.get(key)
        return value if isinstance(value, str) and value else None

    level, message = text("error_severity"), record.get("message")
    if level is None or not isinstance(message, str):
        return UNPARSEABLE
    pid = record.get("pid")
    return _Message(
        level=level,
        text=message,
        order=order,
        pid=str(pid) if isinstance(pid, int) else None,
        timestamp=text("timestamp"),
        user=text("user"),
        database=text("dbname"),
        application=text("application_name"),
        sqlstate=text("state_code"),
        query_id=_query_id(record.get("query_id")),
        detail=text("detail"),
        context=text("context"),
        statement=text("statement"),
    )


def _query_id(value: object) -> int | None:
    """0 means "not computed" (compute_query_id off, or a message outside a statement)."""
    try:
        number = int(value) if isinstance(value, int | str) else 0
    except ValueError:
        return None
    return number or None


_READERS: dict[str, Callable[[Iterable[str | None]], Iterator[_Message | str]]] = {
    "stderr": _read_stderr,
    "csvlog": _read_csv,
    "jsonlog": _read_json,
}


# --- what a message means ----------------------------------------------------------------------------


class _Classifier:
    """Turns messages into statements, counting the rest by reason.

    With log_statement on, the server logs the statement when it starts and, for the same statement, a
    bare ``duration: ... ms`` when it ends; the two are paired per pid. auto_explain's entry and the
    statement's notices can come in between, so only another statement of that pid ends the wait.
    """

    def __init__(self) -> None:
        self.found: list[tuple[int, LoggedStatement]] = []
        self.skipped: Counter[str] = Counter()
        self.messages = 0
        self.waiting: dict[str | None, _Message] = {}  # log_statement lines waiting for their duration

    def add(self, item: _Message | str) -> None:
        if isinstance(item, str):
            self.skipped[item] += 1
            return
        self.messages += 1
        outcome = self._classify(item)
        if isinstance(outcome, LoggedStatement):
            self.found.append((item.order, outcome))
        elif outcome is not None:
            self.skipped[outcome] += 1

    def result(self, path: Path, format: str) -> LogReadResult:
        self.skipped[LOG_STATEMENT] += len(self.waiting)
        self.waiting.clear()
        statements = [statement for _, statement in sorted(self.found, key=lambda found: found[0])]
        return LogReadResult(path, format, statements, {k: v for k, v in self.skipped.items() if v}, self.messages)

    def _classify(self, message: _Message) -> LoggedStatement | str | None:
        if _is_error(message):
            self._stop_waiting(message.pid)
            return _cancelled(message)
        duration = _DURATION.match(message.text)
        if duration:
            rest = duration["rest"] or ""
            # Statements are logged at level LOG; auto_explain's level is configurable.
            if message.level == "LOG" or rest.startswith("plan:"):
                return self._duration(message, float(duration["ms"]), rest)
            return NOT_A_STATEMENT
        logged = _STATEMENT.match(message.text) if message.level == "LOG" else None
        if logged:
            self._stop_waiting(message.pid)
            message.query = logged["query"]
            self.waiting[message.pid] = message
            return None  # counted when no duration comes for it
        return NOT_A_STATEMENT

    def _duration(self, message: _Message, ms: float, rest: str) -> LoggedStatement | str:
        if rest.startswith("plan:"):
            return _auto_explain(message, ms, rest.removeprefix("plan:"))
        if not rest:
            logged = self.waiting.pop(message.pid, None)
            if logged is None:
                return DURATION_ONLY
            return _statement(message, "duration", logged.query, ms, parameters=_parameters(logged.detail))
        if _PARSE_BIND.match(rest):
            return PARSE_BIND
        statement = _STATEMENT.match(rest)
        if statement is None:
            return NOT_A_STATEMENT  # e.g. "fastpath function call"
        self._stop_waiting(message.pid)
        return _statement(message, "duration", statement["query"], ms, parameters=_parameters(message.detail))

    def _stop_waiting(self, pid: str | None) -> None:
        if self.waiting.pop(pid, None) is not None:
            self.skipped[LOG_STATEMENT] += 1


def _statement(
    message: _Message,
    kind: StatementKind,
    query: str,
    ms: float | None,
    *,
    plan: dict[str, Any] | None = None,
    parameters: str | None = None,
) -> LoggedStatement:
    if message.prefix is not None:
        _read_prefix(message, message.prefix)
    return LoggedStatement(
        query=query,
        duration_ms=ms,
        kind=kind,
        database=message.database,
        user=message.user,
        application=message.application,
        timestamp=message.timestamp,
        query_id=message.query_id,
        plan=plan,
        parameters=parameters,
    )


def _parameters(detail: str | None) -> str | None:
    if detail is None or not detail.startswith("parameters: "):
        return None
    return detail.removeprefix("parameters: ")


def _is_error(message: _Message) -> bool:
    """csvlog and jsonlog translate the level with lc_messages; their SQLSTATE still tells an error."""
    if message.level in _LEVELS:
        return message.level in _ERROR_LEVELS
    return message.sqlstate is not None and message.sqlstate[:2] not in _NOT_ERRORS


def _cancelled(message: _Message) -> LoggedStatement | str:
    # Only the statement's own cancellations carry a statement: "canceling autovacuum task" has none.
    cancelled = message.text in _CANCELLATIONS or message.sqlstate == _QUERY_CANCELED
    if not cancelled or message.statement is None:
        return ERROR
    # With log_parameter_max_length_on_error, the CONTEXT line carries the extended protocol's parameters.
    portal = _PORTAL_PARAMETERS.search(message.context or "")
    parameters = portal["parameters"] if portal else None
    return _statement(message, "cancelled", message.statement, None, parameters=parameters)


def _auto_explain(message: _Message, ms: float, body: str) -> LoggedStatement | str:
    """auto_explain's entry in any of its log_format settings; only JSON gives the plan as data."""
    body = body.strip("\n")
    if body.startswith("{"):
        return _json_plan(message, ms, body)
    if body.startswith("<explain"):
        found = re.search(r"<Query-Text>(.*?)</Query-Text>", body, re.DOTALL)
        query, parameters = (html.unescape(found[1]) if found else None), None
    else:
        query, parameters = _text_plan_query(body)
    return BAD_PLAN if query is None else _statement(message, "auto_explain", query, ms, parameters=parameters)


def _json_plan(message: _Message, ms: float, body: str) -> LoggedStatement | str:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return BAD_PLAN
    if not isinstance(document, dict):
        return BAD_PLAN
    query, plan, parameters = document.get("Query Text"), document.get("Plan"), document.get("Query Parameters")
    if not isinstance(query, str) or not isinstance(plan, dict):
        return BAD_PLAN
    parameters = parameters if isinstance(parameters, str) else None  # PostgreSQL 16+
    return _statement(message, "auto_explain", query, ms, plan=plan, parameters=parameters)


# The plan's top node, unindented, e.g. "Seq Scan on items  (cost=0.00..18.50 rows=111 width=8)".
_TEXT_PLAN_TOP = re.compile(r"^\S.*  \(cost=\d", re.MULTILINE)
_TEXT_PARAMETERS = re.compile(r"\nQuery Parameters: (?P<parameters>.*)\Z", re.DOTALL)  # PostgreSQL 16+


def _text_plan_query(body: str) -> tuple[str | None, str | None]:
    """The query (and parameters) of a text or YAML plan; a multi-line query ends where the plan starts."""
    if not body.startswith("Query Text: "):
        return None, None
    rest = body.removeprefix("Query Text: ")
    if rest.startswith('"'):  # YAML quotes it as a JSON string
        try:
            query, _ = json.JSONDecoder().raw_decode(rest)
        except ValueError:
            return None, None
        return (query if isinstance(query, str) else None), None
    top = _TEXT_PLAN_TOP.search(rest)
    query = (rest[: top.start()] if top else rest.split("\n", 1)[0]).rstrip("\n")
    parameters = _TEXT_PARAMETERS.search(query)
    if parameters is None:
        return query, None
    return query[: parameters.start()], parameters["parameters"]
