"""``python -m bench.listing [--recordings 1000] [--catalogued 100000]``: how long listing
the recordings takes.

The store: the embedded default's directory of recording files, each what the recorder writes
for an hour of a line a second (the meta frame, then ``chunks`` chunks of one output frame
each, then the final chunk). Its whole listing (``FileRecordingStore.list``, which catalogues a
store of an earlier version once) is timed and checked: every recording listed, each with the
duration of its last frame.

The catalog (what ``recordings ls`` and the retention sweep read): ``catalogued`` entries in
SQLite, sessions spread over 90 days by 100 users. Timed, each checked: a default ``tsh
recordings ls`` (the newest 50 of the last 24 hours, and whether an older one exists) as an
auditor and as a user of the access preset (who sees their own sessions, one in 100), and a
retention sweep with nothing due. Each figure is the median of ``runs``; a wrong answer fails
the run.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

from pyteleport.backend.sqlite import SqliteBackend
from pyteleport.events.asciicast import Header
from pyteleport.events.catalog import RecordingCatalog, catalog_items
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.recordingfile import header_to_meta
from pyteleport.events.store import FileRecordingStore, RecordingInfo

LINE = b"joe@db1:~$ tail -n 1 /var/log/syslog\r\nDec  1 11:59:01 db1 CRON[2112]: done\r\n"


TEMPLATE = uuid.UUID("5f0c8e7a-3d21-4b9e-9a61-2c7d4e8f1b03")


def first_chunk(session_id: str) -> tuple[bytes, ChunkBuilder]:
    builder = ChunkBuilder(session_id)
    header = Header(80, 24, 1764590400, session_id=session_id, user="joe", kind="ssh")
    return builder.add(Frame(0, FrameKind.META, header_to_meta(header))) + builder.flush(), builder


def the_rest(chunks: int) -> bytes:
    """The chunks after the first of a recording of TEMPLATE's."""
    _, builder = first_chunk(str(TEMPLATE))
    out = []
    for n in range(1, chunks + 1):
        out += [builder.add(Frame(n * 1_000_000, FrameKind.OUTPUT, LINE)), builder.flush()]
    out.append(builder.flush(last=True))
    return b"".join(out)


def recording(session_id: str, rest: bytes) -> bytes:
    """One recording per id without building thousands of chunks each: its own first chunk
    (whose hash a listing checks), then the template's other chunks with this id in their
    headers (a listing reads them without their hashes, which no longer match)."""
    return first_chunk(session_id)[0] + rest.replace(TEMPLATE.bytes, uuid.UUID(session_id).bytes)


NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
DAYS = 90
USERS = 100


def catalogued_info(n: int, total: int) -> RecordingInfo:
    start = NOW - dt.timedelta(seconds=(total - n) * DAYS * 86400 / total)
    user = f"user{n % USERS}"
    return RecordingInfo(
        session_id=str(uuid.UUID(int=n + 1)),
        kind="ssh",
        user=user,
        login="root",
        participants=(user,),
        server_hostname=f"db{n % 37}",
        timestamp=start,
        duration_s=600.0,
    )


async def catalog_figures(path: Path, total: int, runs: int) -> dict[str, float]:
    backend = await SqliteBackend.open(path)
    try:
        for first in range(0, total, 1000):
            items = []
            for n in range(first, min(total, first + 1000)):
                info = catalogued_info(n, total)
                items += catalog_items(info)
            await backend.create_many(items)
        catalog = RecordingCatalog(backend)
        day_ago = NOW - dt.timedelta(days=1)
        in_last_day = sum(1 for n in range(total) if catalogued_info(n, total).timestamp >= day_ago)
        newest = [str(uuid.UUID(int=n + 1)) for n in range(total - 1, -1, -1)]

        mine = [
            i
            for i in (catalogued_info(n, total) for n in range(total))
            if i.user == "user7" and i.timestamp >= day_ago
        ]
        expected_own = [i.session_id for i in sorted(mine, key=lambda i: i.timestamp)][::-1][:50]

        # What a default ``recordings ls`` asks: the newest 50 of the last day, and whether
        # an older one exists (for its hint).
        async def auditor() -> None:
            page = await catalog.list(since=day_ago, limit=50)
            older = await catalog.list(until=day_ago, limit=1)
            if [i.session_id for i in page.recordings] != newest[: min(50, in_last_day)]:
                raise SystemExit("the auditor's listing is not the newest 50 of the last day")
            if len(older.recordings) != 1:
                raise SystemExit("the auditor's listing found no older recording")

        async def own() -> None:
            page = await catalog.list(since=day_ago, limit=50, participant="user7")
            older = await catalog.list(until=day_ago, limit=1, participant="user7")
            got = [i.session_id for i in page.recordings]
            if got != expected_own or len(older.recordings) != 1:
                raise SystemExit("the access preset's listing is not its own newest 50")

        async def sweep() -> None:
            cutoff = NOW - dt.timedelta(days=DAYS + 1)
            if [i async for i in catalog.started_before(cutoff)]:
                raise SystemExit("the retention sweep found recordings none of which is due")

        figures = {}
        for name, call in (
            ("ls_auditor_s", auditor),
            ("ls_own_s", own),
            ("sweep_none_due_s", sweep),
        ):
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await call()
                times.append(time.perf_counter() - started)
            figures[name] = round(statistics.median(times), 4)
        return figures
    finally:
        await backend.close()


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.listing")
    p.add_argument("--recordings", type=int, default=1000)
    p.add_argument("--chunks", type=int, default=3600, help="chunks a recording")
    p.add_argument("--catalogued", type=int, default=100_000, help="recordings in the catalog")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/pyteleport-bench-listing"))
    args = p.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    records = args.workdir / "records"
    records.mkdir(mode=0o700, parents=True)
    rest = the_rest(args.chunks)
    size = 0
    for n in range(args.recordings):
        sid = str(uuid.UUID(int=n + 1))
        data = recording(sid, rest)
        size = len(data)
        (records / f"{sid}.rec").write_bytes(data)
    store = FileRecordingStore(records)
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        infos = asyncio.run(store.list())
        times.append(time.perf_counter() - started)
        ids = {i.session_id for i in infos}
        if len(ids) != args.recordings or any(i.duration_s != args.chunks for i in infos):
            raise SystemExit(f"listed {len(ids)} of {args.recordings}, or with wrong durations")
    median = statistics.median(times)
    catalog = asyncio.run(catalog_figures(args.workdir / "catalog.db", args.catalogued, args.runs))
    print(
        json.dumps(
            {
                "recordings": args.recordings,
                "chunks_each": args.chunks,
                "bytes_each": size,
                "list_s": round(median, 3),
                "per_recording_ms": round(median / max(1, args.recordings) * 1000, 3),
                "catalogued": args.catalogued,
                **catalog,
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
