"""The relay's session while the target is still opening: the user's data waits (reading is
paused), and a client that leaves meanwhile still gets its session ended and recorded."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

from pyteleport.ssh.relay import InnerSession, SessionExit, SessionRequest
from tests.ssh.loopback import connected


class Observer:
    def __init__(self) -> None:
        self.results: list[SessionExit] = []

    async def started(self, request: SessionRequest) -> None:
        pass

    def output(self, data: bytes, stderr: bool) -> None:
        pass

    def input(self, data: bytes) -> None:
        pass

    def resized(self, width: int, height: int) -> None:
        pass

    async def ended(self, result: SessionExit) -> None:
        self.results.append(result)


async def failing_open(factory: Any, request: SessionRequest) -> Any:
    await asyncio.sleep(0.5)  # the client closes while this runs
    raise OSError("dial tcp 127.0.0.1:22: connect: connection refused")


async def test_a_client_that_closes_while_the_target_fails_to_open_still_ends_the_session() -> None:
    observer = Observer()
    errors: list[Any] = []
    asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: errors.append(ctx))
    async with connected(lambda: InnerSession(failing_open, lambda request: observer)) as conn:
        chan, _ = await conn.create_session(asyncssh.SSHClientSession, "cmd", encoding=None)
        chan.write(b"a" * 1000)  # held by the relay while the target opens
        await asyncio.sleep(0.05)
        chan.write(b"b" * 1000)
        await asyncio.sleep(0.1)
        chan.close()
        for _ in range(50):  # bounded: 5 s
            if observer.results:
                break
            await asyncio.sleep(0.1)
        await asyncio.wait_for(chan.wait_closed(), 5)
    assert [r.status for r in observer.results] == [255]
    assert "connection refused" in observer.results[0].message
    assert errors == []
