"""What an operator expects of the recording store and retention: a running session is not
removed by retention, missing AWS credentials are named as such."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from bench.lab import S3Server

from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import RecordingError
from pyteleport.events.catalog import CatalogedStore, RecordingCatalog
from pyteleport.events.retention import RecordingRetention
from pyteleport.events.s3location import parse_sessions_uri
from pyteleport.events.s3store import S3RecordingStore
from pyteleport.events.store import FileRecordingStore
from tests.events.store_conformance import make_recording
from tests.events.test_retention import Events

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class LiveStore(FileRecordingStore):
    """A store that takes a running session's parts, as the S3 store does."""

    live_parts = True

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.parts: dict[str, dict[int, bytes]] = {}

    async def append_part(self, session_id: str, offset: int, data: bytes) -> None:
        self.parts.setdefault(session_id, {})[offset] = data

    async def delete(self, session_id: str) -> None:
        if self.parts.pop(session_id, None) is not None:
            return
        await super().delete(session_id)


async def test_retention_keeps_a_session_that_is_still_running(tmp_path: Path) -> None:
    """A session started two hours ago is still open (quiet: an idle shell sends no new
    parts, so its catalog entry's duration is never brought up to date). With
    ``retention: 1h`` the sweep removes its parts and catalog entry, audits
    ``session.recording.delete`` with a made-up ``session_stop``, and drops its search lines;
    when the session ends its final upload lists it again (seen end to end with libfaketime:
    the audit log then says deleted, the recording is there, its early lines unsearchable).
    Retention is about sessions that *ended* longer ago than the retention."""
    clock = FakeClock(NOW - dt.timedelta(hours=2))
    store = CatalogedStore(
        LiveStore(tmp_path / "records"), RecordingCatalog(MemoryBackend()), clock
    )
    first = await make_recording(tmp_path / "spool", "running", start=clock.now())
    await store.append_part("running", 0, first.read_bytes())  # its first part: listed
    clock.advance(dt.timedelta(hours=2))  # still running, nothing new to send
    events = Events()
    sweeper = RecordingRetention(store, events, clock, dt.timedelta(hours=1))
    assert await sweeper.sweep() == [], events.emitted
    assert [i.session_id for i in await store.list()] == ["running"]


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[S3Server]:
    server = S3Server(tmp_path / "s3")
    server.start()
    yield server
    server.stop()


async def test_missing_credentials_are_named_as_such_not_as_an_unreachable_endpoint(
    s3: S3Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With no AWS credentials anywhere, the store's errors (at start, in /readyz, in each
    upload warning) say that credentials are missing, not that the endpoint cannot be
    reached: it answers fine."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = S3RecordingStore(
        parse_sessions_uri(f"s3://records/c?endpoint={s3.endpoint}&region=us-east-1")
    )
    with pytest.raises(RecordingError) as failed:
        await store.check()
    message = str(failed.value)
    assert "no AWS credentials found: set AWS_ACCESS_KEY_ID" in message, message
    assert "cannot reach" not in message, message
