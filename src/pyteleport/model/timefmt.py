"""RFC 3339 timestamps in UTC, as Teleport writes them in resources and events."""

from __future__ import annotations

import datetime as dt

from pyteleport.errors import BadParameterError


def format_time(value: dt.datetime) -> str:
    """ "2026-01-02T03:04:05.123Z" (milliseconds; always UTC)."""
    utc = value.astimezone(dt.UTC)
    # Not strftime's %Y: it writes the year 999 as "999", which no RFC 3339 reader takes.
    return (
        f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d}T{utc.hour:02d}:{utc.minute:02d}:"
        f"{utc.second:02d}.{utc.microsecond // 1000:03d}Z"
    )


def parse_time(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError) as exc:
        raise BadParameterError(f'invalid time "{text}", expected RFC 3339') from exc
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    try:
        return value.astimezone(dt.UTC)
    except OverflowError as exc:  # 0001-01-01T00:00:00+14:00 is before the first UTC day
        raise BadParameterError(f'invalid time "{text}": out of range') from exc
