"""Autovacuum settings advised from a table's churn: the band in which the nightly pass does autovacuum's
work, the proposed scale factor, and the statement to review."""

from __future__ import annotations

from dbmaint.check.items.autovacuum_settings import TableChurn, advise, item

SERVER = {
    "autovacuum_vacuum_threshold": 50.0,
    "autovacuum_vacuum_scale_factor": 0.2,
    "autovacuum_vacuum_insert_threshold": 1000.0,
    "autovacuum_vacuum_insert_scale_factor": 0.2,
}
DAY = 86_400.0


def churn(dead: int = 0, inserts: int = 0, *, rows: float = 1e6, days: float = 1.0, options: tuple[str, ...] = (),
          schema: str = "public", name: str = "events") -> TableChurn:  # fmt: skip
    return TableChurn(schema, name, rows, list(options), dead, inserts, days * DAY, 3)


def advised(*tables: TableChurn, min_observed_s: float = 3600.0) -> list[tuple[str, str, float]]:
    found = advise(tables, SERVER, trigger_fraction=0.5, min_observed_s=min_observed_s)
    return [(a.table.name, a.setting, a.proposed) for a in found]


def test_a_table_between_the_nightly_trigger_and_autovacuums_gets_a_lower_scale_factor() -> None:
    # Autovacuum starts at 200,050 dead rows; the nightly pass at half that: 120,000 a day is in between.
    assert advised(churn(dead=120_000)) == [("events", "autovacuum_vacuum_scale_factor", 0.02)]
    # A rate measured over twelve hours counts as twice as much a day.
    assert advised(churn(dead=60_000, days=0.5)) == [("events", "autovacuum_vacuum_scale_factor", 0.02)]


def test_outside_the_band_nothing_is_advised() -> None:
    assert advised(churn(dead=50_000)) == []  # the nightly pass leaves it alone too
    assert advised(churn(dead=300_000)) == []  # autovacuum reaches it by itself during the day
    assert advised(churn(dead=120_000, days=0.01)) == []  # observed for 15 minutes: too short to say
    assert advised(churn(dead=120_000, options=("autovacuum_enabled=false",))) == []  # off on purpose


def test_the_tables_own_settings_count_and_inserts_have_theirs() -> None:
    # Its reloption (0.05) puts autovacuum at 50,050: 30,000 a day is in the band; a quarter of it is 0.0075.
    assert advised(churn(dead=30_000, options=("autovacuum_vacuum_scale_factor=0.05",))) == [
        ("events", "autovacuum_vacuum_scale_factor", 0.005)
    ]
    assert advised(churn(inserts=150_000)) == [("events", "autovacuum_vacuum_insert_scale_factor", 0.02)]
    assert advised(churn(inserts=150_000, options=("autovacuum_vacuum_insert_threshold=-1",))) == []


def test_no_scale_factor_is_advised_where_the_threshold_decides() -> None:
    # autovacuum_vacuum_threshold = 5000 and a scale factor of 0.001: autovacuum starts at 6,000 dead rows, of
    # which the fixed part is most. 5,000 a day is in the band, but no scale factor would bring autovacuum
    # four times a day: nothing to advise.
    fixed = ("autovacuum_vacuum_threshold=5000", "autovacuum_vacuum_scale_factor=0.001")
    assert advised(churn(dead=5_000, options=fixed)) == []
    # The ladder's steps: 0.0497 of the table rounds down to 0.02, never up.
    assert advised(churn(dead=199_000))[0][2] == 0.02


def test_the_item_says_the_rate_and_gives_the_statement_with_quoted_names() -> None:
    found = advise([churn(dead=120_000, schema="Sales Data", name="order")], SERVER, trigger_fraction=0.5,
                   min_observed_s=3600.0)  # fmt: skip
    verdict = item(found)
    assert verdict.status == "warn"
    assert "Sales Data.order: 120,000 dead rows a day, autovacuum starts at 200,050" in verdict.evidence
    assert verdict.fix is not None
    assert 'ALTER TABLE "Sales Data"."order" SET (autovacuum_vacuum_scale_factor = 0.02)' in verdict.fix
    assert item([]).status == "pass"
