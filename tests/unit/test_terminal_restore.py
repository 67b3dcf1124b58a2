"""After playback the terminal goes back to the shell as it was, without what it answered the
recording meanwhile: a recorded program's queries (cursor position, colours) make a real
terminal reply with bytes on its input, which the shell would take for typed text."""

from __future__ import annotations

import os
import pty
import select
import termios

from pyteleport.client.terminal import raw_input


def test_replies_the_terminal_sent_during_playback_do_not_reach_the_shell() -> None:
    master, slave = pty.openpty()
    try:
        before = termios.tcgetattr(slave)
        with raw_input(slave):
            os.write(master, b"\x1b[12;40R")  # the reply to a recorded ESC [ 6 n
            # The pty hands the bytes to the slave's input queue a moment later: the reply has
            # arrived (during playback) once the slave, in raw mode, can read it.
            readable, _, _ = select.select([slave], [], [], 10)
            assert readable == [slave]
        assert termios.tcgetattr(slave) == before
        # The shell's line editor reads a key at a time (no line discipline), as readline does.
        mode = termios.tcgetattr(slave)
        mode[3] &= ~termios.ICANON
        termios.tcsetattr(slave, termios.TCSANOW, mode)
        os.set_blocking(slave, False)
        try:
            left = os.read(slave, 100)
        except BlockingIOError:
            left = b""
        assert left == b""
    finally:
        os.close(master)
        os.close(slave)
