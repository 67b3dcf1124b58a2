"""A terminal's screen, as far as the search index needs one: rows of text and a cursor that
the output moves as a terminal would, so a line edited in place reads as it was finally shown.

A shell's line editor inserts a character by writing it and the rest of the line, then moving
back with backspaces; an editor such as vim types into the middle of a row by moving the cursor
there. A stream of characters read left to right turns both into fragments ("NALL=(ALL) ALL"
for "NOPASSWD: ALL=(ALL) ALL"); a screen does not.

A row's text goes to the index once it is done with:

- when it leaves the screen (scrolled off, deleted, erased, cut by a resize, or the screen is
  switched to or from a full-screen program's own);
- at :meth:`TextScreen.settle` (the index's batch, once a second), if it changed since it was
  last taken and the cursor is not on it: a line being typed is taken once Enter moves the
  cursor off it, not a prefix every second;
- at the end of the session, whatever is left.

The same text is not taken twice from one row. Runs of white space become one space, so a
search for ``a b`` finds what a screen showed as ``a    b`` (columns, a tab).

Deliberately not a full emulator (the text export uses pyte for that): rows are as long as
what was written on them, up to ``MAX_LINE`` characters, and not wrapped at the terminal's
width, so a long command or log line is one line to search; each character takes one column.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable

MAX_LINE = 1000  # a row this long goes on in the next, as a terminal wraps it
WRAP_BACK = 100  # ... at a space within its last this many characters, if there is one
MAX_ROWS = 256  # a taller terminal's rows below this are taken as the last
MAX_PENDING = 4096  # an escape sequence kept for the next packet, at most
MAX_PARAMS = 64  # characters of a control sequence's parameters that are read
TAB = 8

_TOKEN = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC (a window title)
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[ -/]+[0-~]"  # character sets and the like
    r"|\x1b[0-Z\\-~]"  # two-character sequences (save and restore the cursor, index, ...)
    r"|[\x00-\x1f\x7f]"  # control characters
)
_STARTED = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|[ -/]+)?")  # a sequence not ended yet
_SGR = re.compile(r"\x1b\[[0-9;:]*m")
_ALTERNATE = frozenset(("1049", "1047", "47"))  # the private modes of a second screen


class Row:
    __slots__ = ("at", "shown", "text")

    def __init__(self) -> None:
        self.text = ""
        self.shown = ""  # the text last taken from this row, white space collapsed
        self.at = 0  # the time offset of the row's last change, in milliseconds


class TextScreen:
    """Output bytes in, ``(offset_ms, line)`` out: from :meth:`feed` the rows that left the
    screen, from :meth:`settle` the rows the cursor left since."""

    def __init__(self, lines: int = 24) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""  # an escape sequence cut off by the end of a packet
        self._height = _rows(lines)
        self._rows = [Row() for _ in range(self._height)]
        self._x = 0
        self._y = 0
        self._top = 0  # the scrolling region
        self._bottom = self._height - 1
        self._saved = (0, 0)
        self._insert = False  # IRM: characters written push the rest of the row right
        self._primary: list[Row] | None = None  # while a second screen is shown
        self._switched_from = (0, 0)  # the cursor on the first screen, meanwhile
        self._touched: set[Row] = set()  # rows changed since the last settle
        self._out: list[tuple[int, str]] = []
        self._at = 0

    @property
    def unsettled(self) -> bool:
        """Whether :meth:`settle` has a row to look at other than the cursor's."""
        touched = self._touched
        return len(touched) > 1 or (bool(touched) and self._rows[self._y] not in touched)

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
        out, self._out = self._out, []
        return out

    def settle(self, final: bool = False) -> list[tuple[int, str]]:
        """The rows changed since the last settle that the cursor is not on (every row,
        ``final``), top to bottom."""
        cursor = None if final else self._rows[self._y]
        for row in self._rows if final else [r for r in self._rows if r in self._touched]:
            if row is not cursor:
                self._take(row)
        if final and self._primary is not None:
            for row in self._primary:
                self._take(row)
        self._touched = {cursor} & self._touched if cursor is not None else set()
        out, self._out = self._out, []
        return out

    def lines(self) -> list[str]:
        """The rows shown now, top to bottom, as they would be taken."""
        return [" ".join(row.text.split()) for row in self._rows]

    def resize(self, lines: int) -> list[tuple[int, str]]:
        """A terminal that loses rows loses them at the top (they scroll off, and are taken);
        one that gains them gains them at the bottom."""
        lines = _rows(lines)
        cut = self._height - lines
        self._rows = self._fit(self._rows, lines)
        if self._primary is not None:
            self._primary = self._fit(self._primary, lines)
        self._height = lines
        self._top, self._bottom = 0, lines - 1
        self._y = min(max(0, self._y - cut), lines - 1)
        self._saved = _moved(self._saved, cut, lines)
        self._switched_from = _moved(self._switched_from, cut, lines)
        out, self._out = self._out, []
        return out

    def _fit(self, rows: list[Row], lines: int) -> list[Row]:
        cut = len(rows) - lines
        if cut <= 0:
            return rows + [Row() for _ in range(-cut)]
        for row in rows[:cut]:
            self._take(row)
            self._touched.discard(row)
        return rows[cut:]

    # -- what the output does ------------------------------------------------------------

    def _write(self, run: str) -> None:
        for start in range(0, len(run), MAX_LINE):
            self._write_piece(run[start : start + MAX_LINE])

    def _write_piece(self, piece: str) -> None:
        row = self._rows[self._y]
        text, x = row.text, self._x
        if x > len(text):
            text += " " * (x - len(text))
        if self._insert:
            text = text[:x] + piece + text[x:]
        else:
            text = text[:x] + piece + text[x + len(piece) :]
        x += len(piece)
        while len(text) > MAX_LINE:  # as the terminal wraps it: no text is lost
            space = text.rfind(" ", MAX_LINE - WRAP_BACK, MAX_LINE + 1)
            end, rest = (space, space + 1) if space > 0 else (MAX_LINE, MAX_LINE)
            row.text, row.at = text[:end], self._at
            self._take(row)
            row.shown = ""
            text = text[rest:]
            x = max(0, x - rest)
        row.text, row.at = text, self._at
        self._x = x
        self._touched.add(row)

    def _control(self, char: str) -> None:
        if char == "\r":
            self._x = 0
        elif char in "\n\x0b\x0c":
            self._line_feed()
        elif char == "\b":
            self._x = max(0, self._x - 1)
        elif char == "\t":
            self._x = min(MAX_LINE, (self._x // TAB + 1) * TAB)

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
                self._scroll_down(1)
            else:
                self._y = max(0, self._y - 1)
        elif final == "c":
            self._erase_rows(0, self._height)
            self._x = self._y = 0
            self._top, self._bottom = 0, self._height - 1
            self._insert = False

    def _csi(self, code: str) -> None:
        body, final = code[2:-1], code[-1]
        if len(body) > MAX_PARAMS or any(" " <= c <= "/" for c in body):
            return  # intermediates: another function (the cursor's shape, say)
        if body[:1] in ("?", ">", "=", "<"):
            if body[0] == "?" and final in "hl" and _ALTERNATE & set(body[1:].split(";")):
                self._switch(alternate=final == "h")
            return
        params = [int(p) if p.isdigit() else 0 for p in body.split(";")] if body else [0]
        n = max(1, min(params[0], MAX_LINE))
        if final == "m":
            return
        if final in "Hf":
            row = params[0] if params[0] else 1
            col = params[1] if len(params) > 1 and params[1] else 1
            self._y = min(row, self._height) - 1
            self._x = min(col, MAX_LINE) - 1
        elif final == "A":
            floor = self._top if self._y >= self._top else 0
            self._y = max(floor, self._y - n)
        elif final in "Be":
            ceiling = self._bottom if self._y <= self._bottom else self._height - 1
            self._y = min(ceiling, self._y + n)
        elif final in "Ca":
            self._x = min(MAX_LINE, self._x + n)
        elif final == "D":
            self._x = max(0, self._x - n)
        elif final == "E":
            self._x = 0
            self._y = min(
                self._bottom if self._y <= self._bottom else self._height - 1, self._y + n
            )
        elif final == "F":
            self._x = 0
            self._y = max(self._top if self._y >= self._top else 0, self._y - n)
        elif final in "G`":
            self._x = n - 1
        elif final == "d":
            self._y = min(n, self._height) - 1
        elif final == "I":
            self._x = min(MAX_LINE, (self._x // TAB + n) * TAB)
        elif final == "K":
            self._erase_in_row(params[0])
        elif final == "J":
            self._erase_in_display(params[0])
        elif final == "@":
            self._edit_row(lambda t, x: (t[:x] + " " * n + t[x:])[:MAX_LINE] if x < len(t) else t)
        elif final == "P":
            self._edit_row(lambda t, x: t[:x] + t[x + n :])
        elif final == "X":
            self._edit_row(lambda t, x: (t[:x] + " " * n + t[x + n :]) if x < len(t) else t)
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
            self._scroll_down(n)
        elif final == "r":
            top = (params[0] or 1) - 1
            bottom = (
                min(params[1] if len(params) > 1 and params[1] else self._height, self._height) - 1
            )
            if top < bottom:
                self._top, self._bottom = top, bottom
                self._x = self._y = 0
        elif final == "s":
            self._saved = (self._x, self._y)
        elif final == "u":
            self._x, self._y = self._saved
        elif final in "hl" and "4" in body.split(";"):
            self._insert = final == "h"

    def _edit_row(self, edit: Callable[[str, int], str]) -> None:
        row = self._rows[self._y]
        text = edit(row.text, self._x)
        if text != row.text:
            row.text, row.at = text, self._at
            self._touched.add(row)

    def _line_feed(self) -> None:
        if self._y == self._bottom:
            self._delete_rows(self._top, 1)
        elif self._y < self._height - 1:
            self._y += 1

    def _erase_in_row(self, how: int) -> None:
        x = self._x
        if how == 0:
            self._edit_row(lambda t, _: t[:x])
        elif how == 1:
            self._edit_row(lambda t, _: " " * min(x + 1, len(t)) + t[x + 1 :])
        elif how == 2:
            self._edit_row(lambda t, _: "")

    def _erase_in_display(self, how: int) -> None:
        if how == 0:
            self._erase_in_row(0)
            self._erase_rows(self._y + 1, self._height)
        elif how == 1:
            self._erase_in_row(1)
            self._erase_rows(0, self._y)
        elif how in (2, 3):
            self._erase_rows(0, self._height)

    def _erase_rows(self, start: int, end: int) -> None:
        for y in range(start, end):
            row = self._rows[y]
            if row.text:
                self._take(row)
                row.text = row.shown = ""
                self._touched.discard(row)

    def _delete_rows(self, y: int, n: int) -> None:
        """Rows ``y`` .. ``y + n - 1`` go (taken first); the rest of the scrolling region
        moves up and blank rows come in at its bottom."""
        bottom = self._bottom + 1
        n = min(n, bottom - y)
        for row in self._rows[y : y + n]:
            self._take(row)
            self._touched.discard(row)
        del self._rows[y : y + n]
        self._rows[bottom - n : bottom - n] = [Row() for _ in range(n)]

    def _insert_rows(self, y: int, n: int) -> None:
        bottom = self._bottom + 1
        n = min(n, bottom - y)
        for row in self._rows[bottom - n : bottom]:
            self._take(row)
            self._touched.discard(row)
        del self._rows[bottom - n : bottom]
        self._rows[y:y] = [Row() for _ in range(n)]

    def _scroll_down(self, n: int) -> None:
        self._insert_rows(self._top, n)

    def _switch(self, alternate: bool) -> None:
        """To a full-screen program's own screen (vim, less, top) and back: what was on the
        one left is taken, as it is no longer shown."""
        if alternate == (self._primary is not None):
            return
        for row in self._rows:
            self._take(row)
        self._touched.clear()
        if alternate:
            self._primary = self._rows
            self._rows = [Row() for _ in range(self._height)]
            self._switched_from = (self._x, self._y)
        else:
            assert self._primary is not None
            self._rows, self._primary = self._primary, None
            self._x, self._y = self._switched_from  # as xterm restores it with 1049
        self._top, self._bottom = 0, self._height - 1

    def _take(self, row: Row) -> None:
        line = " ".join(row.text.split())
        if line and line != row.shown:
            self._out.append((row.at, line))
            row.shown = line


def _moved(cursor: tuple[int, int], cut: int, lines: int) -> tuple[int, int]:
    return cursor[0], min(max(0, cursor[1] - cut), lines - 1)


def _rows(lines: int) -> int:
    return max(1, min(lines, MAX_ROWS))


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
