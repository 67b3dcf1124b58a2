"""``tsh play``: a recording as text, as JSON lines, or replayed in real time to a terminal.

The renderers and the :class:`Player` state machine are pure (the player writes through a
callable and reads commands from a queue); :mod:`pyteleport.client.terminal` connects it to a
real terminal's keys.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import yaml

from pyteleport.errors import BadParameterError
from pyteleport.events import codes
from pyteleport.events.asciicast import INPUT, MARKER, OUTPUT, RESIZE, Frame, Header
from pyteleport.events.recordingfile import Damage, open_recording
from pyteleport.events.sanitize import clean_text
from pyteleport.model.timefmt import format_time

FORMATS = ("pty", "json", "yaml", "text")
SEEK_STEP_S = 10.0  # as Teleport's player
IDLE_CAP_S = 1.0  # --skip-idle-time: no pause in the replay lasts longer than this
# RIS, a full terminal reset: seeking back replays from the start onto a clean screen, whatever
# modes (alternate screen, colours) the session had switched on by then.
RESET_TERMINAL = "\x1bc"


@dataclass(frozen=True, slots=True)
class Recording:
    header: Header
    # Walked again each time they are needed: a tuple, or a recording file's frames, read anew
    # a chunk at a time (recordingfile.StoredFrames).
    frames: Iterable[Frame]
    damage: Damage | None = None  # why the frames stop before the session's end
    length_s: float | None = None  # the time of the last frame, when known without a walk

    @property
    def start(self) -> dt.datetime:
        return self.header.start

    @property
    def duration_s(self) -> float:
        if self.length_s is not None:
            return self.length_s
        last = 0.0
        for frame in self.frames:
            last = frame.time_s
        return last


def load_recording(data: bytes) -> Recording:
    """A recording file held as stored; its frames are read from it a chunk at a time."""
    header, frames, length_s, damage = open_recording(data)
    return Recording(header=header, frames=frames, damage=damage, length_s=length_s)


class FramesFrom:
    """The frames of ``frames`` from ``start_s`` on, walked again each time, as they are."""

    def __init__(self, frames: Iterable[Frame], start_s: float) -> None:
        self._frames = frames
        self._start_s = start_s

    def __iter__(self) -> Iterator[Frame]:
        return (f for f in self._frames if f.time_s >= self._start_s)


def damage_warning(recording: Recording, done: str, session_id: str = "") -> str:
    """The line that tells a user what of a damaged recording they got (``done``: "shown",
    "exported") and how to learn more; "" for a recording read to its session's end.
    ``session_id``: the one the user asked for (else the recording's own)."""
    damage = recording.damage
    if damage is None:
        return ""
    # From the file: no escapes to a terminal.
    sid = session_id or clean_text(recording.header.session_id, 100)
    if damage.ends_early:
        what = (
            f"ends early: {damage.problem} (the session is still running, its proxy stopped "
            "mid-session, or the file was cut)"
        )
    else:
        what = f"is damaged at {damage.problem}"
    return (
        f"WARNING: recording {sid} {what}; {done} up to {recording.duration_s:.1f}s; "
        f"run 'tctl recordings verify {sid}' for details"
    )


# A second of the session takes at most 100 s to play (a slower speed is a player that stops).
MIN_SPEED = 0.01
MAX_SPEED = 1000.0


def parse_speed(value: str) -> float:
    """``0.5x``, ``1x`` ... ``8x``, or a plain positive number."""
    text = value.strip().lower().removesuffix("x")
    try:
        speed = float(text)
    except ValueError:
        speed = 0.0
    if not MIN_SPEED <= speed <= MAX_SPEED:  # also refuses nan and inf
        raise BadParameterError(
            f'invalid --speed "{value}": use 0.5x, 1x, 2x, 4x, 8x or a number from '
            f"{MIN_SPEED:g} to {MAX_SPEED:g}"
        )
    return speed


# -- text and json --------------------------------------------------------------------------------


def render_text(recording: Recording) -> str:
    """The output stream as the terminal received it."""
    return "".join(text_pieces(recording))


def text_pieces(recording: Recording, piece_chars: int = 64 * 1024) -> Iterator[str]:
    """:func:`render_text` in pieces of about ``piece_chars`` characters, as it is read."""
    pending: list[str] = []
    size = 0
    for frame in recording.frames:
        if frame.code == OUTPUT:
            pending.append(frame.data)
            size += len(frame.data)
            if size >= piece_chars:
                yield "".join(pending)
                pending, size = [], 0
    if pending:
        yield "".join(pending)


def render_json(recording: Recording) -> Iterator[str]:
    """One JSON object a line (:func:`events_of`)."""
    return (json.dumps(doc, ensure_ascii=False) for doc in events_of(recording))


def render_yaml(recording: Recording) -> Iterator[str]:
    """One YAML document an event (:func:`events_of`), ``---`` between them."""
    for index, doc in enumerate(events_of(recording)):
        # Characters beyond ASCII are escaped: raw, a reader folds some (U+0085 into a space).
        yield ("---\n" if index else "") + yaml.safe_dump(doc, sort_keys=False, width=1_000_000)


def events_of(recording: Recording) -> Iterator[dict[str, Any]]:
    """The recording as events shaped like the session's audit events: session.start, then a
    ``print`` (output), ``input``, ``resize`` or ``marker`` per frame, then session.end. A
    damaged recording, or one that ends early, has no session.end: the recording does not say
    when or how the session ended, and a session.end at its last readable frame would claim a
    clean end at a wrong time."""
    header = recording.header
    start = recording.start
    common: dict[str, Any] = {
        "sid": header.session_id,
        "user": header.user,
        "login": header.login,
        "server_hostname": header.server_hostname,
    }

    def event(name: str, index: int, time_s: float, **fields: Any) -> dict[str, Any]:
        doc: dict[str, Any] = {"event": name}
        code = codes.code_for(name)
        if code:
            doc["code"] = code
        doc |= {
            "ei": index,
            "time": format_time(start + dt.timedelta(seconds=time_s)),
            "ms": round(time_s * 1000),
            **common,
            **fields,
        }
        return doc

    size = f"{header.width}:{header.height}"
    yield event(codes.SESSION_START, 0, 0.0, size=size, command=header.command)
    index = 1
    for frame in recording.frames:
        if frame.code == OUTPUT:
            yield event("print", index, frame.time_s, data=frame.data)
        elif frame.code == INPUT:
            yield event("input", index, frame.time_s, data=frame.data)
        elif frame.code == RESIZE:
            yield event(codes.RESIZE, index, frame.time_s, size=frame.data.replace("x", ":"))
        elif frame.code == MARKER:
            yield event("marker", index, frame.time_s, label=frame.data)
        index += 1
    if recording.damage is not None:
        return
    yield event(
        codes.SESSION_END,
        index,
        recording.duration_s,
        session_start=format_time(start),
        session_stop=format_time(start + dt.timedelta(seconds=recording.duration_s)),
        participants=list(header.extra.get("participants") or [header.user]),
        interactive=bool(header.term),  # as the audit log's session.end: it had a terminal
    )


# -- real time --------------------------------------------------------------------------------------


class Command(Enum):
    PAUSE = "pause"  # toggles
    FORWARD = "forward"
    BACK = "back"
    QUIT = "quit"


_KEYS = (
    (b" ", Command.PAUSE),
    (b"\x03", Command.QUIT),  # Ctrl-C, read as a byte: the terminal is in raw mode
    # Arrow keys, in normal (CSI) and application (SS3) cursor mode.
    (b"\x1b[C", Command.FORWARD),
    (b"\x1bOC", Command.FORWARD),
    (b"\x1b[D", Command.BACK),
    (b"\x1bOD", Command.BACK),
)


def parse_keys(data: bytes) -> list[Command]:
    """The commands in a read from the keyboard (several keys may arrive in one read)."""
    out: list[Command] = []
    i = 0
    while i < len(data):
        for key, command in _KEYS:
            if data.startswith(key, i):
                out.append(command)
                i += len(key)
                break
        else:
            i += 1  # any other key does nothing
    return out


def _timeline(frames: Iterable[Frame], idle_cap_s: float | None) -> Iterator[tuple[Frame, float]]:
    """Each frame with its time on the replay's timeline: the recorded times, with every gap
    longer than ``idle_cap_s`` shortened to it (``None``: unchanged)."""
    previous_recorded = previous = 0.0
    for frame in frames:
        gap = max(0.0, frame.time_s - previous_recorded)
        if idle_cap_s is not None:
            gap = min(gap, idle_cap_s)
        previous_recorded = frame.time_s
        previous += gap
        yield frame, previous


def idle_capped_times(frames: Iterable[Frame], idle_cap_s: float | None) -> list[float]:
    """Each frame's time on the replay's timeline (see :func:`_timeline`)."""
    return [time for _, time in _timeline(frames, idle_cap_s)]


class Player:
    """Replays output frames in real time through ``write``; ``commands`` (None: no keyboard)
    pause, seek and quit. Time is the loop's monotonic clock, scaled by ``speed``. The frames
    are walked as they play (seeking back walks them again from the start), so a recording is
    never held whole."""

    def __init__(
        self,
        recording: Recording,
        write: Callable[[str], None],
        *,
        speed: float = 1.0,
        idle_cap_s: float | None = None,
        start_s: float = 0.0,
    ) -> None:
        self._frames = recording.frames
        self._idle_cap_s = idle_cap_s
        self._write = write
        self._speed = speed
        self.position_s = 0.0  # on the replay's timeline, not the wall clock
        self.paused = False
        # One walk first: where the replay ends, and where --at starts it (the screen as it was
        # at that time is drawn at once; real time from there).
        self._end_s = 0.0
        self._start_at = 0.0 if start_s <= 0 else None
        for frame, time in _timeline(self._frames, idle_cap_s):
            self._end_s = time
            if self._start_at is None and frame.time_s >= start_s:
                self._start_at = time
        if self._start_at is None:
            self._start_at = self._end_s
        self._rewind()

    def _rewind(self) -> None:
        self._walk = _timeline(self._frames, self._idle_cap_s)
        self._pending = next(self._walk, None)  # the first frame not yet written

    @property
    def finished(self) -> bool:
        return self._pending is None

    async def run(self, commands: asyncio.Queue[Command] | None = None) -> None:
        loop = asyncio.get_running_loop()
        if self._start_at:
            self._play_until(self._start_at)
        while self._pending is not None or self.paused:
            command: Command
            if self.paused or self._pending is None:
                assert commands is not None  # pausing takes a keyboard
                command = await commands.get()
            else:
                due_s = self._pending[1]
                delay_s = (due_s - self.position_s) / self._speed
                started = loop.time()
                received = await _next_command(commands, delay_s)
                if received is None:
                    self._play_until(due_s)
                    continue
                command = received
                # The key came mid-gap: the replay moved on by the time it waited.
                waited = (loop.time() - started) * self._speed
                self.position_s = min(self.position_s + waited, due_s)
            if command is Command.QUIT:
                return
            self.handle(command)

    def handle(self, command: Command) -> None:
        if command is Command.PAUSE:
            self.paused = not self.paused
        elif command is Command.FORWARD:
            self._play_until(min(self.position_s + SEEK_STEP_S, self._end_s))
        elif command is Command.BACK:
            target = max(0.0, self.position_s - SEEK_STEP_S)
            self._write(RESET_TERMINAL)
            self._rewind()
            self._play_until(target)

    def _play_until(self, position_s: float) -> None:
        """Write at once every output frame up to ``position_s``."""
        pieces = []
        while self._pending is not None and self._pending[1] <= position_s:
            frame = self._pending[0]
            if frame.code == OUTPUT:
                pieces.append(frame.data)
            self._pending = next(self._walk, None)
        self.position_s = position_s
        if pieces:
            self._write("".join(pieces))


async def _next_command(
    commands: asyncio.Queue[Command] | None, timeout_s: float
) -> Command | None:
    """The next command if one comes within ``timeout_s``, else None."""
    if commands is None:
        await asyncio.sleep(max(0.0, timeout_s))
        return None
    if not commands.empty():
        return commands.get_nowait()
    if timeout_s <= 0:
        return None
    try:
        return await asyncio.wait_for(commands.get(), timeout_s)
    except TimeoutError:
        return None
