"""The inner connection a 3023 channel carries, and the target connection its channels share: a
dial cancelled because its channel went away is not kept as the connection's outcome (the next
channel dials again), and an inner connection that fails to start closes its channel."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from pyteleport.policy.access import RoleSet
from pyteleport.proxy.forwarder import ForwardingServer, ForwardTarget
from pyteleport.proxy.outer import serve_inner


def forwarding_server() -> ForwardingServer:
    target = ForwardTarget(
        user="joe", host="db1", port=22, remote_addr="127.0.0.1:1", local_addr="127.0.0.1:2"
    )
    nothing: Any = None
    key = asyncssh.generate_private_key("ssh-ed25519")
    return ForwardingServer(
        target, key, None, nothing, nothing, nothing, nothing, nothing, nothing, True
    )


async def test_a_cancelled_first_dial_leaves_the_second_channel_a_working_one() -> None:
    server = forwarding_server()
    release = asyncio.Event()
    dials = 0
    connection: Any = object()

    async def dial(login: str, roles: RoleSet, source: Any) -> Any:
        nonlocal dials
        dials += 1
        if dials == 1:
            await release.wait()  # the first channel closes while this is in flight
        return connection

    server._dial = dial  # type: ignore[method-assign]
    roles = RoleSet(roles=(), traits={})
    first = asyncio.create_task(server._connect("joe", roles))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled()
    second = await asyncio.wait_for(server._connect("joe", roles), 5)
    assert second is connection and dials == 2
    assert await server._connect("joe", roles) is connection and dials == 2  # shared now


class Channel:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


async def test_any_failure_to_set_up_the_inner_connection_closes_its_channel() -> None:
    for error in (asyncssh.ConnectionLost("gone"), OSError("reset"), RuntimeError("a bug")):
        chan = Channel()

        async def connect(error: Exception = error) -> object:
            raise error

        await serve_inner(connect, chan, "db1:22")
        assert chan.closed, error
    chan = Channel()

    async def works() -> object:
        return object()

    await serve_inner(works, chan, "db1:22")
    assert not chan.closed  # an inner connection that is up keeps its channel
