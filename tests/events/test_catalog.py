"""The recordings catalog: a backend entry per stored recording, read a time range at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import BadParameterError, ConnectionProblemError, NotFoundError
from pyteleport.events.asciicast import Frame, Header, encode_frame, encode_header
from pyteleport.events.catalog import PREFIX, CatalogedStore, RecordingCatalog, check_cursor
from pyteleport.events.recordingfile import MAX_NAME, MAX_PARTICIPANTS
from pyteleport.events.store import (
    FileRecordingStore,
    RecordingInfo,
    RecordingStore,
    complete_pending_uploads,
)
from tests.events.store_conformance import START, RecordingStoreConformance, make_recording


def catalogued(directory: Path, backend: MemoryBackend | None = None) -> CatalogedStore:
    return CatalogedStore(
        FileRecordingStore(directory), RecordingCatalog(backend or MemoryBackend())
    )


class TestCatalogedStore(RecordingStoreConformance):
    @pytest.fixture
    async def store(self, tmp_path: Path) -> AsyncIterator[RecordingStore]:
        yield catalogued(tmp_path / "records")


def info(sid: str, start: dt.datetime, *, user: str = "joe", node: str = "db1") -> RecordingInfo:
    return RecordingInfo(
        session_id=sid,
        kind="ssh",
        user=user,
        login="root",
        participants=(user,),
        server_hostname=node,
        timestamp=start,
        duration_s=5.0,
    )


def at(minutes: int) -> dt.datetime:
    return START + dt.timedelta(minutes=minutes)


async def test_a_range_is_read_newest_first_with_its_bounds_half_open() -> None:
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(10):
        await catalog.add(info(f"s{n}", at(n)))
    page = await catalog.list(since=at(2), until=at(7))
    assert [i.session_id for i in page.recordings] == ["s6", "s5", "s4", "s3", "s2"]
    assert page.next == ""
    page = await catalog.list()
    assert [i.session_id for i in page.recordings] == [f"s{n}" for n in range(9, -1, -1)]


async def test_pages_follow_one_another_through_the_cursor() -> None:
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(7):
        await catalog.add(info(f"s{n}", at(0)))  # one start for all: the cursor still moves
    seen: list[str] = []
    after = ""
    for _ in range(10):
        page = await catalog.list(limit=3, after=after)
        seen += [i.session_id for i in page.recordings]
        if not page.next:
            break
        after = page.next
    assert sorted(seen) == [f"s{n}" for n in range(7)] and len(seen) == 7


async def test_what_the_caller_may_not_see_does_not_count_against_the_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("pyteleport.events.catalog.PAGE", 4)  # several backend pages
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(20):
        await catalog.add(info(f"s{n:02d}", at(n), user="joe" if n % 5 == 0 else "ann"))
    page = await catalog.list(limit=3, want=lambda i: i.user == "joe")
    assert [i.session_id for i in page.recordings] == ["s15", "s10", "s05"]
    rest = await catalog.list(limit=3, want=lambda i: i.user == "joe", after=page.next)
    assert [i.session_id for i in rest.recordings] == ["s00"] and rest.next == ""


async def test_a_recording_catalogued_again_has_one_entry_the_latest() -> None:
    backend = MemoryBackend()
    catalog = RecordingCatalog(backend)
    await catalog.add(info("s1", at(0)))
    longer = RecordingInfo(**{**_fields(info("s1", at(0))), "duration_s": 99.0})
    await catalog.add(longer)
    [entry] = (await catalog.list()).recordings
    assert entry.duration_s == 99.0
    assert await catalog.get("s1") == longer
    await catalog.remove("s1")
    assert (await catalog.list()).recordings == []
    assert await backend.get_range("/recordings/", "/recordings0") == []
    await catalog.remove("s1")  # removing twice is harmless
    with pytest.raises(NotFoundError):
        await catalog.get("s1")


def _fields(value: RecordingInfo) -> dict[str, object]:
    return {name: getattr(value, name) for name in RecordingInfo.__slots__}


async def test_started_before_reads_only_the_older_recordings() -> None:
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(6):
        await catalog.add(info(f"s{n}", at(n)))
    older = [i.session_id async for i in catalog.started_before(at(3))]
    assert older == ["s2", "s1", "s0"]


async def test_an_unreadable_entry_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    backend = MemoryBackend()
    catalog = RecordingCatalog(backend)
    await catalog.add(info("s1", at(0)))
    await backend.put(Item(key=f"{PREFIX}00000000000000001/bad", value=b"{not json"))
    assert [i.session_id for i in (await catalog.list()).recordings] == ["s1"]
    assert "skipping unreadable recordings catalog entry" in caplog.text


@pytest.mark.parametrize(
    "cursor", ["", "x", "1/s1", "0" * 17 + "/../../x", "0" * 17 + "/" + "a" * 200]
)
def test_a_cursor_from_outside_is_checked(cursor: str) -> None:
    with pytest.raises(BadParameterError, match="invalid recordings cursor"):
        check_cursor(cursor)


async def test_a_limit_below_one_is_refused() -> None:
    with pytest.raises(BadParameterError, match="bad recordings limit 0"):
        await RecordingCatalog(MemoryBackend()).list(limit=0)


async def test_a_store_of_an_earlier_version_is_catalogued_once(tmp_path: Path) -> None:
    """Recordings stored before the catalog (chunked, and asciicast from before that) are
    listed after the first start; a second start reads nothing."""
    store = FileRecordingStore(tmp_path / "records")
    await store.upload("new", await make_recording(tmp_path / "local", "new", start=at(5)))
    cast = tmp_path / "old.cast"
    header = Header(width=80, height=24, timestamp=int(at(0).timestamp()), session_id="old")
    cast.write_text(encode_header(header) + encode_frame(Frame(1.5, "o", "hi\r\n")))
    await store.upload("old", cast)
    backend = MemoryBackend()
    catalog = RecordingCatalog(backend)
    assert await catalog.fill(store) == 2
    assert [(i.session_id, i.duration_s) for i in (await catalog.list()).recordings] == [
        ("new", pytest.approx(3.0)),
        ("old", pytest.approx(1.5)),
    ]
    assert await catalog.fill(store) == 0  # once per store
    other = FileRecordingStore(tmp_path / "elsewhere")
    await other.upload("moved", await make_recording(tmp_path / "local2", "moved", start=at(9)))
    assert await catalog.fill(other) == 1  # another store: catalogued in its turn


async def test_two_processes_filling_at_once_both_finish(tmp_path: Path) -> None:
    store = FileRecordingStore(tmp_path / "records")
    for n in range(5):
        await store.upload(f"s{n}", await make_recording(tmp_path / f"l{n}", f"s{n}", start=at(n)))
    backend = MemoryBackend()
    await asyncio.gather(
        RecordingCatalog(backend).fill(store), RecordingCatalog(backend).fill(store)
    )
    assert len((await RecordingCatalog(backend).list()).recordings) == 5


async def test_a_stored_recording_is_listed_and_a_removed_one_is_not(tmp_path: Path) -> None:
    store = catalogued(tmp_path / "records")
    path = await make_recording(tmp_path / "local", "s1", duration_s=7)
    await store.upload("s1", path)
    [entry] = (await store.catalog.list()).recordings
    assert (entry.session_id, entry.duration_s) == ("s1", pytest.approx(7))
    await store.delete("s1")
    assert (await store.catalog.list()).recordings == []


async def test_a_recording_gone_from_the_store_leaves_the_catalog_on_its_removal(
    tmp_path: Path,
) -> None:
    store = catalogued(tmp_path / "records")
    await store.upload("s1", await make_recording(tmp_path / "local", "s1"))
    (tmp_path / "records" / "s1.rec").unlink()
    with pytest.raises(NotFoundError):
        await store.delete("s1")
    assert (await store.catalog.list()).recordings == []


async def test_a_running_session_is_listed_from_its_first_part(tmp_path: Path) -> None:
    store = catalogued(tmp_path / "records")
    data = (await make_recording(tmp_path / "local", "s1", duration_s=4)).read_bytes()
    await store.append_part("s1", 0, data)
    [entry] = (await store.catalog.list()).recordings
    assert (entry.session_id, entry.user) == ("s1", "joe")
    await store.append_part("s1", len(data), b"more")  # later parts write no entry
    assert len((await store.catalog.list()).recordings) == 1


async def test_a_participant_reads_only_the_sessions_they_took_part_in() -> None:
    backend = MemoryBackend()
    catalog = RecordingCatalog(backend)
    for n in range(6):
        await catalog.add(info(f"s{n}", at(n), user="joe" if n % 3 == 0 else "ann/x"))
    await catalog.add(info("s8", at(8), user="50%"))  # quoted: no prefix of "50%25"
    shared = RecordingInfo(**{**_fields(info("s9", at(9))), "participants": ("ann/x", "joe")})
    await catalog.add(shared)
    joe = await catalog.list(participant="joe")
    assert [i.session_id for i in joe.recordings] == ["s9", "s3", "s0"]
    ann = await catalog.list(participant="ann/x", limit=2)
    assert [i.session_id for i in ann.recordings] == ["s9", "s5"]
    rest = await catalog.list(participant="ann/x", limit=10, after=ann.next)
    assert [i.session_id for i in rest.recordings] == ["s4", "s2", "s1"]
    assert (await catalog.list(participant="ann")).recordings == []  # no prefix match
    assert (await catalog.list(participant="50%25")).recordings == []
    assert [i.session_id for i in (await catalog.list(participant="50%")).recordings] == ["s8"]
    # joe leaves the shared session's entry when it is catalogued again without him
    await catalog.add(RecordingInfo(**{**_fields(shared), "participants": ("ann/x",)}))
    assert [i.session_id for i in (await catalog.list(participant="joe")).recordings] == [
        "s3",
        "s0",
    ]
    for n in (*range(6), 8, 9):
        await catalog.remove(f"s{n}")
    assert await backend.get_range("/recordings/", "/recordings0") == []


async def test_bounds_at_or_before_1970_take_in_everything_after_them_or_nothing() -> None:
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(3):
        await catalog.add(info(f"s{n}", at(n)))
    long_ago = dt.datetime(1960, 1, 1, tzinfo=dt.UTC)
    for since in (
        long_ago,
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
    ):
        assert len((await catalog.list(since=since)).recordings) == 3
        assert (await catalog.list(until=since)).recordings == []
    assert [i async for i in catalog.started_before(long_ago)] == []


async def test_a_filter_that_matches_little_is_read_a_bounded_part_at_a_time() -> None:
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(30):
        await catalog.add(info(f"s{n:02d}", at(n), node="rare" if n % 10 == 3 else "db1"))
    rare: list[str] = []
    after = ""
    requests = 0
    while requests < 20:
        requests += 1
        page = await catalog.list(
            limit=50, want=lambda i: i.server_hostname == "rare", after=after, scan=4
        )
        rare += [i.session_id for i in page.recordings]
        if not page.next:
            break
        after = page.next
    assert rare == ["s23", "s13", "s03"]
    assert requests >= 30 // 4  # no request read more than four entries


async def test_next_is_given_only_when_another_wanted_recording_follows() -> None:
    catalog = RecordingCatalog(MemoryBackend())
    for n in range(5):
        await catalog.add(info(f"s{n}", at(n), node="db1" if n >= 3 else "db2"))
    page = await catalog.list(limit=2, want=lambda i: i.server_hostname == "db1")
    assert [i.session_id for i in page.recordings] == ["s4", "s3"] and page.next == ""
    page = await catalog.list(limit=2)
    assert page.next != ""


async def test_a_running_sessions_entry_keeps_up_with_it(tmp_path: Path) -> None:
    class Flaky(MemoryBackend):
        down = True

        async def put(self, item: Item) -> Item:
            if self.down:
                raise ConnectionProblemError("database is locked")
            return await super().put(item)

    backend = Flaky()
    clock = FakeClock(START)
    store = CatalogedStore(
        FileRecordingStore(tmp_path / "records"), RecordingCatalog(backend), clock
    )
    data = (await make_recording(tmp_path / "local", "s1", duration_s=1)).read_bytes()
    await store.append_part("s1", 0, data)  # the catalog refuses it: tried with the next part
    assert (await store.catalog.list()).recordings == []
    backend.down = False
    clock.advance(dt.timedelta(seconds=10))
    await store.append_part("s1", len(data), b"x")
    [entry] = (await store.catalog.list()).recordings
    assert entry.duration_s == pytest.approx(10)
    clock.advance(dt.timedelta(seconds=30))
    await store.append_part("s1", len(data) + 1, b"x")  # written a moment ago: not again
    assert (await store.catalog.get("s1")).duration_s == pytest.approx(10)
    clock.advance(dt.timedelta(seconds=31))
    await store.append_part("s1", len(data) + 2, b"x")
    assert (await store.catalog.get("s1")).duration_s == pytest.approx(71)


async def test_a_fill_that_failed_is_tried_again_until_it_succeeds(tmp_path: Path) -> None:
    class Unreachable(FileRecordingStore):
        failures = 2

        async def list(self) -> list[RecordingInfo]:
            if self.failures:
                self.failures -= 1
                raise ConnectionProblemError("the bucket cannot be reached")
            return await super().list()

    store = Unreachable(tmp_path / "records")
    await store.upload("s1", await make_recording(tmp_path / "local", "s1"))
    catalog = RecordingCatalog(MemoryBackend())
    assert not await catalog.filled(store)
    await asyncio.wait_for(catalog.fill_until_done(store, interval_s=0), timeout=10)
    assert await catalog.filled(store) and store.failures == 0
    assert [i.session_id for i in (await catalog.list()).recordings] == ["s1"]


async def test_a_recording_left_in_the_spool_stays_there_until_it_is_catalogued(
    tmp_path: Path,
) -> None:
    """An upload at the next start whose catalog entry the backend refuses leaves the file
    in the spool, for the start after."""

    class Down(MemoryBackend):
        async def put(self, item: Item) -> Item:
            raise ConnectionProblemError("database is locked")

    class Events:
        async def emit(self, event: str, fields: object, *, success: bool = True) -> None:
            pass

    spool = tmp_path / "streaming"
    path = await make_recording(spool, "s1")
    store = catalogued(tmp_path / "records", Down())
    assert await complete_pending_uploads(spool, store, Events(), "example.com") == []
    assert path.exists()
    store = catalogued(tmp_path / "records")
    assert await complete_pending_uploads(spool, store, Events(), "example.com") == ["s1"]
    assert not path.exists()
    assert [i.session_id for i in (await store.catalog.list()).recordings] == ["s1"]


async def test_an_entry_whose_keys_changed_can_be_removed_after_a_failure_half_way() -> None:
    class Failing(MemoryBackend):
        fail = False

        async def delete(self, key: str) -> None:
            if self.fail:
                raise ConnectionProblemError("database is locked")
            await super().delete(key)

    backend = Failing()
    catalog = RecordingCatalog(backend)
    await catalog.add(info("s1", at(0), user="joe"))
    backend.fail = True
    with pytest.raises(ConnectionProblemError):  # joe's key was to go: it could not
        await catalog.add(RecordingInfo(**{**_fields(info("s1", at(0))), "participants": ("ann",)}))
    backend.fail = False
    await catalog.remove("s1")
    assert await backend.get_range("/recordings/", "/recordings0") == []


async def test_reconcile_lists_what_the_store_holds_and_nothing_else(tmp_path: Path) -> None:
    store = catalogued(tmp_path / "records")
    for sid in ("kept", "gone"):
        await store.upload(sid, await make_recording(tmp_path / sid, sid))
    # By hand: one recording copied into the store, one removed from it.
    await store.store.upload("copied", await make_recording(tmp_path / "c", "copied", start=at(5)))
    (tmp_path / "records" / "gone.rec").unlink()
    (tmp_path / "records" / "junk.rec").write_bytes(b"garbage\n")  # no recording at all
    done = await store.catalog.reconcile(store.store)
    assert (done.added, done.removed) == (["copied"], ["gone"])
    [(name, why)] = done.unreadable
    assert name == "junk.rec" and "not a recording" in why, why
    assert [i.session_id for i in (await store.catalog.list()).recordings] == ["copied", "kept"]
    done = await store.catalog.reconcile(store.store)
    assert (done.added, done.removed) == ([], [])  # nothing left to do
    assert await store.catalog.filled(store.store)


async def test_a_recording_naming_thousands_of_participants_is_catalogued_in_bounded_space(
    tmp_path: Path,
) -> None:
    """The participants come from the recording's meta frame: 2,000 names once wrote its entry
    2,000 times, each holding all 2,000 (177 MB). The session's user is kept first."""
    backend = MemoryBackend()
    store = catalogued(tmp_path / "records", backend)
    names = ["joe"] + [f"user-{n}-" + "x" * 300 for n in range(2000)]
    path = await make_recording(tmp_path / "local", "s1", extra={"participants": names})
    await store.upload("s1", path)
    [listed] = (await store.catalog.list()).recordings
    assert listed.participants[0] == "joe"
    assert len(listed.participants) == MAX_PARTICIPANTS
    assert all(len(p) <= MAX_NAME for p in listed.participants)
    items = await backend.get_range("/recordings/", "/recordings0")
    assert len(items) <= MAX_PARTICIPANTS + 2
    assert sum(len(i.value) for i in items) < 4 * 1024 * 1024
    assert [i.session_id for i in (await store.catalog.list(participant="joe")).recordings] == [
        "s1"
    ]
