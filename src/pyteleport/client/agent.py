"""The user's ssh-agent (``SSH_AUTH_SOCK``): add the login's key and certificate, remove them at
logout, and notice agents that silently drop certificates (gpg-agent, GNOME Keyring).

Two entries per login, as Teleport adds them (docs/compatibility.md): key + certificate, and the
key alone; both carry the comment ``teleport:<user>`` and a lifetime equal to the certificate's
remaining validity, so the agent forgets them when they stop being useful.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import asyncssh

from pyteleport.errors import ConnectionProblemError

COMMENT_PREFIX = "teleport:"


@dataclass(frozen=True, slots=True)
class AgentResult:
    added: bool
    warning: str = ""


def agent_socket() -> str | None:
    return os.environ.get("SSH_AUTH_SOCK") or None


async def _connect(path: str) -> asyncssh.SSHAgentClient:
    try:
        return await asyncssh.connect_agent(path)
    except (OSError, asyncssh.Error) as exc:
        raise ConnectionProblemError(
            f"cannot reach the ssh-agent at {path}: {exc}; "
            "start one with eval $(ssh-agent) or use --no-use-local-ssh-agent"
        ) from exc


def _agent_name(path: str) -> str:
    """The ssh-agent at ``path``, named when its path gives it away (they keep their sockets
    under ``gnupg/S.gpg-agent.ssh`` and ``keyring/ssh``)."""
    lowered = path.lower()
    if "gpg" in lowered:
        return f"the ssh-agent at {path} (gpg-agent, by its path)"
    if "keyring" in lowered:
        return f"the ssh-agent at {path} (GNOME Keyring, by its path)"
    return f"the ssh-agent at {path}"


_USE_OPENSSH = "use OpenSSH's ssh-agent for connections through the proxy"


async def add_login(
    path: str, user: str, private_key: bytes, ssh_cert: bytes, lifetime_s: int
) -> AgentResult:
    """Add key+cert and key alone, then list the agent to see what it really kept.

    Three behaviours are told apart: an agent that refuses everything, one that refuses the
    certificate outright (it then still gets the key alone), and one that answers success but
    drops the certificate (PROTOCOL.agent has no way to say so; only a listing shows it).
    """
    comment = f"{COMMENT_PREFIX}{user}"
    key = asyncssh.import_private_key(private_key)
    key.set_comment(comment)
    cert = asyncssh.import_certificate(ssh_cert)
    cert.set_comment(comment)
    name = _agent_name(path)
    agent = await _connect(path)
    try:
        await remove_comment(agent, comment)
        lifetime = max(1, lifetime_s)
        cert_refused = ""
        try:
            await agent.add_keys([(key, cert)], lifetime=lifetime)
        except ValueError as exc:
            cert_refused = str(exc) or "refused"
        try:
            await agent.add_keys([key], lifetime=lifetime)
        except ValueError as exc:
            if cert_refused:
                return AgentResult(
                    added=False,
                    warning=f"{name} refused both the key with its certificate and the key "
                    f"alone ({exc}): ssh through the proxy will not find them there",
                )
        if cert_refused:
            return AgentResult(
                added=True,
                warning=f"{name} refused the certificate ({cert_refused}) and took the key "
                "alone: it does not accept certificates (gpg-agent and GNOME Keyring do not); "
                + _USE_OPENSSH,
            )
        blobs = {bytes(k.public_data) for k in await agent.get_keys()}
        if bytes(cert.public_data) not in blobs:
            return AgentResult(
                added=True,
                warning=f"{name} accepted the certificate but does not list it: "
                "it drops certificates (gpg-agent and GNOME Keyring do); " + _USE_OPENSSH,
            )
        return AgentResult(added=True)
    finally:
        agent.close()
        await agent.wait_closed()


async def remove_comment(agent: asyncssh.SSHAgentClient, comment: str | None) -> int:
    """Remove entries whose comment is ``comment`` (or starts with teleport: when None)."""
    keys = await agent.get_keys()
    doomed = []
    for entry in keys:
        text = (entry.get_comment_bytes() or b"").decode(errors="replace")
        if (comment is None and text.startswith(COMMENT_PREFIX)) or text == comment:
            doomed.append(entry)
    if doomed:
        await agent.remove_keys(doomed)
    return len(doomed)


async def remove_logins(path: str, user: str | None = None) -> int:
    agent = await _connect(path)
    try:
        return await remove_comment(agent, f"{COMMENT_PREFIX}{user}" if user else None)
    finally:
        agent.close()
        await agent.wait_closed()
