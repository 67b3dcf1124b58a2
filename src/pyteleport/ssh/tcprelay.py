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
        self.full = False  # this end's write buffer is full: the peer's reading is paused

    def connection_made(self, chan: asyncssh.SSHTCPChannel[bytes]) -> None:
        self.chan = chan
        waiting, self._waiting = self._waiting, []
        for data in waiting:
            chan.write(data)
        if self._waiting_eof:
            chan.write_eof()
        # The peer stopped reading while this end was opening (see data_received).
        if self.peer is not None and self.peer.chan is not None and not self.full:
            self.peer.chan.resume_reading()

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.bytes_in += len(data)
        peer = self.peer
        if peer is None:
            return
        if peer.chan is None:
            # Bounded by this channel's window: what arrives meanwhile waits at the sender.
            peer._waiting.append(data)
            if self.chan is not None:
                self.chan.pause_reading()
        else:
            peer.chan.write(data)

    def eof_received(self) -> bool:
        if self.peer is not None:
            if self.peer.chan is None:
                self.peer._waiting_eof = True
            else:
                self.peer.chan.write_eof()
        return True

    def pause_writing(self) -> None:
        self.full = True
        if self.peer is not None and self.peer.chan is not None:
            self.peer.chan.pause_reading()

    def resume_writing(self) -> None:
        self.full = False
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
