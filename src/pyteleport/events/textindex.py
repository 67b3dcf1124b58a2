"""The search index of recordings: what the screen showed, as text lines with their time
offsets, kept in the backend as sessions run (``tsh recordings search``).

Only interactive sessions (with a terminal) are indexed, and an exec session's command: a binary
stream (scp, rsync, a tar pipe) is recorded but not searched. The lines are the rows of a screen
the output is drawn on (:mod:`pyteleport.events.screentext`), so a command edited before Enter
or a line typed into an editor reads as it was finally shown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import heapq
import json
import logging
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.backend.base import check_key
from pyteleport.backend.groupwrite import GroupWriter
from pyteleport.clock import Clock, SystemClock
from pyteleport.errors import AlreadyExistsError, BadParameterError, NotFoundError
from pyteleport.events.sanitize import clean_text
from pyteleport.events.screentext import MAX_LINE, TextScreen
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
BUDGET_S = 0.05  # the CPU time the screen may take of each second of a session's output
BUDGET_PIECE = 4096  # bytes drawn between two looks at the time taken
SEARCH_PAGE = 500


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
        """The newest ``limit`` lines holding ``text`` (case-insensitive, runs of white space
        as one space), in the order they were shown: by the session's start, then the time in the session. ``visible(session)``
        decides which sessions the caller may see.

        The index is read newest first, a window of time at a time (the last day, then the
        two before it, four, ...: each window read forward, a page at a time), and the search
        stops after the window in which more than ``limit`` lines had matched: every line in
        an older window is older than all of these. Only ``limit`` hits are held."""
        # The lines hold runs of white space as one space, as the screen's columns were.
        needle = (" ".join(text.split()) or text).casefold()
        # Most entries hold no match: a needle of printable ASCII without JSON's escaped
        # characters is looked for in the entry's bytes first, and only an entry that may hold
        # it is parsed. The entry is ASCII (json.dumps writes every other character as a \u
        # escape), so its text holds the needle only if its bytes do, unless the text has a
        # character whose case folds to ASCII letters (ß is ss): such an entry is parsed.
        # With white space in the needle, its longest word is looked for (lines written before
        # runs of white space were one space may hold several between the words).
        word = max(needle.split(), key=len, default=needle)
        plain = (
            word.encode()
            if word.isascii() and word.isprintable() and not {'"', "\\"} & set(word)
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
        # Lines written before runs of white space were one space are matched as if they were.
        if needle in line.casefold()
        or (("  " in line or "\t" in line) and needle in " ".join(line.split()).casefold())
    ]


class SessionTextIndex:
    """One interactive session's lines, written to the index a batch at a time: when a second
    has passed since the last batch, and at the end (:meth:`flush`).

    Bounded, since the output of ``cat`` on a large file in a terminal is lines too: at most
    ``MAX_BATCH_LINES`` are held between two writes (the rest of that second is not indexed),
    and after ``MAX_SESSION_LINES`` the session's output is no longer read for the index.
    The recording keeps everything either way."""

    def __init__(
        self, index: RecordingIndex, session: IndexedSession, lines: int = 24, columns: int = 80
    ) -> None:
        self._index = index
        self.session = session
        self._screen: TextScreen | None = None  # made at the first output
        self._height = lines
        self._width = columns
        self._lines: list[tuple[int, str, str]] = []
        self._batch = 0
        self._start_written = False
        self.indexed = 0  # lines taken so far
        self.dropped = 0  # lines left out by the bounds
        self._overflow = False  # output came after MAX_SESSION_LINES
        self._second = -1  # the second of the session whose output is being read
        self._spent_s = 0.0  # the time the screen took in it
        self._skipped = False  # output left unread, past a second's time budget
        self._partial_written = False  # a batch that says the index holds part of it

    @property
    def full(self) -> bool:
        return self.indexed >= MAX_SESSION_LINES

    @property
    def partial(self) -> bool:
        """Whether the bounds left some of the session's lines out."""
        return bool(self.dropped) or self._overflow or self._skipped

    def output(self, data: bytes, offset_ms: int) -> None:
        if self.full:
            if data.strip():
                self._overflow = True
            return
        second = offset_ms // 1000
        if second != self._second:
            self._second, self._spent_s = second, 0.0
        elif self._spent_s >= BUDGET_S:
            # Output that takes the screen long to draw (a flood, or sequences made to be
            # slow) is not read for the rest of this second: the proxy's time is the
            # sessions', and the recording has everything.
            self._skipped = True
            return
        if self._screen is None:
            self._screen = TextScreen(self._height, self._width)
        # A piece at a time, so a large packet is held to the budget too.
        for start in range(0, len(data), BUDGET_PIECE):
            if start and self._spent_s >= BUDGET_S:
                self._skipped = True
                return
            began = time.thread_time()
            self._take("output", self._screen.feed(data[start : start + BUDGET_PIECE], offset_ms))
            self._spent_s += time.thread_time() - began

    def resize(self, lines: int, columns: int) -> None:
        """The terminal's window changed size."""
        self._height, self._width = lines, columns
        if self._screen is not None and not self.full:
            self._take("output", self._screen.resize(lines, columns))

    def line(self, offset_ms: int, kind: str, text: str) -> None:
        """A line known whole, such as an exec's command (its runs of white space as one
        space, as the screen's lines)."""
        # A control character (ESC, BEL, a C1 CSI) is kept as text, \x1b, as the audit log
        # shows the command: never raw in a line the index hands out.
        if line := clean_text(" ".join(text.split()), MAX_LINE):
            self._take(kind, [(offset_ms, line)])

    def _take(self, kind: str, lines: list[tuple[int, str]]) -> None:
        room = min(MAX_BATCH_LINES - len(self._lines), MAX_SESSION_LINES - self.indexed)
        kept = lines[: max(0, room)]
        self._lines += [(offset_ms, kind, line) for offset_ms, line in kept]
        self.indexed += len(kept)
        self.dropped += len(lines) - len(kept)

    @property
    def pending(self) -> bool:
        """Lines to write (rows of the screen the cursor left count), or the news that the
        bounds cut the session (said while it runs)."""
        return (
            bool(self._lines)
            or (self._screen is not None and self._screen.unsettled)
            or (self.partial and not self._partial_written)
        )

    async def flush(self, final: bool = False) -> None:
        """Write what the screen settled on since the last flush (all of it, ``final``): each
        line with the time its row last changed."""
        if self._screen is not None and not self.full:
            self._take("output", self._screen.settle(final=final))
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
