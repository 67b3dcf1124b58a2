"""The stored form of a session recording: a chain of self-delimiting, compressed, hashed chunks
(docs/recording-format.md). Plain functions over bytes: no I/O here.

A chunk is a short header, a zstd-compressed body of frames, and a SHA-256 over the previous
chunk's hash, the header and the body, so each hash covers the whole chain up to it: a changed
byte, a removed or reordered chunk, or a chunk from another session breaks it. Version 3 (written
now) names the session and the format only in its first chunk, stores the first 4 bytes of each
hash (the chain and the signed checkpoints use all 32) and ends each chunk with its length, so
a listing finds the last chunk from the end of the file. Versions 2 (varint headers, the whole
hash stored) and 1 (a fixed 78-byte header holding the previous hash) are still read.
A chunk cut short (a writer killed mid-write) is recognised and left out on read.
"""

from __future__ import annotations

import functools
import hashlib
import json
import struct
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import zstandard

from pyteleport.errors import BadParameterError
from pyteleport.events import asciicast

MAGIC = b"PTRC"
VERSION = 3  # what writers write; versions 1 and 2 still read
HASH_LEN = 32
CHECK_LEN = 4  # version 3 stores this much of each chunk's hash
ZERO_HASH = bytes(HASH_LEN)
# Versions 2 and 3 start (version 3: the first chunk only) with magic, version, flags, session id.
# Version 2 then has varints: sequence, first offset (µs), frame count, raw length, body length.
# Version 3's first chunk: first offset, raw length (not when stored), body length; a later one:
# flags (one byte), then sequence, first offset, raw length (not when stored), body length.
_PREFIX = struct.Struct(">4sBB16s")
# Version 1: magic, version, flags, session id, sequence, first offset (µs), frame count, raw and
# body lengths, previous chunk's hash.
_V1_HEADER = struct.Struct(">4sBB16sIQIII32s")
MAX_HEADER_LEN = _V1_HEADER.size  # the longest header of either version (version 2: 72)
# A writer closes chunks at 256 KiB of frames (a frame adds at most another 256 KiB); a reader
# refuses more than this, and a body or a frame count that the raw length cannot hold.
MAX_RAW_LEN = 4 * 1024 * 1024
_MAX_BODY_LEN = MAX_RAW_LEN + 64 * 1024  # above zstd's bound for 4 MiB that does not shrink
# A writer counts 12 bytes per frame towards a chunk's 256 KiB (at most 21,846 frames); a reader
# refuses more than this, so a small forged chunk cannot unpack into millions of frames.
MAX_FRAMES = 32 * 1024
FLAG_LAST = 0x01  # the session ended with this chunk
FLAG_STORED = 0x02  # versions 2, 3: the body is the frames as they are (zstd would not shrink them)
ZSTD_LEVEL = 3
_MAGICLESS = zstandard.FORMAT_ZSTD1_MAGICLESS  # version 3's zstd frames, without their 4-byte magic
# Version 3 compresses its first chunk (the meta frame) with this as a zstd raw-content
# dictionary: the names a meta frame always holds cost nearly nothing then.
META_DICTIONARY = (
    b'{"participants":[""],"cluster":"","user":"","login":"","server_hostname":"",'
    b'"server_addr":"127.0.0.1:22","kind":"ssh","command":"","term":"xterm-256color",'
    b'"width":80,"height":24,"timestamp":17'
)


class FrameKind(IntEnum):
    META = 0  # JSON: who, where, the terminal (the first frame of a recording)
    OUTPUT = 1  # bytes the target sent (stdout and stderr)
    INPUT = 2  # bytes the user sent
    RESIZE = 3  # "WxH"
    MARKER = 4  # JSON: a point of note (an exec's exit status, a checkpoint...)


@dataclass(frozen=True, slots=True)
class Frame:
    offset_us: int  # since the session's start
    kind: FrameKind
    data: bytes

    def json(self) -> dict[str, Any]:
        try:
            value = json.loads(self.data)
        except (ValueError, RecursionError) as exc:
            raise FormatError(f"a {self.kind.name} frame holds no JSON: {exc}") from None
        if not isinstance(value, dict):
            raise FormatError(f"a {self.kind.name} frame holds no JSON object")
        return value


@dataclass(frozen=True, slots=True)
class ChunkHeader:
    """A chunk's header as read, before its body is checked."""

    version: int
    flags: int
    session_id: str
    sequence: int
    first_offset_us: int
    count: int | None  # versions 1 and 2 (version 3's frames fill the body)
    raw_len: int
    body_len: int
    prev_hash: bytes | None  # version 1 stores it; versions 2 and 3 only hash it
    header_len: int
    check_len: int = HASH_LEN  # bytes of its hash stored after the body
    trailer_len: int = 0  # version 3: bytes of the length after the hash

    @property
    def size(self) -> int:
        """Bytes of the whole chunk: header, body, hash and (version 3) trailer."""
        return self.header_len + self.body_len + self.check_len + self.trailer_len


@dataclass(frozen=True, slots=True)
class Chunk:
    session_id: str
    sequence: int
    first_offset_us: int
    frames: tuple[Frame, ...]
    prev_hash: bytes  # the hash it links to (empty: read alone, a version 2 chunk cannot say)
    hash: bytes  # all 32 bytes (empty: a version 3 chunk read alone, whose hash needs the previous)
    last: bool
    size: int  # bytes it takes in the file
    version: int = VERSION


class FormatError(ValueError):
    """Bytes that are not a chunk of this format (or a chunk whose hash does not match)."""


_ID_NAMESPACE = uuid.UUID("6f1c7b0e-2d9a-5c3e-9a41-7c2f0b8e5d13")


@functools.lru_cache(maxsize=4096)  # asked for every chunk a session writes
def session_uuid(session_id: str) -> uuid.UUID:
    """The 16 bytes a chunk carries for ``session_id``: the id itself when it is a UUID (the
    proxy's always are), else a UUIDv5 of it."""
    try:
        return uuid.UUID(session_id)
    except ValueError:
        return uuid.uuid5(_ID_NAMESPACE, session_id)


_ONE_BYTE_VARINTS = tuple(bytes((n,)) for n in range(0x80))


def _varint(value: int) -> bytes:
    # Called for every frame and every header field: the short forms without a loop.
    if value < 0x80:
        return _ONE_BYTE_VARINTS[value]
    if value < 0x4000:
        return bytes((value & 0x7F | 0x80, value >> 7))
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _read_varint(data: bytes | memoryview, pos: int, end: int | None = None) -> tuple[int, int]:
    """The varint at ``pos`` and the position after it; FormatError "cut short" if it runs past
    ``end`` (the data's end by default)."""
    end = len(data) if end is None else end
    value = shift = 0
    while True:
        if pos >= end:
            raise FormatError("a frame is cut short")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise FormatError("a number in a frame is too long")


def encode_frames(frames: Iterable[Frame], first_offset_us: int) -> bytes:
    """Version 3's frames, each: its offset as a varint delta from the previous one (none for
    the first, which is at ``first_offset_us``), its length and kind as one varint (length
    times 8 plus kind), its bytes."""
    out = bytearray()
    previous = first_offset_us
    for number, frame in enumerate(frames):
        if frame.offset_us < previous or (number == 0 and frame.offset_us != previous):
            raise ValueError("frames must be in time order, the first at the chunk's offset")
        if number:
            out += _varint(frame.offset_us - previous)
        out += _varint(len(frame.data) << 3 | frame.kind)
        out += frame.data
        previous = frame.offset_us
    return bytes(out)


_MAX_OFFSET_US = asciicast.MAX_OFFSET_S * 1_000_000


def decode_frames(raw: bytes, first_offset_us: int, count: int | None) -> tuple[Frame, ...]:
    """The frames of a chunk's raw bytes: ``count`` of them in the framing of versions 1 and 2
    (which say how many), or as many as the bytes hold in version 3's (``count`` None)."""
    frames: list[Frame] = []
    pos = 0
    offset = first_offset_us
    view = memoryview(raw)
    while len(frames) != count and (count is not None or pos < len(raw)):
        if len(frames) == MAX_FRAMES:
            raise FormatError(f"a chunk holds more than {MAX_FRAMES} frames")
        if count is None:  # version 3
            delta = 0
            if frames:
                delta, pos = _read_varint(view, pos)
            packed, pos = _read_varint(view, pos)
            code, length = packed & 0x07, packed >> 3
        else:
            delta, pos = _read_varint(view, pos)
            if pos >= len(raw):
                raise FormatError("a frame is cut short")
            code = raw[pos]
            length, pos = _read_varint(view, pos + 1)
        try:
            kind = FrameKind(code)
        except ValueError:
            raise FormatError(f"unknown frame kind {code}") from None
        if pos + length > len(raw):
            raise FormatError("a frame is cut short")
        offset += delta
        if offset > _MAX_OFFSET_US:
            raise FormatError("a frame's time is more than a century after the session's start")
        frames.append(Frame(offset, kind, bytes(view[pos : pos + length])))
        pos += length
    if pos != len(raw):
        raise FormatError("bytes after the last frame of a chunk")
    return tuple(frames)


def encode_chunk(
    session_id: str,
    sequence: int,
    frames: list[Frame],
    prev_hash: bytes,
    *,
    last: bool = False,
    compressor: zstandard.ZstdCompressor | None = None,
) -> tuple[bytes, bytes]:
    """(the chunk's bytes, its hash). ``frames`` are in time order; the first sets the chunk's
    first offset."""
    first = frames[0].offset_us if frames else 0
    raw = encode_frames(frames, first)
    return seal_chunk(
        session_id, sequence, raw, len(frames), first, prev_hash, last=last, compressor=compressor
    )


def seal_chunk(
    session_id: str,
    sequence: int,
    raw: bytes | bytearray | Sequence[bytes],
    count: int,
    first: int,
    prev_hash: bytes,
    *,
    last: bool = False,
    compressor: zstandard.ZstdCompressor | None = None,
) -> tuple[bytes, bytes]:
    """(the chunk's bytes, its whole hash) for ``count`` frames already encoded as ``raw``
    (:func:`encode_frames`), the first at ``first``. ``raw`` may be the encoding in pieces,
    compressed as they are, without joining them first. The body is stored as it is when zstd
    would not make it smaller (a keystroke's few bytes, random data). ``compressor`` compresses
    the chunks after the first (they are version 3's: magicless zstd frames)."""
    del count  # version 3 does not store it: the frames fill the body
    pieces = [raw] if isinstance(raw, bytes | bytearray) else raw
    raw_len = sum(len(piece) for piece in pieces)
    body: bytes | bytearray = b""
    if raw_len:
        if sequence == 0:
            compressor = _meta_compressor()
        stream = (compressor or _new_compressor()).compressobj(size=raw_len)
        body = b"".join([*(stream.compress(piece) for piece in pieces), stream.flush()])
    flags = FLAG_LAST if last else 0
    if len(body) >= raw_len:
        flags |= FLAG_STORED
        body = raw if isinstance(raw, bytes | bytearray) else b"".join(raw)
    lengths = (len(body),) if flags & FLAG_STORED else (raw_len, len(body))
    if sequence == 0:
        head = _PREFIX.pack(MAGIC, VERSION, flags, session_uuid(session_id).bytes)
        numbers: tuple[int, ...] = (first, *lengths)
    else:
        head = _ONE_BYTE_VARINTS[flags]
        numbers = (sequence, first, *lengths)
    header = head + b"".join(_varint(n) for n in numbers)
    size = len(header) + len(body) + CHECK_LEN
    trailer = _trailer(size)
    digest = hashlib.sha256(prev_hash)
    digest.update(header)
    digest.update(body)
    digest.update(trailer)
    value = digest.digest()
    return b"".join((header, body, value[:CHECK_LEN], trailer)), value


def _trailer(size: int) -> bytes:
    """Version 3's last bytes of a chunk: ``size`` (the chunk's bytes before them) as a varint
    with its bytes in reverse order, read from the end of the file backwards."""
    return _varint(size)[::-1]


def read_trailer(data: bytes | memoryview, end: int) -> tuple[int, int] | None:
    """(the size before it, the trailer's length) of the version 3 trailer that ends at ``end``;
    None if the bytes there are none."""
    value = shift = 0
    pos = end
    while pos > 0 and end - pos < 4:  # a chunk is less than 2**28 bytes
        pos -= 1
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value, end - pos) if _trailer(value) == bytes(data[pos:end]) else None
        shift += 7
    return None


@dataclass(frozen=True, slots=True)
class Follows:
    """What a chunk after the first needs to be read: its recording's version (its first chunk's)
    and session (a version 3 chunk after the first names neither)."""

    version: int
    session_id: str


def read_header(
    data: bytes | memoryview, pos: int = 0, follows: Follows | None = None
) -> ChunkHeader:
    """The header of the chunk at ``pos`` (its body is neither read nor checked): the first
    chunk of a recording, or a later one of the recording ``follows`` describes. FormatError if
    the bytes there are no chunk header, or only part of one."""
    if follows is not None and follows.version >= 3:
        return _read_later_header(data, pos, follows)
    if len(data) - pos < _PREFIX.size:
        raise FormatError("a chunk is cut short (its header is incomplete)")
    magic, version, flags, sid = _PREFIX.unpack_from(data, pos)
    if magic != MAGIC:
        raise FormatError("not a recording chunk (bad magic)")
    check_len, trailer = HASH_LEN, False
    if version == 1:
        if len(data) - pos < _V1_HEADER.size:
            raise FormatError("a chunk is cut short (its header is incomplete)")
        *_, sequence, first, count, raw_len, body_len, prev = _V1_HEADER.unpack_from(data, pos)
        header_len, stored_prev = _V1_HEADER.size, prev
    elif version == 2:
        at, (sequence, first, count, raw_len, body_len) = _header_varints(
            data, pos + _PREFIX.size, 5
        )
        header_len, stored_prev = at - pos, None
    elif version == 3:
        stored = bool(flags & FLAG_STORED)
        at, numbers = _header_varints(data, pos + _PREFIX.size, 2 if stored else 3)
        first, *lengths = numbers
        raw_len, body_len = (lengths[0], lengths[0]) if stored else lengths
        sequence, count, header_len, stored_prev = 0, None, at - pos, None
        check_len, trailer = CHECK_LEN, True
    else:
        raise FormatError(f"recording format version {version} is not supported")
    return _checked_header(
        version,
        flags,
        str(uuid.UUID(bytes=sid)),
        sequence,
        first,
        count,
        raw_len,
        body_len,
        stored_prev,
        header_len,
        check_len,
        trailer,
    )


def _read_later_header(data: bytes | memoryview, pos: int, follows: Follows) -> ChunkHeader:
    if len(data) - pos < 1:
        raise FormatError("a chunk is cut short (its header is incomplete)")
    flags = data[pos]
    stored = bool(flags & FLAG_STORED)
    at, numbers = _header_varints(data, pos + 1, 3 if stored else 4)
    sequence, first, *lengths = numbers
    raw_len, body_len = (lengths[0], lengths[0]) if stored else lengths
    return _checked_header(
        follows.version,
        flags,
        follows.session_id,
        sequence,
        first,
        None,
        raw_len,
        body_len,
        None,
        at - pos,
        CHECK_LEN,
        True,
    )


def _header_varints(data: bytes | memoryview, at: int, n: int) -> tuple[int, list[int]]:
    end = min(len(data), at + MAX_HEADER_LEN)
    fields = []
    for _ in range(n):
        try:
            value, at = _read_varint(data, at, end)
        except FormatError as exc:
            if "cut short" in str(exc) and end == len(data):
                raise FormatError("a chunk is cut short (its header is incomplete)") from None
            raise FormatError("a chunk's header is malformed") from None
        fields.append(value)
    return at, fields


def _checked_header(
    version: int,
    flags: int,
    session_id: str,
    sequence: int,
    first: int,
    count: int | None,
    raw_len: int,
    body_len: int,
    stored_prev: bytes | None,
    header_len: int,
    check_len: int,
    trailer: bool,
) -> ChunkHeader:
    if raw_len > MAX_RAW_LEN or body_len > _MAX_BODY_LEN:
        raise FormatError("a chunk declares more than 4 MiB of frames")
    known = FLAG_LAST | (FLAG_STORED if version >= 2 else 0)
    if (
        (count is not None and (count * 3 > raw_len or count > MAX_FRAMES))  # 3 bytes a frame
        or first >= 1 << 63
        or flags & ~known
        or (version >= 2 and body_len > raw_len)  # a writer stores what zstd would not shrink
    ):
        raise FormatError("a chunk's header is malformed")
    size = header_len + body_len + check_len
    return ChunkHeader(
        version=version,
        flags=flags,
        session_id=session_id,
        sequence=sequence,
        first_offset_us=first,
        count=count,
        raw_len=raw_len,
        body_len=body_len,
        prev_hash=stored_prev,
        header_len=header_len,
        check_len=check_len,
        trailer_len=len(_trailer(size)) if trailer else 0,
    )


def chunk_length(header: bytes, follows: Follows | None = None) -> int | None:
    """The length of the whole chunk whose header starts ``header`` (read at least
    :data:`MAX_HEADER_LEN` bytes, or to the end of the file). None: not a chunk header."""
    try:
        return read_header(header, 0, follows).size
    except FormatError:
        return None


def decode_chunk(
    data: bytes | memoryview,
    pos: int = 0,
    *,
    prev_hash: bytes | None = None,
    decompressor: zstandard.ZstdDecompressor | None = None,
    follows: Follows | None = None,
) -> Chunk:
    """The chunk at ``pos``: a recording's first, or a later one of the recording ``follows``
    describes. FormatError if the bytes there are not a whole, intact chunk.

    A version 2 or 3 chunk's hash covers the previous chunk's hash, which it does not store: it
    is checked when ``prev_hash`` is given (the first chunk's is :data:`ZERO_HASH`), and read
    unchecked otherwise (a listing reading one chunk alone). Version 1 chunks are always checked.
    ``decompressor`` is for version 1 and 2 bodies."""
    head = read_header(data, pos, follows)
    end = pos + head.size
    if len(data) < end:
        raise FormatError("a chunk is cut short")
    chunk_bytes = bytes(data[pos:end])
    body_end = head.header_len + head.body_len
    stored_hash = chunk_bytes[body_end : body_end + head.check_len]
    trailer = chunk_bytes[body_end + head.check_len :]
    covered = memoryview(chunk_bytes)[:body_end]
    digest = stored_hash
    if head.prev_hash is not None:
        linked = head.prev_hash
        expected: bytes | None = hashlib.sha256(covered).digest()
    elif prev_hash is not None:
        linked = prev_hash
        check = hashlib.sha256(prev_hash)
        check.update(covered)
        check.update(trailer)
        expected = check.digest()
        digest = expected if head.version >= 3 else stored_hash
    else:
        linked, expected = b"", None
        digest = b"" if head.version >= 3 else stored_hash
    if expected is not None and expected[: head.check_len] != stored_hash:
        raise FormatError("hash mismatch")
    if head.trailer_len and trailer != _trailer(body_end + head.check_len):
        raise FormatError("hash mismatch")  # the chunk's length after its hash was changed
    body = chunk_bytes[head.header_len : body_end]
    if head.version >= 2 and head.flags & FLAG_STORED:
        raw = body
    else:
        raw = _decompress(body, head, decompressor, first=follows is None)
    if len(raw) != head.raw_len:
        raise FormatError("a chunk's body has another length than its header says")
    return Chunk(
        session_id=head.session_id,
        sequence=head.sequence,
        first_offset_us=head.first_offset_us,
        frames=decode_frames(raw, head.first_offset_us, head.count),
        prev_hash=linked,
        hash=digest,
        last=bool(head.flags & FLAG_LAST),
        size=head.size,
        version=head.version,
    )


def _decompress(
    body: bytes,
    head: ChunkHeader,
    decompressor: zstandard.ZstdDecompressor | None,
    *,
    first: bool,
) -> bytes:
    """A compressed body's frames; ``first``: the recording's first chunk (version 3
    compresses it with :data:`META_DICTIONARY`)."""
    try:
        if head.version >= 3:
            declared = zstandard.get_frame_parameters(body, format=_MAGICLESS).content_size
            decompressor = _v3_decompressor(first=first)
        else:
            declared = zstandard.frame_content_size(body)
            decompressor = decompressor or zstandard.ZstdDecompressor()
        # The frame's own content size decides what zstd allocates (max_output_size does not
        # bound it), so a frame claiming more than the header is refused unread.
        if declared != head.raw_len:
            raise FormatError("a chunk's body declares another length than its header says")
        return decompressor.decompress(body, max_output_size=head.raw_len, allow_extra_data=False)
    except zstandard.ZstdError as exc:
        raise FormatError(f"a chunk's body does not decompress: {exc}") from exc


@dataclass(frozen=True, slots=True)
class ChainReport:
    """What reading a chain found: the chunks that link up, in order, and why reading stopped
    early (empty when the chain is whole and ends with its last chunk)."""

    chunks: tuple[Chunk, ...]
    problem: str = ""
    torn_tail: bool = False  # the file ends inside a chunk: a writer died mid-write

    @property
    def head(self) -> bytes:
        return self.chunks[-1].hash if self.chunks else ZERO_HASH

    @property
    def end_byte(self) -> int:
        """Where the chunks that link end in the file: where reading stopped, if it did."""
        return sum(chunk.size for chunk in self.chunks)

    @property
    def complete(self) -> bool:
        """Whether the chain links from the first chunk to the session's final one."""
        return not self.problem and bool(self.chunks) and self.chunks[-1].last

    @property
    def count(self) -> int:
        return len(self.chunks)

    @property
    def last(self) -> bool:
        """Whether the last chunk that linked is the session's final one."""
        return bool(self.chunks) and self.chunks[-1].last


class ChainWalk:
    """The chunks of a recording held in memory, read one at a time as they are iterated, each
    checked to link to the one before: whatever the recording holds, no more than one chunk's
    frames (at most :data:`MAX_RAW_LEN` bytes) are held by the walk. Once the iteration ends,
    ``problem`` says why it stopped early ("" when the chain is whole), ``torn_tail`` whether a
    cut-short last chunk stopped it, and ``count``, ``head``, ``last``, ``end_byte`` and
    ``last_offset_us`` describe the chunks that linked."""

    def __init__(self, data: bytes, session_id: str | None = None) -> None:
        self._data = data
        self._session_id = session_id
        self.problem = ""
        self.torn_tail = False
        self.count = 0
        self.head = ZERO_HASH
        self.last = False  # the last chunk that linked is the session's final one
        self.end_byte = 0  # where the chunks that link end in the file
        self.last_offset_us: int | None = None  # of the last frame read (None: no frame)
        self.session_id = ""  # the session its first chunk names (once it is read)

    @property
    def complete(self) -> bool:
        """Whether the chain links from the first chunk to the session's final one."""
        return not self.problem and self.count > 0 and self.last

    def __iter__(self) -> Iterator[Chunk]:
        data = self._data
        pos = 0
        prev = ZERO_HASH
        decompressor = zstandard.ZstdDecompressor()
        expected_sid = str(session_uuid(self._session_id)) if self._session_id else None
        follows: Follows | None = None  # what the chunks after the first need to be read
        while pos < len(data):
            number = self.count
            where = f"chunk {number} (at byte {pos})"
            if self.last:
                self.problem = f"chunk {number}: follows the session's final chunk"
                return
            try:
                head = read_header(data, pos, follows)
            except FormatError as exc:
                self.torn_tail = "cut short" in str(exc)
                self.problem = f"{where}: {exc}"
                return
            if pos + head.size > len(data):
                later = _whole_chunk_at_end(
                    data, pos, number, follows or Follows(head.version, head.session_id)
                )
                if later is None:  # a writer died while writing this chunk
                    self.torn_tail = True
                    self.problem = f"{where}: a chunk is cut short"
                else:  # a length was changed: whole chunks follow
                    self.problem = (
                        f"{where}: a chunk's header is malformed (its lengths reach past the "
                        f"end, while chunk {later} ends the recording whole)"
                    )
                return
            expected_sid = expected_sid or head.session_id
            try:
                chunk = decode_chunk(
                    data, pos, prev_hash=prev, decompressor=decompressor, follows=follows
                )
            except FormatError as exc:
                # A version 2 hash covers the previous hash, so a removed chunk fails it too:
                # the header's sequence tells that case apart. Any other change is a hash
                # mismatch, wherever the changed byte is.
                if head.sequence > number and head.session_id == expected_sid:
                    self.problem = (
                        f"chunk {number}: missing chunk (found sequence {head.sequence}, "
                        f"expected {number})"
                    )
                elif head.session_id != expected_sid and str(exc) == "hash mismatch":
                    self.problem = (
                        f"{where}: hash mismatch (the chunk names session {head.session_id})"
                    )
                else:
                    self.problem = f"{where}: {exc}"
                return
            if chunk.session_id != expected_sid:
                self.problem = f"chunk {number}: belongs to session {chunk.session_id}"
                return
            if chunk.sequence != number:
                what = "missing chunk" if chunk.sequence > number else "repeated chunk"
                self.problem = (
                    f"chunk {number}: {what} (found sequence {chunk.sequence}, expected {number})"
                )
                return
            if chunk.prev_hash != prev:
                self.problem = f"chunk {number}: hash mismatch (does not link to the chunk before)"
                return
            if follows is None:
                follows = Follows(chunk.version, chunk.session_id)
                self.session_id = chunk.session_id
            self.count += 1
            self.head = prev = chunk.hash
            self.last = chunk.last
            self.end_byte = pos = pos + chunk.size
            if chunk.frames:
                self.last_offset_us = chunk.frames[-1].offset_us
            yield chunk


def _whole_chunk_at_end(data: bytes, after: int, number: int, follows: Follows) -> int | None:
    """The sequence number, above ``number``, of a whole version 3 chunk that ends ``data`` and
    starts after byte ``after`` (None: the end is no such chunk, as when a writer died
    mid-chunk)."""
    if follows.version < 3:
        return None
    found = read_trailer(data, len(data))
    if found is None:
        return None
    start = len(data) - found[0] - found[1]
    if start <= after:
        return None
    try:
        head = read_header(data, start, follows)
    except FormatError:
        return None
    whole = start + head.size == len(data) and head.sequence > number
    return head.sequence if whole else None


def read_chain(data: bytes, session_id: str | None = None) -> ChainReport:
    """Every chunk that links to the one before, from the start, held at once (a
    :class:`ChainWalk` holds one at a time). A cut-short last chunk is left out
    (``torn_tail``); any other break stops the chain with ``problem`` naming it."""
    walk = ChainWalk(data, session_id)
    found = tuple(walk)
    return ChainReport(found, walk.problem, walk.torn_tail)


def frames_of(chunks: Iterable[Chunk]) -> Iterator[Frame]:
    for chunk in chunks:
        yield from chunk.frames


def looks_like_chunks(head: bytes) -> bool:
    """Whether a file's first bytes are this format's (else: an asciicast v2 recording)."""
    return head[:4] == MAGIC


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    text: str  # "intact (N chunks)", or what is wrong and where


def verify(data: bytes) -> Verdict:
    """The hash chain of a whole recording file, checked from the first chunk to the last, a
    chunk at a time."""
    if not looks_like_chunks(data):
        try:
            asciicast.decode_header(data.split(b"\n", 1)[0].decode("utf-8", "replace"))
        except BadParameterError:
            return Verdict(False, "unreadable: neither a chunked recording nor an asciicast file")
        return Verdict(
            False, "not verifiable: an asciicast recording, made before recordings were chained"
        )
    walk = ChainWalk(data)
    for _ in walk:
        pass
    return chain_verdict(walk)


def chain_verdict(walk: ChainWalk) -> Verdict:
    """What a finished walk of a chain found, as ``tctl recordings verify`` says it."""
    count = walk.count
    if walk.problem:
        if walk.torn_tail:
            if not count:
                return Verdict(False, f"truncated in its first chunk: {walk.problem}")
            return Verdict(False, f"truncated after chunk {count - 1}: {walk.problem}")
        return Verdict(False, walk.problem)
    if not count:
        return Verdict(False, "truncated in its first chunk: the file holds no whole chunk")
    if not walk.last:
        end_s = (walk.last_offset_us or 0) / 1_000_000
        return Verdict(
            False,
            f"truncated after chunk {count - 1} at {end_s:.1f}s: the chain is intact but the "
            "session's final chunk is missing",
        )
    return Verdict(True, f"intact ({count} chunks)")


_local = threading.local()


def _new_compressor(
    dictionary: zstandard.ZstdCompressionDict | None = None,
) -> zstandard.ZstdCompressor:
    params = zstandard.ZstdCompressionParameters.from_level(
        ZSTD_LEVEL, format=_MAGICLESS, write_content_size=1, write_checksum=0, write_dict_id=0
    )
    return zstandard.ZstdCompressor(compression_params=params, dict_data=dictionary)


@functools.cache
def _meta_dictionary() -> zstandard.ZstdCompressionDict:
    return zstandard.ZstdCompressionDict(META_DICTIONARY, dict_type=zstandard.DICT_TYPE_RAWCONTENT)


def _thread_compressor() -> zstandard.ZstdCompressor:
    """One compressor per thread, shared by every recording on it: a compression context per
    session would cost each of a thousand open sessions its own tables."""
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = _new_compressor()
    return compressor


def _meta_compressor() -> zstandard.ZstdCompressor:
    """The thread's compressor of first chunks (the meta frame, with :data:`META_DICTIONARY`)."""
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "meta_compressor", None)
    if compressor is None:
        compressor = _local.meta_compressor = _new_compressor(_meta_dictionary())
    return compressor


def _v3_decompressor(first: bool) -> zstandard.ZstdDecompressor:
    return zstandard.ZstdDecompressor(
        dict_data=_meta_dictionary() if first else None, format=_MAGICLESS
    )


CHUNK_MAX_BYTES = 256 * 1024
CHUNK_MAX_AGE_US = 1_000_000


class ChunkBuilder:
    """Collects one session's frames into chunks: a chunk closes when its frames reach
    ``max_bytes``, or when :meth:`flush` is called (the writer calls it once the oldest frame is
    ``CHUNK_MAX_AGE_US`` old, so a killed writer loses about a second)."""

    def __init__(self, session_id: str, max_bytes: int = CHUNK_MAX_BYTES) -> None:
        self.session_id = session_id
        self._max_bytes = max_bytes
        # The pending frames, encoded as they come: each frame's few bytes of framing, then its
        # data as it came (not copied; the compressor reads it where it is). Bytes only, not
        # an object per frame: a proxy with 1,000 sessions open would otherwise keep thousands
        # of objects a second alive long enough for the garbage collector to walk them.
        self._raw: list[bytes] = []
        self._count = 0
        self._pending_bytes = 0  # the frames' data and 12 bytes each: what closes a chunk
        self._first_us = 0  # the offset of the oldest pending frame
        self._last_us = 0  # the offset of the newest frame taken
        self.sequence = 0
        self.head = ZERO_HASH
        self.head_offset_us = 0  # the time of the last frame in the chain so far
        self.closed = False

    @property
    def oldest_offset_us(self) -> int | None:
        """The offset of the oldest frame not yet in a chunk (None: nothing pending)."""
        return self._first_us if self._count else None

    def add(self, frame: Frame) -> bytes:
        """Take ``frame``; the bytes of the chunks it closed, or b"". A frame larger than a
        chunk is split into frames of at most ``max_bytes`` with the same time."""
        return self.add_data(frame.offset_us, frame.kind, frame.data)

    def add_data(self, offset_us: int, kind: FrameKind, data: bytes) -> bytes:
        """:meth:`add` without a :class:`Frame` to build."""
        if self.closed:
            raise ValueError("the recording has ended")
        if len(data) > self._max_bytes:
            step = self._max_bytes
            return b"".join(
                self.add_data(offset_us, kind, data[i : i + step])
                for i in range(0, len(data), step)
            )
        packed = len(data) << 3 | kind
        if offset_us < self._last_us:
            raise ValueError("frames must be in time order")
        if self._count == 0:  # the first frame is at the chunk's offset: no delta
            self._first_us = self._last_us = offset_us
            framing = _varint(packed)
        elif (delta := offset_us - self._last_us) < 0x80 and packed < 0x80:
            framing = bytes((delta, packed))  # a keystroke's echo: the framing in one step
        else:
            framing = _varint(delta) + _varint(packed)
        if len(data) < 0x40:
            self._raw.append(framing + data)
        else:
            self._raw += (framing, data)
        self._last_us = offset_us
        self._count += 1
        self._pending_bytes += len(data) + 12
        if self._pending_bytes >= self._max_bytes:
            return self.flush()
        return b""

    def flush(self, last: bool = False) -> bytes:
        """Close the pending frames into a chunk (with ``last``, the final one, even if empty)."""
        if self.closed or (not self._count and not last):
            return b""
        data, self.head = seal_chunk(
            self.session_id,
            self.sequence,
            self._raw,
            self._count,
            self._first_us if self._count else 0,
            self.head,
            last=last,
            compressor=_thread_compressor(),
        )
        self.sequence += 1
        if self._count:
            self.head_offset_us = self._last_us
        self._raw = []
        self._count = 0
        self._pending_bytes = 0
        self.closed = last
        return data
