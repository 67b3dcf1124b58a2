"""The audit log: every event is written to the backend before the action it records returns.

Writes are group commits (backend.groupwrite): a burst of sessions ending at once costs one
transaction (one fsync), not one per event."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.backend.groupwrite import GroupWriter
from pyteleport.clock import Clock, SystemClock
from pyteleport.events.codes import code_for
from pyteleport.events.sanitize import MAX_TEXT, clean_text, clean_value
from pyteleport.model.timefmt import format_time

PREFIX = "/events/"
SEARCH_PAGE = 500  # events read from the backend at a time


class Emitter(Protocol):
    async def emit(
        self, event: str, fields: Mapping[str, Any], *, success: bool = True
    ) -> None: ...


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _key(when: dt.datetime, uid: str) -> str:
    since = when - _EPOCH  # exact to the microsecond, unlike a float timestamp
    nanos = ((since.days * 86400 + since.seconds) * 1_000_000 + since.microseconds) * 1000
    return f"{PREFIX}{nanos:020d}/{uid}"


class AuditLog:
    """Audit events in the backend, keyed by time so a time range is a key range."""

    def __init__(
        self,
        backend: Backend,
        clock: Clock | None = None,
        observe: Callable[[int, float, bool], None] | None = None,
    ) -> None:
        """``observe(events, seconds, written)`` hears of every write (for /metrics)."""
        self._backend = backend
        self._clock = clock or SystemClock()
        self._writer = GroupWriter(backend, observe)
        self._last: dt.datetime | None = None

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        await self._writer.create([self._item(event, fields, success)])

    def _item(self, event: str, fields: Mapping[str, Any], success: bool) -> Item:
        # Keys sort by time: a microsecond apart at least, events keep the order they were
        # emitted in even when they share a write.
        now = self._clock.now()
        if self._last is not None and now <= self._last:
            now = self._last + dt.timedelta(microseconds=1)
        self._last = now
        uid = str(uuid.uuid4())
        record: dict[str, Any] = {
            "event": event,
            "code": code_for(event, success),
            "time": format_time(now),
            "uid": uid,
            **clean_value(dict(fields)),  # values from clients: escaped, capped
        }
        return Item(key=_key(now, uid), value=json.dumps(record, sort_keys=True).encode())

    async def search(
        self,
        since: dt.datetime,
        until: dt.datetime,
        event_types: Sequence[str] = (),
        limit: int = 1000,
        session_id: str = "",
    ) -> list[dict[str, Any]]:
        """Events from ``since`` to ``until``, oldest first, at most ``limit`` (0: all). The
        range is read a page at a time, filtered as it comes, and the reading stops once
        ``limit`` events matched: memory follows the answer, not the size of the log."""
        start = _key(since, "")
        end = _key(until, "") if until else prefix_end(PREFIX)
        out: list[dict[str, Any]] = []
        while True:
            page = await self._backend.get_range(start, end, limit=SEARCH_PAGE)
            for item in page:
                record = _read(item)
                if event_types and record.get("event") not in event_types:
                    continue
                if session_id and record.get("sid") != session_id:
                    continue
                out.append(record)
                if limit and len(out) >= limit:
                    return out
            if len(page) < SEARCH_PAGE:
                return out
            start = page[-1].key + "\x01"  # the smallest key after the last one read


def _read(item: Item) -> dict[str, Any]:
    """A stored event, cleaned again (events stored before values were cleaned may hold lone
    surrogates that no response can serialize); one that does not parse is shown, not fatal."""
    try:
        record = json.loads(item.value)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        raw = item.value[:MAX_TEXT].decode("utf-8", "backslashreplace")
        return {"event": "audit.unreadable", "code": "", "raw": clean_text(raw)}
    cleaned: dict[str, Any] = clean_value(record)
    return cleaned


def fields_time(value: dt.datetime) -> str:
    return format_time(value)
