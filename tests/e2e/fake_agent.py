"""Fault injection: agents in front of a real ssh-agent that misbehave on additions.

``CertDroppingAgent`` answers "success" to certificate additions and drops them, as gpg-agent and
GNOME Keyring do; ``CertRefusingAgent`` answers "failure" to them; ``AddRefusingAgent`` refuses
every addition. Everything else reaches the real agent."""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path
from types import TracebackType

ADD_IDENTITY = 17
ADD_ID_CONSTRAINED = 25
FAILURE = 5
SUCCESS = 6


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


def _read_message(sock: socket.socket) -> bytes:
    (length,) = struct.unpack(">I", _recv_exact(sock, 4))
    return _recv_exact(sock, length)


def _adds_certificate(message: bytes) -> bool:
    (n,) = struct.unpack(">I", message[1:5])
    return message[5 : 5 + n].endswith(b"-cert-v01@openssh.com")


class CertDroppingAgent:
    def __init__(self, upstream: str, path: Path) -> None:
        self.upstream = upstream
        self.path = path
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)

    def __enter__(self) -> Path:
        self._server.bind(str(self.path))
        self._server.listen(8)
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self.path

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(self.upstream)
        try:
            while True:
                message = _read_message(conn)
                if message[0] in (ADD_IDENTITY, ADD_ID_CONSTRAINED):
                    answer = self.answer_add(message)
                    if answer is not None:
                        conn.sendall(struct.pack(">IB", 1, answer))
                        continue
                upstream.sendall(struct.pack(">I", len(message)) + message)
                reply = _read_message(upstream)
                conn.sendall(struct.pack(">I", len(reply)) + reply)
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()
            upstream.close()

    def answer_add(self, message: bytes) -> int | None:
        """The reply to an addition instead of forwarding it, or None to forward it."""
        return SUCCESS if _adds_certificate(message) else None


class CertRefusingAgent(CertDroppingAgent):
    def answer_add(self, message: bytes) -> int | None:
        return FAILURE if _adds_certificate(message) else None


class AddRefusingAgent(CertDroppingAgent):
    def answer_add(self, message: bytes) -> int | None:
        return FAILURE
