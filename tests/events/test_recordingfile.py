"""A chunked recording's listing entry (its header and the time of its last frame) is read from
its first chunk and its end, whatever its length, and a torn or damaged end is still read."""

from __future__ import annotations

import datetime as dt
import io
import os
import tracemalloc
import uuid
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyteleport.errors import BadParameterError
from pyteleport.events import asciicast, chunks, recordingfile
from pyteleport.events.asciicast import Header
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.recordingfile import (
    decode_recording,
    header_to_meta,
    read_header_and_duration,
)

SID = str(uuid.UUID(int=11))
HEADER = Header(80, 24, 1764636000, session_id=SID, user="joe", login="root", kind="ssh")


def build(frames: list[tuple[int, bytes]], *, flush_each: bool, last: bool = True) -> bytes:
    """A recording as the recorder writes it: the meta frame alone in the first chunk, then
    output frames (a chunk each, or as the builder's 256 KiB cut them), then the final chunk."""
    builder = ChunkBuilder(SID)
    out = [builder.add(Frame(0, FrameKind.META, header_to_meta(HEADER))), builder.flush()]
    for offset_us, data in frames:
        out.append(builder.add(Frame(offset_us, FrameKind.OUTPUT, data)))
        if flush_each:
            out.append(builder.flush())
    out.append(builder.flush(last=last))
    return b"".join(out)


def listed(tmp_path: Path, data: bytes) -> tuple[Header, float]:
    path = tmp_path / f"{SID}.rec"
    path.write_bytes(data)
    return read_header_and_duration(path)


def walked_s(data: bytes) -> float:
    """The time of the last frame after the first chunk found by walking every chunk header
    from the start (what a listing read before it looked from the end; like it, a chunk's
    hash is not checked)."""
    first = chunks.decode_chunk(data[: chunks.chunk_length(data)])
    follows = chunks.Follows(first.version, first.session_id)
    file = io.BytesIO(data)
    return recordingfile._last_offset_by_walking(file, len(data), first.size, follows) / 1_000_000


payload = st.one_of(
    st.binary(min_size=1, max_size=64),  # a keystroke or a line
    st.integers(min_value=1, max_value=300_000).map(bytes),  # NUL bytes, any chunking
    st.integers(min_value=1, max_value=300_000).map(os.urandom),  # stored as they are
)


@settings(max_examples=60, deadline=None)
@given(
    frames=st.lists(st.tuples(st.integers(0, 5_000_000), payload), max_size=12),
    flush_each=st.booleans(),
    last=st.booleans(),
)
def test_the_duration_read_from_the_end_is_what_reading_everything_gives(
    tmp_path_factory: pytest.TempPathFactory,
    frames: list[tuple[int, bytes]],
    flush_each: bool,
    last: bool,
) -> None:
    timed, clock = [], 0
    for gap, data in frames:
        clock += gap
        timed.append((clock, data))
    data = build(timed, flush_each=flush_each, last=last)
    header, duration_s = listed(tmp_path_factory.mktemp("rec"), data)
    assert (header.session_id, header.user) == (SID, "joe")
    assert duration_s == (timed[-1][0] / 1_000_000 if timed else 0.0)
    assert duration_s == walked_s(data)


@settings(max_examples=60, deadline=None)
@given(cut=st.integers(min_value=1, max_value=4000), junk=st.binary(max_size=100))
def test_a_torn_or_damaged_end_gives_the_last_whole_chunks_time(
    tmp_path_factory: pytest.TempPathFactory, cut: int, junk: bytes
) -> None:
    data = build([(n * 1_000_000, b"line %d\r\n" % n) for n in range(1, 60)], flush_each=True)
    torn = data[: max(len(data) - cut, 0)] + junk
    first_chunk = len(build([], flush_each=True, last=False))
    if len(torn) < first_chunk:
        return  # not even the meta frame: nothing to list (refused, as before)
    _, duration_s = listed(tmp_path_factory.mktemp("rec"), torn)
    assert duration_s == walked_s(torn)


def test_the_end_of_a_long_recording_is_read_without_walking_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three hours of a line a second: 10,800 chunks, of which a listing reads the first and
    the last two (the final one is empty), within its first 64 KiB window."""
    data = build([(n * 1_000_000, b"$ ls\r\nfile\r\n") for n in range(1, 10801)], flush_each=True)
    read = []

    class CountingFile(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            out = super().read(size)
            read.append(len(out))
            return out

    walked = []
    monkeypatch.setattr(recordingfile, "_last_offset_by_walking", lambda *a: walked.append(a) or 0)
    _, duration_s = recordingfile._chunked_info(CountingFile(data))
    assert duration_s == 10800.0 and walked == []
    assert sum(read) <= 2 * 64 * 1024 < len(data)


def damage_of(data: bytes) -> recordingfile.Damage | None:
    return recordingfile.read_recording(data)[2]


def test_a_recording_read_to_its_final_chunk_has_no_damage() -> None:
    assert damage_of(build([(1_000, b"a"), (2_000, b"b")], flush_each=True)) is None


def test_a_recording_without_its_final_chunk_ends_early() -> None:
    damage = damage_of(build([(1_000, b"a")], flush_each=True, last=False))
    assert damage == recordingfile.Damage("the session's final chunk is missing", ends_early=True)


def test_a_torn_last_chunk_ends_early_where_it_starts() -> None:
    data = build([(1_000, b"a"), (2_000, b"b")], flush_each=True)
    whole = build([(1_000, b"a")], flush_each=True, last=False)
    damage = damage_of(data[: len(whole) + 10])
    expected = f"chunk 2 (at byte {len(whole)}) is cut short"
    assert damage == recordingfile.Damage(expected, ends_early=True)


def test_a_flipped_byte_is_damage_named_as_verify_names_it() -> None:
    noise = os.urandom(40)  # stored as it is: zstd would not shrink it
    data = bytearray(build([(1_000, noise), (2_000, b"b")], flush_each=True))
    at = data.index(noise)
    data[at] ^= 0x01
    damage = damage_of(bytes(data))
    assert damage is not None and not damage.ends_early
    assert damage.problem.startswith("chunk 1 (at byte ")
    assert damage.problem.endswith(": hash mismatch")


def test_a_torn_chunk_after_the_final_one_is_damage_not_an_early_end() -> None:
    data = build([(1_000, b"a")], flush_each=True)
    damage = damage_of(data + data[:20])
    assert damage is not None and not damage.ends_early


def test_an_asciicast_recording_reports_no_damage() -> None:
    cast = b'{"version": 2, "width": 80, "height": 24}\n[0.5, "o", "hi"]\n[1, "o", "to'
    assert damage_of(cast) is None


def test_a_frame_time_no_session_reaches_is_not_the_recordings_end(tmp_path: Path) -> None:
    """A frame at 2**62 µs (more than a century after the start) is damage, not the end: the
    listing ends at the last frame before it, and so every date it makes stays a date."""
    data = build([(1_000_000, b"a"), (2**62, b"b")], flush_each=True)
    header, duration_s = listed(tmp_path, data)
    assert header.session_id == SID and duration_s == 1.0
    header.start + dt.timedelta(seconds=duration_s)  # no OverflowError


@pytest.mark.parametrize("time", ["1e999", "NaN", "-Infinity", "-1", "4e9"])
def test_an_asciicast_frame_at_a_time_no_session_reaches_is_not_its_end(
    tmp_path: Path, time: str
) -> None:
    path = tmp_path / f"{SID}.cast"
    header = '{"version": 2, "width": 80, "height": 24, "timestamp": 1764636000}'
    path.write_text(f'{header}\n[2.5, "o", "a"]\n[{time}, "o", "b"]\n')
    _, duration_s = read_header_and_duration(path)
    assert duration_s == 2.5
    with pytest.raises(BadParameterError, match="malformed recording event"):
        asciicast.decode_frame(f'[{time}, "o", "b"]')


def test_a_start_and_any_frame_time_after_it_make_a_date() -> None:
    last = asciicast.checked_timestamp(asciicast.LAST_TIMESTAMP)
    Header(80, 24, last).start + dt.timedelta(seconds=asciicast.MAX_OFFSET_S)
    with pytest.raises(ValueError, match="no date between 1970 and"):
        asciicast.checked_timestamp(asciicast.LAST_TIMESTAMP + 1)


def test_a_cast_whose_last_line_never_ends_is_read_in_bounded_memory(tmp_path: Path) -> None:
    """A last line of 40 MiB with no newline (a torn write, or a hostile file) is no frame: the
    listing ends at the frame before it, without gathering the line piece by piece (which
    copied it once for every 64 KiB read: quadratic)."""
    path = tmp_path / f"{SID}.cast"
    header = '{"version": 2, "width": 80, "height": 24, "timestamp": 1764636000}'
    with path.open("w") as file:
        file.write(f'{header}\n[2.5, "o", "a"]\n[3.0, "o", "')
        file.write("x" * (40 * 1024 * 1024))
    tracemalloc.start()
    try:
        _, duration_s = read_header_and_duration(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert duration_s == 2.5
    assert peak < 16 * 1024 * 1024, peak


def test_a_header_line_that_never_ends_is_refused_without_reading_it_whole(
    tmp_path: Path,
) -> None:
    path = tmp_path / f"{SID}.cast"
    path.write_text('{"version": 2, "width": 80, "height": 24, "command": "' + "x" * 10**7)
    tracemalloc.start()
    try:
        with pytest.raises(BadParameterError, match="header"):
            read_header_and_duration(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024, peak


def test_an_asciicast_recording_is_walked_a_line_at_a_time(tmp_path: Path) -> None:
    """Recordings made before the chunked format play and export from the bytes as stored,
    without a second copy of the whole file as text (60 MB of frames held about four times
    over before)."""
    header = '{"version": 2, "width": 80, "height": 24, "timestamp": 1764636000}\n'
    line = '[1.5, "o", "' + "é" * 200 + '\\r\\n"]\n'
    data = (header + line * 150_000).encode()
    tracemalloc.start()
    try:
        frames = recordingfile.StoredFrames(data)
        count = 0
        for frame in frames:
            count += 1
            last = frame
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 150_000 and last.data == "é" * 200 + "\r\n"
    assert peak < len(data) // 4, (peak, len(data))


def test_a_tail_of_magic_numbers_is_not_tried_at_every_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """8 MiB of the chunk magic after a recording (junk appended, or a hostile file) once made
    the listing try a chunk header at each of its two million places: a few seconds for one
    recording. The listing still ends at the last whole chunk."""
    data = build([(1_000_000, b"a"), (2_000_000, b"b")], flush_each=True)
    real = recordingfile.chunks.read_header
    calls: list[int] = []

    def counted(head: bytes, *args: Any) -> object:
        calls.append(1)
        return real(head, *args)

    monkeypatch.setattr(recordingfile.chunks, "read_header", counted)
    _, duration_s = listed(tmp_path, data + b"PTRC" * (2 * 1024 * 1024))
    assert duration_s == 2.0
    assert len(calls) < 10_000, len(calls)


def test_an_asciicast_listing_takes_its_length_from_the_last_well_formed_frame(
    tmp_path: Path,
) -> None:
    """As docs/recording-format.md says: a malformed line in the middle is skipped for the
    listing (the frame after it is the end), while playback stops at it."""
    path = tmp_path / f"{SID}.cast"
    header = '{"version": 2, "width": 80, "height": 24, "timestamp": 1764636000}'
    path.write_text(f'{header}\n[1.0, "o", "a"]\n[NaN, "o", "b"]\n[3.0, "o", "c"]\n')
    _, duration_s = read_header_and_duration(path)
    assert duration_s == 3.0
    with pytest.raises(BadParameterError, match="malformed recording event"):
        decode_recording(path.read_bytes())
