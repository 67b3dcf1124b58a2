"""Locks in the auth service: create, list the ones in force, delete; each change audited."""

from __future__ import annotations

import datetime as dt
import uuid

from pyteleport.backend import Backend
from pyteleport.clock import Clock
from pyteleport.errors import BadParameterError
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.model.lock import Lock
from pyteleport.storage.locks import LockStore


class Locks:
    def __init__(self, backend: Backend, audit: AuditLog, clock: Clock) -> None:
        self.store = LockStore(backend)
        self._audit = audit
        self._clock = clock

    async def create(
        self, target_kind: str, target: str, message: str, ttl: dt.timedelta | None, by: str
    ) -> Lock:
        now = self._clock.now()
        if ttl is not None and ttl <= dt.timedelta(0):
            raise BadParameterError("--ttl must be positive")
        lock = Lock(
            name=str(uuid.uuid4()),
            target_kind=target_kind,
            target=target,
            message=message,
            expires=now + ttl if ttl is not None else None,
            created_by=by,
            created=now,
        )
        await self.store.create(lock)
        await self._audit.emit(
            codes.LOCK_CREATED,
            {"name": lock.name, "user": by, "target": {target_kind: target}, "message": message},
        )
        return lock

    async def in_force(self) -> list[Lock]:
        now = self._clock.now()
        return [lock for lock in await self.store.list() if lock.in_force(now)]

    async def delete(self, name: str, by: str) -> None:
        await self.store.delete(name)
        await self._audit.emit(codes.LOCK_DELETED, {"name": name, "user": by})
