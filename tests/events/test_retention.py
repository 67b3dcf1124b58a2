"""auth_service.recordings.retention: recordings past it are removed, each removal audited."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import RecordingError
from pyteleport.events.asciicast import Header, timestamp_of
from pyteleport.events.catalog import CatalogedStore, RecordingCatalog
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.recordingfile import header_to_meta
from pyteleport.events.retention import RecordingRetention
from pyteleport.events.store import FileRecordingStore
from pyteleport.events.textindex import IndexedSession, RecordingIndex, SessionTextIndex
from pyteleport.model.timefmt import format_time
from tests.events.store_conformance import make_recording

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


async def catalogued(directory: Path) -> CatalogedStore:
    store = CatalogedStore(FileRecordingStore(directory), RecordingCatalog(MemoryBackend()))
    await store.catalog.fill(store.store)  # as the auth service's start does
    return store


class Events:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        self.emitted.append((event, dict(fields)))


async def test_only_recordings_past_the_retention_are_removed_and_each_is_audited(
    tmp_path: Path,
) -> None:
    store = await catalogued(tmp_path / "records")
    for sid, age_days in (("old", 100), ("edge", 89), ("new", 1)):
        start = NOW - dt.timedelta(days=age_days)
        await store.upload(sid, await make_recording(tmp_path / "local", sid, start=start))
    events = Events()
    sweeper = RecordingRetention(store, events, FakeClock(NOW), dt.timedelta(days=90))
    assert await sweeper.sweep() == ["old"]
    assert sorted(i.session_id for i in await store.list()) == ["edge", "new"]
    [(event, fields)] = events.emitted
    assert event == "session.recording.delete" and fields["sid"] == "old"
    assert fields["reason"] == "older than auth_service.recordings.retention (2160h0m0s)"
    assert await sweeper.sweep() == []  # nothing more to do


async def test_the_search_index_goes_with_the_recordings_and_so_do_unrecorded_sessions_lines(
    tmp_path: Path,
) -> None:
    store = await catalogued(tmp_path / "records")
    index = RecordingIndex(MemoryBackend(), FakeClock(NOW))

    async def indexed(sid: str, age_days: float, last_line_s: int = 60) -> None:
        start = NOW - dt.timedelta(days=age_days)
        text = SessionTextIndex(index, IndexedSession(sid, "joe", "root", "db1", start, ()))
        text.line(0, "output", f"{sid} says hello")
        text.line(last_line_s * 1000, "output", f"{sid} says bye")
        await text.flush(final=True)

    for sid, age_days in (("old", 100), ("edge", 89)):
        start = NOW - dt.timedelta(days=age_days)
        await store.upload(sid, await make_recording(tmp_path / "local", sid, start=start))
        await indexed(sid, age_days)
    await indexed("unrecorded-old", 100)  # its recording failed: only its lines are left
    await indexed("unrecorded-long", 100, last_line_s=99 * 86400)  # still showing lines lately
    await indexed("unrecorded-new", 1)
    sweeper = RecordingRetention(
        store, Events(), FakeClock(NOW), dt.timedelta(days=90), index=index
    )
    assert await sweeper.sweep() == ["old"]
    hits = (await index.search("says hello")).hits
    assert sorted(h.session.session_id for h in hits) == [
        "edge",
        "unrecorded-long",
        "unrecorded-new",
    ]
    assert await sweeper.sweep() == []
    assert len((await index.search("says")).hits) == 6


async def test_a_stray_key_in_the_index_does_not_stop_the_sweep(tmp_path: Path) -> None:
    backend = MemoryBackend()
    index = RecordingIndex(backend, FakeClock(NOW))
    await backend.put(Item(key="/recordings/textindex/junk", value=b"{}"))
    await backend.put(Item(key="/recordings/textindex/00000000000000001/s1/x", value=b"["))
    store = await catalogued(tmp_path / "records")
    sweeper = RecordingRetention(
        store, Events(), FakeClock(NOW), dt.timedelta(days=90), index=index
    )
    assert await sweeper.sweep() == []
    # the unreadable entry of an old session goes; the key that is none of ours stays
    assert [i.key for i in await backend.get_range("/recordings/", "/recordings0")] == [
        "/recordings/textindex/junk"
    ]


async def test_no_search_lines_go_before_the_stores_older_recordings_are_catalogued(
    tmp_path: Path,
) -> None:
    """A stored recording that is not catalogued yet (its store could not be read at the
    start) would look unrecorded: its lines stay until the catalog knows it."""
    files = FileRecordingStore(tmp_path / "records")
    start = NOW - dt.timedelta(days=10)
    await files.upload("s1", await make_recording(tmp_path / "local", "s1", start=start))
    index = RecordingIndex(MemoryBackend(), FakeClock(NOW))
    text = SessionTextIndex(index, IndexedSession("s1", "joe", "root", "db1", start, ()))
    text.line(0, "output", "s1 says hello")
    await text.flush(final=True)
    store = CatalogedStore(files, RecordingCatalog(MemoryBackend()))
    sweeper = RecordingRetention(store, Events(), FakeClock(NOW), dt.timedelta(days=5), index=index)
    assert await sweeper.sweep() == []
    assert len((await index.search("says hello")).hits) == 1
    await store.catalog.fill(files)
    assert await sweeper.sweep() == ["s1"]  # catalogued: now past the retention, it goes
    assert (await index.search("says hello")).hits == []


async def test_a_recording_with_a_frame_time_no_session_reaches_is_swept_like_any(
    tmp_path: Path,
) -> None:
    """A last frame at 2**62 µs once made the sweep's end-of-session date overflow."""
    sid = "00000000-0000-0000-0000-00000000000b"
    start = NOW - dt.timedelta(days=100)
    header = Header(80, 24, timestamp_of(start), session_id=sid, user="joe", login="root")
    builder = ChunkBuilder(sid)
    data = builder.add(Frame(0, FrameKind.META, header_to_meta(header))) + builder.flush()
    data += builder.add(Frame(1_000_000, FrameKind.OUTPUT, b"a")) + builder.flush()
    data += builder.add(Frame(2**62, FrameKind.OUTPUT, b"b")) + builder.flush(last=True)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / f"{sid}.rec").write_bytes(data)
    store = await catalogued(tmp_path / "records")
    events = Events()
    sweeper = RecordingRetention(store, events, FakeClock(NOW), dt.timedelta(days=90))
    assert await sweeper.sweep() == [sid]
    [(_, fields)] = events.emitted
    assert fields["session_stop"] == format_time(start + dt.timedelta(seconds=1))


async def test_a_sweep_that_fails_in_any_way_is_logged_and_the_next_one_still_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await catalogued(tmp_path / "records")
    sweeper = RecordingRetention(store, Events(), FakeClock(NOW), dt.timedelta(days=90), 0)
    calls: list[int] = []

    async def sweep() -> list[str]:
        calls.append(1)
        if len(calls) == 1:
            raise OverflowError("date value out of range")
        raise asyncio.CancelledError  # stops the loop, as the service's stop does

    monkeypatch.setattr(sweeper, "sweep", sweep)
    with pytest.raises(asyncio.CancelledError):
        await sweeper.run()
    assert len(calls) == 2
    assert "could not remove old recordings: date value out of range" in caplog.text


class AuditDown(Events):
    """An audit log that takes no events while ``down``."""

    down = True

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        if self.down:
            raise ConnectionError("the audit log is unreachable")
        await super().emit(event, fields, success=success)


async def test_a_removal_the_audit_log_does_not_take_leaves_the_recording_for_the_next_sweep(
    tmp_path: Path,
) -> None:
    """Each removal is audited: a sweep whose audit event cannot be written (the audit log is
    down, or the process is killed between the two steps) must not have removed the recording
    already, or the removal is never audited at all."""
    store = await catalogued(tmp_path / "records")
    start = NOW - dt.timedelta(days=100)
    await store.upload("old", await make_recording(tmp_path / "local", "old", start=start))
    events = AuditDown()
    sweeper = RecordingRetention(store, events, FakeClock(NOW), dt.timedelta(days=90))
    with pytest.raises(ConnectionError):
        await sweeper.sweep()
    assert [i.session_id for i in await store.list()] == ["old"]
    events.down = False
    assert await sweeper.sweep() == ["old"]
    assert [fields["sid"] for _, fields in events.emitted] == ["old"]


async def test_a_recording_that_cannot_be_removed_does_not_hold_back_the_others(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """One recording's removal fails (a file the auth service may not remove): it is named in
    the log and tried again at the next sweep, announced once; the others still go."""
    store = await catalogued(tmp_path / "records")
    start = NOW - dt.timedelta(days=100)
    for sid in ("a-stuck", "b-old"):
        await store.upload(sid, await make_recording(tmp_path / "local", sid, start=start))
    real_delete = store.store.delete
    stuck = [True]

    async def delete(session_id: str) -> None:
        if session_id == "a-stuck" and stuck[0]:
            raise RecordingError("cannot remove recording a-stuck.rec: Permission denied")
        await real_delete(session_id)

    store.store.delete = delete  # type: ignore[method-assign]
    events = Events()
    sweeper = RecordingRetention(store, events, FakeClock(NOW), dt.timedelta(days=90))
    assert await sweeper.sweep() == ["b-old"]
    assert "could not remove recording a-stuck: cannot remove" in caplog.text
    assert [i.session_id for i in await store.list()] == ["a-stuck"]
    stuck[0] = False
    assert await sweeper.sweep() == ["a-stuck"]
    assert sorted(fields["sid"] for _, fields in events.emitted) == ["a-stuck", "b-old"]
