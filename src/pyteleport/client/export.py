"""``recordings export``: a recording as asciicast v2 (which asciinema plays), as a text
transcript of the screen as a person saw it, or as JSON lines of its frames. Each export is a
stream of parts, produced as the recording is read, so a large one is never one string."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyte
from pyte.screens import Char, Margins

from pyteleport.client.playback import Recording, render_json
from pyteleport.events.asciicast import OUTPUT, RESIZE, encode_frame, encode_header
from pyteleport.events.screentext import MAX_COLUMNS, MAX_ROWS

FORMATS = ("asciicast", "text", "json")
# The text export feeds a frame's output to the screen this many characters at a time and
# writes out what scrolled off after each piece: no more lines than this are held at once.
FEED_CHARS = 64 * 1024
ALTERNATE = frozenset((1049, 1047, 47))  # the private modes of a second screen
DECCOLM = 3  # 132 columns and a cleared screen: xterm ignores it unless allowed, and so do we


def export(recording: Recording, fmt: str) -> Iterator[str]:
    if fmt == "asciicast":
        return export_asciicast(recording)
    if fmt == "json":
        return (line + "\n" for line in render_json(recording))
    return export_text(recording)


def export_asciicast(recording: Recording) -> Iterator[str]:
    yield encode_header(recording.header)
    for frame in recording.frames:
        yield encode_frame(frame)


class ScrollbackScreen(pyte.Screen):
    """A terminal screen that hands over each line leaving it at the top (scrolled off, or cut
    by a resize to fewer lines) in :attr:`scrolled`, as text, for the caller to take with
    :meth:`take_scrolled`: a terminal's scrollback with no cap, kept by the caller rather than
    held here (pyte's ``HistoryScreen`` keeps a capped history and drops the oldest lines)."""

    def __init__(self, columns: int, lines: int) -> None:
        super().__init__(columns, lines)
        self.scrolled: list[str] = []
        # The first screen's rows and cursor column while a full-screen program draws on a
        # second one (pyte has no second screen).
        self._primary: tuple[dict[int, Any], int] | None = None

    # -- the second screen of vim, less, top (private modes 1049, 1047, 47) ----------------------

    def set_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            if ALTERNATE & set(modes):
                self._enter_alternate()
            modes = tuple(m for m in modes if m not in ALTERNATE and m != DECCOLM)
        super().set_mode(*modes, **kwargs)

    def reset_mode(self, *modes: int, **kwargs: Any) -> None:
        if kwargs.get("private"):
            if ALTERNATE & set(modes):
                self._leave_alternate()
            modes = tuple(m for m in modes if m not in ALTERNATE and m != DECCOLM)
        super().reset_mode(*modes, **kwargs)

    # -- the saved cursor (ESC 7 / ESC 8): one place, as terminals keep it ------------------------

    def save_cursor(self) -> None:
        """A terminal keeps one saved cursor, which a later save replaces (pyte stacks them)."""
        self.savepoints.clear()
        super().save_cursor()

    def restore_cursor(self) -> None:
        """Back to the saved cursor, which stays saved: a second restore goes there again
        (pyte's first restore pops it, and the second goes home)."""
        kept = self.savepoints[-1] if self.savepoints else None
        super().restore_cursor()
        if kept is not None:
            self.savepoints.append(kept._replace(cursor=copy.copy(kept.cursor)))

    def _enter_alternate(self) -> None:
        """The program's screen starts blank; the rows above the cursor on the first screen are
        handed over now, in their place in the transcript (before what the program draws), as
        if they had scrolled off, and the rest is kept with the cursor's row on top."""
        if self._primary is not None:
            return
        y = self.cursor.y
        self.scrolled += [_row_text(self.buffer[row], self.columns) for row in range(y)]
        self._primary = (
            {row - y: line for row, line in self.buffer.items() if y <= row < self.lines},
            self.cursor.x,
        )
        self.buffer.clear()
        self.margins = None
        self.dirty.update(range(self.lines))

    def _leave_alternate(self) -> None:
        """What the program showed last is handed over (its rows with text and those between
        them), and the first screen comes back, with the cursor where it was."""
        if self._primary is None:
            return
        rows = [_row_text(self.buffer[row], self.columns) for row in range(self.lines)]
        shown = [n for n, row in enumerate(rows) if row]
        if shown:
            self.scrolled += rows[shown[0] : shown[-1] + 1]
        primary, x = self._primary
        self._primary = None
        self.buffer.clear()
        self.buffer.update({row: line for row, line in primary.items() if row < self.lines})
        self.margins = None
        self.cursor.x, self.cursor.y = x, 0
        self.dirty.update(range(self.lines))

    def index(self) -> None:
        # The line that leaves is the top of the scrolling region, as in HistoryScreen.index:
        # a full-screen program scrolling within margins (vim, less) hands over what it scrolls.
        top, bottom = self.margins or Margins(0, self.lines - 1)
        if self.cursor.y == bottom:
            self.scrolled.append(_row_text(self.buffer[top], self.columns))
        super().index()

    def resize(self, lines: int | None = None, columns: int | None = None) -> None:
        # A screen that loses lines loses them at the top, which a terminal keeps above as
        # scrollback: handed over in order here, blank ones too, and the rest moved up with the
        # cursor. Done here rather than by pyte, whose delete_lines leaves a row in place when
        # the row below it was never written (a line shown twice, or out of order).
        cut = self.lines - (lines or self.lines)
        if cut > 0:
            self.scrolled += [_row_text(self.buffer[y], self.columns) for y in range(cut)]
            rows = {y - cut: row for y, row in self.buffer.items() if cut <= y < self.lines}
            self.buffer.clear()
            self.buffer.update(rows)
            self.cursor.y = max(0, self.cursor.y - cut)
            self.lines -= cut
            self.dirty.update(range(self.lines))
            self.set_margins()
        super().resize(lines, columns)  # the columns, if they changed

    # pyte moves only the rows it holds in insert_lines and delete_lines: a row never written
    # would leave the row it should replace in place (shown twice). Every row is held first.
    def insert_lines(self, count: int | None = None) -> None:
        self._hold_rows()
        super().insert_lines(count)

    def delete_lines(self, count: int | None = None) -> None:
        self._hold_rows()
        super().delete_lines(count)

    def _hold_rows(self) -> None:
        for y in range(self.lines):
            self.buffer[y]

    # pyte fails on an erase it does not know (a recording's output is anyone's bytes): a
    # terminal ignores it.
    def erase_in_line(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        if how in (0, 1, 2):
            super().erase_in_line(how, *args, **kwargs)

    def erase_in_display(self, how: int = 0, *args: Any, **kwargs: Any) -> None:
        if how in (0, 1, 2, 3):
            super().erase_in_display(how, *args, **kwargs)

    def take_scrolled(self) -> list[str]:
        lines, self.scrolled = self.scrolled, []
        return lines


def export_text(recording: Recording) -> Iterator[str]:
    """The output replayed on a terminal emulator: every line that scrolled off the top, in
    order, then the final screen, with trailing spaces and blank lines dropped. Escape sequences
    (colours, cursor moves, full-screen programs) become what they drew, not codes.

    Yields the transcript a piece at a time: at most the lines of :data:`FEED_CHARS` characters
    of output are held, whatever the length of the recording."""
    header = recording.header
    screen = ScrollbackScreen(*_size(header.width, header.height))
    screen.set_mode(pyte.modes.LNM)  # a lone \n also returns the carriage, as ssh's -T streams do
    stream = pyte.Stream(_Lenient(screen))  # type: ignore[arg-type]
    transcript = _Transcript()
    for frame in recording.frames:
        if frame.code == OUTPUT:
            for start in range(0, len(frame.data), FEED_CHARS):
                stream.feed(frame.data[start : start + FEED_CHARS])
                if screen.scrolled:
                    yield transcript.lines(screen.take_scrolled())
        elif frame.code == RESIZE:
            width, _, height = frame.data.partition("x")
            if width.isdigit() and height.isdigit() and int(width) and int(height):
                columns, lines = _size(int(width), int(height))
                screen.resize(lines, columns)
                if screen.scrolled:
                    yield transcript.lines(screen.take_scrolled())
    # Not screen.display, which fails on a wide character's right half drawn over alone.
    yield transcript.lines(_row_text(screen.buffer[y], screen.columns) for y in range(screen.lines))


def _size(width: int, height: int) -> tuple[int, int]:
    """Columns and rows of the transcript's terminal from a recording's size: none (or a
    negative one) is 80x24, and one larger than any terminal is read as the largest the
    search index reads (the size comes from a client; a billion columns would not fit)."""
    columns = min(width, MAX_COLUMNS) if width > 0 else 80
    rows = min(height, MAX_ROWS) if height > 0 else 24
    return columns, rows


_HANDLERS = frozenset(pyte.Stream.csi.values())


class _Lenient:
    """The screen as pyte's stream calls it: a control sequence its handler does not take (a
    private variant such as vim's ``ESC [ ? 4 m``, or more parameters than it reads) is ignored,
    as a terminal ignores what it does not know, rather than failing the export. A recording's
    output is anyone's bytes."""

    def __init__(self, screen: ScrollbackScreen) -> None:
        self._screen = screen

    def __getattr__(self, name: str) -> Any:
        handler = getattr(self._screen, name)
        if name not in _HANDLERS:
            return handler

        def lenient(*args: Any, **kwargs: Any) -> None:
            with contextlib.suppress(TypeError):
                handler(*args, **kwargs)

        return lenient


def _row_text(line: Mapping[int, Char], columns: int) -> str:
    return "".join(line[x].data for x in range(columns)).rstrip()


class _Transcript:
    """Lines → text, holding back blank lines until a line with text follows: blank lines at
    the end are dropped, and only their count is held."""

    def __init__(self) -> None:
        self._blank = 0

    def lines(self, lines: Iterable[str]) -> str:
        parts = []
        for line in lines:
            if not line:
                self._blank += 1
                continue
            parts.append("\n" * self._blank + line + "\n")
            self._blank = 0
        return "".join(parts)
