"""What the proxy writes about each relayed session: the chunked recording and the audit
events of docs/compatibility.md (session.start, resize, exec, session.data, session.end,
session.upload).

The recording is written under ``data_dir`` as the session runs; at the end it is uploaded to
the recording store and the local copy removed. A crash leaves the local copy, which the next
start uploads. In ``proxy-sync`` mode, or with ``record_session.ssh: strict`` in a role, a
recording that cannot be written ends the session.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyteleport.api.metrics import NO_METRICS, Metrics
from pyteleport.clock import Clock
from pyteleport.crypto.checkpoint import Checkpoint
from pyteleport.errors import BadParameterError, RecordingError
from pyteleport.events import codes
from pyteleport.events.asciicast import Header, timestamp_of
from pyteleport.events.audit import Emitter
from pyteleport.events.filetransfer import FileTransfer, ScpTap, SftpTap
from pyteleport.events.recorder import SessionRecorder
from pyteleport.events.recordingfile import read_header_and_duration
from pyteleport.events.store import RecordingStore, SpoolUploader
from pyteleport.events.textindex import IndexedSession, RecordingIndex, SessionTextIndex
from pyteleport.model.timefmt import format_time
from pyteleport.policy.access import RoleSet
from pyteleport.proxy.checkpoints import CheckpointSigner
from pyteleport.proxy.forwarder import ForwardTarget
from pyteleport.ssh.relay import SessionExit, SessionRequest

log = logging.getLogger("pyteleport.proxy")

# A store with live parts (S3) gets a running session's new bytes this often: a proxy host that
# dies for good loses about this much plus the recorder's second.
SHIP_INTERVAL_S = 2.0
# A window dragged to a new size sends dozens of window-changes a second, and a client can send
# thousands: the audit log gets one resize event a second at most, the last size always.
RESIZE_AUDIT_INTERVAL_S = 1.0
MAX_PART_BYTES = 16 * 1024 * 1024


class SessionsEnding:
    """Recorded sessions whose end is not audited and stored yet: shutdown waits for them
    before it closes the backend, so a session cut by the shutdown still gets its
    session.end and its recording."""

    def __init__(self) -> None:
        self._open: set[RecordedSession] = set()
        self._none = asyncio.Event()
        self._none.set()

    def add(self, session: RecordedSession) -> None:
        self._open.add(session)
        self._none.clear()

    def done(self, session: RecordedSession) -> None:
        self._open.discard(session)
        if not self._open:
            self._none.set()

    async def wait(self, timeout_s: float) -> bool:
        """True once none is left; False if some still were after ``timeout_s``."""
        try:
            await asyncio.wait_for(self._none.wait(), timeout_s)
        except TimeoutError:
            log.warning("%d session(s) were still ending at shutdown", len(self._open))
            return False
        return True


@dataclass(frozen=True, slots=True)
class RecordingSettings:
    mode: str  # session_recording
    cluster: str
    server_id: str
    streaming_dir: Path
    store: RecordingStore
    audit: Emitter
    clock: Clock
    ending: SessionsEnding = field(default_factory=SessionsEnding)
    signer: CheckpointSigner | None = None  # signs checkpoints of each recording's chain
    index: RecordingIndex | None = None  # the search index of what sessions showed
    metrics: Metrics = NO_METRICS
    # Sends a recording the store did not take at the session's end once it does.
    spool: SpoolUploader | None = None


class RecordedSession:
    """The ``SessionObserver`` of one relayed session channel."""

    def __init__(
        self,
        settings: RecordingSettings,
        target: ForwardTarget,
        login: str,
        roles: RoleSet,
        request: SessionRequest,
    ) -> None:
        self._settings = settings
        self._target = target
        self._login = login
        self._strict = settings.mode.endswith("-sync") or roles.strict_recording()
        self._request = request
        self.session_id = str(uuid.uuid4())
        self._recorder: SessionRecorder | None = None
        self._start = settings.clock.now()
        self._start_s = settings.clock.monotonic()
        self._text: SessionTextIndex | None = None
        self._text_flushed_s = self._start_s
        self._text_flush: asyncio.Task[None] | None = None
        self._text_timer: asyncio.TimerHandle | None = None
        self._text_flush_again = False  # a flush is due once the one in flight is done
        self._closing = False
        self._shipper: asyncio.Task[None] | None = None
        self._ship_error = ""  # -sync modes: the store took no part; the next call ends it
        self._abort: Callable[[str], None] | None = None  # ends the session (the relay's)
        self._index = 0
        self._tx = 0
        self._rx = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._resize_audited_s = -RESIZE_AUDIT_INTERVAL_S
        self._resize_pending: str | None = None  # the latest size not audited yet
        self._resize_timer: asyncio.TimerHandle | None = None
        self._interactive = bool(request.term_type)
        self._sftp: SftpTap | None = None
        if request.kind == "subsystem" and request.subsystem == "sftp":
            self._sftp = SftpTap(self._file_transferred)
        self._scp: ScpTap | None = None
        if _is_scp(request):
            self._scp = ScpTap(request.command, self._file_transferred)
        settings.ending.add(self)

    def _file_transferred(self, transfer: FileTransfer) -> None:
        fields = self._fields(
            path=transfer.path,
            direction=transfer.direction,
            size=transfer.size,
            sha256=transfer.sha256,
        )
        task = asyncio.get_running_loop().create_task(
            self._settings.audit.emit(codes.FILE_TRANSFER, fields)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _fields(self, **extra: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "ei": self._index,
            "user": self._target.user,
            "login": self._login,
            "sid": self.session_id,
            "namespace": "default",
            "server_id": self._settings.server_id,
            "server_hostname": self._target.hostname,
            "server_addr": self._target.server_addr,
            "server_labels": dict(self._target.labels),
            "addr.local": self._target.local_addr,
            "addr.remote": self._target.remote_addr,
            "proto": "ssh",
        }
        self._index += 1
        fields.update(extra)
        return fields

    def _offset_ms(self) -> int:
        return int((self._settings.clock.monotonic() - self._start_s) * 1000)

    def _maybe_flush_text(self) -> None:
        """Write the indexed lines once a second (not per packet), one write at a time, and
        by a timer, not on the next packet: the lines of a session that goes quiet (an exec's
        command, the last lines of output) reach the index while it runs, so a proxy killed
        then leaves them searchable. (A line without its newline yet waits for it, or for the
        end.)"""
        text = self._text
        if self._closing or text is None or not text.pending or self._text_timer is not None:
            return
        since_s = self._settings.clock.monotonic() - self._text_flushed_s
        self._text_timer = asyncio.get_running_loop().call_later(
            max(0.0, 1.0 - since_s), self._flush_text_due
        )

    def _flush_text_due(self) -> None:
        self._text_timer = None
        if self._closing:
            return
        if self._text_flush is not None and not self._text_flush.done():
            # One write at a time: the next when this one is done (one callback, however
            # long the write takes).
            if not self._text_flush_again:
                self._text_flush_again = True
                self._text_flush.add_done_callback(self._flush_text_after)
            return
        self._text_flushed_s = self._settings.clock.monotonic()
        self._text_flush = asyncio.get_running_loop().create_task(self._flush_text(final=False))

    def _flush_text_after(self, _: asyncio.Task[None]) -> None:
        self._text_flush_again = False
        self._maybe_flush_text()

    async def _flush_text(self, final: bool) -> None:
        if self._text is None:
            return
        try:
            await self._text.flush(final=final)
        except Exception as exc:  # the index is a convenience: never the session's end
            log.warning("session %s: cannot index its text: %s", self.session_id, exc)

    def _start_text_index(self, request: SessionRequest) -> None:
        """Interactive sessions: the output lines (typed commands show in them as their echo;
        keystrokes themselves are not indexed, as passwords typed at a prompt are keystrokes).
        Exec sessions: the command. Other streams (scp, sftp, pipes) are not indexed."""
        index = self._settings.index
        if index is None or not (request.term_type or request.kind == "exec"):
            return
        self._text = SessionTextIndex(
            index,
            IndexedSession(
                session_id=self.session_id,
                user=self._target.user,
                login=self._login,
                node=self._target.hostname,
                start=self._start,
                participants=(self._target.user,),
            ),
            lines=(request.term_size[1] or 24) if request.term_type else 24,
            columns=(request.term_size[0] or 80) if request.term_type else 80,
        )
        if request.kind == "exec" and not _is_scp(request):
            self._text.line(0, "input", request.command)

    def bind_abort(self, abort: Callable[[str], None]) -> None:
        self._abort = abort

    async def started(self, request: SessionRequest) -> None:
        self._request = request
        self._interactive = bool(request.term_type)
        width, height = request.term_size[:2] if request.term_type else (80, 24)
        if self._settings.mode != "off":
            header = Header(
                width=width or 80,
                height=height or 24,
                timestamp=timestamp_of(self._start),
                session_id=self.session_id,
                cluster=self._settings.cluster,
                user=self._target.user,
                login=self._login,
                server_hostname=self._target.hostname,
                server_addr=self._target.server_addr,
                kind="ssh" if request.kind == "shell" else request.kind,
                command=request.command or request.subsystem,
                term=request.term_type,
                extra={"server_labels": dict(self._target.labels)} if self._target.labels else {},
            )
            # Strict (proxy-sync, or record_session.ssh: strict): RecordingError ends the
            # session with its message. Best effort: a recorder that failed records nothing.
            self._recorder = SessionRecorder.create(
                self._settings.streaming_dir,
                header,
                clock=self._settings.clock,
                strict=self._strict,
                # The sync modes put each second on disk; the async ones every five seconds
                # (each second still reaches the file, which outlives the process).
                fsync_interval_s=1.0 if self._settings.mode.endswith("-sync") else 5.0,
                checkpoint=self._checkpoint if self._settings.signer is not None else None,
            )
            self._start_text_index(request)
            self._maybe_flush_text()  # an exec's command, in the index within a second
            if self._settings.store.live_parts and self._recorder is not None:
                self._shipper = asyncio.get_running_loop().create_task(
                    self._ship(self._recorder.path)
                )
        self._settings.metrics.session_started(self._interactive)
        await self._settings.audit.emit(
            codes.SESSION_START,
            self._fields(
                size=f"{width}:{height}",
                session_recording=self._settings.mode,
                interactive=self._interactive,
                **({"initial_command": [request.command]} if request.command else {}),
            ),
        )

    def output(self, data: bytes, stderr: bool) -> None:
        if self._ship_error:
            raise RecordingError(self._ship_error)
        self._tx += len(data)
        if self._scp is not None:
            if not self._scp.upload and not stderr:
                self._scp.feed(data)
            if not self._scp.broken:
                return  # the scp protocol carries file bytes: the file.transfer events record them
            self._not_scp()
        if self._sftp is not None:
            # The SFTP protocol is binary: the file.transfer events are its record.
            if not stderr:
                self._sftp.from_server(data)
        elif self._recorder is not None:
            self._recorder.output(data)
            if self._text is not None and self._interactive:
                self._text.output(data, self._offset_ms())
                self._maybe_flush_text()

    def input(self, data: bytes) -> None:
        if self._ship_error:
            raise RecordingError(self._ship_error)
        self._rx += len(data)
        if self._scp is not None:
            if self._scp.upload:
                self._scp.feed(data)
            if not self._scp.broken:
                return
            self._not_scp()
        if self._sftp is not None:
            self._sftp.from_client(data)
            return
        # Without a PTY the input is a script or a file (ssh host bash < script.sh): record it
        # so an auditor sees what ran. With a PTY the echo in the output already shows it, and
        # keystrokes such as passwords typed at a prompt stay out of the recording.
        if self._recorder is not None and not self._interactive:
            self._recorder.input(data)

    def _not_scp(self) -> None:
        """The stream stopped being scp (an error line, or something else): from here on it
        is recorded as any exec's."""
        log.info("session %s: the stream is not scp from here on; recorded", self.session_id)
        self._scp = None

    def resized(self, width: int, height: int) -> None:
        if self._recorder is not None:
            self._recorder.resize(width, height)
        if self._text is not None and self._interactive and width > 0 and height > 0:
            self._text.resize(height, width)
            self._maybe_flush_text()
        self._resize_pending = f"{width}:{height}"
        since_s = self._settings.clock.monotonic() - self._resize_audited_s
        if since_s >= RESIZE_AUDIT_INTERVAL_S:
            self._audit_resize()
        elif self._resize_timer is None:
            self._resize_timer = asyncio.get_running_loop().call_later(
                RESIZE_AUDIT_INTERVAL_S - since_s, self._audit_resize
            )

    def _audit_resize(self) -> None:
        """The resize event of the latest size not audited yet, if any."""
        if self._resize_timer is not None:
            self._resize_timer.cancel()
            self._resize_timer = None
        size, self._resize_pending = self._resize_pending, None
        if size is None:
            return
        self._resize_audited_s = self._settings.clock.monotonic()
        task = asyncio.get_running_loop().create_task(
            self._settings.audit.emit(codes.RESIZE, self._fields(size=size))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _mark_end(self, result: SessionExit) -> None:
        """How the session ended, in the recording itself (at the time it ended). Never in
        the way of the session's end: a recorder that failed has said so already."""
        label = exit_label(result)
        if self._recorder is None or self._recorder.failed or not label:
            return
        try:
            self._recorder.marker(label)
        except RecordingError as exc:
            log.warning("session %s: cannot record how it ended: %s", self.session_id, exc)

    async def ended(self, result: SessionExit) -> None:
        try:
            await self._ended(result)
        finally:
            self._settings.ending.done(self)

    async def _ended(self, result: SessionExit) -> None:
        self._closing = True  # no timer flush from here on: the final one below takes it all
        self._mark_end(result)
        self._settings.metrics.session_ended(self._interactive, self._tx, self._rx)
        if self._sftp is not None:
            self._sftp.finish()
        if self._text_timer is not None:
            self._text_timer.cancel()
            self._text_timer = None
        if self._text_flush is not None:
            await asyncio.wait([self._text_flush], timeout=5)
        await self._flush_text(final=True)
        self._audit_resize()  # the last size, if the flood of them had not reached it yet
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
        stop = self._settings.clock.now()
        audit = self._settings.audit
        # Emitted together, so the audit log writes them in one transaction.
        emits = []
        if self._request.kind == "exec":
            failed = result.status != 0
            emits.append(
                audit.emit(
                    codes.EXEC,
                    self._fields(
                        command=self._request.command,
                        exitCode=str(result.status if result.status is not None else ""),
                        exitError=result.signal
                        or result.message
                        or ("" if not failed else f"exit status {result.status}"),
                    ),
                    success=not failed,
                )
            )
        elif self._request.kind == "subsystem":
            # A subsystem the target refused (or that never started) is T3001E with the reason.
            started = result.status != 255 or not result.message
            emits.append(
                audit.emit(
                    codes.SUBSYSTEM,
                    self._fields(
                        name=self._request.subsystem,
                        **({} if started else {"exitError": result.message}),
                    ),
                    success=started,
                )
            )
        emits.append(audit.emit(codes.SESSION_DATA, self._fields(tx=self._tx, rx=self._rx)))
        emits.append(
            audit.emit(
                codes.SESSION_END,
                self._fields(
                    participants=[self._target.user],
                    session_start=format_time(self._start),
                    session_stop=format_time(stop),
                    interactive=self._interactive,
                    session_recording=self._settings.mode,
                ),
            )
        )
        try:
            await asyncio.gather(*emits)
        except BaseException:
            # The audit log did not take the session's end: the recording is closed and
            # stored all the same (its file and timer would leak otherwise), and the audit
            # failure is what the caller hears about.
            try:
                await self._finish_recording()
            except Exception as exc:
                log.warning(
                    "session %s: storing its recording failed too: %s", self.session_id, exc
                )
            raise
        await self._finish_recording()

    def _checkpoint(self, chunk: int, head: bytes, offset_us: int, final: bool) -> None:
        """Sign the chain head and write it to the audit log (``session.checkpoint``): a
        recording rewritten or cut short after it no longer matches what the log holds."""
        assert self._settings.signer is not None
        point = Checkpoint(self.session_id, chunk, head, offset_us, final)
        try:
            fields = self._settings.signer.sign(point)
        except Exception as exc:
            log.warning("session %s: cannot sign a checkpoint: %s", self.session_id, exc)
            return
        task = asyncio.get_running_loop().create_task(
            self._settings.audit.emit(codes.SESSION_CHECKPOINT, self._fields(**fields))
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _ship(self, path: Path) -> None:
        """Send the recording file's new bytes to the store every SHIP_INTERVAL_S. A store that
        cannot be reached is retried; the spool keeps everything until the final upload."""
        offset = 0
        failing = False  # said once in the log until a part goes through again
        while True:
            await asyncio.sleep(SHIP_INTERVAL_S)
            while True:
                try:
                    # A spool read that fails (EIO) is a part not sent, tried again as one.
                    data = await asyncio.to_thread(_read_at, path, offset, MAX_PART_BYTES)
                    if not data:
                        break
                    await self._settings.store.append_part(self.session_id, offset, data)
                except Exception as exc:
                    self._settings.metrics.upload_failed()
                    if self._settings.mode.endswith("-sync"):
                        # The -sync modes end a session they cannot record where it belongs.
                        self._ship_error = (
                            f"cannot record session {self.session_id}: the recording store "
                            f"took no part of it: {exc}"
                        )
                        if self._abort is not None:  # now, not at its next packet
                            self._abort(self._ship_error)
                        return
                    if not failing:  # not every 2 s for each of a thousand sessions
                        failing = True
                        log.warning(
                            "session %s: cannot send its recording yet (tried again every "
                            "%gs; the spool keeps it): %s",
                            self.session_id,
                            SHIP_INTERVAL_S,
                            exc,
                        )
                    break
                if failing:
                    failing = False
                    log.info("session %s: its recording is sent again", self.session_id)
                offset += len(data)

    async def _finish_recording(self) -> None:
        if self._shipper is not None:
            self._shipper.cancel()
            try:
                await self._shipper
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # the recording is still closed and stored
                log.warning("session %s: its parts stopped: %s", self.session_id, exc)
            self._shipper = None
        if self._recorder is None:
            return
        recorder, self._recorder = self._recorder, None
        path = await recorder.aclose()
        if self._tasks:  # the final checkpoint's event
            await asyncio.wait(list(self._tasks), timeout=5)
        if recorder.failed:
            self._settings.metrics.recording_failed()
            if not await asyncio.to_thread(_holds_a_recording, path):
                # Its first chunk never reached the disk (full from the session's start):
                # no recording to store, and nothing for the spool to offer for ever.
                log.warning(
                    "session %s was not recorded: %s holds no whole first chunk (was its "
                    "disk full?); removed",
                    self.session_id,
                    path,
                )
                await asyncio.to_thread(path.unlink, True)
                return
            log.warning("session %s was not fully recorded: %s", self.session_id, path)
        if path.exists():
            await upload(
                self._settings,
                self.session_id,
                path,
                {k: v for k, v in self._fields().items() if k not in ("ei", "sid")},
            )


def _is_scp(request: SessionRequest) -> bool:
    """An exec of exactly what scp runs on the remote, without a terminal (scp asks for none)."""
    return request.kind == "exec" and not request.term_type and ScpTap.is_scp(request.command)


def exit_label(result: SessionExit) -> str:
    """The marker a recording ends with: ``exit status 3``, ``exit signal TERM (core
    dumped)``, or why the proxy ended it (the target could not be reached, a limit ran out);
    "" when the session ended without any of them (the client went)."""
    if result.message and result.status == 255:
        return result.message
    if result.signal:
        return f"exit signal {result.signal}" + (" (core dumped)" if result.core_dumped else "")
    if result.status is not None:
        return f"exit status {result.status}"
    return ""


async def audit_forward(
    settings: RecordingSettings,
    target: ForwardTarget,
    login: str,
    event: str,
    fields: dict[str, Any],
) -> None:
    """``port`` (T3003I) for each forwarded connection; ``agent.sign`` for each signature the
    target asks of the user's forwarded agent; ``x11-forward`` (T3008I, or T3008W with
    ``success`` false) for each X11 request."""
    await settings.audit.emit(
        event,
        {
            **fields,
            "user": target.user,
            "login": login,
            "server_id": settings.server_id,
            "server_hostname": target.hostname,
            "server_addr": target.server_addr,
            "server_labels": dict(target.labels),
            "addr.local": target.local_addr,
            "addr.remote": target.remote_addr,
        },
        success=bool(fields.get("success", True)),
    )


def _holds_a_recording(path: Path) -> bool:
    """Whether the file is a recording that lists (a header, at least); True if it is gone
    (nothing to remove)."""
    try:
        read_header_and_duration(path)
    except FileNotFoundError:
        return True
    except (OSError, BadParameterError):
        return False
    return True


def _read_at(path: Path, offset: int, size: int) -> bytes:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            return file.read(size)
    except FileNotFoundError:
        return b""


async def upload(
    settings: RecordingSettings,
    session_id: str,
    path: Path,
    fields: dict[str, Any] | None = None,
) -> None:
    """Move a finished recording to the store; on failure it stays in the spool, sent again
    until the store takes it (the spool uploader's), or at the next start."""
    try:
        url = await settings.store.upload(session_id, path)
    except Exception as exc:
        settings.metrics.upload_failed()
        later = (
            f"sent again every {settings.spool.retry_s:g}s until the store takes it"
            if settings.spool is not None
            else "sent at the next start"
        )
        log.warning(
            "could not store recording %s, kept at %s (%s): %s", session_id, path, later, exc
        )
        if settings.spool is not None:
            settings.spool.add(session_id, path, {**(fields or {}), "sid": session_id})
        return
    try:
        await settings.audit.emit(
            codes.SESSION_UPLOAD,
            {
                **(fields or {}),
                "sid": session_id,
                "url": url,
                "ei": 2**31 - 1,
                "time_uploaded": format_time(dt.datetime.now(dt.UTC)),
            },
        )
    except BaseException:
        # Removed from the spool only once its upload is audited (as the spool does): the
        # spool stores it again and says so; without one, the next start does.
        if settings.spool is not None:
            settings.spool.add(session_id, path, {**(fields or {}), "sid": session_id})
        raise
    await asyncio.to_thread(path.unlink, True)
