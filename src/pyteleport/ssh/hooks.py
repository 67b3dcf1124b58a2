"""The places where asyncssh offers no public hook, kept in one module.

* Global requests: asyncssh answers an unknown global request with failure; it dispatches known
  ones to ``_process_<name>_global_request`` methods found with ``getattr``, so an attribute on
  the connection instance adds one (``recording-proxy@teleport.com``, docs/compatibility.md,
  "The recording proxy protocol").
* Agent forwarding without a unix socket on disk (``keep_agent_in_memory``), and decided per
  session on the client side (``set_agent_forwarding``).
* Asking a global request and reading its raw reply (tsh's side of the same question).
* X11 forwarding relayed, not served: asyncssh answers ``x11-req`` by opening an X display of
  its own (server side) or by connecting to a local one (client side). ``take_x11_requests``
  and ``X11Relay`` replace those per connection, so the user's cookie and the x11 channels
  pass between the user's ssh and the target untouched.
* Writes to the socket: asyncssh writes each SSH packet to its transport on its own, one
  ``send`` system call per packet; ``coalesce_writes`` joins the packets of one pass of the
  event loop into one write.
* Channel windows: asyncssh tops a channel's receive window up to its full size whenever it
  delivers data, even while what the peer sent earlier still waits in the channel because the
  session paused reading. Each pause and resume then lets the peer send up to another window,
  so a paused channel buffers without bound (a 256 MiB upload to a target that reads slowly
  ended up whole in the proxy's memory). ``_deliver_data`` is replaced, for every channel, by
  one that credits the peer only with what the session took, so a window bounds the buffer.
* Client certificates: ``SSHServer.validate_ca_key`` sees only the signing key, but the proxy
  must know the certificate's key ID (the Teleport user) and why a certificate was refused (the
  ``auth`` audit event). ``_validate_openssh_certificate`` is wrapped per connection to see it.

All are exercised by the end-to-end tests against real OpenSSH clients, so an asyncssh upgrade
that moves them fails loudly.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncssh
from asyncssh.channel import SSHChannel
from asyncssh.constants import MSG_CHANNEL_WINDOW_ADJUST
from asyncssh.misc import ProtocolError, map_handler_name
from asyncssh.packet import UInt32

from pyteleport.crypto import sshcert

MSG_REQUEST_SUCCESS = 81  # RFC 4254 §4


def add_global_request_handler(
    conn: asyncssh.SSHServerConnection, name: str, answer: Callable[[], bool | bytes]
) -> None:
    """Answer global request ``name`` with ``answer()`` (True, False or a raw reply payload)."""

    def handler(packet: Any) -> None:
        conn._report_global_response(answer())

    setattr(conn, f"_process_{map_handler_name(name)}_global_request", handler)


@dataclass(frozen=True, slots=True)
class ClientCertificate:
    """What the proxy reads of a user's certificate once asyncssh has verified it."""

    key_id: str
    principals: tuple[str, ...]
    valid_before: int  # unix seconds
    extensions: dict[str, str]


@dataclass(slots=True)
class CertificateCheck:
    """Filled in by the wrapped validator: the accepted certificate or the refusal reason."""

    accepted: ClientCertificate | None = None
    refusal: str = ""


def watch_client_certificates(
    conn: asyncssh.SSHServerConnection,
    ca_public_key: asyncssh.SSHKey,
    check: CertificateCheck,
    extra: Callable[[ClientCertificate], str] | None = None,
    grant: tuple[str, ...] = (),
) -> None:
    """Record the accepted certificate (or why one was refused) on ``check``.

    ``extra`` may add a refusal of its own (for example: a different user than expected).
    ``grant`` names permissions (``agent-forwarding``, ...) this connection allows whatever the
    certificate says: asyncssh enforces the certificate's ``permit-*`` extensions itself."""
    original: Callable[[str, Any], Awaitable[asyncssh.SSHKey | None]] = (
        conn._validate_openssh_certificate
    )

    async def validate(username: str, cert: Any) -> asyncssh.SSHKey | None:
        key = await original(username, cert)
        info = sshcert.parse_certificate(b"cert " + base64.b64encode(bytes(cert.public_data)))
        parsed = ClientCertificate(
            key_id=info.key_id,
            principals=tuple(info.principals),
            valid_before=int(info.valid_before),
            extensions=dict(info.extensions),
        )
        if key is None:
            check.refusal = _refusal_reason(username, cert, parsed, ca_public_key)
            return None
        if extra is not None:
            reason = extra(parsed)
            if reason:
                check.refusal = reason
                return None
        check.accepted = parsed
        if grant:
            options = dict(conn._cert_options or {})
            options.update({f"permit-{name}": True for name in grant})
            conn._cert_options = options
        return key

    conn._validate_openssh_certificate = validate  # type: ignore[method-assign]


def _refusal_reason(
    username: str, cert: Any, parsed: ClientCertificate, ca_public_key: asyncssh.SSHKey
) -> str:
    # Go's x/crypto/ssh wording, which Teleport users see in its audit log.
    if cert.signing_key != ca_public_key:
        return "ssh: certificate signed by unrecognized authority"
    now = time.time()
    if now >= parsed.valid_before:
        return "ssh: cert has expired"
    if parsed.principals and username not in parsed.principals:
        quoted = " ".join(f'"{p}"' for p in parsed.principals)
        return f'ssh: principal "{username}" not in the set of valid principals for given certificate: [{quoted}]'
    return "ssh: certificate is not valid"


async def ask_recording_proxy(conn: asyncssh.SSHClientConnection) -> bool:
    """Send ``recording-proxy@teleport.com`` as tsh does; the reply payload is b"true" or
    b"false" (not an SSH string). asyncssh has no public call for a global request."""
    pkttype, packet = await conn._make_global_request(b"recording-proxy@teleport.com")
    return pkttype == MSG_REQUEST_SUCCESS and packet.get_remaining_payload() == b"true"


def set_agent_forwarding(conn: asyncssh.SSHClientConnection, path: str | None) -> None:
    """Whether the next sessions ``conn`` opens ask for agent forwarding, and to which socket
    the agent channels the server opens go (asyncssh fixes both per connection)."""
    conn._agent_forward_path = path


class ForwardedAgent:
    """Whether the client asked for agent forwarding on this connection. The agent is then
    reached over an in-memory ``auth-agent@openssh.com`` channel (``SSHAgentClient(conn)``)."""

    def __init__(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        self.requested = False


class _NoAgentSocket:
    def get_path(self) -> None:
        return None

    def close(self) -> None:
        pass


def keep_agent_in_memory(conn: asyncssh.SSHServerConnection) -> ForwardedAgent:
    """Accept ``auth-agent-req@openssh.com`` without the unix socket asyncssh would create for
    it (``create_agent_listener``): no user's agent is reachable from the proxy's filesystem."""
    state = ForwardedAgent(conn)

    async def create_agent_listener() -> bool:
        if not (
            conn._agent_forwarding
            and conn.check_key_permission("agent-forwarding")
            and conn.check_certificate_permission("agent-forwarding")
        ):
            return False
        state.requested = True
        # asyncssh opens agent channels only while it holds a listener: give it one with no
        # socket behind it.
        conn._agent_listener = _NoAgentSocket()  # type: ignore[assignment]
        return True

    conn.create_agent_listener = create_agent_listener  # type: ignore[method-assign]
    return state


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


# -- channel windows ----------------------------------------------------------------------------


def _deliver_data(self: Any, data: bytes, datatype: Any) -> None:
    """asyncssh's ``SSHChannel._deliver_data``, crediting the window for taken data only.

    The peer may send ``_recv_window`` more bytes; what it sent that the session has not taken
    yet waits in ``_recv_buf``. asyncssh re-opens the window to its full size once half of it
    is used, counting the waiting bytes as taken; here they are not."""
    full = self._init_recv_window
    if self._recv_window < full / 2:
        waiting = sum(len(item[0]) for item in self._recv_buf) if self._recv_buf else 0
        taken = full - self._recv_window - waiting
        if taken > full / 2:
            self.send_packet(MSG_CHANNEL_WINDOW_ADJUST, UInt32(taken))
            self._recv_window += taken
    delivered: Any = data
    if self._encoding:
        try:
            delivered = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            raise ProtocolError(str(exc)) from None
    if self._session is not None:
        self._session.data_received(delivered, datatype)


SSHChannel._deliver_data = _deliver_data  # type: ignore[method-assign]
