"""Locks under /locks/<name>; an expiring lock is an item with a lease, gone when it ends."""

from __future__ import annotations

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.errors import BadParameterError, NotFoundError
from pyteleport.model.lock import Lock
from pyteleport.model.timefmt import format_time, parse_time
from pyteleport.storage.codec import dump, load

PREFIX = "/locks/"


def lock_to_dict(lock: Lock) -> dict[str, object]:
    spec: dict[str, object] = {"target": {lock.target_kind: lock.target}}
    if lock.message:
        spec["message"] = lock.message
    if lock.expires is not None:
        spec["expires"] = format_time(lock.expires)
    metadata: dict[str, object] = {"name": lock.name}
    if lock.created is not None:
        spec["created_at"] = format_time(lock.created)
    if lock.created_by:
        spec["created_by"] = lock.created_by
    return {"kind": "lock", "version": "v2", "metadata": metadata, "spec": spec}


def lock_from_dict(data: dict[str, object]) -> Lock:
    spec = data.get("spec")
    metadata = data.get("metadata")
    target = spec.get("target") if isinstance(spec, dict) else None
    if not isinstance(spec, dict) or not isinstance(metadata, dict):
        raise BadParameterError("a lock needs metadata and spec mappings")
    if not isinstance(target, dict) or len(target) != 1:
        raise BadParameterError("a lock's spec.target must name one user, login or node")
    [(kind, value)] = target.items()
    return Lock(
        name=str(metadata["name"]),
        target_kind=str(kind),
        target=str(value),
        message=str(spec.get("message", "")),
        expires=parse_time(str(spec["expires"])) if spec.get("expires") else None,
        created_by=str(spec.get("created_by", "")),
        created=parse_time(str(spec["created_at"])) if spec.get("created_at") else None,
    )


class LockStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create(self, lock: Lock) -> None:
        await self._backend.create(
            Item(key=PREFIX + lock.name, value=dump(lock_to_dict(lock)), expires=lock.expires)
        )

    async def list(self) -> list[Lock]:
        items = await self._backend.get_range(PREFIX, prefix_end(PREFIX))
        return [lock_from_dict(load(item.value, "lock")) for item in items]

    async def delete(self, name: str) -> None:
        try:
            await self._backend.delete(PREFIX + name)
        except NotFoundError:
            raise NotFoundError(f'lock "{name}" is not found') from None
