"""recordings export: asciicast that decodes as asciicast, a text transcript of the screen, and
JSON lines."""

from __future__ import annotations

import json

from pyteleport.client.export import export
from pyteleport.client.playback import Recording
from pyteleport.events import asciicast
from pyteleport.events.asciicast import Frame, Header

HEADER = Header(width=20, height=3, timestamp=1767225600, session_id="s1", user="joe")


def recording(*frames: Frame) -> Recording:
    return Recording(header=HEADER, frames=frames)


def test_asciicast_export_reads_back_as_the_same_frames() -> None:
    rec = recording(Frame(0.0, "o", "$ ls\r\n"), Frame(0.5, "i", "x"), Frame(1.25, "r", "30x5"))
    text = "".join(export(rec, "asciicast"))
    header, frames = asciicast.decode_bytes(text.encode())
    assert header == HEADER and list(frames) == list(rec.frames)


def test_text_export_is_the_screen_not_the_escape_codes() -> None:
    rec = recording(
        Frame(0.0, "o", "\x1b[31mred\x1b[0m text\r\n"),
        Frame(0.1, "o", "overwritten\rOVER\r\n"),
        Frame(0.2, "o", "one\r\ntwo\r\nthree\r\nfour\r\n"),  # scrolls past a 3-line screen
    )
    lines = "".join(export(rec, "text")).splitlines()
    assert lines == ["red text", "OVERwritten", "one", "two", "three", "four"]


def test_json_export_is_one_event_a_line() -> None:
    rec = recording(Frame(0.0, "o", "hi"))
    events = [json.loads(line) for line in "".join(export(rec, "json")).splitlines()]
    assert [e["event"] for e in events] == ["session.start", "print", "session.end"]
