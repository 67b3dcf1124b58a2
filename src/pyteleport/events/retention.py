"""``auth_service.recordings.retention``: recordings older than the retention are removed, each
removal an audit event (``session.recording.delete``). The default keeps everything."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from pyteleport.clock import Clock
from pyteleport.errors import NotFoundError, TeleportError
from pyteleport.events import codes
from pyteleport.events.audit import Emitter
from pyteleport.events.catalog import CatalogedStore
from pyteleport.events.textindex import RecordingIndex
from pyteleport.model.duration import format_duration
from pyteleport.model.timefmt import format_time

log = logging.getLogger("pyteleport.events")

SWEEP_INTERVAL_S = 3600.0


class RecordingRetention:
    def __init__(
        self,
        store: CatalogedStore,
        audit: Emitter,
        clock: Clock,
        retention: dt.timedelta,
        interval_s: float = SWEEP_INTERVAL_S,
        index: RecordingIndex | None = None,
    ) -> None:
        self._index = index
        self._store = store
        self._audit = audit
        self._clock = clock
        self._retention = retention
        self._interval_s = interval_s

    async def sweep(self) -> list[str]:
        """Remove every recording whose session ended more than the retention ago; their ids."""
        cutoff = self._clock.now() - self._retention
        removed: list[str] = []
        kept: set[str] = set()  # started before the cutoff, ended after it
        # Only a recording that started before the cutoff can have ended before it: the
        # catalog reads those alone, however many recordings the store holds.
        async for info in self._store.catalog.started_before(cutoff):
            ended = info.timestamp + dt.timedelta(seconds=info.duration_s)
            # A session still running has not ended, however long ago its last part was sent
            # (a quiet shell sends none).
            if ended >= cutoff or self._store.running(info.session_id):
                kept.add(info.session_id)
                continue
            try:
                await self._store.delete(info.session_id)
            except NotFoundError:
                continue  # removed meanwhile
            if self._index is not None:
                await self._index.delete(info.session_id)
            await self._audit.emit(
                codes.RECORDING_DELETE,
                {
                    "sid": info.session_id,
                    "user": "retention",
                    "reason": f"older than auth_service.recordings.retention "
                    f"({format_duration(self._retention)})",
                    "session_start": format_time(info.timestamp),
                    "session_stop": format_time(ended),
                },
            )
            removed.append(info.session_id)
        if removed:
            log.info("removed %d recording(s) past their retention", len(removed))
        if self._index is not None and await self._store.catalog.filled(self._store.store):
            # The lines of sessions whose recording was never stored: nothing above removed
            # them, and what a session showed is kept no longer than its recording would be.
            # (Not before the store's older recordings are catalogued: theirs would look so.)
            unrecorded = await self._index.prune(cutoff, kept)
            if unrecorded:
                log.info(
                    "removed the search index of %d unrecorded session(s) past the retention",
                    len(unrecorded),
                )
        return removed

    async def run(self) -> None:
        """Sweep now and every interval until cancelled; a failed sweep is logged and retried."""
        while True:
            try:
                await self.sweep()
            except (OSError, TeleportError) as exc:
                log.warning("could not remove old recordings: %s", exc)
            except Exception as exc:  # a recording no one foresaw must not end the sweeps
                log.warning("could not remove old recordings: %s", exc, exc_info=True)
            await asyncio.sleep(self._interval_s)
