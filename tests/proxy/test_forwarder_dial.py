"""The target connection an inner connection's channels share: a dial cancelled because its
channel went away is not kept as the connection's outcome; the next channel dials again."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from pyteleport.policy.access import RoleSet
from pyteleport.proxy.forwarder import ForwardingServer, ForwardTarget


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
