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

    def bind_abort(self, abort: Any) -> None:
        pass

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


async def test_a_cancellation_passed_on_by_the_target_opener_fails_the_start_and_ends_it() -> None:
    """Not the session's own cancellation: a shared dial that another channel's cancellation
    ended. The channel gets the failure and exit 255, and closes, instead of hanging."""

    async def cancelled_open(factory: Any, request: SessionRequest) -> Any:
        shared = asyncio.get_running_loop().create_future()
        shared.cancel()
        return await shared

    observer = Observer()
    session = lambda: InnerSession(cancelled_open, lambda request: observer)  # noqa: E731
    # As the forwarding server runs it: bytes, no line editor.
    async with connected(session, encoding=None, line_editor=False) as conn:
        process = await conn.create_process("cmd", encoding=None)
        await asyncio.wait_for(process.wait_closed(), 5)
        stderr = await process.stderr.read()
    assert process.exit_status == 255
    assert stderr == b"the connection to the target was cancelled\r\n"
    assert [r.status for r in observer.results] == [255]
