"""A session whose end the audit log does not take: its recording is still closed and stored,
and the audit failure is what the caller hears."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import errno
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from pyteleport.api.metrics import NoMetrics
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import Clock, FakeClock, SystemClock
from pyteleport.errors import ConnectionProblemError
from pyteleport.events import recorder as recorder_module
from pyteleport.events.catalog import CatalogedStore, RecordingCatalog
from pyteleport.events.recordingfile import decode_recording
from pyteleport.events.store import FileRecordingStore, SpoolUploader
from pyteleport.events.textindex import RecordingIndex
from pyteleport.model.timefmt import format_time
from pyteleport.policy.access import RoleSet
from pyteleport.proxy import recording as recording_module
from pyteleport.proxy.forwarder import ForwardTarget
from pyteleport.proxy.recording import RecordedSession, RecordingSettings
from pyteleport.ssh.relay import SessionExit, SessionRequest

TARGET = ForwardTarget(
    user="joe", host="db1", port=22, remote_addr="127.0.0.1:1", local_addr="127.0.0.1:2"
)


def settings_for(
    tmp_path: Path,
    audit: Any,
    *,
    mode: str = "proxy",
    clock: Clock | None = None,
    index: RecordingIndex | None = None,
) -> RecordingSettings:
    return RecordingSettings(
        mode=mode,
        cluster="example.test",
        server_id="proxy1",
        streaming_dir=tmp_path / "streaming",
        store=FileRecordingStore(tmp_path / "records"),
        audit=audit,
        clock=clock or SystemClock(),
        index=index,
    )


def new_session(settings: RecordingSettings, request: SessionRequest) -> RecordedSession:
    return RecordedSession(settings, TARGET, "root", RoleSet(roles=(), traits={}), request)


class CountingMetrics(NoMetrics):
    """Counts the recordings that failed."""

    recording_failures = 0

    def recording_failed(self) -> None:
        self.recording_failures += 1


class AuditWithoutEnd:
    """Takes every event but the session's end ones."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        if event in ("session.end", "session.data"):
            raise ConnectionProblemError("the audit log is unreachable")
        self.events.append(event)


async def test_a_failed_audit_write_at_the_end_still_closes_and_stores_the_recording(
    tmp_path: Path,
) -> None:
    audit = AuditWithoutEnd()
    settings = settings_for(tmp_path, audit)
    store = settings.store
    request = SessionRequest(kind="shell", term_type="xterm", term_size=(80, 24, 0, 0))
    session = new_session(settings, request)
    await session.started(request)
    session.output(b"recorded before the end", False)
    with pytest.raises(ConnectionProblemError, match="audit log is unreachable"):
        await session.ended(SessionExit(status=0))
    assert list((tmp_path / "streaming").iterdir()) == []  # nothing left open or behind
    stored = await store.read(session.session_id)
    assert b"recorded before the end" in stored
    assert "session.upload" in audit.events


class SlowAudit:
    """Takes every event, slowly (a backend under load)."""

    def __init__(self) -> None:
        self.events: list[str] = []

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        await asyncio.sleep(0.2)
        self.events.append(event)


async def test_shutdown_can_wait_for_sessions_still_ending(tmp_path: Path) -> None:
    audit = SlowAudit()
    settings = settings_for(tmp_path, audit)
    request = SessionRequest(kind="exec", command="true")
    session = new_session(settings, request)
    await session.started(request)
    assert not await settings.ending.wait(0.01)  # started, not ended: shutdown would wait
    ending = asyncio.create_task(session.ended(SessionExit(status=0)))
    assert await settings.ending.wait(10)
    assert ending.done() and "session.end" in audit.events and "session.upload" in audit.events


class AuditFields:
    """Takes every event and keeps the fields of the last of each name."""

    def __init__(self) -> None:
        self.fields: dict[str, Mapping[str, Any]] = {}

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        self.fields[event] = fields


async def test_the_recording_starts_to_the_millisecond_when_the_audit_log_says(
    tmp_path: Path,
) -> None:
    audit = AuditFields()
    clock = FakeClock(dt.datetime(2026, 12, 2, 8, 14, 15, 710_400, tzinfo=dt.UTC))
    settings = settings_for(tmp_path, audit, clock=clock)
    store = settings.store
    request = SessionRequest(kind="exec", command="true")
    session = new_session(settings, request)
    await session.started(request)
    clock.advance(dt.timedelta(seconds=5.809))
    session.output(b"done\n", False)
    await session.ended(SessionExit(status=0))
    info = await store.info(session.session_id)
    end = audit.fields["session.end"]
    assert format_time(info.timestamp) == end["session_start"] == "2026-12-02T08:14:15.710Z"
    stop = info.timestamp + dt.timedelta(seconds=info.duration_s)
    assert format_time(stop) == "2026-12-02T08:14:21.519Z"


class Audit:
    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        pass


async def found_while_running(index: Any, text: str, timeout_s: float = 10) -> list[str]:
    """The lines holding ``text`` once the index has them (polled, at most ``timeout_s``)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        hits = [h.line for h in (await index.search(text)).hits]
        if hits or asyncio.get_running_loop().time() > deadline:
            return hits
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("kind", ["exec", "shell"])
async def test_what_a_quiet_session_showed_is_searchable_while_it_runs(
    tmp_path: Path, kind: str
) -> None:
    """The index is written by a timer, not on the next packet: an exec's command and the
    last lines of a session that then goes quiet are there before it ends (a proxy killed
    then leaves them searchable)."""
    index = RecordingIndex(MemoryBackend())
    settings = settings_for(tmp_path, Audit(), index=index)
    if kind == "exec":
        request = SessionRequest(kind="exec", command="echo quiet-marker; sleep 30")
    else:
        request = SessionRequest(kind="shell", term_type="xterm", term_size=(80, 24, 0, 0))
    session = new_session(settings, request)
    await session.started(request)
    if kind == "shell":
        session.output(b"$ echo quiet-marker\r\nquiet-marker\r\n$ ", False)
    try:
        hits = await found_while_running(index, "quiet-marker")
        assert hits and all("quiet-marker" in line for line in hits), hits
    finally:
        await session.ended(SessionExit(status=0))


@pytest.mark.parametrize(
    ("result", "label"),
    [
        (SessionExit(status=3), "exit status 3"),
        (
            SessionExit(status=None, signal="TERM", core_dumped=True),
            "exit signal TERM (core dumped)",
        ),
        (SessionExit(status=None), None),  # the connection dropped: nothing to say
        (
            SessionExit(status=255, message="ended by the proxy: a limit"),
            "ended by the proxy: a limit",
        ),
    ],
)
async def test_a_recording_ends_with_how_the_session_ended(
    tmp_path: Path, result: SessionExit, label: str | None
) -> None:

    settings = settings_for(tmp_path, Audit())
    store = settings.store
    request = SessionRequest(kind="exec", command="exit 3")
    session = new_session(settings, request)
    await session.started(request)
    session.output(b"bye\n", False)
    await session.ended(result)
    _, frames = decode_recording(await store.read(session.session_id))
    frames = list(frames)
    assert frames[0].data == "bye\n"
    markers = [f.data for f in frames if f.code == "m"]
    assert markers == ([label] if label else [])


class RecordingAudit:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        self.events.append(event)


async def test_a_strict_session_whose_recording_failed_still_ends_audited(
    tmp_path: Path,
) -> None:
    """proxy-sync: the disk fills mid-session, the session is ended for it; its end is still
    audited and its recording file closed (the end's marker is not written to a failed one)."""

    audit = RecordingAudit()
    metrics = CountingMetrics()
    settings = dataclasses.replace(
        settings_for(tmp_path, audit, mode="proxy-sync"), metrics=metrics
    )
    request = SessionRequest(kind="exec", command="cat /dev/zero")
    session = new_session(settings, request)
    await session.started(request)
    recorder = session._recorder
    assert recorder is not None
    recorder._fail(OSError(errno.ENOSPC, "No space left on device"))  # the fault injected
    with pytest.raises(ConnectionProblemError, match="No space left on device"):
        session.output(b"x" * 100, False)
    await session.ended(SessionExit(status=255, message="cannot record the session"))
    assert "session.end" in audit.events and "exec" in audit.events
    assert recorder._closed
    assert metrics.recording_failures == 1  # /metrics: pyteleport_recording_failures_total


async def test_a_session_whose_disk_was_full_from_its_start_leaves_nothing_to_store_for_ever(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spool's disk is full when a session starts: its recording file is created but its
    first chunk (the meta frame) cannot be written, and the session goes on unrecorded (best
    effort). That empty file is no recording: it must not be put into the store (where reindex
    then names it unreadable), nor wait in the spool for the store for ever (retried every
    30 s, counted in pyteleport_recordings_pending, logged as the store's fault)."""
    audit = RecordingAudit()
    store = CatalogedStore(
        FileRecordingStore(tmp_path / "records"), RecordingCatalog(MemoryBackend())
    )
    spool = SpoolUploader(store, audit, "example.test")
    settings = dataclasses.replace(settings_for(tmp_path, audit), store=store, spool=spool)
    writes = recorder_module._write_all

    def disk_full(file: Any, data: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recorder_module, "_write_all", disk_full)
    request = SessionRequest(kind="shell", term_type="xterm", term_size=(80, 24, 0, 0))
    session = new_session(settings, request)
    await session.started(request)  # best effort: the session goes on unrecorded
    monkeypatch.setattr(recorder_module, "_write_all", writes)
    session.output(b"not recorded", False)
    await session.ended(SessionExit(status=0))
    await spool.send()  # the spool's next round
    assert (await store.scan()).unreadable == []
    assert spool.pending == 0


class AuditWithoutUpload(RecordingAudit):
    """Takes every event but session.upload while ``down``."""

    down = True

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        if event == "session.upload" and self.down:
            raise ConnectionProblemError("the audit log is unreachable")
        await super().emit(event, fields, success=success)


async def test_a_stored_recording_leaves_the_spool_only_once_its_upload_is_audited(
    tmp_path: Path,
) -> None:
    """As the spool uploader does ("removed only once the upload is recorded"): a session.upload
    the audit log does not take (or a proxy killed between the two steps) leaves the file in
    the spool, so it is stored again and announced, never stored without its event."""
    audit = AuditWithoutUpload()
    store = FileRecordingStore(tmp_path / "records")
    spool = SpoolUploader(store, audit, "example.test")
    settings = dataclasses.replace(settings_for(tmp_path, audit), store=store, spool=spool)
    request = SessionRequest(kind="exec", command="true")
    session = new_session(settings, request)
    await session.started(request)
    session.output(b"done\n", False)
    with contextlib.suppress(ConnectionProblemError):
        await session.ended(SessionExit(status=0))
    audit.down = False
    await spool.send()  # the spool's next round, the audit log back
    assert "session.upload" in audit.events


async def test_a_spool_read_that_fails_while_shipping_parts_still_closes_and_stores_the_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A store that takes parts as the session runs (file:///path, S3): reading the spool file
    for a part fails (EIO). It is a part not sent, tried again as one, and the session's end
    still closes the recording (its final chunk) and stores it, rather than failing with the
    read's error and leaving the file open in the spool."""
    caplog.set_level(logging.WARNING)
    failed = asyncio.Event()
    reads: list[int] = []

    def unreadable(path: Path, offset: int, size: int) -> bytes:
        reads.append(offset)
        if len(reads) >= 2:  # tried again: the first failure was taken as a part not sent
            loop.call_soon_threadsafe(failed.set)
        raise OSError(errno.EIO, "Input/output error")

    loop = asyncio.get_running_loop()
    monkeypatch.setattr(recording_module, "SHIP_INTERVAL_S", 0.0)
    monkeypatch.setattr(recording_module, "_read_at", unreadable)
    store = FileRecordingStore(tmp_path / "records", live_parts=True)
    settings = dataclasses.replace(settings_for(tmp_path, RecordingAudit()), store=store)
    request = SessionRequest(kind="exec", command="true")
    session = new_session(settings, request)
    await session.started(request)
    session.output(b"recorded\n", False)
    await asyncio.wait_for(failed.wait(), 10)
    await session.ended(SessionExit(status=0))
    _, frames = decode_recording(await store.read(session.session_id))
    assert [f.data for f in frames if f.code == "o"] == ["recorded\n"]
    assert list((tmp_path / "streaming").iterdir()) == []
    assert "cannot send its recording yet" in caplog.text and "Input/output error" in caplog.text
