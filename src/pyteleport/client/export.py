"""``recordings export``: a recording as asciicast v2 (which asciinema plays), as a text
transcript of the screen as a person saw it, or as JSON lines of its frames."""

from __future__ import annotations

from collections.abc import Iterator

import pyte

from pyteleport.client.playback import Recording, render_json
from pyteleport.events.asciicast import OUTPUT, RESIZE, encode_frame, encode_header

FORMATS = ("asciicast", "text", "json")
HISTORY_LINES = 100_000


def export(recording: Recording, fmt: str) -> Iterator[str]:
    if fmt == "asciicast":
        return export_asciicast(recording)
    if fmt == "json":
        return (line + "\n" for line in render_json(recording))
    return iter([export_text(recording)])


def export_asciicast(recording: Recording) -> Iterator[str]:
    yield encode_header(recording.header)
    for frame in recording.frames:
        yield encode_frame(frame)


def export_text(recording: Recording) -> str:
    """The output replayed on a terminal emulator: the lines that scrolled off the top, then the
    final screen, with trailing spaces and blank lines dropped. Escape sequences (colours, cursor
    moves, full-screen programs) become what they drew, not codes."""
    header = recording.header
    screen = pyte.HistoryScreen(header.width or 80, header.height or 24, history=HISTORY_LINES)
    screen.set_mode(pyte.modes.LNM)  # a lone \n also returns the carriage, as ssh's -T streams do
    stream = pyte.Stream(screen)
    for frame in recording.frames:
        if frame.code == OUTPUT:
            stream.feed(frame.data)
        elif frame.code == RESIZE:
            width, _, height = frame.data.partition("x")
            if width.isdigit() and height.isdigit() and int(width) and int(height):
                screen.resize(int(height), int(width))
    lines = [
        "".join(line[x].data for x in range(screen.columns)).rstrip() for line in screen.history.top
    ]
    lines += [row.rstrip() for row in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""
