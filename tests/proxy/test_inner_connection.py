"""The inner connection a 3023 channel carries, and the target connection its channels share: a
dial cancelled because its channel went away is not kept as the connection's outcome (the next
channel dials again), and an inner connection that fails to start closes its channel."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
import pytest

from pyteleport.proxy.outer import serve_inner
from pyteleport.proxy.targetlink import TargetLink
from pyteleport.ssh.target import TargetDialer


def target_link() -> TargetLink:
    key = asyncssh.generate_private_key("ssh-ed25519")
    nothing: Any = None
    return TargetLink("joe", key, None, TargetDialer(), nothing, lambda login, key: None)


async def test_a_cancelled_first_dial_leaves_the_second_channel_a_working_one() -> None:
    link = target_link()
    release = asyncio.Event()
    dials = 0
    connection: Any = object()

    async def dial(login: str, source: Any) -> Any:
        nonlocal dials
        dials += 1
        if dials == 1:
            await release.wait()  # the first channel closes while this is in flight
        return connection

    link._dial = dial  # type: ignore[method-assign]
    first = asyncio.create_task(link.connect("joe", None))
    await asyncio.sleep(0.01)
    first.cancel()
    await asyncio.gather(first, return_exceptions=True)
    assert first.cancelled()
    second = await asyncio.wait_for(link.connect("joe", None), 5)
    assert second is connection and dials == 2
    assert await link.connect("joe", None) is connection and dials == 2  # shared now


async def test_a_failed_dial_is_the_outcome_of_every_channel_until_the_connection_ends() -> None:
    link = target_link()
    dials = 0

    async def dial(login: str, source: Any) -> Any:
        nonlocal dials
        dials += 1
        raise ConnectionRefusedError("refused")

    link._dial = dial  # type: ignore[method-assign]
    for _ in range(2):
        with pytest.raises(ConnectionRefusedError):
            await link.connect("joe", None)
    assert dials == 1


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
