"""Errors as JSON ``{"error": {"message": ...}}`` with the status of their kind."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from pyteleport.errors import TeleportError

log = logging.getLogger(__name__)


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": {"message": message}})


def install_error_handlers(app: FastAPI) -> None:
    async def on_teleport_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TeleportError)
        return error_response(exc.status, exc.message)

    async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = first.get("msg", "invalid request")
        return error_response(400, f"{where}: {message}" if where else str(message))

    async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return error_response(exc.status_code, str(exc.detail))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error serving %s", request.url.path)
        return error_response(500, "internal server error: see the server's log")

    app.add_exception_handler(TeleportError, on_teleport_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
