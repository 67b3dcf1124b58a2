"""A real asyncssh server and a client connected to it over 127.0.0.1, with no authentication:
for tests of the SSH pieces that need both ends of a channel."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncssh


@contextlib.asynccontextmanager
async def connected(
    make_session: Callable[[], Any], **server_options: Any
) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """Each session the client opens is ``make_session()`` on the server."""

    class Server(asyncssh.SSHServer):
        def begin_auth(self, username: str) -> bool:
            return False

        def session_requested(self) -> Any:
            return make_session()

    server = await asyncssh.create_server(
        Server,
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        gss_host=None,
        **server_options,
    )
    port = server.sockets[0].getsockname()[1]
    try:
        async with asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", client_keys=None, agent_path=None
        ) as conn:
            yield conn
    finally:
        server.close()
        await server.wait_closed()
