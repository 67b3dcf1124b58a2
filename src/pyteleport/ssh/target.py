"""The proxy's client leg to a target sshd: log in with the user's agent signers and check the
target's host certificate against the cluster's host CA and the host name the user typed.

Failures become one line in Go's ``ssh: handshake failed: ...`` wording, which is what a Teleport
user sees behind ``channel 0: open failed: connect failed:``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from typing import Any

import asyncssh

from pyteleport.errors import ConnectionProblemError
from pyteleport.ssh.transport import coalesce_writes

log = logging.getLogger("pyteleport.ssh")

HANDSHAKE_EOF = "ssh: handshake failed: EOF"
PLAIN_HOST_KEY = (
    "ssh: handshake failed: remote host presented a public key, expected a host certificate"
)
CONNECT_TIMEOUT_S = 15.0
KEEPALIVE_INTERVAL_S = 30.0
# aes128-gcm costs about 40 % less CPU per byte than chacha20 here: offer it first (docs/performance.md).
ENCRYPTION_ALGS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "chacha20-poly1305@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class _TargetClient(asyncssh.SSHClient):
    """Notes why asyncssh refused the host key, so the error names the real problem."""

    def __init__(self) -> None:
        self.refusal = ""

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        coalesce_writes(conn)

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.refusal = PLAIN_HOST_KEY
        return False

    def validate_host_ca_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.refusal = (
            "ssh: handshake failed: remote host presented a host certificate that is not "
            "signed by this cluster's host CA"
        )
        return False


async def connect_target(
    host: str,
    port: int,
    login: str,
    client_keys: Sequence[Any],
    host_ca_key: asyncssh.SSHKey | None,
    agent_forwarding: str | None = None,
) -> asyncssh.SSHClientConnection:
    """Log in to ``host:port`` as ``login``. ``host_ca_key`` None skips the host check."""
    client = _TargetClient()
    known_hosts: Any = ([], [host_ca_key], []) if host_ca_key is not None else None
    try:
        conn, _ = await asyncio.wait_for(
            asyncssh.create_connection(
                lambda: client,
                host,
                port,
                username=login,
                client_keys=list(client_keys),
                known_hosts=known_hosts,
                # Offer plain host key algorithms too (asyncssh offers only certificate ones
                # when it trusts only a CA), so a target with a plain key is named as such
                # instead of failing key exchange with a bare EOF.
                server_host_key_algs="default",
                agent_path=None,
                agent_forwarding=agent_forwarding or False,
                config=None,
                preferred_auth="publickey",
                encryption_algs=ENCRYPTION_ALGS,
                keepalive_interval=KEEPALIVE_INTERVAL_S,
                login_timeout=CONNECT_TIMEOUT_S,
            ),
            CONNECT_TIMEOUT_S,
        )
    except asyncssh.HostKeyNotVerifiable as exc:
        if client.refusal:
            raise ConnectionProblemError(client.refusal) from exc
        if "principal mismatch" in str(exc):
            raise ConnectionProblemError(
                f'ssh: handshake failed: the host certificate of the target does not name "{host}" '
                f"among its principals: sign it with tctl auth sign --host={host}"
            ) from exc
        raise ConnectionProblemError(f"ssh: handshake failed: {exc.reason}") from exc
    except asyncssh.PermissionDenied as exc:
        raise TargetLoginRefusedError(
            "ssh: handshake failed: ssh: unable to authenticate, attempted methods [none "
            f"publickey], no supported methods remain (does {host}'s sshd trust the user CA "
            "in TrustedUserCAKeys?)"
        ) from exc
    except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionResetError) as exc:
        # A refused host key may surface as a lost connection: the refusal names the cause.
        if client.refusal:
            raise ConnectionProblemError(client.refusal) from exc
        raise HandshakeDroppedError(HANDSHAKE_EOF) from exc
    except TimeoutError as exc:
        raise ConnectionProblemError(
            f"dial tcp {host}:{port}: i/o timeout after {CONNECT_TIMEOUT_S:.0f}s"
        ) from exc
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise ConnectionProblemError(f"dial tcp {host}:{port}: connect: {reason}") from exc
    return conn


class TargetLoginRefusedError(ConnectionProblemError):
    """The target's sshd took none of the keys offered for the login."""


class HandshakeDroppedError(ConnectionProblemError):
    """The target closed the connection before the handshake finished: sshd's MaxStartups
    (default 10:30:100) drops unauthenticated connections at random once 10 are pending."""


class TargetDialer:
    """Connects to targets for one proxy: at most ``max_handshakes`` unauthenticated handshakes
    per target at once, and handshakes that sshd drops retried with backoff, so a burst of
    sessions to one default-configured sshd all get through."""

    def __init__(
        self,
        max_handshakes: int = 8,
        attempts: int = 10,
        first_backoff_s: float = 0.1,
        max_backoff_s: float = 2.0,
    ) -> None:
        self._max = max_handshakes
        self._attempts = attempts
        self._first_backoff_s = first_backoff_s
        self._max_backoff_s = max_backoff_s
        self._gates: dict[tuple[str, int], asyncio.Semaphore] = {}

    def _gate(self, host: str, port: int) -> asyncio.Semaphore:
        gate = self._gates.get((host, port))
        if gate is None:
            if len(self._gates) > 10_000:
                self._gates = {k: g for k, g in self._gates.items() if g.locked()}
            gate = self._gates[(host, port)] = asyncio.Semaphore(self._max)
        return gate

    async def connect(
        self,
        host: str,
        port: int,
        login: str,
        client_keys: Sequence[Any],
        host_ca_key: asyncssh.SSHKey | None,
        agent_forwarding: str | None = None,
    ) -> asyncssh.SSHClientConnection:
        backoff = self._first_backoff_s
        for attempt in range(1, self._attempts + 1):
            async with self._gate(host, port):
                try:
                    return await connect_target(
                        host, port, login, client_keys, host_ca_key, agent_forwarding
                    )
                except HandshakeDroppedError:
                    if attempt == self._attempts:
                        break
            log.info("%s:%s dropped handshake %d, retrying", host, port, attempt)
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(backoff * 2, self._max_backoff_s)
        raise HandshakeDroppedError(
            f"{HANDSHAKE_EOF} ({host}:{port} dropped {self._attempts} handshakes in a row: if "
            "many sessions start at once, raise MaxStartups in its sshd_config, 10:30:100 "
            "by default)"
        )
