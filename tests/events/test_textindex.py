"""The search index: lines as a terminal showed them, stored in batches, found by text with the
caller's visibility applied."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Sequence

import pytest

from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.events.textindex import (
    IndexedSession,
    LineAssembler,
    RecordingIndex,
    SessionTextIndex,
)

START = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("packets", "lines"),
    [
        ([b"\x1b[1;32muser@host\x1b[0m:~$ ls\r\n"], ["user@host:~$ ls"]),
        ([b"progress 10%\rprogress 100%\r\n"], ["progress 100%"]),
        ([b"typo\b\bed\r\n"], ["tyed"]),  # a backspace moves back; what follows overwrites
        ([b"\x1b[3", b"1mred\x1b[0m\r\n"], ["red"]),  # an escape split across packets
        ([b"caf\xc3", b"\xa9\r\n"], ["café"]),
        ([b"\x1b]0;title\x07prompt$ \r\n", b"\r\n"], ["prompt$"]),
    ],
)
def test_output_becomes_the_lines_the_screen_showed(packets: list[bytes], lines: list[str]) -> None:
    assembler = LineAssembler(typed=False)
    out = [line for packet in packets for line in assembler.feed(packet)]
    assert out + assembler.flush() == lines


def test_keystrokes_end_a_line_at_enter() -> None:
    assembler = LineAssembler(typed=True)
    assert assembler.feed(b"rm -rf /vv\x7far/lib\x1b[D\r") == ["rm -rf /var/lib"]


def session(sid: str, user: str, node: str = "db1") -> IndexedSession:
    return IndexedSession(sid, user, "root", node, START, (user,))


async def test_search_finds_lines_with_their_offsets_and_respects_visibility() -> None:
    index = RecordingIndex(MemoryBackend())
    text = SessionTextIndex(index, session("s1", "alice"))
    text.output(b"$ rm -rf /var/lib/mysql\r\n", 1500)
    await text.flush(1500)
    text.output(b"done", 2000)
    await text.flush(2500, final=True)
    other = SessionTextIndex(index, session("s2", "bob", node="web1"))
    other.line(0, "input", "RM -RF /var/lib/mysql")
    await other.flush(0)

    hits = (await index.search("rm -rf /var/lib/MYSQL")).hits
    assert [(h.session.session_id, h.offset_ms, h.kind) for h in hits] == [
        ("s1", 1500, "output"),
        ("s2", 0, "input"),
    ]
    assert [h.session.session_id for h in (await index.search("rm -rf", node="web1")).hits] == [
        "s2"
    ]
    assert [h.session.session_id for h in (await index.search("rm -rf", user="alice")).hits] == [
        "s1"
    ]
    only_bob = (await index.search("rm", visible=lambda s: "bob" in s.participants)).hits
    assert [h.session.session_id for h in only_bob] == ["s2"]
    assert [h.line for h in (await index.search("done")).hits] == ["done"]
    later = (await index.search("rm", since=START + dt.timedelta(hours=1))).hits
    assert later == []
    await index.delete("s1")
    assert [h.session.session_id for h in (await index.search("rm")).hits] == ["s2"]


async def test_a_flood_of_lines_is_bounded_per_batch_and_per_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pyteleport.events import textindex

    monkeypatch.setattr(textindex, "MAX_SESSION_LINES", 2500)
    index = RecordingIndex(MemoryBackend())
    text = SessionTextIndex(index, session("s1", "alice"))
    flood = b"".join(b"line %d\r\n" % n for n in range(5000))
    text.output(flood, 0)  # cat of a large file: one second's worth
    await text.flush(1000)
    assert (text.indexed, text.dropped) == (1000, 4000)
    for second in range(1, 4):
        text.output(flood, second * 1000)
        await text.flush(second * 1000)
    assert text.indexed == 2500 and text.full
    text.output(b"needle\r\n", 5000)  # no longer read
    await text.flush(5000, final=True)
    assert (await index.search("needle")).hits == []
    # each batch took the first 1,000 lines; the third only 500 before the session was full
    assert len((await index.search("line 999")).hits) == 2
    assert len((await index.search("line 499")).hits) == 3


async def test_many_sessions_indexing_at_once_share_one_write() -> None:
    class CountingBackend(MemoryBackend):
        def __init__(self) -> None:
            super().__init__()
            self.writes: list[int] = []

        async def create_many(self, items: Sequence[Item]) -> list[Item]:
            self.writes.append(len(items))
            await asyncio.sleep(0)
            return await super().create_many(items)

    backend = CountingBackend()
    index = RecordingIndex(backend)
    texts = [SessionTextIndex(index, session(f"s{n}", "alice")) for n in range(50)]
    for n, text in enumerate(texts):
        text.output(b"session %d says hello\r\n" % n, 1000)
    await asyncio.gather(*(text.flush(1000) for text in texts))
    # all fifty were asked for before the writer ran: one transaction
    assert backend.writes == [50]
    assert len((await index.search("says hello")).hits) == 50


async def test_the_newest_matches_are_kept_and_listed_in_the_order_they_were_shown() -> None:
    index = RecordingIndex(MemoryBackend())
    # Session ids sort against their start times: the index's key order is not time order.
    for sid, hours in (("a-newest", 2), ("b-middle", 1), ("c-oldest", 0)):
        started = IndexedSession(sid, "joe", "root", "db1", START + dt.timedelta(hours=hours), ())
        text = SessionTextIndex(index, started)
        text.line(100, "output", f"deploy {sid} step 1")
        text.line(900, "output", f"deploy {sid} step 2")
        await text.flush(900, final=True)
    every = await index.search("deploy", limit=10)
    assert not every.truncated
    assert [h.line for h in every.hits] == [
        f"deploy {sid} step {n}" for sid in ("c-oldest", "b-middle", "a-newest") for n in (1, 2)
    ]
    newest = await index.search("deploy", limit=3)
    assert newest.truncated
    assert [h.line for h in newest.hits] == [
        "deploy b-middle step 2",
        "deploy a-newest step 1",
        "deploy a-newest step 2",
    ]
