"""One shell session typed at a person's pace through the proxy, for what its recording costs:
the real ``ssh -tt`` on a PTY, everyday commands typed one key at a time, their output, then
``exit``. Its recording is weighed against its own asciicast export (what the proxy stored
before the chunked format, and what ``tsh recordings export`` writes)."""

from __future__ import annotations

import fcntl
import os
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.lab import LabError
from bench.route import Route

COMMANDS = (
    "ls -la /usr/bin | head -50",
    "cat /etc/services | head -80",
    "ps aux | head -30",
    "df -h",
    "seq 1 300 | paste - - - - - -",
    "uname -a",
)
KEY_INTERVAL_S = 0.1  # a quick typist: ten keys a second
QUIET_S = 0.5  # no output for this long: the shell waits at its prompt
PROMPT_TIMEOUT_S = 20.0
UPLOAD_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class TypedSession:
    stored_bytes: int
    asciicast_bytes: int
    keys: int
    seconds: float


class _Terminal:
    """The client's side of the PTY: everything ssh printed, read by a thread."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._data = bytearray()
        self._last_s = time.monotonic()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except OSError:  # EIO: ssh closed the terminal
                return
            if not chunk:
                return
            with self._lock:
                self._data += chunk
                self._last_s = time.monotonic()

    def snapshot(self) -> tuple[bytes, float]:
        with self._lock:
            return bytes(self._data), self._last_s

    def wait(self, done: Callable[[bytes, float], bool], what: str) -> bytes:
        deadline = time.monotonic() + PROMPT_TIMEOUT_S
        while time.monotonic() < deadline:
            data, last_s = self.snapshot()
            if done(data, last_s):
                return data
            time.sleep(0.02)
        raise LabError(f"typed session: no {what} within {PROMPT_TIMEOUT_S:.0f} s")


def measure(route: Route, records_dir: Path) -> TypedSession:
    """Type :data:`COMMANDS` into a login shell through ``route`` (the proxy) and weigh the
    recording it leaves in ``records_dir``."""
    before = set(records_dir.glob("*.rec"))
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    started = time.monotonic()
    proc = subprocess.Popen(
        route.argv("", tty=True),
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=route.env(),
        start_new_session=True,
    )
    os.close(slave)
    terminal = _Terminal(master)
    keys = 0
    try:
        data = terminal.wait(
            lambda d, last: bool(d) and time.monotonic() - last > QUIET_S, "first prompt"
        )
        prompt = data.rsplit(b"\n", 1)[-1]
        if not prompt.strip():
            raise LabError(f"typed session: no prompt, the shell printed {data[-200:]!r}")
        for command in (*COMMANDS, "exit"):
            seen = terminal.snapshot()[0].count(prompt)
            for key in command.encode() + b"\r":
                os.write(master, bytes([key]))
                keys += 1
                time.sleep(KEY_INTERVAL_S)
            if command != "exit":
                terminal.wait(_prompt_after(prompt, seen), f"prompt after {command!r}")
        code = proc.wait(timeout=PROMPT_TIMEOUT_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    seconds = time.monotonic() - started
    if code != 0:
        tail = terminal.snapshot()[0][-300:]
        raise LabError(f"typed session: ssh exited with status {code}: {tail!r}")
    path = _new_recording(records_dir, before)
    sizes = recording_sizes(path.read_bytes())
    path.unlink()  # weighed: the interactive sessions' figure must not count it
    return TypedSession(*sizes, keys=keys, seconds=seconds)


def _prompt_after(prompt: bytes, seen: int) -> Callable[[bytes, float], bool]:
    """Whether the shell printed its prompt again: the command ran."""
    return lambda data, _: data.count(prompt) > seen


def _new_recording(records_dir: Path, before: set[Path]) -> Path:
    deadline = time.monotonic() + UPLOAD_TIMEOUT_S
    while time.monotonic() < deadline:
        new = set(records_dir.glob("*.rec")) - before
        if len(new) == 1:
            return new.pop()
        if len(new) > 1:
            raise LabError(f"typed session: {len(new)} new recordings, expected one")
        time.sleep(0.05)
    raise LabError(f"typed session: its recording was not stored within {UPLOAD_TIMEOUT_S:.0f} s")


def recording_sizes(data: bytes) -> tuple[int, int]:
    """(bytes stored, bytes of its asciicast export) of the typed session's recording, which
    must be whole and hold the last command's output: a recording cut short would weigh
    little for the wrong reason."""
    from pyteleport.client.export import export_asciicast
    from pyteleport.client.playback import load_recording
    from pyteleport.events import chunks

    report = chunks.read_chain(data)
    if report.problem or not report.chunks or not report.chunks[-1].last:
        raise LabError(f"typed session: its recording is not whole: {report.problem or 'no end'}")
    lines = list(export_asciicast(load_recording(data)))
    if not any(os.uname().release in line for line in lines):
        raise LabError("typed session: its recording lacks the output of uname -a")
    return len(data), sum(len(line.encode()) for line in lines)
