"""Values from clients, cleaned before the audit log stores them and again when it reads them:
valid UTF-8, no control characters, capped with a marker."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.events.audit import AuditLog
from pyteleport.events.sanitize import MAX_TEXT, clean_text, clean_value


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("alice", "alice"),
        ("Zoë 東京", "Zoë 東京"),
        ("\ud800", "\\ud800"),
        ("a\nuser.login success", "a\\nuser.login success"),
        ("\x1b[2J\x00", "\\x1b[2J\\x00"),
        ("tab\there\r", "tab\\there\\r"),
        ("\u2028", "\\u2028"),
        ("\U000e0001", "\\U000e0001"),
    ],
)
def test_text_is_escaped_where_it_is_not_printable(raw: str, shown: str) -> None:
    assert clean_text(raw) == shown


def test_long_text_is_cut_with_a_marker_within_the_limit() -> None:
    marker = f"…[cut from {MAX_TEXT + 10} characters]"
    assert clean_text("x" * (MAX_TEXT + 10)) == "x" * (MAX_TEXT - len(marker)) + marker
    assert clean_text("x" * MAX_TEXT) == "x" * MAX_TEXT
    escaped = clean_text("\x00" * MAX_TEXT)  # four characters each once escaped
    assert len(escaped) == MAX_TEXT and escaped.endswith(f"…[cut from {MAX_TEXT} characters]")
    assert clean_text(escaped) == escaped


def test_containers_are_cleaned_keys_included_and_capped() -> None:
    value = {"a\nb": ["\ud800", 1, None, True], "n": {"deep": "\x07"}, "many": list(range(300))}
    cleaned = clean_value(value)
    assert cleaned["a\\nb"] == ["\\ud800", 1, None, True]
    assert cleaned["n"] == {"deep": "\\x07"}
    assert len(cleaned["many"]) == 257 and cleaned["many"][-1] == "…[44 more items]"


@given(
    st.recursive(
        st.text() | st.integers() | st.none(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    )
)
def test_any_value_cleans_to_printable_utf8_json(value: object) -> None:
    cleaned = clean_value(value)
    text = json.dumps(cleaned, ensure_ascii=False)
    text.encode("utf-8")  # no lone surrogate survives
    assert all(ch.isprintable() for ch in text)
    assert clean_value(cleaned) == cleaned  # reading cleans again: it must change nothing


def since_ever() -> dt.datetime:
    return dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


async def test_a_poisoned_login_event_is_stored_escaped_and_reads_back() -> None:
    audit = AuditLog(MemoryBackend(FakeClock()), FakeClock())
    await audit.emit("user.login", {"user": "\ud800", "error": "x" * 10_000}, success=False)
    [event] = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    assert event["user"] == "\\ud800"
    assert event["error"].endswith("…[cut from 10000 characters]")
    assert len(event["error"]) == MAX_TEXT
    json.dumps(event, ensure_ascii=False).encode("utf-8")


async def test_events_stored_before_cleaning_read_again() -> None:
    """A log poisoned by an earlier version: a lone surrogate in stored JSON, and a value that
    is not JSON at all. Both read back, shown escaped; neither stops the others."""
    backend = MemoryBackend(FakeClock())
    audit = AuditLog(backend, FakeClock())
    await audit.emit("session.start", {"sid": "before"})
    poisoned = json.dumps({"event": "user.login", "code": "T1000W", "user": "\ud800"}).encode()
    await backend.create_many(
        [
            Item(key="/events/09999999999999999998/a", value=poisoned),
            Item(key="/events/09999999999999999999/b", value=b"\xff{not json"),
        ]
    )
    events = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    by_event = {e["event"]: e for e in events}
    assert by_event["user.login"]["user"] == "\\ud800"
    assert by_event["audit.unreadable"]["raw"] == "\\xff{not json"
    assert by_event["session.start"]["sid"] == "before"
    json.dumps(events, ensure_ascii=False).encode("utf-8")
