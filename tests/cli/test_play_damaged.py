"""``tsh play`` and ``tsh recordings export`` of a damaged recording: what precedes the damage,
then one line on stderr that says so, and exit status 1 (0 when the recording only ends early,
as a proxy that stops mid-session leaves it)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path

import pexpect
import pytest

from pyteleport.clock import FakeClock
from pyteleport.events import chunks
from pyteleport.events.asciicast import Header
from pyteleport.events.recorder import SessionRecorder
from tests.auth.apiserver import AuthAPI, serve_auth_api
from tests.cli.test_play import spawn, tsh
from tests.cli.test_recordings_remote import run

SID = "6d1a7c6e-1b1e-4f4e-8f0e-3a2b1c0d9e8f"
FOLLOWS = chunks.Follows(chunks.VERSION, SID)  # what reading a chunk after the first needs
START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
LINES = (b"one\r\n", b"two\r\n", b"three\r\n", b"four\r\n")


def make_recording(directory: Path) -> bytes:
    return asyncio.run(record(directory))


async def record(directory: Path) -> bytes:
    """A finished session whose every line of output is a chunk of its own, 2 s apart."""
    clock = FakeClock(START)
    header = Header(
        width=80, height=24, timestamp=int(START.timestamp()), session_id=SID, user="joe"
    )
    recorder = SessionRecorder.create(directory, header, clock=clock)
    for line in LINES:
        recorder.output(line)
        clock.advance(dt.timedelta(seconds=2))
    path = await recorder.aclose()
    return path.read_bytes()


def chunk_starts(data: bytes) -> list[int]:
    report = chunks.read_chain(data)
    # The meta frame's chunk, then one a line.
    assert report.complete and len(report.chunks) == 1 + len(LINES)
    return [sum(c.size for c in report.chunks[:i]) for i in range(len(report.chunks))]


@pytest.fixture
def flipped(tmp_path: Path) -> tuple[Path, int]:
    """The recording with one byte of chunk 3 (the line "three") changed; where chunk 3 starts."""
    data = bytearray(make_recording(tmp_path / "local"))
    at = chunk_starts(bytes(data))[3]
    data[at + chunks.read_header(bytes(data), at, FOLLOWS).header_len + 2] ^= 0x01
    path = tmp_path / f"flipped-{SID}.rec"
    path.write_bytes(bytes(data))
    return path, at


@pytest.fixture
def truncated(tmp_path: Path) -> Path:
    """The recording cut in the middle of chunk 3, as a proxy killed mid-write leaves it."""
    data = make_recording(tmp_path / "local")
    path = tmp_path / f"truncated-{SID}.rec"
    path.write_bytes(data[: chunk_starts(data)[3] + 10])
    return path


def damaged_line(at: int) -> str:
    return (
        f"WARNING: recording {SID} is damaged at chunk 3 (at byte {at}): hash mismatch; "
        f"shown up to 2.0s; run 'tctl recordings verify {SID}' for details\n"
    )


def test_an_intact_recording_plays_to_its_end_without_a_word(tmp_path: Path) -> None:
    make_recording(tmp_path / "local")
    path = tmp_path / "local" / f"{SID}.rec"
    text = tsh("play", str(path), "--format=text")
    assert (text.returncode, text.stderr) == (0, "")
    assert text.stdout == "one\r\ntwo\r\nthree\r\nfour\r\n"
    as_json = tsh("play", str(path), "--format=json")
    assert (as_json.returncode, as_json.stderr) == (0, "")
    end = json.loads(as_json.stdout.splitlines()[-1])
    assert end["event"] == "session.end" and end["session_stop"] == "2026-01-02T03:04:11.000Z"


def test_text_shows_what_precedes_a_flipped_byte_then_says_so(flipped: tuple[Path, int]) -> None:
    path, at = flipped
    result = tsh("play", str(path), "--format=text")
    assert result.stdout == "one\r\ntwo\r\n"
    assert result.stderr == damaged_line(at)
    assert result.returncode == 1


def test_json_of_a_damaged_recording_claims_no_clean_end(flipped: tuple[Path, int]) -> None:
    path, at = flipped
    result = tsh("play", str(path), "--format=json")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["event"] for e in events] == ["session.start", "print", "print"]
    assert [e["data"] for e in events[1:]] == ["one\r\n", "two\r\n"]
    assert result.stderr == damaged_line(at)
    assert result.returncode == 1


def test_the_real_time_player_says_so_after_the_replay(flipped: tuple[Path, int]) -> None:
    path, at = flipped
    child = spawn("play", str(path), "--speed=8x")
    child.expect_exact("two")
    child.expect_exact(damaged_line(at).replace("\n", "\r\n"))  # stderr shares the terminal
    child.expect_exact(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("text", "one\ntwo\n"),
        ("asciicast", None),
        ("json", None),
    ],
)
def test_export_keeps_what_precedes_the_damage_and_exits_1(
    flipped: tuple[Path, int], tmp_path: Path, fmt: str, expected: str | None
) -> None:
    path, at = flipped
    out = tmp_path / f"out.{fmt}"
    result = tsh("recordings", "export", str(path), f"--format={fmt}", "-o", str(out))
    assert result.stderr == damaged_line(at).replace("shown", "exported")
    assert result.returncode == 1
    written = out.read_text()
    if expected is not None:
        assert written == expected
    else:
        assert "two" in written and "three" not in written
        assert "session.end" not in written


def test_a_recording_cut_short_plays_what_was_written_and_notes_it(truncated: Path) -> None:
    """A torn last chunk is what a proxy killed mid-session leaves: the recording holds all
    that will ever be read of it, so the exit status stays 0, with a note on stderr."""
    at = truncated.stat().st_size - 10
    note = (
        f"WARNING: recording {SID} ends early: chunk 3 (at byte {at}) is cut short (the session "
        "is still running, its proxy stopped mid-session, or the file was cut); shown up to 2.0s; run 'tctl recordings "
        f"verify {SID}' for details\n"
    )
    text = tsh("play", str(truncated), "--format=text")
    assert (text.returncode, text.stdout, text.stderr) == (0, "one\r\ntwo\r\n", note)
    as_json = tsh("play", str(truncated), "--format=json")
    assert (as_json.returncode, as_json.stderr) == (0, note)
    events = [json.loads(line)["event"] for line in as_json.stdout.splitlines()]
    assert events == ["session.start", "print", "print"]
    exported = tsh("recordings", "export", str(truncated), "--format=text")
    assert exported.stdout == "one\ntwo\n"
    assert (exported.returncode, exported.stderr) == (0, note.replace("shown", "exported"))


async def test_play_by_id_of_a_damaged_recording(tmp_path: Path) -> None:
    data = bytearray(await record(tmp_path / "local"))
    at = chunk_starts(bytes(data))[3]
    data[at + chunks.read_header(bytes(data), at, FOLLOWS).header_len + 2] ^= 0x01
    damaged = tmp_path / "upload" / f"{SID}.rec"
    damaged.parent.mkdir()
    damaged.write_bytes(bytes(data))
    api: AuthAPI
    async with serve_auth_api(tmp_path / "auth") as api:
        await api.store.upload(SID, damaged)
        api.login_profile(tmp_path / "home", "auditor")
        code, out, err = await run(tmp_path / "home", "tsh", "play", SID, "--format", "text")
        assert (code, out, err) == (1, "one\r\ntwo\r\n", damaged_line(at))
        # The line names the chunk and the reason as verify does.
        code, out, _ = await run(tmp_path / "home", "tctl", "recordings", "verify", SID)
        assert (code, out) == (1, f"{SID}: chunk 3 (at byte {at}): hash mismatch\n")
