"""Global requests asyncssh has no public hook for (RFC 4254 section 4): answering one of our own
on the server side (``recording-proxy@teleport.com``) and asking one and reading its raw reply
on the client side (tsh's side of the same question). asyncssh dispatches a global request to a
``_process_<name>_global_request`` method found with ``getattr``, so an attribute on the
connection instance adds one (docs/compatibility.md, "The recording proxy protocol")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncssh
from asyncssh.misc import map_handler_name

MSG_REQUEST_SUCCESS = 81  # RFC 4254 §4


def add_global_request_handler(
    conn: asyncssh.SSHServerConnection, name: str, answer: Callable[[], bool | bytes]
) -> None:
    """Answer global request ``name`` with ``answer()`` (True, False or a raw reply payload)."""

    def handler(packet: Any) -> None:
        conn._report_global_response(answer())

    setattr(conn, f"_process_{map_handler_name(name)}_global_request", handler)


async def ask_recording_proxy(conn: asyncssh.SSHClientConnection) -> bool:
    """Send ``recording-proxy@teleport.com`` as tsh does; the reply payload is b"true" or
    b"false" (not an SSH string). asyncssh has no public call for a global request."""
    pkttype, packet = await conn._make_global_request(b"recording-proxy@teleport.com")
    return pkttype == MSG_REQUEST_SUCCESS and packet.get_remaining_payload() == b"true"
