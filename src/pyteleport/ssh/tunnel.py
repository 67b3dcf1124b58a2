"""Serve an SSH connection on an existing SSH channel, with no socket in between.

asyncssh builds tunnelled connections through an object with ``create_connection(factory, host,
port)`` (the ``tunnel=`` argument of ``connect_reverse``). ``ChannelTunnel`` hands the new
connection a transport that writes into the outer channel, and the outer session feeds it what
the channel receives. The inner connection's flow control rides on the channel windows: the
inner channels' windows bound what can be in flight on the outer one.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import asyncssh


class ChannelTransport(asyncio.Transport):
    """An asyncio transport over one SSH channel (the outer subsystem channel).

    Writes made in one pass of the event loop go to the channel as one: the inner connection
    writes one SSH packet at a time, each a little larger than the outer channel's maximum
    packet when it carries a full data packet, so passing them on one by one would send every
    one as a full outer packet and a tiny one."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], extra: dict[str, Any]) -> None:
        super().__init__(extra)
        self._chan = chan
        self._closing = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._eof = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(bytes(data))
        self._pending_size += len(data)

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        self._pending_size = 0
        if self._closing:
            return
        try:
            if pending:
                self._chan.write(pending[0] if len(pending) == 1 else b"".join(pending))
            if self._eof:
                self._eof = False
                self._chan.write_eof()
        except (ConnectionError, OSError):
            # The outer channel is gone (the user's side closed it): what was left to write has
            # nowhere to go, and the outer session tells the connection it is lost.
            pass

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        if self._closing:
            return
        if self._pending:
            self._eof = True  # after what is still to be written
        else:
            with contextlib.suppress(ConnectionError, OSError):
                self._chan.write_eof()

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        if not self._closing:
            self._flush()  # what the connection wrote last (its disconnect message)
            self._closing = True
            self._chan.close()

    def abort(self) -> None:
        self.close()

    def pause_reading(self) -> None:
        self._chan.pause_reading()

    def resume_reading(self) -> None:
        self._chan.resume_reading()

    def get_write_buffer_size(self) -> int:
        return int(self._chan.get_write_buffer_size()) + self._pending_size


class ChannelTunnel:
    """The ``tunnel=`` object for ``asyncssh.connect_reverse`` over one outer channel."""

    def __init__(self, chan: asyncssh.SSHServerChannel[bytes], extra: dict[str, Any]) -> None:
        self._chan = chan
        self._extra = extra
        self.protocol: asyncio.Protocol | None = None
        self._closed = asyncio.Event()
        # The client speaks first (its version line) while asyncssh is still setting up the
        # connection: keep what arrives until the protocol exists.
        self._early: list[bytes] = []
        self._early_eof = False

    async def create_connection(
        self, session_factory: Any, remote_host: str, remote_port: int
    ) -> tuple[ChannelTransport, Any]:
        transport = ChannelTransport(self._chan, self._extra)
        protocol = session_factory()
        self.protocol = protocol
        protocol.connection_made(transport)
        early, self._early = self._early, []
        for data in early:
            protocol.data_received(data)
        if self._early_eof:
            protocol.eof_received()
        return transport, protocol

    # What the outer session calls as the channel delivers.
    def feed(self, data: bytes) -> None:
        if self.protocol is not None:
            self.protocol.data_received(data)
        else:
            self._early.append(data)

    def feed_eof(self) -> None:
        if self.protocol is not None:
            self.protocol.eof_received()
        else:
            self._early_eof = True

    def lost(self, exc: Exception | None) -> None:
        if self.protocol is not None:
            protocol, self.protocol = self.protocol, None
            protocol.connection_lost(exc)
        self._closed.set()

    def close(self) -> None:
        self._chan.close()

    async def wait_closed(self) -> None:
        await self._closed.wait()
