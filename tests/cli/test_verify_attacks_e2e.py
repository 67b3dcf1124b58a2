"""Two of the attacks of test_verify_attacks.py against a real cluster (teleport start, the
recording proxy, OpenSSH client and sshd, tctl on the auth host): the attacker rewrites files
in the cluster's recording directory, nothing else. Both FAIL on the code they were written
against."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from pyteleport.events import chunks
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from tests.e2e.guide import Guide, make_guide
from tests.e2e.harness import Client, Cluster


@pytest.fixture
def guide(tmp_path: Path, cluster: Cluster, client: Client) -> Iterator[Guide]:
    g = make_guide(tmp_path, cluster, client)
    yield g
    g.sshd.stop()


def test_a_forgery_with_a_later_start_reads_as_a_crash_not_a_rewrite(guide: Guide) -> None:
    """The attacker rewrites a finished session's recording: new output, the meta frame's
    start a day later, no final-chunk flag, all hashes recomputed (no key needed). tctl
    searches the audit log for the session's checkpoints only from the start the forged file
    claims, finds none, and says "truncated after chunk N ...: the chain is intact but the
    session's final chunk is missing" (an honest proxy crash); tsh play shows the invented
    output, exit 0. It should say the recording was rewritten (the audit log holds the
    session's final checkpoint, which no longer matches)."""
    assert guide.ssh("echo secret-output").code == 0
    [path] = guide.wait_recordings()
    guide.wait_events("session.checkpoint")
    sid = path.stem
    report = chunks.read_chain(path.read_bytes())
    meta = json.loads(report.chunks[0].frames[0].data)
    meta["timestamp"] += 86400
    builder = ChunkBuilder(sid)
    builder.add(Frame(0, FrameKind.META, json.dumps(meta).encode()))
    forged = builder.flush()
    builder.add(Frame(1000, FrameKind.OUTPUT, b"nothing-to-see\n"))
    forged += builder.flush()
    path.write_bytes(forged)
    res = guide.cluster.tctl("recordings", "verify", sid)
    assert res.code == 1, res.text
    played = guide.client.tsh("play", sid, "--format=text")
    assert "nothing-to-see" in played.out and played.code == 0, played.text
    assert "the recording was rewritten" in res.out, res.out


def test_reindex_then_verify_all_misses_a_recording_replaced_by_another(guide: Guide) -> None:
    """The attacker copies session A's recording file over session B's. After ``tctl
    recordings reindex`` (which lists each file by the session id inside it), ``tctl
    recordings verify --all`` exits 0 with one line, "A: intact", while ``tsh play B`` still
    plays A's session. verify --all should still check (and fail) B."""
    assert guide.ssh("echo session-a").code == 0
    [a] = guide.wait_recordings()
    assert guide.ssh("echo session-b").code == 0
    [b] = [p for p in guide.wait_recordings(2) if p != a]
    guide.wait_events("session.checkpoint")
    b.write_bytes(a.read_bytes())
    before = guide.cluster.tctl("recordings", "verify", "--all")
    assert before.code == 1 and f"{b.stem}: chunk " in before.out, before.text
    reindex = guide.cluster.tctl("recordings", "reindex")
    assert reindex.code == 0, reindex.text
    played = guide.client.tsh("play", b.stem, "--format=text")
    assert "session-a" in played.out and played.code == 0 and played.err == "", played.text
    after = guide.cluster.tctl("recordings", "verify", "--all")
    assert after.code == 1 and b.stem in after.out, (reindex.text, after.text)
