"""A minimal ssh-agent holding the profile's key and certificate, for ``tsh proxy ssh`` when the
user has no agent (or keeps tsh out of it with ``--no-use-local-ssh-agent``): the recording
proxy logs into the target with the agent the client forwards.

PROTOCOL.agent, the two requests a proxy makes: REQUEST_IDENTITIES (11) and SIGN_REQUEST (13).
The socket lives in a private directory (0700, socket 0600) for as long as tsh runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import struct
import tempfile
from pathlib import Path

import asyncssh

REQUEST_IDENTITIES, IDENTITIES_ANSWER = 11, 12
SIGN_REQUEST, SIGN_RESPONSE = 13, 14
FAILURE = 5
RSA_SHA2_256, RSA_SHA2_512 = 0x02, 0x04


def _string(value: bytes) -> bytes:
    return struct.pack(">I", len(value)) + value


class MemoryAgent:
    def __init__(self, key: asyncssh.SSHKey, cert: asyncssh.SSHCertificate, comment: str) -> None:
        self._key = key
        self._identities = [(bytes(cert.public_data), comment), (bytes(key.public_data), comment)]
        self._dir = Path(tempfile.mkdtemp(prefix="tsh-agent-"))
        os.chmod(self._dir, 0o700)
        self.path = str(self._dir / "agent.sock")
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> MemoryAgent:
        self._server = await asyncio.start_unix_server(self._serve, self.path)
        os.chmod(self.path, 0o600)
        return self

    def _answer(self, request: bytes) -> bytes:
        if request[:1] == bytes([REQUEST_IDENTITIES]):
            body = struct.pack(">I", len(self._identities))
            for blob, comment in self._identities:
                body += _string(blob) + _string(comment.encode())
            return bytes([IDENTITIES_ANSWER]) + body
        if request[:1] == bytes([SIGN_REQUEST]):
            (blob_len,) = struct.unpack_from(">I", request, 1)
            blob = request[5 : 5 + blob_len]
            pos = 5 + blob_len
            (data_len,) = struct.unpack_from(">I", request, pos)
            data = request[pos + 4 : pos + 4 + data_len]
            (flags,) = struct.unpack_from(">I", request, pos + 4 + data_len)
            if blob not in (b for b, _ in self._identities):
                return bytes([FAILURE])
            algorithm = self._key.sig_algorithms[0]
            if self._key.algorithm == b"ssh-rsa":
                algorithm = (
                    b"rsa-sha2-512"
                    if flags & RSA_SHA2_512
                    else b"rsa-sha2-256"
                    if flags & RSA_SHA2_256
                    else b"ssh-rsa"
                )
            return bytes([SIGN_RESPONSE]) + _string(self._key.sign(data, algorithm))
        return bytes([FAILURE])

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError, struct.error):
            while True:
                (length,) = struct.unpack(">I", await reader.readexactly(4))
                answer = self._answer(await reader.readexactly(length))
                writer.write(_string(answer))
                await writer.drain()
        writer.close()

    async def aclose(self) -> None:
        if self._server is not None:
            self._server.close()
        shutil.rmtree(self._dir, ignore_errors=True)
