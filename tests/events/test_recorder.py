"""The session recorder writes a chunked file the reader reads back: frames in order, times
from the clock, characters split across packets joined on read, at most one interval lost to a crash, and a
failing disk handled as its mode says."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import errno
import itertools
import json
import os
import signal
import stat
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyteleport.clock import FakeClock
from pyteleport.errors import BadParameterError, ConnectionProblemError, RecordingError
from pyteleport.events import chunks
from pyteleport.events import recorder as recorder_module
from pyteleport.events.asciicast import Frame, Header, encode_frame
from pyteleport.events.recorder import SessionRecorder
from pyteleport.events.recordingfile import decode_recording
from pyteleport.events.store import read_info

WAIT_S = 10.0


def header(sid: str = "s1") -> Header:
    return Header(width=80, height=24, timestamp=1767225600, session_id=sid, user="joe")


def read(path: Path) -> tuple[Header, list[Frame]]:
    return decode_recording(path.read_bytes())


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait (up to WAIT_S) for what a timer does in the background."""
    for _ in range(int(WAIT_S / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)


def tick(clock: FakeClock, seconds: float) -> None:
    clock.advance(dt.timedelta(seconds=seconds))


async def test_frames_carry_their_kind_and_the_time_since_start(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = SessionRecorder.create(tmp_path, header(), clock=clock)
    recorder.output(b"$ ")
    tick(clock, 0.5)
    recorder.input(b"ls\r")
    tick(clock, 0.25)
    recorder.resize(120, 40)
    recorder.marker("checkpoint")
    tick(clock, 2)
    recorder.output(b"a.txt\r\n")
    path = await recorder.aclose()

    head, frames = read(path)
    assert head == header()
    assert [(f.time_s, f.code, f.data) for f in frames] == [
        (0.0, "o", "$ "),
        (0.5, "i", "ls\r"),
        (0.75, "r", "120x40"),
        (0.75, "m", "checkpoint"),
        (2.75, "o", "a.txt\r\n"),
    ]


async def test_file_is_private_and_named_after_the_session(tmp_path: Path) -> None:
    directory = tmp_path / "streaming"
    recorder = SessionRecorder.create(directory, header("abc-123"))
    path = await recorder.aclose()
    assert path == directory / "abc-123.rec"
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("sid", ["", "../escape", "a/b", ".hidden"])
def test_a_session_id_that_is_no_plain_file_name_is_refused(tmp_path: Path, sid: str) -> None:
    with pytest.raises(BadParameterError):
        SessionRecorder.create(tmp_path, header(sid))


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"caf\xc3", b"\xa9"], "café"),  # 2-byte character split in two
        ([b"\xe2", b"\x82", b"\xac"], "€"),  # 3-byte character in three packets
        ([b"\xf0\x9f", b"\x98\x80!"], "😀!"),
        ([b"ok\xff"], "ok\ufffd"),  # not UTF-8 at all
        ([b"end\xe2\x82"], "end\ufffd"),  # cut off by the end of the session
    ],
)
async def test_utf8_is_decoded_across_packets(
    tmp_path: Path, chunks: list[bytes], expected: str
) -> None:
    recorder = SessionRecorder.create(tmp_path, header(), clock=FakeClock())
    for chunk in chunks:
        recorder.output(chunk)
    _, frames = read(await recorder.aclose())
    assert "".join(f.data for f in frames) == expected


async def test_output_and_input_are_decoded_apart(tmp_path: Path) -> None:
    recorder = SessionRecorder.create(tmp_path, header(), clock=FakeClock())
    recorder.output(b"\xc3")
    recorder.input(b"\xc3")
    recorder.output(b"\xa9")
    recorder.input(b"\xa8")
    _, frames = read(await recorder.aclose())
    assert [(f.code, f.data) for f in frames] == [("o", "é"), ("i", "è")]


async def test_counts_the_bytes_of_each_stream(tmp_path: Path) -> None:
    recorder = SessionRecorder.create(tmp_path, header(), clock=FakeClock())
    recorder.output(b"hello")
    recorder.output(b"\xc3")
    recorder.input(b"ls")
    assert (recorder.session_bytes.output, recorder.session_bytes.input) == (6, 2)
    await recorder.aclose()


@settings(max_examples=60, deadline=None)
@given(
    packets=st.lists(
        st.tuples(
            st.sampled_from(["o", "i"]),
            st.text(max_size=40),
            st.floats(min_value=0, max_value=5, allow_nan=False),
        ),
        max_size=20,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=5),
)
def test_round_trip_whatever_the_packet_boundaries(
    packets: list[tuple[str, str, float]], cuts: list[int]
) -> None:
    """Text sent as UTF-8 in packets cut anywhere (even inside a character) reads back whole."""
    clock = FakeClock()
    with tempfile.TemporaryDirectory() as tmp:
        recorder = SessionRecorder.create(Path(tmp), header(), clock=clock, flush_interval_s=0.3)
        sent = {"o": "", "i": ""}
        for code, text, gap_s in packets:
            tick(clock, gap_s)
            data = text.encode()
            points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
            for start, end in itertools.pairwise(points):
                (recorder.output if code == "o" else recorder.input)(data[start:end])
            sent[code] += text
        path = asyncio.run(recorder.aclose())
        _, frames = read(path)
    for code in ("o", "i"):
        assert "".join(f.data for f in frames if f.code == code) == sent[code]
    times = [f.time_s for f in frames]
    assert times == sorted(times)


@settings(max_examples=200, deadline=None)
@given(
    time_s=st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False)),
    code=st.sampled_from(["o", "i", "r", "m"]),
    data=st.text(),
)
def test_a_frame_is_the_json_array_asciinema_reads(time_s: float, code: str, data: str) -> None:
    line = encode_frame(Frame(time_s, code, data))
    assert line == json.dumps([round(time_s, 6), code, data], ensure_ascii=False) + "\n"


@settings(max_examples=40, deadline=None)
@given(sizes=st.lists(st.tuples(st.integers(1, 1000), st.integers(1, 1000)), max_size=10))
def test_resizes_round_trip(sizes: list[tuple[int, int]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        recorder = SessionRecorder.create(Path(tmp), header(), clock=FakeClock())
        for width, height in sizes:
            recorder.resize(width, height)
        _, frames = read(asyncio.run(recorder.aclose()))
    assert [f.data for f in frames] == [f"{w}x{h}" for w, h in sizes]


def test_lines_wait_in_memory_until_the_interval_has_passed(tmp_path: Path) -> None:
    """Outside an event loop (no timer) the first call once the oldest pending frame is an
    interval old writes the pending frames as a chunk; its own frame starts the next."""
    clock = FakeClock()
    recorder = SessionRecorder.create(tmp_path, header(), clock=clock, flush_interval_s=1.0)
    recorder.output(b"first")
    assert read(recorder.path)[1] == []  # the header is on disk at once, the frame is not
    tick(clock, 0.6)
    recorder.output(b"second")  # the same chunk: the first frame is 0.6 s old
    assert read(recorder.path)[1] == []
    tick(clock, 0.4)
    recorder.output(b"third")
    assert [f.data for f in read(recorder.path)[1]] == ["first", "second"]
    tick(clock, 1.0)
    recorder.output(b"fourth")
    assert [f.data for f in read(recorder.path)[1]] == ["first", "second", "third"]


async def test_an_idle_session_still_reaches_the_disk(tmp_path: Path) -> None:
    recorder = SessionRecorder.create(tmp_path, header(), flush_interval_s=0.05)
    recorder.output(b"last words")
    await eventually(lambda: bool(read(recorder.path)[1]))
    assert [f.data for f in read(recorder.path)[1]] == ["last words"]
    await recorder.aclose()


async def test_calls_after_close_are_ignored_and_close_is_idempotent(tmp_path: Path) -> None:
    recorder = SessionRecorder.create(tmp_path, header(), clock=FakeClock())
    recorder.output(b"in")
    path = await recorder.aclose()
    recorder.output(b"late")
    assert await recorder.aclose() == path
    assert [f.data for f in read(path)[1]] == ["in"]


CRASH_SCRIPT = textwrap.dedent(
    """
    import asyncio, os, signal, sys
    from pathlib import Path
    from pyteleport.events.asciicast import Header
    from pyteleport.events.recorder import SessionRecorder

    async def main():
        header = Header(width=80, height=24, timestamp=0, session_id="crash")
        recorder = SessionRecorder.create(Path(sys.argv[1]), header, flush_interval_s=0.1)
        recorder.output(b"before the crash\\r\\n")
        await asyncio.sleep(0.5)  # several intervals: the timer has written it
        recorder.output(b"written")
        await asyncio.sleep(0.5)  # a chunk closes an interval after its first frame
        recorder.output(b"lost")  # within the interval: still in memory
        os.kill(os.getpid(), signal.SIGKILL)

    asyncio.run(main())
    """
)


def test_a_killed_process_loses_at_most_the_last_interval(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(tmp_path)], capture_output=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()
    head, frames = read(tmp_path / "crash.rec")
    assert head.session_id == "crash"
    assert [f.data for f in frames] == ["before the crash\r\n", "written"]


async def test_a_torn_last_chunk_is_skipped(tmp_path: Path) -> None:
    recorder = SessionRecorder.create(tmp_path, header(), clock=FakeClock())
    recorder.output(b"whole")
    path = await recorder.aclose()
    with path.open("ab") as file:
        file.write(b"PTRC\x01\x00" + bytes(40))  # a write cut short by a crash
    assert [f.data for f in read(path)[1]] == ["whole"]


class FailingFile:
    """A file on a full disk: the header goes in, then writes fail."""

    def __init__(self, fail_after: int = 1, error: int = errno.ENOSPC) -> None:
        self.writes: list[bytes] = []
        self._fail_after = fail_after
        self._error = error
        self._fd = os.open(os.devnull, os.O_WRONLY)

    def write(self, data: bytes) -> int:
        if len(self.writes) >= self._fail_after:
            raise OSError(self._error, os.strerror(self._error))
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._fd

    def close(self) -> None:
        os.close(self._fd)


class ShortWritesFile:
    """A file that takes at most seven bytes a write, as a write interrupted by a signal may."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("wb", buffering=0)
        self.calls = 0

    def write(self, data: bytes) -> int:
        self.calls += 1
        return self._file.write(data[:7]) or 0

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


async def test_writes_that_take_part_of_a_chunk_are_carried_on(tmp_path: Path) -> None:
    path = tmp_path / "s1.rec"
    file = ShortWritesFile(path)
    clock = FakeClock()
    recorder = SessionRecorder(path, file, header(), clock=clock)
    for n in range(5):
        tick(clock, 1)
        recorder.output(f"line {n}\r\n".encode())
    await recorder.aclose()
    assert file.calls > 20
    assert [f.data for f in read(path)[1]] == [f"line {n}\r\n" for n in range(5)]


def failing_recorder(tmp_path: Path, *, strict: bool, clock: FakeClock) -> SessionRecorder:
    recorder = SessionRecorder(
        tmp_path / "s1.cast", FailingFile(), header(), clock=clock, strict=strict
    )
    tick(clock, 1)
    recorder.output(b"header goes out with this one")  # the first write succeeds
    return recorder


async def test_strict_raises_from_the_call_that_hit_the_failure(tmp_path: Path) -> None:
    clock = FakeClock()
    recorder = failing_recorder(tmp_path, strict=True, clock=clock)
    tick(clock, 1)
    with pytest.raises(RecordingError, match=r"cannot record session s1: No space left") as err:
        recorder.output(b"this write fails")
    assert isinstance(err.value, ConnectionProblemError)
    # What the user is told names no path of the proxy's (its log does).
    assert str(err.value) == (
        "cannot record session s1: No space left on device (the proxy's spool)"
    )
    assert recorder.failed
    with pytest.raises(RecordingError):
        recorder.output(b"and so does every later call")
    await recorder.aclose()  # already reported: closing does not raise it again


async def test_best_effort_warns_once_and_stops_recording(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock()
    recorder = failing_recorder(tmp_path, strict=False, clock=clock)
    tick(clock, 1)
    recorder.output(b"this write fails")
    tick(clock, 1)
    recorder.output(b"ignored")
    recorder.resize(10, 10)
    assert recorder.failed
    assert recorder.session_bytes.output == len(b"header goes out with this one") + 23
    await recorder.aclose()
    warnings = [r for r in caplog.records if "cannot record session s1" in r.getMessage()]
    assert len(warnings) == 1


async def test_strict_failure_found_by_the_timer_is_raised_by_the_next_call(
    tmp_path: Path,
) -> None:
    recorder = SessionRecorder(
        tmp_path / "s1.cast",
        FailingFile(fail_after=0),
        header(),
        strict=True,
        clock=FakeClock(),  # never moves: only the timer writes
        flush_interval_s=0.05,
    )
    recorder.output(b"buffered")  # nothing written yet, so nothing fails yet
    await eventually(lambda: recorder.failed)
    with pytest.raises(RecordingError):
        recorder.output(b"x")


async def test_strict_failure_at_close_is_raised_by_close(tmp_path: Path) -> None:
    recorder = SessionRecorder(
        tmp_path / "s1.cast", FailingFile(fail_after=0), header(), strict=True, clock=FakeClock()
    )
    with pytest.raises(RecordingError, match="No space left"):
        await recorder.aclose()


def test_create_in_an_unusable_directory(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(RecordingError, match="cannot record session s1"):
        SessionRecorder.create(blocker, header(), strict=True)
    recorder = SessionRecorder.create(blocker, header(), strict=False)
    assert recorder.failed
    recorder.output(b"goes nowhere")
    asyncio.run(recorder.aclose())


@pytest.fixture
def sync_jobs(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The file descriptors of each worker job that syncs recordings, in order."""
    jobs: list[list[int]] = []
    real = recorder_module._sync_all

    def counting(fds: list[int]) -> dict[int, OSError]:
        jobs.append(fds)
        return real(fds)

    monkeypatch.setattr(recorder_module, "_sync_all", counting)
    return jobs


async def test_fsyncs_of_many_recordings_share_one_worker_job(
    tmp_path: Path, sync_jobs: list[list[int]]
) -> None:
    """A thousand quiet sessions must not be a thousand executor jobs a second; and a file
    whose fsync fails fails its own recording only."""
    loop = asyncio.get_running_loop()
    syncer = recorder_module._syncer(loop)
    files = [os.open(tmp_path / f"f{i}", os.O_WRONLY | os.O_CREAT, 0o600) for i in range(50)]
    bad = os.open(tmp_path / "closed", os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(bad)  # fdatasync on it fails with EBADF
    try:
        futures = [syncer.sync(fd) for fd in [*files, bad]]
        results = await asyncio.gather(*futures, return_exceptions=True)
    finally:
        for fd in files:
            os.close(fd)
    assert results[:-1] == [None] * len(files)
    assert isinstance(results[-1], OSError) and results[-1].errno == errno.EBADF
    # The first request starts a job at once; the 50 made meanwhile go in one more.
    assert [len(job) for job in sync_jobs] == [1, len(files)]


async def test_written_every_second_synced_every_five(
    tmp_path: Path, sync_jobs: list[list[int]]
) -> None:
    clock = FakeClock()
    recorder = SessionRecorder.create(tmp_path, header(), clock=clock)
    for second in range(1, 11):
        tick(clock, 1)
        recorder.output(f"{second}".encode())
        # The frame of a second ago is written (a killed process loses at most a second) ...
        assert [f.data for f in read(recorder.path)[1]][-1:] == [f"{second - 1}"][: second - 1]
        await asyncio.sleep(0.01)
    # ... on disk every five seconds.
    assert sum(len(job) for job in sync_jobs) == 2
    await recorder.aclose()


async def test_a_bulk_session_is_synced_by_volume_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sync_jobs: list[list[int]]
) -> None:
    monkeypatch.setattr(recorder_module, "SYNC_EVERY_BYTES", 256 * 1024)
    recorder = SessionRecorder.create(tmp_path, header(), clock=FakeClock())  # time stands still
    for _ in range(48):
        recorder.output(os.urandom(32768))  # random: stored at about one byte per byte
        await asyncio.sleep(0.01)
    assert sum(len(job) for job in sync_jobs) >= 3
    await recorder.aclose()


async def test_the_chain_head_is_offered_for_signing_each_interval_and_at_the_end(
    tmp_path: Path,
) -> None:
    from pyteleport.events.chunks import read_chain

    points: list[tuple[int, bytes, int, bool]] = []
    clock = FakeClock()
    recorder = SessionRecorder.create(
        tmp_path,
        header(),
        clock=clock,
        checkpoint=lambda *point: points.append(point),
        checkpoint_interval_s=60,
    )
    recorder.output(b"one")
    tick(clock, 30)
    recorder.output(b"two")  # "one" closes a chunk (1 s passed), but no checkpoint yet
    assert points == []
    tick(clock, 31)
    recorder.output(b"three")  # 61 s: a checkpoint of the chunk this call closed ("two")
    path = await recorder.aclose()
    chain = read_chain(path.read_bytes())
    assert [(p[0], p[3]) for p in points] == [(2, False), (3, True)]
    assert points[0][1] == chain.chunks[2].hash and points[0][2] == 30_000_000
    assert points[1][1] == chain.head and chain.chunks[-1].last


@pytest.mark.parametrize(
    "fields",
    [
        {"command": "x" * 300_000},  # an exec request as long as a packet allows
        {"login": "\x01" * 100_000, "command": "\x02" * 100_000},  # each escaped 6 times over
        {"extra": {"participants": ["p" * 300] * 2000, "server_labels": {"k": "v" * 300_000}}},
    ],
)
async def test_a_header_too_large_for_a_chunk_is_cut_and_the_recording_reads_and_verifies(
    tmp_path: Path, fields: dict[str, object]
) -> None:
    """The meta frame is the first chunk alone, and a reader reads the recording's header
    from it: a command longer than a chunk once split it, and the recording's first chunk was
    lost (its listing: "hash mismatch")."""
    clock = FakeClock()
    big = dataclasses.replace(header(), **fields)  # type: ignore[arg-type]
    recorder = SessionRecorder.create(tmp_path, big, clock=clock)
    recorder.output(b"$ ")
    path = await recorder.aclose()
    verdict = chunks.verify(path.read_bytes())
    assert verdict.ok, verdict.text
    info = read_info(path)
    assert info.session_id == "s1" and info.user == "joe"
    head, frames = read(path)
    if "command" in fields:
        command = str(fields["command"])
        assert head.command.startswith(command[:100]) and "cut from" in head.command
        assert len(head.command) <= 4096 and len(info.command) <= 4096
    assert [(f.code, f.data) for f in frames] == [("o", "$ ")]
