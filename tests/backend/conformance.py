"""What every `Backend` must do, written once and run against each implementation.

A backend's test module subclasses `BackendConformance` and supplies one fixture, ``backend``: an
empty store that takes its time from the ``clock`` fixture (a `FakeClock`), so leases are tested
by moving the clock, never by sleeping::

    class TestMemoryBackend(BackendConformance):
        @pytest.fixture
        async def backend(self, clock: FakeClock) -> AsyncIterator[Backend]:
            backend = MemoryBackend(clock)
            yield backend
            await backend.close()

Watch events may arrive after the write that caused them returns (a PostgreSQL backend hears of
them through the server), so tests wait for events with a timeout and prove that an event did not
arrive by seeing a later one arrive first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import pytest

from pyteleport.backend import Backend, Event, EventType, Item, prefix_end
from pyteleport.backend.base import WATCH_QUEUE_SIZE
from pyteleport.clock import FakeClock
from pyteleport.errors import (
    AlreadyExistsError,
    BadParameterError,
    CompareFailedError,
    LimitExceededError,
    NotFoundError,
    TeleportError,
)

WAIT_S = 5.0
BAD_KEYS = ["", "users/alice", "relative", "/nul\x00inside", "/lone\ud800surrogate"]


async def next_event(watch: AsyncIterator[Event]) -> Event:
    async with asyncio.timeout(WAIT_S):
        return await anext(watch)


async def remaining_events(watch: AsyncIterator[Event]) -> list[Event]:
    async with asyncio.timeout(WAIT_S):
        return [event async for event in watch]


def described(event: Event) -> tuple[EventType, str]:
    return event.type, event.item.key


async def keys(backend: Backend, start: str = "/", end: str = "0", limit: int = 0) -> list[str]:
    return [item.key for item in await backend.get_range(start, end, limit)]


class BackendConformance:
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock()

    # Reads and writes of one key

    async def test_create_then_get_returns_the_stored_item(self, backend: Backend) -> None:
        created = await backend.create(Item(key="/users/alice", value=b"\x00\xffbinary"))
        assert created.value == b"\x00\xffbinary"
        assert created.revision != ""
        assert await backend.get("/users/alice") == created

    async def test_an_empty_value_is_a_value(self, backend: Backend) -> None:
        await backend.put(Item(key="/empty", value=b""))
        assert (await backend.get("/empty")).value == b""

    async def test_create_refuses_a_key_that_exists(self, backend: Backend) -> None:
        await backend.create(Item(key="/users/alice", value=b"first"))
        with pytest.raises(AlreadyExistsError):
            await backend.create(Item(key="/users/alice", value=b"second"))
        assert (await backend.get("/users/alice")).value == b"first"

    async def test_create_many_creates_all_in_one_write(self, backend: Backend) -> None:
        items = [Item(key=f"/events/{i}", value=f"e{i}".encode()) for i in range(5)]
        created = await backend.create_many(items)
        assert [c.key for c in created] == [i.key for i in items]
        assert len({c.revision for c in created}) == 5
        assert [i.value for i in await backend.get_range("/events/", "/events0")] == [
            f"e{i}".encode() for i in range(5)
        ]

    async def test_create_many_writes_none_if_one_key_exists(self, backend: Backend) -> None:
        await backend.create(Item(key="/events/2", value=b"first"))
        with pytest.raises(AlreadyExistsError):
            await backend.create_many([Item(key=f"/events/{i}", value=b"second") for i in range(4)])
        with pytest.raises(AlreadyExistsError):
            await backend.create_many([Item(key="/events/9", value=b"x")] * 2)
        assert [i.key for i in await backend.get_range("/events/", "/events0")] == ["/events/2"]

    async def test_get_of_a_missing_key_names_it(self, backend: Backend) -> None:
        with pytest.raises(NotFoundError) as caught:
            await backend.get("/users/nobody")
        assert str(caught.value) == 'key "/users/nobody" is not found'

    async def test_put_creates_then_overwrites(self, backend: Backend) -> None:
        await backend.put(Item(key="/roles/admin", value=b"v1"))
        await backend.put(Item(key="/roles/admin", value=b"v2"))
        assert (await backend.get("/roles/admin")).value == b"v2"

    async def test_update_replaces_an_existing_item(self, backend: Backend) -> None:
        await backend.create(Item(key="/roles/admin", value=b"v1"))
        updated = await backend.update(Item(key="/roles/admin", value=b"v2"))
        assert await backend.get("/roles/admin") == updated
        assert updated.value == b"v2"

    async def test_update_of_a_missing_key_creates_nothing(self, backend: Backend) -> None:
        with pytest.raises(NotFoundError):
            await backend.update(Item(key="/roles/ghost", value=b"v"))
        with pytest.raises(NotFoundError):
            await backend.get("/roles/ghost")

    async def test_every_write_changes_the_revision(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        key = "/nodes/n1"
        revisions = [(await backend.put(Item(key=key, value=b"1"))).revision]
        revisions.append((await backend.put(Item(key=key, value=b"1"))).revision)
        revisions.append((await backend.update(Item(key=key, value=b"2"))).revision)
        swapped = await backend.compare_and_swap(
            Item(key=key, value=b"2"), Item(key=key, value=b"3")
        )
        revisions.append(swapped.revision)
        await backend.keep_alive(key, clock.now() + dt.timedelta(minutes=1))
        revisions.append((await backend.get(key)).revision)
        assert len(set(revisions)) == len(revisions)

    async def test_bad_keys_are_refused(self, backend: Backend, clock: FakeClock) -> None:
        for key in BAD_KEYS:
            with pytest.raises(BadParameterError):
                Item(key=key, value=b"")
            with pytest.raises(BadParameterError):
                await backend.get(key)
            with pytest.raises(BadParameterError):
                await backend.delete(key)
            with pytest.raises(BadParameterError):
                await backend.keep_alive(key, clock.now() + dt.timedelta(minutes=1))

    async def test_an_expiry_without_a_timezone_is_refused(self) -> None:
        with pytest.raises(BadParameterError):
            Item(key="/k", value=b"", expires=dt.datetime(2030, 1, 1))

    async def test_expiry_survives_the_round_trip_exactly(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        paris = dt.timezone(dt.timedelta(hours=1))
        expires = (clock.now() + dt.timedelta(hours=1, microseconds=123457)).astimezone(paris)
        await backend.put(Item(key="/k", value=b"v", expires=expires))
        stored = await backend.get("/k")
        assert stored.expires == expires
        assert stored.expires is not None and stored.expires.utcoffset() == dt.timedelta(0)

    # Compare and swap

    async def test_compare_and_swap_replaces_a_matching_value(self, backend: Backend) -> None:
        await backend.put(Item(key="/counter", value=b"1"))
        swapped = await backend.compare_and_swap(
            Item(key="/counter", value=b"1"), Item(key="/counter", value=b"2")
        )
        assert swapped.value == b"2"
        assert await backend.get("/counter") == swapped

    async def test_compare_and_swap_refuses_a_different_value(self, backend: Backend) -> None:
        await backend.put(Item(key="/counter", value=b"5"))
        with pytest.raises(CompareFailedError):
            await backend.compare_and_swap(
                Item(key="/counter", value=b"1"), Item(key="/counter", value=b"2")
            )
        assert (await backend.get("/counter")).value == b"5"

    async def test_compare_and_swap_of_a_missing_key_is_not_found(self, backend: Backend) -> None:
        with pytest.raises(NotFoundError):
            await backend.compare_and_swap(
                Item(key="/counter", value=b"1"), Item(key="/counter", value=b"2")
            )

    async def test_compare_and_swap_needs_one_key(self, backend: Backend) -> None:
        await backend.put(Item(key="/a", value=b"1"))
        with pytest.raises(BadParameterError):
            await backend.compare_and_swap(Item(key="/a", value=b"1"), Item(key="/b", value=b"2"))
        with pytest.raises(NotFoundError):
            await backend.get("/b")

    async def test_concurrent_compare_and_swap_loses_no_increment(self, backend: Backend) -> None:
        await backend.put(Item(key="/counter", value=b"0"))

        async def increment() -> None:
            while True:
                current = await backend.get("/counter")
                new = str(int(current.value) + 1).encode()
                try:
                    await backend.compare_and_swap(current, Item(key="/counter", value=new))
                    return
                except CompareFailedError:
                    continue

        await asyncio.gather(*(increment() for _ in range(20)))
        assert (await backend.get("/counter")).value == b"20"

    async def test_of_concurrent_creates_exactly_one_wins(self, backend: Backend) -> None:
        results = await asyncio.gather(
            *(backend.create(Item(key="/lock", value=str(n).encode())) for n in range(20)),
            return_exceptions=True,
        )
        winners = [result for result in results if isinstance(result, Item)]
        losers = [result for result in results if isinstance(result, AlreadyExistsError)]
        assert len(winners) == 1
        assert len(losers) == 19
        assert await backend.get("/lock") == winners[0]

    # Deletes

    async def test_delete_removes_the_item(self, backend: Backend) -> None:
        await backend.put(Item(key="/a", value=b"1"))
        await backend.delete("/a")
        with pytest.raises(NotFoundError):
            await backend.get("/a")

    async def test_delete_of_a_missing_key_is_not_found(self, backend: Backend) -> None:
        with pytest.raises(NotFoundError):
            await backend.delete("/a")

    async def test_delete_range_removes_start_but_not_end(self, backend: Backend) -> None:
        for key in ["/r/a", "/r/b", "/r/c", "/r/d"]:
            await backend.put(Item(key=key, value=b""))
        await backend.delete_range("/r/b", "/r/d")
        assert await keys(backend) == ["/r/a", "/r/d"]

    async def test_delete_range_of_a_prefix_spares_its_siblings(self, backend: Backend) -> None:
        for key in ["/users", "/users/a", "/users/b/c", "/usersx", "/users0"]:
            await backend.put(Item(key=key, value=b""))
        await backend.delete_range("/users/", prefix_end("/users/"))
        assert await keys(backend) == ["/users", "/users0", "/usersx"]

    async def test_delete_range_of_nothing_is_no_error(self, backend: Backend) -> None:
        await backend.put(Item(key="/a", value=b""))
        await backend.delete_range("/b", "/c")
        await backend.delete_range("/z", "/a")
        assert await keys(backend) == ["/a"]

    # Ranges

    async def test_get_range_is_sorted_by_key(self, backend: Backend) -> None:
        for key in ["/k/c", "/k/a", "/k/b"]:
            await backend.put(Item(key=key, value=key.encode()))
        items = await backend.get_range("/k/", prefix_end("/k/"))
        assert [item.key for item in items] == ["/k/a", "/k/b", "/k/c"]
        assert [item.value for item in items] == [b"/k/a", b"/k/b", b"/k/c"]

    async def test_get_range_orders_keys_by_code_point(self, backend: Backend) -> None:
        unordered = ["/k/\U0001f600", "/k/~", "/k/é", "/k/B", "/k/\ue000", "/k/a", "/k/\u65e5"]
        for key in unordered:
            await backend.put(Item(key=key, value=b""))
        assert await keys(backend, "/k/", prefix_end("/k/")) == sorted(unordered)

    async def test_get_range_includes_start_and_excludes_end(self, backend: Backend) -> None:
        for key in ["/a", "/b", "/c"]:
            await backend.put(Item(key=key, value=b""))
        assert await keys(backend, "/a", "/c") == ["/a", "/b"]
        assert await keys(backend, "/b", "/b") == []
        assert await keys(backend, "/c", "/a") == []

    async def test_get_range_of_a_prefix_excludes_its_siblings(self, backend: Backend) -> None:
        inside = ["/users/", "/users/a", "/users/a/b", "/users/\U0010ffff\U0010ffff"]
        outside = ["/users", "/users.", "/users0", "/usersx", "/users0/a"]
        for key in inside + outside:
            await backend.put(Item(key=key, value=b""))
        assert await keys(backend, "/users/", prefix_end("/users/")) == sorted(inside)
        assert await keys(backend, "/users/a", prefix_end("/users/a")) == ["/users/a", "/users/a/b"]

    async def test_get_range_limit(self, backend: Backend) -> None:
        for n in range(5):
            await backend.put(Item(key=f"/n/{n}", value=b""))
        assert await keys(backend, limit=2) == ["/n/0", "/n/1"]
        assert await keys(backend, limit=0) == [f"/n/{n}" for n in range(5)]
        assert await keys(backend, limit=9) == [f"/n/{n}" for n in range(5)]
        with pytest.raises(BadParameterError):
            await backend.get_range("/", "0", limit=-1)

    # Leases

    async def test_an_item_disappears_when_its_lease_ends(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        lease = dt.timedelta(seconds=10)
        await backend.put(Item(key="/nodes/n1", value=b"v", expires=clock.now() + lease))
        clock.advance(lease - dt.timedelta(microseconds=1))
        assert (await backend.get("/nodes/n1")).value == b"v"
        clock.advance(dt.timedelta(microseconds=1))
        with pytest.raises(NotFoundError):
            await backend.get("/nodes/n1")
        assert await keys(backend) == []
        for refused in (
            backend.update(Item(key="/nodes/n1", value=b"w")),
            backend.compare_and_swap(
                Item(key="/nodes/n1", value=b"v"), Item(key="/nodes/n1", value=b"w")
            ),
            backend.delete("/nodes/n1"),
            backend.keep_alive("/nodes/n1", clock.now() + lease),
        ):
            with pytest.raises(NotFoundError):
                await refused
        await backend.create(Item(key="/nodes/n1", value=b"again"))
        assert (await backend.get("/nodes/n1")).value == b"again"

    async def test_keep_alive_extends_a_lease(self, backend: Backend, clock: FakeClock) -> None:
        await backend.put(
            Item(key="/nodes/n1", value=b"v", expires=clock.now() + dt.timedelta(seconds=10))
        )
        clock.advance(dt.timedelta(seconds=5))
        extended = clock.now() + dt.timedelta(seconds=10)
        await backend.keep_alive("/nodes/n1", extended)
        clock.advance(dt.timedelta(seconds=9))
        kept = await backend.get("/nodes/n1")
        assert (kept.value, kept.expires) == (b"v", extended)
        clock.advance(dt.timedelta(seconds=1))
        with pytest.raises(NotFoundError):
            await backend.get("/nodes/n1")

    async def test_keep_alive_of_a_missing_key_is_not_found(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        with pytest.raises(NotFoundError):
            await backend.keep_alive("/nodes/ghost", clock.now() + dt.timedelta(seconds=10))

    async def test_a_write_without_expiry_ends_the_lease(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        await backend.put(Item(key="/k", value=b"1", expires=clock.now() + dt.timedelta(seconds=1)))
        await backend.put(Item(key="/k", value=b"2"))
        clock.advance(dt.timedelta(days=1))
        assert (await backend.get("/k")).value == b"2"

    # Watches

    async def test_watch_sees_puts_and_deletes_under_its_prefixes_only(
        self, backend: Backend
    ) -> None:
        watch = backend.watch(["/users/", "/roles/"])
        put = await backend.put(Item(key="/users/alice", value=b"1"))
        await backend.put(Item(key="/other/x", value=b""))
        await backend.put(Item(key="/usersx", value=b""))
        await backend.put(Item(key="/roles/admin", value=b""))
        await backend.delete("/users/alice")
        await backend.put(Item(key="/users/last", value=b""))

        first = await next_event(watch)
        assert first == Event(EventType.PUT, put)
        assert [described(await next_event(watch)) for _ in range(3)] == [
            (EventType.PUT, "/roles/admin"),
            (EventType.DELETE, "/users/alice"),
            (EventType.PUT, "/users/last"),
        ]

    async def test_watch_sees_every_kind_of_write(self, backend: Backend) -> None:
        watch = backend.watch(["/w/"])
        await backend.create(Item(key="/w/a", value=b"1"))
        await backend.update(Item(key="/w/a", value=b"2"))
        await backend.compare_and_swap(Item(key="/w/a", value=b"2"), Item(key="/w/a", value=b"3"))
        await backend.put(Item(key="/w/b", value=b""))
        await backend.delete_range("/w/", prefix_end("/w/"))
        events = [described(await next_event(watch)) for _ in range(6)]
        assert events == [
            (EventType.PUT, "/w/a"),
            (EventType.PUT, "/w/a"),
            (EventType.PUT, "/w/a"),
            (EventType.PUT, "/w/b"),
            (EventType.DELETE, "/w/a"),
            (EventType.DELETE, "/w/b"),
        ]

    async def test_watch_misses_writes_made_before_it_started(self, backend: Backend) -> None:
        await backend.put(Item(key="/w/before", value=b""))
        watch = backend.watch(["/w/"])
        await backend.put(Item(key="/w/after", value=b""))
        assert described(await next_event(watch)) == (EventType.PUT, "/w/after")

    async def test_watch_hears_of_an_ended_lease_by_the_next_write(
        self, backend: Backend, clock: FakeClock
    ) -> None:
        watch = backend.watch(["/nodes/"])
        await backend.put(
            Item(key="/nodes/n1", value=b"", expires=clock.now() + dt.timedelta(seconds=10))
        )
        assert described(await next_event(watch)) == (EventType.PUT, "/nodes/n1")
        clock.advance(dt.timedelta(seconds=10))
        await backend.put(Item(key="/unrelated", value=b""))
        assert described(await next_event(watch)) == (EventType.DELETE, "/nodes/n1")

    async def test_watch_ends_when_the_backend_closes(self, backend: Backend) -> None:
        watch = backend.watch(["/w/"])
        await backend.put(Item(key="/w/a", value=b""))
        await backend.close()
        assert [described(event) for event in await remaining_events(watch)] in (
            [],
            [(EventType.PUT, "/w/a")],
        )

    async def test_a_watcher_that_falls_behind_ends_with_an_error(self, backend: Backend) -> None:
        slow = backend.watch(["/flood/"])
        for n in range(WATCH_QUEUE_SIZE + 10):
            await backend.put(Item(key=f"/flood/{n:05}", value=b""))
        received = 0
        with pytest.raises(LimitExceededError):
            async with asyncio.timeout(WAIT_S):
                async for _ in slow:
                    received += 1
        assert received <= WATCH_QUEUE_SIZE

    async def test_watch_needs_a_list_of_prefixes(self, backend: Backend) -> None:
        with pytest.raises(BadParameterError):
            backend.watch("/users/")
        with pytest.raises(BadParameterError):
            backend.watch([])

    # Lifecycle

    async def test_a_closed_backend_refuses_calls(self, backend: Backend) -> None:
        await backend.close()
        await backend.close()
        with pytest.raises(TeleportError):
            await backend.get("/a")
        with pytest.raises(TeleportError):
            await backend.put(Item(key="/a", value=b""))
        assert await remaining_events(backend.watch(["/"])) == []
