"""Which recorded statements the advisor weighs: total time decides, after one statement's entries merge."""

from __future__ import annotations

from typing import Any

from dbmaint.advisor import workload
from dbmaint.advisor.candidates import Candidate
from dbmaint.advisor.recommend import _built_size, _left_out_by_weight
from dbmaint.config import Config

CONFIG = Config()


def stat(calls: int, total_ms: float, query: str = "SELECT * FROM t WHERE a = $1") -> workload.Statement:
    return workload.Statement(query, calls, total_ms, "pg_stat_statements")


def test_a_slow_statement_run_once_counts() -> None:
    assert _left_out_by_weight(stat(1, 3000), CONFIG) is None


def test_a_fast_statement_run_once_does_not() -> None:
    assert _left_out_by_weight(stat(1, 1), CONFIG) == "under 100 ms in total"


def test_few_fast_calls_are_left_out_many_are_not() -> None:
    assert _left_out_by_weight(stat(3, 150), CONFIG) == "fewer than 5 calls, each under 100 ms"
    assert _left_out_by_weight(stat(3000, 150), CONFIG) is None


def test_statements_given_on_purpose_are_always_weighed() -> None:
    given = workload.Statement("SELECT * FROM t WHERE a = 1", 1, 0.0, "command line")
    assert _left_out_by_weight(given, CONFIG) is None


def test_entries_of_one_statement_merge_before_the_thresholds() -> None:
    """pg_stat_statements keeps one entry per user, parameter types and nesting: three entries of one
    statement, each under the thresholds, together weigh enough."""
    entries = [
        workload.Statement("SELECT * FROM t WHERE a = $1", 2, 40.0, "pg_stat_statements", 11),
        workload.Statement("SELECT * FROM t WHERE a = $1", 2, 40.0, "pg_stat_statements", 12),
        workload.Statement("select *  from t where a = $1", 2, 40.0, "pg_stat_statements", 13),
        workload.Statement("SELECT * FROM s.t WHERE a = $1", 2, 40.0, "pg_stat_statements", 14),
    ]
    assert all(_left_out_by_weight(e, CONFIG) is not None for e in entries)
    merged = workload.merged(entries)
    assert len(merged) == 2  # another schema's table stays apart
    (same,) = [m for m in merged if "s.t" not in m.query]
    assert (same.calls, same.total_time_ms) == (6, 120.0)
    assert _left_out_by_weight(same, CONFIG) is None


def test_a_statement_is_fingerprinted_once_and_a_candidate_sized_once() -> None:
    """Both are asked again and again in a run (merging, the planner's key; each greedy scoring), and each
    costs a parse or a catalog read: the second time comes from a cache."""
    query = "SELECT * FROM cached_fingerprint WHERE a = $1"
    before = workload.fingerprint.cache_info().hits
    assert workload.fingerprint(query) == workload.fingerprint(query)
    assert workload.fingerprint.cache_info().hits == before + 1

    asked: list[tuple[str, ...]] = []

    class Sizer:
        def size(self, schema: str, table: str, columns: tuple[str, ...], include: Any = (), where: Any = None) -> int:
            asked.append(columns)
            return 8192 * len(columns)

    size = _built_size(Sizer())  # type: ignore[arg-type]
    candidate = Candidate("public", "t", ("a", "b"))
    assert size(candidate) == size(candidate) == 2 * 8192
    assert asked == [("a", "b")]


def test_a_statement_left_out_for_its_relations_says_why_in_words() -> None:
    from dbmaint.advisor.recommend import _skip_reason

    assert _skip_reason("nosuch: no such table") == "a table that does not exist (or that this role cannot see)"
    assert _skip_reason("pg_catalog.pg_class: system catalog") == "only system catalogs"
    assert _skip_reason("public.remote: foreign table (indexes live on the remote server)").startswith("only foreign")
