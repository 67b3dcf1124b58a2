"""Times from outside (query parameters, flags): RFC 3339 or a date, refused in one line."""

from __future__ import annotations

import datetime as dt

import pytest

from pyteleport.errors import BadParameterError
from pyteleport.model.timefmt import parse_time


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01T10:00:00Z", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),
        ("2026-12-01T12:00:00+02:00", dt.datetime(2026, 12, 1, 10, tzinfo=dt.UTC)),
        ("2026-12-01", dt.datetime(2026, 12, 1, tzinfo=dt.UTC)),
    ],
)
def test_times_are_read_as_utc(text: str, expected: dt.datetime) -> None:
    assert parse_time(text) == expected


@pytest.mark.parametrize(
    "text",
    ["yesterday", "", "2026-13-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
)
def test_a_bad_or_unrepresentable_time_is_a_bad_parameter(text: str) -> None:
    with pytest.raises(BadParameterError, match="invalid time"):
        parse_time(text)
