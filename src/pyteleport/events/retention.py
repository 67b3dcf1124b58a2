"""``auth_service.recordings.retention``: recordings older than the retention are removed, each
removal an audit event (``session.recording.delete``). The default keeps everything."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from pyteleport.clock import Clock
from pyteleport.errors import BadParameterError, NotFoundError, RecordingError, TeleportError
from pyteleport.events import codes
from pyteleport.events.audit import Emitter
from pyteleport.events.catalog import CatalogedStore
from pyteleport.events.s3store import StoreUnreachableError
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
        self._announced: set[str] = set()  # audited as removed; the removal itself failed

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
            sid = info.session_id
            if not await self._still_stored(sid):
                continue  # removed meanwhile (by another process, whose catalog was newer)
            # Audited before it is removed: a removal the audit log does not take (or a process
            # killed between the two) leaves the recording for the next sweep, never a removal
            # without its event. One whose removal failed is not announced again here.
            if sid not in self._announced:
                await self._audit.emit(
                    codes.RECORDING_DELETE,
                    {
                        "sid": sid,
                        "user": "retention",
                        "reason": f"older than auth_service.recordings.retention "
                        f"({format_duration(self._retention)})",
                        "session_start": format_time(info.timestamp),
                        "session_stop": format_time(ended),
                    },
                )
                self._announced.add(sid)
            try:
                await self._store.delete(sid)
            except NotFoundError:
                pass  # removed since: announced all the same
            except StoreUnreachableError:
                raise  # the whole sweep is tried again at the next interval
            except (BadParameterError, RecordingError) as exc:
                # This one is tried again at the next sweep (not announced twice); the older
                # recordings after it are not held back by it.
                log.warning("could not remove recording %s: %s", sid, exc)
                continue
            self._announced.discard(sid)
            if self._index is not None:
                await self._index.delete(sid)
            removed.append(sid)
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

    async def _still_stored(self, session_id: str) -> bool:
        """Whether the store still holds the recording (its catalog entry goes if not). One
        that is there but cannot be read is still there, and goes as any other."""
        try:
            await self._store.store.info(session_id)
        except NotFoundError:
            with contextlib.suppress(NotFoundError):
                await self._store.delete(session_id)  # takes it off the catalog
            return False
        except StoreUnreachableError:
            raise  # tried again at the next sweep
        except (BadParameterError, RecordingError):
            return True
        return True

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
