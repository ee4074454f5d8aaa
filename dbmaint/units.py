"""Parsing and printing of durations ("5s", "30min") and sizes ("10MB") as PostgreSQL writes them."""

from __future__ import annotations

import math
import re

_DURATION_UNITS = {
    "us": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "sec": 1.0,
    "min": 60.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
}
# PostgreSQL's memory units are powers of 1024 ("kB" as in postgresql.conf).
_SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}
_NUMBER_UNIT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$")


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "100ms", "5s", "30min", "2h" or "7d"."""
    match = _NUMBER_UNIT.match(text)
    unit = match.group(2).lower() if match else ""
    if not match or unit not in _DURATION_UNITS:
        raise ValueError(f"{text!r} is not a duration (use a number and one of ms, s, min, h, d, e.g. '30min')")
    return float(match.group(1)) * _DURATION_UNITS[unit]


def parse_size(text: str) -> int:
    """Bytes in a size such as "8kB", "10MB" or "1.5GB" (1024-based, as PostgreSQL)."""
    match = _NUMBER_UNIT.match(text)
    unit = (match.group(2).lower() or "b") if match else ""
    if not match or unit not in _SIZE_UNITS:
        raise ValueError(f"{text!r} is not a size (use a number and one of B, kB, MB, GB, TB, e.g. '10MB')")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def format_size(size: int | float | None) -> str:
    if size is None:
        return "-"
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if abs(value) < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 120:
        return f"{minutes} min {secs} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


# --- figures for people: every text and HTML output prints numbers through these ---------------------


def format_ms(value: float) -> str:
    """23,412 ms, 23.4 ms, 0.123 ms: three figures below a millisecond, where fast statements live."""
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    return f"{value:.3f} ms"


def format_share(share: float) -> str:
    """A share as a percentage that says 99.9% rather than 100% when it is not all, and <1% rather than 0%."""
    percent = share * 100
    if 99.5 <= percent < 100:
        return f"{math.floor(percent * 10) / 10:.1f}%"
    if 0 < percent < 0.5:
        return "<1%"
    return f"{percent:.0f}%"


def format_count(value: float) -> str:
    return f"{value:,.0f}"


def format_rows(value: float) -> str:
    return "1 row" if round(value) == 1 else f"{value:,.0f} rows"
