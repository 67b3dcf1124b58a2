"""A backend that times every request for ``/metrics`` and passes it on unchanged."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from pyteleport.backend.base import Backend, Event, Item
from pyteleport.errors import (
    AlreadyExistsError,
    BadParameterError,
    CompareFailedError,
    NotFoundError,
)

# (kind: "read" or "write", seconds taken, whether it succeeded)
Observer = Callable[[str, float, bool], None]
_ANSWERS = (NotFoundError, AlreadyExistsError, CompareFailedError, BadParameterError)


class MeteredBackend:
    def __init__(self, inner: Backend, observe: Observer) -> None:
        self.inner = inner
        self._observe = observe

    async def _timed(self, kind: str, call: Any) -> Any:
        started = time.perf_counter()
        ok = False
        try:
            result = await call
            ok = True
            return result
        except _ANSWERS:
            ok = True  # a refusal is an answer, not a failure of the store
            raise
        finally:
            self._observe(kind, time.perf_counter() - started, ok)

    async def get(self, key: str) -> Item:
        item: Item = await self._timed("read", self.inner.get(key))
        return item

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        items: list[Item] = await self._timed("read", self.inner.get_range(start, end, limit))
        return items

    async def create(self, item: Item) -> Item:
        created: Item = await self._timed("write", self.inner.create(item))
        return created

    async def create_many(self, items: Sequence[Item]) -> list[Item]:
        created: list[Item] = await self._timed("write", self.inner.create_many(items))
        return created

    async def put(self, item: Item) -> Item:
        stored: Item = await self._timed("write", self.inner.put(item))
        return stored

    async def update(self, item: Item) -> Item:
        stored: Item = await self._timed("write", self.inner.update(item))
        return stored

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        stored: Item = await self._timed(
            "write", self.inner.compare_and_swap(expected, replace_with)
        )
        return stored

    async def delete(self, key: str) -> None:
        await self._timed("write", self.inner.delete(key))

    async def delete_range(self, start: str, end: str) -> None:
        await self._timed("write", self.inner.delete_range(start, end))

    async def keep_alive(self, key: str, expires: dt.datetime) -> None:
        await self._timed("write", self.inner.keep_alive(key, expires))

    def watch(self, prefixes: Sequence[str]) -> AsyncIterator[Event]:
        return self.inner.watch(prefixes)

    async def close(self) -> None:
        await self.inner.close()
