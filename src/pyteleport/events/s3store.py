"""Recordings in S3-compatible object storage, configured as Teleport writes it:
``teleport.storage.audit_sessions_uri: s3://bucket/prefix?region=R&endpoint=URL&insecure=true``.

Each recording is ``<prefix>/<sid>.rec`` (or ``.cast``), with its listing entry beside it in
``<prefix>/<sid>.json``, written last: a recording is listed once it is whole. Credentials come
from the standard AWS chain (environment, shared config files, instance roles), never from
teleport.yaml. boto3 is blocking, so every call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import functools
import json
import logging
import tempfile
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import boto3
import boto3.exceptions
import botocore.config
import botocore.exceptions

from pyteleport.errors import BadParameterError, NotFoundError, RecordingError
from pyteleport.events.recorder import recording_file_name
from pyteleport.events.recordingfile import SUFFIXES
from pyteleport.events.s3location import S3Location
from pyteleport.events.s3multipart import PARALLEL_PARTS, ListedPart, MultipartUpload
from pyteleport.events.store import (
    CHUNK_BYTES,
    RecordingInfo,
    StoreScan,
    as_stored,
    check_stored_name,
    complete_from_parts,
    info_from_doc,
    info_to_doc,
    read_info,
)

log = logging.getLogger("pyteleport.events")


class StoreUnreachableError(RecordingError):
    """The store could not be reached at all (no answer, no connection)."""


T = TypeVar("T")
LISTING_READS = 8  # listing entries read at once by a listing
# What a listing reads of a recording that is only parts: its start and its end.
INFO_HEAD_BYTES = 256 * 1024
INFO_TAIL_BYTES = 1024 * 1024


class S3RecordingStore:
    """Finished recordings as one object each; a running session's bytes as parts under
    ``<prefix>/<sid>/parts/<offset>`` (``append_part``), which the finished upload replaces. A
    recording whose proxy died for good is its parts: listed and read from them.

    The finished upload copies the parts already sent inside S3 (a multipart upload of
    UploadPartCopy, planned by :mod:`pyteleport.events.s3multipart`) and sends only the bytes
    they lack (and, next to a short part, what makes it up to S3's least part of 5 MiB), so
    the bulk of a recording crosses the network once. A part is copied only if its ETag is the
    MD5 of the local file's bytes where it belongs: the local file is the truth. A recording
    with no part of 5 MiB to copy, and any failure of the multipart upload (aborted then), send
    the file whole.
    """

    live_parts = True

    def __init__(self, location: S3Location) -> None:
        self.location = location
        self.name = f"s3://{location.bucket}/{location.prefix}".rstrip("/") + (
            f"?endpoint={location.endpoint}" if location.endpoint else ""
        )
        # Body bytes of the requests the store took (parts, recordings, listing entries);
        # parts copied inside S3 count nothing.
        self.bytes_sent = 0
        self._part_slots = asyncio.Semaphore(PARALLEL_PARTS)
        # The listing entries read so far: session id -> (the entry's ETag, what it says).
        self._listed: dict[str, tuple[str, RecordingInfo]] = {}
        config = botocore.config.Config(
            s3={"addressing_style": "path" if location.endpoint else "auto"},
            # A store that takes connections and never answers (a black-holed network) costs
            # a call about a minute, not four: the start, a shutdown and a session's end do
            # not wait on it longer than that.
            retries={"total_max_attempts": 2, "mode": "standard"},
            connect_timeout=5,
            read_timeout=30,
        )
        self._client: Any = boto3.client(
            "s3",
            region_name=location.region or None,
            endpoint_url=location.endpoint or None,
            verify=not location.insecure,
            config=config,
        )

    def _key(self, name: str) -> str:
        return f"{self.location.prefix}/{name}" if self.location.prefix else name

    async def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return await asyncio.to_thread(fn)
        except botocore.exceptions.ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in ("NoSuchKey", "404", "NotFound"):
                raise NotFoundError(f"{what}: not found") from exc
            raise RecordingError(
                f"{what} in {self.location.uri}: {code or exc}: check the bucket and the AWS "
                "credentials"
            ) from exc
        except boto3.exceptions.Boto3Error as exc:  # upload_file wraps the ClientError
            raise RecordingError(
                f"{what} in {self.location.uri}: {exc}: check the bucket and the AWS credentials"
            ) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise RecordingError(
                f"{what} in {self.location.uri}: no AWS credentials found: set "
                "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in teleport's "
                "environment, or give its host an instance role"
            ) from exc
        except (botocore.exceptions.BotoCoreError, OSError) as exc:
            raise StoreUnreachableError(
                f"{what}: cannot reach {self.location.endpoint or 'S3'}: {exc}"
            ) from exc

    async def check(self) -> None:
        await self._call(
            lambda: self._client.head_bucket(Bucket=self.location.bucket), "the bucket"
        )

    def _put_args(self) -> dict[str, Any]:
        return {} if self.location.disable_sse else {"ServerSideEncryption": "AES256"}

    async def upload(self, session_id: str, path: Path) -> str:
        suffix = path.suffix if path.suffix in SUFFIXES else SUFFIXES[0]
        key = self._key(recording_file_name(session_id, suffix))
        await self._complete_from_parts(session_id, path)
        try:
            info = await asyncio.to_thread(read_info, path)
        except FileNotFoundError:
            raise NotFoundError(f"no recording file at {path}") from None
        extra = self._put_args()
        bucket = self.location.bucket
        try:
            reused = await self._upload_from_parts(session_id, path, key)
        except StoreUnreachableError:
            raise  # sending it whole would fail the same way
        except Exception as exc:
            log.warning(
                "recording %s: cannot reuse its parts, sending it whole: %s", session_id, exc
            )
            reused = False
        if not reused:
            size = (await asyncio.to_thread(path.stat)).st_size
            await self._call(
                lambda: self._client.upload_file(str(path), bucket, key, ExtraArgs=extra or None),
                f"storing recording {session_id}",
            )
            self.bytes_sent += size
        body = json.dumps({"key": key, **info_to_doc(info)}).encode()
        await self._call(
            lambda: self._client.put_object(
                Bucket=bucket, Key=self._key(f"{session_id}.json"), Body=body, **extra
            ),
            f"storing recording {session_id}",
        )
        self.bytes_sent += len(body)
        await self._delete_parts(session_id)
        return f"s3://{bucket}/{key}"

    async def _complete_from_parts(self, session_id: str, path: Path) -> None:
        """The spool file, made as long as the parts already sent when they hold more (see
        :func:`complete_from_parts`); they are read only then."""
        size = 0
        for part in sorted(await self._listed_parts(session_id), key=lambda p: p.offset):
            if part.offset != size:
                break
            size += part.size
        try:
            if size <= (await asyncio.to_thread(path.stat)).st_size:
                return
        except FileNotFoundError:
            return  # upload names it
        stored = await self._read_parts(session_id)
        await asyncio.to_thread(complete_from_parts, session_id, path, stored)

    async def _upload_from_parts(self, session_id: str, path: Path, key: str) -> bool:
        """Store the file at ``path`` as ``key`` by a multipart upload that copies the parts
        already sent; False (nothing done) if too little of it would be copied."""
        upload = MultipartUpload(
            self._client, self._call, self.location.bucket, self._put_args(), self._part_slots
        )
        try:
            return await upload.run(session_id, path, key, await self._listed_parts(session_id))
        finally:
            self.bytes_sent += upload.sent

    def _part_prefix(self, session_id: str) -> str:
        return self._key(f"{session_id}/parts/")

    async def append_part(self, session_id: str, offset: int, data: bytes) -> None:
        recording_file_name(session_id)
        key = f"{self._part_prefix(session_id)}{offset:016d}"
        bucket, extra = self.location.bucket, self._put_args()
        await self._call(
            lambda: self._client.put_object(Bucket=bucket, Key=key, Body=data, **extra),
            f"storing part of recording {session_id}",
        )
        self.bytes_sent += len(data)

    async def _part_objects(self, session_id: str) -> builtins.list[dict[str, Any]]:
        """What list_objects_v2 says of each object under the recording's parts, by key."""
        bucket, prefix = self.location.bucket, self._part_prefix(session_id)

        def objects() -> builtins.list[dict[str, Any]]:
            found: builtins.list[dict[str, Any]] = []
            for page in self._client.get_paginator("list_objects_v2").paginate(
                Bucket=bucket, Prefix=prefix
            ):
                found += page.get("Contents", [])
            return sorted(found, key=lambda item: str(item["Key"]))

        return await self._call(objects, f"listing parts of recording {session_id}")

    async def _part_keys(self, session_id: str) -> builtins.list[str]:
        return [str(item["Key"]) for item in await self._part_objects(session_id)]

    async def _listed_parts(self, session_id: str) -> builtins.list[ListedPart]:
        out = []
        for item in await self._part_objects(session_id):
            key = str(item["Key"])
            name = key.rsplit("/", 1)[1]
            if name.isdigit():
                out.append(ListedPart(key, int(name), int(item["Size"]), str(item["ETag"])))
        return out

    async def _read_parts(self, session_id: str) -> bytes:
        """The parts of a recording whose session never finished, put together (as far as
        they run on without a gap)."""
        out = bytearray()
        for key in await self._part_keys(session_id):
            offset = int(key.rsplit("/", 1)[1])
            if offset != len(out):
                break  # a part missing: what follows would not link anyway
            answer = await self._call(
                functools.partial(self._client.get_object, Bucket=self.location.bucket, Key=key),
                f"recording {session_id}",
            )
            out += await asyncio.to_thread(answer["Body"].read)
        if not out:
            raise NotFoundError(f'recording for session "{session_id}" is not found')
        return bytes(out)

    async def _delete_parts(self, session_id: str) -> None:
        bucket = self.location.bucket
        for key in await self._part_keys(session_id):
            await self._call(
                functools.partial(self._client.delete_object, Bucket=bucket, Key=key),
                f"removing parts of recording {session_id}",
            )

    async def _entry(self, session_id: str) -> tuple[str, RecordingInfo]:
        """The key of a finished recording's object and its listing entry, from the entry
        ``<session id>.json``; RecordingError if the entry is damaged or names an object other
        than the recording of that session (whoever can write under the prefix must not make
        the store read or remove anything else), NotFoundError if there is none."""
        recording_file_name(session_id)  # refuses an id that is no plain name
        key = self._key(f"{session_id}.json")
        try:
            answer = await self._call(
                lambda: self._client.get_object(Bucket=self.location.bucket, Key=key),
                f"recording {session_id}",
            )
        except NotFoundError:
            raise NotFoundError(f'recording for session "{session_id}" is not found') from None
        data: bytes = await asyncio.to_thread(answer["Body"].read)
        damaged = f"the listing entry of recording {session_id} ({key}) is corrupt"
        try:
            doc = json.loads(data)
        except ValueError:
            raise RecordingError(f"{damaged}: it is no JSON") from None
        if not isinstance(doc, dict):
            raise RecordingError(damaged)
        allowed = {self._key(recording_file_name(session_id, s)) for s in SUFFIXES}
        if doc.get("key") not in allowed:
            raise RecordingError(
                f"the listing entry of recording {session_id} ({key}) names another object "
                f"({str(doc.get('key'))[:200]!r}), not {' or '.join(sorted(allowed))}: "
                "remove the entry, or put back the one the proxy wrote"
            )
        try:
            info = info_from_doc(doc)
        except (ValueError, KeyError, TypeError) as exc:
            raise RecordingError(f"{damaged}: {exc!r}") from None
        return str(doc["key"]), info

    async def list(self) -> builtins.list[RecordingInfo]:
        return (await self.scan()).recordings

    async def scan(self) -> StoreScan:
        """One listing of the prefix, then the listing entry of each recording not read
        before (entries are kept by their ETag: a finished recording's does not change), at
        most LISTING_READS at a time: a store of 20,000 recordings costs 20 requests a listing
        once its entries are known, not 20,000."""
        bucket, prefix = self.location.bucket, self._key("")

        def keys() -> tuple[dict[str, str], set[str]]:
            found, unfinished = {}, set()
            paginator = self._client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    name = str(item["Key"])[len(prefix) :]
                    if name.endswith(".json") and "/" not in name:
                        found[name[: -len(".json")]] = str(item.get("ETag", ""))
                    elif "/parts/" in name:
                        unfinished.add(name.split("/", 1)[0])
            return found, unfinished

        finished, unfinished = await self._call(keys, "listing recordings")
        out = []
        unreadable: builtins.list[tuple[str, str]] = []
        misnamed: builtins.list[tuple[str, str]] = []
        for session_id in sorted(unfinished - set(finished)):
            try:
                check_stored_name(session_id)
                info = as_stored(
                    await self._parts_info(session_id),
                    session_id,
                    self._key(f"{session_id}/parts/"),
                    misnamed,
                )
                out.append(info)
            except NotFoundError:
                continue  # stored whole (or removed) since the listing
            except (RecordingError, BadParameterError) as exc:
                log.warning("skipping unreadable recording %s: %s", session_id, exc)
                unreadable.append((self._key(f"{session_id}/parts/"), str(exc)))
        known = {
            sid: entry
            for sid, entry in self._listed.items()
            if entry[0] and finished.get(sid) == entry[0]
        }
        reads = asyncio.Semaphore(LISTING_READS)

        async def read(session_id: str, etag: str) -> None:
            async with reads:
                try:
                    check_stored_name(session_id)
                    _, info = await self._entry(session_id)
                except NotFoundError:
                    return  # removed meanwhile
                except (RecordingError, BadParameterError) as exc:
                    log.warning("skipping unreadable recording %s: %s", session_id, exc)
                    unreadable.append((self._key(f"{session_id}.json"), str(exc)))
                    return
            known[session_id] = (etag, info)

        await asyncio.gather(
            *(read(sid, etag) for sid, etag in finished.items() if sid not in known)
        )
        self._listed = known  # entries of recordings no longer listed are let go
        out += [
            as_stored(info, sid, self._key(f"{sid}.rec"), misnamed)
            for sid, (_, info) in known.items()
        ]
        out.sort(key=lambda info: (info.timestamp, info.session_id), reverse=True)
        return StoreScan(out, sorted(unreadable), sorted(misnamed))

    async def _parts_info(self, session_id: str) -> RecordingInfo:
        """The listing entry of a recording that is only parts, from its first 256 KiB (the
        meta frame) and its last MiB (the last chunks): a listing does not download the
        recording. Laid out at their offsets in a sparse file, they read as the recording
        does; a torn end, walked from the start, stops at the gap (a shorter duration)."""
        parts, size = [], 0
        for part in sorted(await self._listed_parts(session_id), key=lambda p: p.offset):
            if part.offset != size:
                break  # a part missing: what follows would not link anyway
            parts.append(part)
            size += part.size
        if not size:
            raise NotFoundError(f'recording for session "{session_id}" is not found')
        head = await self._read_range(parts, 0, min(size, INFO_HEAD_BYTES), session_id)
        tail_start = max(len(head), size - INFO_TAIL_BYTES)
        tail = await self._read_range(parts, tail_start, size, session_id)

        def info() -> RecordingInfo:
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / recording_file_name(session_id)
                with path.open("wb") as file:
                    file.write(head)
                    file.seek(tail_start)
                    file.write(tail)
                    file.truncate(size)
                return read_info(path)

        return await asyncio.to_thread(info)

    async def _read_range(
        self, parts: builtins.list[ListedPart], start: int, end: int, session_id: str
    ) -> bytes:
        """Bytes ``[start, end)`` of the recording its contiguous ``parts`` make up."""
        out = bytearray()
        for part in parts:
            first, last = max(start, part.offset), min(end, part.offset + part.size)
            if first >= last:
                continue
            answer = await self._call(
                functools.partial(
                    self._client.get_object,
                    Bucket=self.location.bucket,
                    Key=part.key,
                    Range=f"bytes={first - part.offset}-{last - part.offset - 1}",
                ),
                f"recording {session_id}",
            )
            out += await asyncio.to_thread(answer["Body"].read)
        return bytes(out)

    async def info(self, session_id: str) -> RecordingInfo:
        try:
            _, info = await self._entry(session_id)
        except NotFoundError:
            return await self._parts_info(session_id)
        return info

    async def read(self, session_id: str) -> bytes:
        try:
            key, _ = await self._entry(session_id)
        except NotFoundError:
            return await self._read_parts(session_id)
        answer = await self._call(
            lambda: self._client.get_object(Bucket=self.location.bucket, Key=key),
            f"recording {session_id}",
        )
        data: bytes = await asyncio.to_thread(answer["Body"].read)
        return data

    async def chunks(self, session_id: str) -> AsyncIterator[bytes]:
        try:
            key, _ = await self._entry(session_id)
        except NotFoundError:
            data = await self._read_parts(session_id)
            for start in range(0, len(data), CHUNK_BYTES):
                yield data[start : start + CHUNK_BYTES]
            return
        answer = await self._call(
            lambda: self._client.get_object(Bucket=self.location.bucket, Key=key),
            f"recording {session_id}",
        )
        body = answer["Body"]
        try:
            while piece := await asyncio.to_thread(body.read, CHUNK_BYTES):
                yield piece
        finally:
            body.close()

    async def delete(self, session_id: str) -> None:
        """The recording object first, its listing entry last: a removal cut short leaves an
        entry, and the next removal finishes it. NotFoundError when neither is there (another
        process removed them since): a removal is reported once."""
        bucket = self.location.bucket
        entry_key = self._key(f"{session_id}.json")
        try:
            key, _ = await self._entry(session_id)
        except NotFoundError:
            await self._delete_without_entry(session_id)
            return
        except StoreUnreachableError:
            raise  # no answer is no damaged entry: nothing is removed
        except RecordingError:
            # A damaged entry (or one naming another object) is no reason to keep the
            # recording: the objects of this session's own names go, then the entry.
            with contextlib.suppress(NotFoundError):
                await self._delete_without_entry(session_id)
            await self._call(
                functools.partial(self._client.delete_object, Bucket=bucket, Key=entry_key),
                f"removing recording {session_id}",
            )
            return
        if not await self._exists(key, session_id) and not await self._exists(
            entry_key, session_id
        ):
            raise NotFoundError(f'recording for session "{session_id}" is not found')
        for name in (key, entry_key):
            await self._call(
                functools.partial(self._client.delete_object, Bucket=bucket, Key=name),
                f"removing recording {session_id}",
            )

    async def _delete_without_entry(self, session_id: str) -> None:
        """A recording that has no listing entry: parts of a session never stored whole, or
        an object whose entry went first (a removal by an earlier version, cut short)."""
        objects = [
            key
            for key in (self._key(recording_file_name(session_id, s)) for s in SUFFIXES)
            if await self._exists(key, session_id)
        ]
        parts = await self._part_keys(session_id)
        if not objects and not parts:
            raise NotFoundError(f'recording for session "{session_id}" is not found')
        for key in objects:
            await self._call(
                functools.partial(self._client.delete_object, Bucket=self.location.bucket, Key=key),
                f"removing recording {session_id}",
            )
        if parts:
            await self._delete_parts(session_id)

    async def _exists(self, key: str, session_id: str) -> bool:
        try:
            await self._call(
                functools.partial(self._client.head_object, Bucket=self.location.bucket, Key=key),
                f"recording {session_id}",
            )
        except NotFoundError:
            return False
        return True
