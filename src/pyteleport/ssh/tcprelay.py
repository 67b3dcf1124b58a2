"""Relay a direct-tcpip channel (``ssh -L``, ``-D``) between the user's connection and the
target's, with the same flow control as session channels: a full write buffer on one side
pauses reading on the other."""

from __future__ import annotations

from collections.abc import Callable

import asyncssh


class TCPEnd(asyncssh.SSHTCPSession[bytes]):
    """One end of the pair. Data for a peer whose channel is not open yet waits here."""

    def __init__(self, on_close: Callable[[], None] | None = None) -> None:
        self.peer: TCPEnd | None = None
        self.chan: asyncssh.SSHTCPChannel[bytes] | None = None
        self._waiting: list[bytes] = []
        self._waiting_eof = False
        self._on_close = on_close
        self.bytes_in = 0  # received on this end's channel

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        waiting, self._waiting = self._waiting, []
        for data in waiting:
            chan.write(data)
        if self._waiting_eof:
            chan.write_eof()

    def _send(self, data: bytes) -> None:
        if self.chan is None:
            self._waiting.append(data)
        else:
            self.chan.write(data)

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.bytes_in += len(data)
        if self.peer is not None:
            self.peer._send(data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            if self.peer.chan is None:
                self.peer._waiting_eof = True
            else:
                self.peer.chan.write_eof()
        return True

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.close()
        if self._on_close is not None:
            callback, self._on_close = self._on_close, None
            callback()


def pair(on_close: Callable[[], None] | None = None) -> tuple[TCPEnd, TCPEnd]:
    """(inner end, target end); ``on_close`` runs once, when the inner end closes."""
    inner, target = TCPEnd(on_close), TCPEnd()
    inner.peer, target.peer = target, inner
    return inner, target
