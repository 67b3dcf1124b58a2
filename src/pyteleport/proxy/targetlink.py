"""The recording forwarder's client leg: one connection to the target per inner connection,
made on the first channel that needs it and shared by the rest, logged in with the signers of
the user's forwarded agent; and the agent hop, the socket through which the target reaches the
same agent (each signature audited)."""

from __future__ import annotations

import asyncio
import logging
from base64 import b64encode
from collections.abc import Awaitable, Callable
from typing import Any

import asyncssh

from pyteleport.crypto import sshcert
from pyteleport.errors import TeleportError
from pyteleport.proxy.admission import Destination
from pyteleport.ssh.agentaudit import AuditedAgent
from pyteleport.ssh.target import TargetDialer, TargetLoginRefusedError

log = logging.getLogger("pyteleport.proxy")

NO_AGENT = "agent forwarding required in proxy recording mode"
# OpenSSH does not ask to forward an agent when none is running, so the proxy cannot tell
# "ForwardAgent no" from "no agent": the hint names both.
NO_AGENT_HINT = (
    f"{NO_AGENT}: the ssh that connects to the proxy forwarded no agent; it needs ForwardAgent "
    "yes (ssh -o 'ForwardAgent yes' in the ProxyCommand) and a running ssh-agent that holds "
    "your certificate (eval $(ssh-agent), then tsh login)"
)
NO_AGENT_JUMP = f"{NO_AGENT}: with ssh -J, forward it to the host (ssh -A)"


class RefusedError(TeleportError):
    """A channel the forwarder refuses, with the reason the user sees."""


class TargetLink:
    """``user`` is the Teleport user whose certificate the agent must hold; ``destination``
    resolves where the typed host leads; ``on_sign(login, fingerprint)`` audits a signature of
    the agent hop."""

    def __init__(
        self,
        user: str,
        user_ca: asyncssh.SSHKey,
        host_ca: asyncssh.SSHKey | None,
        dialer: TargetDialer,
        destination: Callable[[], Awaitable[Destination]],
        on_sign: Callable[[str, str], None],
    ) -> None:
        self._user = user
        self._user_ca = user_ca
        self._host_ca = host_ca
        self._dialer = dialer
        self._destination = destination
        self._on_sign = on_sign
        self._future: asyncio.Future[asyncssh.SSHClientConnection] | None = None
        self._lock = asyncio.Lock()
        self._agent_source: asyncssh.SSHServerConnection | None = None  # whose agent signed in
        self._agent_for_target: AuditedAgent | None = None
        self._agent_lock = asyncio.Lock()
        self.principals: tuple[str, ...] = ()  # of the target's host certificate, once checked

    async def connect(
        self, login: str, agent: asyncssh.SSHServerConnection | None
    ) -> asyncssh.SSHClientConnection:
        """The target connection, made once and shared by the inner connection's channels."""
        async with self._lock:
            if self._future is None:
                self._future = asyncio.get_running_loop().create_future()
                try:
                    conn = await self._dial(login, agent)
                except asyncio.CancelledError:
                    # The channel that dialled went away: its cancellation is not the
                    # connection's, and the next channel dials again.
                    self._future.cancel()
                    self._future = None
                    raise
                except Exception as exc:
                    self._future.set_exception(exc)
                    self._future.exception()  # consumed here; later callers re-raise it
                    raise
                self._future.set_result(conn)
        return await self._future

    def close(self) -> None:
        future = self._future
        if (
            future is not None
            and future.done()
            and not future.cancelled()
            and future.exception() is None
        ):
            future.result().close()

    async def aclose_agent(self) -> None:
        if self._agent_for_target is not None:
            agent, self._agent_for_target = self._agent_for_target, None
            await agent.aclose()

    async def _dial(
        self, login: str, source: asyncssh.SSHServerConnection | None
    ) -> asyncssh.SSHClientConnection:
        if source is None:
            raise RefusedError(NO_AGENT_HINT)
        self._agent_source = source
        agent = asyncssh.SSHAgentClient(source)
        try:
            keys = list(await agent.get_keys())
        except (OSError, asyncssh.Error, ValueError) as exc:
            agent.close()
            raise RefusedError(f"{NO_AGENT}: cannot read the forwarded agent: {exc}") from exc
        # Certificates first, so sshd's MaxAuthTries is not spent on plain keys.
        keys.sort(key=lambda k: 0 if k.get_algorithm().endswith("-cert-v01@openssh.com") else 1)
        dest = await self._destination()
        if self._host_ca is None:
            log.warning("proxy_checks_host_keys is off: not checking the host key of %s", dest.addr)
        try:
            conn = await self._dialer.connect(dest.host, dest.port, login, keys, self._host_ca)
        except TargetLoginRefusedError as exc:
            if not any(self._is_user_certificate(k) for k in keys):
                raise RefusedError(
                    f"the agent forwarded to the proxy holds no certificate of {self._user}, "
                    f"and {dest.typed} took none of its keys: run tsh login to load it "
                    f"(ssh-add -L then shows a line ending in teleport:{self._user})"
                ) from exc
            raise
        finally:
            # The agent is needed only to sign the login; an agent channel left open would
            # keep the user's ssh from exiting when the session ends.
            agent.close()
        host_key = conn.get_server_host_key()
        if self._host_ca is not None:
            self.principals = tuple(getattr(host_key, "principals", None) or ())
        return conn

    def _is_user_certificate(self, key: Any) -> bool:
        """Whether an agent key is a certificate of this user from the cluster's user CA."""
        algorithm = key.get_algorithm()
        if not algorithm.endswith("-cert-v01@openssh.com"):
            return False
        try:
            cert = sshcert.parse_certificate(f"{algorithm} {b64encode(key.public_data).decode()}")
        except ValueError:
            return False
        return cert.key_id == self._user and cert.signature_key == self._user_ca.public_data

    async def agent_path(self, login: str) -> str | None:
        """The socket the target connection forwards (the second hop): made on first use, it
        relays to the agent the login was signed with and audits each signature."""
        async with self._agent_lock:
            if self._agent_for_target is None and self._agent_source is not None:
                self._agent_for_target = await AuditedAgent(
                    self._agent_source.open_agent_connection,
                    lambda fingerprint: self._on_sign(login, fingerprint),
                ).start()
        return self._agent_for_target.path if self._agent_for_target is not None else None
