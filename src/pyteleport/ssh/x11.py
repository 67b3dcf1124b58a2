"""X11 forwarding relayed, not served: asyncssh answers ``x11-req`` by opening an X display of its
own (server side) or by connecting to a local one (client side). ``take_x11_requests`` and
``X11Relay`` replace those per connection, so the user's cookie and the x11 channels pass
between the user's ssh and the target untouched."""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh


@dataclass(frozen=True, slots=True)
class X11Request:
    """An ``x11-req`` as the user's ssh sent it (RFC 4254 §6.3.1); the cookie is the fake one
    ssh made up, which it swaps for the real one when an X client connects back."""

    auth_protocol: str
    auth_cookie: bytes
    screen: int


def take_x11_requests(
    conn: asyncssh.SSHServerConnection,
    decide: Callable[[asyncssh.SSHServerChannel[bytes], X11Request], Awaitable[bool]],
) -> None:
    """Answer ``x11-req`` on ``conn``'s session channels with ``decide(channel, request)``
    instead of asyncssh's own X display."""

    async def attach(chan: Any, auth_proto: bytes, auth_data: bytes, screen: int) -> str | None:
        request = X11Request(auth_proto.decode("ascii", "replace"), bytes(auth_data), screen)
        return "relayed" if await decide(chan, request) else None

    def detach(chan: Any) -> None:
        pass

    conn.attach_x11_listener = attach  # type: ignore[method-assign]
    conn.detach_x11_listener = detach  # type: ignore[method-assign]


X11Opener = Callable[[str, int], Awaitable[asyncssh.SSHTCPSession[bytes]]]


class X11Relay:
    """X11 on the proxy's connection to a target: ``offer`` puts a user's ``x11-req`` on the
    next session opened with ``x11_forwarding="ignore_failure", x11_display=<token>``, and each
    ``x11`` channel the target opens is handed to ``open_inner(orig_host, orig_port)``, which
    returns the session on the user's side to relay it to."""

    _tokens = itertools.count(1)

    def __init__(self, conn: asyncssh.SSHClientConnection, open_inner: X11Opener) -> None:
        self._conn = conn
        self._open_inner = open_inner
        self._pending: dict[str, X11Request] = {}
        self._attached: weakref.WeakSet[Any] = weakref.WeakSet()
        conn.attach_x11_listener = self._attach  # type: ignore[method-assign,assignment]
        conn.detach_x11_listener = self._detach  # type: ignore[method-assign]
        # Channel opens are dispatched by name, like global requests.
        setattr(conn, "_process_x11_open", self._open)  # noqa: B010

    def offer(self, request: X11Request) -> str:
        token = f"pyteleport-x11-{next(self._tokens)}"
        self._pending[token] = request
        return token

    def accepted(self, chan: asyncssh.SSHClientChannel[bytes]) -> bool:
        """Whether the target said yes to the x11-req sent on ``chan``."""
        return chan in self._attached

    async def _attach(
        self, chan: Any, display: str | None, auth_path: str | None, single: bool
    ) -> tuple[bytes, bytes, int]:
        request = self._pending.pop(display or "", None)
        if request is None:
            raise ValueError("no X11 request from the user to relay")
        self._attached.add(chan)
        return request.auth_protocol.encode("ascii"), request.auth_cookie, request.screen

    def _detach(self, chan: Any) -> None:
        # After a refused x11-req, and when a session channel closes.
        self._attached.discard(chan)

    def _open(self, packet: Any) -> tuple[Any, Awaitable[asyncssh.SSHTCPSession[bytes]]]:
        orig_host = packet.get_string().decode("utf-8", "replace")
        orig_port = packet.get_uint32()
        packet.check_end()
        if not len(self._attached):
            raise asyncssh.ChannelOpenError(
                asyncssh.OPEN_CONNECT_FAILED, "X11 forwarding was not requested"
            )
        chan = self._conn.create_x11_channel()
        chan.set_inbound_peer_names(orig_host, orig_port)
        return chan, self._open_inner(orig_host, orig_port)
