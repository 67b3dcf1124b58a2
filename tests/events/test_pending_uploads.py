"""Recordings a crashed process left behind are uploaded at the next start, each with a
session.upload event, and the local copy goes only once that is done."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyteleport.backend import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import RecordingError
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.events.catalog import CatalogedStore, RecordingCatalog
from pyteleport.events.store import (
    FileRecordingStore,
    RecordingInfo,
    SpoolUploader,
    complete_pending_uploads,
)
from tests.events.store_conformance import START, make_recording


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START + dt.timedelta(hours=1))


@pytest.fixture
def audit(clock: FakeClock) -> AuditLog:
    return AuditLog(MemoryBackend(clock), clock)


async def uploads(audit: AuditLog) -> list[dict[str, object]]:
    return await audit.search(
        START, START + dt.timedelta(days=1), event_types=[codes.SESSION_UPLOAD]
    )


async def test_every_left_recording_is_uploaded_announced_and_removed(
    tmp_path: Path, audit: AuditLog
) -> None:
    streaming = tmp_path / "streaming"
    await make_recording(streaming, "s1")
    torn = await make_recording(streaming, "s2")
    with torn.open("a") as file:
        file.write('[9.0, "o", "the crash cut th')
    store = FileRecordingStore(tmp_path / "records")

    done = await complete_pending_uploads(streaming, store, audit, "example.test")

    assert sorted(done) == ["s1", "s2"]
    assert sorted(i.session_id for i in await store.list()) == ["s1", "s2"]
    assert list(streaming.iterdir()) == []
    events = await uploads(audit)
    assert sorted(e["sid"] for e in events) == ["s1", "s2"]  # type: ignore[type-var]
    event = next(e for e in events if e["sid"] == "s1")
    assert event["code"] == "T2005I"
    assert event["url"] == (tmp_path / "records" / "s1.rec").resolve().as_uri()
    assert event["cluster_name"] == "example.test"
    assert event["ei"] == codes.SESSION_UPLOAD_INDEX
    assert (event["user"], event["login"], event["server_hostname"]) == ("joe", "root", "web1")


async def test_nothing_left_is_nothing_done(tmp_path: Path, audit: AuditLog) -> None:
    (tmp_path / "streaming").mkdir()
    store = FileRecordingStore(tmp_path / "records")
    assert await complete_pending_uploads(tmp_path / "streaming", store, audit, "c") == []
    assert await uploads(audit) == []


async def test_an_unreadable_file_stays_for_an_operator(tmp_path: Path, audit: AuditLog) -> None:
    streaming = tmp_path / "streaming"
    await make_recording(streaming, "good")
    (streaming / "empty.cast").write_bytes(b"")
    (streaming / "garbage.cast").write_bytes(b"\x00\x01 not a header\n")
    store = FileRecordingStore(tmp_path / "records")
    assert await complete_pending_uploads(streaming, store, audit, "c") == ["good"]
    assert sorted(p.name for p in streaming.iterdir()) == ["empty.cast", "garbage.cast"]


class BrokenStore:
    """A store that cannot be reached this time."""

    async def upload(self, session_id: str, path: Path) -> str:
        raise RecordingError("the store is down")

    async def list(self) -> list[RecordingInfo]:
        return []

    async def read(self, session_id: str) -> bytes:
        raise RecordingError("the store is down")

    async def info(self, session_id: str) -> RecordingInfo:
        raise RecordingError("the store is down")

    async def chunks(self, session_id: str) -> AsyncIterator[bytes]:
        raise RecordingError("the store is down")
        yield b""  # an async generator, as the protocol has it


async def test_a_failed_upload_keeps_the_file_for_the_next_start(
    tmp_path: Path, audit: AuditLog
) -> None:
    streaming = tmp_path / "streaming"
    path = await make_recording(streaming, "s1")
    assert await complete_pending_uploads(streaming, BrokenStore(), audit, "c") == []
    assert path.exists()
    assert await uploads(audit) == []
    store = FileRecordingStore(tmp_path / "records")
    assert await complete_pending_uploads(streaming, store, audit, "c") == ["s1"]


async def test_a_spool_file_that_is_no_recording_is_neither_stored_nor_offered_for_ever(
    tmp_path: Path, audit: AuditLog, caplog: pytest.LogCaptureFixture
) -> None:
    """The catalogued store reads a recording before it stores it: a file that cannot be
    listed (empty: its disk was full) is not put into the store, and the spool stops offering
    it (it stays where it is, with a warning, for an operator)."""
    caplog.set_level(logging.WARNING)
    streaming = tmp_path / "streaming"
    good = await make_recording(streaming, "good")
    empty = streaming / "00000000-0000-0000-0000-000000000001.rec"
    empty.write_bytes(b"")
    store = CatalogedStore(
        FileRecordingStore(tmp_path / "records"), RecordingCatalog(MemoryBackend())
    )
    spool = SpoolUploader(store, audit, "c")
    spool.add("00000000-0000-0000-0000-000000000001", empty, {})
    spool.add("good", good, {})
    assert await spool.send() == ["good"]
    assert spool.pending == 0
    assert (await store.scan()).unreadable == []
    assert [i.session_id for i in await store.list()] == ["good"]
    assert empty.exists() and "is no recording that lists" in caplog.text
