"""The multipart upload that puts a finished recording together in S3 from the parts a running
session already sent (``<prefix>/<sid>/parts/<offset>``), so their bytes cross the network once.

:func:`plan_segments` is pure: given the parts (offsets, sizes, and whether each holds the local
file's bytes) and the file's size, it says which stretches of the file the final object copies
from a part inside S3 (UploadPartCopy) and which it sends from the file (UploadPart). S3's rules
for a multipart upload: at most 10,000 parts, each at most 5 GiB, each but the last at least
5 MiB (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).

:func:`matching_parts` says which parts are reusable, reading the file (call it in a worker
thread): the local file is the truth, and a part is copied only if its ETag is the MD5 of the
file's bytes where it belongs.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pyteleport.errors import RecordingError

S3_MIN_PART_BYTES = 5 * 1024 * 1024  # every part of a multipart upload but the last
S3_MAX_PART_BYTES = 5 * 1024**3
S3_MAX_PARTS = 10_000
# A stretch sent from the file is read into memory a part at a time: parts of at most this.
SEND_PART_BYTES = 16 * 1024 * 1024
_MD5_HEX = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class StoredPart:
    """One part already in the store: ``size`` bytes said to be the file's at ``offset``."""

    offset: int
    size: int
    reusable: bool  # its content is checked against the file's bytes there

    @property
    def end(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True, slots=True)
class Segment:
    """The bytes ``[start, end)`` of the file, as one part of the final object: copied from the
    stored part at offset ``part`` (from ``start - part`` on), or sent from the file if
    ``part`` is None."""

    start: int
    end: int
    part: int | None = None

    @property
    def size(self) -> int:
        return self.end - self.start

    @property
    def copied(self) -> bool:
        return self.part is not None


def plan_segments(
    parts: Iterable[StoredPart],
    file_size: int,
    *,
    min_part_bytes: int = S3_MIN_PART_BYTES,
    max_copy_bytes: int = S3_MAX_PART_BYTES,
    max_send_bytes: int = SEND_PART_BYTES,
    max_parts: int = S3_MAX_PARTS,
) -> list[Segment]:
    """The parts of a multipart upload whose object is the file, copying what it can from the
    stored parts; empty if that would copy less than ``min_part_bytes`` (the file is better
    sent whole then) or need more than ``max_parts`` parts.

    Only the parts that run on from offset 0 without a gap or overlap count, and of those only
    the reusable ones of at least ``min_part_bytes`` inside the file. The bytes between them
    (a batch's short last part, an altered part, the tail never sent) are sent from the file.
    A stretch too short to be a part takes from the copied part after it just the bytes it
    needs, the rest of that part is copied by range if it is still long enough (or ends the
    object), else it is sent whole with the stretch.
    """
    if max_send_bytes < 2 * min_part_bytes or max_copy_bytes < 2 * min_part_bytes:
        raise ValueError("the largest part must be at least twice the smallest")
    plan: list[Segment] = []
    pending: int | None = None  # where the bytes to send from the file begin, not planned yet
    for start, end, part in _stretches(parts, file_size, min_part_bytes):
        if part is None:
            pending = start if pending is None else pending
            continue
        if pending is not None:
            short = min_part_bytes - (start - pending)
            if short > 0 and end - (start + short) < min_part_bytes and end != file_size:
                continue  # what would be left to copy is too short: send the part with them
            start += max(short, 0)
            plan += _split(pending, start, None, max_send_bytes)
            pending = None
        plan += _split(start, end, part, max_copy_bytes)
    if pending is not None:
        plan += _split(pending, file_size, None, max_send_bytes)
    copied = sum(s.size for s in plan if s.copied)
    if copied < min_part_bytes or len(plan) > max_parts:
        return []
    return plan


def _stretches(
    parts: Iterable[StoredPart], file_size: int, min_part_bytes: int
) -> Iterator[tuple[int, int, int | None]]:
    """``[0, file_size)`` cut where the stored parts are: (start, end, the offset of the part
    to copy it from, or None to send it from the file)."""
    position = 0
    for part in sorted(parts, key=lambda p: p.offset):
        if part.offset != position or part.offset >= file_size:
            break  # a gap or an overlap: what follows does not link
        usable = part.reusable and part.size >= min_part_bytes and part.end <= file_size
        end = min(part.end, file_size)
        if end > part.offset:
            yield part.offset, end, part.offset if usable else None
        position = end
        if part.end > file_size:
            break
    if position < file_size:
        yield position, file_size, None


def _split(start: int, end: int, part: int | None, limit: int) -> list[Segment]:
    """``[start, end)`` in near-equal segments of at most ``limit`` bytes. With ``limit`` at
    least twice the smallest part, each is at least that (when the stretch is)."""
    count = max(1, -(-(end - start) // limit))
    edges = [start + (end - start) * i // count for i in range(count + 1)]
    return [Segment(a, b, part) for a, b in itertools.pairwise(edges) if b > a]


@dataclass(frozen=True, slots=True)
class ListedPart:
    """A part as list_objects_v2 gives it."""

    key: str
    offset: int
    size: int
    etag: str  # quoted, as S3 gives it


def matching_parts(path: Path, file_size: int, parts: list[ListedPart]) -> set[ListedPart]:
    """The parts that hold the file's bytes where they belong: the ETag of a single PUT is the
    MD5 of its body (not so for multipart objects, "<md5>-<n>", or SSE-KMS: never matched)."""
    found = set()
    with path.open("rb") as file:
        for part in parts:
            etag = part.etag.strip('"').lower()
            if part.offset + part.size > file_size or not _MD5_HEX.fullmatch(etag):
                continue
            file.seek(part.offset)
            digest, left = hashlib.md5(usedforsecurity=False), part.size
            while left and (block := file.read(min(left, 1024 * 1024))):
                digest.update(block)
                left -= len(block)
            if not left and digest.hexdigest() == etag:
                found.add(part)
    return found


def read_range(path: Path, start: int, size: int) -> bytes:
    with path.open("rb") as file:
        file.seek(start)
        data = file.read(size)
    if len(data) != size:
        raise RecordingError(f"{path} ended before byte {start + size}: changed while uploaded")
    return data
