"""Writes to the socket: asyncssh writes each SSH packet to its transport on its own, one ``send``
system call per packet; ``coalesce_writes`` joins the packets of one pass of the event loop
into one write."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh


class _CoalescingTransport:
    """Stands in for a connection's socket transport: writes made in one pass of the event loop
    (a data packet and a window adjust, exit-status, EOF and close, two outer packets of one
    inner packet, ...) reach the socket in one ``send``. Everything else is the transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending.append(data)
        self._pending_size += len(data)

    def _flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        if not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._flush()  # the disconnect message asyncssh sent just before
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return int(self._transport.get_write_buffer_size()) + self._pending_size

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def coalesce_writes(conn: asyncssh.SSHClientConnection | asyncssh.SSHServerConnection) -> None:
    """Call from the connection's ``connection_made``, before asyncssh writes anything."""
    transport = conn._transport
    if transport is not None and not isinstance(transport, _CoalescingTransport):
        conn._transport = _CoalescingTransport(transport, asyncio.get_running_loop())  # type: ignore[assignment]
