"""Btree bloat estimation and the rebuild decisions, on hand-made statistics."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dbmaint.config import ReindexConfig
from dbmaint.maintenance import reindex_analysis
from dbmaint.pg.facts import IndexPages, IndexStats, InvalidIndex

NOW = datetime(2026, 11, 26, tzinfo=UTC)
# An int4 index of 1,000,000 rows built fresh: about 367 entries per 90%-full page -> ~2,733 pages.
HEALTHY = IndexStats(
    index_oid=10, table_oid=1, schema="public", name="t_pkey", table_name="t", method="btree", relpages=2750,
    reltuples=1_000_000, size_bytes=2750 * 8192, reloptions=[], is_valid=True, is_catalog=False,
    is_exclusion=False, block_size=8192, missing_stats=0, data_width=4.0, max_null_frac=0.0, tablespace_oid=1663,
)  # fmt: skip
BLOATED = HEALTHY._replace(relpages=9000, size_bytes=9000 * 8192)
CONFIG = ReindexConfig(min_size=1024 * 1024)


def test_estimate_of_a_freshly_built_index_is_near_zero() -> None:
    bloat = reindex_analysis.estimate_bloat(HEALTHY)
    assert bloat is not None
    assert bloat.ratio < 0.05


def test_estimate_of_a_bloated_index() -> None:
    bloat = reindex_analysis.estimate_bloat(BLOATED)
    assert bloat is not None
    assert bloat.ratio == pytest.approx(1 - 2726 / 9000, abs=0.02)
    assert bloat.bytes == pytest.approx(bloat.ratio * BLOATED.size_bytes, rel=0.01)


def test_fillfactor_is_respected() -> None:
    packed = reindex_analysis.estimate_bloat(HEALTHY._replace(relpages=2500, reloptions=["fillfactor=100"]))
    assert packed is not None and packed.ratio < 0.05
    loose = reindex_analysis.estimate_bloat(HEALTHY._replace(relpages=4000, reloptions=["fillfactor=60"]))
    assert loose is not None and loose.ratio < 0.05


def test_no_estimate_without_statistics_or_for_other_methods() -> None:
    assert reindex_analysis.estimate_bloat(HEALTHY._replace(missing_stats=1)) is None
    assert reindex_analysis.estimate_bloat(HEALTHY._replace(method="gin")) is None


def test_exact_figure_counts_half_empty_leaves() -> None:
    pages = IndexPages(index_size=1000 * 8192, internal_pages=9, leaf_pages=990, avg_leaf_density=45.0)
    bloat = reindex_analysis.bloat_from_pages(BLOATED, pages)
    assert bloat.ratio == pytest.approx(1 - (1 + 9 + 495) / 1000)
    assert bloat.source == "measured with pgstattuple"


def test_exact_figure_counts_pages_emptied_by_range_deletes() -> None:
    # 1,480 of 1,648 pages deleted, the surviving leaves well packed: the density alone looks healthy.
    pages = IndexPages(index_size=1648 * 8192, internal_pages=1, leaf_pages=166, avg_leaf_density=89.5)
    bloat = reindex_analysis.bloat_from_pages(BLOATED, pages)
    assert bloat.ratio > 0.85


def decide(
    indexes: list[IndexStats], config: ReindexConfig = CONFIG, **kwargs: object
) -> list[reindex_analysis.IndexDecision]:
    return reindex_analysis.decide(indexes, config, now=NOW, **kwargs)  # type: ignore[arg-type]


def test_only_bloated_indexes_above_the_size_threshold() -> None:
    small = BLOATED._replace(index_oid=11, name="small", relpages=100, size_bytes=100 * 8192, reltuples=10_000)
    decisions = decide([HEALTHY, BLOATED, small])
    assert [(d.index.name, d.rebuild) for d in decisions] == [("t_pkey", True)]
    assert "bloat" in decisions[0].reason and "estimated from statistics" in decisions[0].reason


@pytest.mark.parametrize(
    ("change", "blocker"),
    [
        ({"is_catalog": True}, "system catalog index"),
        ({"is_exclusion": True}, "exclusion-constraint index"),
    ],
)
def test_indexes_that_cannot_be_rebuilt_concurrently_are_skipped(change: dict[str, bool], blocker: str) -> None:
    (decision,) = decide([BLOATED._replace(**change)])  # type: ignore[arg-type]
    assert not decision.rebuild
    assert decision.blocker is not None and decision.blocker.startswith(blocker)


def test_non_btree_and_unanalysed_indexes_are_reported_as_unknown() -> None:
    gin, unanalysed = BLOATED._replace(method="gin"), BLOATED._replace(index_oid=12, missing_stats=1)
    blockers = {d.index.index_oid: d.blocker for d in decide([gin, unanalysed])}
    assert blockers[10] == "cannot estimate the bloat of gin indexes"
    assert blockers[12] is not None and blockers[12].startswith("no statistics for its columns")


def test_recently_rebuilt_and_disk_full_are_skipped() -> None:
    (recent,) = decide([BLOATED], last_rebuilt={"public.t_pkey": NOW - timedelta(days=2)})
    assert recent.blocker is not None and "less than reindex.min_interval ago" in recent.blocker
    (old,) = decide([BLOATED], last_rebuilt={"public.t_pkey": NOW - timedelta(days=30)})
    assert old.rebuild
    (full,) = decide([BLOATED], free_bytes={1663: 10 * 8192})
    assert full.blocker is not None and full.blocker.startswith("needs about")


def test_at_most_max_per_run_the_most_bloat_first() -> None:
    indexes = [BLOATED._replace(index_oid=i, name=f"i{i}", relpages=5000 + 1000 * i) for i in range(4)]
    config = CONFIG._replace(max_per_run=2)
    decisions = decide(indexes, config)
    assert [d.index.name for d in decisions if d.rebuild] == ["i3", "i2"]
    assert all("max_per_run" in (d.blocker or "") for d in decisions if not d.rebuild)


def test_indexes_this_role_may_not_rebuild_take_no_place_under_max_per_run() -> None:
    """A role owning some tables: the most bloated indexes of tables it does not own would fail, and filled
    max_per_run every run, so that its own bloated indexes were never rebuilt."""
    theirs = [BLOATED._replace(index_oid=i, name=f"theirs{i}", relpages=9000 + i, can_maintain=False) for i in range(3)]
    mine = [BLOATED._replace(index_oid=10 + i, name=f"mine{i}", relpages=5000 + i) for i in range(2)]
    decisions = decide([*theirs, *mine], CONFIG._replace(max_per_run=2))
    assert sorted(d.index.name for d in decisions if d.rebuild) == ["mine0", "mine1"]
    assert all((d.blocker or "").startswith("insufficient privilege") for d in decisions if not d.rebuild)


def test_leftovers_only_concurrent_build_leftovers_with_no_build_running() -> None:
    base = InvalidIndex(
        index_oid=1, schema="public", name="t_code_ccnew", table_name="t", table_oid=2, size_bytes=8192,
        is_concurrent_leftover=True, build_running=False,
    )  # fmt: skip
    running = base._replace(name="t_x_ccnew1", build_running=True)
    other = base._replace(name="t_code_unique", is_concurrent_leftover=False)
    drop, findings = reindex_analysis.leftovers([base, running, other])
    assert [i.name for i in drop] == ["t_code_ccnew"]
    assert any("build in progress" in f for f in findings)
    assert any("t_code_unique" in f and "not dropped" in f for f in findings)
    assert (
        reindex_analysis.drop_statement(base).as_string(None)
        == 'DROP INDEX CONCURRENTLY IF EXISTS "public"."t_code_ccnew"'
    )
