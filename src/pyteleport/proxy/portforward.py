"""Port forwarding on the recording forwarder's inner connection: ``ssh -L``/``-D`` open a
connection from the target, ``ssh -R`` makes the target listen, as OpenSSH alone would do it;
each allowed by the roles' ``port_forwarding`` and audited as ``port``."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from pyteleport.errors import TeleportError
from pyteleport.policy.access import RoleSet
from pyteleport.ssh import tcprelay
from pyteleport.ssh.tcprelay import TCPEnd

log = logging.getLogger("pyteleport.proxy")

# login -> the roles, once locks, node_labels and the login are checked (else TeleportError)
Admit = Callable[[str], Awaitable[RoleSet]]
# login -> the shared target connection
Connect = Callable[[str], Awaitable[asyncssh.SSHClientConnection]]
# login, extra fields -> a ``port`` event
AuditPort = Callable[[str, dict[str, Any]], Awaitable[None]]


class PortForwarding:
    def __init__(self, admit: Admit, connect: Connect, audit: AuditPort) -> None:
        self._admit = admit
        self._connect = connect
        self._audit = audit

    async def open_tcp(self, login: str, host: str, port: int) -> TCPEnd:
        """``ssh -L``/``-D``: a connection to ``host:port`` opened by the target."""
        try:
            roles = await self._admit(login)
            if not roles.can_port_forward():
                raise asyncssh.ChannelOpenError(
                    asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
                    f"port forwarding to {host}:{port} is not allowed by roles "
                    f"{','.join(roles.names)} (spec.options.port_forwarding)",
                )
            target = await self._connect(login)
            inner, far = tcprelay.pair()
            await target.create_connection(lambda: far, host, port)
        except TeleportError as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, exc.message) from None
        await self._audit(login, {"addr": f"{host}:{port}"})
        return inner

    async def listen_remote(
        self, conn: asyncssh.SSHServerConnection, login: str, host: str, port: int
    ) -> Any:
        """``ssh -R``: the target listens, and each connection it accepts comes back to the
        user's client (``conn``) as a forwarded-tcpip channel."""
        try:
            roles = await self._admit(login)
            if not roles.can_port_forward():
                log.info("refused ssh -R %s:%s of %s: not allowed by roles", host, port, login)
                return False
            target = await self._connect(login)
        except TeleportError as exc:
            log.info("refused ssh -R %s:%s of %s: %s", host, port, login, exc.message)
            return False

        async def accept(orig_host: str, orig_port: int) -> TCPEnd:
            inner, far = tcprelay.pair()
            await conn.create_connection(
                lambda: inner, host, listener.get_port(), orig_host, orig_port
            )
            await self._audit(login, {"addr": f"{host}:{listener.get_port()}", "reverse": True})
            return far

        try:
            listener = await target.create_server(accept, host, port)
        except (asyncssh.Error, OSError) as exc:
            log.info("the target refused ssh -R %s:%s: %s", host, port, exc)
            return False
        return listener


def refuse_unix_forward(dest_path: str) -> Any:
    raise asyncssh.ChannelOpenError(
        asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
        f"forwarding to the unix socket {dest_path} is not supported through the recording "
        "proxy: forward a TCP port instead",
    )


def refuse_tunnel() -> bool:
    raise asyncssh.ChannelOpenError(
        asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED,
        "tunnel device forwarding (ssh -w) is not supported through the recording proxy",
    )
