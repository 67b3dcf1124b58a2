from __future__ import annotations

import contextlib
import datetime as dt
import errno
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyteleport.clock import FakeClock
from pyteleport.errors import ConnectionProblemError, RecordingError
from pyteleport.events.asciicast import Frame, Header, encode_frame, encode_header
from pyteleport.events.chunks import ChunkBuilder, FrameKind, read_chain
from pyteleport.events.chunks import Frame as ChunkFrame
from pyteleport.events.recorder import SessionRecorder
from pyteleport.events.recordingfile import decode_recording
from pyteleport.events.store import FileRecordingStore, RecordingStore
from tests.events.store_conformance import (
    LivePartsConformance,
    RecordingStoreConformance,
    make_recording,
)


class TestFileRecordingStore(RecordingStoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RecordingStore]:
        yield FileRecordingStore(tmp_path / "records")


class TestLiveFileRecordingStore(RecordingStoreConformance, LivePartsConformance):
    """A directory given as file:///path takes a running session's parts as they come."""

    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RecordingStore]:
        yield FileRecordingStore(tmp_path / "mounted", live_parts=True)


async def test_a_running_sessions_part_file_is_private_and_gone_once_it_is_stored(
    tmp_path: Path,
) -> None:
    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    path = await make_recording(tmp_path / "local", "s1", body=os.urandom(3000))
    data = path.read_bytes()
    await store.append_part("s1", 0, data[:2000])
    part = tmp_path / "mounted" / "s1.rec.part"
    assert part.read_bytes() == data[:2000] and store.bytes_sent == 2000
    assert stat.S_IMODE(part.stat().st_mode) == 0o600
    await store.upload("s1", path)
    assert sorted(p.name for p in (tmp_path / "mounted").iterdir()) == ["s1.rec"]
    assert await store.read("s1") == data


async def test_a_late_part_leaves_no_part_file_beside_the_stored_recording(
    tmp_path: Path,
) -> None:
    # A part write still under way when the session is stored goes nowhere: it does not make
    # a new part file of zeros and its bytes next to the whole recording.
    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    path = await make_recording(tmp_path / "local", "s1", body=os.urandom(3000))
    data = path.read_bytes()
    await store.append_part("s1", 0, data[:1000])
    await store.upload("s1", path)
    with pytest.raises(RecordingError, match="No such file or directory"):
        await store.append_part("s1", 1000, data[1000:2000])
    assert sorted(p.name for p in (tmp_path / "mounted").iterdir()) == ["s1.rec"]


async def test_the_default_directory_takes_no_parts(tmp_path: Path) -> None:
    # On the spool's disk a copy as the session runs would keep nothing more.
    store = FileRecordingStore(tmp_path / "records")
    await store.append_part("s1", 0, b"anything")
    assert not store.live_parts and not (tmp_path / "records").exists()


async def test_a_part_file_left_beside_its_whole_recording_is_not_listed_twice(
    tmp_path: Path,
) -> None:
    # A crash between storing the recording and removing its part file.
    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    path = await make_recording(tmp_path / "local", "s1")
    await store.upload("s1", path)
    (tmp_path / "mounted" / "s1.rec.part").write_bytes(path.read_bytes()[:100])
    scan = await store.scan()
    assert [i.session_id for i in scan.recordings] == ["s1"] and scan.unreadable == []
    assert await store.read("s1") == path.read_bytes()
    await store.delete("s1")
    assert list((tmp_path / "mounted").iterdir()) == []


async def test_a_link_put_in_place_of_a_part_file_is_not_followed(tmp_path: Path) -> None:
    (tmp_path / "mounted").mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("keep")
    (tmp_path / "mounted" / "s1.rec.part").symlink_to(victim)
    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    with pytest.raises(RecordingError, match="cannot store part of a recording"):
        await store.append_part("s1", 0, b"overwritten")
    assert victim.read_text() == "keep"


async def test_a_link_put_in_place_of_a_recording_is_not_served(tmp_path: Path) -> None:
    # In a directory others can write to, a link named as a session's recording must not make
    # the proxy serve the file it points at (its keys, say) to whoever may play that session.
    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    await store.upload("real", await make_recording(tmp_path / "local", "real"))
    secret = tmp_path / "secret"
    secret.write_bytes(b"PRIVATE KEY")
    for name in ("s1.rec", "s2.rec.part"):
        (tmp_path / "mounted" / name).symlink_to(secret)
    for sid in ("s1", "s2"):
        with pytest.raises(RecordingError, match="is a symbolic link: not read as a recording"):
            await store.read(sid)
        with pytest.raises(RecordingError, match="is a symbolic link"):
            [piece async for piece in store.chunks(sid)]
        with pytest.raises(RecordingError, match="is a symbolic link"):
            await store.info(sid)
    scan = await store.scan()
    assert [i.session_id for i in scan.recordings] == ["real"]
    assert sorted(name for name, _ in scan.unreadable) == ["s1.rec", "s2.rec.part"]


async def test_a_part_the_directory_cannot_take_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "mounted").mkdir(mode=0o700)
    (tmp_path / "mounted" / "s1.rec.part").mkdir()  # not a file: no part goes there
    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    with pytest.raises(RecordingError, match=r"cannot store part of a recording in .*mounted: "):
        await store.append_part("s1", 0, b"x")


async def test_files_are_private_and_the_url_names_the_file(tmp_path: Path) -> None:
    store = FileRecordingStore(tmp_path / "records")
    url = await store.upload("s1", await make_recording(tmp_path / "local", "s1"))
    stored = tmp_path / "records" / "s1.rec"
    assert url == stored.resolve().as_uri()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "records").stat().st_mode) == 0o700
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == ["s1.rec"]


async def test_a_file_that_is_no_recording_is_left_out_of_the_list(tmp_path: Path) -> None:
    store = FileRecordingStore(tmp_path / "records")
    await store.upload("good", await make_recording(tmp_path / "local", "good"))
    (tmp_path / "records" / "junk.cast").write_text("not json\n")
    assert [i.session_id for i in await store.list()] == ["good"]


async def test_a_long_recording_lists_its_last_frame_time(tmp_path: Path) -> None:
    """The duration comes from the last chunk's last frame, found by walking the chunk
    headers."""
    clock = FakeClock()
    header = Header(width=80, height=24, timestamp=0, session_id="long")
    recorder = SessionRecorder.create(tmp_path / "local", header, clock=clock)
    for n in range(3000):
        clock.advance(dt.timedelta(milliseconds=10))
        recorder.output(b"x" * (n % 97) + "\u2028\x85é".encode())
    path = await recorder.aclose()
    assert len(read_chain(path.read_bytes()).chunks) > 20  # one a second: read first and last
    store = FileRecordingStore(tmp_path / "records")
    await store.upload("long", path)
    [info] = await store.list()
    assert info.duration_s == pytest.approx(30.0)


async def test_storing_on_the_same_filesystem_links_instead_of_copying(tmp_path: Path) -> None:
    store = FileRecordingStore(tmp_path / "records")
    source = await make_recording(tmp_path / "local", "s1")
    await store.upload("s1", source)
    stored = tmp_path / "records" / "s1.rec"
    assert stored.stat().st_ino == source.stat().st_ino  # no second copy of a long session
    assert source.exists()  # the caller removes it once the upload is announced
    await store.upload("s1", source)  # a retry after a crash is harmless
    assert stored.read_bytes() == source.read_bytes()
    assert sorted(p.name for p in (tmp_path / "records").iterdir()) == ["s1.rec"]


async def test_another_filesystem_gets_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def cross_device(src: object, dst: object) -> None:
        raise OSError(errno.EXDEV, os.strerror(errno.EXDEV))

    monkeypatch.setattr(os, "link", cross_device)
    store = FileRecordingStore(tmp_path / "records")
    source = await make_recording(tmp_path / "local", "s1")
    await store.upload("s1", source)
    stored = tmp_path / "records" / "s1.rec"
    assert stored.stat().st_ino != source.stat().st_ino
    assert stored.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600


async def test_a_recording_made_before_the_chunked_format_still_lists_and_reads(
    tmp_path: Path,
) -> None:
    records = tmp_path / "records"
    records.mkdir()
    header = Header(width=80, height=24, timestamp=1767225600, session_id="old", user="ann")
    text = (
        encode_header(header)
        + encode_frame(Frame(0.0, "o", "$ "))
        + encode_frame(Frame(2.5, "o", "bye"))
    )
    (records / "old.cast").write_text(text)
    store = FileRecordingStore(records)
    await store.upload("new", await make_recording(tmp_path / "local", "new"))
    listed = {i.session_id: i for i in await store.list()}
    assert set(listed) == {"old", "new"}
    assert listed["old"].user == "ann" and listed["old"].duration_s == 2.5
    assert await store.read("old") == text.encode()


async def test_a_recording_of_format_version_1_still_lists_and_plays(tmp_path: Path) -> None:
    records = tmp_path / "records"
    records.mkdir()
    v1 = Path(__file__).parent / "data" / "recording-v1.rec"
    sid = "0b7e3a52-8d1c-4f6e-9a2b-5c4d3e2f1a00"
    (records / f"{sid}.rec").write_bytes(v1.read_bytes())
    store = FileRecordingStore(records)
    [info] = await store.list()
    assert (info.session_id, info.user, info.server_hostname) == (sid, "ann", "db1")
    assert info.duration_s == 3.5
    header, frames = decode_recording(await store.read(sid))
    assert header.login == "root"
    assert "made-in-v1" in "".join(f.data for f in frames if f.code == "o")


async def test_a_directory_it_cannot_write_fails_its_check(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the directory should be")
    store = FileRecordingStore(blocker / "records")
    with pytest.raises(
        ConnectionProblemError, match=r"recording directory .*records: Not a directory"
    ):
        await store.check()
    assert blocker.is_file()  # nothing was replaced


@pytest.mark.parametrize(
    "meta", [b'{"width": Infinity}', b"[" * 100_000, b'{"width": "wide"}', b"\xff"]
)
async def test_a_recording_with_a_hostile_meta_frame_is_left_out_of_the_list(
    tmp_path: Path, meta: bytes
) -> None:
    store = FileRecordingStore(tmp_path / "records")
    await store.upload("good", await make_recording(tmp_path / "local", "good"))
    builder = ChunkBuilder("bad")
    data = builder.add(ChunkFrame(0, FrameKind.META, meta)) + builder.flush(last=True)
    (tmp_path / "records" / "bad.rec").write_bytes(data)
    assert [i.session_id for i in await store.list()] == ["good"]


async def test_a_fifo_put_in_place_of_a_recording_is_refused_not_waited_on(
    tmp_path: Path,
) -> None:
    # The same directory others can write to: a named pipe named as a session's recording.
    # Opening it for reading waits for a writer that never comes, so play, info and reindex
    # would each hang a worker thread for ever (and enough of them the process's pool). It is
    # not a regular file: refused at once, as the store says it refuses one.
    import asyncio

    store = FileRecordingStore(tmp_path / "mounted", live_parts=True)
    await store.upload("real", await make_recording(tmp_path / "local", "real"))
    fifo = tmp_path / "mounted" / "s1.rec"
    os.mkfifo(fifo, 0o600)

    def release() -> None:  # a writer that comes and goes: what waits on the pipe returns
        with contextlib.suppress(OSError):
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    calls = {
        "read": lambda: store.read("s1"),
        "info": lambda: store.info("s1"),
        "scan": lambda: store.scan(),
    }
    hung = []
    for name, call in calls.items():
        task = asyncio.ensure_future(call())
        done, _ = await asyncio.wait([task], timeout=3)
        if not done:
            hung.append(name)
            while not task.done():
                release()
                await asyncio.sleep(0.05)
        task.exception()  # whatever it ended with, once a writer came: retrieved
    assert hung == [], f"waited on the pipe: {hung}"
    with pytest.raises(RecordingError, match="not a regular file"):
        await store.read("s1")
    scan = await store.scan()
    assert [i.session_id for i in scan.recordings] == ["real"]
    assert [name for name, _ in scan.unreadable] == ["s1.rec"]


async def test_a_spool_file_shorter_than_the_part_file_does_not_replace_it(tmp_path: Path) -> None:
    """As in S3: a host that lost power left a spool file shorter than what it had written to
    the store's part file; storing the spool file keeps what the part file held."""
    store = FileRecordingStore(tmp_path / "records", live_parts=True)
    path = await make_recording(tmp_path / "spool", "s1", body=b"said before the power went\r\n")
    data = path.read_bytes()
    await store.append_part("s1", 0, data)
    with path.open("r+b") as file:
        file.truncate(len(data) - 40)
    await store.upload("s1", path)
    assert await store.read("s1") == data
