"""Playback as text, as JSON lines, and the real-time player's state machine."""

from __future__ import annotations

import asyncio
import json

import pytest

from pyteleport.client.playback import (
    RESET_TERMINAL,
    Command,
    Player,
    Recording,
    idle_capped_times,
    load_recording,
    parse_keys,
    parse_speed,
    render_json,
    render_text,
)
from pyteleport.errors import BadParameterError
from pyteleport.events.asciicast import Frame, Header, encode_frame, encode_header

HEADER = Header(
    width=80,
    height=24,
    timestamp=1767225600,  # 2026-01-01T00:00:00Z
    session_id="s1",
    user="joe",
    login="root",
    server_hostname="web1",
)
FRAMES = (
    Frame(0.0, "o", "$ "),
    Frame(0.4, "i", "ls\r"),
    Frame(0.5, "o", "a.txt\r\n"),
    Frame(1.25, "r", "100x30"),
    Frame(2.0, "m", "done"),
    Frame(3.5, "o", "$ "),
)
RECORDING = Recording(HEADER, FRAMES)


def file_bytes(frames: tuple[Frame, ...] = FRAMES) -> bytes:
    return (encode_header(HEADER) + "".join(encode_frame(f) for f in frames)).encode()


@pytest.mark.parametrize(
    ("text", "speed"),
    [("0.5x", 0.5), ("1x", 1.0), ("2x", 2.0), ("4x", 4.0), ("8x", 8.0), ("3", 3.0), ("1.5X", 1.5)],
)
def test_speed_accepts_multipliers_and_numbers(text: str, speed: float) -> None:
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-1x", "fast", "", "x", "nan", "inf"])
def test_speed_refuses_what_is_no_positive_number(text: str) -> None:
    with pytest.raises(BadParameterError, match="invalid --speed"):
        parse_speed(text)


@pytest.mark.parametrize(
    ("data", "commands"),
    [
        (b" ", [Command.PAUSE]),
        (b"\x03", [Command.QUIT]),
        (b"\x1b[C", [Command.FORWARD]),
        (b"\x1bOC", [Command.FORWARD]),
        (b"\x1b[D\x1b[D", [Command.BACK, Command.BACK]),
        (b"a \x1b[Az\x03", [Command.PAUSE, Command.QUIT]),  # others, up arrow: nothing
        (b"", []),
    ],
)
def test_keys(data: bytes, commands: list[Command]) -> None:
    assert parse_keys(data) == commands


def test_load_reads_the_file_and_skips_a_torn_tail() -> None:
    recording = load_recording(file_bytes() + b'[9, "o", "tor')
    assert recording.header == HEADER
    assert tuple(recording.frames) == FRAMES
    assert recording.duration_s == 3.5


@pytest.mark.parametrize(
    "header",
    [
        b'{"version": 2, "width": "wide"}',
        b'{"version": 2, "width": 1e999}',
        b'{"version": 2, "teleport": [1]}',
        b'{"version": 2, "env": "xterm"}',
        b"[" * 100_000,
    ],
)
def test_a_malformed_asciicast_header_is_one_clear_error(header: bytes) -> None:
    with pytest.raises(BadParameterError):
        load_recording(header + b"\n")


@pytest.mark.parametrize("event", [b'[[1], "o", "x"]', b'["soon", "o", "x"]', b'[{}, [], "x"]'])
def test_a_malformed_asciicast_event_is_a_torn_tail_or_one_clear_error(event: bytes) -> None:
    try:
        recording = load_recording(file_bytes() + event + b"\n")
    except BadParameterError:
        return
    assert tuple(recording.frames) == FRAMES


def test_load_splits_on_newlines_only() -> None:
    frames = (Frame(0.0, "o", "a\u2028b\x85c\x1c"),)
    assert tuple(load_recording(file_bytes(frames)).frames) == frames


def test_text_is_the_output_stream() -> None:
    assert render_text(RECORDING) == "$ a.txt\r\n$ "


def test_json_lines_are_audit_shaped_events() -> None:
    events = [json.loads(line) for line in render_json(RECORDING)]
    assert [e["event"] for e in events] == [
        "session.start",
        "print",
        "input",
        "print",
        "resize",
        "marker",
        "print",
        "session.end",
    ]
    assert [e["ei"] for e in events] == list(range(8))
    start, end = events[0], events[-1]
    assert (start["code"], start["size"], start["time"]) == (
        "T2000I",
        "80:24",
        "2026-01-01T00:00:00.000Z",
    )
    expected = {"data": "a.txt\r\n", "ms": 500, "sid": "s1", "user": "joe"}
    assert {k: events[3][k] for k in expected} == expected
    assert (events[4]["code"], events[4]["size"]) == ("T2002I", "100:30")
    assert events[5]["label"] == "done"
    assert end["code"] == "T2004I"
    assert end["session_stop"] == "2026-01-01T00:00:03.500Z"
    assert end["participants"] == ["joe"]


@pytest.mark.parametrize(
    ("times", "cap", "expected"),
    [
        ([0.0, 1.0, 10.0], None, [0.0, 1.0, 10.0]),
        ([0.0, 1.0, 10.0], 1.0, [0.0, 1.0, 2.0]),
        ([5.0, 5.5, 100.0], 1.0, [1.0, 1.5, 2.5]),  # a long silence at the start too
        ([], 1.0, []),
    ],
)
def test_idle_time_is_capped(times: list[float], cap: float | None, expected: list[float]) -> None:
    frames = [Frame(t, "o", "x") for t in times]
    assert idle_capped_times(frames, cap) == pytest.approx(expected)


def player(frames: tuple[Frame, ...] = FRAMES, **kw: float) -> tuple[Player, list[str]]:
    written: list[str] = []
    return Player(Recording(HEADER, frames), written.append, **kw), written


async def test_plays_every_output_frame_in_order() -> None:
    p, written = player(speed=1000.0)
    await p.run(None)
    assert "".join(written) == "$ a.txt\r\n$ "
    assert p.finished


async def test_skip_idle_time_plays_a_long_silence_at_once() -> None:
    frames = (Frame(0.0, "o", "before "), Frame(3600.0, "o", "after an hour"))
    p, written = player(frames, idle_cap_s=0.01)
    await asyncio.wait_for(p.run(None), timeout=30)
    assert "".join(written) == "before after an hour"


async def test_quit_stops_the_replay() -> None:
    frames = (Frame(0.0, "o", "shown"), Frame(3600.0, "o", "never"))
    p, written = player(frames)
    commands: asyncio.Queue[Command] = asyncio.Queue()
    task = asyncio.create_task(p.run(commands))
    for _ in range(10_000):  # until the first frame is shown, however long that takes
        if written:
            break
        await asyncio.sleep(0)
    commands.put_nowait(Command.QUIT)
    await asyncio.wait_for(task, timeout=30)
    assert written == ["shown"]


async def test_pause_holds_the_replay_until_resumed() -> None:
    written: list[str] = []
    shown = asyncio.Event()

    def write(text: str) -> None:
        written.append(text)
        shown.set()

    frames = (Frame(0.0, "o", "one "), Frame(0.2, "o", "two"))
    p = Player(Recording(HEADER, frames), write)
    commands: asyncio.Queue[Command] = asyncio.Queue()
    task = asyncio.create_task(p.run(commands))
    await shown.wait()
    commands.put_nowait(Command.PAUSE)
    await asyncio.sleep(0.5)  # the second frame was due at 0.2s
    assert p.paused and written == ["one "]
    commands.put_nowait(Command.PAUSE)
    await asyncio.wait_for(task, timeout=30)
    assert "".join(written) == "one two"


def test_seek_forward_writes_the_skipped_output_at_once() -> None:
    frames = (Frame(0.0, "o", "a"), Frame(7.0, "o", "b"), Frame(14.0, "o", "c"))
    p, written = player(frames)
    p.handle(Command.FORWARD)  # 10 s, as Teleport's player
    assert written == ["ab"]
    assert p.position_s == 10.0
    p.handle(Command.FORWARD)  # not past the end
    assert written == ["ab", "c"]
    assert p.position_s == 14.0 and p.finished


def test_seek_back_replays_from_the_start_on_a_clean_screen() -> None:
    frames = (Frame(0.0, "o", "a"), Frame(7.0, "o", "b"), Frame(14.0, "o", "c"))
    p, written = player(frames)
    p.handle(Command.FORWARD)
    p.handle(Command.FORWARD)
    written.clear()
    p.handle(Command.BACK)  # from 14s to 4s
    assert written == [RESET_TERMINAL, "a"]
    assert p.position_s == 4.0 and not p.finished
    p.handle(Command.BACK)  # not before the start
    assert p.position_s == 0.0
