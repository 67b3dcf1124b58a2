"""Join tokens in the auth service: create and delete them (audited without the secret), and
``teleport join openssh``, which spends a node token's right to a host certificate."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Sequence

from pyteleport.auth.inventory import NodeInventory
from pyteleport.clock import Clock
from pyteleport.errors import AccessDeniedError, BadParameterError, NotFoundError
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.model.node import Node
from pyteleport.model.token import JOIN_ROLES, ProvisionToken
from pyteleport.storage.tokens import TokenStore

DEFAULT_JOIN_TOKEN_TTL = dt.timedelta(minutes=30)
MAX_JOIN_TOKEN_TTL = dt.timedelta(hours=48)
# (public key line, principals, ttl) -> host certificate
HostSigner = Callable[[bytes, Sequence[str], dt.timedelta | None], bytes]


class JoinTokens:
    def __init__(
        self,
        store: TokenStore,
        audit: AuditLog,
        clock: Clock,
        nodes: NodeInventory,
        sign_host_cert: HostSigner,
    ) -> None:
        self.store = store
        self._audit = audit
        self._clock = clock
        self._nodes = nodes
        self._sign_host_cert = sign_host_cert

    async def create(
        self, roles: Sequence[str], ttl: dt.timedelta | None, by: str
    ) -> ProvisionToken:
        for role in roles:
            if role not in JOIN_ROLES:
                raise BadParameterError(
                    f'unknown token type "{role}", expected one of: ' + ",".join(JOIN_ROLES)
                )
        ttl = ttl or DEFAULT_JOIN_TOKEN_TTL
        if ttl <= dt.timedelta(0) or ttl > MAX_JOIN_TOKEN_TTL:
            raise BadParameterError("--ttl must be positive and at most 48h")
        token = ProvisionToken(
            token=secrets.token_hex(16), roles=tuple(roles), expires=self._clock.now() + ttl
        )
        await self.store.create_join(token)
        await self._audit.emit(codes.TOKEN_CREATED, {"roles": list(roles), "user": by})
        return token

    async def delete(self, token: str, by: str) -> None:
        """The token itself is a secret: the event names its roles, never the token."""
        found = await self.store.get_join(token)
        await self.store.delete_join(token)
        await self._audit.emit(codes.TOKEN_DELETED, {"roles": list(found.roles), "user": by})

    async def join_openssh_node(
        self, token: str, public_key_line: bytes, node: Node, principals: Sequence[str], by: str
    ) -> tuple[bytes, list[str]]:
        """``teleport join openssh``: with a join token of type node, sign the host's
        certificate for its names (the node's name, hostname and address host, and
        ``principals``) and register the node, or update it (a rebuilt host joins again)."""
        try:
            found = await self.store.get_join(token)
        except NotFoundError:
            found = None
        if found is None or "node" not in found.roles or found.expires <= self._clock.now():
            raise AccessDeniedError(
                "the join token is not valid: it expired, was deleted or is not of type node "
                "(tctl tokens add --type=node --out=FILE makes one)"
            )
        names = list(
            dict.fromkeys(n for n in (node.name, node.hostname, node.host, *principals) if n)
        )
        cert = self._sign_host_cert(public_key_line, names, None)
        await self._nodes.upsert(node, overwrite=True, by=by)
        return cert, names
