"""The user's agent, offered to the target (the optional second hop), with every signature the
target asks for reported.

A unix socket in a private directory (0700), alive only while the target connection is, relays
each connection to the user's forwarded agent (an in-memory channel back to the client)
and reads the requests on the way (PROTOCOL.agent: uint32 length, byte type, body); a
SSH_AGENTC_SIGN_REQUEST (13) is reported with the fingerprint of the key asked to sign.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncssh

log = logging.getLogger("pyteleport.ssh")

SIGN_REQUEST = 13
# Opens one connection to the user's agent: (reader, writer) with StreamReader/Writer methods.
AgentOpener = Callable[[], Awaitable[tuple[Any, Any]]]
MAX_MESSAGE = 256 * 1024  # what OpenSSH's agent accepts


def key_fingerprint(blob: bytes) -> str:
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


class AuditedAgent:
    """``path`` is what the target connection forwards; ``on_sign`` gets each key fingerprint."""

    def __init__(self, upstream: AgentOpener, on_sign: Callable[[str], None]) -> None:
        self._upstream = upstream
        self._on_sign = on_sign
        self._dir = Path(tempfile.mkdtemp(prefix="pyteleport-agent-"))
        os.chmod(self._dir, 0o700)
        self.path = str(self._dir / "agent.sock")
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> AuditedAgent:
        self._server = await asyncio.start_unix_server(self._serve, self.path)
        os.chmod(self.path, 0o600)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await self._upstream()
        except (OSError, asyncssh.Error) as exc:
            log.warning("cannot reach the user's agent for the target: %s", exc)
            writer.close()
            return
        back = asyncio.get_running_loop().create_task(self._copy(up_reader, writer))
        self._tasks.add(back)
        back.add_done_callback(self._tasks.discard)
        try:
            while True:
                header = await reader.readexactly(4)
                (length,) = struct.unpack(">I", header)
                if length > MAX_MESSAGE:
                    break
                body = await reader.readexactly(length)
                if body and body[0] == SIGN_REQUEST and len(body) >= 5:
                    (blob_len,) = struct.unpack(">I", body[1:5])
                    self._on_sign(key_fingerprint(body[5 : 5 + blob_len]))
                up_writer.write(header + body)
                await up_writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            up_writer.close()
            writer.close()

    @staticmethod
    async def _copy(reader: Any, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        shutil.rmtree(self._dir, ignore_errors=True)
