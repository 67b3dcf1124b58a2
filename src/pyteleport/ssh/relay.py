"""Relay one SSH session channel between the user's client and the target, packet by packet.

``InnerSession`` is the server side the user's ssh talks to; ``TargetSession`` the client side
opened on the target. Requests (pty, env, window-change, signal, break) pass through, data flows
both ways with extended data kept apart, and EOF, exit status or signal and close arrive in the
order OpenSSH sends them (RFC 4254 §6.10: exit-status before close).

Flow control: asyncssh buffers writes without bound once a channel's window is exhausted, so
each side pauses reading on the other when its own write buffer fills (``pause_writing``) and
resumes when it drains. The SSH windows then push back all the way to the two ends. asyncssh
reports a full buffer once, when it fills, so the user's channel stays paused while either
reason holds: the target session still opening, or the target's buffer full.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncssh

from pyteleport.ssh.x11 import X11Request

log = logging.getLogger("pyteleport.ssh")


@dataclass(slots=True)
class SessionRequest:
    """What the client asked for before the session started."""

    kind: str = ""  # "shell", "exec" or "subsystem"
    command: str = ""
    subsystem: str = ""
    term_type: str = ""
    term_size: tuple[int, int, int, int] = (0, 0, 0, 0)
    term_modes: dict[int, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    x11: X11Request | None = None  # the x11-req to pass on, once allowed


@dataclass(slots=True)
class SessionExit:
    status: int | None = None
    signal: str = ""
    core_dumped: bool = False
    message: str = ""


class SessionObserver(Protocol):
    """Receives what a relayed session carries (the recorder and the audit log behind it)."""

    def bind_abort(self, abort: Callable[[str], None]) -> None:
        """Take the callable that ends the session with a message on the client's stderr (a
        recording that fails between the session's packets)."""
        ...

    async def started(self, request: SessionRequest) -> None: ...

    def output(self, data: bytes, stderr: bool) -> None: ...

    def input(self, data: bytes) -> None: ...

    def resized(self, width: int, height: int) -> None: ...

    async def ended(self, result: SessionExit) -> None: ...


class TargetOpener(Protocol):
    async def __call__(
        self, factory: Any, request: SessionRequest
    ) -> tuple[asyncssh.SSHClientChannel[bytes], TargetSession]: ...


class TargetSession(asyncssh.SSHClientSession[bytes]):
    def __init__(self, inner: InnerSession) -> None:
        self._inner = inner
        self.exit = SessionExit()

    @property
    def inner(self) -> InnerSession:
        return self._inner

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self._inner.from_target(data, datatype)

    def eof_received(self) -> bool:
        self._inner.target_eof()
        return True

    def exit_status_received(self, status: int) -> None:
        self.exit.status = status

    def exit_signal_received(self, signal: str, core_dumped: bool, msg: str, lang: str) -> None:
        self.exit.signal, self.exit.core_dumped, self.exit.message = signal, core_dumped, msg

    def pause_writing(self) -> None:
        self._inner.pause_reading()

    def resume_writing(self) -> None:
        self._inner.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.target_closed(self.exit, exc)


class InnerSession(asyncssh.SSHServerSession[bytes]):
    """The session the user's client opened on the forwarding server."""

    def __init__(
        self, open_target: TargetOpener, observe: Callable[[SessionRequest], SessionObserver]
    ) -> None:
        self._open_target = open_target
        self._observe = observe
        self._observer: SessionObserver | None = None
        self._chan: asyncssh.SSHServerChannel[bytes] | None = None
        self._target: asyncssh.SSHClientChannel[bytes] | None = None
        self._request = SessionRequest()
        self._pending: list[tuple[str, Any]] = []
        # asyncssh resumes reading after session_started, so data sent right after the exec
        # request arrives before the target session exists: keep it (and an early EOF) here.
        self._early: list[bytes] = []
        self._early_eof = False
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self.last_input = asyncio.get_running_loop().time()  # for the idle timeout
        self._on_close: list[Callable[[], object]] = []
        self._ended_by = ""  # why the proxy ended the session, if it did
        # Reading from the user's channel waits while either holds.
        self._opening = True  # the target session does not exist yet
        self._target_full = False  # the target channel's write buffer is full

    # -- requests before the session starts -----------------------------------------------------

    def connection_made(self, chan: asyncssh.SSHServerChannel[bytes]) -> None:
        self._chan = chan

    def pty_requested(
        self, term_type: str, term_size: tuple[int, int, int, int], term_modes: Any
    ) -> bool:
        self._request.term_type = term_type
        self._request.term_size = term_size
        self._request.term_modes = dict(term_modes)
        return True

    def shell_requested(self) -> bool:
        self._request.kind = "shell"
        return True

    def exec_requested(self, command: str) -> bool:
        self._request.kind, self._request.command = "exec", command
        return True

    def subsystem_requested(self, subsystem: str) -> bool:
        self._request.kind, self._request.subsystem = "subsystem", subsystem
        return True

    def session_started(self) -> None:
        assert self._chan is not None
        env = self._chan.get_environment()
        self._request.env = {str(k): str(v) for k, v in env.items()}
        # Hold the client's data until the target session exists (asyncssh resumes reading
        # once this returns; data_received pauses again).
        self._chan.pause_reading()
        self._task = asyncio.get_running_loop().create_task(self._start())

    async def _start(self) -> None:
        assert self._chan is not None
        try:
            self._observer = self._observe(self._request)
            self._observer.bind_abort(self.abort)
            await self._observer.started(self._request)
            chan, _session = await self._open_target(lambda: TargetSession(self), self._request)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                await self._end(SessionExit(message="the client closed the session"))
                raise
            # Not this task's cancellation but another's, passed on by something it awaited
            # (a dial it shared): a failed start like any other, which ends its channel.
            await self._start_failed(str(exc) or "the connection to the target was cancelled")
            return
        except Exception as exc:
            await self._start_failed(str(exc) or type(exc).__name__)
            return
        if self._closed:
            chan.close()
            return
        self._target = chan
        for what, arg in self._pending:
            self._apply(what, arg)
        self._pending.clear()
        early, self._early = self._early, []
        for data in early:
            self.data_received(data, None)
        if self._early_eof:
            chan.write_eof()
        self._opening = False
        self._update_reading()  # the early data may have filled the target's buffer already

    async def _start_failed(self, message: str) -> None:
        """The target session could not be opened: say why on stderr, exit 255, end it."""
        assert self._chan is not None
        log.warning("session could not start: %s", message)
        if not self._closed:
            # The client may have closed meanwhile: its close waits in asyncssh behind the
            # data held while the target opened, so the channel is not marked closed yet.
            with contextlib.suppress(OSError):
                self._chan.write_stderr(f"{message}\r\n".encode())
                self._chan.exit(255)
        self._opening = False
        self._update_reading()  # lets asyncssh reach that close
        await self._end(SessionExit(status=255, message=message))

    # -- during the session ---------------------------------------------------------------------

    def _apply(self, what: str, arg: Any) -> None:
        assert self._target is not None
        if what == "size":
            self._target.change_terminal_size(*arg)
        elif what == "signal":
            self._target.send_signal(arg)
        elif what == "break":
            self._target.send_break(arg)

    def _request_or_queue(self, what: str, arg: Any) -> None:
        if self._target is None:
            self._pending.append((what, arg))
        else:
            self._apply(what, arg)

    def terminal_size_changed(self, width: int, height: int, pixwidth: int, pixheight: int) -> None:
        self._request.term_size = (width, height, pixwidth, pixheight)
        if self._observer is not None:
            self._observer.resized(width, height)
        self._request_or_queue("size", (width, height, pixwidth, pixheight))

    def signal_received(self, signal: str) -> None:
        self._request_or_queue("signal", signal)

    def break_received(self, msec: int) -> bool:
        self._request_or_queue("break", msec)
        return True

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def channel(self) -> asyncssh.SSHServerChannel[bytes] | None:
        return self._chan

    @property
    def request(self) -> SessionRequest:
        return self._request

    def notice(self, message: str) -> None:
        """One line on the user's stderr; the session goes on."""
        if self._chan is not None and not self._closed:
            self._chan.write_stderr(f"{message}\r\n".encode())

    def on_close(self, callback: Callable[[], object]) -> None:
        self._on_close.append(callback)

    def data_received(self, data: bytes, datatype: int | None) -> None:
        self.last_input = asyncio.get_running_loop().time()
        if self._target is None:
            if not self._opening:
                return  # the target never opened: nothing to relay to, the channel is closing
            # asyncssh resumes reading right after session_started: pause again, so what
            # waits here is bounded by the channel's window, not by how long the target takes.
            self._early.append(data)
            self._update_reading()
        else:
            try:
                if self._observer is not None:
                    self._observer.input(data)
            except Exception as exc:
                self.abort(str(exc))
                return
            self._target.write(data)

    def eof_received(self) -> bool:
        if self._target is not None:
            self._target.write_eof()
        else:
            self._early_eof = True
        return True  # keep the channel half open: the output still has to come back

    def pause_writing(self) -> None:
        if self._target is not None:
            self._target.pause_reading()

    def resume_writing(self) -> None:
        if self._target is not None:
            self._target.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for callback in self._on_close:
            callback()
        self._on_close.clear()
        if self._target is not None:
            self._target.close()
        elif self._task is not None and not self._task.done() and not self._ended:
            # Still opening the target: stop that. Once _end runs (the session record being
            # written and uploaded) it must finish.
            self._task.cancel()
        if self._target is None and not self._ended and self._observer is not None:
            # The client left before the target session existed: close the record anyway.
            self._task = asyncio.get_running_loop().create_task(
                self._end(SessionExit(message="the client disconnected"))
            )

    # -- called by the target side --------------------------------------------------------------

    def from_target(self, data: bytes, datatype: int | None) -> None:
        try:
            if self._observer is not None:
                self._observer.output(data, datatype == asyncssh.EXTENDED_DATA_STDERR)
        except Exception as exc:
            self.abort(str(exc))
            return
        if self._chan is not None and not self._closed:
            self._chan.write(data, datatype)

    def target_eof(self) -> None:
        if self._chan is not None and not self._closed:
            self._chan.write_eof()

    def pause_reading(self) -> None:
        self._target_full = True
        self._update_reading()

    def resume_reading(self) -> None:
        self._target_full = False
        self._update_reading()

    def _update_reading(self) -> None:
        if self._chan is None or self._closed:
            return
        if self._opening or self._target_full:
            self._chan.pause_reading()
        else:
            self._chan.resume_reading()

    def abort(self, message: str) -> None:
        """End the session with one line on the client's stderr (a recording that failed)."""
        log.warning("ending session: %s", message)
        self._ended_by = message
        if self._chan is not None and not self._closed:
            self._chan.write_stderr(f"\r\n{message}\r\n".encode())
            self._chan.exit(255)
        self._closed = True
        if self._target is not None:
            self._target.close()

    def target_closed(self, result: SessionExit, exc: Exception | None) -> None:
        chan = self._chan
        if chan is not None and not self._closed:
            if result.signal:
                chan.exit_with_signal(result.signal, result.core_dumped, result.message)
            elif result.status is not None:
                chan.exit(result.status)
            else:
                chan.close()
        if self._ended_by:
            # The proxy ended it (a failed recording, a lock, a limit): the audit says so.
            result.status, result.message = 255, f"ended by the proxy: {self._ended_by}"
        elif result.status is None and not result.signal:
            if exc is not None:
                result.message = str(exc)
            elif self._closed:
                result.message = "the client disconnected"
        self._task = asyncio.get_running_loop().create_task(self._end(result))

    async def _end(self, result: SessionExit) -> None:
        if self._ended or self._observer is None:
            return
        self._ended = True
        try:
            await self._observer.ended(result)
        except Exception:
            log.exception("could not finish the session record")
