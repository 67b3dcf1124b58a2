"""A recording whose meta frame names no session is listed under the name it is stored as, and
does not stop retention."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from pyteleport.clock import FakeClock
from pyteleport.events import chunks
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.retention import RecordingRetention
from tests.events.store_conformance import make_recording
from tests.events.test_retention import NOW, Events, catalogued


def naming_no_session(original: bytes, sid: str) -> bytes:
    """``original`` re-chained (no key needed) with "sid": "" in its meta frame."""
    report = chunks.read_chain(original)
    builder = ChunkBuilder(sid)
    out = b""
    for n, chunk in enumerate(report.chunks):
        for frame in chunk.frames:
            if frame.kind == FrameKind.META:
                meta = json.loads(frame.data)
                meta["sid"] = ""
                frame = Frame(frame.offset_us, frame.kind, json.dumps(meta).encode())
            builder.add(frame)
        out += builder.flush(last=n == len(report.chunks) - 1)
    return out


async def test_a_recording_naming_no_session_is_listed_under_its_stored_name(
    tmp_path: Path,
) -> None:
    """victim.rec, rewritten to name no session, is listed as "victim" (not as session "",
    which would hide victim from the listing and from verify --all), and the scan names it."""
    store = await catalogued(tmp_path / "records")
    start = NOW - dt.timedelta(days=100)
    path = await make_recording(tmp_path / "local", "victim", start=start)
    await store.upload("victim", path)
    (tmp_path / "records" / "victim.rec").write_bytes(
        naming_no_session(path.read_bytes(), "victim")
    )
    scan = await store.store.scan()
    assert [i.session_id for i in scan.recordings] == ["victim"], scan
    assert [name for name, _ in scan.misnamed] == ["victim.rec"]


async def test_a_recording_naming_no_session_does_not_stop_retention(tmp_path: Path) -> None:
    """An old recording that names no session is removed for age like the others (listed as
    session "", it made every sweep fail: delete("") is refused)."""
    store = await catalogued(tmp_path / "records")
    start = NOW - dt.timedelta(days=100)
    for sid in ("old", "victim"):
        await store.upload(sid, await make_recording(tmp_path / "local", sid, start=start))
    victim = tmp_path / "records" / "victim.rec"
    victim.write_bytes(naming_no_session(victim.read_bytes(), "victim"))
    await store.catalog.reconcile(store.store)
    sweeper = RecordingRetention(store, Events(), FakeClock(NOW), dt.timedelta(days=90))
    assert sorted(await sweeper.sweep()) == ["old", "victim"]
