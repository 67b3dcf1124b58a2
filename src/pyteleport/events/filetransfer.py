"""What files crossed an SFTP session (draft-ietf-secsh-filexfer-02, the version OpenSSH speaks),
read off the two byte streams of the channel without changing them.

``SftpTap`` follows OPEN → HANDLE → READ/DATA or WRITE → CLOSE and reports one ``FileTransfer``
per closed file that moved data: its path, direction, size and the SHA-256 of the bytes when
they went by in order (clients read and write sequentially; a file transferred out of order is
reported without a digest). Pure: no I/O, fed with whatever chunks the channel delivers.
"""

from __future__ import annotations

import fnmatch
import hashlib
import posixpath
import re
import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FXP_INIT, FXP_VERSION = 1, 2
FXP_OPEN, FXP_CLOSE, FXP_READ, FXP_WRITE = 3, 4, 5, 6
FXP_HANDLE, FXP_DATA = 102, 103
FXF_WRITE = 0x02
MAX_PACKET = 1024 * 1024  # larger than any client sends: a stream this confused is not SFTP
MAX_WAITING = 65536  # requests followed while unanswered (clients keep a few dozen in flight)


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
    """Every request the client sends waits for its answer in the order sent, each request id
    its own queue: OpenSSH's sftp-server answers a connection's requests in order, and a client
    that sends two requests with one id (a STAT, then an OPEN) does not get the first answer
    taken for the second's."""

    def __init__(self, report: Callable[[FileTransfer], None]) -> None:
        self._report = report
        self._client = _Packets()
        self._server = _Packets()
        # request id -> the requests of that id not answered yet, oldest first: (kind, what
        # an OPEN opens or the (handle, offset) a READ reads; None for the rest)
        self._waiting: dict[int, deque[tuple[int, Any]]] = {}
        self._outstanding = 0
        self._files: dict[bytes, _File] = {}

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
        if kind == FXP_INIT:
            return
        (request_id,) = struct.unpack_from(">I", packet, 1)
        what: Any = None
        if kind == FXP_OPEN:
            path, pos = _string(packet, 5)
            (flags,) = struct.unpack_from(">I", packet, pos)
            what = (path.decode("utf-8", "replace"), bool(flags & FXF_WRITE))
        elif kind in (FXP_CLOSE, FXP_READ, FXP_WRITE):
            handle, pos = _string(packet, 5)
            file = self._files.get(handle)
            if kind == FXP_CLOSE:
                if file is not None:
                    del self._files[handle]
                    if file.moved:
                        self._report(file.result())
            elif kind == FXP_READ and file is not None:
                (offset,) = struct.unpack_from(">Q", packet, pos)
                what = (handle, offset)
            elif kind == FXP_WRITE and file is not None:
                (offset,) = struct.unpack_from(">Q", packet, pos)
                data, _ = _string(packet, pos + 8)
                file.add(offset, data)
        self._wait(request_id, kind, what)

    def _wait(self, request_id: int, kind: int, what: Any) -> None:
        if self._outstanding >= MAX_WAITING:
            return  # a client that never reads its answers: what it asks for is not followed
        self._waiting.setdefault(request_id, deque()).append((kind, what))
        self._outstanding += 1

    def _answered(self, request_id: int) -> tuple[int, Any] | None:
        waiting = self._waiting.get(request_id)
        if not waiting:
            return None
        request = waiting.popleft()
        self._outstanding -= 1
        if not waiting:
            del self._waiting[request_id]
        return request

    def _server_packet(self, packet: bytes) -> None:
        kind = packet[0]
        if kind == FXP_VERSION or len(packet) < 5:
            return
        (request_id,) = struct.unpack_from(">I", packet, 1)
        request = self._answered(request_id)
        if request is None:
            return
        asked, what = request
        if kind == FXP_HANDLE and asked == FXP_OPEN:
            handle, _ = _string(packet, 5)
            self._files[handle] = _File(path=what[0], upload=what[1])
        elif (
            kind == FXP_DATA
            and asked == FXP_READ
            and what is not None
            and (file := self._files.get(what[0])) is not None
        ):
            data, _ = _string(packet, 5)
            file.add(what[1], data)

    def finish(self) -> None:
        """The session ended: files left open are reported as far as they got."""
        for file in self._files.values():
            if file.moved:
                self._report(file.result())
        self._files.clear()


# What OpenSSH's scp runs on the remote: ``scp [-v] [-r] [-p] [-d] [-q] -t|-f [--] PATH...``,
# the paths as the user typed them for the remote shell (quoted, escaped, globbed, $HOME).
_SCP_PROGRAM = re.compile(r"(?:/[^/]+)*/scp|scp")
_SCP_FLAGS = frozenset({"-v", "-r", "-p", "-d", "-q"})
# Outside quotes, each of these makes the shell do more than pass words to one program.
_SHELL_OPERATORS = frozenset(";&|<>()`\n\r")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\{[A-Za-z_][A-Za-z0-9_]*\}")


def _shell_words(command: str) -> list[str] | None:
    """The words a POSIX shell splits ``command`` into, quotes and escapes removed, or None
    when the shell would do more than run one program with them: an operator (``;``, ``|``,
    ``&``, a redirection, a subshell), a command substitution (``$(...)``, backquotes) or a
    parameter expansion beyond a plain ``$NAME``/``${NAME}``. Globs and braces stay as they
    are: they only make more paths."""
    words: list[str] = []
    word: list[str] = []
    in_word = False  # a word has begun (an empty quoted one counts)
    quote = ""
    i, n = 0, len(command)
    while i < n:
        c = command[i]
        step = 1
        if c in "\n\r\0":
            return None
        if quote == "'":
            if c == "'":
                quote = ""
            else:
                word.append(c)
        elif c == "$":
            name = _NAME.match(command, i + 1)
            if name is None:
                return None
            word.append(command[i : name.end()])
            in_word, step = True, name.end() - i
        elif c == "`":
            return None
        elif c == "\\":
            nxt = command[i + 1 : i + 2]
            if nxt in ("", "\n", "\r", "\0"):
                return None
            if quote and nxt not in '$`"\\':
                word.append(c)
            word.append(nxt)
            in_word, step = True, 2
        elif quote == '"':
            if c == '"':
                quote = ""
            else:
                word.append(c)
        elif c in "'\"":
            quote, in_word = c, True
        elif c in " \t":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
        elif c in _SHELL_OPERATORS:
            return None
        else:
            word.append(c)
            in_word = True
        i += step
    if quote:
        return None
    if in_word:
        words.append("".join(word))
    return words


def _scp_words(command: str) -> list[str] | None:
    """``command``'s words when it is exactly what scp asks the remote to run, else None."""
    words = _shell_words(command)
    if not words or _SCP_PROGRAM.fullmatch(words[0]) is None:
        return None
    i = 1
    while i < len(words) and words[i] in _SCP_FLAGS:
        i += 1
    if i >= len(words) or words[i] not in ("-t", "-f"):
        return None
    i += 1
    if i < len(words) and words[i] == "--":
        i += 1
    paths = words[i:]
    if not paths or (words[i - 1] != "--" and paths[0].startswith("-")):
        return None
    return words


class ScpTap:
    """Legacy scp (``scp -O``: the remote runs ``scp -t`` to receive or ``scp -f`` to send).
    Reads the sender's stream: ``C<mode> <size> <name>\\n``, the bytes, a NUL; ``D``/``E``
    enter and leave directories, ``T`` carries times."""

    def __init__(self, command: str, report: Callable[[FileTransfer], None]) -> None:
        words = _scp_words(command) or command.split()
        mode = next((i for i, w in enumerate(words) if w in ("-t", "-f")), len(words))
        self.upload = mode < len(words) and words[mode] == "-t"
        self._report = report
        operands = words[mode + 1 :]
        if operands[:1] == ["--"]:
            operands = operands[1:]
        self._operands = operands
        self._target = operands[-1] if operands else ""
        self._into_dir = "-d" in words[:mode] or "-r" in words[:mode]
        self._dirs: list[str] = []
        self._line = bytearray()
        self._remaining = -1  # bytes of the current file still to come; -1: reading a header
        self._skip_nul = False
        self._file: _File | None = None
        self.broken = False

    @staticmethod
    def is_scp(command: str) -> bool:
        """Whether ``command`` is exactly what scp asks the remote to run, and nothing more: a
        command that only starts so (``scp -f x; bash -i``) is a shell's, recorded as any."""
        return _scp_words(command) is not None

    def _path(self, name: str) -> str:
        if not self.upload:
            # The sender names each file or directory by its last component; it is in the
            # directory of the operand it matched (a glob or one of several paths).
            top = self._dirs[0] if self._dirs else name
            source = next(
                (p for p in self._operands if fnmatch.fnmatchcase(top, posixpath.basename(p))),
                self._target,
            )
            parent = posixpath.dirname(source.rstrip("/"))
            below = "/".join([*self._dirs, name])
            return f"{parent.rstrip('/')}/{below}" if parent else below
        if self._dirs or self._into_dir:
            return "/".join([self._target.rstrip("/"), *self._dirs, name])
        return self._target or name

    def feed(self, data: bytes) -> None:
        pos = 0
        while pos < len(data) and not self.broken:
            if self._remaining > 0 and self._file is not None:
                chunk = data[pos : pos + self._remaining]
                self._file.add(self._file.next_offset if self._file.in_order else 0, chunk)
                self._remaining -= len(chunk)
                pos += len(chunk)
                if self._remaining == 0:
                    self._file.moved = True
                    self._report(self._file.result())
                    self._file, self._remaining, self._skip_nul = None, -1, True
                continue
            if self._skip_nul:
                self._skip_nul = False
                if data[pos] == 0:
                    pos += 1
                    continue
            end = data.find(b"\n", pos)
            if end < 0:
                self._line += data[pos:]
                if len(self._line) > 4096:
                    self.broken = True
                return
            self._line += data[pos:end]
            pos = end + 1
            self._header(bytes(self._line).lstrip(b"\0"))
            self._line.clear()

    def _header(self, line: bytes) -> None:
        kind, text = line[:1], line[1:].decode("utf-8", "replace")
        if kind == b"C":
            parts = text.split(" ", 2)
            if len(parts) != 3 or not (parts[1].isascii() and parts[1].isdigit()):
                self.broken = True
                return
            size = int(parts[1])
            self._file = _File(path=self._path(parts[2]), upload=self.upload)
            if size == 0:
                self._report(self._file.result())
                self._file, self._skip_nul = None, True
            else:
                self._remaining = size
        elif kind == b"D":
            parts = text.split(" ", 2)
            if len(parts) == 3:
                self._dirs.append(parts[2])
        elif kind == b"E":
            if self._dirs:
                self._dirs.pop()
        elif kind != b"T":
            self.broken = True  # not scp, or an error line: stop reading
