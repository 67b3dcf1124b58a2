"""A uvicorn HTTPS server run as a task of the process's own event loop.

uvicorn does not expose the TLS peer certificate to the application, so the protocol class below
copies it into the per-connection ASGI ``state``; endpoints read it with :func:`peer_certificate`.

The same class bounds what a client can make the listener hold (``ListenerLimits``): a TLS
handshake, the headers of a request and its body each have a time limit, an idle keep-alive
connection is closed, and one source address holds a bounded number of connections. uvicorn has
the keep-alive limit only: a client that sends a request's headers one byte at a time would
otherwise hold its connection (and a file descriptor) for ever.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from fastapi import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from pyteleport.errors import BadParameterError
from pyteleport.web.limits import (
    INVALID_REQUEST,
    MAX_HEAD_BYTES,
    LimitsMiddleware,
    RequestLimits,
)

PEER_CERT_STATE = "pyteleport.peer_cert_der"


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ListenerLimits:
    """What one HTTPS listener lets a client hold."""

    handshake_timeout_s: float = 10.0  # TCP accept to the end of the TLS handshake
    header_timeout_s: float = 10.0  # connection (or end of the last response) to full headers
    body_timeout_s: float = 30.0  # full headers to the end of the request's body
    write_timeout_s: float = 60.0  # an answer the client reads nothing of, before it is closed
    keep_alive_s: float = 5.0  # idle between requests
    shutdown_timeout_s: float = 2.0  # waiting for a client's TLS close_notify once we close
    max_connections_per_address: int = 128


class _ConnectionCount:
    """Open connections per source address, shared by a listener's connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: dict[str, int] = {}

    def take(self, address: str) -> bool:
        count = self._open.get(address, 0)
        if count >= self.limit:
            return False
        self._open[address] = count + 1
        return True

    def give_back(self, address: str) -> None:
        count = self._open.get(address, 0) - 1
        if count > 0:
            self._open[address] = count
        else:
            self._open.pop(address, None)


class _PeerCertProtocol(H11Protocol):
    limits: ListenerLimits = ListenerLimits()
    counts: _ConnectionCount | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._address = ""
        self._read_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if peer else ""
        if self.counts is not None and not self.counts.take(address):
            # Debug only: under a flood, one line per refused connection would flood the log.
            log.debug("refused an HTTPS connection from %s: too many open from it", address)
            transport.abort()
            return
        self._address = address
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # A per-connection copy: uvicorn copies app_state into each request's scope["state"].
        self.app_state = {**self.app_state, PEER_CERT_STATE: der}
        self._arm(self.limits.header_timeout_s, body_allowed=True)

    def send_400_response(self, msg: str) -> None:
        """A request that is not HTTP, or whose head is over MAX_HEAD_BYTES: refused in the
        JSON shape of every other refusal (uvicorn's is a line of plain text), and closed."""
        body = json.dumps({"error": {"message": INVALID_REQUEST}}).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ]
        for event in (
            h11.Response(status_code=400, headers=headers, reason=b"Bad Request"),
            h11.Data(data=body),
            h11.EndOfMessage(),
        ):
            self.transport.write(self.conn.send(event) or b"")
        self.transport.close()

    def pause_writing(self) -> None:
        """The client has stopped reading (the transport's buffer is full): it has
        write_timeout_s to read again, or it is closed, and with it what it was being sent
        (a recording file held open)."""
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(
                self.limits.write_timeout_s, self._write_deadline
            )

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _write_deadline(self) -> None:
        self._write_timer = None
        log.debug(
            "closed a slow HTTPS client %s (read nothing for %gs)",
            self.client,
            self.limits.write_timeout_s,
        )
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None
        if self._read_timer is not None:
            self._read_timer.cancel()
        if self.counts is not None and self._address:
            self.counts.give_back(self._address)
            self._address = ""
        if self.transport is not None:  # None: refused before uvicorn saw the connection
            super().connection_lost(exc)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm(self.limits.header_timeout_s, body_allowed=True)

    def _arm(self, delay_s: float, *, body_allowed: bool) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
        self._read_timer = self.loop.call_later(delay_s, self._read_deadline, body_allowed)

    def _read_deadline(self, body_allowed: bool) -> None:
        """The client has had its time to send a request: close if the headers (or, one limit
        later, the body) are not all in. A request the app is serving is not the client's delay."""
        self._read_timer = None
        state = self.conn.their_state
        if state is h11.SEND_BODY and body_allowed:
            self._arm(self.limits.body_timeout_s, body_allowed=False)
            return
        if state in (h11.IDLE, h11.SEND_BODY) and not self.transport.is_closing():
            log.debug("closed a slow HTTPS client %s (request not received in time)", self.client)
            self.transport.close()


def peer_certificate(request: Request) -> bytes | None:
    """The DER client certificate the TLS handshake verified, or None."""
    value: Any = request.scope.get("state", {}).get(PEER_CERT_STATE)
    return value if isinstance(value, bytes) else None


def server_ssl_context(
    cert_file: str, key_file: str, client_ca_file: str | None = None
) -> ssl.SSLContext:
    """TLS 1.2+; with ``client_ca_file`` a client certificate is asked for (optional)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_file, key_file)
    except (OSError, ssl.SSLError) as exc:
        raise BadParameterError(
            f"cannot load HTTPS certificate {cert_file} and key {key_file}: {exc}"
        ) from exc
    if client_ca_file:
        context.load_verify_locations(client_ca_file)
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


class HttpsServer:
    """Serve an ASGI app over TLS on (host, port); ``port`` 0 picks a free one. ``limits`` are
    checked before the app reads a request (default: bodies up to 1 MiB). Without an
    ``ssl_context`` it serves plain HTTP (the diagnostics listener), with the same limits."""

    def __init__(
        self,
        app: Any,
        host: str,
        port: int,
        ssl_context: ssl.SSLContext | None,
        limits: RequestLimits | None = None,
        listener: ListenerLimits | None = None,
    ) -> None:
        self._listener = listener or ListenerLimits()
        protocol = type(
            "HttpsConnection",
            (_PeerCertProtocol,),
            {
                "limits": self._listener,
                "counts": _ConnectionCount(self._listener.max_connections_per_address),
            },
        )
        self._config = uvicorn.Config(
            LimitsMiddleware(app, limits or RequestLimits()),
            host=host,
            port=port,
            http=protocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=int(self._listener.keep_alive_s),
            # Whatever pieces (TLS records) a request's head comes in, the same answer: up to
            # this size the app sees it (and refuses a long URI itself), past it the protocol.
            h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        )
        self._ssl_context = ssl_context
        self._server = uvicorn.Server(self._config)
        self._servers: list[asyncio.Server] = []
        self._task: asyncio.Task[None] | None = None

    @property
    def port(self) -> int:
        for server in self._servers:
            for sock in server.sockets:
                return int(sock.getsockname()[1])
        raise RuntimeError("server is not started")

    async def start(self) -> None:
        config = self._config
        if not config.loaded:
            config.load()
        config.ssl = self._ssl_context
        family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((config.host, config.port))
        except OSError as exc:
            sock.close()
            raise BadParameterError(
                f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
            ) from exc
        sock.set_inheritable(False)
        # Not serve(), so uvicorn installs no signal handlers: the process owns those; and not
        # startup() either, which gives asyncio no TLS handshake or shutdown timeout.
        server = self._server
        server.lifespan = config.lifespan_class(config)
        await server.lifespan.startup()

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=server.server_state,
                app_state=server.lifespan.state,
                _loop=_loop,
            )
            return protocol

        listening = await asyncio.get_running_loop().create_server(
            create_protocol,
            sock=sock,
            ssl=self._ssl_context,
            backlog=config.backlog,
            ssl_handshake_timeout=self._listener.handshake_timeout_s if self._ssl_context else None,
            ssl_shutdown_timeout=self._listener.shutdown_timeout_s if self._ssl_context else None,
        )
        server.servers = [listening]
        server.started = True
        self._servers = [listening]
        self._task = asyncio.create_task(self._server.main_loop(), name="https-housekeeping")

    async def aclose(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._server.shutdown()
