"""A uvicorn HTTPS server run as a task of the process's own event loop.

uvicorn does not expose the TLS peer certificate to the application, so the protocol class below
copies it into the per-connection ASGI ``state``; endpoints read it with :func:`peer_certificate`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from typing import Any

import uvicorn
from fastapi import Request
from uvicorn.protocols.http.h11_impl import H11Protocol

from pyteleport.errors import BadParameterError

PEER_CERT_STATE = "pyteleport.peer_cert_der"

log = logging.getLogger(__name__)


class _PeerCertProtocol(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        # A per-connection copy: uvicorn copies app_state into each request's scope["state"].
        self.app_state = {**self.app_state, PEER_CERT_STATE: der}


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
    """Serve an ASGI app over TLS on (host, port); ``port`` 0 picks a free one."""

    def __init__(self, app: Any, host: str, port: int, ssl_context: ssl.SSLContext) -> None:
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            http=_PeerCertProtocol,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
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
        # startup() (not serve()) so uvicorn installs no signal handlers: the process owns those.
        self._server.lifespan = config.lifespan_class(config)
        await self._server.startup(sockets=[sock])
        self._servers = list(self._server.servers)
        self._task = asyncio.create_task(self._server.main_loop(), name="https-housekeeping")

    async def aclose(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
        with contextlib.suppress(Exception):
            await self._server.shutdown()
