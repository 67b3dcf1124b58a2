"""``python -m bench.listing [--recordings 1000]``: how long listing the recordings takes
(``tsh recordings ls``, the retention sweep, the read check of each replay) with the
embedded default's store, a directory of recording files.

Each recording is what the recorder writes for an hour of a line a second: the meta frame,
then ``chunks`` chunks of one output frame each, then the final chunk. The store's listing
(``FileRecordingStore.list``) is timed (the median of ``runs``) and checked: every recording
listed, each with the duration of its last frame, or the run fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import time
import uuid
from pathlib import Path

from pyteleport.events.asciicast import Header
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.recordingfile import header_to_meta
from pyteleport.events.store import FileRecordingStore

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


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.listing")
    p.add_argument("--recordings", type=int, default=1000)
    p.add_argument("--chunks", type=int, default=3600, help="chunks a recording")
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
    print(
        json.dumps(
            {
                "recordings": args.recordings,
                "chunks_each": args.chunks,
                "bytes_each": size,
                "list_s": round(median, 3),
                "per_recording_ms": round(median / max(1, args.recordings) * 1000, 3),
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
