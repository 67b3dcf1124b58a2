"""``python -m bench.search [--sessions 20000]``: how long ``tsh recordings search`` takes the
auth service as the index grows, on the embedded default's SQLite backend.

The index is filled through the same path the proxy uses (``RecordingIndex.add``, group
commits): ``sessions`` interactive sessions spread over ``days`` days, each ``batches`` batches
of ``lines`` lines of a shell's screen, one line per session unique to it. Then each search is
timed (the median of ``runs``) with the limit the CLI asks for (1,000 lines):

- a word on many screens (``total``): read newest first, it stops early;
- the unique line of the oldest session: every entry is read (what every search cost while the
  index's keys followed session ids, not time);
- the same with ``--since 24h``: only the last day is read;
- a word on no screen: every entry is read.

Each answer is checked (the unique line found once, the common word truncated at the limit): a
wrong answer fails the run instead of counting as fast.
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
from pathlib import Path

from pyteleport.backend.sqlite import SqliteBackend
from pyteleport.clock import FakeClock
from pyteleport.events.textindex import IndexedSession, RecordingIndex, SearchResults

NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)
LIMIT = 1000  # what tsh and tctl ask for
COMMON = "total"  # a word on many screens
SCREEN = [
    "joe@{node}:~$ ls -la /var/log",
    "total 2112",
    "drwxr-xr-x  12 root   root      4096 Nov 30 06:25 .",
    "-rw-r-----   1 syslog adm     182734 Dec  1 11:59 syslog",
    "-rw-r--r--   1 root   root     31204 Dec  1 09:14 dpkg.log",
    "joe@{node}:~$ systemctl status nginx",
    "● nginx.service - A high performance web server and a reverse proxy server",
    "     Active: active (running) since Mon 2026-11-30 06:25:11 UTC; 1 day 5h ago",
    "joe@{node}:~$ tail -n 3 /var/log/nginx/access.log",
    '10.0.0.7 - - [01/Dec/2026:11:58:01 +0000] "GET /healthz HTTP/1.1" 200 2 "-" "curl/8.5"',
]


def session_of(n: int, sessions: int, days: int) -> IndexedSession:
    age = dt.timedelta(days=days) * (n / max(1, sessions - 1))
    node = f"db{n % 50}"
    return IndexedSession(f"s{n:07d}", f"user{n % 40}", "root", node, NOW - age, ("joe",))


async def fill(index: RecordingIndex, args: argparse.Namespace) -> tuple[int, int]:
    """(index entries written, lines holding the common word)."""
    entries = common = 0
    for first in range(0, args.sessions, 500):
        group = range(first, min(args.sessions, first + 500))
        writes = []
        for n in group:
            session = session_of(n, args.sessions, args.days)
            for batch in range(args.batches):
                lines = [
                    (
                        batch * 1000 + i * 10,
                        "output",
                        SCREEN[i % len(SCREEN)].format(node=session.node),
                    )
                    for i in range(args.lines)
                ]
                if batch == 0:
                    lines[0] = (0, "output", f"deploy-marker-{session.session_id}")
                common += sum(1 for _, _, line in lines if COMMON in line)
                writes.append(index.add(session, batch, lines))
        await asyncio.gather(*writes)
        entries += len(writes)
    return entries, common


async def timed(runs: int, search: object) -> tuple[float, SearchResults]:
    times, answer = [], None
    for _ in range(runs):
        started = time.perf_counter()
        answer = await search()  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    assert isinstance(answer, SearchResults)
    return statistics.median(times), answer


async def measure(args: argparse.Namespace) -> dict[str, object]:
    backend = await SqliteBackend.open(args.workdir / "backend.db")
    try:
        index = RecordingIndex(backend, FakeClock(NOW))
        started = time.perf_counter()
        entries, common_lines = await fill(index, args)
        fill_s = time.perf_counter() - started
        oldest = session_of(args.sessions - 1, args.sessions, args.days).session_id
        since = NOW - dt.timedelta(hours=24)

        common_s, common = await timed(args.runs, lambda: index.search(COMMON, limit=LIMIT))
        if len(common.hits) != min(LIMIT, common_lines) or common.truncated != (
            common_lines > LIMIT
        ):
            raise SystemExit(f"the common word gave {len(common.hits)} of {common_lines} lines")
        rare_s, rare = await timed(
            args.runs, lambda: index.search(f"deploy-marker-{oldest}", limit=LIMIT)
        )
        if [h.session.session_id for h in rare.hits] != [oldest]:
            raise SystemExit(f"the oldest session's line was found {len(rare.hits)} times")
        recent_s, recent = await timed(
            args.runs,
            lambda: index.search("deploy-marker-", since=since, limit=LIMIT),
        )
        expected_recent = sum(
            1
            for n in range(args.sessions)
            if session_of(n, args.sessions, args.days).start >= since
        )
        if len(recent.hits) != min(LIMIT, expected_recent):
            raise SystemExit(f"--since 24h found {len(recent.hits)}, not {expected_recent}")
        absent_s, absent = await timed(
            args.runs, lambda: index.search("no-such-text-anywhere", limit=LIMIT)
        )
        if absent.hits:
            raise SystemExit("a word on no screen was found")
    finally:
        await backend.close()
    return {
        "sessions": args.sessions,
        "entries": entries,
        "lines": entries * args.lines,
        "fill_s": round(fill_s, 1),
        "common_word_s": round(common_s, 3),
        "oldest_unique_line_s": round(rare_s, 3),
        "since_24h_s": round(recent_s, 3),
        "absent_word_s": round(absent_s, 3),
        "common_vs_full_scan": round(common_s / absent_s, 3),
        "since_vs_full_scan": round(recent_s / absent_s, 3),
    }


def main() -> int:
    p = argparse.ArgumentParser(prog="python -m bench.search")
    p.add_argument("--sessions", type=int, default=20000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--batches", type=int, default=10, help="batches of lines per session")
    p.add_argument("--lines", type=int, default=20, help="lines per batch")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/pyteleport-bench-search"))
    args = p.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    result = asyncio.run(measure(args))
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
