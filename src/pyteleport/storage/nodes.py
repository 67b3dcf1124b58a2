"""Nodes under /nodes/<name>."""

from __future__ import annotations

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.errors import AlreadyExistsError, NotFoundError
from pyteleport.model.node import Node, node_from_dict, node_to_dict
from pyteleport.storage.codec import dump, load

PREFIX = "/nodes/"


class NodeStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def get(self, name: str) -> Node:
        try:
            item = await self._backend.get(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'node "{name}" is not found') from None
        return node_from_dict(load(item.value, "node"))

    async def create(self, node: Node) -> None:
        try:
            await self._backend.create(Item(key=PREFIX + node.name, value=dump(node_to_dict(node))))
        except AlreadyExistsError:
            raise AlreadyExistsError(
                f'node "{node.name}" already exists: use tctl create -f to overwrite it'
            ) from None

    async def upsert(self, node: Node) -> None:
        await self._backend.put(Item(key=PREFIX + node.name, value=dump(node_to_dict(node))))

    async def list(self) -> list[Node]:
        items = await self._backend.get_range(PREFIX, prefix_end(PREFIX))
        return [node_from_dict(load(i.value, "node")) for i in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'node "{name}" is not found') from None
