from __future__ import annotations

import datetime as dt

import pytest

from pyteleport.model.duration import humanize_duration, parse_duration


@pytest.mark.parametrize(
    "text,words",
    [
        ("30m", "30 minutes"),
        ("1h", "1 hour"),
        ("2h30m", "2 hours 30 minutes"),
        ("1m", "1 minute"),
        ("90s", "1 minute 30 seconds"),
        ("24h", "1 day"),
        ("170h", "1 week 2 hours"),
        ("1h0m1s", "1 hour 1 second"),
    ],
)
def test_humanize_duration_in_teleports_words(text: str, words: str) -> None:
    assert humanize_duration(parse_duration(text)) == words


def test_humanize_duration_of_nothing() -> None:
    assert humanize_duration(dt.timedelta(0)) == "0 seconds"
