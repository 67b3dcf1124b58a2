"""Access requests under /access_requests/<name>; each item lives until the request expires."""

from __future__ import annotations

from collections.abc import Callable

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.errors import CompareFailedError, ConnectionProblemError, NotFoundError
from pyteleport.model.accessrequest import (
    AccessRequest,
    access_request_from_dict,
    access_request_to_dict,
)
from pyteleport.storage.codec import dump, load

PREFIX = "/access_requests/"
_CHANGE_ATTEMPTS = 10


class AccessRequestStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def _item(self, request: AccessRequest) -> Item:
        return Item(
            key=PREFIX + request.name,
            value=dump(access_request_to_dict(request)),
            expires=request.expires,
        )

    async def create(self, request: AccessRequest) -> None:
        await self._backend.create(self._item(request))

    async def get(self, name: str) -> AccessRequest:
        try:
            item = await self._backend.get(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'access request "{name}" is not found') from None
        return access_request_from_dict(load(item.value, "access request"))

    async def list(self) -> list[AccessRequest]:
        items = await self._backend.get_range(PREFIX, prefix_end(PREFIX))
        return [access_request_from_dict(load(i.value, "access request")) for i in items]

    async def change(
        self, name: str, change: Callable[[AccessRequest], AccessRequest]
    ) -> AccessRequest:
        """Apply ``change`` to the stored request as one compare-and-swap, retried when another
        reviewer changed it meanwhile; the request as changed."""
        for _ in range(_CHANGE_ATTEMPTS):
            try:
                item = await self._backend.get(PREFIX + name)
            except NotFoundError:
                raise NotFoundError(f'access request "{name}" is not found') from None
            before = access_request_from_dict(load(item.value, "access request"))
            after = change(before)
            try:
                await self._backend.compare_and_swap(item, self._item(after))
            except CompareFailedError:
                continue
            return after
        raise ConnectionProblemError(f'access request "{name}" kept changing: try again')

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'access request "{name}" is not found') from None
