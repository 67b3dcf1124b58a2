"""The screen the search index reads its lines from: what a terminal finally showed, taken once
each row is done with (the cursor left it, it left the screen, or the session ended)."""

from __future__ import annotations

import pyte
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyteleport.client.export import ScrollbackScreen
from pyteleport.events.screentext import MAX_LINE, MAX_ROWS, TextScreen


def shown(packets: list[bytes], lines: int = 24, columns: int = 80) -> list[str]:
    """Every line taken from the screen, in the order taken, the end of the session included."""
    screen = TextScreen(lines, columns)
    out = [line for packet in packets for _, line in screen.feed(packet, 0)]
    return out + [line for _, line in screen.settle(final=True)]


# What bash 5.2's readline wrote for a command edited before Enter (captured from a pty).
INSERTED = (
    b"bash-5.2# echo helo world\x08\x08\x08\x08\x08\x08l world\x08\x08\x08\x08\x08\x08"
    b"\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\x1b[C\r\n\x1b[?2004l\rhelol world\r\n"
)
PREFIXED = (  # `ls /nonexist`, then Ctrl-A and `sudo ` before it
    b"\x1b[?2004hbash-5.2# ls /nonexist\r" + b"\x1b[C" * 10 + b"\x1b[5@sudo \r\n\x1b[?2004l\r"
    b"bash: sudo: command not found\r\n"
)
REVERSE_SEARCH = (  # Ctrl-R `first`, Enter
    b"bash-5.2# \r(reverse-i-search)`': \x08\x08\x08f': echo \x1b[7mf\x1b[27mirst command"
    + b"\x08" * 21
    + b"\x1b[1@i': echo \x1b[7mfi\x1b[27m"
    + b"\x08" * 10
    + b"\x1b[1@r': echo \x1b[7mfir\x1b[27m"
    + b"\x08" * 11
    + b"\x1b[1@s': echo \x1b[7mfirs\x1b[27m"
    + b"\x08" * 12
    + b"\x1b[1@t': echo \x1b[7mfirst\x1b[27m\x08\x08\x08\x08\x08\r\x1b[17Pbash-5.2# echo first"
    + b"\x08" * 5
    + b"\r\nfirst command\r\n"
)
# vim inserting `NOPASSWD: ` in the middle of a row it drew, a character at a time: it moves
# the cursor to the row and redraws the rest of it after each key.
VIM_INSERT = (
    b"\x1b[?1049h\x1b[H\x1b[2J%admin ALL=(ALL) ALL\r\nroot ALL=(ALL:ALL) ALL\x1b[24;1H-- INSERT --"
    + b"".join(
        b"\x1b[2;%dH%s" % (6 + i, c.encode()) + b"ALL=(ALL:ALL) ALL"
        for i, c in enumerate("NOPASSWD: ")
    )
    + b"\x1b[24;1H\x1b[K:wq\r\x1b[?1049l"
)


@pytest.mark.parametrize(
    ("packets", "lines"),
    [
        ([b"\x1b[1;32muser@host\x1b[0m:~$ ls\r\n"], ["user@host:~$ ls"]),
        ([b"progress 10%\rprogress 100%\r\n"], ["progress 100%"]),
        ([b"typo\b\bed\r\n"], ["tyed"]),  # a backspace moves back; what follows overwrites
        ([b"\x1b[3", b"1mred\x1b[0m\r\n"], ["red"]),  # an escape split across packets
        ([b"\x1b[", b"2", b"J", b"ok\r\n"], ["ok"]),
        ([b"caf\xc3", b"\xa9\r\n"], ["café"]),
        ([b"\x1b]0;title\x07prompt$ \r\n", b"\r\n"], ["prompt$"]),
        # A window title cut across packets is no text, however long.
        ([b"\x1b]0;" + b"t" * 200, b"itle\x07$ ls\r\n"], ["$ ls"]),
        ([b"10%\x1b[1G100%\r\n"], ["100%"]),
        # Clearing below the cursor (a prompt redrawn) does not move it: the line goes on.
        ([b"user@host % \x1b[Jls -l\r\n"], ["user@host % ls -l"]),
        # Runs of white space are one space: columns and tabs read as words apart.
        ([b"  PID  USER\tCOMMAND\r\n"], ["PID USER COMMAND"]),
        ([b"second\x1b[5Crow\r\n"], ["second row"]),
        # A line longer than MAX_LINE goes on in the next, as the terminal wraps it; at a
        # space near its end if there is one, so no word is cut in two.
        ([b"x" * 1500 + b" needle\r\n"], ["x" * 1000, "x" * 500 + " needle"]),
        ([b"x" * 990 + b" needle in the wrap\r\n"], ["x" * 990 + " needle in", "the wrap"]),
        # The line editor's edits: the command as it was run, not as its keys came.
        ([INSERTED], ["bash-5.2# echo helol world", "helol world"]),
        ([PREFIXED], ["bash-5.2# sudo ls /nonexist", "bash: sudo: command not found"]),
        ([REVERSE_SEARCH], ["bash-5.2# echo first command", "first command"]),
        # A full-screen program: each row is a line; its screen's rows are taken when it ends.
        (
            [b"\x1b[?1049h\x1b[H\x1b[2Jfirst row\x1b[2;1Hsecond\x1b[5Crow", b"\x1b[24;1H:wq\r\n"],
            ["first row", "second row", ":wq"],
        ),
        # ... and back on the first screen, the prompt goes on below the command.
        (
            [b"$ vim\r\n\x1b[?1049h\x1b[Hdrawn\x1b[?1049l$ ls\r\n"],
            ["$ vim", "drawn", "$ ls"],
        ),
        # Rows deleted, inserted and scrolled within a region are taken as they go.
        ([b"\x1b[2;4r\x1b[2;1Hone\x1b[3;1Htwo\x1b[2;1H\x1b[M\x1b[Lfour"], ["one", "four", "two"]),
        ([b"top\x1b[2;3r\x1b[2;1Ha\r\nb\r\nc"], ["a", "top", "b", "c"]),
        ([b"a\x1b[5;1Hb\x1bM\x1bMc"], ["a", "c", "b"]),
        ([b"saved\x1b7\x1b[5;1Hmoved\x1b8 here"], ["saved here", "moved"]),
        ([b"abcdef\x1b[3G\x1b[2P\x1b[1X!"], ["ab!f"]),
        ([b"abc\x1b[4h\x1b[1GX\x1b[4lY"], ["XYbc"]),
    ],
)
def test_the_lines_are_what_the_screen_showed(packets: list[bytes], lines: list[str]) -> None:
    assert shown(packets) == lines


def test_vim_typing_into_the_middle_of_a_row_reads_as_the_row() -> None:
    lines = shown([VIM_INSERT])
    assert "root NOPASSWD: ALL=(ALL:ALL) ALL" in lines
    assert not [line for line in lines if line.startswith(("NALL", "OALL", "PALL"))]


def test_a_row_is_taken_once_the_cursor_leaves_it_and_not_again_unchanged() -> None:
    screen = TextScreen()
    assert screen.feed(b"$ echo hel", 100) == []
    assert not screen.unsettled
    assert screen.settle() == []  # still being typed: not a prefix
    screen.feed(b"lo\r\n", 200)
    assert screen.unsettled
    assert screen.settle() == [(200, "$ echo hello")]
    screen.feed(b"hello\r\n$ ", 300)
    assert screen.settle() == [(300, "hello")]
    screen.feed(b"\x1b[1;1H$ echo hello", 400)  # redrawn the same: not taken again
    screen.feed(b"\x1b[3;1H", 400)
    assert screen.settle() == []
    assert screen.settle(final=True) == [(300, "$")]


def test_rows_scrolled_off_are_taken_at_once_with_the_time_they_were_written() -> None:
    screen = TextScreen(3)
    out = screen.feed(b"one\r\ntwo\r\n", 10) + screen.feed(b"three\r\nfour\r\n", 20)
    assert out == [(10, "one"), (10, "two")]
    assert screen.settle() == [(20, "three"), (20, "four")]


def test_a_resize_takes_the_rows_it_cuts_and_the_program_draws_on() -> None:
    screen = TextScreen(4)
    screen.feed(b"a\r\nb\r\nc\r\nd", 5)
    assert screen.resize(2) == [(5, "a"), (5, "b")]
    screen.feed(b"\x1b[2;1He", 6)  # the last row of two, where d was
    assert screen.settle(final=True) == [(5, "c"), (6, "e")]
    screen = TextScreen(2)
    assert screen.resize(5) == []
    screen.feed(b"\x1b[5;1Hlow", 7)
    assert screen.settle(final=True) == [(7, "low")]


@pytest.mark.parametrize(
    "hostile",
    [
        b"\x1b[99999999999999999999;99999999999999999999H\x1b[99999999999C\x1b[99999999@x",
        b"\x1b[" + b"9" * 5000 + b"A",  # more digits than int() takes
        b"\x1b[" + b"1;" * 3000 + b"H",
        b"\x1b[?1049h" * 1000 + b"\x1b[?1049l" * 1000,
        b"\x1b[0;0r\x1b[5;2r\x1b[99;1r\x1b[9999L\x1b[9999M\x1b[9999S\x1b[9999T",
        b"\x1b" * 10_000,
        b"\x1b]0;" + b"x" * 100_000,
        b"\xff\xfe" * 1000 + b"\x00\x07\x0e\x0f\x7f" * 100,
    ],
)
def test_hostile_output_is_bounded_and_never_raises(hostile: bytes) -> None:
    screen = TextScreen(MAX_ROWS * 4)
    lines = screen.feed(hostile, 0) + screen.feed(b"\r\nafter\r\n", 1)
    lines += screen.settle(final=True)
    assert all(len(line) <= MAX_LINE for _, line in lines)
    assert lines[-1] == (1, "after")


# Random output drawn with the sequences the screen knows, compared row by row with pyte's
# rendering of the same bytes on a screen as wide (the text export's screen, which mends
# pyte's moves of rows never written); a narrow one makes the text wrap often.
_TEXT = st.text(alphabet="abcXYZ 01", min_size=1, max_size=12)
_SEQUENCES = st.one_of(
    _TEXT.map(str.encode),
    st.sampled_from([b"\r", b"\n", b"\b", b"\t", b"\r\n", b"\x1b7", b"\x1b8", b"\x1bM"]),
    st.builds(
        lambda final, n: b"\x1b[%d%s" % (n, final.encode()),
        st.sampled_from(list("ABCDEFGd@PXLM")),
        st.integers(0, 30),
    ),
    st.builds(
        lambda n, final: b"\x1b[%d%s" % (n, final), st.integers(0, 2), st.sampled_from([b"J", b"K"])
    ),
    st.builds(lambda y, x: b"\x1b[%d;%dH" % (y, x), st.integers(0, 30), st.integers(0, 40)),
    st.sampled_from([b"\x1b[4h", b"\x1b[4l", b"\x1b[1;31m", b"\x1b[0m"]),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_SEQUENCES, max_size=40), st.integers(1, 7), st.sampled_from([16, 80]))
@example([b"0", b"\x1b7", b"\x1b8", b"\x1b8", b"0"], 1, 16)  # a saved cursor restored twice
def test_the_screen_agrees_with_pyte(sequences: list[bytes], cut: int, columns: int) -> None:
    data = b"".join(sequences)
    reference = ScrollbackScreen(columns, 12)
    pyte.ByteStream(reference).feed(data)
    screen = TextScreen(12, columns)
    for start in range(0, len(data), cut):  # in packets cut anywhere, escapes too
        screen.feed(data[start : start + cut], 0)
    assert screen.lines() == [" ".join(row.split()) for row in reference.display]


# Found in review: what bash's readline writes for a command wider than the terminal (bash 5.2,
# PS1='$ ', a 40-column terminal; captured from a pty). Readline relies on the terminal wrapping
# at its width: typing past the last column it writes " \r" to make the wrap happen (the space
# lands on the next row, the \r goes back to its start), and it reaches the command's first row
# again with \x1b[A. A screen that does not wrap at the terminal's width puts the rest of the
# command over its start, and moves up into the row above the command.
WIDE_TYPED = (  # typed a key at a time, then Enter
    b"\x1b[?2004h$ echo the quick brown fox jumps over th \re lazy dog\r\n\x1b[?2004l\r"
    b"the quick brown fox jumps over the lazy dog\r\n\x1b[?2004h$ "
)
WIDE_PREFIXED = (  # typed, then Ctrl-A and `sudo ` before it, then Enter
    b"\x1b[?2004h$ echo the quick brown fox jumps over th \re lazy dog\x1b[A\r\x1b[C\x1b[C"
    b"secho the quick brown fox jumps over th\x1b[1@e\x1b[A\x1b[C"
    b"uecho the quick brown fox jumps over t\x1b[1@h\x1b[A\x1b[C\x1b[C"
    b"decho the quick brown fox jumps over \x1b[1@t\x1b[A\x1b[C\x1b[C\x1b[C"
    b"oecho the quick brown fox jumps over\x1b[1@ \x1b[A\x1b[C\x1b[C\x1b[C\x1b[C"
    b" echo the quick brown fox jumps ove\x1b[1@r\x1b[A" + b"\x1b[C" * 5 + b"\r\n\r\r\n"
    b"\x1b[?2004l\rbash: sudo: command not found\r\n\x1b[?2004h$ "
)
WIDE_ERASED = (  # typed, then 12 backspaces (back over the wrap) and `cat`, then Enter
    b"\x1b[?2004h$ echo the quick brown fox jumps over th \re lazy dog"
    + b"\x08\x1b[K" * 9
    + b"\r\x1b[K\x1b[A"
    + b"\x1b[C" * 39
    + b"\x1b[K\r\n\r\x1b[K\x1b[A"
    + b"\x1b[C" * 39
    + b"\x08\x1b[Kca \rt\r\n\x1b[?2004l\rthe quick brown fox jumps over cat\r\n\x1b[?2004h$ "
)


@pytest.mark.parametrize(
    ("packet", "command"),
    [
        (WIDE_TYPED, "$ echo the quick brown fox jumps over the lazy dog"),
        (WIDE_PREFIXED, "$ sudo echo the quick brown fox jumps over the lazy dog"),
        (WIDE_ERASED, "$ echo the quick brown fox jumps over cat"),
    ],
    ids=["typed", "ctrl-a-sudo", "backspace-over-the-wrap"],
)
def test_a_command_wider_than_the_terminal_reads_as_it_was_run(packet: bytes, command: str) -> None:
    # A search for the command finds nothing: the index holds "e lazy dog quick brown fox
    # jumps over th", "e secho the quick ... uecho the quick ..." and "t ca".
    assert command in shown([packet], columns=40)


def test_a_long_command_recalled_from_history_is_found_and_rows_above_stay_as_shown() -> None:
    # bash 5.2, 40 columns (captured): `echo one`, the long command, then Up, Up, Down and
    # Enter: the long command run again from history. Each packet a second apart, settled.
    packets = [
        b"\x1b[?2004h$ echo one\r\n\x1b[?2004l\rone\r\n\x1b[?2004h$ ",
        b"echo the quick brown fox jumps over the lazy dog\r\n\x1b[?2004l\r"
        b"the quick brown fox jumps over the lazy dog\r\n\x1b[?2004h$ ",
        b"echo the quick brown fox jumps over the lazy dog",  # Up
        b"\x1b[A\x08\x08\x08one\x1b[K\r\n",  # Up: `echo one`
        b"\r\x1b[K\x1b[A" + b"\x1b[C" * 10,  # Down: the long command again
        b"\x08\x08\x08the quick brown fox jumps over the lazy dog",
        b"\r\n\x1b[?2004l\rthe quick brown fox jumps over the lazy dog\r\n\x1b[?2004h$ ",
    ]
    screen = TextScreen(24, 40)
    taken: list[tuple[int, str]] = []
    for n, packet in enumerate(packets):
        taken += screen.feed(packet, n * 1000)
        taken += screen.settle()
    lines = [line for _, line in taken + screen.settle(final=True)]
    # Now: the second run is not found (its row was erased by the \r\x1b[K meant for the
    # command's second row), and the output row above it is rewritten into lines no screen
    # showed: "the quick brown fox jumps over the lazy dog one", "the quithe quick brown ...".
    assert lines.count("$ echo the quick brown fox jumps over the lazy dog") == 2
    assert not [line for line in lines if "dog one" in line or "quithe" in line]


# zsh's PROMPT_SP (on by default) before each prompt, in an 80-column terminal: the end-of-line
# mark, spaces to the last column, then "\r \r". A terminal wraps after the last column, so
# output that did not end its line (printf, a file without a final newline) stays shown with
# the mark after it and the prompt goes on the next row; on a row without a width, the \r goes
# back over that output and the prompt overwrites it.
ZSH_PROMPT_SP = b"\x1b[1m\x1b[7m%\x1b[27m\x1b[1m\x1b[0m" + b" " * 79 + b"\r \r"


def test_output_without_a_final_newline_before_a_zsh_prompt_is_kept() -> None:
    lines = shown([b"host% printf secret-token\r\n", b"secret-token" + ZSH_PROMPT_SP + b"host% "])
    # Now: ["host% printf secret-token", "host% -token%"]: the output is never indexed.
    assert [line for line in lines if "secret-token" in line and "printf" not in line]


def test_a_command_with_wide_characters_edited_before_enter_reads_as_run() -> None:
    # bash 5.2, typed `echo 日本語のファイル名.txt`, six keys left, `X`, Enter (captured): each CJK
    # character takes two columns, and readline moves back over it with two backspaces.
    packet = (
        "\x1b[?2004h$ echo 日本語のファイル名.txt" + "\b" * 8 + "Xル名.txt" + "\b" * 8 + "\r\n"
        "\x1b[?2004l\r日本語のファイXル名.txt\r\n\x1b[?2004h$ "
    ).encode()
    # Now: "$ echo 日本語のフXル名.txtt".
    assert "$ echo 日本語のファイXル名.txt" in shown([packet])


def test_a_smaller_window_does_not_cut_the_line_being_typed() -> None:
    # The window shrinks from 24 to 10 rows while a command is typed on the 5th: a terminal
    # (xterm, VTE) moves rows off the top only as far as needed to keep the cursor on the
    # screen (none here); bash redraws the line and typing goes on.
    screen = TextScreen(24)
    taken = screen.feed(b"$ echo a\r\na\r\n$ echo b\r\nb\r\n$ echo par", 1000)
    taken += screen.settle()
    taken += screen.resize(10)
    taken += screen.feed(b"\r\x1b[K\r$ echo partial\r\npartial\r\n$ ", 2000)
    lines = [line for _, line in taken + screen.settle(final=True)]
    # Now the half-typed "$ echo par" is taken as a line of its own when the resize cuts it.
    assert lines == ["$ echo a", "a", "$ echo b", "b", "$ echo partial", "partial", "$"]


# Found in review: bash 5.2 readline (PS1='$ ', a 40x24 pty, TERM=xterm-256color; captured), a
# command typed wider than the terminal and then made short again before Enter. Readline erases
# the row the command had wrapped into (\r\x1b[K) and leaves the cursor on the first row; Enter
# then moves down into that erased row and the command's output is written there. The row is
# still read as the command's second row: the user sees "$ echo hi" and "hi" on two rows, the
# index holds "$ echo hi hi", and the output line is never indexed on its own (also after
# history recall of a shorter command, or a wider window while typing: see the next test).
LONG = b"echo the quick brown fox jumps over the lazy dog"
SHRUNK = {
    "ctrl-u": (
        [
            b"\x1b[?2004h$ ",
            LONG,
            b"\x1b[A\r\x1b[C\x1b[C\x1b[K\r\n\r\x1b[K\x1b[A\x1b[C\x1b[C",  # Ctrl-U
            b"echo hi",
            b"\r\n\x1b[?2004l\rhi\r\n\x1b[?2004h$ ",
        ],
        ["$ echo hi", "hi"],
    ),
    "ctrl-k": (  # Ctrl-A, 8 times Right, Ctrl-K: `echo the`
        [
            b"\x1b[?2004h$ ",
            LONG,
            b"\x1b[A\r" + b"\x1b[C" * 10,
            b"\x1b[K\r\n\r\x1b[K\x1b[A" + b"\x1b[C" * 10,
            b"\r\n\x1b[?2004l\rthe\r\n\x1b[?2004h$ ",
        ],
        ["$ echo the", "the"],
    ),
    "backspace": (  # 20 backspaces, back over the wrap
        [
            b"\x1b[?2004h$ ",
            LONG,
            b"\x08\x1b[K" * 9
            + b"\r\x1b[K\x1b[A"
            + b"\x1b[C" * 39
            + b"\x1b[K\r\n\r\x1b[K\x1b[A"
            + b"\x1b[C" * 39
            + b"\x08\x1b[K" * 9,
            b"\r\n\x1b[?2004l\rthe quick brown fox jum\r\n\x1b[?2004h$ ",
        ],
        ["$ echo the quick brown fox jum", "the quick brown fox jum"],
    ),
    "history": (  # `echo one`, the long command, then Up, Up and Enter: `echo one` again
        [
            b"\x1b[?2004h$ ",
            b"echo one\r\n\x1b[?2004l\rone\r\n\x1b[?2004h$ ",
            LONG + b"\r\n\x1b[?2004l\rthe quick brown fox jumps over the lazy dog\r\n\x1b[?2004h$ ",
            LONG,  # Up
            b"\x1b[A\x08\x08\x08one\x1b[K\r\n\r\x1b[K\x1b[A" + b"\x1b[C" * 10,  # Up
            b"\r\n\x1b[?2004l\rone\r\n\x1b[?2004h$ ",
        ],
        ["$ echo one", "one", "$ echo one", "one"],
    ),
}


@pytest.mark.parametrize(("packets", "run"), list(SHRUNK.values()), ids=list(SHRUNK))
def test_a_command_made_shorter_than_a_row_again_is_not_joined_to_its_output(
    packets: list[bytes], run: list[str]
) -> None:
    screen = TextScreen(24, 40)
    taken: list[tuple[int, str]] = []
    for n, packet in enumerate(packets):  # a second apart, settled as the index does
        taken += screen.feed(packet, n * 1000)
        taken += screen.settle()
    lines = [line for _, line in taken + screen.settle(final=True)]
    # Now: "$ echo hi hi", "$ echo the the", "$ echo one one", ...
    assert [line for line in lines if line in run] == run


def test_a_line_wrapped_before_the_window_widened_reads_whole() -> None:
    # Typing into `cat > notes` (the terminal driver echoes; nothing redraws on a resize) a
    # line wider than the 40-column window, then the window is made 80 wide before Enter: a
    # terminal does not wrap the rows again, and the line is still the text typed. Now the
    # index holds "xxx...nee dley": a search for "needle" does not find it.
    screen = TextScreen(24, 40)
    taken = screen.feed(b"$ cat > notes\r\n" + b"x" * 37 + b"needley", 0)
    taken += screen.settle() + screen.resize(24, 80)
    taken += screen.feed(b"\r\n", 2000) + screen.settle(final=True)
    assert "x" * 37 + "needley" in [line for _, line in taken]
    # bash 5.2 (captured, 40 columns, then 80 while the long command is typed): readline
    # redraws the command on its first row and erases the second; Enter writes the output
    # in the erased row. Now: one line, the command and its output ("... dog the quick ...").
    screen = TextScreen(24, 40)
    taken = screen.feed(b"\x1b[?2004h$ " + LONG, 0) + screen.settle() + screen.resize(24, 80)
    taken += screen.feed(b"\r\x1b[K\r\x1b[A\x1b[K\r$ " + LONG, 1000) + screen.settle()
    taken += screen.feed(
        b"\r\n\x1b[?2004l\rthe quick brown fox jumps over the lazy dog\r\n\x1b[?2004h$ ", 2000
    )
    lines = [line for _, line in taken + screen.settle(final=True)]
    assert lines == [
        "$ echo the quick brown fox jumps over the lazy dog",
        "the quick brown fox jumps over the lazy dog",
        "$",
    ]


def test_the_top_row_is_kept_when_a_command_clears_the_screen() -> None:
    # bash 5.2 (captured, 40x24): `for i in 1 2 3; do clear; echo SECRET-$i; echo more; sleep
    # 0.2; done` typed on the first row. `clear` writes \x1b[H\x1b[2J\x1b[3J: the cursor goes to
    # the top row and the screen is erased, and the erase spares the cursor's line as if it were
    # being typed. Now the index holds "more", "more", "SECRET-3", "more", "$": the command and
    # what each screen showed on its first row are never indexed (a script that clears and
    # draws a status each time loses its first row every time).
    packets = [
        b"\x1b[?2004h$ ",
        b"for i in 1 2 3; do clear; echo SECRET-$i; echo more; sleep 0.2; done\r\n"
        b"\x1b[?2004l\r\x1b[H\x1b[2J\x1b[3JSECRET-1\r\nmore\r\n\x1b[H\x1b[2J\x1b[3JSECRET-2\r\n"
        b"more\r\n\x1b[H\x1b[2J\x1b[3JSECRET-3\r\nmore\r\n\x1b[?2004h$ ",
    ]
    lines = shown(packets, columns=40)
    assert "$ for i in 1 2 3; do clear; echo SECRET-$i; echo more; sleep 0.2; done" in lines
    assert [line for line in lines if line.startswith("SECRET")] == [
        "SECRET-1",
        "SECRET-2",
        "SECRET-3",
    ]


# vim 9 (`vim -u NONE -N v.txt`, a 40x12 pty; captured, its start-up queries left out): the
# file's second line is wider than the window and vim draws it over two rows (writing the last
# column twice so the terminal marks the row as wrapped).
VIM_DRAWN = (
    b'\x1b[?1049h\x1b[1;12r\x1b[H\x1b[2J\x1b[12;1H"v.txt" 29L, 312B'
    b"\x1b[1;1Hshort line one\r\nalpha bravo charlie delta echo foxtrot gg\x1b[3;1H"
    b"olf hotel india juliet kilo lima mike\x1b[3;38H\x1b[K\x1b[4;1Hshort line three\r\n"
    b"line 4\r\nline 5\r\nline 6\r\nline 7\r\nline 8\r\nline 9\r\nline 10\x1b[1;1H"
)
VIM_QUIT = b"\x1b[12;1H:q!\r\x1b[12;1H\x1b[K\x1b[?1049l"


def test_vim_redrawing_the_rows_of_a_wrapped_line_reads_as_shown() -> None:
    # `j`, `0w`, `D`: the line becomes "alpha". vim scrolls its first row away within the
    # region of rows 2-11 and writes "alpha " in the row that moved up: the row is read with
    # the text that scrolled away before it, as a line that left the top of the screen. Now:
    # "alpha bravo charlie delta echo foxtrot galpha", and "alpha" is never indexed.
    deleted = shown(
        [
            VIM_DRAWN,
            b"\r\n",
            b"alpha ",
            b"\x1b[?25l\x1b[2;11r\x1b[11;1H\r\n\x1b[1;12r\x1b[2;1Halpha \x1b[2;7H\x1b[K"
            b"\x1b[11;1Hline 11\x1b[2;6H\x1b[?25h",
            b"\x1b[3;6H",
            VIM_QUIT,
        ],
        lines=12,
        columns=40,
    )
    assert "alpha" in deleted
    assert not [line for line in deleted if "galpha" in line]
    # `:set nowrap`: vim draws "short line three" over the row the long line had wrapped into,
    # by moving there. Now: "alpha bravo charlie delta echo foxtrot gshort line three".
    unwrapped = shown(
        [
            VIM_DRAWN,
            b"\x1b[12;1H\x1b[K\x1b[12;1H:set nowrap\r\x1b[3;1Hshort line three\x1b[3;17H\x1b[K"
            b"\x1b[4;1Hline 4\x1b[4;7H\x1b[K\x1b[5;6H5\x1b[6;6H6\x1b[7;6H7\x1b[8;6H8\x1b[9;6H9"
            b"\x1b[10;6H10\x1b[11;7H1\x1b[1;1H",
            VIM_QUIT,
        ],
        lines=12,
        columns=40,
    )
    assert "alpha bravo charlie delta echo foxtrot g" in unwrapped
    assert not [line for line in unwrapped if "gshort" in line]


def test_wide_characters_wrapped_at_the_last_column_read_without_a_gap() -> None:
    # `cat` of a file with a Japanese line wider than the 40-column window, one narrow
    # character first: the 20th wide character does not fit in the last column, which the
    # terminal leaves blank, and goes on the next row. Now: "...名日 本語..." (a space inside
    # the word), and a search for "日本語のファイル名" misses the wrapped occurrence.
    text = "a" + "日本語のファイル名" * 3
    assert shown([(text + "\r\n").encode()], columns=40) == [text]


def test_a_line_longer_than_the_screen_keeps_its_words_whole() -> None:
    # `cat` of a log with one line of 2,000 tokens (~10,000 characters, a minified JSON
    # document say) in an 80x24 terminal: it scrolls off the top while it is written, and what
    # left is cut into index lines. Now tokens are cut in two at those cuts ("k8299" + "13"),
    # and two are glued where a row ended at a space ("w000254w000255"): a search for either
    # token, or for two tokens that followed each other, misses the line.
    tokens = [f"k{n * 7919 % 10 ** (n % 8 + 1)}" for n in range(2000)]
    taken = shown([(" ".join(tokens) + "\r\n").encode()], columns=80)
    assert [token for line in taken for token in line.split()] == tokens
    words = [f"w{n:06d}" for n in range(1000)]  # 8 columns each: 5 a row, a row ends at a space
    taken = shown([(" ".join(words) + "\r\n").encode()], lines=5, columns=40)
    assert [word for line in taken for word in line.split()] == words


def test_a_long_line_taken_once_is_not_taken_again_when_it_scrolls_off() -> None:
    # A 3,000-character line on a 200x50 screen, taken when the prompt followed it (the
    # once-a-second settle); then more output scrolls it off the top. Now it is indexed a
    # second time, in other pieces, as it leaves: every search for it finds it twice.
    screen = TextScreen(50, 200)
    line = " ".join(f"w{n:04d}" for n in range(500))
    taken = screen.feed(line.encode() + b"\r\n$ ", 0) + screen.settle()
    assert " ".join(text for _, text in taken) == line
    taken += screen.feed(b"".join(b"out %d\r\n" % n for n in range(60)), 2000)
    taken += screen.settle(final=True)
    assert len([text for _, text in taken if "w0100" in text]) == 1


def test_text_wrapping_on_the_last_row_below_the_scrolling_region_joins_no_row_above() -> None:
    # The scrolling region is rows 1-4 of 5 and a status is written on row 5, longer than the
    # width (a progress bar, say): below the region the terminal cannot scroll, so the text
    # goes on over the start of the same row. The row is marked as going on from the row
    # above it, which it does not. Now: "fourth abc3456789", a line no screen showed.
    screen = TextScreen(5, 10)
    taken = screen.feed(b"\x1b[4;1Hfourth\x1b[1;4r\x1b[5;1H0123456789abc", 0)
    lines = [line for _, line in taken + screen.settle(final=True)]
    assert lines == ["fourth", "abc3456789"]


def test_a_wide_character_on_a_one_column_terminal_does_not_hang_the_screen() -> None:
    # Found in review: a wide character never fits a row one column wide, and the screen
    # moved it to the next row for ever (a client may ask for a window one column wide).
    import signal

    def hung(*_: object) -> None:
        raise TimeoutError("the screen did not return")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(2)
    try:
        screen = TextScreen(24, 1)
        taken = screen.feed("日本\r\n".encode(), 0)
        screen.resize(24, 0)
        taken += screen.feed("語x".encode(), 1) + screen.settle(final=True)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert [line for _, line in taken] == ["日本", "語x"]  # a row each, wrapped: one line


def test_a_row_split_from_the_cursors_line_is_pending_for_the_index() -> None:
    # Found in review: the cursor's line was kept until the rows changed shape, and erasing
    # the end of its first row from a column other than the first (ESC[5G ESC[K) makes the
    # row below a line of its own without such a change: the row below was still counted as
    # the cursor's line, so the index did not know a line was waiting.
    screen = TextScreen(24, 10)
    screen.feed(b"0123456789abcd\x1b[A", 0)
    assert not screen.unsettled  # one line, the cursor's
    screen.feed(b"\x1b[5G\x1b[K", 1)
    assert screen.unsettled
    assert [line for _, line in screen.settle()] == ["abcd"]


@settings(max_examples=200, deadline=None)
@given(st.lists(_SEQUENCES, max_size=30), st.sampled_from([4, 10]))
def test_unsettled_is_true_whenever_settle_has_a_line(sequences: list[bytes], columns: int) -> None:
    screen = TextScreen(6, columns)
    for at, data in enumerate(sequences):
        screen.feed(data, at)
        if not screen.unsettled:
            assert screen.settle() == [], data
