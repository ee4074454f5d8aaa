"""Fixtures the unit tests share: a state store in a file of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dbmaint.store.history import History


@pytest.fixture
def store(tmp_path: Path) -> Iterator[History]:
    """A fresh SQLite state store, closed after the test."""
    history = History(f"sqlite:///{tmp_path / 'state.db'}")
    yield history
    history.close()
