"""The audit log's group commit: events emitted while a write is in flight share the next
write, every emitter still learns whether its own event was written, and a lone event is written
at once."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import pytest

from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.errors import ConnectionProblemError
from pyteleport.events.audit import AuditLog


class SlowBackend(MemoryBackend):
    """Counts the writes, each taking a moment (as a disk does), and refuses any event whose
    JSON mentions "poison"."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.writes: list[int] = []

    async def create_many(self, items: Sequence[Item]) -> list[Item]:
        self.writes.append(len(items))
        await asyncio.sleep(0.01)
        if any(b"poison" in item.value for item in items):
            raise ConnectionProblemError("disk says no")
        return await super().create_many(items)


def since_ever() -> dt.datetime:
    return dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


async def test_a_lone_event_is_one_write() -> None:
    backend = SlowBackend(FakeClock())
    audit = AuditLog(backend, FakeClock())
    await audit.emit("session.start", {"sid": "s1"})
    assert backend.writes == [1]
    [event] = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    assert (event["event"], event["code"], event["sid"]) == ("session.start", "T2000I", "s1")


async def test_events_emitted_meanwhile_share_the_next_write() -> None:
    clock = FakeClock()
    backend = SlowBackend(clock)
    audit = AuditLog(backend, clock)
    await asyncio.gather(*(audit.emit("exec", {"n": n}) for n in range(20)))
    assert backend.writes == [20]  # the writer starts on the next pass of the loop
    events = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    assert sorted(e["n"] for e in events) == list(range(20))


async def test_one_emitters_failure_is_its_own() -> None:
    clock = FakeClock()
    backend = SlowBackend(clock)
    audit = AuditLog(backend, clock)
    results = await asyncio.gather(
        audit.emit("exec", {"n": 0}),
        audit.emit("exec", {"n": 1}),
        audit.emit("exec", {"command": "poison"}),
        audit.emit("exec", {"n": 3}),
        return_exceptions=True,
    )
    assert results[:2] == [None, None] and results[3] is None
    assert isinstance(results[2], ConnectionProblemError)
    events = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    assert sorted(e["n"] for e in events) == [0, 1, 3]


async def test_a_cancelled_emitter_does_not_take_its_event_back() -> None:
    clock = FakeClock()
    backend = SlowBackend(clock)
    audit = AuditLog(backend, clock)
    first = asyncio.ensure_future(audit.emit("exec", {"n": 0}))
    await asyncio.sleep(0)
    second = asyncio.ensure_future(audit.emit("exec", {"n": 1}))
    await asyncio.sleep(0)
    second.cancel()
    await first
    with pytest.raises(asyncio.CancelledError):
        await second
    await asyncio.sleep(0.05)
    events = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    assert sorted(e["n"] for e in events) == [0, 1]


async def test_events_keep_the_order_they_were_emitted_in() -> None:
    clock = FakeClock()  # time stands still: every event has the same clock reading
    audit = AuditLog(MemoryBackend(clock), clock)
    await asyncio.gather(*(audit.emit("exec", {"n": n}) for n in range(50)))
    events = await audit.search(since_ever(), None)  # type: ignore[arg-type]
    assert [e["n"] for e in events] == list(range(50))


class CountingBackend(MemoryBackend):
    """Notes how many items each range read returned."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.pages: list[int] = []

    async def get_range(self, start: str, end: str, limit: int = 0) -> list[Item]:
        items = await super().get_range(start, end, limit)
        self.pages.append(len(items))
        return items


async def test_a_search_reads_pages_and_stops_at_its_limit() -> None:
    from pyteleport.events.audit import SEARCH_PAGE

    clock = FakeClock()
    backend = CountingBackend(clock)
    audit = AuditLog(backend, clock)
    total = SEARCH_PAGE * 3 + 7
    for i in range(total):
        await audit.emit("session.start" if i % 2 else "user.login", {"n": i})
    backend.pages.clear()
    found = await audit.search(since_ever(), None, ["session.start"], limit=10)  # type: ignore[arg-type]
    assert [e["n"] for e in found] == list(range(1, 20, 2))
    assert backend.pages == [SEARCH_PAGE]  # one page, not the whole log
    backend.pages.clear()
    everything = await audit.search(since_ever(), None, ["session.start"], limit=0)  # type: ignore[arg-type]
    assert [e["n"] for e in everything] == list(range(1, total, 2))
    assert max(backend.pages) == SEARCH_PAGE and len(backend.pages) == 4
