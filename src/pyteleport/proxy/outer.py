"""The channels of one user connection on 3023 that carry a target: the ``proxy:host:port``
session (``OuterSession``), the ``ssh -J`` direct-tcpip channel (``JumpSession``), and the
recording forwarder served on either (``ForwarderLink``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import asyncssh

from pyteleport.errors import BadParameterError, TeleportError
from pyteleport.model.lock import Lock
from pyteleport.proxy.admission import Destination
from pyteleport.proxy.forwarder import ForwardingServer, ForwardTarget
from pyteleport.ssh.pipe import TCPPipe
from pyteleport.ssh.target import ENCRYPTION_ALGS, KEEPALIVE_INTERVAL_S
from pyteleport.ssh.tunnel import ChannelTunnel

if TYPE_CHECKING:
    from pyteleport.proxy.sshserver import OuterServer

log = logging.getLogger("pyteleport.proxy")

_SUBSYSTEM = re.compile(
    r"^proxy:(?P<host>\[[^\]]*\]|[^:@\[\]]+)(?::(?P<port>\d+))?(?:@(?P<cluster>.+))?$"
)


def parse_proxy_subsystem(name: str, cluster_name: str) -> tuple[str, int]:
    """``proxy:host:port[@cluster]`` → (host, port); anything else refused in Teleport's words."""
    match = _SUBSYSTEM.match(name)
    if not match:
        raise BadParameterError(
            f"invalid format for proxy request: \"{name}\", expected 'proxy:host:port@cluster'"
        )
    host = match.group("host").strip("[]")
    port = int(match.group("port") or 22)
    cluster = match.group("cluster")
    if cluster and cluster != cluster_name:
        raise BadParameterError(
            f'cluster "{cluster}" is not found: this proxy serves "{cluster_name}"'
        )
    if not host or not 0 < port < 65536:
        raise BadParameterError(
            f"invalid format for proxy request: \"{name}\", expected 'proxy:host:port@cluster'"
        )
    return host, port


class OuterSession(asyncssh.SSHServerSession[bytes]):
    """The session channel that carries ``proxy:host:port``."""

    def __init__(self, server: OuterServer) -> None:
        self._server = server
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._subsystem = ""
        self._tunnel: ChannelTunnel | None = None
        self._pipe: TCPPipe | None = None
        self._task: asyncio.Task[None] | None = None
        self._link: ForwarderLink | None = None
        self._early: list[bytes] = []  # data that came before the pipe was connected
        self._early_eof = False
        self._dial_failed = False
        self._dest: Destination | None = None  # the pipe's, once admitted

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def subsystem_requested(self, subsystem: str) -> bool:
        self._subsystem = subsystem
        return True

    def apply_locks(self, locks: list[Lock]) -> None:
        if self._link is not None and self._link.forwarding is not None:
            self._link.forwarding.apply_locks(locks)
        elif self._pipe is not None and self._dest is not None:
            cert = self._server.check.accepted
            user = cert.key_id if cert is not None else ""
            lock = self._server.service.admission.lock_for(locks, user, "", self._dest)
            if lock is not None:
                self.end(lock.describe())

    @property
    def settling(self) -> bool:
        """True while the target is being admitted and dialled: nothing carries a message yet."""
        if self._link is not None:
            return self._link.settling
        return self._pipe is None and self._task is not None and not self._task.done()

    def end(self, message: str) -> None:
        if self._link is not None:
            self._link.end(message)
        elif self._chan is not None:
            # A pipe carries the user's own encrypted SSH: the message goes on stderr, then
            # the pipe closes.
            with contextlib.suppress(OSError):
                self._chan.write_stderr(f"\r\n{message}\r\n".encode())
            if self._pipe is not None:
                self._chan.exit(1)
                self._pipe.close()

    def shell_requested(self) -> bool:
        return False

    def exec_requested(self, command: str) -> bool:
        return False

    def session_started(self) -> None:
        assert self._chan is not None
        service = self._server.service
        try:
            host, port = parse_proxy_subsystem(self._subsystem, service.access.cluster_name)
        except BadParameterError as exc:
            self._chan.write_stderr(exc.message.encode() + b"\n")
            self._chan.exit(1)
            return
        if service.forwards:
            self._serve_forwarder(host, port)
        else:
            self._chan.pause_reading()
            self._task = asyncio.get_running_loop().create_task(self._open_pipe(host, port))

    def _serve_forwarder(self, host: str, port: int) -> None:
        assert self._chan is not None and self._server.conn is not None
        try:
            self._link = ForwarderLink(
                self._server,
                self._chan,
                host,
                port,
                self._server.agent.conn
                if self._server.agent is not None and self._server.agent.requested
                else None,
            )
        except TeleportError as exc:
            self._chan.write_stderr(exc.message.encode() + b"\n")
            self._chan.exit(1)
            return
        self._tunnel = self._link.tunnel

    async def _open_pipe(self, host: str, port: int) -> None:
        assert self._chan is not None
        try:
            dest = await self._server.admit_pipe(host, port)
            self._pipe = await TCPPipe.open(self._chan, dest.host, dest.port)
            self._dest = dest
            self._server.audit_pipe(dest)
        except (OSError, TeleportError) as exc:
            if isinstance(exc, TeleportError):
                reason = exc.message
            else:
                reason = f"dial tcp {host}:{port}: connect: {(exc.strerror or str(exc)).lower()}"
            # The client may have closed meanwhile, its close waiting in asyncssh behind the
            # data held while dialling: drop that data so asyncssh reaches the close.
            self._dial_failed = True
            self._early.clear()
            with contextlib.suppress(OSError):
                self._chan.write_stderr(f"{reason}\n".encode())
                self._chan.exit(1)
            self._chan.resume_reading()
            return
        early, self._early = self._early, []
        for data in early:
            self._pipe.write(data)
        if self._early_eof:
            self._pipe.write_eof()
        if not self._pipe.full:  # else resume_writing resumes it
            self._chan.resume_reading()

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self._tunnel is not None:
            self._tunnel.feed(data)
        elif self._pipe is not None:
            self._pipe.write(data)
        elif self._dial_failed:
            return
        else:
            # The target is still being dialled (asyncssh resumed reading after
            # session_started): keep this, and let the window hold back the rest.
            self._early.append(data)
            if self._chan is not None:
                self._chan.pause_reading()

    def eof_received(self) -> bool:
        if self._tunnel is not None:
            self._tunnel.feed_eof()
        elif self._pipe is not None:
            self._pipe.write_eof()
        else:
            self._early_eof = True
        return True

    def pause_writing(self) -> None:
        if self._pipe is not None:
            self._pipe.pause_reading()

    def resume_writing(self) -> None:
        if self._pipe is not None:
            self._pipe.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._tunnel is not None:
            self._tunnel.lost(exc)
        if self._pipe is not None:
            self._pipe.close()
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self._link is not None:
            self._link.cancel()


class ForwarderLink:
    """The recording forwarder served on one channel of the outer connection: the session
    channel of ``proxy:host:port``, or the direct-tcpip channel of ``ssh -J``."""

    def __init__(
        self,
        server: OuterServer,
        chan: Any,
        host: str,
        port: int,
        agent: asyncssh.SSHServerConnection | None,
        agent_from_inner: bool = False,
    ) -> None:
        assert server.conn is not None and server.check.accepted is not None
        service = server.service
        peer = server.conn.get_extra_info("peername") or ("", 0)
        local = server.conn.get_extra_info("sockname") or ("", 0)
        target = ForwardTarget(
            user=server.check.accepted.key_id,
            host=host,
            port=port,
            remote_addr=f"{peer[0]}:{peer[1]}",
            local_addr=f"{local[0]}:{local[1]}",
        )
        # The name as typed, and as ``tsh config``'s ssh_config makes ssh check it.
        host_pair = service.host_keys.pair([host, f"{host}.{service.access.cluster_name}"])
        self._chan = chan
        self.tunnel = ChannelTunnel(chan, {"peername": peer, "sockname": local})
        self.forwarding: ForwardingServer | None = None

        def factory() -> ForwardingServer:
            self.forwarding = ForwardingServer(
                target,
                service.forwarder,
                server.roles,
                agent,
                agent_from_inner=agent_from_inner,
            )
            return self.forwarding

        async def serve() -> None:
            await serve_inner(
                lambda: asyncssh.connect_reverse(
                    host,
                    port,
                    tunnel=self.tunnel,
                    server_factory=factory,
                    server_host_keys=[host_pair],
                    encoding=None,
                    line_editor=False,
                    allow_scp=False,
                    gss_host=None,
                    agent_forwarding=True,
                    encryption_algs=ENCRYPTION_ALGS,
                    keepalive_interval=KEEPALIVE_INTERVAL_S,
                    login_timeout=60,
                    config=None,
                ),
                self._chan,
                f"{host}:{port}",
            )

        self._task = asyncio.get_running_loop().create_task(serve())

    @property
    def settling(self) -> bool:
        """True while the inner connection's handshake is under way: until its channels reach
        admission, only that admission can tell the user why it is refused."""
        return not self._task.done()

    def end(self, message: str) -> None:
        if self.forwarding is not None:
            self.forwarding.end(message)

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()


async def serve_inner(connect: Callable[[], Awaitable[object]], chan: Any, where: str) -> None:
    """Set up the inner connection on ``chan``; if that fails, whatever the error, the channel
    that carries it is closed, so the user's ssh is not left waiting on it."""
    try:
        await connect()
    except (asyncssh.Error, OSError) as exc:
        log.info("inner SSH connection to %s ended: %s", where, exc)
        chan.close()
    except Exception:
        log.exception("inner SSH connection to %s failed", where)
        chan.close()


class JumpSession(asyncssh.SSHTCPSession[bytes]):
    """``ssh -J user@proxy:3023 user@host``: a direct-tcpip channel on the outer connection.
    In recording mode it carries the recording forwarder exactly as ``proxy:host:port`` does,
    so a jump never bypasses the recording."""

    def __init__(self, server: OuterServer, host: str, port: int) -> None:
        self._server, self._host, self._port = server, host, port
        self._link: ForwarderLink | None = None

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self._link = ForwarderLink(
            self._server, chan, self._host, self._port, agent=None, agent_from_inner=True
        )

    def data_received(self, data: bytes, datatype: int | None) -> None:
        if self._link is not None:
            self._link.tunnel.feed(data)

    def eof_received(self) -> bool:
        if self._link is not None:
            self._link.tunnel.feed_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self._link is not None:
            self._link.tunnel.lost(exc)
            self._link.cancel()

    def apply_locks(self, locks: list[Lock]) -> None:
        if self._link is not None and self._link.forwarding is not None:
            self._link.forwarding.apply_locks(locks)

    @property
    def settling(self) -> bool:
        return self._link is None or self._link.settling

    def end(self, message: str) -> None:
        if self._link is not None:
            self._link.end(message)
