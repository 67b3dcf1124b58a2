"""Channel windows bound what a paused session buffers (the window hook in pyteleport.ssh.windows).

asyncssh on its own re-opens a window to its full size whenever it delivers data, even while
earlier data still waits because the session paused reading: a session that takes its data a
little at a time then lets the peer send without bound. Here a real asyncssh client writes to a
real asyncssh server over loopback, and the server takes one packet at a time."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh

import pyteleport.ssh  # noqa: F401  (the package installs the window hook)
from tests.ssh.loopback import connected

WINDOW = 1024 * 1024
TOTAL = 16 * 1024 * 1024


class SlowSession(asyncssh.SSHServerSession[bytes]):
    """Takes one packet each time ``take_one`` is called, with reading paused in between."""

    def __init__(self) -> None:
        self.chan: Any = None
        self.taken = 0
        self.got = asyncio.Event()
        self.draining = False
        self.all_in = asyncio.Event()

    def connection_made(self, chan: Any) -> None:
        self.chan = chan

    def shell_requested(self) -> bool:
        return True

    def data_received(self, data: bytes, datatype: Any) -> None:
        self.taken += len(data)
        if self.taken >= TOTAL:
            self.all_in.set()
        if not self.draining:
            self.chan.pause_reading()
        self.got.set()

    async def drain(self) -> None:
        """Take everything from now on: the rest arrives only if the window keeps re-opening."""
        self.draining = True
        self.chan.resume_reading()
        await asyncio.wait_for(self.all_in.wait(), 20)

    async def take_one(self) -> None:
        self.got.clear()
        self.chan.resume_reading()
        await asyncio.wait_for(self.got.wait(), 5)


async def settled(chan: Any) -> int:
    """The client's unsent bytes once they stop changing (bounded: 3 s)."""
    last = -1
    for _ in range(60):
        size = int(chan.get_write_buffer_size())
        if size == last:
            return size
        last = size
        await asyncio.sleep(0.05)
    return last


async def test_a_session_taking_data_slowly_holds_at_most_one_window_more() -> None:
    sessions: list[SlowSession] = []

    def make_session() -> SlowSession:
        sessions.append(SlowSession())
        return sessions[-1]

    async with connected(make_session, window=WINDOW) as conn:
        chan, _ = await conn.create_session(asyncssh.SSHClientSession, encoding=None)
        chan.write(b"x" * TOTAL)
        for _ in range(40):
            await sessions[0].take_one()
            await asyncio.sleep(0.01)
        unsent = await settled(chan)
        taken = sessions[0].taken
        # The rest: a hook that bounded the buffer by never re-opening the window would stop
        # here, after the first window.
        await sessions[0].drain()
        chan.close()
    sent = TOTAL - unsent
    # The peer may have sent what was taken plus one window (and a packet in flight).
    assert sent <= taken + WINDOW + 64 * 1024, (sent, taken)
    assert taken > 0 and unsent > 0
    assert sessions[0].taken == TOTAL
