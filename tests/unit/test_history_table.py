"""`dbmaint history`'s table: one line per run, every column readable whatever the reason's length."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dbmaint import report
from dbmaint.store.records import RunRecord

STARTED = datetime(2026, 12, 4, 3, 0, tzinfo=UTC)
LONG_REASON = "nothing maintained: every table was skipped (" + "permission denied for table orders, " * 12 + ")"


def record(run_id: int, reason: str | None) -> RunRecord:
    return RunRecord(
        id=run_id, job="vacuum", database="shop", status="skipped", reason=reason, started_at=STARTED,
        finished_at=STARTED + timedelta(seconds=2), host="db1", warnings=None, done=0, skipped=3, failed=0,
    )  # fmt: skip


@pytest.mark.parametrize("columns", [100, 120, 200])
def test_a_long_reason_is_cut_and_every_other_column_keeps_its_text(
    columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    report.print_history([record(41, LONG_REASON), record(42, None)])
    lines = capsys.readouterr().out.splitlines()
    assert all(len(line) <= columns for line in lines)
    row = next(line for line in lines if "41" in line)
    for text in ("41", "2026-12-04 03:00", "vacuum", "shop", "skipped", "0/3/0", "nothing maintained"):
        assert text in row, row
    assert "…" in row  # the reason, cut on its one line
    assert len([line for line in lines if "vacuum" in line]) == 2  # one line per run


def test_on_a_narrow_terminal_no_column_is_squeezed_out(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    report.print_history([record(41, LONG_REASON)])
    out = capsys.readouterr().out
    for text in ("id", "started", "job", "database", "status", "took", "reason", "vacuum", "shop", "skipped", "0/3/0"):
        assert text in out, out
    assert max(len(line) for line in out.splitlines()) <= 80
