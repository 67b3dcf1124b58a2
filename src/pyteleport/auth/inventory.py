"""The fleet inventory of the auth service: registered nodes, each change audited with who made it."""

from __future__ import annotations

from dataclasses import replace

from pyteleport.backend import Backend
from pyteleport.clock import Clock
from pyteleport.errors import NotFoundError
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.model.node import Node
from pyteleport.storage.nodes import NodeStore


class NodeInventory:
    def __init__(self, backend: Backend, audit: AuditLog, clock: Clock) -> None:
        self.store = NodeStore(backend)
        self._audit = audit
        self._clock = clock

    async def upsert(self, node: Node, overwrite: bool, by: str) -> bool:
        """Register ``node``; True when it is new. Without ``overwrite`` an existing one is
        refused."""
        node = replace(node, created_by=by, created=self._clock.now())
        created = True
        if overwrite:
            try:
                await self.store.get(node.name)
                created = False
            except NotFoundError:
                pass
            await self.store.upsert(node)
        else:
            await self.store.create(node)
        await self._audit.emit(
            codes.NODE_CREATED,
            {
                "name": node.name,
                "user": by,
                "addr": node.addr,
                "labels": dict(node.labels),
                "updated": not created,
            },
        )
        return created

    async def list(self) -> list[Node]:
        return await self.store.list()

    async def get(self, name: str) -> Node:
        return await self.store.get(name)

    async def delete(self, name: str, by: str) -> None:
        await self.store.delete(name)
        await self._audit.emit(codes.NODE_DELETED, {"name": name, "user": by})
