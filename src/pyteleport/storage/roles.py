"""Roles under /roles/<name>."""

from __future__ import annotations

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.errors import AlreadyExistsError, NotFoundError
from pyteleport.model.role import Role, role_from_dict, role_to_dict
from pyteleport.storage.codec import dump, load

PREFIX = "/roles/"


class RoleStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def get(self, name: str) -> Role:
        try:
            item = await self._backend.get(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'role "{name}" is not found') from None
        return role_from_dict(load(item.value, "role"))

    async def create(self, role: Role) -> None:
        try:
            await self._backend.create(Item(key=PREFIX + role.name, value=dump(role_to_dict(role))))
        except AlreadyExistsError:
            raise AlreadyExistsError(f'role "{role.name}" already exists') from None

    async def upsert(self, role: Role) -> None:
        await self._backend.put(Item(key=PREFIX + role.name, value=dump(role_to_dict(role))))

    async def list(self) -> list[Role]:
        items = await self._backend.get_range(PREFIX, prefix_end(PREFIX))
        return [role_from_dict(load(i.value, "role")) for i in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'role "{name}" is not found') from None
