"""Agent forwarding without a unix socket on disk (server side, ``keep_agent_in_memory``), and
decided per session (client side, ``set_agent_forwarding``): asyncssh fixes both per
connection and gives the server side a socket in a temporary directory."""

from __future__ import annotations

import asyncssh


def set_agent_forwarding(conn: asyncssh.SSHClientConnection, path: str | None) -> None:
    """Whether the next sessions ``conn`` opens ask for agent forwarding, and to which socket
    the agent channels the server opens go (asyncssh fixes both per connection)."""
    conn._agent_forward_path = path


class ForwardedAgent:
    """Whether the client asked for agent forwarding on this connection. The agent is then
    reached over an in-memory ``auth-agent@openssh.com`` channel (``SSHAgentClient(conn)``)."""

    def __init__(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.requested = False


class _NoAgentSocket:
    def get_path(self) -> None:
        return None

    def close(self) -> None:
        pass


def keep_agent_in_memory(conn: asyncssh.SSHServerConnection) -> ForwardedAgent:
    """Accept ``auth-agent-req@openssh.com`` without the unix socket asyncssh would create for
    it (``create_agent_listener``): no user's agent is reachable from the proxy's filesystem."""
    state = ForwardedAgent(conn)

    async def create_agent_listener() -> bool:
        if not (
            conn._agent_forwarding
            and conn.check_key_permission("agent-forwarding")
            and conn.check_certificate_permission("agent-forwarding")
        ):
            return False
        state.requested = True
        # asyncssh opens agent channels only while it holds a listener: give it one with no
        # socket behind it.
        conn._agent_listener = _NoAgentSocket()  # type: ignore[assignment]
        return True

    conn.create_agent_listener = create_agent_listener  # type: ignore[method-assign]
    return state
