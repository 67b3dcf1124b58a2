"""The recording forwarder: an SSH server the user's own ssh talks to, on the subsystem channel.

It shows a host certificate for the host as typed (signed by the host CA, cached), accepts only
the same user's certificate from the user CA, and on the first channel logs into the target
with the signers of the agent the user forwarded on the outer connection. Every session channel
is relayed and observed (recorded, audited). A failure on the way refuses the channel open with
``connect failed`` and the reason, which OpenSSH prints as
``channel 0: open failed: connect failed: <reason>``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import asyncssh

from pyteleport.api.metrics import NO_METRICS, Metrics
from pyteleport.errors import TeleportError
from pyteleport.events import codes
from pyteleport.events.filetransfer import ScpTap
from pyteleport.model.duration import format_duration
from pyteleport.model.lock import Lock
from pyteleport.model.node import join_addr
from pyteleport.policy.access import RoleSet
from pyteleport.proxy.admission import Admission, Destination
from pyteleport.proxy.portforward import PortForwarding, refuse_tunnel, refuse_unix_forward
from pyteleport.proxy.targetlink import NO_AGENT_JUMP, RefusedError, TargetLink
from pyteleport.ssh import tcprelay
from pyteleport.ssh.agentfwd import ForwardedAgent, keep_agent_in_memory, set_agent_forwarding
from pyteleport.ssh.certcheck import CertificateCheck, ClientCertificate, watch_client_certificates
from pyteleport.ssh.relay import InnerSession, SessionObserver, SessionRequest, TargetSession
from pyteleport.ssh.target import TargetDialer
from pyteleport.ssh.tcprelay import TCPEnd
from pyteleport.ssh.x11 import X11Relay, X11Request, take_x11_requests

log = logging.getLogger("pyteleport.proxy")


@dataclass(frozen=True, slots=True)
class ForwardTarget:
    """Who goes where: fixed by the outer connection and the subsystem request."""

    user: str  # the Teleport user (key ID of the outer certificate)
    host: str  # as typed: the name the target's host certificate must carry
    port: int
    remote_addr: str  # the user's address on the outer connection
    local_addr: str
    # Filled in once the typed host is resolved: the registered node's name and labels (none
    # for an unregistered host) and the address the proxy dials.
    node: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    addr: str = ""

    @property
    def hostname(self) -> str:
        """What the audit log and the recording call the host: the node's name if registered."""
        return self.node or self.host

    @property
    def server_addr(self) -> str:
        return self.addr or join_addr(self.host, self.port)


ObserverFactory = Callable[[ForwardTarget, str, RoleSet, SessionRequest], SessionObserver]
# (target, login, event, extra fields): port and agent.sign events
AuditHook = Callable[[ForwardTarget, str, str, dict[str, Any]], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class ForwarderServices:
    """What every inner connection of one proxy shares."""

    user_ca: asyncssh.SSHKey
    host_ca: asyncssh.SSHKey | None  # None: proxy_checks_host_keys is off
    observer_factory: ObserverFactory
    audit: AuditHook
    dialer: TargetDialer
    locks: Callable[[], Awaitable[list[Lock]]]
    admission: Admission
    metrics: Metrics = NO_METRICS


class ForwardingServer(asyncssh.SSHServer):
    """One inner connection: the user's certificate, admission (locks, node_labels, logins) of
    each channel, and the sessions relayed to the target (X11 here, the target connection in
    :class:`TargetLink`, port forwarding in :class:`PortForwarding`). ``agent`` is the agent
    the user forwarded on the outer connection (None: not forwarded there)."""

    def __init__(
        self,
        target: ForwardTarget,
        services: ForwarderServices,
        roles: Callable[[], Awaitable[RoleSet]],
        agent: asyncssh.SSHServerConnection | None,
        agent_from_inner: bool = False,
    ) -> None:
        self._services = services
        self._target = target
        self._roles = roles
        self._agent = agent
        self.agent_from_inner = agent_from_inner
        self._dest: Destination | None = None  # where the typed host leads, once resolved
        self.link = TargetLink(
            target.user,
            services.user_ca,
            services.host_ca,
            services.dialer,
            self._destination,
            self._audit_sign,
        )
        self._ports = PortForwarding(self._admitted, self._connect, self._audit_port)
        self._inner_agent: ForwardedAgent | None = None
        self._login = ""
        self._conn: asyncssh.SSHServerConnection | None = None
        self._check = CertificateCheck()
        self._x11: X11Relay | None = None
        self._sessions: weakref.WeakSet[InnerSession] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        # With ssh -J the user's agent reaches the proxy on this connection: the proxy needs it
        # to log in, whatever the certificate says; the roles' forward_agent still decides
        # whether the target gets it.
        grant = ("agent-forwarding",) if self.agent_from_inner else ()
        watch_client_certificates(conn, self._services.user_ca, self._check, self._same_user, grant)
        self._inner_agent = keep_agent_in_memory(conn)
        take_x11_requests(conn, self._x11_requested)

    def _same_user(self, cert: ClientCertificate) -> str:
        if cert.key_id != self._target.user:
            return (
                f'the inner connection presented a certificate of user "{cert.key_id}", '
                f'expected "{self._target.user}"'
            )
        return ""

    def connection_lost(self, exc: Exception | None) -> None:
        self.link.close()
        self._keep(self.link.aclose_agent())
        if self._check.accepted is None and self._check.refusal:
            # The inner login was refused (another user's certificate, another CA, ...).
            log.info("refused the inner login of %s: %s", self._target.user, self._check.refusal)
            self._keep(
                self._services.audit(
                    self._target, self._login, codes.AUTH, {"error": self._check.refusal}
                )
            )

    def _keep(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def begin_auth(self, username: str) -> bool:
        self._login = username
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return False  # certificates only

    def validate_ca_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return bool(key == self._services.user_ca)

    def session_requested(self) -> Any:
        # A coroutine: asyncssh awaits it before confirming the channel, and turns a
        # ChannelOpenError raised here into the open failure the client prints.
        return self._open_session()

    async def _open_session(self) -> InnerSession:
        assert self._conn is not None
        login = str(self._conn.get_extra_info("username"))
        target: asyncssh.SSHClientConnection | None = None
        try:
            roles = await self._roles()
            await self._admit(login, roles)
            if self._agent is not None or not self.agent_from_inner:
                target = await self._connect(login)
        except TeleportError as exc:
            self._services.metrics.session_refused()
            log.info(
                "refused session of %s as %s to %s:%s: %s",
                self._target.user,
                login,
                self._target.host,
                self._target.port,
                exc.message,
            )
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, exc.message) from None

        async def open_target(
            factory: Callable[[], TargetSession], request: SessionRequest
        ) -> tuple[asyncssh.SSHClientChannel[bytes], TargetSession]:
            nonlocal target
            if target is None:
                # The ssh -J path: no session on the outer connection, so no agent there; the
                # user's ssh -A forwards it on this inner session instead.
                if self._inner_agent is None or not self._inner_agent.requested:
                    raise RefusedError(NO_AGENT_JUMP)
                target = await self.link.connect(login, self._inner_agent.conn)
            if is_file_copy(request) and not roles.can_copy_files():
                raise RefusedError(
                    f"file transfer is not allowed by roles {','.join(roles.names)} "
                    "(spec.options.ssh_file_copy)"
                )
            kwargs: dict[str, Any] = {"env": request.env, "encoding": None}
            if request.term_type:
                kwargs.update(
                    request_pty="force",
                    term_type=request.term_type,
                    term_size=request.term_size,
                    term_modes=request.term_modes,
                )
            else:
                kwargs["request_pty"] = False
            if request.kind == "exec":
                kwargs["command"] = request.command
            elif request.kind == "subsystem":
                kwargs["subsystem"] = request.subsystem
            # The target sees the user's agent only if the user's ssh forwarded it on this
            # connection (-A) and the roles allow it, as OpenSSH alone would have it.
            wants_agent = self._inner_agent is not None and self._inner_agent.requested
            set_agent_forwarding(
                target,
                await self.link.agent_path(login)
                if wants_agent and roles.can_forward_agent()
                else None,
            )
            if request.x11 is not None:
                # Sent as the user's ssh sent it; a refusal leaves the session running.
                kwargs.update(
                    x11_forwarding="ignore_failure",
                    x11_display=self._x11_relay(target).offer(request.x11),
                )
            chan, session = await target.create_session(factory, **kwargs)
            assert isinstance(session, TargetSession)
            if request.x11 is not None:
                await self._x11_answered(session, login, self._x11_relay(target).accepted(chan))
            return chan, session

        def observe(request: SessionRequest) -> SessionObserver:
            return self._services.observer_factory(self._target, login, roles, request)

        session = InnerSession(open_target, observe)
        self._sessions.add(session)
        idle = [r.options.client_idle_timeout for r in roles.roles if r.options.client_idle_timeout]
        if idle:
            task = asyncio.get_running_loop().create_task(self._watch_idle(session, min(idle)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # No session outlives the shortest max_session_ttl of the user's roles as stored now,
        # whatever the certificate it started with says.
        if roles.roles:
            limit = roles.max_session_ttl()
            timer = asyncio.get_running_loop().call_later(
                limit.total_seconds(),
                session.abort,
                f"session exceeded the maximum length of {format_duration(limit)} set by roles "
                f"{','.join(roles.names)} (max_session_ttl), disconnecting.",
            )
            session.on_close(timer.cancel)
        return session

    # -- X11 ---------------------------------------------------------------------------------------

    async def _x11_requested(
        self, chan: asyncssh.SSHServerChannel[bytes], request: X11Request
    ) -> bool:
        """``ssh -X``/``-Y``: allowed when the roles and the certificate allow it; passed to
        the target with the session (the answer the user sees then is the target's)."""
        assert self._conn is not None
        login = str(self._conn.get_extra_info("username"))
        session = next((s for s in self._sessions if s.channel is chan), None)
        roles = await self._roles()
        error = ""
        if not roles.can_x11_forward():
            error = (
                f"X11 forwarding is not allowed by roles {','.join(roles.names)} "
                "(spec.options.permit_x11_forwarding)"
            )
        elif not self._conn.check_certificate_permission("X11-forwarding"):
            error = "X11 forwarding is not permitted by the certificate: log in again"
        elif session is None:
            error = "X11 forwarding was requested on a channel that is not a session"
        if error:
            log.info("refused X11 forwarding of %s as %s: %s", self._target.user, login, error)
            await self._services.audit(
                self._target, login, codes.X11_FORWARD, {"success": False, "error": error}
            )
            return False
        assert session is not None
        session.request.x11 = request
        return True

    async def _x11_answered(self, session: TargetSession, login: str, accepted: bool) -> None:
        error = ""
        if not accepted:
            error = (
                f"X11 forwarding request failed on {self._target.host}: the target refused it "
                "(X11Forwarding yes and xauth in its sshd_config)"
            )
            session.inner.notice(error)
        await self._services.audit(
            self._target, login, codes.X11_FORWARD, {"success": accepted, "error": error}
        )

    def _x11_relay(self, target: asyncssh.SSHClientConnection) -> X11Relay:
        if self._x11 is None:
            self._x11 = X11Relay(target, self._open_x11)
        return self._x11

    async def _open_x11(self, orig_host: str, orig_port: int) -> TCPEnd:
        """An X client on the target connected to its forwarded display: the same channel to
        the user's ssh, which checks the cookie and connects to the real display."""
        assert self._conn is not None
        inner, far = tcprelay.pair()
        # The user's ssh refusing it raises ChannelOpenError, which refuses the target's channel.
        await self._conn.create_x11_channel().open(lambda: inner, orig_host, orig_port)
        return far

    @staticmethod
    async def _watch_idle(session: InnerSession, idle_limit: dt.timedelta) -> None:
        """``client_idle_timeout``: end a session whose client sent nothing for that long."""
        limit_s = idle_limit.total_seconds()
        loop = asyncio.get_running_loop()
        while not session.closed:
            idle_s = loop.time() - session.last_input
            if idle_s >= limit_s:
                session.abort(
                    f"Client exceeded idle timeout of {format_duration(idle_limit)}, disconnecting."
                )
                return
            await asyncio.sleep(min(limit_s - idle_s, 5.0) + 0.05)

    async def _destination(self) -> Destination:
        if self._dest is None:
            dest = await self._services.admission.destination(self._target.host, self._target.port)
            self._dest = dest
            self._target = replace(
                self._target,
                node=dest.node.name if dest.node is not None else "",
                labels=dest.labels,
                addr=dest.addr,
            )
        return self._dest

    async def _admit(self, login: str, roles: RoleSet) -> None:
        """Locks and the roles' node_labels and logins, each time a channel opens."""
        services = self._services
        await services.admission.admit(
            self._target.user, roles, await self._destination(), await services.locks(), login
        )

    async def _admitted(self, login: str) -> RoleSet:
        roles = await self._roles()
        await self._admit(login, roles)
        return roles

    async def _connect(self, login: str) -> asyncssh.SSHClientConnection:
        """The shared target connection, logged in with the outer connection's agent."""
        return await self.link.connect(login, self._agent)

    def apply_locks(self, locks: list[Lock]) -> None:
        """End this connection's sessions if a lock now covers its user, login or node (by
        every name it has, the target certificate's principals included)."""
        if self._conn is None or self._dest is None:
            return
        login = str(self._conn.get_extra_info("username") or "")
        dest = self._dest.with_principals(self.link.principals)
        lock = self._services.admission.lock_for(locks, self._target.user, login, dest)
        if lock is not None:
            self.end(lock.describe())

    def end(self, message: str) -> None:
        """End every session of this connection with ``message`` on the user's stderr."""
        for session in list(self._sessions):
            session.abort(message)

    # -- port forwarding (proxy/portforward.py) -----------------------------------------------

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Any:
        # ssh -L / -D on the inner connection: opened from the target, as OpenSSH would.
        return self._ports.open_tcp(self._current_login(), dest_host, dest_port)

    def server_requested(self, listen_host: str, listen_port: int) -> Any:
        assert self._conn is not None
        return self._ports.listen_remote(
            self._conn, self._current_login(), listen_host, listen_port
        )

    def unix_connection_requested(self, dest_path: str) -> Any:
        return refuse_unix_forward(dest_path)

    def tun_requested(self, unit: int | None) -> bool:
        return refuse_tunnel()

    def tap_requested(self, unit: int | None) -> bool:
        return refuse_tunnel()

    def unix_server_requested(self, listen_path: str) -> bool:
        log.info("refused remote unix socket forwarding to %s: not supported", listen_path)
        return False

    def _current_login(self) -> str:
        assert self._conn is not None
        return str(self._conn.get_extra_info("username"))

    async def _audit_port(self, login: str, fields: dict[str, Any]) -> None:
        await self._services.audit(self._target, login, codes.PORT, fields)

    def _audit_sign(self, login: str, fingerprint: str) -> None:
        self._keep(
            self._services.audit(self._target, login, codes.AGENT_SIGN, {"key": fingerprint})
        )


def is_file_copy(request: SessionRequest) -> bool:
    """sftp (and the modern scp on it), or the legacy ``scp -t``/``scp -f`` exec."""
    if request.kind == "subsystem":
        return request.subsystem == "sftp"
    return request.kind == "exec" and ScpTap.is_scp(request.command)
