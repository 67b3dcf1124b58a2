"""The search index of recordings: what was typed and what the screen showed, as text lines with
their time offsets, kept in the backend as sessions run (``tsh recordings search``).

Only interactive sessions (with a terminal) are indexed: a binary stream (scp, rsync, a tar
pipe) is recorded but not searched. Lines are assembled from the bytes as a terminal would show
them, roughly: escape sequences and control codes are dropped, a backspace removes a character,
a carriage return starts the line again (input: ends it, as Enter does).
"""

from __future__ import annotations

import codecs
import contextlib
import datetime as dt
import heapq
import json
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.backend.base import check_key
from pyteleport.backend.groupwrite import GroupWriter
from pyteleport.clock import Clock, SystemClock
from pyteleport.errors import AlreadyExistsError, BadParameterError, NotFoundError
from pyteleport.model.timefmt import format_time, parse_time

log = logging.getLogger("pyteleport.events")

PREFIX = "/recordings/textindex/"
SESSIONS = "/recordings/textindex-sessions/"
LEGACY_PREFIX = "/recordings/index/"  # keyed by session id: read by RecordingIndex.upgrade
FIRST_WINDOW_US = 24 * 3600 * 1_000_000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
# The characters beyond ASCII whose case folds to ASCII letters (ß, the Kelvin sign, ligatures
# such as ﬁ, ...), as json.dumps escapes them; a test checks the list against Unicode's.
FOLDS_TO_ASCII = (
    "\u00df\u0130\u0149\u017f\u01f0\u1e96\u1e97\u1e98\u1e99\u1e9a\u1e9e\u212a"
    + "".join(chr(c) for c in range(0xFB00, 0xFB07))
)
FOLDS_TO_ASCII_ESCAPE = re.compile(
    b"|".join(re.escape(b"\\u%04x" % ord(c)) for c in FOLDS_TO_ASCII), re.IGNORECASE
)
MAX_BATCH_LINES = 1000
MAX_SESSION_LINES = 100_000
MAX_LINE = 1000
SEARCH_PAGE = 500
_ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"  # DCS, SOS, PM, APC
    r"|\x1b[@-Z\\-_]"  # two-byte sequences
    r"|\x1b[()*+][0-~]"  # character set selection
)


# CSI finals that take the cursor to another row (CUP, HVP, VPA, CUU, CUD, CNL, CPL), and those
# that move it along its row (CUF, CHA, CHT).
_ROW_MOVES = frozenset("HfdABEF")
_COLUMN_MOVES = frozenset("CGI")
_MOVES = re.compile(r"\x1b\[[0-?]*[HfdABEFCGI]")
MAX_PENDING = 4096  # an escape sequence kept for the next packet, at most
WRAP_BACK = 100  # a full line is wrapped at a space within its last this many characters


class LineAssembler:
    """One stream's bytes → complete lines of text. ``typed`` reads it as keystrokes (Enter is
    a carriage return); otherwise as a terminal's output."""

    def __init__(self, typed: bool) -> None:
        self._typed = typed
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._line: list[str] = []
        self._pending = ""  # an escape sequence cut off by the end of a packet
        self._return = False  # output: a carriage return was the last character

    def feed(self, data: bytes) -> list[str]:
        text = self._pending + self._decoder.decode(data)
        self._pending = ""
        cut = text.rfind("\x1b")
        if cut != -1 and self._unfinished(text, cut):
            text, self._pending = text[:cut], text[cut:]
        lines: list[str] = []
        if not _MOVES.search(text):  # the usual case (colours, a shell): the escapes just go
            self._chars(_ESCAPES.sub("", text), lines)
            return [line for line in lines if line.strip()]
        at = 0
        for escape in _ESCAPES.finditer(text):
            self._chars(text[at : escape.start()], lines)
            at = escape.end()
            self._escape(escape.group(), lines)
        self._chars(text[at:], lines)
        return [line for line in lines if line.strip()]

    @staticmethod
    def _unfinished(text: str, cut: int) -> bool:
        """Whether the escape sequence at ``cut``, the last in ``text``, may go on in the next
        packet: kept for it, so its end is not taken for text. A string sequence (a window
        title) is kept until its terminator, up to MAX_PENDING characters."""
        left = len(text) - cut
        if left >= MAX_PENDING:
            return False
        match = _ESCAPES.match(text, cut)
        if match is None:
            return left < 64
        if text[cut + 1 : cut + 2] in ("]", "P", "X", "^", "_"):
            ended = text.endswith(("\x07", "\x1b\\"))
            return match.end() == len(text) and not ended
        return False

    def _escape(self, sequence: str, lines: list[str]) -> None:
        """A full-screen program (vim, top, less) draws its rows by moving the cursor, not
        with line feeds: a move to another row ends the line, one along the row is a space,
        so each row is a line of its own and words do not run together."""
        if self._typed or not sequence.startswith("\x1b["):
            return
        if any(" " <= c <= "/" for c in sequence[2:-1]):  # intermediates: another function
            return
        final = sequence[-1]
        if final in _ROW_MOVES:
            self._return = False
            if self._line:
                lines.append(self._take())
        elif final == "G" and sequence[2:-1] in ("", "1"):
            self._return = True  # to the first column: what follows overwrites, as after \r
        elif final in _COLUMN_MOVES and self._line and self._line[-1] != " ":
            self._line.append(" ")

    def _chars(self, text: str, lines: list[str]) -> None:
        for char in text:
            if self._return:
                # Output: a carriage return not followed by a line feed took the cursor back
                # to the start of the line, and what follows overwrites it.
                self._return = False
                if char != "\n":
                    self._line.clear()
            if char == "\n" or (char == "\r" and self._typed):
                lines.append(self._take())
            elif char == "\r":
                self._return = True
            elif char in ("\b", "\x7f"):
                if self._line:
                    self._line.pop()
            elif char == "\x15" and self._typed:  # Ctrl-U
                self._line.clear()
            elif char == "\t" or char >= " ":
                if len(self._line) >= MAX_LINE:  # as a terminal wraps it: no text is lost
                    self._wrap(lines)
                self._line.append(char)

    def _wrap(self, lines: list[str]) -> None:
        """A full line goes on in the next: at its last space if one is near the end, so a
        word is not cut in two (a search for it would find neither half)."""
        space = max(
            (
                i
                for i in range(len(self._line) - 1, MAX_LINE - WRAP_BACK, -1)
                if self._line[i] == " "
            ),
            default=-1,
        )
        if space <= 0:
            lines.append(self._take())
            return
        rest = self._line[space + 1 :]
        del self._line[space:]
        lines.append(self._take())
        self._line.extend(rest)

    def flush(self) -> list[str]:
        line = self._take()
        return [line] if line.strip() else []

    def _take(self) -> str:
        line = "".join(self._line).rstrip()
        self._line.clear()
        return line


@dataclass(frozen=True, slots=True)
class IndexedSession:
    """Who and where, stored with each batch of lines so a search needs no other lookup."""

    session_id: str
    user: str
    login: str
    node: str
    start: dt.datetime
    participants: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SearchHit:
    session: IndexedSession
    offset_ms: int
    kind: str  # "input" or "output"
    line: str


@dataclass(frozen=True, slots=True)
class SearchResults:
    hits: list[SearchHit]
    truncated: bool  # more lines matched than were asked for: these are the newest
    # Sessions searched whose index holds only part of their output (a second of more than
    # MAX_BATCH_LINES lines, or past MAX_SESSION_LINES): their recordings have the rest.
    partial: list[str] = field(default_factory=list)


class RecordingIndex:
    """Batches of lines under ``/recordings/textindex/<start>/<sid>/<batch>``, where ``<start>``
    is the session's start in microseconds since 1970, zero-padded: the keys follow time, so a
    search reads the newest sessions first and stops once it has enough, and ``since`` is where
    the range begins. ``/recordings/textindex-sessions/<sid>`` names a session's start, for
    :meth:`delete`. The batches of every session are written as group commits: a thousand
    sessions indexing their second at once cost one transaction.

    Entries written before the keys followed time (``/recordings/index/<sid>/<batch>``) are
    moved once by :meth:`upgrade`."""

    def __init__(self, backend: Backend, clock: Clock | None = None) -> None:
        self._backend = backend
        self._clock = clock or SystemClock()
        self._writer = GroupWriter(backend)

    async def add(
        self,
        session: IndexedSession,
        batch: int,
        lines: Sequence[tuple[int, str, str]],
        *,
        record_start: bool | None = None,
        partial: bool = False,
    ) -> None:
        """``lines``: (offset in ms, "input" or "output", text). ``record_start`` (by default
        with batch 0) writes the session's start for :meth:`delete` in the same transaction.
        ``partial``: the bounds left some of the session's lines out, so far."""
        doc: dict[str, Any] = {
            "sid": session.session_id,
            "user": session.user,
            "login": session.login,
            "node": session.node,
            "start": format_time(session.start),
            "participants": list(session.participants),
            "lines": [list(line) for line in lines],
        }
        if partial:
            doc["partial"] = True
        value = json.dumps(doc).encode()
        items = [Item(key=_batch_key(session.start, session.session_id, batch), value=value)]
        if batch == 0 if record_start is None else record_start:
            items.append(_session_item(session.session_id, session.start))
        await self._writer.create(items)

    async def delete(self, session_id: str) -> None:
        """Remove a session's lines (a removed recording's, say)."""
        check_key(f"{SESSIONS}{session_id}")
        try:
            item = await self._backend.get(f"{SESSIONS}{session_id}")
        except NotFoundError:
            pass
        else:
            start = f"{PREFIX}{item.value.decode()}/{session_id}/"
            await self._backend.delete_range(start, prefix_end(start))
            await self._backend.delete(item.key)
        legacy = f"{LEGACY_PREFIX}{session_id}/"
        await self._backend.delete_range(legacy, prefix_end(legacy))

    async def prune(self, cutoff: dt.datetime, stored: Iterable[str]) -> list[str]:
        """Remove the lines of sessions whose recording is not among ``stored`` (it failed, or
        was never kept) and whose last line was shown before ``cutoff``: the retention's
        sweep, for what no removed recording takes with it. The ids of those sessions.

        Only sessions that started before ``cutoff`` are read; a session with a stored
        recording goes when its recording does (:meth:`delete`)."""
        keep = set(stored)
        end = f"{PREFIX}{_micros(cutoff):017d}"
        newest: dict[str, tuple[int, str]] = {}  # sid -> (time of its last line, start key)
        start = PREFIX
        while page := await self._backend.get_range(start, end, limit=SEARCH_PAGE):
            for item in page:
                started, _, rest = item.key[len(PREFIX) :].partition("/")
                sid = rest.partition("/")[0]
                if sid in keep or not (started.isdigit() and sid):
                    continue  # kept, or no key of ours
                try:
                    lines = json.loads(item.value)["lines"]
                    last_ms = max((int(line[0]) for line in lines), default=0)
                except (ValueError, KeyError, TypeError, IndexError):
                    last_ms = 0  # unreadable: as old as its session
                shown = int(started) + last_ms * 1000
                newest[sid] = (max(shown, newest.get(sid, (0, ""))[0]), started)
            start = page[-1].key + "\x01"
        gone = []
        for sid, (shown, started) in newest.items():
            if shown >= _micros(cutoff):
                continue
            prefix = f"{PREFIX}{started}/{sid}/"
            await self._backend.delete_range(prefix, prefix_end(prefix))
            with contextlib.suppress(NotFoundError):
                await self._backend.delete(f"{SESSIONS}{sid}")
            gone.append(sid)
        return gone

    async def upgrade(self) -> int:
        """Move the entries of the layout keyed by session id under the keys that follow
        time, a page (two transactions) at a time; the number of batches moved. Safe to run
        again after an interruption, and from several processes at once: a page is written
        under its new keys before its old keys go."""
        moved = 0
        end = prefix_end(LEGACY_PREFIX)
        while page := await self._backend.get_range(LEGACY_PREFIX, end, limit=SEARCH_PAGE):
            items: dict[str, Item] = {}
            for item in page:
                sid, _, batch = item.key[len(LEGACY_PREFIX) :].partition("/")
                try:
                    doc = json.loads(item.value)
                    start = parse_time(str(doc["start"]))
                    number = int(batch)
                    if str(doc["sid"]) != sid:
                        raise ValueError("the entry names another session")
                    key = _batch_key(start, sid, number)
                    started = _session_item(sid, start)
                except (ValueError, KeyError, TypeError, BadParameterError) as exc:
                    log.warning("dropping unreadable search index entry %s: %s", item.key, exc)
                    continue
                items[key] = Item(key=key, value=item.value)
                items[started.key] = started
                moved += 1
            try:
                await self._backend.create_many(list(items.values()))
            except AlreadyExistsError:  # another process moved some of them meanwhile
                for new in items.values():
                    await self._backend.put(new)
            # Keys hold no NUL, so "\x01" after the last key read ends the range just after it.
            await self._backend.delete_range(page[0].key, page[-1].key + "\x01")
        if moved:
            log.info("moved %d batches of the search index under keys that follow time", moved)
        return moved

    async def search(
        self,
        text: str,
        *,
        user: str = "",
        node: str = "",
        since: dt.datetime | None = None,
        visible: Any = None,
        limit: int = 100,
    ) -> SearchResults:
        """The newest ``limit`` lines holding ``text`` (case-insensitive), in the order they
        were shown: by the session's start, then the time in the session. ``visible(session)``
        decides which sessions the caller may see.

        The index is read newest first, a window of time at a time (the last day, then the
        two before it, four, ...: each window read forward, a page at a time), and the search
        stops after the window in which more than ``limit`` lines had matched: every line in
        an older window is older than all of these. Only ``limit`` hits are held."""
        needle = text.casefold()
        # Most entries hold no match: a needle of printable ASCII without JSON's escaped
        # characters is looked for in the entry's bytes first, and only an entry that may hold
        # it is parsed. The entry is ASCII (json.dumps writes every other character as a \u
        # escape), so its text holds the needle only if its bytes do, unless the text has a
        # character whose case folds to ASCII letters (ß is ss): such an entry is parsed.
        plain = (
            needle.encode()
            if needle.isascii() and needle.isprintable() and not {'"', "\\"} & set(needle)
            else None
        )
        newest: list[tuple[tuple[str, str, int, int], SearchHit]] = []  # a min-heap
        found = 0
        partial: dict[str, None] = {}  # sessions indexed in part, in the order met
        end = prefix_end(PREFIX)
        floor = PREFIX if since is None else f"{PREFIX}{_micros(since):017d}"
        oldest = await self._backend.get_range(floor, end, limit=1)
        if not oldest:
            return SearchResults([], truncated=False)
        floor = max(floor, oldest[0].key)
        span_us = FIRST_WINDOW_US
        window_start = max(0, _micros(self._clock.now()) - span_us)
        top = end
        while True:
            bottom = max(floor, f"{PREFIX}{window_start:017d}")
            start = bottom
            while True:
                page = await self._backend.get_range(start, top, limit=SEARCH_PAGE)
                for item in page:
                    raw = item.value
                    if _PARTIAL in raw:
                        partial.update(
                            dict.fromkeys(_partial_session(raw, user, node, since, visible))
                        )
                    if (
                        plain is not None
                        and plain not in raw.lower()
                        and raw.isascii()
                        and not FOLDS_TO_ASCII_ESCAPE.search(raw)
                    ):
                        continue
                    # Ordered by the key's start (microseconds; the entry's is milliseconds),
                    # the order the windows read in.
                    start_us = item.key[len(PREFIX) : len(PREFIX) + 17]
                    for hit in _matches(raw, needle, user, node, since, visible):
                        found += 1
                        key = (start_us, hit.session.session_id, hit.offset_ms, found)
                        if len(newest) < limit:
                            heapq.heappush(newest, (key, hit))
                        elif key > newest[0][0]:
                            heapq.heapreplace(newest, (key, hit))
                if len(page) < SEARCH_PAGE:
                    break
                start = page[-1].key + "\x01"
            if found > limit or bottom <= floor:
                break
            top, span_us = bottom, span_us * 2
            window_start = max(0, window_start - span_us)
        return SearchResults(
            [hit for _, hit in sorted(newest)], truncated=found > limit, partial=list(partial)
        )


def _micros(when: dt.datetime) -> int:
    return max(0, (when - _EPOCH) // dt.timedelta(microseconds=1))


def _batch_key(start: dt.datetime, session_id: str, batch: int) -> str:
    return check_key(f"{PREFIX}{_micros(start):017d}/{session_id}/{batch:08d}")


def _session_item(session_id: str, start: dt.datetime) -> Item:
    return Item(key=check_key(f"{SESSIONS}{session_id}"), value=b"%017d" % _micros(start))


_PARTIAL = b'"partial": true'


def _partial_session(
    raw: bytes, user: str, node: str, since: dt.datetime | None, visible: Any
) -> list[str]:
    """The session of a batch marked partial, if the search takes it in: [sid] or []."""
    try:
        marked = json.loads(raw).get("partial") is True
    except (ValueError, AttributeError):
        return []
    taken = _batch_of(raw, user, node, since, visible) if marked else None
    return [taken[0].session_id] if taken is not None else []


def _batch_of(
    raw: bytes, user: str, node: str, since: dt.datetime | None, visible: Any
) -> tuple[IndexedSession, list[tuple[int, str, str]]] | None:
    """A batch's session and lines, if the search takes that session in."""
    try:
        doc = json.loads(raw)
        session = IndexedSession(
            session_id=str(doc["sid"]),
            user=str(doc["user"]),
            login=str(doc["login"]),
            node=str(doc["node"]),
            start=parse_time(str(doc["start"])),
            participants=tuple(str(p) for p in doc.get("participants", [])),
        )
        lines = [(int(o), str(k), str(t)) for o, k, t in doc["lines"]]
    except (ValueError, KeyError, TypeError):
        return None
    if (user and session.user != user) or (node and session.node != node):
        return None
    if since is not None and session.start < since:
        return None
    if visible is not None and not visible(session):
        return None
    return session, lines


def _matches(
    raw: bytes,
    needle: str,
    user: str,
    node: str,
    since: dt.datetime | None,
    visible: Any,
) -> Iterable[SearchHit]:
    taken = _batch_of(raw, user, node, since, visible)
    if taken is None:
        return []
    session, lines = taken
    return [
        SearchHit(session, offset, kind, line)
        for offset, kind, line in lines
        if needle in line.casefold()
    ]


class SessionTextIndex:
    """One interactive session's lines, written to the index a batch at a time: when a second
    has passed since the last batch, and at the end (:meth:`flush`).

    Bounded, since the output of ``cat`` on a large file in a terminal is lines too: at most
    ``MAX_BATCH_LINES`` are held between two writes (the rest of that second is not indexed),
    and after ``MAX_SESSION_LINES`` the session's streams are no longer read for the index.
    The recording keeps everything either way."""

    def __init__(self, index: RecordingIndex, session: IndexedSession) -> None:
        self._index = index
        self.session = session
        self._output = LineAssembler(typed=False)
        self._input = LineAssembler(typed=True)
        self._lines: list[tuple[int, str, str]] = []
        self._batch = 0
        self._start_written = False
        self.indexed = 0  # lines taken so far
        self.dropped = 0  # lines left out by the bounds
        self._overflow = False  # output came after MAX_SESSION_LINES
        self._partial_written = False  # a batch that says the index holds part of it

    @property
    def full(self) -> bool:
        return self.indexed >= MAX_SESSION_LINES

    @property
    def partial(self) -> bool:
        """Whether the bounds left some of the session's lines out."""
        return bool(self.dropped) or self._overflow

    def output(self, data: bytes, offset_ms: int) -> None:
        if not self.full:
            self._take(offset_ms, "output", self._output.feed(data))
        elif data.strip():
            self._overflow = True

    def input(self, data: bytes, offset_ms: int) -> None:
        if not self.full:
            self._take(offset_ms, "input", self._input.feed(data))
        elif data.strip():
            self._overflow = True

    def line(self, offset_ms: int, kind: str, text: str) -> None:
        """A line known whole, such as an exec's command."""
        if text.strip():
            self._take(offset_ms, kind, [text[:MAX_LINE]])

    def _take(self, offset_ms: int, kind: str, lines: list[str]) -> None:
        room = min(MAX_BATCH_LINES - len(self._lines), MAX_SESSION_LINES - self.indexed)
        kept = lines[: max(0, room)]
        self._lines += [(offset_ms, kind, line) for line in kept]
        self.indexed += len(kept)
        self.dropped += len(lines) - len(kept)

    @property
    def pending(self) -> bool:
        """Lines to write, or the news that the bounds cut the session (said while it runs)."""
        return bool(self._lines) or (self.partial and not self._partial_written)

    async def flush(self, offset_ms: int, final: bool = False) -> None:
        if final:
            self._take(offset_ms, "output", self._output.flush())
            self._take(offset_ms, "input", self._input.flush())
        # A session whose lines the bounds cut says so in a batch, an empty one if need be, so
        # a search can tell that its recording has more than its index.
        flag = self.partial and not self._partial_written
        if not self._lines and not flag:
            return
        lines, self._lines = self._lines, []
        batch, self._batch = self._batch, self._batch + 1
        # The session's start goes with every batch until one is written: without it, the
        # session's lines could not be removed with its recording.
        await self._index.add(
            self.session,
            batch,
            lines,
            record_start=not self._start_written,
            partial=self.partial,
        )
        self._start_written = True
        self._partial_written = self._partial_written or self.partial
