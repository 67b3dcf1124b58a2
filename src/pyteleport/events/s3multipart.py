"""The multipart upload that puts a finished recording together in S3 from the parts a running
session already sent (``<prefix>/<sid>/parts/<offset>``), so their bytes cross the network once.

:func:`plan_segments` is pure: given the parts (offsets, sizes, and whether each holds the local
file's bytes) and the file's size, it says which stretches of the file the final object copies
from a part inside S3 (UploadPartCopy) and which it sends from the file (UploadPart). S3's rules
for a multipart upload: at most 10,000 parts, each at most 5 GiB, each but the last at least
5 MiB (https://docs.aws.amazon.com/AmazonS3/latest/userguide/qfacts.html).

:func:`matching_parts` says which parts are reusable, reading the file (call it in a worker
thread): the local file is the truth, and a part is copied only if its ETag is the MD5 of the
file's bytes where it belongs. :class:`MultipartUpload` does the upload with the store's boto3
client, and aborts it on any failure.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyteleport.errors import NotFoundError, RecordingError

log = logging.getLogger("pyteleport.events")

S3_MIN_PART_BYTES = 5 * 1024 * 1024  # every part of a multipart upload but the last
S3_MAX_PART_BYTES = 5 * 1024**3
S3_MAX_PARTS = 10_000
# A stretch sent from the file is read into memory a part at a time: parts of at most this.
SEND_PART_BYTES = 16 * 1024 * 1024
# Parts copied or sent at once, by all the finished uploads of this store together: a part
# sent is read into memory first (at most 16 MiB), so this bounds what uploads hold, and the
# worker threads they take, when many sessions end at once.
PARALLEL_PARTS = 4
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


class MultipartUpload:
    """One finished recording put together in S3 by a multipart upload: the parts that hold
    the file's bytes are copied inside S3 (UploadPartCopy), the rest sent from the file
    (UploadPart), at most as many at once as ``slots`` lets all uploads of a store together.
    ``call`` runs a blocking boto3 call in a worker thread and translates its errors."""

    def __init__(
        self,
        client: Any,
        call: Callable[[Callable[[], Any], str], Awaitable[Any]],
        bucket: str,
        put_args: dict[str, Any],
        slots: asyncio.Semaphore,
    ) -> None:
        self._client = client
        self._call = call
        self._bucket = bucket
        self._put_args = put_args
        self._slots = slots
        self.sent = 0  # bytes sent (copied parts send none)

    async def run(self, session_id: str, path: Path, key: str, listed: list[ListedPart]) -> bool:
        """Store the file at ``path`` as ``key``, copying what it can of the ``listed``
        parts; False (nothing done) if too little of it would be copied. Raises what S3
        answered (the upload aborted first)."""
        file_size = (await asyncio.to_thread(path.stat)).st_size
        # Whether reuse could pay at all, before hashing: a session of small parts cannot.
        if not plan_segments([StoredPart(p.offset, p.size, True) for p in listed], file_size):
            return False
        matches = await asyncio.to_thread(matching_parts, path, file_size, listed)
        stored = [StoredPart(p.offset, p.size, p in matches) for p in listed]
        plan = plan_segments(stored, file_size)
        if not plan:
            return False
        bucket, by_offset = self._bucket, {p.offset: p for p in listed}
        what = f"storing recording {session_id}"
        created = await self._call(
            lambda: self._client.create_multipart_upload(Bucket=bucket, Key=key, **self._put_args),
            what,
        )
        upload_id = str(created["UploadId"])
        etags: dict[int, str] = {}
        failures: list[Exception] = []
        todo = iter(enumerate(plan, 1))  # shared by the workers: each segment is taken once

        async def worker() -> None:
            # A failure stops the others from starting more, but lets the requests under way
            # finish: a part that lands after the abort would stay behind.
            for number, segment in todo:
                if failures:
                    return
                try:
                    async with self._slots:
                        if failures:
                            return
                        if segment.part is None:
                            etags[number] = await self._send(path, segment, key, upload_id, number)
                        else:
                            part = by_offset[segment.part]
                            etags[number] = await self._copy(part, segment, key, upload_id, number)
                except Exception as exc:
                    failures.append(exc)

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(PARALLEL_PARTS):
                    group.create_task(worker())
            if failures:
                raise failures[0]
            parts = [{"ETag": etags[n], "PartNumber": n} for n in sorted(etags)]
            await self._call(
                lambda: self._client.complete_multipart_upload(
                    Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={"Parts": parts}
                ),
                what,
            )
        except BaseException:
            # Nothing half made stays behind (an incomplete upload's parts are billed).
            try:
                await self._call(
                    lambda: self._client.abort_multipart_upload(
                        Bucket=bucket, Key=key, UploadId=upload_id
                    ),
                    what,
                )
            except (RecordingError, NotFoundError) as exc:
                log.warning("recording %s: cannot abort its multipart upload: %s", session_id, exc)
            raise
        return True

    async def _send(
        self, path: Path, segment: Segment, key: str, upload_id: str, number: int
    ) -> str:
        data = await asyncio.to_thread(read_range, path, segment.start, segment.size)
        answer = await self._call(
            lambda: self._client.upload_part(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
            ),
            f"storing part {number} of {key}",
        )
        self.sent += len(data)
        return str(answer["ETag"])

    async def _copy(
        self, part: ListedPart, segment: Segment, key: str, upload_id: str, number: int
    ) -> str:
        first, last = segment.start - part.offset, segment.end - part.offset - 1
        whole = first == 0 and last == part.size - 1
        answer = await self._call(
            lambda: self._client.upload_part_copy(
                Bucket=self._bucket,
                Key=key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": self._bucket, "Key": part.key},
                # The part as it was checked: one rewritten meanwhile fails the upload.
                CopySourceIfMatch=part.etag,
                **({} if whole else {"CopySourceRange": f"bytes={first}-{last}"}),
            ),
            f"copying part {number} of {key}",
        )
        return str(answer["CopyPartResult"]["ETag"])
