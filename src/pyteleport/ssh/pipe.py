"""A byte pipe between an SSH channel and a TCP connection (non-recording modes), with flow
control both ways: a full channel buffer pauses the socket, a full socket buffer the channel."""

from __future__ import annotations

import asyncio

import asyncssh


class TCPPipe(asyncio.Protocol):
    def __init__(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan
        self._transport: asyncio.Transport | None = None
        self.full = False  # the socket's write buffer is full: the channel stays paused

    @classmethod
    async def open(cls, chan: asyncssh.SSHServerChannel[bytes], host: str, port: int) -> TCPPipe:
        loop = asyncio.get_running_loop()
        _, pipe = await asyncio.wait_for(
            loop.create_connection(lambda: cls(chan), host, port), timeout=15
        )
        return pipe

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, but has its methods.
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._chan.write(data)

    def eof_received(self) -> bool:
        self._chan.write_eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._chan.close()

    def pause_writing(self) -> None:
        self.full = True
        self._chan.pause_reading()

    def resume_writing(self) -> None:
        self.full = False
        self._chan.resume_reading()

    # What the channel side calls.
    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        if self._transport is not None and self._transport.can_write_eof():
            self._transport.write_eof()

    def pause_reading(self) -> None:
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
