"""The audit log: every event is written to the backend before the action it records returns."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.clock import Clock, SystemClock
from pyteleport.events.codes import code_for
from pyteleport.model.timefmt import format_time

PREFIX = "/events/"


class Emitter(Protocol):
    async def emit(
        self, event: str, fields: Mapping[str, Any], *, success: bool = True
    ) -> None: ...


def _key(when: dt.datetime, uid: str) -> str:
    nanos = int(when.timestamp() * 1_000_000) * 1000
    return f"{PREFIX}{nanos:020d}/{uid}"


class AuditLog:
    """Audit events in the backend, keyed by time so a time range is a key range."""

    def __init__(self, backend: Backend, clock: Clock | None = None) -> None:
        self._backend = backend
        self._clock = clock or SystemClock()

    async def emit(self, event: str, fields: Mapping[str, Any], *, success: bool = True) -> None:
        now = self._clock.now()
        uid = str(uuid.uuid4())
        record: dict[str, Any] = {
            "event": event,
            "code": code_for(event, success),
            "time": format_time(now),
            "uid": uid,
            **fields,
        }
        await self._backend.create(
            Item(key=_key(now, uid), value=json.dumps(record, sort_keys=True).encode())
        )

    async def search(
        self,
        since: dt.datetime,
        until: dt.datetime,
        event_types: Sequence[str] = (),
        limit: int = 1000,
    ) -> list[dict[str, Any]]:
        start = _key(since, "")
        end = _key(until, "") if until else prefix_end(PREFIX)
        items = await self._backend.get_range(start, end)
        out: list[dict[str, Any]] = []
        for item in items:
            record = json.loads(item.value)
            if event_types and record.get("event") not in event_types:
                continue
            out.append(record)
            if limit and len(out) >= limit:
                break
        return out


def fields_time(value: dt.datetime) -> str:
    return format_time(value)
