"""A recording file of either stored form, as one thing: chunks (``<sid>.rec``, written now,
docs/recording-format.md) or asciicast v2 (``<sid>.cast``, written before). Playback, listing
and export read through here and never ask which form it is."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO

from pyteleport.errors import BadParameterError
from pyteleport.events import asciicast, chunks
from pyteleport.events.asciicast import Header

CHUNKED_SUFFIX = ".rec"
ASCIICAST_SUFFIX = ".cast"
SUFFIXES = (CHUNKED_SUFFIX, ASCIICAST_SUFFIX)
_TAIL_BYTES = 64 * 1024

_CODES = {
    chunks.FrameKind.OUTPUT: asciicast.OUTPUT,
    chunks.FrameKind.INPUT: asciicast.INPUT,
    chunks.FrameKind.RESIZE: asciicast.RESIZE,
    chunks.FrameKind.MARKER: asciicast.MARKER,
}


def header_to_meta(header: Header) -> bytes:
    """The meta frame's JSON: the header's fields and its extra ones (participants, labels)."""
    doc: dict[str, Any] = {
        **header.extra,
        "sid": header.session_id,
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


def meta_to_header(data: bytes) -> Header:
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
            timestamp=int(doc.get("timestamp", 0)),
            session_id=str(doc.get("sid", "")),
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


def marker_frame_text(data: bytes) -> str:
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return data.decode("utf-8", "replace")
    return str(doc.get("label", "")) if isinstance(doc, dict) else str(doc)


def asciicast_frames(frames: Iterable[chunks.Frame]) -> tuple[Header, list[asciicast.Frame]]:
    """Chunk frames as asciicast frames: bytes become text per stream (a character split
    across two frames is joined; invalid UTF-8 becomes U+FFFD)."""
    header: Header | None = None
    out: list[asciicast.Frame] = []
    decoders = {
        kind: codecs.getincrementaldecoder("utf-8")(errors="replace")
        for kind in (chunks.FrameKind.OUTPUT, chunks.FrameKind.INPUT)
    }
    last_s = 0.0
    for frame in frames:
        time_s = frame.offset_us / 1_000_000
        last_s = time_s
        if frame.kind == chunks.FrameKind.META:
            if header is None:
                header = meta_to_header(frame.data)
            continue
        if frame.kind in decoders:
            text = decoders[frame.kind].decode(frame.data)
        elif frame.kind == chunks.FrameKind.MARKER:
            text = marker_frame_text(frame.data)
        else:
            text = frame.data.decode("utf-8", "replace")
        if text:
            out.append(asciicast.Frame(time_s=time_s, code=_CODES[frame.kind], data=text))
    for kind, decoder in decoders.items():
        tail = decoder.decode(b"", final=True)
        if tail:
            out.append(asciicast.Frame(time_s=last_s, code=_CODES[kind], data=tail))
    if header is None:
        raise BadParameterError("the recording has no meta frame (it is empty or damaged)")
    return header, out


def decode_recording(data: bytes) -> tuple[Header, list[asciicast.Frame]]:
    """Header and frames of a whole recording of either form. A chunked recording is read as
    far as its chain links (``tctl recordings verify`` names any break)."""
    if chunks.looks_like_chunks(data):
        report = chunks.read_chain(data)
        return asciicast_frames(chunks.frames_of(report.chunks))
    header, frames = asciicast.decode_bytes(data)
    return header, list(frames)


def read_header_and_duration(path: Path) -> tuple[Header, float]:
    """A recording file's header and the time of its last frame, without reading it whole."""
    with path.open("rb") as file:
        if chunks.looks_like_chunks(file.read(4)):
            return _chunked_info(file)
        file.seek(0)
        header = asciicast.decode_header(file.readline().decode("utf-8", "replace"))
        return header, _last_asciicast_time(file)


def read_header(path: Path) -> Header:
    return read_header_and_duration(path)[0]


def _chunked_info(file: BinaryIO) -> tuple[Header, float]:
    """Walk the chunk headers, reading only the first chunk (its meta frame) and the last."""
    spans: list[tuple[int, int]] = []
    position = 0
    size = file.seek(0, os.SEEK_END)
    while position < size:
        file.seek(position)
        length = chunks.chunk_length(file.read(chunks.MAX_HEADER_LEN))
        if length is None or position + length > size:
            break  # garbage or a torn tail
        spans.append((position, length))
        position += length
    if not spans:
        raise BadParameterError("the recording has no complete chunk")

    def load(span: tuple[int, int], prev_hash: bytes | None = None) -> chunks.Chunk:
        file.seek(span[0])
        try:
            return chunks.decode_chunk(file.read(span[1]), prev_hash=prev_hash)
        except chunks.FormatError as exc:
            raise BadParameterError(f"damaged recording: {exc}") from exc

    first = load(spans[0], chunks.ZERO_HASH)
    meta = next((f for f in first.frames if f.kind == chunks.FrameKind.META), None)
    if meta is None:
        raise BadParameterError("the recording's first chunk holds no meta frame")
    offset_us = 0
    # The final chunk may be empty (the one before it then), or damaged: the listing still
    # shows the recording (tctl recordings verify names the damage).
    for span in reversed(spans[1:]):
        try:
            last = load(span)
        except BadParameterError:
            continue
        if last.frames:
            offset_us = last.frames[-1].offset_us
            break
    return meta_to_header(meta.data), offset_us / 1_000_000


def _last_asciicast_time(file: BinaryIO) -> float:
    position = file.seek(0, os.SEEK_END)
    carry = b""
    while position > 0:
        step = min(_TAIL_BYTES, position)
        position -= step
        file.seek(position)
        lines = (file.read(step) + carry).split(b"\n")
        # Unless this piece starts the file, its first part is the end of an earlier line.
        carry = lines.pop(0) if position > 0 else b""
        for line in reversed(lines):
            try:
                return asciicast.decode_frame(line.decode("utf-8", "replace")).time_s
            except BadParameterError:
                continue  # a blank line, a torn last line, or the header
    return 0.0
