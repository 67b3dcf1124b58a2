"""Group commits: many callers' new items written in one backend transaction.

A write asked for while another is in flight waits for it and goes into the next one together
with every other write asked for meanwhile, so a burst (a thousand sessions ending at once, or
indexing their second of output at once) costs one transaction and one fsync, not one each. A
lone write goes at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from pyteleport.backend.base import Backend, Item


class GroupWriter:
    """Creates items (``Backend.create_many``) for many callers, grouped. One caller's failure
    is its own: when a group fails, its parts are written again one caller at a time."""

    def __init__(
        self, backend: Backend, observe: Callable[[int, float, bool], None] | None = None
    ) -> None:
        self._backend = backend
        self._observe = observe  # (items, seconds, written) of each group
        self._queue: list[tuple[Sequence[Item], asyncio.Future[None]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def create(self, items: Sequence[Item]) -> None:
        """Return once ``items`` are committed; raise what the backend raised for them. A
        caller cancelled meanwhile does not take its items back: they are still written."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._queue.append((items, future))
        if self._writer is None:
            self._writer = loop.create_task(self._drain())
        await future

    async def _drain(self) -> None:
        batch: list[tuple[Sequence[Item], asyncio.Future[None]]] = []
        try:
            while self._queue:
                batch, self._queue = self._queue, []
                group = [i for items, _ in batch for i in items]
                started = time.perf_counter()
                try:
                    await self._backend.create_many(group)
                except Exception as exc:
                    if self._observe is not None:
                        self._observe(len(group), time.perf_counter() - started, False)
                    if len(batch) == 1:
                        _settle(batch[0][1], exc)
                    else:
                        for items, future in batch:
                            try:
                                await self._backend.create_many(items)
                            except Exception as part_exc:
                                _settle(future, part_exc)
                            else:
                                _settle(future, None)
                else:
                    if self._observe is not None:
                        self._observe(len(group), time.perf_counter() - started, True)
                    for _, future in batch:
                        _settle(future, None)
                batch = []
        except BaseException:
            # Cancelled (the process is stopping): nobody is left waiting forever.
            for _, future in (*batch, *self._queue):
                future.cancel()
            self._queue = []
            raise
        finally:
            self._writer = None


def _settle(future: asyncio.Future[None], outcome: BaseException | None) -> None:
    if future.done():
        return
    if outcome is None:
        future.set_result(None)
    else:
        future.set_exception(outcome)
