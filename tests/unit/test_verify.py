"""--verify's judgement: keep an index only when it delivers and slows nothing down."""

from __future__ import annotations

from dbmaint.advisor.verify import Timing, judge
from dbmaint.model import IndexRecommendation

INDEX = IndexRecommendation("public", "t", ("a",), "t_a_idx", "CREATE INDEX CONCURRENTLY t_a_idx ON t (a)", "why")


def test_kept_when_a_statement_gets_faster() -> None:
    verdict = judge(INDEX, [Timing("q1", 20.0, 1.0)], [Timing("q2", 5.0, 5.5)])
    assert verdict.kept and verdict.reason.startswith("1 statement(s) faster")


def test_dropped_when_nothing_gets_faster_enough() -> None:
    verdict = judge(INDEX, [Timing("q1", 20.0, 19.0)], [])
    assert not verdict.kept and "got 10% faster" in verdict.reason


def test_dropped_when_another_statement_gets_slower() -> None:
    verdict = judge(INDEX, [Timing("q1", 20.0, 1.0)], [Timing("SELECT other", 10.0, 40.0)])
    assert not verdict.kept and verdict.reason.startswith("made a statement 4.0x slower")


def test_dropped_when_nothing_could_be_timed() -> None:
    assert judge(INDEX, [], []).reason == "none of its statements could be timed"
