"""`MemoryBackend`: the whole store in a dict, for tests and throwaway clusters.

Every method runs to completion without awaiting, so each one is atomic under asyncio and needs
no lock; concurrent creates of one key are decided in the order the loop runs them.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import itertools
from collections.abc import Sequence

from pyteleport.backend.base import (
    Event,
    EventFanout,
    EventType,
    Item,
    Watcher,
    check_key,
    check_range,
    is_expired,
    not_found,
)
from pyteleport.clock import Clock, SystemClock
from pyteleport.errors import (
    AlreadyExistsError,
    BadParameterError,
    CompareFailedError,
    TeleportError,
)


class MemoryBackend:
    def __init__(self, clock: Clock | None = None) -> None:
        self._clock = clock or SystemClock()
        self._items: dict[str, Item] = {}
        self._keys: list[str] = []  # sorted, so a range is two bisections
        # (expires, key, revision); stale entries are skipped by comparing the revision.
        self._expiry: list[tuple[dt.datetime, str, str]] = []
        self._revisions = itertools.count(1)
        self._fanout = EventFanout()
        self._closed = False

    async def get(self, key: str) -> Item:
        check_key(key)
        self._check_open()
        item = self._live(key)
        if item is None:
            raise not_found(key)
        return item

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        check_range(start, end)
        if limit < 0:
            raise BadParameterError(f"bad range limit {limit}: expected 0 (no limit) or more")
        self._check_open()
        now = self._clock.now()
        items: list[Item] = []
        for index in range(*self._span(start, end)):
            item = self._items[self._keys[index]]
            if not is_expired(item.expires, now):
                items.append(item)
                if len(items) == limit:
                    break
        return items

    async def create(self, item: Item) -> Item:
        self._begin_write()
        if item.key in self._items:
            raise AlreadyExistsError(f'key "{item.key}" already exists')
        return self._store(item)

    async def create_many(self, items: Sequence[Item]) -> list[Item]:
        self._begin_write()
        keys = [item.key for item in items]
        for key in keys:
            if key in self._items or keys.count(key) > 1:
                raise AlreadyExistsError(f'key "{key}" already exists')
        return [self._store(item) for item in items]

    async def put(self, item: Item) -> Item:
        self._begin_write()
        return self._store(item)

    async def update(self, item: Item) -> Item:
        self._begin_write()
        if item.key not in self._items:
            raise not_found(item.key)
        return self._store(item)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        if expected.key != replace_with.key:
            raise BadParameterError(
                f'compare and swap of "{expected.key}" cannot write "{replace_with.key}"'
            )
        self._begin_write()
        current = self._items.get(expected.key)
        if current is None:
            raise not_found(expected.key)
        if current.value != expected.value:
            raise CompareFailedError(f'key "{expected.key}" does not hold the expected value')
        return self._store(replace_with)

    async def delete(self, key: str) -> None:
        check_key(key)
        self._begin_write()
        if key not in self._items:
            raise not_found(key)
        self._fanout.emit([self._remove(key)])

    async def delete_range(self, start: str, end: str) -> None:
        check_range(start, end)
        self._begin_write()
        first, last = self._span(start, end)
        keys = self._keys[first:last]
        del self._keys[first:last]
        for key in keys:
            del self._items[key]
        self._fanout.emit([Event(EventType.DELETE, Item(key=key, value=b"")) for key in keys])

    async def keep_alive(self, key: str, expires: dt.datetime) -> None:
        check_key(key)
        self._begin_write()
        current = self._items.get(key)
        if current is None:
            raise not_found(key)
        self._store(Item(key=key, value=current.value, expires=expires))

    def watch(self, prefixes: Sequence[str]) -> Watcher:
        return self._fanout.watch(prefixes)

    async def purge_expired(self) -> None:
        """Drop expired items now and tell watchers, for a caller that does no other writes."""
        self._check_open()
        self._purge()

    async def close(self) -> None:
        self._closed = True
        self._fanout.close()

    def _check_open(self) -> None:
        if self._closed:
            raise TeleportError("backend is closed")

    def _begin_write(self) -> None:
        """Purge first, so that every item a write sees is live and expiries are announced."""
        self._check_open()
        self._purge()

    def _purge(self) -> None:
        now = self._clock.now()
        events: list[Event] = []
        while self._expiry and self._expiry[0][0] <= now:
            _, key, revision = heapq.heappop(self._expiry)
            item = self._items.get(key)
            if item is not None and item.revision == revision:
                events.append(self._remove(key))
        self._fanout.emit(events)

    def _span(self, start: str, end: str) -> tuple[int, int]:
        """Indexes in the sorted keys of the range [start, end); empty when end <= start."""
        first = bisect.bisect_left(self._keys, start)
        return first, max(first, bisect.bisect_left(self._keys, end))

    def _live(self, key: str) -> Item | None:
        item = self._items.get(key)
        if item is None or is_expired(item.expires, self._clock.now()):
            return None
        return item

    def _store(self, item: Item) -> Item:
        stored = Item(
            key=item.key,
            value=item.value,
            expires=item.expires,
            revision=str(next(self._revisions)),
        )
        if stored.key not in self._items:
            bisect.insort(self._keys, stored.key)
        self._items[stored.key] = stored
        if stored.expires is not None:
            heapq.heappush(self._expiry, (stored.expires, stored.key, stored.revision))
        self._fanout.emit([Event(EventType.PUT, stored)])
        return stored

    def _remove(self, key: str) -> Event:
        del self._items[key]
        del self._keys[bisect.bisect_left(self._keys, key)]
        return Event(EventType.DELETE, Item(key=key, value=b""))
