"""Go-style durations ("12h", "1h30m", "90s", "8h0m0s"), the form Teleport's config and roles use."""

from __future__ import annotations

import datetime as dt
import re

from pyteleport.errors import BadParameterError

_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_UNIT_S = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def parse_duration(text: str) -> dt.timedelta:
    """Parse a Go duration; "d" (days) is accepted as a convenience. Raises BadParameterError."""
    value = text.strip()
    if value in ("0", ""):
        if value == "":
            raise BadParameterError("empty duration")
        return dt.timedelta(0)
    pos = 0
    total = 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_S[match.group(2)]
        pos = match.end()
    if pos != len(value) or pos == 0:
        raise BadParameterError(
            f'invalid duration "{text}": use a number with a unit, such as 30m, 12h or 1h30m'
        )
    try:
        return dt.timedelta(seconds=total)
    except OverflowError as exc:  # past timedelta's 999,999,999 days
        raise BadParameterError(f'duration "{text}" is too long') from exc


def format_duration(delta: dt.timedelta) -> str:
    """Render as Go does for whole seconds: "12h0m0s", "30m0s", "45s"."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{sign}{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{sign}{minutes}m{secs}s"
    return f"{sign}{secs}s"


_HUMAN_UNITS = (("week", 604800), ("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1))


def humanize_duration(delta: dt.timedelta) -> str:
    """Render in words as Teleport's tctl does (durafmt): "30 minutes", "1 hour",
    "2 hours 30 minutes". Whole seconds; zero units are left out."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0 seconds"
    parts = []
    for name, size in _HUMAN_UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {name}{'' if count == 1 else 's'}")
    return " ".join(parts)
