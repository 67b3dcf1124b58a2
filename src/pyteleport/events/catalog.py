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
import datetime as dt
import hashlib
import json
import logging
import re
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.backend.base import check_key
from pyteleport.errors import AlreadyExistsError, BadParameterError, NotFoundError, RecordingError
from pyteleport.events.recordingfile import header_and_duration_of
from pyteleport.events.store import (
    RecordingInfo,
    RecordingStore,
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
FILL_BATCH = 200  # entries written in one transaction by a fill
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
        # The pointer first: one left by a crash before its entries are written points at
        # nothing, which a removal takes in its stride; an entry without its pointer could not
        # be removed.
        await self._backend.put(pointer)
        for key in set(old) - {e.key for e in entries}:
            with contextlib.suppress(NotFoundError):
                await self._backend.delete(key)
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
    ) -> CatalogPage:
        """The newest ``limit`` recordings that started in ``[since, until)`` and that
        ``want``, after the cursor ``after`` (a previous page's ``next``); only those of
        sessions ``participant`` took part in, if given (read from their own keys: a user of
        few sessions among many does not have the others read)."""
        if limit < 1:
            raise BadParameterError(f"bad recordings limit {limit}: expected 1 or more")
        prefix = _participant_prefix(participant) if participant else PREFIX
        start, end = _range(since, until, prefix)
        if after:
            start = max(start, prefix + check_cursor(after) + "\x01")
        found: list[tuple[str, RecordingInfo]] = []
        while start < end:
            page = await self._backend.get_range(start, end, limit=PAGE)
            for item in page:
                info = _decode(item)
                if info is None or (want is not None and not want(info)):
                    continue
                if len(found) == limit:
                    return CatalogPage([i for _, i in found], found[-1][0][len(prefix) :])
                found.append((item.key, info))
            if len(page) < PAGE:
                break
            start = page[-1].key + "\x01"  # keys hold no NUL: just after the last one read
        return CatalogPage([i for _, i in found], "")

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

    async def fill(self, store: RecordingStore) -> int:
        """Catalogue what ``store`` held before the catalog existed, once per store (by its
        name); the number of recordings added. Safe to run again after an interruption, and
        from several processes at once."""
        marker = FILLED + hashlib.sha256(store.name.encode()).hexdigest()
        try:
            await self._backend.get(marker)
            return 0
        except NotFoundError:
            pass
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
        await self._backend.put(Item(key=marker, value=store.name.encode()))
        if infos:
            log.info("catalogued %d recording(s) of %s", len(infos), store.name)
        return len(infos)


def _range(
    since: dt.datetime | None, until: dt.datetime | None, prefix: str = PREFIX
) -> tuple[str, str]:
    """The keys under ``prefix`` of the recordings that started in ``[since, until)``: a later
    start has a smaller key, so ``until`` bounds the range from below."""
    start = prefix if until is None else f"{prefix}{_LAST_US - _micros(until) + 1:017d}"
    end = prefix_end(prefix) if since is None else f"{prefix}{_LAST_US - _micros(since) + 1:017d}"
    return start, end


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

    def __init__(self, store: RecordingStore, catalog: RecordingCatalog) -> None:
        self.store = store
        self.catalog = catalog
        self.name = store.name

    @property
    def live_parts(self) -> bool:
        return self.store.live_parts

    @property
    def bytes_sent(self) -> int:
        return self.store.bytes_sent

    async def check(self) -> None:
        await self.store.check()

    async def append_part(self, session_id: str, offset: int, data: bytes) -> None:
        await self.store.append_part(session_id, offset, data)
        if offset != 0:
            return
        # The first part holds the meta frame: the running session is listed from now on, as
        # is one whose proxy never comes back to store it whole.
        try:
            header, duration_s = await asyncio.to_thread(header_and_duration_of, data)
            await self.catalog.add(info_from_header(header, duration_s))
        except Exception as exc:  # the listing is a convenience: never the session's end
            log.warning("session %s: cannot list its recording yet: %s", session_id, exc)

    async def upload(self, session_id: str, path: Path) -> str:
        """Stored, then catalogued: a failure to catalogue fails the upload, so the spool keeps
        the file and the next attempt does both."""
        url = await self.store.upload(session_id, path)
        try:
            info = await asyncio.to_thread(read_info, path)
        except (OSError, BadParameterError) as exc:
            raise RecordingError(f"cannot read recording {path} to list it: {exc}") from exc
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
