"""A session's start is kept to the millisecond, from the recording's meta frame to every reader:
the listing (its end is the start plus the duration), the catalog's keys, play and export JSON.
Recordings made before, with a start in whole seconds, read as they did; the asciicast export's
header keeps the integer timestamp asciicast v2 requires."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pyteleport.backend.memory import MemoryBackend
from pyteleport.client.export import export
from pyteleport.client.playback import load_recording, render_json
from pyteleport.client.recordings import format_recordings
from pyteleport.clock import FakeClock
from pyteleport.events import chunks
from pyteleport.events.asciicast import Frame, Header, encode_frame, encode_header
from pyteleport.events.catalog import RecordingCatalog
from pyteleport.events.recorder import SessionRecorder
from pyteleport.events.recordingfile import read_header_and_duration
from pyteleport.events.store import read_info
from tests.events.store_conformance import make_recording

START = dt.datetime(2026, 12, 2, 8, 14, 15, 710_400, tzinfo=dt.UTC)
SHOWN = START.replace(microsecond=710_000)  # as the audit log shows it: to the ms, rounded down
V1_RECORDING = Path(__file__).parents[1] / "events" / "data" / "recording-v1.rec"


def meta_of(path: Path) -> dict[str, object]:
    report = chunks.read_chain(path.read_bytes())
    [meta] = [f for f in chunks.frames_of(report.chunks) if f.kind == chunks.FrameKind.META]
    doc: dict[str, object] = json.loads(meta.data)
    return doc


async def test_a_start_within_a_second_lists_to_the_millisecond(tmp_path: Path) -> None:
    path = await make_recording(tmp_path, "s1", start=START, duration_s=5.809)
    info = read_info(path)
    assert info.timestamp == SHOWN
    [doc] = json.loads(format_recordings([info], "json"))
    assert (doc["session_start"], doc["session_stop"]) == (
        "2026-12-02T08:14:15.710Z",
        "2026-12-02T08:14:21.519Z",  # start + 5.809 s
    )
    assert "Dec  2 2026 08:14:15 UTC" in format_recordings([info])  # Teleport's table: seconds


async def test_the_catalog_keys_the_start_to_the_millisecond(tmp_path: Path) -> None:
    catalog = RecordingCatalog(MemoryBackend())
    await catalog.add(read_info(await make_recording(tmp_path, "s1", start=START)))

    async def listed(since: dt.datetime) -> list[str]:
        return [i.session_id for i in (await catalog.list(since=since)).recordings]

    assert await listed(START.replace(microsecond=500_000)) == ["s1"]
    assert await listed(SHOWN) == ["s1"]  # the range's start is inclusive
    assert await listed(SHOWN + dt.timedelta(milliseconds=1)) == []
    assert [i.timestamp for i in (await catalog.list()).recordings] == [SHOWN]


async def test_play_and_export_json_start_and_end_to_the_millisecond(tmp_path: Path) -> None:
    recording = load_recording((await make_recording(tmp_path, "s1", start=START)).read_bytes())
    events = [json.loads(line) for line in render_json(recording)]
    assert events[0]["event"] == "session.start"
    assert events[0]["time"] == "2026-12-02T08:14:15.710Z"
    end = events[-1]
    assert (end["event"], end["session_start"], end["session_stop"], end["time"]) == (
        "session.end",
        "2026-12-02T08:14:15.710Z",
        "2026-12-02T08:14:18.710Z",  # start + 3 s
        "2026-12-02T08:14:18.710Z",
    )
    exported = [json.loads(line) for line in "".join(export(recording, "json")).splitlines()]
    assert exported == events


async def test_the_asciicast_export_keeps_an_integer_timestamp(tmp_path: Path) -> None:
    recording = load_recording((await make_recording(tmp_path, "s1", start=START)).read_bytes())
    header = json.loads("".join(export(recording, "asciicast")).split("\n", 1)[0])
    assert header["timestamp"] == 1796199255 and type(header["timestamp"]) is int


async def test_a_reader_of_whole_seconds_reads_the_start_it_read_before(tmp_path: Path) -> None:
    """The meta frame's timestamp is a number with a fraction: the int() that readers took of
    it before is the whole seconds they had then."""
    timestamp = meta_of(await make_recording(tmp_path, "s1", start=START))["timestamp"]
    assert timestamp == 1796199255.71
    assert isinstance(timestamp, float) and int(timestamp) == int(START.timestamp())


async def test_a_recording_with_a_start_in_whole_seconds_reads_as_before(tmp_path: Path) -> None:
    header = Header(width=80, height=24, timestamp=1796199255, session_id="old", user="joe")
    recorder = SessionRecorder.create(tmp_path, header, clock=FakeClock(START))
    recorder.output(b"$ ")
    path = await recorder.aclose()
    assert meta_of(path)["timestamp"] == 1796199255
    head, _ = read_header_and_duration(path)
    assert (head.timestamp, type(head.timestamp)) == (1796199255, int)
    assert read_info(path).timestamp == dt.datetime(2026, 12, 2, 8, 14, 15, tzinfo=dt.UTC)


def test_a_version_1_recording_and_an_asciicast_file_start_in_whole_seconds(
    tmp_path: Path,
) -> None:
    head, _ = read_header_and_duration(V1_RECORDING)
    assert (head.timestamp, type(head.timestamp)) == (1796000000, int)
    assert read_info(V1_RECORDING).timestamp == dt.datetime(2026, 11, 30, 0, 53, 20, tzinfo=dt.UTC)
    cast = tmp_path / "old.cast"
    header = Header(width=80, height=24, timestamp=1796199255, session_id="old")
    cast.write_text(encode_header(header) + encode_frame(Frame(1.5, "o", "hi\r\n")))
    info = read_info(cast)
    assert info.timestamp == dt.datetime(2026, 12, 2, 8, 14, 15, tzinfo=dt.UTC)
    assert json.loads(format_recordings([info], "json"))[0]["session_stop"] == (
        "2026-12-02T08:14:16.500Z"
    )
