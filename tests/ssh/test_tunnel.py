"""The transport an inner SSH connection writes through into the outer channel: writes of one
loop pass go out as one, and a channel the user's side already closed costs nothing."""

from __future__ import annotations

import asyncio
from typing import Any

from pyteleport.ssh.tunnel import ChannelTransport


class Channel:
    """The part of an SSH channel the transport uses; ``closed`` makes writes fail as asyncssh's
    do once the channel is not open for sending."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.eofs = 0
        self.closes = 0
        self.closed = False

    def write(self, data: bytes) -> None:
        if self.closed:
            raise BrokenPipeError("Channel not open for sending")
        self.writes.append(data)

    def write_eof(self) -> None:
        if self.closed:
            raise BrokenPipeError("Channel not open for sending")
        self.eofs += 1

    def close(self) -> None:
        self.closes += 1

    def get_write_buffer_size(self) -> int:
        return 0


def transport(chan: Channel) -> ChannelTransport:
    fake: Any = chan
    return ChannelTransport(fake, {})


async def test_writes_of_one_pass_reach_the_channel_as_one() -> None:
    chan = Channel()
    t = transport(chan)
    t.write(b"a" * 40)
    t.write(b"b" * 40)
    t.write_eof()
    assert t.get_write_buffer_size() == 80 and chan.writes == []
    await asyncio.sleep(0)
    assert chan.writes == [b"a" * 40 + b"b" * 40] and chan.eofs == 1


async def test_a_channel_closed_meanwhile_is_not_an_error(caplog: Any) -> None:
    chan = Channel()
    t = transport(chan)
    t.write(b"disconnect")
    chan.closed = True  # the user's side went away before the pass ended
    await asyncio.sleep(0)
    t.write(b"more")
    t.write_eof()
    t.close()  # must still close (the connection waits for it), raising nothing
    await asyncio.sleep(0)
    assert t.is_closing() and chan.closes == 1
    assert not [r for r in caplog.records if r.levelname == "ERROR"]
