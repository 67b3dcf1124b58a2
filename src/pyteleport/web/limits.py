"""Limits a request meets before the application reads it: rate limits by path and source address,
and a body size by path (``Content-Length`` checked at once, a chunked body counted as it comes).

An ASGI middleware around the whole application, so a refused request costs a few bytes of
headers: its body is never read into memory, and its JSON is never parsed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from starlette.exceptions import HTTPException

from pyteleport.errors import LimitExceededError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# A login or a token check carries a few hundred bytes; an admin's role or lock a few KiB.
MAX_HEAD_BYTES = 64 << 10  # a request line and its headers
MAX_URI_BYTES = 8 << 10  # a path and query
INVALID_REQUEST = (
    f"invalid HTTP request: it is not HTTP/1.1, or its request line and headers are over "
    f"{MAX_HEAD_BYTES} bytes"
)
DEFAULT_MAX_BODY_BYTES = 1 << 20
UNAUTHENTICATED_MAX_BODY_BYTES = 64 << 10


def body_too_large(limit: int) -> str:
    return f"request body too large: at most {limit} bytes"


@dataclass(frozen=True)
class RequestLimits:
    """``rates``: (path prefix, check) pairs; a check raises LimitExceededError for a source
    address over its rate. ``bodies``: (path prefix, bytes) pairs, the first that matches wins,
    else ``max_body_bytes``."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    bodies: Sequence[tuple[str, int]] = ()
    rates: Sequence[tuple[str, Callable[[str], None]]] = field(default=())

    def body_limit(self, path: str) -> int:
        for prefix, limit in self.bodies:
            if path.startswith(prefix):
                return limit
        return self.max_body_bytes


class LimitsMiddleware:
    def __init__(self, app: ASGIApp, limits: RequestLimits) -> None:
        self._app = app
        self._limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        headers = scope.get("headers", ())
        uri = len(scope.get("raw_path") or b"") + len(scope.get("query_string") or b"")
        if uri + sum(len(k) + len(v) + 4 for k, v in headers) > MAX_HEAD_BYTES:
            # The HTTP layer refuses such a head when it comes in pieces; one that came at
            # once is refused here, the same way.
            await _respond(send, 400, INVALID_REQUEST, {"connection": "close"})
            return
        if uri > MAX_URI_BYTES:
            await _respond(send, 414, f"request URI too long: at most {MAX_URI_BYTES} bytes", {})
            return
        client = scope.get("client") or ("", 0)
        for prefix, check in self._limits.rates:
            if path.startswith(prefix):
                try:
                    check(str(client[0]))
                except LimitExceededError as exc:
                    retry = {"retry-after": str(exc.retry_after_s or 1)}
                    await _respond(send, 429, exc.message, retry)
                    return
        limit = self._limits.body_limit(path)
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            await _respond(send, 413, body_too_large(limit), {"connection": "close"})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # Raised inside the application's read of the body; its error handler
                    # answers 413 (FastAPI passes an HTTPException from the body read through).
                    raise HTTPException(413, body_too_large(limit), {"connection": "close"})
            return message

        await self._app(scope, counted, send)


def _content_length(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # h11 refuses a malformed length before we see it
    return None


async def _respond(send: Send, status: int, message: str, headers: Mapping[str, str]) -> None:
    body = json.dumps({"error": {"message": message}}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
