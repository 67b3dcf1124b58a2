"""What files crossed an SFTP session (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks),
read off the two byte streams of the channel without changing them.

``SftpTap`` follows OPEN → HANDLE → READ/DATA or WRITE → CLOSE and reports one ``FileTransfer``
per closed file that moved data: its path, direction, size and the SHA-256 of the bytes when
they went by in order (clients read and write sequentially; a file transferred out of order is
reported without a digest). Pure: no I/O, fed with whatever chunks the channel delivers.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 3, 4, 5, 6
FXP_HANDLE, FXP_DATA = 102, 103
FXF_WRITE = 0x02
MAX_PACKET = 1024 * 1024  # larger than any client sends: a stream this confused is not SFTP


@dataclass(frozen=True, slots=True)
class FileTransfer:
    path: str
    direction: str  # "upload" (client to server) or "download"
    size: int
    sha256: str  # "" when the bytes did not go by in order


@dataclass(slots=True)
class _File:
    path: str
    upload: bool
    size: int = 0
    next_offset: int = 0
    in_order: bool = True
    moved: bool = False
    digest: Any = field(default_factory=hashlib.sha256)

    def add(self, offset: int, data: bytes) -> None:
        self.moved = True
        if offset == self.next_offset and self.in_order:
            self.digest.update(data)
            self.next_offset += len(data)
        else:
            self.in_order = False
        self.size = max(self.size, offset + len(data))

    def result(self) -> FileTransfer:
        return FileTransfer(
            path=self.path,
            direction="upload" if self.upload else "download",
            size=self.size,
            sha256=self.digest.hexdigest() if self.in_order else "",
        )


class _Packets:
    """Splits one direction's bytes into SFTP packets (uint32 length, then the packet)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.broken = False

    def feed(self, data: bytes) -> list[bytes]:
        if self.broken:
            return []
        buffer = self._buffer
        buffer += data
        packets: list[bytes] = []
        pos = 0
        while len(buffer) - pos >= 4:
            (length,) = struct.unpack_from(">I", buffer, pos)
            if length == 0 or length > MAX_PACKET:
                self.broken = True
                buffer.clear()
                return packets
            if len(buffer) - pos - 4 < length:
                break
            packets.append(bytes(buffer[pos + 4 : pos + 4 + length]))
            pos += 4 + length
        del buffer[:pos]
        return packets


def _string(packet: bytes, pos: int) -> tuple[bytes, int]:
    (length,) = struct.unpack_from(">I", packet, pos)
    start = pos + 4
    if start + length > len(packet):
        raise ValueError("truncated string")
    return packet[start : start + length], start + length


class SftpTap:
    def __init__(self, report: Callable[[FileTransfer], None]) -> None:
        self._report = report
        self._client = _Packets()
        self._server = _Packets()
        self._opening: dict[int, tuple[str, bool]] = {}
        self._files: dict[bytes, _File] = {}
        self._reads: dict[int, tuple[bytes, int]] = {}

    def from_client(self, data: bytes) -> None:
        for packet in self._client.feed(data):
            try:
                self._client_packet(packet)
            except (ValueError, struct.error):
                continue  # a malformed packet is the server's business, not ours

    def from_server(self, data: bytes) -> None:
        for packet in self._server.feed(data):
            try:
                self._server_packet(packet)
            except (ValueError, struct.error):
                continue

    def _client_packet(self, packet: bytes) -> None:
        kind = packet[0]
        if kind not in (FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE):
            return
        (request_id,) = struct.unpack_from(">I", packet, 1)
        if kind == FXP_OPEN:
            path, pos = _string(packet, 5)
            (flags,) = struct.unpack_from(">I", packet, pos)
            self._opening[request_id] = (path.decode("utf-8", "replace"), bool(flags & FXF_WRITE))
            return
        handle_view, pos = _string(packet, 5)
        handle = handle_view
        file = self._files.get(handle)
        if kind == FXP_CLOSE:
            if file is not None:
                del self._files[handle]
                if file.moved:
                    self._report(file.result())
        elif kind == FXP_READ and file is not None:
            (offset,) = struct.unpack_from(">Q", packet, pos)
            self._reads[request_id] = (handle, offset)
        elif kind == FXP_WRITE and file is not None:
            (offset,) = struct.unpack_from(">Q", packet, pos)
            data, _ = _string(packet, pos + 8)
            file.add(offset, data)

    def _server_packet(self, packet: bytes) -> None:
        kind = packet[0]
        if kind not in (FXP_HANDLE, FXP_DATA) and len(packet) >= 5:
            (request_id,) = struct.unpack_from(">I", packet, 1)
            self._opening.pop(request_id, None)  # a STATUS: the open failed
            self._reads.pop(request_id, None)  # or the read hit the end of the file
            return
        (request_id,) = struct.unpack_from(">I", packet, 1)
        if kind == FXP_HANDLE:
            opened = self._opening.pop(request_id, None)
            if opened is not None:
                handle, _ = _string(packet, 5)
                self._files[handle] = _File(path=opened[0], upload=opened[1])
        else:
            read = self._reads.pop(request_id, None)
            if read is not None and (file := self._files.get(read[0])) is not None:
                data, _ = _string(packet, 5)
                file.add(read[1], data)

    def finish(self) -> None:
        """The session ended: files left open are reported as far as they got."""
        for file in self._files.values():
            if file.moved:
                self._report(file.result())
        self._files.clear()
