"""The catalog of recordings: one backend entry per stored recording, keyed newest first, so
``recordings ls`` and the retention sweep read the recordings of a time range (or the newest
fifty) without opening any recording or listing the store.

:class:`CatalogedStore` wraps the cluster's :class:`RecordingStore` and keeps the catalog in
step with it: a recording is catalogued when it is stored (and, for a store that takes a
running session's parts, when its first part arrives), and leaves the catalog when it is
removed. A store that held recordings before the catalog existed is catalogued once, when the
auth service first starts with it (:meth:`RecordingCatalog.fill`).

Keys: ``/recordings/catalog/<10^17 - 1 - start in µs, 17 digits>/<sid>`` (ascending keys are
newest first), the same under ``/recordings/catalog-participants/<user, %-quoted>/`` for each
participant (what a user who sees only their own sessions reads),
``/recordings/catalog-sessions/<sid>`` (the keys of the session's entries, one a line) and
``/recordings/catalog-filled/<sha256 of the store's name>``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.backend.base import check_key
from pyteleport.clock import Clock, SystemClock
from pyteleport.errors import (
    AlreadyExistsError,
    BadParameterError,
    NotFoundError,
    RecordingError,
    TeleportError,
)
from pyteleport.events.recordingfile import header_and_duration_of
from pyteleport.events.store import (
    RecordingInfo,
    RecordingStore,
    StoreScan,
    info_from_doc,
    info_from_header,
    info_to_doc,
    read_info,
)

log = logging.getLogger("pyteleport.events")

PREFIX = "/recordings/catalog/"
SESSIONS = "/recordings/catalog-sessions/"
BY_PARTICIPANT = "/recordings/catalog-participants/"
FILLED = "/recordings/catalog-filled/"
PAGE = 500  # entries read at a time
SCAN_BUDGET = 10 * PAGE  # entries one listing request reads at most
FILL_BATCH = 200  # recordings written in one transaction by a fill
LIVE_REFRESH_S = 60.0  # a running session's entry is brought up to date this often
_LAST_US = 10**17 - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_CURSOR = re.compile(r"[0-9]{17}/[A-Za-z0-9._-]{1,128}")


def _micros(value: dt.datetime) -> int:
    return max(0, min(_LAST_US, (value - _EPOCH) // dt.timedelta(microseconds=1)))


def _newest_first(value: dt.datetime) -> str:
    return f"{_LAST_US - _micros(value):017d}"


def entry_key(info: RecordingInfo) -> str:
    return check_key(f"{PREFIX}{_newest_first(info.timestamp)}/{info.session_id}")


def check_cursor(cursor: str) -> str:
    """A page's ``next`` as a client sends it back; BadParameterError if it is not one."""
    if not _CURSOR.fullmatch(cursor):
        raise BadParameterError(f'invalid recordings cursor "{cursor[:80]}"')
    return cursor


@dataclass(frozen=True, slots=True)
class Reconciled:
    """What :meth:`RecordingCatalog.reconcile` did."""

    added: list[str]  # sessions catalogued anew, or again with a changed entry
    removed: list[str]  # sessions whose recording is not in the store
    unreadable: list[tuple[str, str]]  # (name in the store, why): no recording to list
    # (name in the store, what it holds): another session's recording, listed as named
    misnamed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CatalogPage:
    recordings: list[RecordingInfo]
    # Where the next page starts (give it back as ``after``); "" when no recording is left.
    next: str


class RecordingCatalog:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def add(self, info: RecordingInfo) -> None:
        """Catalogue a recording, or replace its entry (a longer duration, say)."""
        pointer, *entries = catalog_items(info)
        try:
            old = (await self._backend.get(pointer.key)).value.decode().split("\n")
        except NotFoundError:
            old = []
        stale = [key for key in old if key not in {e.key for e in entries}]
        # The pointer first, naming every key the session may have: one left by a crash
        # before its entries are written points at nothing, which a removal takes in its
        # stride, while an entry that no pointer names could never be removed.
        if stale:
            both = "\n".join([e.key for e in entries] + stale).encode()
            await self._backend.put(Item(key=pointer.key, value=both))
            for key in stale:
                with contextlib.suppress(NotFoundError):
                    await self._backend.delete(key)
        await self._backend.put(pointer)
        for entry in entries:
            await self._backend.put(entry)

    async def remove(self, session_id: str) -> None:
        pointer = SESSIONS + session_id
        try:
            keys = (await self._backend.get(pointer)).value.decode().split("\n")
        except NotFoundError:
            return
        for gone in [*keys, pointer]:
            with contextlib.suppress(NotFoundError):
                await self._backend.delete(gone)

    async def get(self, session_id: str) -> RecordingInfo:
        """One recording's entry; NotFoundError if it is not catalogued."""
        keys = (await self._backend.get(SESSIONS + session_id)).value.decode()
        info = _decode(await self._backend.get(keys.split("\n")[0]))
        if info is None:
            raise NotFoundError(f'recording for session "{session_id}" is not found')
        return info

    async def list(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 50,
        want: Callable[[RecordingInfo], bool] | None = None,
        after: str = "",
        participant: str = "",
        scan: int = SCAN_BUDGET,
    ) -> CatalogPage:
        """The newest ``limit`` recordings that started in ``[since, until)`` and that
        ``want``, after the cursor ``after`` (a previous page's ``next``); only those of
        sessions ``participant`` took part in, if given (read from their own keys: a user of
        few sessions among many does not have the others read).

        At most ``scan`` entries are read: a page that stops there has fewer recordings than
        ``limit`` and a ``next`` to go on from, so a filter that matches little costs a caller
        several requests, never one unbounded one."""
        if limit < 1:
            raise BadParameterError(f"bad recordings limit {limit}: expected 1 or more")
        prefix = _participant_prefix(participant) if participant else PREFIX
        start, end = _range(since, until, prefix)
        if after:
            start = max(start, prefix + check_cursor(after) + "\x01")
        found: list[RecordingInfo] = []
        last_found = last_read = ""
        scanned = 0
        while start < end:
            page = await self._backend.get_range(start, end, limit=PAGE)
            for item in page:
                if scanned == scan:
                    cursor = last_found if len(found) == limit else last_read
                    return CatalogPage(found, cursor[len(prefix) :])
                scanned += 1
                last_read = item.key
                info = _decode(item)
                if info is None or (want is not None and not want(info)):
                    continue
                if len(found) == limit:  # one more is wanted: the next page starts there
                    return CatalogPage(found, last_found[len(prefix) :])
                found.append(info)
                last_found = item.key
            if len(page) < PAGE:
                break
            start = page[-1].key + "\x01"  # keys hold no NUL: just after the last one read
        return CatalogPage(found, "")

    async def started_before(self, cutoff: dt.datetime) -> AsyncIterator[RecordingInfo]:
        """Every recording that started before ``cutoff``, newest first, a page at a time (an
        entry removed meanwhile is not read again)."""
        start, end = _range(None, cutoff)
        while start < end:
            page = await self._backend.get_range(start, end, limit=PAGE)
            for item in page:
                info = _decode(item)
                if info is not None:
                    yield info
            if len(page) < PAGE:
                return
            start = page[-1].key + "\x01"

    async def reconcile(self, store: RecordingStore) -> Reconciled:
        """Make the catalog list what ``store`` holds (``tctl recordings reindex``): the
        sessions catalogued anew or again (missing, or their entry out of date), those whose
        entry went (their recording is not in the store), and what the store holds that is no
        readable recording. The catalog is read before the store, so a recording stored
        meanwhile is not taken for one that is gone."""
        catalogued: dict[str, RecordingInfo] = {}
        after = ""
        while True:
            page = await self.list(limit=PAGE, after=after)
            catalogued.update((i.session_id, i) for i in page.recordings)
            if not page.next:
                break
            after = page.next
        scan = await store.scan()
        held = scan.recordings
        added = []
        for info in held:
            if catalogued.get(info.session_id) != info:
                await self.add(info)
                added.append(info.session_id)
        removed = sorted(set(catalogued) - {i.session_id for i in held})
        for session_id in removed:
            await self.remove(session_id)
        await self._backend.put(Item(key=_marker(store), value=store.name.encode()))
        return Reconciled(added, removed, scan.unreadable, scan.misnamed)

    async def filled(self, store: RecordingStore) -> bool:
        """True once what ``store`` held before the catalog is catalogued."""
        try:
            await self._backend.get(_marker(store))
        except NotFoundError:
            return False
        return True

    async def fill_until_done(self, store: RecordingStore, interval_s: float) -> None:
        """:meth:`fill`, tried again every ``interval_s`` until it succeeds (a store that
        could not be reached at the start)."""
        while True:
            try:
                await self.fill(store)
                return
            except (TeleportError, OSError) as exc:
                log.warning("could not catalogue the recordings of %s yet: %s", store.name, exc)
            await asyncio.sleep(interval_s)

    async def fill(self, store: RecordingStore) -> int:
        """Catalogue what ``store`` held before the catalog existed, once per store (by its
        name); the number of recordings added. Safe to run again after an interruption, and
        from several processes at once."""
        if await self.filled(store):
            return 0
        infos = await store.list()
        for first in range(0, len(infos), FILL_BATCH):
            items = [
                item for info in infos[first : first + FILL_BATCH] for item in catalog_items(info)
            ]
            try:
                await self._backend.create_many(items)
            except AlreadyExistsError:  # some are catalogued already (another process, a retry)
                for item in items:
                    await self._backend.put(item)
        await self._backend.put(Item(key=_marker(store), value=store.name.encode()))
        if infos:
            log.info("catalogued %d recording(s) of %s", len(infos), store.name)
        return len(infos)


def _range(
    since: dt.datetime | None, until: dt.datetime | None, prefix: str = PREFIX
) -> tuple[str, str]:
    """The keys under ``prefix`` of the recordings that started in ``[since, until)``: a later
    start has a smaller key, so ``until`` bounds the range from below. A bound at or before
    1970 (the first key) takes in everything after it, or nothing before it."""
    start = prefix if until is None else _bound(until, prefix)
    end = prefix_end(prefix) if since is None else _bound(since, prefix)
    return start, end


def _bound(value: dt.datetime, prefix: str) -> str:
    """The first key of a start earlier than ``value``."""
    first_earlier = _LAST_US - _micros(value) + 1
    if first_earlier > _LAST_US:  # nothing starts before 1970
        return prefix_end(prefix)
    return f"{prefix}{first_earlier:017d}"


def _marker(store: RecordingStore) -> str:
    return FILLED + hashlib.sha256(store.name.encode()).hexdigest()


def _participant_prefix(name: str) -> str:
    return f"{BY_PARTICIPANT}{urllib.parse.quote(name, safe='')}/"


def catalog_items(info: RecordingInfo) -> list[Item]:
    """The session's pointer (the keys of its entries, one a line), then its entry and one
    for each participant."""
    key = entry_key(info)
    keys = [key] + [
        check_key(f"{_participant_prefix(p)}{key[len(PREFIX) :]}")
        for p in sorted(set(info.participants))
    ]
    value = json.dumps(info_to_doc(info)).encode()
    pointer = Item(key=check_key(SESSIONS + info.session_id), value="\n".join(keys).encode())
    return [pointer] + [Item(key=k, value=value) for k in keys]


def _decode(item: Item) -> RecordingInfo | None:
    try:
        return info_from_doc(json.loads(item.value))
    except (ValueError, KeyError, TypeError, BadParameterError) as exc:
        log.warning("skipping unreadable recordings catalog entry %s: %s", item.key, exc)
        return None


class CatalogedStore:
    """A :class:`RecordingStore` whose recordings are catalogued as they come and go."""

    def __init__(
        self, store: RecordingStore, catalog: RecordingCatalog, clock: Clock | None = None
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.name = store.name
        self._clock = clock or SystemClock()
        # Running sessions whose parts this store takes: their entry, and when it was last
        # written (None: not yet, the catalog refused it).
        self._live: dict[str, tuple[RecordingInfo, float | None]] = {}

    @property
    def live_parts(self) -> bool:
        return self.store.live_parts

    def running(self, session_id: str) -> bool:
        """Whether ``session_id`` is a session still running here, or ended and being stored
        whole, whose parts this store takes (its catalog entry's duration is only as recent as
        its last part)."""
        return session_id in self._live

    @property
    def bytes_sent(self) -> int:
        return self.store.bytes_sent

    async def check(self) -> None:
        await self.store.check()

    async def append_part(self, session_id: str, offset: int, data: bytes) -> None:
        """The part goes to the store; the session's entry is written from its first part
        (the meta frame), so the running session is listed, and so is one whose proxy never
        comes back to store it whole. While it runs, its duration is brought up to date every
        :data:`LIVE_REFRESH_S`; an entry the catalog refused is tried again with the next
        part."""
        await self.store.append_part(session_id, offset, data)
        now_s = self._clock.monotonic()
        if offset == 0:
            try:
                header, duration_s = await asyncio.to_thread(header_and_duration_of, data)
            except (BadParameterError, ValueError) as exc:
                log.warning("session %s: its first part names no session: %s", session_id, exc)
                return
            self._live[session_id] = (info_from_header(header, duration_s), None)
        if session_id not in self._live:
            return
        info, written_s = self._live[session_id]
        if written_s is not None and now_s - written_s < LIVE_REFRESH_S:
            return
        running_s = (self._clock.now() - info.timestamp).total_seconds()
        info = dataclasses.replace(info, duration_s=max(info.duration_s, running_s))
        try:
            await self.catalog.add(info)
        except Exception as exc:  # the listing is a convenience: never the session's end
            log.warning("session %s: cannot list its recording yet: %s", session_id, exc)
            self._live[session_id] = (info, written_s)
            return
        self._live[session_id] = (info, now_s)

    async def upload(self, session_id: str, path: Path) -> str:
        """Stored, then catalogued: a failure to catalogue fails the upload, so the spool keeps
        the file and the next attempt does both. Read before it is stored: a file that is no
        recording that lists (BadParameterError) is not put into the store."""
        try:
            info = await asyncio.to_thread(read_info, path)
        except FileNotFoundError:
            raise NotFoundError(f"no recording file at {path}") from None
        except BadParameterError as exc:
            raise BadParameterError(f"{path} is no recording that lists: {exc}") from exc
        except OSError as exc:
            raise RecordingError(f"cannot read recording {path} to list it: {exc}") from exc
        try:
            url = await self.store.upload(session_id, path)
        finally:
            # Held until the store has it whole: until then the store's copy is the parts
            # sent while the session ran, without its end, and verify says so rather than
            # calling it cut short. Then over, stored or not.
            self._live.pop(session_id, None)
        with contextlib.suppress(OSError, BadParameterError):
            # The store may have completed the file from the parts it held (a host that lost
            # power): listed as stored.
            info = await asyncio.to_thread(read_info, path)
        await self.catalog.add(info)
        return url

    async def list(self) -> list[RecordingInfo]:
        recordings: list[RecordingInfo] = []
        after = ""
        while True:
            page = await self.catalog.list(limit=PAGE, after=after)
            recordings += page.recordings
            if not page.next:
                return recordings
            after = page.next

    async def scan(self) -> StoreScan:
        """The store itself read (what the catalog lists comes from :meth:`list`)."""
        return await self.store.scan()

    async def delete(self, session_id: str) -> None:
        try:
            await self.store.delete(session_id)
        except NotFoundError:
            await self.catalog.remove(session_id)  # gone from the store some other way
            raise
        await self.catalog.remove(session_id)

    async def read(self, session_id: str) -> bytes:
        return await self.store.read(session_id)

    async def info(self, session_id: str) -> RecordingInfo:
        try:
            return await self.catalog.get(session_id)
        except NotFoundError:
            return await self.store.info(session_id)

    def chunks(self, session_id: str) -> AsyncIterator[bytes]:
        return self.store.chunks(session_id)
