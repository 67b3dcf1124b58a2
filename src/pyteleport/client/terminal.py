"""The real-time player on a real terminal: keys from stdin in raw mode, output to stdout.

Raw input only (no echo, no line editing, no signals, so Ctrl-C arrives as a key the player
handles); output processing is left as it is, and the terminal is restored however the replay
ends. With stdin not a terminal the recording just plays.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import termios
from collections.abc import Iterator
from typing import BinaryIO

from pyteleport.client.playback import Command, Player, Recording, parse_keys


@contextlib.contextmanager
def raw_input(fd: int) -> Iterator[None]:
    saved = termios.tcgetattr(fd)
    mode = termios.tcgetattr(fd)
    mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)  # lflag
    mode[0] &= ~(termios.IXON | termios.ICRNL)  # iflag: Ctrl-S/Ctrl-Q and CR are keys too
    mode[6][termios.VMIN] = 1
    mode[6][termios.VTIME] = 0
    # The event loop that reads the keys makes the terminal non-blocking (for stdout and stderr
    # too: one open file): the shell gets it back as it was.
    blocking = os.get_blocking(fd)
    termios.tcsetattr(fd, termios.TCSANOW, mode)
    try:
        yield
    finally:
        # TCSAFLUSH: what the terminal sent meanwhile and playback did not read (its replies
        # to a recorded program's queries, ESC [ 12 ; 40 R) is dropped, not typed into the shell.
        termios.tcsetattr(fd, termios.TCSAFLUSH, saved)
        os.set_blocking(fd, blocking)


async def play_pty(
    recording: Recording,
    *,
    speed: float = 1.0,
    idle_cap_s: float | None = None,
    stdin_fd: int | None = None,
    out: BinaryIO | None = None,
    start_s: float = 0.0,
) -> None:
    """Replay ``recording`` to ``out`` (stdout) in real time, with keys when stdin is a TTY."""
    fd = sys.stdin.fileno() if stdin_fd is None else stdin_fd
    sink = out or sys.stdout.buffer

    def write(text: str) -> None:
        sink.write(text.encode("utf-8", "replace"))
        sink.flush()

    player = Player(recording, write, speed=speed, idle_cap_s=idle_cap_s, start_s=start_s)
    if not os.isatty(fd):
        await player.run(None)
        return
    loop = asyncio.get_running_loop()
    commands: asyncio.Queue[Command] = asyncio.Queue()

    def on_key() -> None:
        try:
            data = os.read(fd, 1024)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(fd)  # stdin closed: no more keys, the replay goes on
            return
        for command in parse_keys(data):
            commands.put_nowait(command)

    with raw_input(fd):
        loop.add_reader(fd, on_key)
        try:
            await player.run(commands)
        finally:
            loop.remove_reader(fd)
