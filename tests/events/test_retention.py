"""auth_service.recordings.retention: recordings past it are removed, each removal audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pyteleport.clock import FakeClock
from pyteleport.events.retention import RecordingRetention
from pyteleport.events.store import FileRecordingStore
from tests.events.store_conformance import make_recording

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


class Events:
    def __init__(self) -> None:
        self.emitted: list[tuple[str, dict[str, Any]]] = []

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        self.emitted.append((event, dict(fields)))


async def test_only_recordings_past_the_retention_are_removed_and_each_is_audited(
    tmp_path: Path,
) -> None:
    store = FileRecordingStore(tmp_path / "records")
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
