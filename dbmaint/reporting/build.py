"""The report as a file: the live checklists, history gathered, the page rendered and written atomically.

``dbmaint report`` and the service's scheduled page both come through :func:`write_report`.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import psycopg

from dbmaint.check.item import CheckReport
from dbmaint.config import Config
from dbmaint.errors import DbmaintError, Interrupted, StateStoreError
from dbmaint.model import now
from dbmaint.pg import db
from dbmaint.reporting import data, html
from dbmaint.store.history import History

log = logging.getLogger(__name__)


def report_databases(targets: Sequence[db.Target], history: History, since: datetime, *, others: bool) -> list[str]:
    """The configured databases, then (``others``) any other database with runs in the period: a page of
    the store shows everything it recorded, a database no longer configured included."""
    names = list(dict.fromkeys(t.name for t in targets))
    if others:
        recorded = sorted({r.database for r in history.runs_since(since)} - set(names))
        names += recorded
    return names


def checklists(targets: Sequence[db.Target], config: Config, history: History) -> dict[str, CheckReport | str]:
    """Each database's checklist, live; one that cannot be reached gets the reason instead, never an error
    of the whole report (a stop request and a state store failure still end it)."""
    from dbmaint.check import checklist

    found: dict[str, CheckReport | str] = {}
    for target in targets:
        if target.unavailable is not None:
            found[target.name] = f"checklist not run: {target.unavailable}"
            continue
        try:
            with db.connection(target, config.safety) as conn:
                found[target.name] = checklist.run(conn, target.name, config, history)
        except (Interrupted, StateStoreError):
            raise
        except (DbmaintError, psycopg.Error) as exc:
            log.warning("report: no checklist of %s: %s", target.name, db.first_line(str(exc)))
            found[target.name] = f"checklist not run: {db.first_line(str(exc))}"
    return found


def write_report(
    path: Path,
    config: Config,
    targets: Sequence[db.Target],
    history: History,
    *,
    days: int,
    checklist: bool = True,
    others: bool = True,
    until: datetime | None = None,
) -> data.Report:
    """Gather, render and write the page to ``path`` (atomically: a reader never sees half a page)."""
    until = until or now()
    days = max(1, days)
    names = report_databases(targets, history, until - timedelta(days=days), others=others)
    checks: dict[str, CheckReport | str]
    if checklist:
        configured = {t.name for t in targets}
        checks = {name: "not in the configuration: no live checklist" for name in names if name not in configured}
        checks.update(checklists(targets, config, history))
    else:
        checks = {name: "checklist left out of this page" for name in names}
    report = data.gather(history, names, until=until, days=days, checklists=checks)
    write_atomically(path, html.render(report))
    return report


def write_atomically(path: Path, text: str) -> None:
    """A temporary file beside ``path``, then a rename: the old page stays whole until the new one is."""
    path = Path(path)
    directory = path.parent if str(path.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(temporary, 0o644)  # mkstemp makes it 0600: the page is meant to be read by people
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
