"""`dbmaint report --html`: one self-contained page of what dbmaint did and what it watches. Pure.

A :class:`~dbmaint.reporting.data.Report` in, a string out. The markup is in the Jinja2 templates of
``templates/``, rendered with autoescaping, so every name and text from the store (tables, statements,
reasons) is escaped without having to remember it; the chart data goes in a ``<script type=
"application/json">`` block through Jinja2's ``tojson``, which escapes ``<``, ``>``, ``&`` and ``'`` so that
no value can end the block. The charts are drawn by uPlot (MIT, vendored in ``static/``, inlined with the
page's own script): the page loads nothing and opens offline. Its Content-Security-Policy allows no
resource at all and only those two scripts, by their hashes. Without JavaScript (or in print) the tables
beside the charts carry the latest figures.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

from dbmaint import __version__
from dbmaint.units import format_count, format_duration, format_ms, format_share, format_size

if TYPE_CHECKING:
    import jinja2

    from dbmaint.reporting.data import Report  # the page reads values only: no store behind them

# The page's scripts, in the order they run: ours first (it collects errors, and draws once the document
# is loaded, when uPlot is there), then the library.
SCRIPTS = ("report.js", "uPlot.iife.min.js")
STYLES = ("uPlot.min.css", "report.css")


@cache
def _environment() -> jinja2.Environment:
    # Imported here, and built once on first use: only a page pays for Jinja2.
    import jinja2

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("dbmaint.reporting", "templates"),
        autoescape=True,  # every template is HTML
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters.update(
        when=when,
        size=lambda value: "-" if value is None else format_size(value),
        count=lambda value: "-" if value is None else format_count(value),
        duration=format_duration,
        ms=lambda value: "-" if value is None else format_ms(value),
        share=lambda value: "-" if value is None else format_share(value),
    )
    return environment


def static(name: str) -> str:
    """A file of ``static/`` (package data), inlined: the page needs no network."""
    return resources.files("dbmaint.reporting").joinpath("static", name).read_text(encoding="utf-8")


def script_hash(script: str) -> str:
    """The CSP source that allows exactly this inline script."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


def policy(scripts: tuple[str, ...]) -> str:
    return "default-src 'none'; style-src 'unsafe-inline'; script-src " + " ".join(script_hash(s) for s in scripts)


def when(moment: datetime | None) -> str:
    """Times on the page are UTC, and say so."""
    if moment is None:
        return "-"
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def render(report: Report) -> str:
    scripts = tuple(static(name) for name in SCRIPTS)
    page = _environment().get_template("report.html.j2")
    return page.render(
        report=report,
        title=f"dbmaint report: {', '.join(d.name for d in report.databases) or 'no database'}",
        policy=policy(scripts),
        css="\n".join(static(name) for name in STYLES),
        scripts=scripts,
        chart_data=report.chart_data(),
        version=__version__,
    )
