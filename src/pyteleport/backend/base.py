"""The backend contract: the `Backend` protocol, its values, key-range math and watch fan-out.

Everything here is shared by every implementation, so a new backend (PostgreSQL) only has to store
items and call `EventFanout.emit` after each committed write.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import weakref
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from pyteleport.errors import BadParameterError, LimitExceededError, NotFoundError, TeleportError

WATCH_QUEUE_SIZE = 1024
"""Events a watcher may have pending before it is closed: writers never wait for slow readers."""

_MAX_CHAR = chr(0x10FFFF)


def not_found(key: str) -> NotFoundError:
    """The one message every backend uses for a missing key, so callers may show it as is."""
    return NotFoundError(f'key "{key}" is not found')


def check_key(key: object) -> str:
    """Refuse keys that would sort or encode differently across backends.

    A key is a "/"-separated path. NUL and lone surrogates are refused because SQLite and
    PostgreSQL cannot store them as text, and a key one backend accepts must be valid in all.
    """
    if not isinstance(key, str) or not key.startswith("/"):
        raise BadParameterError(f'bad key {key!r}: a key is a "/"-separated path starting with "/"')
    _check_text(key, "key")
    return key


def check_range(start: str, end: str) -> None:
    """Range bounds need not be keys (``prefix_end`` is not), but they must be storable text."""
    _check_text(start, "range start")
    _check_text(end, "range end")


def _check_text(text: object, what: str) -> None:
    # The messages leave the key out: a name from a client may reach them, and the key around
    # it is the backend's own business.
    if not isinstance(text, str):
        raise BadParameterError(f"bad {what}: not a string")
    if "\x00" in text:
        raise BadParameterError(f"bad {what}: a name contains NUL")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise BadParameterError(f"bad {what}: a name is not valid Unicode") from exc


def prefix_end(prefix: str) -> str:
    """The smallest key greater than every key that starts with ``prefix``.

    ``get_range(p, prefix_end(p))`` is then exactly the keys under ``p``: "/users/" ends at
    "/users0", so "/usersx" stays out. Keys compare by code point in every backend (SQLite's
    BINARY collation on UTF-8 and PostgreSQL's "C" collation agree with Python's ``<``).
    """
    stem = prefix.rstrip(_MAX_CHAR)
    if not stem:
        raise BadParameterError(f"prefix {prefix!r} has no end: every key is greater than it")
    last = ord(stem[-1]) + 1
    if 0xD800 <= last <= 0xDFFF:
        # Surrogates are not valid keys, so the next storable code point is the bound.
        last = 0xE000
    return stem[:-1] + chr(last)


def is_expired(expires: dt.datetime | None, now: dt.datetime) -> bool:
    """An item is gone at its expiry instant, not one tick later, in every backend alike."""
    return expires is not None and expires <= now


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Item:
    """One stored value. Backends fill in ``revision``; callers leave it empty."""

    key: str
    value: bytes
    expires: dt.datetime | None = None
    revision: str = ""

    def __post_init__(self) -> None:
        check_key(self.key)
        if not isinstance(self.value, bytes):
            raise BadParameterError(f'bad value for key "{self.key}": expected bytes')
        if self.expires is not None:
            if self.expires.utcoffset() is None:
                raise BadParameterError(
                    f'bad expiry for key "{self.key}": the time has no timezone'
                )
            # Normalised so that items compare equal after a round trip through any store.
            object.__setattr__(self, "expires", self.expires.astimezone(dt.UTC))


@dataclass(frozen=True, slots=True)
class Event:
    """A committed change. For DELETE only ``item.key`` means anything."""

    type: EventType
    item: Item


class Backend(Protocol):
    """A key/value store with leases (``expires``) and watches, shared by every service.

    Expired items are invisible to every read and count as absent for every write.
    """

    async def get(self, key: str) -> Item: ...

    async def create(self, item: Item) -> Item: ...

    async def create_many(self, items: Sequence[Item]) -> list[Item]:
        """Create every item in one write: all of them, or (AlreadyExistsError) none."""
        ...

    async def put(self, item: Item) -> Item: ...

    async def update(self, item: Item) -> Item: ...

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        """Replace the item only if its current value equals ``expected.value``."""
        ...

    async def delete(self, key: str) -> None: ...

    async def delete_range(self, start: str, end: str) -> None: ...

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]: ...

    async def keep_alive(self, key: str, expires: dt.datetime) -> None: ...

    def watch(self, prefixes: Sequence[str]) -> AsyncIterator[Event]:
        """Events for changes committed after this call returns, under any of ``prefixes``."""
        ...

    async def close(self) -> None: ...


class Watcher(AsyncIterator[Event]):
    """One watch: a bounded queue of events that ends when the backend closes.

    Registration happens in ``Backend.watch`` itself, not on first ``__anext__``, so a caller
    that starts a watch and then writes is sure to see its own write. A watcher that falls
    more than ``capacity`` events behind is ended with `LimitExceededError`; its owner must
    re-read the state it follows and watch again, because events were lost.
    """

    __slots__ = ("__weakref__", "_error", "_finished", "_prefixes", "_queue", "_terminated")

    def __init__(self, prefixes: Sequence[str], capacity: int = WATCH_QUEUE_SIZE) -> None:
        if isinstance(prefixes, str) or not prefixes:
            raise BadParameterError(
                f"bad watch prefixes {prefixes!r}: expected a non-empty list of key prefixes"
            )
        for prefix in prefixes:
            _check_text(prefix, "watch prefix")
        self._prefixes = tuple(prefixes)
        # One slot more than the capacity, so the end marker always fits.
        self._queue: asyncio.Queue[Event | None] = asyncio.Queue(capacity + 1)
        self._terminated = False
        self._finished = False
        self._error: TeleportError | None = None

    @property
    def closed(self) -> bool:
        return self._terminated

    def matches(self, key: str) -> bool:
        return key.startswith(self._prefixes)

    def offer(self, event: Event) -> None:
        if self._terminated:
            return
        if self._queue.qsize() >= self._queue.maxsize - 1:
            self.end(
                LimitExceededError(
                    f"watcher fell more than {self._queue.maxsize - 1} events behind; "
                    "read the state again and start a new watch"
                )
            )
            return
        self._queue.put_nowait(event)

    def end(self, error: TeleportError | None = None) -> None:
        """Stop after the events already queued, then raise ``error`` if one is given."""
        if self._terminated:
            return
        self._terminated = True
        self._error = error
        self._queue.put_nowait(None)

    async def aclose(self) -> None:
        """Stop now, dropping queued events: the consumer has lost interest in them."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._terminated = True
        self._error = None
        self._queue.put_nowait(None)

    def __aiter__(self) -> Watcher:
        return self

    async def __anext__(self) -> Event:
        if self._finished:
            raise StopAsyncIteration
        event = await self._queue.get()
        if event is not None:
            return event
        self._finished = True
        error, self._error = self._error, None
        if error is not None:
            raise error
        raise StopAsyncIteration


class EventFanout:
    """Hands each committed event to every watcher whose prefixes match it.

    Watchers are held weakly: one its consumer dropped without ``aclose`` disappears with it
    instead of filling up until the backend closes.
    """

    def __init__(self) -> None:
        self._watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()
        self._closed = False

    def watch(self, prefixes: Sequence[str]) -> Watcher:
        watcher = Watcher(prefixes)
        if self._closed:
            watcher.end()
        else:
            self._watchers.add(watcher)
        return watcher

    def emit(self, events: Iterable[Event]) -> None:
        events = list(events)
        if not events:
            return
        for watcher in list(self._watchers):
            for event in events:
                if watcher.matches(event.item.key):
                    watcher.offer(event)
            if watcher.closed:
                self._watchers.discard(watcher)

    def close(self) -> None:
        self._closed = True
        for watcher in list(self._watchers):
            watcher.end()
        self._watchers.clear()
