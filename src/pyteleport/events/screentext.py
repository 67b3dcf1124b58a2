"""A terminal's screen, as far as the search index needs one: rows of text and a cursor that
the output moves as a terminal would, so a line edited in place reads as it was finally shown.

A shell's line editor inserts a character by writing it and the rest of the line, then moving
back with backspaces; an editor such as vim types into the middle of a row by moving the cursor
there. A stream of characters read left to right turns both into fragments ("NALL=(ALL) ALL"
for "NOPASSWD: ALL=(ALL) ALL"); a screen does not.

The screen wraps at the terminal's width, as the programs drawing on it expect (a line editor
makes a long command wrap, and moves up to its first row), and a line that wrapped is one line
to the index: its rows are read together.

A line goes to the index once it is done with:

- when it leaves the screen (scrolled off, deleted, erased, cut by a resize, or the screen is
  switched to or from a full-screen program's own);
- at :meth:`TextScreen.settle` (the index's batch, once a second), if it changed since it was
  last taken and the cursor is not on it: a line being typed is taken once Enter moves the
  cursor off it, not a prefix every second;
- at the end of the session, whatever is left.

The same text is not taken twice from one line. Runs of white space become one space, so a
search for ``a b`` finds what a screen showed as ``a    b`` (columns, a tab). A wide (East Asian)
character takes two columns, as on a terminal. Not a full emulator (the text export uses pyte).
"""

from __future__ import annotations

import codecs
import itertools
import re
import unicodedata
from collections.abc import Callable

MAX_LINE = 1000  # an index line at most this long; a longer one goes on in the next
WRAP_BACK = 100  # ... cut at a space within its last this many characters, if there is one
MAX_COLUMNS = MAX_LINE  # a wider terminal is read as this wide
MAX_ROWS = 256  # a taller terminal's rows below this are read as the last
MAX_PENDING = 4096  # an escape sequence kept for the next packet, at most
MAX_PARAMS = 64  # characters of a control sequence's parameters that are read
TAB = 8
WIDE = "\x00"  # the second column of a wide character (control characters never reach a row)

_TOKEN = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (a window title)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]+[0-~]"  # character sets and the like
    r"|\x1b[0-Z\\-~]"  # two-character sequences (save and restore the cursor, index, ...)
    r"|[\x00-\x1f\x7f-\x9f]"  # control characters (C1 too: U+009B is a CSI of its own)
)
_STARTED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[ -/]+)?")  # a sequence not ended yet
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_ALTERNATE = frozenset(("1049", "1047", "47"))  # the private modes of a second screen


class Row:
    __slots__ = ("at", "carry", "shown", "text", "wrapped")

    def __init__(self) -> None:
        self.text = ""  # one character a column (WIDE after a wide one)
        # The line above went on into this row (it wrapped) at this width; 0: it did not. It
        # is one line with the row above while that row still reaches this width.
        self.wrapped = 0
        self.carry = ""  # the line's rows that left the screen above this one (it heads it)
        self.shown = ""  # the line's text when it was last taken (kept by its first row)
        self.at = 0  # the time offset of the row's last change, in milliseconds


class _Blank(Row):
    """The row of every blank place on a screen, shared: a screen holds rows only where the
    output has written (a thousand idle sessions hold a thousand prompts, not 24,000 rows)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("the blank row is shared: a row is made where it is written")


BLANK = _Blank.__new__(_Blank)
for _slot, _value in (("text", ""), ("wrapped", 0), ("carry", ""), ("shown", ""), ("at", 0)):
    object.__setattr__(BLANK, _slot, _value)


class TextScreen:
    """Output bytes in, ``(offset_ms, line)`` out: from :meth:`feed` the lines that left the
    screen, from :meth:`settle` the lines the cursor left since."""

    def __init__(self, lines: int = 24, columns: int = 80) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # an escape sequence cut off by the end of a packet
        self._height = _bound(lines, MAX_ROWS)
        self._width = _bound(columns, MAX_COLUMNS)
        self._rows: list[Row] = [BLANK] * self._height
        self._x = 0  # the width itself: the last column was written, the next character wraps
        self._y = 0
        self._top = 0  # the scrolling region
        self._bottom = self._height - 1
        self._saved = (0, 0)
        self._insert = False  # IRM: characters written push the rest of the row right
        self._autowrap = True  # DECAWM
        self._primary: list[Row] | None = None  # while a second screen is shown
        self._switched_from = (0, 0)  # the cursor on the first screen, meanwhile
        self._touched: set[Row] = set()  # rows changed since the last settle
        self._placed = False  # the cursor was put somewhere since the last write
        self._shape = 0  # counts changes to which rows are one line
        self._line_key: tuple[int, int, int] = (-1, -1, -1)
        self._line: tuple[int, int, frozenset[Row]] = (0, 0, frozenset())
        self._out: list[tuple[int, str]] = []
        self._at = 0

    @property
    def unsettled(self) -> bool:
        """Whether :meth:`settle` has a row to look at that is not on the cursor's line."""
        touched = self._touched
        return bool(touched) and not touched <= self._cursor_line()[2]

    def lines(self) -> list[str]:
        """The rows shown now, top to bottom, each as it would be taken on its own."""
        return [_normal(row.text) for row in self._rows]

    def feed(self, data: bytes, at: int) -> list[tuple[int, str]]:
        self._at = at
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        cut = text.rfind("\x1b")
        if cut != -1 and _unfinished(text, cut):
            text, self._pending = text[:cut], text[cut:]
        if "\x1b[" in text:
            text = _SGR.sub("", text)  # colours: the most common sequence, and no text
        pos = 0
        for token in _TOKEN.finditer(text):
            start = token.start()
            if start > pos:
                self._write(text[pos:start])
            pos = token.end()
            code = token.group()
            if len(code) == 1:
                self._control(code)
            elif code[1] == "[":
                self._csi(code)
            else:
                self._escape(code)
        if pos < len(text):
            self._write(text[pos:])
        return self._taken()

    def settle(self, final: bool = False) -> list[tuple[int, str]]:
        """The lines changed since the last settle that the cursor is not on (every line,
        ``final``), top to bottom."""
        cursor = (-1, -1) if final else self._line_of(self._y)
        heads: dict[int, int] = {}
        for y, row in enumerate(self._rows):
            if final or row in self._touched:
                head, tail = self._line_of(y)
                if head != cursor[0]:
                    heads[head] = tail
        for head, tail in heads.items():
            self._take(head, tail)
        if final and self._primary is not None:
            self._rows, self._primary = self._primary, self._rows
            for y in range(self._height):
                self._take(*self._line_of(y))
            self._rows, self._primary = self._primary, self._rows
        kept = set(self._rows[cursor[0] : cursor[1] + 1]) if cursor[0] >= 0 else set()
        self._touched &= kept
        return self._taken()

    def resize(self, lines: int, columns: int | None = None) -> list[tuple[int, str]]:
        """A terminal that loses rows moves them off the top only as far as it must to keep
        the cursor on the screen, and cuts the rest at the bottom; one that gains them gains
        them at the bottom. Rows are not wrapped again at a new width."""
        lines = _bound(lines, MAX_ROWS)
        if columns is not None:
            self._width = _bound(columns, MAX_COLUMNS)
            self._x = min(self._x, self._width)
        cut = max(0, self._y + 1 - lines) if lines < self._height else 0
        self._rows = self._fit(self._rows, lines, cut)
        if self._primary is not None:
            primary_cut = max(0, self._switched_from[1] + 1 - lines) if lines < self._height else 0
            self._primary = self._fit(self._primary, lines, primary_cut)
            x, y = self._switched_from
            self._switched_from = (x, min(y - primary_cut, lines - 1))
        self._height = lines
        self._top, self._bottom = 0, lines - 1
        self._y = min(self._y - cut, lines - 1)
        self._saved = (self._saved[0], min(max(0, self._saved[1] - cut), lines - 1))
        return self._taken()

    def _fit(self, rows: list[Row], lines: int, cut: int) -> list[Row]:
        """``rows`` for a screen of ``lines``: ``cut`` off the top (scrolled off, as a line
        feed does) and the rest past the bottom (taken as they leave)."""
        current, self._rows = self._rows, rows  # lines are read on the screen they are on
        try:
            self._delete_rows(0, cut, bottom=len(rows))
            if len(rows) > lines:
                for y in range(lines, len(rows)):
                    if rows[y].text and not self._joined(y):
                        self._take(*self._line_of(y))
                del rows[lines:]
            else:
                rows += [BLANK] * (lines - len(rows))
        finally:
            self._rows = current
        return rows

    # -- what the output does ------------------------------------------------------------

    def _write(self, run: str) -> None:
        cells = run if run.isascii() else _cells(run)
        width = self._width
        while cells:
            if self._x >= width:  # the last column was written: the next character wraps
                if self._autowrap:
                    self._x = 0
                    if self._line_feed():
                        row = self._row()
                        row.wrapped, row.carry = width, ""
                        self._shape += 1
                    self._placed = False
                else:
                    self._x = width - 1
            room = width - self._x
            if len(cells) <= room:
                self._put(cells)
                return
            if not self._autowrap:  # each character past the last column overwrites it
                self._put(cells[: room - 1] + cells[-1])
                return
            piece, cells = cells[:room], cells[room:]
            if cells[:1] == WIDE:
                if width == 1:  # a row of one column: the character fits no row, as it is
                    cells = cells[1:]
                else:  # a wide character that does not fit goes to the next row
                    piece, cells = piece[:-1] + WIDE, piece[-1] + cells  # (a blank of no text)
            self._put(piece)

    def _row(self, y: int | None = None) -> Row:
        """Row ``y`` (the cursor's), made if it was blank, to be written."""
        y = self._y if y is None else y
        row = self._rows[y]
        if row is BLANK:
            row = self._rows[y] = Row()
        return row

    def _put(self, piece: str) -> None:
        row = self._row()
        if self._placed:
            # Written from a place the cursor was put at (vim redrawing a row, not a line
            # editor going on after a wrap): the row is a line of its own now.
            self._placed = False
            if self._x == 0 and (row.wrapped or row.carry):
                row.wrapped, row.carry = 0, ""
                self._shape += 1
        text, x = row.text, self._x
        if x > len(text):
            text += " " * (x - len(text))
        if self._insert:
            text = (text[:x] + piece + text[x:])[: self._width]
        else:
            text = text[:x] + piece + text[x + len(piece) :]
        self._reshape(len(row.text), len(text))
        row.text, row.at = text, self._at
        self._x = x + len(piece)
        self._touched.add(row)

    def _control(self, char: str) -> None:
        self._placed = False
        if char == "\r":
            self._x = 0
        elif char in "\n\x0b\x0c":
            self._line_feed()
        elif char == "\b":
            self._back(1)
        elif char == "\t":
            self._x = min(self._width - 1, (self._x // TAB + 1) * TAB)

    def _back(self, n: int) -> None:
        """Left ``n`` columns; from past the last column (a wrap due), from the last one."""
        x = min(self._x, self._width - 1)
        self._x = max(0, x - n)

    def _escape(self, code: str) -> None:
        final = code[-1]
        if len(code) != 2:
            return  # a character set, a window title, ...
        if final == "7":
            self._saved = (self._x, self._y)
        elif final == "8":
            self._x, self._y = self._saved
        elif final == "D":
            self._line_feed()
        elif final == "E":
            self._x = 0
            self._line_feed()
        elif final == "M":
            if self._y == self._top:
                self._insert_rows(self._top, 1)
            else:
                self._y = max(0, self._y - 1)
        elif final == "c":
            self._erase_rows(0, self._height, cursor_too=True)
            self._x = self._y = 0
            self._top, self._bottom = 0, self._height - 1
            self._insert = False
            self._autowrap = True

    def _csi(self, code: str) -> None:
        body, final = code[2:-1], code[-1]
        if len(body) > MAX_PARAMS or any(" " <= c <= "/" for c in body):
            return  # intermediates: another function (the cursor's shape, say)
        if body[:1] in ("?", ">", "=", "<"):
            if body[0] == "?" and final in "hl":
                modes = set(body[1:].split(";"))
                if _ALTERNATE & modes:
                    self._switch(alternate=final == "h")
                if "7" in modes:
                    self._autowrap = final == "h"
            return
        params = [int(p) if p.isdigit() else 0 for p in body.split(";")] if body else [0]
        n = max(1, min(params[0], MAX_COLUMNS))
        # The cursor may stand past the last column (that column was written, and the next
        # character wraps): a move counts from there, and ends within the row (as pyte, which
        # the text export draws with, has it).
        last = self._width - 1
        # Put at a place (not moved from where it was): what is written there next is a row
        # drawn anew (see _put).
        if final in "HfG`dEFLM":
            self._placed = True
        elif final in "ABCDeaI":
            self._placed = False
        if final in "Hf":
            row = params[0] or 1
            col = params[1] if len(params) > 1 and params[1] else 1
            self._y = min(row, self._height) - 1
            self._x = min(col - 1, last)
        elif final == "A":
            floor = self._top if self._y >= self._top else 0
            self._y = max(floor, self._y - n)
        elif final in "Be":
            ceiling = self._bottom if self._y <= self._bottom else self._height - 1
            self._y = min(ceiling, self._y + n)
        elif final in "Ca":
            self._x = min(self._x + n, last)
        elif final == "D":
            self._back(n)
        elif final == "E":
            ceiling = self._bottom if self._y <= self._bottom else self._height - 1
            self._x, self._y = 0, min(ceiling, self._y + n)
        elif final == "F":
            floor = self._top if self._y >= self._top else 0
            self._x, self._y = 0, max(floor, self._y - n)
        elif final in "G`":
            self._x = min(n - 1, last)
        elif final == "d":
            self._y = min(n, self._height) - 1
        elif final == "I":
            self._x = min((self._x // TAB + n) * TAB, last)
        elif final == "K":
            self._erase_in_row(params[0])
        elif final == "J":
            self._erase_in_display(params[0])
        elif final == "@":
            width = self._width
            self._edit_row(lambda t, x: (t[:x] + " " * n + t[x:])[:width] if x < len(t) else t)
        elif final == "P":
            self._edit_row(lambda t, x: t[:x] + t[x + n :])
        elif final == "X":
            self._edit_row(lambda t, x: (t[:x] + " " * n + t[x + n :])[: max(len(t), x)])
        elif final == "L":
            if self._top <= self._y <= self._bottom:
                self._insert_rows(self._y, n)
                self._x = 0
        elif final == "M":
            if self._top <= self._y <= self._bottom:
                self._delete_rows(self._y, n)
                self._x = 0
        elif final == "S":
            self._delete_rows(self._top, n)
        elif final == "T":
            self._insert_rows(self._top, n)
        elif final == "r":
            top = (params[0] or 1) - 1
            bottom = min(params[1] if len(params) > 1 and params[1] else self._height, self._height)
            if top < bottom - 1:
                self._top, self._bottom = top, bottom - 1
                self._x = self._y = 0
        elif final == "s":
            self._saved = (self._x, self._y)
        elif final == "u":
            self._x, self._y = self._saved
        elif final in "hl" and "4" in body.split(";"):
            self._insert = final == "h"

    def _edit_row(self, edit: Callable[[str, int], str]) -> None:
        text = edit(self._rows[self._y].text, self._x)
        if text != self._rows[self._y].text:
            self._reshape(len(self._rows[self._y].text), len(text))
            row = self._row()
            row.text, row.at = text, self._at
            self._touched.add(row)

    def _reshape(self, before: int, after: int) -> None:
        """The cursor's row goes from ``before`` to ``after`` characters: if that decides
        whether the row below goes on from it (:meth:`_joined`), the lines change shape."""
        y = self._y + 1
        if y < len(self._rows):
            wrapped = self._rows[y].wrapped
            if wrapped and (before >= wrapped) != (after >= wrapped):
                self._shape += 1

    def _line_feed(self) -> bool:
        """Down a row, scrolling at the bottom of the region; whether the cursor is on another
        row (at the screen's last row below the region, it stays where it is)."""
        if self._y == self._bottom:
            self._delete_rows(self._top, 1)
        elif self._y < self._height - 1:
            self._y += 1
        else:
            return False
        return True

    def _erase_in_row(self, how: int) -> None:
        x = self._x
        row = self._rows[self._y]
        if (how == 2 or (how == 0 and x == 0)) and (row.wrapped or row.carry):
            row.wrapped, row.carry = 0, ""  # erased whole: a line of its own from here on
            self._shape += 1
        if how == 0:
            self._edit_row(lambda t, _: t[:x])
        elif how == 1:
            self._edit_row(lambda t, _: " " * min(x + 1, len(t)) + t[x + 1 :])
        elif how == 2:
            self._edit_row(lambda t, _: "")

    def _erase_in_display(self, how: int) -> None:
        if how == 0:
            self._erase_rows(self._y + 1, self._height)
            self._erase_in_row(0)
        elif how == 1:
            self._erase_rows(0, self._y)
            self._erase_in_row(1)
        elif how in (2, 3):
            self._erase_rows(0, self._height, cursor_too=True)

    def _erase_rows(self, start: int, end: int, cursor_too: bool = False) -> None:
        """Rows erased: their lines are taken first (not the cursor's, unless ``cursor_too``:
        a line editor erases the rows of a line being edited as it redraws them), then the
        rows are blank."""
        cursor = -1 if cursor_too else self._line_of(self._y)[0]
        rows = self._rows
        for y in range(start, end):
            if rows[y].text or rows[y].carry:
                head, tail = self._line_of(y)
                if head != cursor:
                    self._take(head, tail)
        for y in range(start, end):
            self._touched.discard(rows[y])
            rows[y] = BLANK
        if start < end < self._height and rows[end].wrapped:
            rows[end].wrapped = 0  # what it went on from is gone
        self._shape += 1

    def _scroll_off(self, y: int, bottom: int) -> None:
        """Row ``y`` leaves (the rows below it up to ``bottom`` move up, a blank row comes in
        at ``bottom - 1``): its line is taken, or, if the line goes on in the row below, that
        row heads it now and carries the text that left."""
        rows = self._rows
        row = rows[y]
        following = rows[y + 1] if y + 1 < bottom else None
        if following is not None and self._joined(y + 1):
            carry = row.carry + row.text.ljust(following.wrapped, WIDE)
            following.wrapped = 0
            following.at = max(row.at, following.at)
            following.shown = row.shown
            following.carry = self._carried(carry, following)
        elif row.text or row.carry:
            self._take(*self._line_of(y))
        if following is not None and following.wrapped:
            following.wrapped = 0
        self._shape += 1
        del rows[y]
        self._touched.discard(row)
        rows.insert(bottom - 1, BLANK)

    def _carried(self, carry: str, head: Row) -> str:
        """The text a line keeps of its rows that left the screen (``head`` heads it now):
        bounded, as a line that never ends (cat of a file with no line feeds) wraps for ever.
        All but about MAX_LINE characters of it are taken now (cut at a space, so no word is
        cut in two), unless the line was taken whole before."""
        if len(carry) <= 2 * MAX_LINE:
            return carry
        cut = carry.rfind(" ", len(carry) - MAX_LINE - WRAP_BACK, len(carry) - MAX_LINE)
        if cut <= 0:
            cut = len(carry) - MAX_LINE
        done = _normal(carry[:cut].replace(WIDE, ""))
        if head.shown.startswith(done):  # taken already: what is left of it, is still shown
            head.shown = head.shown[len(done) :].lstrip()
        else:
            head.shown = ""
            self._out += [(head.at, line) for line in _pieces(done)]
        return carry[cut:]

    def _delete_rows(self, y: int, n: int, bottom: int | None = None) -> None:
        """Rows ``y`` .. ``y + n - 1`` go; the rest of the scrolling region (up to ``bottom``)
        moves up and blank rows come in at its bottom."""
        rows = self._rows
        bottom = self._bottom + 1 if bottom is None else bottom
        n = min(n, bottom - y)
        if n <= 0:
            return
        block = rows[y : y + n]
        after = rows[y + n] if y + n < bottom else None
        if not any(row.text or row.carry or row.wrapped for row in block) and not (
            after is not None and after.wrapped
        ):  # blank rows (a program scrolling a region, a hostile flood): moved at once
            self._shape += 1
            del rows[y : y + n]
            rows[bottom - n : bottom - n] = [BLANK] * n
            self._touched.difference_update(block)
            return
        for _ in range(n):
            self._scroll_off(y, bottom)

    def _insert_rows(self, y: int, n: int) -> None:
        """Blank rows come in at ``y``; the rows below move down, and those past the bottom of
        the scrolling region go (taken)."""
        bottom = self._bottom + 1
        n = min(n, bottom - y)
        rows = self._rows
        for gone in range(bottom - n, bottom):
            if rows[gone].text and not self._joined(gone):
                self._take(*self._line_of(gone))
        self._shape += 1
        self._touched.difference_update(rows[bottom - n : bottom])
        del rows[bottom - n : bottom]
        rows[y:y] = [BLANK] * n
        for edge in (bottom, y + n):  # rows no longer below the row they went on from
            if edge < self._height and rows[edge].wrapped:
                rows[edge].wrapped = 0

    def _switch(self, alternate: bool) -> None:
        """To a full-screen program's own screen (vim, less, top) and back: what was on the
        one left is taken, as it is no longer shown."""
        if alternate == (self._primary is not None):
            return
        for y in range(self._height):
            if not self._joined(y):
                self._take(*self._line_of(y))
        self._touched.clear()
        self._shape += 1
        if alternate:
            self._primary = self._rows
            self._rows = [BLANK] * self._height
            self._switched_from = (self._x, self._y)
        else:
            assert self._primary is not None
            self._rows, self._primary = self._primary, None
            self._x, self._y = self._switched_from  # as xterm restores it with 1049
        self._top, self._bottom = 0, self._height - 1

    # -- lines -------------------------------------------------------------------------------

    def _line_of(self, y: int) -> tuple[int, int]:
        """The first and last rows of the line row ``y`` is on (rows joined by wrapping)."""
        head = y
        while self._joined(head):
            head -= 1
        tail = y
        while tail + 1 < len(self._rows) and self._joined(tail + 1):
            tail += 1
        return head, tail

    def _joined(self, y: int) -> bool:
        """Whether row ``y`` goes on from the row above: it wrapped into it, and the row above
        still reaches that far (a line editor that made the line short again has not)."""
        wrapped = self._rows[y].wrapped
        return bool(wrapped) and y > 0 and len(self._rows[y - 1].text) >= wrapped

    def _cursor_line(self) -> tuple[int, int, frozenset[Row]]:
        """:meth:`_line_of` the cursor's row, and its rows: kept while the rows are as they
        were (asked after every packet of output, which seldom changes them)."""
        key = (self._shape, self._y, len(self._rows[self._y - 1].text) if self._y else 0)
        if self._line_key != key:
            head, tail = self._line_of(self._y)
            self._line_key = key
            self._line = (head, tail, frozenset(self._rows[head : tail + 1]))
        return self._line

    def _take(self, head: int, tail: int) -> None:
        rows = self._rows[head : tail + 1]
        first = rows[0]
        if len(rows) == 1:
            raw = first.carry + first.text
        else:
            raw = first.carry + "".join(
                row.text.ljust(following.wrapped, WIDE)
                for row, following in itertools.pairwise(rows)
            )
            raw += rows[-1].text
        line = _normal(raw.replace(WIDE, "") if WIDE in raw else raw)
        if line and line != first.shown:
            self._row(head).shown = line
            at = max(row.at for row in rows)
            for piece in _pieces(line):
                self._out.append((at, piece))

    def _taken(self) -> list[tuple[int, str]]:
        out, self._out = self._out, []
        return out


def _normal(text: str) -> str:
    return " ".join(text.split())


def _pieces(line: str) -> list[str]:
    """A line longer than MAX_LINE as lines of at most MAX_LINE, cut at a space near the end
    of each if there is one, so no word is cut in two."""
    out = []
    while len(line) > MAX_LINE:
        space = line.rfind(" ", MAX_LINE - WRAP_BACK, MAX_LINE + 1)
        end, rest = (space, space + 1) if space > 0 else (MAX_LINE, MAX_LINE)
        out.append(line[:end])
        line = line[rest:]
    if line:
        out.append(line)
    return out


def _cells(run: str) -> str:
    """Text as the columns it takes: a wide character is followed by WIDE; a character of no
    width (a combining accent, a zero-width joiner) takes none and is dropped."""
    out = []
    for char in run:
        if char < "\u0300":
            out.append(char)
        elif unicodedata.east_asian_width(char) in ("W", "F"):
            out.append(char + WIDE)
        elif not (unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf")):
            out.append(char)
    return "".join(out)


def _bound(value: int, most: int) -> int:
    return max(1, min(value, most))


def _unfinished(text: str, cut: int) -> bool:
    """Whether the escape sequence at ``cut``, the last in ``text``, may go on in the next
    packet: kept for it, so its end is not taken for text. A string sequence (a window title)
    is kept until its terminator, up to MAX_PENDING characters."""
    left = len(text) - cut
    if left >= MAX_PENDING:
        return False
    match = _TOKEN.match(text, cut)
    if match is None or len(match.group()) == 1:  # no sequence yet: ESC, or ESC [ 1 ...
        return left < 64 and _STARTED.fullmatch(text, cut) is not None
    if text[cut + 1 : cut + 2] in ("]", "P", "X", "^", "_"):
        ended = text.endswith(("\x07", "\x1b\\"))
        return match.end() == len(text) and not ended
    return False
