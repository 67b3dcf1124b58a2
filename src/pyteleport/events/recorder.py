"""The session recorder: one chunked recording file (docs/recording-format.md), written as the
session runs.

It is called for every SSH packet, so a call only adds a frame in memory. Frames are closed into
a chunk (compressed, hashed, chained) and written (``write``) once the oldest of them is
``flush_interval_s`` (1 s) old, by a timer (or by the next call, if the timer is late), or as
soon as 256 KiB of them are pending. A proxy killed with SIGKILL therefore loses at most the last
second of output (the kernel holds what was written); a torn last chunk is skipped by readers.
What was written reaches the disk itself (``fdatasync``, against a crash of the whole
machine) at most ``fsync_interval_s`` (5 s) later, in a worker thread, so the event loop never
waits on the disk: one job for every recording that asked in the meantime (``_Syncer``). The two
intervals differ because a thousand quiet interactive sessions syncing every second cost the
proxy a fifth of its CPU per keystroke (bench/, docs/performance.md).

A write that fails (ENOSPC, EIO, ...) ends the recording, never the session, unless the
recording is ``strict``: then the call that hit the failure, or the first call after a failure
found by the timer, raises :class:`RecordingError`, and so does every later call.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import re
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pyteleport.clock import Clock, SystemClock
from pyteleport.errors import BadParameterError, RecordingError
from pyteleport.events.asciicast import Header
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.recordingfile import CHUNKED_SUFFIX, header_to_meta

log = logging.getLogger("pyteleport.events")

# (chunk number, chain head, time of its last frame in µs, final): a checkpoint to sign
CheckpointHook = Callable[[int, bytes, int, bool], None]
CHECKPOINT_INTERVAL_S = 60.0
_NEVER = float("inf")

# A bulk session is synced every this many bytes written as well: the kernel then never holds
# much of one recording unwritten, which keeps the writes that follow from stalling on its
# writeback.
SYNC_EVERY_BYTES = 32 * 1024 * 1024
# At most 128 characters: with a suffix (``.rec.part``) it stays a file name a system takes.
_SESSION_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def recording_file_name(session_id: str, suffix: str = CHUNKED_SUFFIX) -> str:
    """``<sid>.rec``; the id must be a plain file name (it comes from us, but a path in it
    would write outside the directory)."""
    if not _SESSION_ID.fullmatch(session_id):  # not match: its $ takes a trailing newline
        raise BadParameterError(f'invalid session id "{session_id}" for a recording')
    return f"{session_id}{suffix}"


class RecordingFile(Protocol):
    """What the recorder needs of its file (a binary file opened for writing)."""

    def write(self, data: bytes, /) -> int: ...

    def flush(self) -> None: ...

    def fileno(self) -> int: ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ByteCounts:
    """Bytes the session carried, for session.data: ``output`` is tx, ``input`` is rx."""

    output: int
    input: int


class SessionRecorder:
    """Build with :meth:`create`. The constructor takes an already open file (tests pass one
    that fails) and queues the header as the first frame (meta). The session id is a UUID."""

    def __init__(
        self,
        path: Path,
        file: RecordingFile,
        header: Header,
        *,
        clock: Clock | None = None,
        flush_interval_s: float = 1.0,
        fsync_interval_s: float = 5.0,
        strict: bool = False,
        checkpoint: CheckpointHook | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.path = path
        self._checkpoint = checkpoint
        self._checkpoint_interval_s = checkpoint_interval_s
        self.session_id = header.session_id
        self.strict = strict
        self.failed = False
        self._file = file
        self._clock = clock or SystemClock()
        self._interval_s = flush_interval_s
        self._fsync_interval_s = max(fsync_interval_s, flush_interval_s)
        self._start_s = self._clock.monotonic()
        self._last_checkpoint_s = self._start_s
        self._last_fsync_s = self._start_s
        self._builder = ChunkBuilder(header.session_id)
        # When the pending frames close into a chunk: ``flush_interval_s`` after the first of
        # them (_NEVER: nothing pending). Closing by the age of the chunk's first frame, not on
        # a fixed beat, puts a burst of keystrokes into one chunk, and leaves the closing to the
        # timer rather than to the keystroke that arrives after a pause. Kept as a number: it
        # is read for every packet.
        self._chunk_due_s = _NEVER
        self._builder.add(Frame(0, FrameKind.META, header_to_meta(header)))
        self._chunk_due_s = self._start_s + self._interval_s
        self._buffer: list[bytes] = []  # closed chunks not yet written
        self._buffered = 0
        self._unsynced = False
        self._unsynced_bytes = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_due_s = 0.0
        self._fsync: asyncio.Future[None] | None = None
        self._error: str | None = None
        self._error_cause: BaseException | None = None
        self._error_delivered = False
        self._closed = False
        self._output_bytes = 0
        self._input_bytes = 0

    @classmethod
    def create(
        cls,
        directory: Path,
        header: Header,
        *,
        clock: Clock | None = None,
        flush_interval_s: float = 1.0,
        fsync_interval_s: float = 5.0,
        strict: bool = False,
        checkpoint: CheckpointHook | None = None,
        checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> SessionRecorder:
        """Create ``<directory>/<sid>.rec`` (0600, directory 0700) and write the header now,
        so even a crash in the first second leaves a file the next start can upload."""
        path = directory / recording_file_name(header.session_id)
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            # Unbuffered: whole chunks are written at once, and a buffered writer's 8 KiB
            # would cost each of a thousand open sessions about 4 KiB of memory for nothing.
            file = os.fdopen(os.open(path, flags, 0o600), "wb", buffering=0)
        except OSError as exc:
            recorder = cls(path, _NullFile(), header, clock=clock, strict=strict)
            recorder._fail(exc)
        else:
            recorder = cls(
                path,
                file,
                header,
                clock=clock,
                flush_interval_s=flush_interval_s,
                fsync_interval_s=fsync_interval_s,
                strict=strict,
                checkpoint=checkpoint,
                checkpoint_interval_s=checkpoint_interval_s,
            )
            recorder._flush(sync=True)  # the first chunk: the meta frame alone
            recorder._schedule()
        recorder._raise_if_failed()
        return recorder

    @property
    def session_bytes(self) -> ByteCounts:
        """Bytes passed to :meth:`output` and :meth:`input`, counted even after a failure:
        they measure the session, not the file."""
        return ByteCounts(output=self._output_bytes, input=self._input_bytes)

    # -- frames -----------------------------------------------------------------------------------

    def output(self, data: bytes) -> None:
        self._output_bytes += len(data)
        self._record(FrameKind.OUTPUT, data)

    def input(self, data: bytes) -> None:
        self._input_bytes += len(data)
        self._record(FrameKind.INPUT, data)

    def resize(self, width: int, height: int) -> None:
        self._record(FrameKind.RESIZE, f"{width}x{height}".encode())

    def marker(self, label: str) -> None:
        doc = json.dumps({"label": label}, ensure_ascii=False)
        self._record(FrameKind.MARKER, doc.encode("utf-8", "backslashreplace"))

    def _record(self, kind: FrameKind, data: bytes) -> None:
        # Called for every SSH data packet a session carries: the common case (a frame added,
        # the timer already set) does no more than that.
        if self._error is not None:
            self._raise_if_failed()
        if self.failed or self._closed or not data:
            return
        now_s = self._clock.monotonic()
        if now_s >= self._chunk_due_s:
            self._flush(sync=True)  # the pending frames are a second old: they close a chunk
        self._append(kind, data, now_s)
        if self._buffer:
            self._flush(sync=False)  # 256 KiB of frames closed a chunk: write it now
        if self._timer is None or self._timer_due_s > self._chunk_due_s:
            self._schedule()
        if self._error is not None:
            self._raise_if_failed()

    def _append(self, kind: FrameKind, data: bytes, now_s: float) -> None:
        offset_us = max(0, round((now_s - self._start_s) * 1_000_000))
        chunk = self._builder.add_data(offset_us, kind, data)
        if chunk:
            self._buffer.append(chunk)
            self._buffered += len(chunk)
            self._chunk_closed(final=False)
            # What is left of a frame split across chunks is pending from now.
            pending = self._builder.oldest_offset_us is not None
            self._chunk_due_s = now_s + self._interval_s if pending else _NEVER
        elif self._chunk_due_s == _NEVER:
            self._chunk_due_s = now_s + self._interval_s

    def _chunk_closed(self, final: bool) -> None:
        """Ask for a signed checkpoint of the chain head at least every interval, and at the end."""
        if self._checkpoint is None:
            return
        now_s = self._clock.monotonic()
        if final or now_s - self._last_checkpoint_s >= self._checkpoint_interval_s:
            self._last_checkpoint_s = now_s
            builder = self._builder
            self._checkpoint(builder.sequence - 1, builder.head, builder.head_offset_us, final)

    # -- reaching the disk ------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Make sure an idle session's last lines still reach the file within the flush
        interval, and the disk within the fsync interval."""
        if self.failed or self._closed:
            return
        if self._buffer:
            due_s = self._clock.monotonic()
        elif self._chunk_due_s != _NEVER:
            due_s = self._chunk_due_s
        elif self._unsynced:
            due_s = self._last_fsync_s + self._fsync_interval_s
        else:
            return
        if self._timer is not None:
            if self._timer_due_s <= due_s:
                return
            self._timer.cancel()  # waiting for the fsync, and now there are lines to write
            self._timer = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # used outside a loop (a script, a test): the next call or aclose flushes
        self._timer_due_s = due_s
        self._timer = loop.call_later(max(0.0, due_s - self._clock.monotonic()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if not self.failed and not self._closed:
            self._flush(sync=True)
            self._schedule()  # an fsync still in flight left lines unsynced

    def _flush(self, *, sync: bool, last: bool = False) -> None:
        """Write the closed chunks; with ``sync`` (the interval passed) close the pending
        frames into a chunk first; with ``last`` close the recording's final chunk."""
        if sync or last:
            chunk = self._builder.flush(last=last)
            self._chunk_due_s = _NEVER
            if chunk:
                self._buffer.append(chunk)
                self._chunk_closed(final=last)
        if self._buffer:
            data = b"".join(self._buffer)
            self._buffer.clear()
            self._buffered = 0
            try:
                _write_all(self._file, data)
            except (OSError, ValueError) as exc:
                self._fail(exc)
                return
            self._unsynced = True
            self._unsynced_bytes += len(data)
        if sync or self._unsynced_bytes >= SYNC_EVERY_BYTES:
            now_s = self._clock.monotonic()
            if self._unsynced and (
                now_s - self._last_fsync_s >= self._fsync_interval_s
                or self._unsynced_bytes >= SYNC_EVERY_BYTES
            ):
                self._last_fsync_s = now_s
                self._start_fsync()

    def _start_fsync(self) -> None:
        if self._fsync is not None and not self._fsync.done():
            return  # the disk is slow: the one in flight covers most; the next timer the rest
        try:
            fd = self._file.fileno()
        except (OSError, ValueError) as exc:
            self._fail(exc)
            return
        self._unsynced = False
        self._unsynced_bytes = 0
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            try:
                os.fdatasync(fd)
            except OSError as exc:
                self._fail(exc)
            return
        self._fsync = _syncer(loop).sync(fd)
        self._fsync.add_done_callback(self._on_fsync_done)

    def _on_fsync_done(self, future: asyncio.Future[None]) -> None:
        if future.cancelled():
            return
        exc = future.exception()
        if isinstance(exc, OSError) and not self.failed:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self.failed:
            return
        self.failed = True
        self._buffer.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        # The user hears the reason; the proxy's own paths stay in its log.
        message = f"cannot record session {self.session_id}: {reason} (the proxy's spool)"
        if self.strict:
            self._error, self._error_cause = message, exc
            log.warning("%s: %s; the session is ended", message, self.path)
        else:
            log.warning("%s: %s; the session goes on unrecorded", message, self.path)

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            self._error_delivered = True
            raise RecordingError(self._error) from self._error_cause

    # -- end ----------------------------------------------------------------------------------------

    async def aclose(self) -> Path:
        """Write what is buffered, fsync, close; the path of the (possibly partial) file.

        In strict mode a failure not yet raised by an earlier call is raised here."""
        if self._closed:
            return self.path
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._closed = True
        if not self.failed:
            self._flush(sync=False, last=True)
        if self._fsync is not None:
            with contextlib.suppress(Exception):
                await self._fsync
        if not self.failed and self._unsynced:
            try:
                await asyncio.to_thread(os.fdatasync, self._file.fileno())
            except (OSError, ValueError) as exc:
                self._fail(exc)
        try:
            self._file.close()
        except OSError as exc:
            self._fail(exc)
        if self._error is not None and not self._error_delivered:
            self._raise_if_failed()
        return self.path


class _Syncer:
    """The fsyncs of every recording on one event loop, made by one worker job at a time.

    A thousand quiet interactive sessions each wanting its second's keystrokes on disk would be
    a thousand executor jobs (and wake-ups of the loop) a second; here they are one job that
    runs ``fdatasync`` (the data and the file size, not the times) over every file that asked
    since the last job started. While a job runs, new requests wait for the next one, so a slow
    disk makes the batches larger rather than the queue longer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._running = False

    def sync(self, fd: int) -> asyncio.Future[None]:
        """A future done when ``fd``'s data is on disk (or failing with the OSError). The caller
        keeps ``fd`` open until then."""
        future = self._pending.get(fd)
        if future is None:
            future = self._pending[fd] = self._loop.create_future()
        if not self._running:
            self._start()
        return future

    def _start(self) -> None:
        batch, self._pending = self._pending, {}
        self._running = True
        job = self._loop.run_in_executor(None, _sync_all, list(batch))
        job.add_done_callback(lambda done: self._finish(batch, done))

    def _finish(
        self, batch: dict[int, asyncio.Future[None]], job: asyncio.Future[dict[int, OSError]]
    ) -> None:
        self._running = False
        if job.cancelled():
            errors: dict[int, OSError] = {}
            for future in batch.values():
                future.cancel()
        else:
            exc = job.exception()
            errors = job.result() if exc is None else {fd: OSError(str(exc)) for fd in batch}
        for fd, future in batch.items():
            if future.done():
                continue
            if fd in errors:
                future.set_exception(errors[fd])
            else:
                future.set_result(None)
        if self._pending:
            self._start()


def _sync_all(fds: list[int]) -> dict[int, OSError]:
    errors = {}
    for fd in fds:
        try:
            os.fdatasync(fd)
        except OSError as exc:
            errors[fd] = exc
    return errors


_syncers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Syncer] = (
    weakref.WeakKeyDictionary()
)


def _syncer(loop: asyncio.AbstractEventLoop) -> _Syncer:
    syncer = _syncers.get(loop)
    if syncer is None:
        syncer = _syncers[loop] = _Syncer(loop)
    return syncer


def _write_all(file: RecordingFile, data: bytes) -> None:
    """Write all of ``data``: an unbuffered file may take part of it (a write interrupted by a
    signal, a disk that filled in the middle; the next write then fails with the reason)."""
    offset = 0
    while offset < len(data):
        written = file.write(data[offset:] if offset else data)
        if not written:
            raise OSError(errno.EIO, "the file took no bytes")
        offset += written
    file.flush()


class _NullFile:
    """Stands in for the file that could not be created, so a best-effort recorder that
    failed at start has the same shape as one that failed later."""

    def write(self, data: bytes) -> int:
        return len(data)

    def flush(self) -> None:
        pass

    def fileno(self) -> int:
        raise ValueError("no file")

    def close(self) -> None:
        pass
