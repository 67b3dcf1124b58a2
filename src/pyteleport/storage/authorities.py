"""Certificate authorities, one record per type. Created once; never overwritten silently."""

from __future__ import annotations

import base64

from pyteleport.backend import Backend, Item
from pyteleport.errors import NotFoundError
from pyteleport.model.authority import CAType, CertAuthority
from pyteleport.storage.codec import dump, load

PREFIX = "/authorities/"
CLUSTER_NAME_KEY = "/cluster/name"  # written after the CAs: a cluster exists once it is there


def _key(ca_type: CAType) -> str:
    return f"{PREFIX}{ca_type.value}"


class AuthorityStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def get(self, ca_type: CAType) -> CertAuthority:
        try:
            item = await self._backend.get(_key(ca_type))
        except NotFoundError:
            raise NotFoundError(f"{ca_type.value} certificate authority is not found") from None
        data = load(item.value, "certificate authority")
        return CertAuthority(
            type=ca_type,
            cluster_name=data["cluster_name"],
            private_key=base64.b64decode(data["private_key"]),
            public_key=base64.b64decode(data["public_key"]),
        )

    async def create(self, ca: CertAuthority) -> None:
        """Store a new CA; AlreadyExistsError if one exists (never replaced by accident)."""
        value = dump(
            {
                "cluster_name": ca.cluster_name,
                "private_key": base64.b64encode(ca.private_key).decode(),
                "public_key": base64.b64encode(ca.public_key).decode(),
            }
        )
        await self._backend.create(Item(key=_key(ca.type), value=value))
