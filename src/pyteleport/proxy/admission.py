"""Where a typed ``host:port`` leads, and whether a user may go there.

A typed name resolves to a registered node when it is the node's name or hostname, or when it
reaches the node's address (the same port, and the same host or one of its addresses); anything
else is an unregistered destination with no labels. Admission then checks, deny first:

- locks on the user, the login and the node. A lock on a registered node's name holds for that
  node whatever name reaches it; a lock on any other name or address holds for every destination
  with that name or address (its resolved addresses, and the target's host-certificate
  principals once they are known);
- the roles' ``node_labels`` (deny beats allow; an unregistered destination has no labels, so
  only ``'*': '*'`` reaches it);
- for the byte pipes of the ``node``/``off`` modes, which carry any TCP stream, an unregistered
  destination only on the SSH port (``UNREGISTERED_PIPE_PORTS``): a pipe is not an open relay.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

from pyteleport.errors import AccessDeniedError
from pyteleport.model.lock import Lock
from pyteleport.model.node import Node, join_addr
from pyteleport.policy.access import RoleSet

log = logging.getLogger("pyteleport.proxy")

UNREGISTERED_PIPE_PORTS = (22,)
RESOLVE_TIMEOUT_S = 2.0
RESOLVED_TTL_S = 30.0
_MAX_CACHED = 4096
_NO_LABELS: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Destination:
    typed: str  # the host as the user typed it
    host: str  # the host the proxy dials
    port: int
    node: Node | None = None
    addresses: frozenset[str] = frozenset()  # of the typed host
    principals: frozenset[str] = field(default_factory=frozenset)  # of the target's host cert

    @property
    def name(self) -> str:
        """The node's name, or the address as typed when it is not registered."""
        return self.node.name if self.node is not None else self.typed

    @property
    def labels(self) -> Mapping[str, str]:
        return self.node.labels if self.node is not None else _NO_LABELS

    @property
    def addr(self) -> str:
        return join_addr(self.host, self.port)

    def identity(self) -> frozenset[str]:
        """Every name and address this destination is known by, lower-cased."""
        names = {self.typed.lower(), self.host.lower(), *self.addresses, *self.principals}
        if self.node is not None:
            names |= self.node.names()
        return frozenset(names)

    def with_principals(self, principals: Iterable[str]) -> Destination:
        return replace(self, principals=frozenset(p.lower() for p in principals))


class Admission:
    """Resolves and admits destinations for one proxy. ``nodes`` and ``locks`` read the auth
    service's inventory and locks as they are now."""

    def __init__(
        self,
        nodes: Callable[[], Awaitable[list[Node]]],
        resolve_timeout_s: float = RESOLVE_TIMEOUT_S,
    ) -> None:
        self._nodes = nodes
        self._timeout_s = resolve_timeout_s
        self._resolved: dict[str, tuple[float, frozenset[str]]] = {}
        self._node_names: frozenset[str] = frozenset()  # as last read, lower-cased

    async def destination(self, host: str, port: int) -> Destination:
        """The registered node ``host:port`` reaches, or an unregistered destination."""
        nodes = await self._nodes()
        self._node_names = frozenset(n.name.lower() for n in nodes)
        typed = host.lower()
        for node in nodes:
            if typed in (node.name.lower(), node.hostname.lower()):
                return Destination(
                    host, node.host, node.port, node, await self.addresses(node.host)
                )
        addresses = await self.addresses(host)
        for node in nodes:
            if node.port != port:
                continue
            if node.host.lower() == typed or addresses & await self.addresses(node.host):
                return Destination(host, node.host, node.port, node, addresses)
        return Destination(host, host, port, None, addresses)

    async def admit(
        self,
        user: str,
        roles: RoleSet,
        dest: Destination,
        locks: list[Lock],
        login: str = "",
        pipe: bool = False,
    ) -> None:
        """Raise AccessDeniedError with the reason unless ``user`` may reach ``dest``."""
        await self.resolve_locks(locks)
        lock = self.lock_for(locks, user, login, dest)
        if lock is not None:
            raise AccessDeniedError(lock.describe())
        roles.check_node(dest.name, dest.labels, login)
        if pipe and dest.node is None and dest.port not in UNREGISTERED_PIPE_PORTS:
            raise AccessDeniedError(
                f"access denied to {dest.addr}: without session recording the proxy pipes only "
                f"to registered nodes or to port {UNREGISTERED_PIPE_PORTS[0]} of other hosts; "
                f'register it: tctl create a node with spec.addr "{dest.addr}"'
            )

    async def resolve_locks(self, locks: list[Lock]) -> None:
        """Resolve the node locks' names ahead, so :meth:`lock_for` decides without waiting."""
        names = {lock.target for lock in locks if lock.target_kind == "node"}
        if names:
            self._node_names = frozenset(n.name.lower() for n in await self._nodes())
            await asyncio.gather(
                *(self.addresses(n) for n in names if n.lower() not in self._node_names)
            )

    def lock_for(self, locks: list[Lock], user: str, login: str, dest: Destination) -> Lock | None:
        """The first lock in force on the user, the login or the destination (None: none)."""
        identity: frozenset[str] | None = None
        for lock in locks:
            if lock.target_kind != "node":
                if lock.matches(user=user, login=login):
                    return lock
                continue
            target = lock.target.lower()
            if dest.node is not None and target == dest.node.name.lower():
                return lock
            if identity is None:
                identity = dest.identity()
            if target in identity:
                return lock
            if target in self._node_names:
                continue  # another registered node: only its own name and addresses match
            cached = self._resolved.get(target)
            if cached is not None and cached[1] & dest.addresses:
                return lock
        return None

    async def addresses(self, host: str) -> frozenset[str]:
        """The IP addresses of ``host`` (itself when it is one; empty when it does not resolve
        within the timeout), cached for ``RESOLVED_TTL_S``."""
        key = host.lower()
        try:
            return frozenset({str(ipaddress.ip_address(key))})
        except ValueError:
            pass
        now = time.monotonic()
        cached = self._resolved.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        loop = asyncio.get_running_loop()
        try:
            infos = await asyncio.wait_for(
                loop.getaddrinfo(key, None, type=socket.SOCK_STREAM), self._timeout_s
            )
            found = frozenset(str(info[4][0]) for info in infos)
        except (OSError, TimeoutError, UnicodeError) as exc:
            log.debug("could not resolve %s: %s", host, exc)
            found = frozenset()
        if len(self._resolved) >= _MAX_CACHED:
            self._resolved = {k: v for k, v in self._resolved.items() if v[0] > now}
            if len(self._resolved) >= _MAX_CACHED:
                self._resolved.clear()
        self._resolved[key] = (now + RESOLVED_TTL_S, found)
        return found
