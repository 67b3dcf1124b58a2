"""Recording stores: where finished recordings live, and how a crash's leftovers get there.

A recorder writes ``<sid>.rec`` (docs/recording-format.md; ``<sid>.cast`` before) into a
streaming directory as the session runs; at the end the
file is uploaded to a :class:`RecordingStore` and the local copy removed. A process that died
mid-session leaves its files behind, and a store that cannot be reached when a session ends
leaves its file in the spool: :class:`SpoolUploader` sends both as soon as the store takes them
(from the next start, for the first), so a crash loses at most the last second of a session,
never the recording.

``FileRecordingStore`` (``<data_dir>/records/``) is the default; every store passes the suite
in ``tests/events/store_conformance.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import errno
import logging
import os
import shutil
import stat
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from pyteleport.errors import (
    BadParameterError,
    ConnectionProblemError,
    NotFoundError,
    RecordingError,
    TeleportError,
)
from pyteleport.events import codes
from pyteleport.events.asciicast import MAX_OFFSET_S, Header, checked_timestamp
from pyteleport.events.audit import Emitter
from pyteleport.events.chunks import session_uuid
from pyteleport.events.recorder import recording_file_name
from pyteleport.events.recordingfile import (
    MAX_NAME,
    SUFFIXES,
    capped_names,
    header_and_duration_in,
    read_header,
    read_header_and_duration,
)
from pyteleport.events.sanitize import MAX_TEXT, clean_text
from pyteleport.model.timefmt import format_time, parse_time

log = logging.getLogger("pyteleport.events")

CHUNK_BYTES = 256 * 1024  # a recording is sent in pieces of this size


@dataclass(frozen=True, slots=True)
class RecordingInfo:
    session_id: str
    kind: str  # "ssh" (a shell), "exec" or "subsystem"
    user: str
    login: str
    participants: tuple[str, ...]
    server_hostname: str
    timestamp: dt.datetime  # the session's start (the header's)
    duration_s: float  # the time of the last frame
    command: str = ""
    server_labels: Mapping[str, str] = field(default_factory=dict)  # the node's, when registered


@dataclass(frozen=True, slots=True)
class StoreScan:
    recordings: list[RecordingInfo]  # newest first
    unreadable: list[tuple[str, str]]  # (its name in the store, why it is no recording)
    # (its name in the store, what it holds): another session's recording, listed as named
    misnamed: list[tuple[str, str]] = field(default_factory=list)


def check_stored_name(session_id: str) -> None:
    """BadParameterError if ``session_id``, a name in the store, is a UUID written otherwise
    than session IDs are (lower case, with hyphens): no session is stored under it, and a
    second entry for the session it spells would only shadow the real one."""
    try:
        canonical = str(uuid.UUID(session_id))
    except ValueError:
        return  # a plain name (tests, hand-made recordings)
    if canonical != session_id:
        raise BadParameterError(
            f"named as no session is: a session ID is a UUID in lower case ({canonical})"
        )


def as_stored(
    info: RecordingInfo, session_id: str, name: str, misnamed: list[tuple[str, str]]
) -> RecordingInfo:
    """The listing entry of a recording stored as ``session_id``: a session is known by the
    name its recording is stored under, so one that holds another session's recording (a
    file put in its place) is listed under that name (where verify fails it and play warns),
    not under the other session's, and noted in ``misnamed``."""
    named = info.session_id
    if named == session_id:
        return info
    if named and session_uuid(named) == session_uuid(session_id):
        return replace(info, session_id=session_id)  # the same session, written otherwise
    what = f"the recording of session {named}" if named else "a recording that names no session"
    misnamed.append(
        (
            name,
            f"holds {what}, not its own: it was put in its place; 'tctl recordings verify "
            f"{session_id}' names what is wrong",
        )
    )
    return replace(info, session_id=session_id)


class RecordingStore(Protocol):
    @property
    def live_parts(self) -> bool:
        """True if the store takes a running session's bytes as they come
        (:meth:`append_part`): a store elsewhere than the spool's disk, so a host that dies
        for good loses little."""
        ...

    @property
    def bytes_sent(self) -> int:
        """Bytes this process has sent to the store over the network (``/metrics``); none for
        a store on the spool's disk."""
        ...

    @property
    def name(self) -> str:
        """Where the recordings live, as the configuration names it (a directory, an s3://
        URI)."""
        ...

    async def check(self) -> None:
        """Raise (ConnectionProblemError or RecordingError, one line) unless the store can take
        recordings now: what ``/readyz`` asks."""
        ...

    async def append_part(self, session_id: str, offset: int, data: bytes) -> None:
        """Store ``data``, the bytes at ``offset`` of a running session's recording file. The
        parts put together are the recording so far; :meth:`upload` replaces them."""
        ...

    async def upload(self, session_id: str, path: Path) -> str:
        """Store the file at ``path`` as the recording of ``session_id`` (again: replaced, so a
        retried upload is harmless); the URL where it now lives."""
        ...

    async def list(self) -> list[RecordingInfo]:
        """Every recording, newest first."""
        ...

    async def scan(self) -> StoreScan:
        """What :meth:`list` lists, and what the store holds that is no readable recording
        (``tctl recordings reindex`` names them: a listing leaves them out)."""
        ...

    async def delete(self, session_id: str) -> None:
        """Remove the recording of ``session_id``; NotFoundError if there is none."""
        ...

    async def read(self, session_id: str) -> bytes:
        """The recording file; NotFoundError if there is no such recording."""
        ...

    async def info(self, session_id: str) -> RecordingInfo:
        """The listing entry of one recording, read from it alone; NotFoundError if none."""
        ...

    def chunks(self, session_id: str) -> AsyncIterator[bytes]:
        """The recording file a piece at a time, for sending without holding it whole;
        NotFoundError (on the first step) if there is no such recording."""
        ...


def complete_from_parts(session_id: str, path: Path, stored: bytes) -> int:
    """Append to the spool file ``path`` what the parts a running session sent (``stored``,
    put together) hold beyond it, if the file is where they begin: a host that lost power
    kept on disk only what it had synced (every few seconds), less than it had sent. The
    bytes added; none if the file is as long, or is not where the parts begin (then the file
    is the recording, as it always was)."""
    try:
        with path.open("r+b") as file:
            size = file.seek(0, os.SEEK_END)
            if len(stored) <= size:
                return 0
            file.seek(0)
            if file.read(size) != stored[:size]:
                return 0
            file.write(stored[size:])
            file.flush()
            os.fsync(file.fileno())
    except FileNotFoundError:
        return 0  # the caller names a file that is gone
    except OSError as exc:
        raise RecordingError(
            f"cannot complete {path} from its parts: {exc.strerror or exc}"
        ) from exc
    log.warning(
        "recording %s: the spool held %d bytes less than the store's parts (did its host lose "
        "power?): completed from them",
        session_id,
        len(stored) - size,
    )
    return len(stored) - size


def _utf8(text: str) -> str:
    """A file name as text any reader takes: bytes that are no UTF-8 (kept by Python as
    surrogates) shown as escapes, ``\\xff``."""
    return os.fsencode(text).decode("utf-8", "backslashreplace")


def _duration(value: float) -> float:
    """A duration read from outside that ends a session: ValueError unless it is a number of
    seconds from 0 to MAX_OFFSET_S (so the start plus it is a date)."""
    if not 0 <= value <= MAX_OFFSET_S:  # NaN fails too
        raise ValueError(f"a recording's duration of {value} s is no duration a session has")
    return value


def _start(value: dt.datetime) -> dt.datetime:
    """A start read from outside: ValueError unless it is one a header may hold."""
    checked_timestamp(value.timestamp())
    return value


def info_from_header(header: Header, duration_s: float) -> RecordingInfo:
    raw = header.extra.get("participants")
    if isinstance(raw, list) and raw:
        participants = capped_names(raw)
    else:
        participants = (header.user[:MAX_NAME],) if header.user else ()
    raw_labels = header.extra.get("server_labels")
    labels = {str(k): str(v) for k, v in raw_labels.items()} if isinstance(raw_labels, dict) else {}
    return RecordingInfo(
        session_id=header.session_id,
        kind=header.kind,
        user=header.user,
        login=header.login,
        participants=participants,
        server_hostname=header.server_hostname,
        timestamp=header.start,
        duration_s=_duration(duration_s),
        # What a client chose (an exec's command, up to what a meta frame holds): listed as
        # the audit log keeps it, so a page of the listing stays small.
        command=clean_text(header.command, MAX_TEXT),
        server_labels=labels,
    )


def info_to_doc(info: RecordingInfo) -> dict[str, Any]:
    """A listing entry as JSON (what a store or the catalog keeps of it)."""
    return {
        "sid": info.session_id,
        "kind": info.kind,
        "user": info.user,
        "login": info.login,
        "participants": list(info.participants),
        "server_hostname": info.server_hostname,
        "session_start": format_time(info.timestamp),
        "duration_s": info.duration_s,
        "command": info.command,
        "server_labels": dict(info.server_labels),
    }


def info_from_doc(doc: dict[str, Any]) -> RecordingInfo:
    """The entry :func:`info_to_doc` wrote; KeyError, TypeError or ValueError if it is not one."""
    return RecordingInfo(
        session_id=str(doc["sid"]),
        kind=str(doc["kind"]),
        user=str(doc["user"]),
        login=str(doc["login"]),
        participants=capped_names(doc["participants"]),
        server_hostname=str(doc["server_hostname"]),
        timestamp=_start(parse_time(str(doc["session_start"])).astimezone(dt.UTC)),
        duration_s=_duration(float(doc["duration_s"])),
        command=clean_text(str(doc.get("command", "")), MAX_TEXT),
        server_labels={str(k): str(v) for k, v in dict(doc.get("server_labels", {})).items()},
    )


def read_info(path: Path) -> RecordingInfo:
    """The listing entry of one recording file: its header and the time of its last frame."""
    header, duration_s = read_header_and_duration(path)
    return info_from_header(header, duration_s)


PART_SUFFIX = ".part"  # ``<sid>.rec.part``: what a running session sent so far


class FileRecordingStore:
    """Recordings as files in one directory (0700), each ``<sid>.rec`` (0600), or
    ``<sid>.cast`` if it was recorded before the chunked format.

    With ``live_parts`` (a directory given as ``file:///path``: another disk, a mount) a
    running session's bytes are written to ``<sid>.rec.part`` as they come, so a proxy host
    that dies for good loses only the last seconds, and the session is listed and plays while
    it runs, as with S3; the upload replaces the part file. The default directory under
    ``data_dir`` is on the spool's disk, where a copy as it runs would keep nothing more."""

    def __init__(self, directory: Path, *, live_parts: bool = False) -> None:
        self.directory = directory
        self.name = str(directory)
        self.live_parts = live_parts
        self.bytes_sent = 0  # bytes of running sessions written here (live_parts)

    async def check(self) -> None:
        def writable() -> bool:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.access(self.directory, os.W_OK | os.X_OK)

        try:
            ok = await asyncio.to_thread(writable)
        except OSError as exc:
            raise ConnectionProblemError(
                f"recording directory {self.directory}: {exc.strerror or exc}"
            ) from exc
        if not ok:
            raise ConnectionProblemError(f"recording directory {self.directory} is not writable")

    async def append_part(self, session_id: str, offset: int, data: bytes) -> None:
        path = self._part_path(session_id)  # the same refusal of a bad id as every other call
        if not self.live_parts:
            return
        await asyncio.to_thread(self._write_part, path, offset, data)
        self.bytes_sent += len(data)

    def _write_part(self, path: Path, offset: int, data: bytes) -> None:
        """``data`` at ``offset`` of the part file, on disk when this returns (a retried part
        writes the same bytes again). A symbolic link put in its place is not followed: the
        directory may be a mount others write to."""
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW
            # The first part makes the file; a later one goes only into a file that is there,
            # so a write still under way when the session is stored (its part file removed)
            # cannot leave a new one behind.
            flags |= (os.O_CREAT | os.O_TRUNC) if offset == 0 else 0
            fd = os.open(path, flags, 0o600)
            try:
                os.pwrite(fd, data, offset)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise RecordingError(
                f"cannot store part of a recording in {self.directory}: {exc.strerror or exc}"
            ) from exc

    def _part_path(self, session_id: str) -> Path:
        return self.directory / (recording_file_name(session_id) + PART_SUFFIX)

    def _path(self, session_id: str) -> Path:
        """The file of ``session_id``, of whichever form is there (chunked if none is; the
        part file of a session that has not been stored whole)."""
        paths = [self.directory / recording_file_name(session_id, s) for s in SUFFIXES]
        paths.append(self._part_path(session_id))
        return next((p for p in paths if p.exists()), paths[0])

    async def upload(self, session_id: str, path: Path) -> str:
        suffix = path.suffix if path.suffix in SUFFIXES else SUFFIXES[0]
        target = self.directory / recording_file_name(session_id, suffix)
        part = self._part_path(session_id)
        await asyncio.to_thread(self._complete_from_part, session_id, path, part)
        self.bytes_sent += await asyncio.to_thread(self._copy, path, target)
        try:  # what it sent while it ran is in the recording now
            await asyncio.to_thread(part.unlink, missing_ok=True)
        except OSError as exc:
            log.warning("cannot remove %s: %s", part, exc.strerror or exc)
        return target.resolve().as_uri()

    @staticmethod
    def _complete_from_part(session_id: str, path: Path, part: Path) -> None:
        try:
            if part.is_symlink() or path.stat().st_size >= part.stat().st_size:
                return  # the usual case: the spool file has all the part file has, or more
            stored = part.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise RecordingError(f"cannot read {part}: {exc.strerror or exc}") from exc
        complete_from_parts(session_id, path, stored)

    def _copy(self, source: Path, target: Path) -> int:
        """Put the file in place under a temporary name, fsync, rename, fsync the directory: a
        reader (or a crash) sees the old recording or the whole new one, never half of it.
        The bytes copied (none for a link).

        On the same filesystem (the default: both under ``data_dir``) the temporary name is a
        hard link to the finished file, so storing a recording costs no copy whatever its size;
        the source stays until the caller removes it, so a retried upload is still harmless."""
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)
            if target.exists() and os.path.samefile(source, target):
                return 0  # a retry after a crash: linked in place already
            copied = 0
            if not self._link(source, tmp):
                with source.open("rb") as src:
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
                    with os.fdopen(fd, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1024 * 1024)
                        dst.flush()
                        os.fsync(dst.fileno())
                        copied = dst.tell()
            os.replace(tmp, target)
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
            return copied
        except FileNotFoundError as exc:
            tmp.unlink(missing_ok=True)
            if not source.exists():
                raise NotFoundError(f"no recording file at {source}") from exc
            raise RecordingError(f"cannot store recording in {self.directory}: {exc}") from exc
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise RecordingError(
                f"cannot store recording in {self.directory}: {exc.strerror or exc}"
            ) from exc

    @staticmethod
    def _link(source: Path, tmp: Path) -> bool:
        """Hard-link ``source`` (its data fsynced first) as ``tmp``; False where the two
        directories cannot share a file (another filesystem), and the caller copies."""
        fd = os.open(source, os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(source, tmp)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.EOPNOTSUPP):
                return False
            raise
        return True

    async def list(self) -> list[RecordingInfo]:
        return (await self.scan()).recordings

    async def scan(self) -> StoreScan:
        return await asyncio.to_thread(self._scan)

    def _scan(self) -> StoreScan:
        if not self.directory.is_dir():
            return StoreScan([], [])
        out: list[RecordingInfo] = []
        unreadable: list[tuple[str, str]] = []
        misnamed: list[tuple[str, str]] = []
        names = {p.name for p in self.directory.iterdir()}
        for path in self.directory.iterdir():
            if path.name.startswith("."):
                continue
            # A part file is a session that was not stored whole (running, or its proxy never
            # came back): listed like S3's parts, unless the whole recording is there too.
            unfinished = path.name.endswith(SUFFIXES[0] + PART_SUFFIX)
            stem = path.name.removesuffix(PART_SUFFIX) if unfinished else path.name
            stem, suffix = os.path.splitext(stem)
            if suffix not in SUFFIXES:
                continue
            try:
                recording_file_name(stem)  # a name no session has: no session to list
                check_stored_name(stem)
                whole = [n for n in (stem + x for x in SUFFIXES) if n in names]
                if unfinished and whole:
                    continue
                if whole and whole[0] != path.name:
                    raise BadParameterError(
                        f"a second recording file of session {stem}: {whole[0]} is the "
                        "one listed and played"
                    )
                info = _read_stored_info(path)
            except (OSError, BadParameterError, RecordingError) as exc:
                why = _utf8(str(exc))
                log.warning("skipping unreadable recording %s: %s", _utf8(str(path)), why)
                unreadable.append((_utf8(path.name), why))
                continue
            out.append(as_stored(info, _utf8(stem), _utf8(path.name), misnamed))
        out.sort(key=lambda info: (info.timestamp, info.session_id), reverse=True)
        return StoreScan(out, sorted(unreadable), sorted(misnamed))

    async def delete(self, session_id: str) -> None:
        path = self._path(session_id)
        try:
            await asyncio.to_thread(path.unlink)
            if path != (part := self._part_path(session_id)):
                await asyncio.to_thread(part.unlink, missing_ok=True)
        except FileNotFoundError:
            raise _not_found(session_id) from None
        except OSError as exc:
            raise RecordingError(f"cannot remove recording {path}: {exc.strerror or exc}") from exc

    async def read(self, session_id: str) -> bytes:
        path = self._path(session_id)

        def read_all() -> bytes:
            with _open_stored(path) as file:
                return file.read()

        try:
            return await asyncio.to_thread(read_all)
        except FileNotFoundError:
            raise _not_found(session_id) from None
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from exc

    async def info(self, session_id: str) -> RecordingInfo:
        path = self._path(session_id)
        try:
            return await asyncio.to_thread(_read_stored_info, path)
        except FileNotFoundError:
            raise _not_found(session_id) from None
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from exc

    async def chunks(self, session_id: str) -> AsyncIterator[bytes]:
        path = self._path(session_id)
        try:
            file = await asyncio.to_thread(_open_stored, path)
        except FileNotFoundError:
            raise _not_found(session_id) from None
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path}: {exc.strerror or exc}") from exc
        try:
            while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
                yield chunk
        finally:
            file.close()


def _open_stored(path: Path) -> BinaryIO:
    """A stored recording, opened for reading only if it is a file of its own: a symbolic link
    put in its place (the directory may be a mount others write to) would have a recording
    fetched from the proxy serve whatever file it points at."""
    try:
        # Not blocking: a named pipe put there would otherwise hold the open until a writer
        # came (it is refused below); on a regular file the flag changes nothing.
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RecordingError(f"{path} is a symbolic link: not read as a recording") from exc
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RecordingError(f"{path} is not a regular file: not read as a recording")
    return os.fdopen(fd, "rb")


def _read_stored_info(path: Path) -> RecordingInfo:
    with _open_stored(path) as file:
        return info_from_header(*header_and_duration_in(file))


def _not_found(session_id: str) -> NotFoundError:
    return NotFoundError(f'recording for session "{session_id}" is not found')


SPOOL_RETRY_S = 30.0  # how often the spool's recordings are offered to the store again


class SpoolUploader:
    """Recordings in the spool that the store has not taken yet: a session's whose store could
    not be reached when it ended (:meth:`add`), and those a process that died left
    (:meth:`add_left_over`). :meth:`run` offers each to the store now and again every
    ``retry_s`` until it takes them; each stored one is audited (``session.upload``) and then
    removed from the spool. A store that comes back gets them within ``retry_s``, with no
    restart."""

    def __init__(
        self,
        store: RecordingStore,
        emitter: Emitter,
        cluster: str,
        retry_s: float = SPOOL_RETRY_S,
    ) -> None:
        self._store = store
        self._emitter = emitter
        self._cluster = cluster
        self._retry_s = retry_s
        # path -> (session id, the session.upload event's fields)
        self._pending: dict[Path, tuple[str, dict[str, Any]]] = {}
        self._failing = ""  # the store's last error, logged once until it changes

    @property
    def pending(self) -> int:
        return len(self._pending)

    @property
    def retry_s(self) -> float:
        return self._retry_s

    def add(self, session_id: str, path: Path, fields: dict[str, Any]) -> None:
        """A finished recording the store did not take: offered again at the next round."""
        self._pending[path] = (session_id, fields)

    def add_left_over(self, streaming_dir: Path) -> int:
        """Take every recording a dead process left in ``streaming_dir``; how many. Call it
        before any new session starts recording there: a live file would be taken too. A file
        that names no session is left where it is, with a warning."""
        if not streaming_dir.is_dir():
            return 0
        found = 0
        for path in sorted(p for p in streaming_dir.glob("*") if p.suffix in SUFFIXES):
            if path.name.startswith("."):
                continue
            try:
                header = _read_header(path)
            except (OSError, TeleportError) as exc:
                log.warning("recording %s left by an earlier run is not uploaded: %s", path, exc)
                continue
            fields = {
                "cluster_name": self._cluster,
                "user": header.user,
                "login": header.login,
                "server_hostname": header.server_hostname,
                "session_start": format_time(header.start),
                # Not the usual path: these were found at start, after a crash.
                "recovered": True,
            }
            self.add(header.session_id, path, fields)
            found += 1
        return found

    async def send(self) -> list[str]:
        """Offer the pending recordings to the store once each; the session ids it took. Two
        failures in a row end the round (the store is down: the rest would fail the same way,
        each after its timeout); one that failed goes to the back of the queue, so a file the
        store refuses never holds up the others."""
        done: list[str] = []
        failures = 0
        for path, (session_id, fields) in list(self._pending.items()):
            try:
                url = await self._store.upload(session_id, path)
            except NotFoundError:
                del self._pending[path]  # the file is gone: nothing left to send
                continue
            except BadParameterError as exc:  # no store will take it: offered no more
                log.warning("recording %s is not stored, and stays where it is: %s", path, exc)
                del self._pending[path]
                continue
            except (OSError, TeleportError) as exc:
                self._pending[path] = self._pending.pop(path)  # to the back
                if str(exc) != self._failing:
                    self._failing = str(exc)
                    log.warning(
                        "%d recording(s) wait in %s for the recording store, tried again "
                        "every %gs: %s",
                        len(self._pending),
                        path.parent,
                        self._retry_s,
                        exc,
                    )
                failures += 1
                if failures >= 2:
                    break
                continue
            failures = 0
            await self._emitter.emit(
                codes.SESSION_UPLOAD,
                {
                    **fields,
                    "ei": codes.SESSION_UPLOAD_INDEX,
                    "sid": session_id,
                    "url": url,
                    "time_uploaded": format_time(dt.datetime.now(dt.UTC)),
                },
            )
            # Removed only once the upload is recorded: a crash in between re-uploads it.
            await asyncio.to_thread(path.unlink, True)
            del self._pending[path]
            done.append(session_id)
        if done:
            self._failing = ""
            log.info("stored %d recording(s) from the spool", len(done))
        return done

    async def run(self) -> None:
        """:meth:`send` now and every ``retry_s`` until cancelled."""
        while True:
            if self._pending:
                try:
                    await self.send()
                except Exception as exc:  # a round that failed is tried again, never the end
                    log.warning("could not send the spool's recordings: %s", exc)
            await asyncio.sleep(self._retry_s)


async def complete_pending_uploads(
    streaming_dir: Path, store: RecordingStore, emitter: Emitter, cluster: str
) -> list[str]:
    """Upload every recording a dead process left in ``streaming_dir`` once; the session ids
    sent (a file that cannot be uploaded stays, with a warning). One round of a
    :class:`SpoolUploader`, for a caller that does not keep one running (the process does)."""
    uploader = SpoolUploader(store, emitter, cluster)
    await asyncio.to_thread(uploader.add_left_over, streaming_dir)
    return await uploader.send()


def _read_header(path: Path) -> Header:
    header = read_header(path)
    if not header.session_id:
        raise BadParameterError("the header names no session")
    return header
