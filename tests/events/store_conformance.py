"""What every `RecordingStore` must do, written once and run against each implementation.

A store's test module subclasses `RecordingStoreConformance` and supplies one fixture, ``store``:
an empty store::

    class TestFileRecordingStore(RecordingStoreConformance):
        @pytest.fixture
        async def store(self, tmp_path: Path) -> AsyncIterator[RecordingStore]:
            yield FileRecordingStore(tmp_path / "records")

Recordings to upload are made by the real recorder in ``tmp_path``.
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from pyteleport.clock import FakeClock
from pyteleport.errors import BadParameterError, NotFoundError
from pyteleport.events.asciicast import Header, timestamp_of
from pyteleport.events.recorder import SessionRecorder
from pyteleport.events.recordingfile import decode_recording
from pyteleport.events.store import RecordingStore

START = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)


async def make_recording(
    directory: Path,
    sid: str,
    *,
    start: dt.datetime = START,
    duration_s: float = 3.0,
    kind: str = "ssh",
    command: str = "",
    extra: dict[str, object] | None = None,
    body: bytes = b"",
) -> Path:
    clock = FakeClock(start)
    header = Header(
        width=80,
        height=24,
        timestamp=timestamp_of(start),  # as the proxy writes it
        session_id=sid,
        cluster="example.test",
        user="joe",
        login="root",
        server_hostname="web1",
        server_addr="web1:22",
        kind=kind,
        command=command,
        extra=extra or {},
    )
    recorder = SessionRecorder.create(directory, header, clock=clock)
    recorder.output(b"$ ")
    if body:
        recorder.output(body)
    clock.advance(dt.timedelta(seconds=duration_s))
    recorder.output(b"bye\r\n")
    return await recorder.aclose()


class LivePartsConformance:
    """What a store that takes a running session's parts (``live_parts``) must also do: hold
    the session as it stood at its last part, for a proxy host that never comes back."""

    async def test_the_store_takes_parts(self, store: RecordingStore) -> None:
        assert store.live_parts

    async def test_a_session_whose_proxy_died_is_its_parts(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path, "lost", duration_s=4.0, body=b"before the end\r\n")
        data = path.read_bytes()
        cut = len(data) // 2
        await store.append_part("lost", 0, data[:cut])
        await store.append_part("lost", cut, data[cut:])
        [info] = await store.list()
        assert (info.session_id, info.user, info.duration_s) == ("lost", "joe", 4.0)
        assert await store.read("lost") == data
        assert b"".join([piece async for piece in store.chunks("lost")]) == data
        assert (await store.scan()).unreadable == []
        await store.delete("lost")
        assert await store.list() == []
        with pytest.raises(NotFoundError):
            await store.read("lost")

    async def test_a_running_session_reads_as_far_as_it_was_sent(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path, "live", body=os.urandom(3000))
        data = path.read_bytes()
        await store.append_part("live", 0, data[:1000])
        assert await store.read("live") == data[:1000]
        assert (await store.info("live")).session_id == "live"
        # A part sent again (its first try was not answered) changes nothing.
        await store.append_part("live", 0, data[:1000])
        await store.append_part("live", 1000, data[1000:])
        assert await store.read("live") == data


class RecordingStoreConformance:
    async def test_parts_sent_while_it_ran_are_replaced_by_the_upload(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path / "local", "s1", body=os.urandom(3000))
        data = path.read_bytes()
        await store.append_part("s1", 0, data[:1000])
        await store.append_part("s1", 1000, data[1000:2500])
        await store.upload("s1", path)
        assert await store.read("s1") == data
        assert [i.session_id for i in await store.list()] == ["s1"]

    async def test_a_deleted_recording_is_gone(self, store: RecordingStore, tmp_path: Path) -> None:
        await store.upload("s1", await make_recording(tmp_path / "local", "s1"))
        await store.upload("s2", await make_recording(tmp_path / "local", "s2"))
        await store.delete("s1")
        assert [i.session_id for i in await store.list()] == ["s2"]
        with pytest.raises(NotFoundError):
            await store.read("s1")
        with pytest.raises(NotFoundError):
            await store.delete("s1")

    async def test_a_new_store_lists_nothing(self, store: RecordingStore) -> None:
        assert await store.list() == []

    async def test_a_scan_finds_what_the_listing_lists_and_nothing_unreadable(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        for sid in ("s1", "s2"):
            await store.upload(sid, await make_recording(tmp_path / sid, sid))
        scan = await store.scan()
        assert sorted(i.session_id for i in scan.recordings) == ["s1", "s2"]
        assert scan.unreadable == [] and scan.misnamed == []

    async def test_a_recording_stored_under_another_sessions_name_is_listed_as_named(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        # Session s1's recording stored as s2 (a file put in place of s2's): listed as s2,
        # where verify fails it and play warns, not as a second s1; the scan names it.
        first = await make_recording(tmp_path / "s1", "s1")
        await store.upload("s1", first)
        await store.upload("s2", first)
        for _ in range(2):  # and again, when the store knows its entries already
            scan = await store.scan()
            assert sorted(i.session_id for i in scan.recordings) == ["s1", "s2"]
            [(name, why)] = scan.misnamed
            assert "s2" in name and why == (
                "holds the recording of session s1, not its own: it was put in its place; "
                "'tctl recordings verify s2' names what is wrong"
            )
        assert [i.session_id for i in await store.list()].count("s1") == 1

    async def test_a_working_store_passes_its_check(self, store: RecordingStore) -> None:
        await store.check()

    async def test_upload_then_read_gives_the_same_bytes(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path / "local", "s1")
        url = await store.upload("s1", path)
        assert url
        assert await store.read("s1") == path.read_bytes()

    async def test_upload_leaves_the_local_file_alone(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path / "local", "s1")
        before = path.read_bytes()
        await store.upload("s1", path)
        assert path.read_bytes() == before  # removing it is the caller's decision

    async def test_list_describes_each_recording(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(
            tmp_path / "local", "s1", duration_s=7.5, kind="exec", command="uptime"
        )
        await store.upload("s1", path)
        [info] = await store.list()
        assert info.session_id == "s1"
        assert info.kind == "exec"
        assert (info.user, info.login) == ("joe", "root")
        assert info.participants == ("joe",)
        assert info.server_hostname == "web1"
        assert info.timestamp == START
        assert info.duration_s == pytest.approx(7.5)
        assert info.command == "uptime"

    async def test_a_start_within_a_second_is_listed_to_the_millisecond(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        start = START + dt.timedelta(microseconds=710_900)
        path = await make_recording(tmp_path / "local", "s1", start=start, duration_s=5.5)
        await store.upload("s1", path)
        shown = START + dt.timedelta(milliseconds=710)  # as the audit log shows it: rounded down
        assert [i.timestamp for i in await store.list()] == [shown]
        assert (await store.info("s1")).timestamp == shown

    async def test_participants_come_from_the_header_when_it_names_them(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        extra: dict[str, object] = {"participants": ["joe", "ann"]}
        path = await make_recording(tmp_path / "local", "s1", extra=extra)
        await store.upload("s1", path)
        [info] = await store.list()
        assert info.participants == ("joe", "ann")

    async def test_list_is_newest_first(self, store: RecordingStore, tmp_path: Path) -> None:
        for n, sid in enumerate(["old", "new", "middle"]):
            offset = {"old": 0, "middle": 60, "new": 120}[sid]
            path = await make_recording(
                tmp_path / f"local{n}", sid, start=START + dt.timedelta(seconds=offset)
            )
            await store.upload(sid, path)
        assert [i.session_id for i in await store.list()] == ["new", "middle", "old"]

    async def test_uploading_again_replaces_the_recording(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        first = await make_recording(tmp_path / "a", "s1", duration_s=1)
        second = await make_recording(tmp_path / "b", "s1", duration_s=9)
        await store.upload("s1", first)
        await store.upload("s1", second)  # a retry after a crash must be harmless
        assert await store.read("s1") == second.read_bytes()
        assert [i.duration_s for i in await store.list()] == [pytest.approx(9)]

    async def test_a_torn_recording_is_stored_and_listed(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path / "local", "s1", duration_s=2)
        with path.open("ab") as file:
            file.write(b"PTRC\x01\x00" + bytes(30))  # a chunk cut short by a crash
        await store.upload("s1", path)
        [info] = await store.list()
        assert info.duration_s == pytest.approx(2)
        _, frames = decode_recording(await store.read("s1"))
        assert [f.data for f in frames] == ["$ ", "bye\r\n"]

    async def test_reading_an_unknown_session_is_not_found(self, store: RecordingStore) -> None:
        with pytest.raises(NotFoundError):
            await store.read("no-such-session")
        with pytest.raises(NotFoundError):
            await store.info("no-such-session")
        with pytest.raises(NotFoundError):
            await anext(store.chunks("no-such-session"))

    async def test_info_of_one_recording_is_its_listing_entry(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        for sid in ("s1", "s2"):
            await store.upload(sid, await make_recording(tmp_path / "local", sid, duration_s=3))
        listed = {info.session_id: info for info in await store.list()}
        assert await store.info("s2") == listed["s2"]

    async def test_chunks_put_together_are_the_recording(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        path = await make_recording(tmp_path / "local", "s1", body=os.urandom(600_000))
        await store.upload("s1", path)
        pieces = [chunk async for chunk in store.chunks("s1")]
        assert len(pieces) > 1
        assert b"".join(pieces) == await store.read("s1")

    @pytest.mark.parametrize("sid", ["../etc/passwd", "a/b", ""])
    async def test_a_session_id_that_is_no_name_is_refused(
        self, store: RecordingStore, tmp_path: Path, sid: str
    ) -> None:
        path = await make_recording(tmp_path / "local", "s1")
        with pytest.raises(BadParameterError):
            await store.upload(sid, path)
        with pytest.raises(BadParameterError):
            await store.read(sid)

    async def test_uploading_a_missing_file_is_not_found(
        self, store: RecordingStore, tmp_path: Path
    ) -> None:
        with pytest.raises(NotFoundError):
            await store.upload("s1", tmp_path / "missing.cast")
        assert await store.list() == []
