"""Errors as JSON ``{"error": {"message": ...}}`` with the status of their kind."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pyteleport.errors import LimitExceededError, TeleportError
from pyteleport.events.sanitize import clean_text

log = logging.getLogger(__name__)


MAX_MESSAGE = 1024


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """A message may quote what the client sent: it goes back as one escaped, bounded line."""
    return JSONResponse(
        status_code=status,
        content={"error": {"message": clean_text(message, MAX_MESSAGE)}},
        headers=headers,
    )


def _headers_for(exc: TeleportError) -> dict[str, str] | None:
    # A 429 tells the client when to come back (RFC 6585 section 4, RFC 9110 section 10.2.3).
    if isinstance(exc, LimitExceededError):
        return {"Retry-After": str(exc.retry_after_s or 1)}
    return None


def install_error_handlers(app: FastAPI) -> None:
    async def on_teleport_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TeleportError)
        return error_response(exc.status, exc.message, _headers_for(exc))

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "path", "query"))
        message = first.get("msg", "invalid request")
        return error_response(400, f"{where}: {message}" if where else str(message))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        # Allow on a 405 (RFC 9110 section 15.5.6), Connection: close on a 413.
        return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error serving %s", request.url.path)
        return error_response(500, "internal server error: see the server's log")

    app.add_exception_handler(TeleportError, on_teleport_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
