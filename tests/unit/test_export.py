"""recordings export: asciicast that decodes as asciicast, a text transcript of the screen, and
JSON lines."""

from __future__ import annotations

import json

import pyte
import pytest

from pyteleport.client.export import FEED_CHARS, ScrollbackScreen, export
from pyteleport.client.playback import Recording
from pyteleport.events import asciicast
from pyteleport.events.asciicast import Frame, Header

HEADER = Header(width=20, height=3, timestamp=1767225600, session_id="s1", user="joe")


def recording(*frames: Frame) -> Recording:
    return Recording(header=HEADER, frames=frames)


def test_asciicast_export_reads_back_as_the_same_frames() -> None:
    rec = recording(Frame(0.0, "o", "$ ls\r\n"), Frame(0.5, "i", "x"), Frame(1.25, "r", "30x5"))
    text = "".join(export(rec, "asciicast"))
    header, frames = asciicast.decode_bytes(text.encode())
    assert header == HEADER and list(frames) == list(rec.frames)


def test_text_export_is_the_screen_not_the_escape_codes() -> None:
    rec = recording(
        Frame(0.0, "o", "\x1b[31mred\x1b[0m text\r\n"),
        Frame(0.1, "o", "overwritten\rOVER\r\n"),
        Frame(0.2, "o", "one\r\ntwo\r\nthree\r\nfour\r\n"),  # scrolls past a 3-line screen
    )
    lines = "".join(export(rec, "text")).splitlines()
    assert lines == ["red text", "OVERwritten", "one", "two", "three", "four"]


def test_text_export_keeps_a_saved_cursor_after_it_is_restored() -> None:
    # A program saves the cursor once (ESC 7) and goes back to it more than once (ESC 8), as a
    # status line redrawn in place does: each redraw lands where the cursor was saved, as a
    # terminal shows it, not at the top left.
    rec = recording(
        Frame(0.0, "o", "$ run\r\nstatus: \x1b7"),
        Frame(0.1, "o", "\x1b810%"),
        Frame(0.2, "o", "\x1b899%"),
    )
    assert "".join(export(rec, "text")).splitlines() == ["$ run", "status: 99%"]


def test_json_export_is_one_event_a_line() -> None:
    rec = recording(Frame(0.0, "o", "hi"))
    events = [json.loads(line) for line in "".join(export(rec, "json")).splitlines()]
    assert [e["event"] for e in events] == ["session.start", "print", "session.end"]


def numbered_lines(count: int) -> str:
    return "".join(f"{n}\n" for n in range(1, count + 1))


def test_text_export_keeps_every_line_that_scrolled_off_in_bounded_pieces() -> None:
    # One frame far longer than any history: every line comes out, in order, and the export
    # is written a piece at a time, no piece holding more lines than FEED_CHARS characters make.
    count = 250_000
    parts = list(export(recording(Frame(0.0, "o", numbered_lines(count))), "text"))
    assert "".join(parts).splitlines() == [str(n) for n in range(1, count + 1)]
    assert len(parts) > count // FEED_CHARS
    assert max(part.count("\n") for part in parts) <= FEED_CHARS


def test_text_export_holds_no_history_itself() -> None:
    screen = ScrollbackScreen(20, 3)
    pyte.Stream(screen).feed("\r\n".join(str(n) for n in range(1, 11)))
    assert not isinstance(screen, pyte.HistoryScreen)
    assert screen.take_scrolled() == [str(n) for n in range(1, 8)]
    assert screen.scrolled == []
    assert [row.rstrip() for row in screen.display] == ["8", "9", "10"]


def test_text_export_keeps_what_scrolled_off_before_the_screen_was_cleared() -> None:
    # clear(1) sends ESC [3J, which erases a terminal's scrollback (and pyte's history): the
    # lines had been seen, and the transcript keeps them.
    rec = recording(
        Frame(0.0, "o", "one\r\ntwo\r\nthree\r\nfour\r\n$ clear\r\n"),
        Frame(0.1, "o", "\x1b[H\x1b[2J\x1b[3J$ "),
    )
    assert "".join(export(rec, "text")).splitlines() == ["one", "two", "three", "$"]


def test_text_export_keeps_the_rows_cut_off_when_the_window_shrinks() -> None:
    # pyte drops the top rows of a screen that loses lines; a terminal keeps them above.
    rec = recording(Frame(0.0, "o", "a\r\nb\r\nc"), Frame(0.1, "r", "20x1"))
    assert "".join(export(rec, "text")).splitlines() == ["a", "b", "c"]


@pytest.mark.parametrize("lines", [1, 5, 20, 23])
def test_a_shrunk_window_keeps_every_line_once_and_in_order(lines: int) -> None:
    # A full 24-line screen whose last row was never written, then fewer lines, then more
    # output: each line exactly once, in order (pyte's own resize showed a row twice).
    header = Header(width=80, height=24, timestamp=1767225600, session_id="s1")
    before = [f"line{n}" for n in range(100)] + ["", "gap"]
    after = [f"after{n}" for n in range(30)]
    rec = Recording(
        header=header,
        frames=(
            Frame(0.0, "o", "".join(f"{line}\n" for line in before)),
            Frame(1.0, "r", f"80x{lines}"),
            Frame(2.0, "o", "".join(f"{line}\n" for line in after)),
        ),
    )
    assert "".join(export(rec, "text")).splitlines() == before + after


def test_text_export_of_a_full_screen_program_is_what_it_drew() -> None:
    # vim-like: the alternate screen, a scrolling region above a status line, a scroll within
    # it (the region's top line leaves, as a terminal's scrollback would have it), then quit.
    rec = recording(
        Frame(0.0, "o", "$ vim\r\n\x1b[?1049h\x1b[H\x1b[2J\x1b[1;2r"),
        Frame(0.1, "o", "line 1\r\nline 2\x1b[3;1H-- INSERT --\x1b[2;1H\n\rline 3"),
        Frame(0.2, "o", "\x1b[r\x1b[H\x1b[2J\x1b[?1049l$ "),
    )
    lines = "".join(export(rec, "text")).splitlines()
    # vim drew on a screen of its own: its clear did not erase "$ vim" from the first one.
    assert lines == ["$ vim", "line 1", "$"]


def test_text_export_keeps_the_shell_around_a_full_screen_program_in_order() -> None:
    # Commands still on the screen (none scrolled off) when less starts: a person saw them,
    # then what less showed last, then the shell again below its command.
    rec = recording(
        Frame(0.0, "o", "$ id\r\nroot\r\n$ less f\r\n"),
        Frame(0.1, "o", "\x1b[?1049h\x1b[H\x1b[2Jsecret line\x1b[3;1H:"),
        Frame(0.2, "o", "\x1b[?3h\x1b[2J\x1b[Hlast page\x1b[?1049l\r$ ls\r\nfile\r\n$ "),
    )
    assert "".join(export(rec, "text")).splitlines() == [
        "$ id",
        "root",
        "$ less f",
        "last page",
        "$ ls",
        "file",
        "$",
    ]


def test_text_export_takes_any_erase_and_moves_rows_never_written() -> None:
    # Erases pyte does not know are ignored, as a terminal does; lines inserted and deleted
    # where the rows around them were never written leave no row shown twice.
    rec = recording(
        Frame(0.0, "o", "kept\x1b[3K\x1b[9J\x1b[5K\r\n"),
        Frame(0.1, "o", "\x1b[1;1Htop\x1b[1;1H\x1b[M\x1b[2;1Hmid\x1b[1;1H\x1b[L"),
    )
    assert "".join(export(rec, "text")).splitlines() == ["", "", "mid"]


def test_text_export_takes_the_private_sequences_vim_writes() -> None:
    # Found in review: vim 9 writes "\x1b[?4m" (a query of the keyboard's modifyOtherKeys)
    # when it starts, and a program may ask for the cursor's place with "\x1b[?6n": pyte hands
    # them to handlers that take no `private` argument, and the export of any session that ran
    # vim fails with a TypeError. A terminal ignores them (or answers the query), and a
    # sequence with more parameters than its function reads.
    rec = recording(Frame(0.0, "o", "$ vim\r\n\x1b[?4m\x1b[?6n\x1b[1;2;3Ashown\r\n"))
    assert "".join(export(rec, "text")).splitlines() == ["$ vim", "shown"]
