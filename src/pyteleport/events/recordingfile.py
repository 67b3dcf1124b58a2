"""A recording file of either stored form, as one thing: chunks (``<sid>.rec``, written now,
docs/recording-format.md) or asciicast v2 (``<sid>.cast``, written before). Playback, listing
and export read through here and never ask which form it is."""

from __future__ import annotations

import codecs
import dataclasses
import io
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from pyteleport.errors import BadParameterError
from pyteleport.events import asciicast, chunks
from pyteleport.events.asciicast import Header, checked_timestamp

CHUNKED_SUFFIX = ".rec"
ASCIICAST_SUFFIX = ".cast"
SUFFIXES = (CHUNKED_SUFFIX, ASCIICAST_SUFFIX)
_TAIL_BYTES = 64 * 1024
# A recording's last chunks are looked for in its last 64 KiB, then 512 KiB, 4 MiB and 8 MiB
# (a chunk of random bytes is stored at about 256 KiB; the largest a reader takes, 4 MiB)
_MAX_TAIL_BYTES = 8 * 1024 * 1024
_LONGEST_HEADER = 1024 * 1024  # an asciicast header line, at most
_LONGEST_FRAME_LINE = 4 * 1024 * 1024  # an asciicast frame's line, at most (a packet escaped)
_MAGIC_TRIES = 64  # places of the magic tried for the start of a chunk that ends somewhere
_TAIL_CHUNKS = 16  # chunks looked through from the end for one that holds frames

_CODES = {
    chunks.FrameKind.OUTPUT: asciicast.OUTPUT,
    chunks.FrameKind.INPUT: asciicast.INPUT,
    chunks.FrameKind.RESIZE: asciicast.RESIZE,
    chunks.FrameKind.MARKER: asciicast.MARKER,
}


# The meta frame is the first chunk alone, and readers take the header from that chunk: it
# stays well within a chunk (256 KiB), whatever a client sent as its command or login.
MAX_META_BYTES = 128 * 1024
# A recording names at most this many participants, each at most this long (the catalog
# writes the recording's entry once for each).
MAX_PARTICIPANTS = 64
MAX_NAME = 256
# How far a header too large for its meta frame is cut, step by step: the characters of each
# text field, the participants and the server labels kept.
_CUTS = ((4096, MAX_PARTICIPANTS, 64), (256, 16, 16), (64, 1, 0))


def capped_names(raw: Iterable[object]) -> tuple[str, ...]:
    """The first MAX_PARTICIPANTS distinct names, each cut at MAX_NAME characters."""
    out: list[str] = []
    for item in raw:
        name = str(item)[:MAX_NAME]
        if name not in out:
            out.append(name)
            if len(out) == MAX_PARTICIPANTS:
                break
    return tuple(out)


def header_to_meta(header: Header) -> bytes:
    """The meta frame's JSON: the header's fields and its extra ones (participants, labels);
    one larger than MAX_META_BYTES is cut (the text as the audit log cuts it) until it fits."""
    data = _meta_json(header)
    for chars, names, labels in _CUTS:
        if len(data) <= MAX_META_BYTES:
            break
        data = _meta_json(_cut_header(header, chars, names, labels))
    return data


def _cut_text(text: str, most: int) -> str:
    if len(text) <= most:
        return text
    marker = f"…[cut from {len(text)} characters]"
    return text[: max(0, most - len(marker))] + marker


def _cut_header(header: Header, chars: int, names: int, labels: int) -> Header:
    extra: dict[str, Any] = {}
    participants = header.extra.get("participants")
    if isinstance(participants, list):
        extra["participants"] = [_cut_text(p, chars) for p in capped_names(participants)][:names]
    server_labels = header.extra.get("server_labels")
    if isinstance(server_labels, dict) and labels:
        extra["server_labels"] = {
            _cut_text(str(k), chars): _cut_text(str(v), chars)
            for k, v in list(server_labels.items())[:labels]
        }
    return dataclasses.replace(
        header,
        cluster=_cut_text(header.cluster, chars),
        user=_cut_text(header.user, chars),
        login=_cut_text(header.login, chars),
        server_hostname=_cut_text(header.server_hostname, chars),
        server_addr=_cut_text(header.server_addr, chars),
        kind=_cut_text(header.kind, chars),
        command=_cut_text(header.command, chars),
        term=_cut_text(header.term, chars),
        extra=extra,
    )


def _meta_json(header: Header) -> bytes:
    doc: dict[str, Any] = {**header.extra}
    if str(chunks.session_uuid(header.session_id)) != header.session_id:
        # A session id that is a UUID is the first chunk's: the meta frame leaves it out.
        doc["sid"] = header.session_id
    doc |= {
        "cluster": header.cluster,
        "user": header.user,
        "login": header.login,
        "server_hostname": header.server_hostname,
        "server_addr": header.server_addr,
        "kind": header.kind,
        "command": header.command,
        "term": header.term,
        "width": header.width,
        "height": header.height,
        "timestamp": header.timestamp,
    }
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode(
        "utf-8", "backslashreplace"
    )


def meta_to_header(data: bytes, session_id: str = "") -> Header:
    """The header a meta frame holds; ``session_id`` (the first chunk's) when it names none."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise BadParameterError(f"a recording's meta frame is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadParameterError("a recording's meta frame is not a JSON object")
    known = {
        "sid",
        "cluster",
        "user",
        "login",
        "server_hostname",
        "server_addr",
        "kind",
        "command",
        "term",
        "width",
        "height",
        "timestamp",
    }
    try:
        return Header(
            width=int(doc.get("width", 80)),
            height=int(doc.get("height", 24)),
            timestamp=_meta_timestamp(doc.get("timestamp", 0)),
            session_id=str(doc.get("sid", session_id)),
            cluster=str(doc.get("cluster", "")),
            user=str(doc.get("user", "")),
            login=str(doc.get("login", "")),
            server_hostname=str(doc.get("server_hostname", "")),
            server_addr=str(doc.get("server_addr", "")),
            kind=str(doc.get("kind", "ssh")),
            command=str(doc.get("command", "")),
            term=str(doc.get("term", "")),
            extra={k: v for k, v in doc.items() if k not in known},
        )
    except (TypeError, ValueError, OverflowError) as exc:
        raise BadParameterError(f"a recording's meta frame is malformed: {exc}") from exc


def _meta_timestamp(value: Any) -> float:
    """Milliseconds as a fraction (recordings made now) stay; anything else is read as before
    milliseconds were kept: whole seconds, an int."""
    return checked_timestamp(value if isinstance(value, float) else int(value))


def marker_frame_text(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data.decode("utf-8", "replace")
    return str(doc.get("label", "")) if isinstance(doc, dict) else str(doc)


def cast_frames(frames: Iterable[chunks.Frame]) -> Iterator[asciicast.Frame]:
    """Chunk frames as asciicast frames, one at a time: bytes become text per stream (a
    character split across two frames is joined; invalid UTF-8 becomes U+FFFD). Meta frames
    are left out."""
    decoders = {
        kind: codecs.getincrementaldecoder("utf-8")(errors="replace")
        for kind in (chunks.FrameKind.OUTPUT, chunks.FrameKind.INPUT)
    }
    last_s = 0.0
    for frame in frames:
        time_s = frame.offset_us / 1_000_000
        last_s = time_s
        if frame.kind == chunks.FrameKind.META:
            continue
        if frame.kind in decoders:
            text = decoders[frame.kind].decode(frame.data)
        elif frame.kind == chunks.FrameKind.MARKER:
            text = marker_frame_text(frame.data)
        else:
            text = frame.data.decode("utf-8", "replace")
        if text:
            yield asciicast.Frame(time_s=time_s, code=_CODES[frame.kind], data=text)
    for kind, decoder in decoders.items():
        tail = decoder.decode(b"", final=True)
        if tail:
            yield asciicast.Frame(time_s=last_s, code=_CODES[kind], data=tail)


_NO_META = "the recording has no meta frame (it is empty or damaged)"


@dataclass(frozen=True, slots=True)
class Damage:
    """Why a chunked recording's frames stop before its session's end, as its chain reader
    found: a reader shows the frames before it and says so."""

    problem: str  # "chunk 1 (at byte 264): hash mismatch", as tctl recordings verify names it
    # Only the end is gone (a torn last chunk, or no final chunk): what a proxy that stops
    # mid-session leaves. Otherwise a chunk was changed, removed or added.
    ends_early: bool


def chain_damage(report: chunks.ChainReport | chunks.ChainWalk) -> Damage | None:
    """What keeps a chain from reaching the session's final chunk (None: nothing)."""
    if report.complete:
        return None
    if report.torn_tail and not (report.count and report.last):
        where = f"chunk {report.count} (at byte {report.end_byte})"
        return Damage(f"{where} is cut short", ends_early=True)
    if report.problem:
        return Damage(report.problem, ends_early=False)
    return Damage("the session's final chunk is missing", ends_early=True)


class StoredFrames:
    """The frames of a recording file of either form held in memory as stored, as asciicast
    frames, read anew at each walk. A chunked recording is read a chunk at a time, as far as
    its chain links: what it inflates to (1 GiB of output can be stored in 1 MiB) is never
    held at once. After a whole walk, ``header`` is the recording's and ``damage`` says what
    stopped the walk early (an asciicast recording, which has no chain, never reports any)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.header: Header | None = None
        self.damage: Damage | None = None

    def __iter__(self) -> Iterator[asciicast.Frame]:
        if not chunks.looks_like_chunks(self._data):
            header, frames = asciicast.decode_bytes(self._data)
            self.header = header
            yield from frames
            return
        walk = chunks.ChainWalk(self._data)
        yield from cast_frames(self._with_header(chunks.frames_of(walk), walk))
        if self.header is None:
            raise BadParameterError(_NO_META)
        self.damage = chain_damage(walk)

    def _with_header(
        self, frames: Iterable[chunks.Frame], walk: chunks.ChainWalk
    ) -> Iterator[chunks.Frame]:
        for frame in frames:
            if frame.kind == chunks.FrameKind.META and self.header is None:
                self.header = meta_to_header(frame.data, walk.session_id)
            yield frame


def open_recording(data: bytes) -> tuple[Header, StoredFrames, float, Damage | None]:
    """A recording's header, its frames (walked again each time they are iterated), the time
    of its last frame and what stopped the reading early, from one walk that holds no more
    than a chunk at a time."""
    frames = StoredFrames(data)
    last_s = 0.0
    for frame in frames:
        last_s = frame.time_s
    assert frames.header is not None  # a whole walk found it, or raised
    return frames.header, frames, last_s, frames.damage


def read_recording(data: bytes) -> tuple[Header, list[asciicast.Frame], Damage | None]:
    """Header and frames of a whole recording of either form, all at once, and what stopped
    the reading early. A chunked recording is read as far as its chain links; an asciicast
    one (which has no chain) is read whole, a torn last line left out, and never reports
    damage."""
    frames = StoredFrames(data)
    found = list(frames)
    assert frames.header is not None
    return frames.header, found, frames.damage


def decode_recording(data: bytes) -> tuple[Header, list[asciicast.Frame]]:
    """Header and frames of a whole recording of either form. A chunked recording is read as
    far as its chain links (``tctl recordings verify`` names any break)."""
    header, frames, _ = read_recording(data)
    return header, frames


def read_header_and_duration(path: Path) -> tuple[Header, float]:
    """A recording file's header and the time of its last frame, without reading it whole."""
    with path.open("rb") as file:
        return header_and_duration_in(file)


def header_and_duration_in(file: BinaryIO) -> tuple[Header, float]:
    """:func:`read_header_and_duration` of a recording file open for reading, from its start."""
    if chunks.looks_like_chunks(file.read(4)):
        return _chunked_info(file)
    file.seek(0)
    return _asciicast_header(file), _last_asciicast_time(file)


def header_and_duration_of(data: bytes) -> tuple[Header, float]:
    """:func:`read_header_and_duration` of a recording (or its beginning) held in memory."""
    file = io.BytesIO(data)
    if chunks.looks_like_chunks(data[:4]):
        return _chunked_info(file)
    return _asciicast_header(file), _last_asciicast_time(file)


def _asciicast_header(file: BinaryIO) -> Header:
    """The header line of an asciicast file, read no further than any header goes."""
    line = file.readline(_LONGEST_HEADER + 1)
    if len(line) > _LONGEST_HEADER:
        raise BadParameterError(
            f"malformed recording header: its first line is longer than {_LONGEST_HEADER} bytes"
        )
    return asciicast.decode_header(line.decode("utf-8", "replace"))


def read_header(path: Path) -> Header:
    return read_header_and_duration(path)[0]


def _chunked_info(file: BinaryIO) -> tuple[Header, float]:
    """Read the first chunk (its meta frame) and the last chunk that holds frames, found from
    the end of the file: a listing then reads a few KiB of a recording of any length. A file
    whose end is not a whole chunk (a torn tail) is walked from the start instead."""
    size = file.seek(0, os.SEEK_END)
    file.seek(0)
    head = file.read(chunks.MAX_HEADER_LEN)
    first_len = chunks.chunk_length(head)
    if first_len is None or first_len > size:
        raise BadParameterError("the recording has no complete chunk")
    file.seek(0)
    try:
        first = chunks.decode_chunk(file.read(first_len), prev_hash=chunks.ZERO_HASH)
    except chunks.FormatError as exc:
        raise BadParameterError(f"damaged recording: {exc}") from exc
    meta = next((f for f in first.frames if f.kind == chunks.FrameKind.META), None)
    if meta is None:
        raise BadParameterError("the recording's first chunk holds no meta frame")
    follows = chunks.Follows(first.version, first.session_id)
    offset_us = _last_offset_from_the_end(file, size, first_len, follows)
    if offset_us is None:
        offset_us = _last_offset_by_walking(file, size, first_len, follows)
    return meta_to_header(meta.data, first.session_id), offset_us / 1_000_000


def _last_offset_from_the_end(
    file: BinaryIO, size: int, first_len: int, follows: chunks.Follows
) -> int | None:
    """The time of the last frame after the first chunk, looking back from the end of the
    file: the last chunk ends there, the one before it where that one starts, and so on (the
    final chunk may be empty). None if the end is no whole chunk of this session, or the chunks
    are not found within the largest window read."""
    window = _TAIL_BYTES
    while True:
        low = max(first_len, size - window)
        file.seek(low)
        tail = file.read(size - low)
        end = len(tail)
        for _ in range(_TAIL_CHUNKS):
            start = _chunk_ending_at(tail, end, follows)
            if start is None:
                break
            try:
                chunk = chunks.decode_chunk(tail, start, follows=follows)
            except chunks.FormatError:
                return None
            if chunk.frames:
                return chunk.frames[-1].offset_us
            end = start
            if low + end == first_len:
                return 0  # nothing after the meta frame
        else:
            return None  # many empty chunks: unusual enough to walk
        if low == first_len or window >= _MAX_TAIL_BYTES:
            return None
        window = min(window * 8, _MAX_TAIL_BYTES)


def _chunk_ending_at(data: bytes, end: int, follows: chunks.Follows) -> int | None:
    """Where the chunk of the recording ``follows`` describes that ends at ``end`` starts in
    ``data``, if it is there. Version 3 chunks end with their length. In versions 1 and 2 it is
    the magic, then a header whose length reaches exactly to ``end`` and names the session (the
    magic may also occur inside a body; its length then does not fit). Only the last
    _MAGIC_TRIES places are tried: a compressed body seldom holds the magic, and a tail that
    holds it everywhere (junk) is left to the walk from the start."""
    if follows.version >= 3:
        found = chunks.read_trailer(data, end)
        if found is None or found[0] + found[1] > end:
            return None
        start = end - found[0] - found[1]
        length = chunks.chunk_length(data[start : start + chunks.MAX_HEADER_LEN], follows)
        return start if start + (length or 0) == end else None
    start = data.rfind(chunks.MAGIC, 0, end)
    for _ in range(_MAGIC_TRIES):
        if start == -1:
            break
        try:
            head = chunks.read_header(data[start : start + chunks.MAX_HEADER_LEN])
        except chunks.FormatError:
            pass
        else:
            if start + head.size == end and head.session_id == follows.session_id:
                return start
        start = data.rfind(chunks.MAGIC, 0, start)
    return None


def _last_offset_by_walking(
    file: BinaryIO, size: int, first_len: int, follows: chunks.Follows
) -> int:
    """The time of the last frame after the first chunk, walking the chunk headers from the
    start (a torn tail ends the walk)."""
    spans: list[tuple[int, int]] = []
    position = first_len
    while position < size:
        file.seek(position)
        length = chunks.chunk_length(file.read(chunks.MAX_HEADER_LEN), follows)
        if length is None or position + length > size:
            break  # garbage or a torn tail
        spans.append((position, length))
        position += length
    # The final chunk may be empty (the one before it then), or damaged: the listing still
    # shows the recording (tctl recordings verify names the damage).
    for offset, length in reversed(spans):
        file.seek(offset)
        try:
            last = chunks.decode_chunk(file.read(length), follows=follows)
        except chunks.FormatError:
            continue
        if last.frames:
            return last.frames[-1].offset_us
    return 0


def _last_asciicast_time(file: BinaryIO) -> float:
    position = file.seek(0, os.SEEK_END)
    carry = b""
    too_long = False  # the piece read next ends inside a line longer than any frame's
    while position > 0:
        step = min(_TAIL_BYTES, position)
        position -= step
        file.seek(position)
        lines = (file.read(step) + carry).split(b"\n")
        if too_long:
            lines.pop()
            too_long = len(lines) == 0
        # Unless this piece starts the file, its first part is the end of an earlier line.
        carry = lines.pop(0) if position > 0 and lines else b""
        if len(carry) > _LONGEST_FRAME_LINE:
            carry, too_long = b"", True  # no frame: not gathered further (that is quadratic)
        for line in reversed(lines):
            try:
                return asciicast.decode_frame(line.decode("utf-8", "replace")).time_s
            except BadParameterError:
                continue  # a blank line, a torn last line, or the header
    return 0.0
