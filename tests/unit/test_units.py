"""Numbers for people, printed one way in every output (text, HTML, problems, comparisons)."""

from __future__ import annotations

from dbmaint.units import format_count, format_ms, format_rows, format_share, format_size


def test_milliseconds_keep_three_figures_below_one() -> None:
    assert [format_ms(v) for v in (23412.4, 23.44, 0.1234)] == ["23,412 ms", "23.4 ms", "0.123 ms"]


def test_a_share_never_rounds_to_all_or_nothing() -> None:
    assert [format_share(s) for s in (0.997, 0.9999, 1.0, 0.004, 0.0, 0.423)] == [
        "99.7%",
        "99.9%",
        "100%",
        "<1%",
        "0%",
        "42%",
    ]


def test_counts_rows_and_sizes() -> None:
    assert (format_count(1234567.4), format_rows(1.2), format_rows(2500)) == ("1,234,567", "1 row", "2,500 rows")
    assert [format_size(v) for v in (512, 2048, 5 * 1024**3, None)] == ["512 B", "2.0 kB", "5.0 GB", "-"]
