"""The proxy's SSH listener (3023): users with a certificate from the user CA, the
``recording-proxy@teleport.com`` question, and the ``proxy:host:port[@cluster]`` subsystem.

In ``proxy``/``proxy-sync`` modes the subsystem channel carries a second SSH connection served by
the recording forwarder, which records; in ``off`` mode the same forwarder audits without
recording; in ``node``/``node-sync`` modes the subsystem is a byte pipe to the target.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
import weakref
from dataclasses import dataclass
from typing import Any

import asyncssh

from pyteleport.api.access import ProxySSHAccessPoint
from pyteleport.api.metrics import NO_METRICS, Metrics
from pyteleport.clock import Clock, SystemClock
from pyteleport.crypto import sshkeys
from pyteleport.errors import BadParameterError, LimitExceededError, TeleportError
from pyteleport.events import codes
from pyteleport.model.lock import Lock
from pyteleport.policy.access import ACTIVE_REQUESTS_EXTENSION, RoleSet, requests_from_extension
from pyteleport.policy.ratelimit import RateLimiter
from pyteleport.proxy.admission import Admission, Destination
from pyteleport.proxy.forwarder import AuditHook, ForwarderServices, ObserverFactory
from pyteleport.proxy.hostkeys import HostKeyCache
from pyteleport.proxy.outer import JumpSession, OuterSession
from pyteleport.ssh.agentfwd import ForwardedAgent, keep_agent_in_memory
from pyteleport.ssh.certcheck import CertificateCheck, watch_client_certificates
from pyteleport.ssh.requests import add_global_request_handler
from pyteleport.ssh.target import ENCRYPTION_ALGS, KEEPALIVE_INTERVAL_S, TargetDialer
from pyteleport.ssh.transport import coalesce_writes

log = logging.getLogger("pyteleport.proxy")

# The modes in which the proxy terminates each session (the recording forwarder): it records
# in proxy and proxy-sync, and in off it audits the sessions (session.start, session.end, exec)
# without a recording, as Teleport does. In node and node-sync the subsystem is a byte pipe.
FORWARDER_MODES = ("proxy", "proxy-sync", "off")
END_GRACE_S = 1.0
# How long a connection that is ended before a session of it runs is kept at most, and how
# often it is looked at meanwhile: its channels are still being set up (the target dialled,
# the inner SSH handshake under way) or not yet asked for, and their admission refuses them
# with the reason on the user's terminal (ServerConn._end_later).
SETTLE_LIMIT_S = 60.0
SETTLE_CHECK_S = 1.0
LOCK_POLL_S = 1.0


@dataclass(frozen=True, slots=True)
class ProxySSHSettings:
    session_recording: str
    checks_host_keys: bool
    server_id: str
    principals: tuple[str, ...]  # names the proxy's own host certificate carries
    max_connections: int = 15_000
    max_users: int = 250
    # New connections per source address, (rate per second, burst) each: a connection must
    # pass every one (connection_limits.rates in the config).
    connection_rates: tuple[tuple[float, int], ...] = ((10.0, 100),)
    # Failed authentications per source address before it is refused for a while.
    failed_auth_rate_per_s: float = 0.1
    failed_auth_burst: int = 10


class ProxySSHService:
    def __init__(
        self,
        access: ProxySSHAccessPoint,
        settings: ProxySSHSettings,
        observer_factory: ObserverFactory,
        audit: AuditHook,
        host: str,
        port: int,
        clock: Clock | None = None,
        metrics: Metrics = NO_METRICS,
    ) -> None:
        self.access = access
        self.metrics = metrics
        self.audit = audit
        self.settings = settings
        self.observer_factory = observer_factory
        self._host, self._port = host, port
        self.host_keys = HostKeyCache(access)
        self.dialer = TargetDialer()
        self.admission = Admission(access.list_nodes)
        self.user_ca = sshkeys.load_public_key(access.user_ca_public_key())
        self.host_ca = sshkeys.load_public_key(access.host_ca_public_key())
        self.forwarder = ForwarderServices(
            user_ca=self.user_ca,
            host_ca=self.host_ca if settings.checks_host_keys else None,
            observer_factory=observer_factory,
            audit=audit,
            dialer=self.dialer,
            locks=access.list_locks,
            admission=self.admission,
            metrics=metrics,
        )
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self.servers: set[OuterServer] = set()
        clock = clock or SystemClock()
        self._connection_rates = [
            RateLimiter(rate, burst, clock) for rate, burst in settings.connection_rates
        ]
        self._failed_auth = RateLimiter(
            settings.failed_auth_rate_per_s, settings.failed_auth_burst, clock
        )
        self._blocked: dict[str, float] = {}
        self._lock_watch: asyncio.Task[None] | None = (
            None  # source address -> monotonic time it may retry
        )
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def port(self) -> int:
        assert self._acceptor is not None
        return int(self._acceptor.get_port())

    @property
    def forwards(self) -> bool:
        return self.settings.session_recording in FORWARDER_MODES

    async def start(self) -> None:
        try:
            self._acceptor = await asyncssh.listen(
                self._host or None,
                self._port,
                server_factory=lambda: OuterServer(self),
                server_host_keys=[self.host_keys.pair(self.settings.principals)],
                agent_forwarding=True,
                x11_forwarding=False,
                allow_scp=False,
                gss_host=None,  # no GSSAPI (asyncssh would look up this host's FQDN per connection)
                line_editor=False,
                encoding=None,
                encryption_algs=ENCRYPTION_ALGS,
                keepalive_interval=KEEPALIVE_INTERVAL_S,
                login_timeout=60,
                config=None,
            )
        except OSError as exc:
            raise BadParameterError(
                f"proxy_service.listen_addr: cannot listen on {self._host}:{self._port}: "
                f"{exc.strerror or exc}"
            ) from exc
        self._lock_watch = asyncio.get_running_loop().create_task(self._watch_locks())

    async def _watch_locks(self) -> None:
        """Every second, end the sessions a lock now covers: live sessions stop within
        seconds of ``tctl lock``. A failing read is logged and retried, never fatal."""
        while True:
            await asyncio.sleep(LOCK_POLL_S)
            try:
                locks = await self.access.list_locks()
            except Exception as exc:
                log.warning("could not read locks: %s", exc)
                continue
            if locks:
                try:
                    await self.admission.resolve_locks(locks)
                except Exception as exc:
                    log.warning("could not read the nodes the locks name: %s", exc)
                for server in list(self.servers):
                    server.apply_locks(locks)

    def keep(self, task: asyncio.Task[Any]) -> None:
        """Hold a reference to a short background task until it ends."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def admit(self, source: str) -> str:
        """Why a new connection from ``source`` is refused, or "" to let it in."""
        limits = self.settings
        if len(self._connections) > limits.max_connections:
            return (
                f"too many connections to this proxy (proxy_service.connection_limits."
                f"max_connections is {limits.max_connections}): try again later"
            )
        until = self._blocked.get(source)
        if until is not None:
            left = until - time.monotonic()
            if left > 0:
                return f"too many failed logins from {source}: try again in {math.ceil(left)}s"
            del self._blocked[source]
        for limiter in self._connection_rates:
            try:
                limiter.check(source)
            except LimitExceededError as exc:
                return (
                    f"too many new connections from {source} (proxy_service.connection_limits."
                    f"rates): try again in {exc.retry_after_s or 1}s"
                )
        return ""

    def admit_user(self, user: str, server: OuterServer) -> str:
        users = {
            s.check.accepted.key_id
            for s in self.servers
            if s is not server and s.check.accepted is not None and not s.refused
        }
        if user not in users and len(users) >= self.settings.max_users:
            return (
                f"too many users connected to this proxy (proxy_service.connection_limits."
                f"max_users is {self.settings.max_users}): try again later"
            )
        return ""

    def note_failed_auth(self, source: str) -> None:
        try:
            self._failed_auth.check(source)
        except LimitExceededError as exc:
            self._blocked[source] = time.monotonic() + (exc.retry_after_s or 60)
            if len(self._blocked) > 65_536:
                now = time.monotonic()
                self._blocked = {k: v for k, v in self._blocked.items() if v > now}

    def track(self, conn: asyncssh.SSHServerConnection, alive: bool) -> None:
        if alive:
            self._connections.add(conn)
        else:
            self._connections.discard(conn)

    async def aclose(self) -> None:
        if self._lock_watch is not None:
            self._lock_watch.cancel()
            self._lock_watch = None
        if self._acceptor is not None:
            self._acceptor.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._acceptor.wait_closed(), 5)
            self._acceptor = None
        for conn in list(self._connections):
            conn.close()
        for conn in list(self._connections):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.wait_closed(), 5)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)


class OuterServer(asyncssh.SSHServer):
    """One user connection on 3023."""

    def __init__(self, service: ProxySSHService) -> None:
        self.service = service
        self.check = CertificateCheck()
        self.username = ""
        self.source = ""  # the client's address
        self.remote_addr = ""
        self.agent: ForwardedAgent | None = None
        self.refused = ""  # why a limit refused this connection
        self.sessions: weakref.WeakSet[OuterSession | JumpSession] = weakref.WeakSet()
        self.conn: asyncssh.SSHServerConnection | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self._ending: asyncio.TimerHandle | None = None
        self._opened = False  # a channel was asked for (a session, a jump, a pipe)

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        coalesce_writes(conn)
        self.conn = conn
        self.service.track(conn, True)
        self.service.servers.add(self)
        peer = conn.get_extra_info("peername") or ("", 0)
        self.source = str(peer[0])
        # Kept now: once the socket is closed asyncssh no longer knows the peer.
        self.remote_addr = f"{peer[0]}:{peer[1]}"
        self.refused = ""
        add_global_request_handler(
            conn,
            "recording-proxy@teleport.com",
            # tsh forwards its agent when the answer is true: the forwarder logs in with it.
            lambda: b"true" if self.service.forwards else b"false",
        )
        # In recording mode the proxy itself needs the user's agent (to log into the target) and
        # carries ssh -J as the recorded path: the role's forward_agent and port_forwarding
        # govern what reaches the target, not these two legs to the proxy.
        grant = ("agent-forwarding", "port-forwarding") if self.service.forwards else ()
        watch_client_certificates(conn, self.service.user_ca, self.check, grant=grant)
        self.agent = keep_agent_in_memory(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        assert self.conn is not None
        self.service.track(self.conn, False)
        self.service.servers.discard(self)
        if self.check.accepted is None and self.check.refusal and not self.refused:
            self.service.note_failed_auth(self.source)
        if self.refused:
            self.check.refusal = self.refused
        if self._expiry is not None:
            self._expiry.cancel()
        if self._ending is not None:
            self._ending.cancel()
        if (self.check.accepted is None or self.refused) and self.check.refusal:
            fields = {
                "user": self.check.accepted.key_id if self.check.accepted else "",
                "login": self.username,
                "error": self.check.refusal,
                "server_id": self.service.settings.server_id,
                "addr.remote": self.remote_addr,
            }
            log.info("refused SSH login from %s: %s", fields["addr.remote"], self.check.refusal)
            self.service.metrics.ssh_auth_failed()
            task = asyncio.get_running_loop().create_task(
                self.service.access.audit.emit(codes.AUTH, fields, success=False)
            )
            self.service.keep(task)

    def begin_auth(self, username: str) -> bool:
        self.username = username
        self.refused = self.service.admit(self.source)
        if self.refused:
            assert self.conn is not None
            log.info("refused a connection from %s: %s", self.source, self.refused)
            self.conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, self.refused)
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if not self.check.refusal:
            self.check.refusal = "ssh: no certificate offered: run tsh login to get one"
        return False

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return bool(key == self.service.user_ca)

    def auth_completed(self) -> None:
        cert = self.check.accepted
        assert cert is not None and self.conn is not None
        self.refused = self.service.admit_user(cert.key_id, self)
        if self.refused:
            log.info("refused %s from %s: %s", cert.key_id, self.source, self.refused)
            self.conn.disconnect(asyncssh.DISC_TOO_MANY_CONNECTIONS, self.refused)
            return
        task = asyncio.get_running_loop().create_task(self._watch_expiry(cert.valid_before))
        self.service.keep(task)

    async def _watch_expiry(self, valid_before: int) -> None:
        """``disconnect_expired_cert``: end the connection when the certificate expires."""
        try:
            roles = await self.roles()
        except TeleportError as exc:
            # A locked or deleted user: each channel's admission says why, then the connection
            # ends.
            self.end(exc.message)
            return
        if any(r.options.disconnect_expired_cert for r in roles.roles):
            loop = asyncio.get_running_loop()
            delay = max(0.0, valid_before - time.time())
            assert self.conn is not None
            self._expiry = loop.call_later(
                delay, self.end, "client certificate expired: run tsh login again"
            )

    def apply_locks(self, locks: list[Lock]) -> None:
        cert = self.check.accepted
        if cert is None or self.refused:
            return
        for lock in locks:
            if lock.matches(user=cert.key_id):
                self.end(lock.describe())
                return
        for session in list(self.sessions):
            session.apply_locks(locks)

    def end(self, message: str) -> None:
        """End every session of this connection with ``message`` on the user's terminal, then
        the connection itself (certificate expiry, a lock on the user)."""
        sessions = list(self.sessions)
        for session in sessions:
            session.end(message)
        conn = self.conn
        # The lock watch comes back every second: the sessions opened since are ended too, the
        # disconnect is set once.
        if conn is not None and self._ending is None:
            log.info("ending the connection of %s: %s", self.username, message)
            self._end_later(conn, message, time.monotonic(), False)

    def _end_later(
        self, conn: asyncssh.SSHServerConnection, message: str, since: float, settled: bool
    ) -> None:
        """Disconnect ``conn`` once its channels are done with admission. A connection that has
        opened no channel yet, or whose channel is still being set up (the target dialled, the
        inner handshake under way), is looked at again every second, up to SETTLE_LIMIT_S: its
        admission refuses it with the reason, and a disconnect before that would race the
        client's own writes (it may say "Broken pipe" instead). Once it is done, or for any other
        channel (a port forward, a pipe), the disconnect comes END_GRACE_S later."""
        settling = not self._opened or any(s.settling for s in self.sessions)
        loop = asyncio.get_running_loop()
        if settling and time.monotonic() - since < SETTLE_LIMIT_S:
            self._ending = loop.call_later(
                SETTLE_CHECK_S, self._end_later, conn, message, since, True
            )
        elif not settling and (settled or self._ending is None):
            self._ending = loop.call_later(
                END_GRACE_S, self._end_later, conn, message, since, False
            )
        else:
            conn.disconnect(asyncssh.DISC_BY_APPLICATION, message)

    async def roles(self) -> RoleSet:
        """The user's roles as stored now, and those the approved access requests named in the
        certificate still grant (a denied or expired request grants nothing)."""
        cert = self.check.accepted
        assert cert is not None
        requests = requests_from_extension(cert.extensions.get(ACTIVE_REQUESTS_EXTENSION, ""))
        return await self.service.access.role_set_for_user(cert.key_id, requests)

    async def admit_pipe(self, host: str, port: int) -> Destination:
        """Where a byte pipe of the non-recording modes goes, if this user may go there (locks,
        the roles' node_labels, the pipe port rule); else AccessDeniedError."""
        cert = self.check.accepted
        assert cert is not None
        admission = self.service.admission
        dest = await admission.destination(host, port)
        try:
            await admission.admit(
                cert.key_id,
                await self.roles(),
                dest,
                await self.service.access.list_locks(),
                pipe=True,
            )
        except TeleportError as exc:
            log.info("refused a pipe of %s to %s: %s", cert.key_id, dest.addr, exc.message)
            raise
        return dest

    def audit_pipe(self, dest: Destination) -> None:
        """A ``port`` event for each byte pipe of the non-recording modes: who went where."""
        cert = self.check.accepted
        fields = {
            "user": cert.key_id if cert else "",
            "login": self.username,
            "addr": dest.addr,
            "server_hostname": dest.name,
            "server_labels": dict(dest.labels),
            "server_id": self.service.settings.server_id,
            "addr.remote": self.remote_addr,
            "session_recording": self.service.settings.session_recording,
        }
        task = asyncio.get_running_loop().create_task(
            self.service.access.audit.emit(codes.PORT, fields)
        )
        self.service.keep(task)

    def session_requested(self) -> Any:
        self._opened = True
        session = OuterSession(self)
        self.sessions.add(session)
        return session

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        self._opened = True
        if not self.service.forwards:
            # node/off modes: a byte pipe, like the proxy subsystem, admitted and audited
            # like it.
            return self._open_jump_pipe(dest_host, dest_port)
        jump = JumpSession(self, dest_host, dest_port)
        self.sessions.add(jump)
        return jump

    async def _open_jump_pipe(self, host: str, port: int) -> Any:
        assert self.conn is not None
        try:
            dest = await self.admit_pipe(host, port)
        except TeleportError as exc:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, exc.message) from None
        session = await self.conn.forward_connection(dest.host, dest.port)
        self.audit_pipe(dest)
        return session
