"""Two of the attacks of test_verify_attacks.py against a real cluster (teleport start, the
recording proxy, OpenSSH client and sshd, tctl on the auth host): the attacker rewrites files
in the cluster's recording directory, nothing else."""

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
    start a day later, no final-chunk flag, all hashes recomputed (no key needed). The
    session's checkpoints are not where the forged start says; verify finds them anyway and
    says the recording was rewritten, not that a proxy stopped mid-session."""
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
    assert "the recording was rewritten" in res.out, res.out
    assert "the chain is intact" not in res.out


def test_reindex_then_verify_all_misses_a_recording_replaced_by_another(guide: Guide) -> None:
    """The attacker copies session A's recording file over session B's. ``tctl recordings
    reindex`` names the file, B stays listed, ``tctl recordings verify --all`` still fails B,
    and ``tsh play B`` warns whose recording it shows."""
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
    assert f"WARNING: {b.name} in the recording store holds the recording of session {a.stem}" in (
        reindex.err
    )
    played = guide.client.tsh("play", b.stem, "--format=text")
    assert "session-a" in played.out and played.code == 1, played.text
    assert f"is the recording of session {a.stem}: it was put in its place" in played.err
    after = guide.cluster.tctl("recordings", "verify", "--all")
    assert after.code == 1 and f"{b.stem}: chunk " in after.out, (reindex.text, after.text)
    assert f"{a.stem}: intact" in after.out


def test_tctl_verify_names_each_tampering_of_a_real_sessions_recording(guide: Guide) -> None:
    """A session recorded through the proxy (several chunks, its final checkpoint signed and
    audited), then its file changed four ways by someone with write access to the recording
    directory but not the signing key: a flipped byte, a deleted middle chunk, the tail cut off
    after a checkpoint, and the whole recording replaced by a re-chained forgery."""
    res = guide.ssh("echo one-1; sleep 1.3; echo two-2; sleep 1.3; echo three-3")
    assert res.code == 0, res.text
    [path] = guide.wait_recordings()
    [point] = guide.wait_events("session.checkpoint")
    sid, original = path.stem, path.read_bytes()
    report = chunks.read_chain(original)
    assert report.problem == "" and report.chunks[-1].last
    count = len(report.chunks)
    assert count >= 4, [c.frames for c in report.chunks]
    starts = [sum(c.size for c in report.chunks[:i]) for i in range(count)]

    def verify(data: bytes) -> str:
        path.write_bytes(data)
        res = guide.cluster.tctl("recordings", "verify", sid)
        path.write_bytes(original)
        assert res.code == 1 and res.out.startswith(f"{sid}: "), res.text
        return res.out.removeprefix(f"{sid}: ").strip()

    intact = guide.cluster.tctl("recordings", "verify", sid)
    assert intact.out == f"{sid}: intact ({count} chunks, 1 signed checkpoint(s))\n", intact.text

    flipped = bytearray(original)
    follows = chunks.Follows(chunks.VERSION, sid)
    flipped[starts[2] + chunks.read_header(original, starts[2], follows).header_len] ^= 0x01
    assert verify(bytes(flipped)) == f"chunk 2 (at byte {starts[2]}): hash mismatch"

    without_middle = original[: starts[1]] + original[starts[2] :]
    assert verify(without_middle) == "chunk 1: missing chunk (found sequence 2, expected 1)"

    last_s = [f for c in report.chunks for f in c.frames][-1].offset_us / 1e6
    assert point["final"] is True and point["chunk"] == count - 1, point
    assert verify(original[: starts[count - 1]]) == (
        f"truncated after checkpoint 1 at {last_s:.1f}s: it signed chunk {count - 1}, the "
        f"recording has {count - 1} readable chunk(s)"
    )

    meta = report.chunks[0].frames[0]
    builder = ChunkBuilder(sid)
    forged = builder.add(meta) + builder.flush()
    for n in range(1, count - 1):
        forged += builder.add(Frame(n * 1_300_000, FrameKind.OUTPUT, b"nothing-to-see\r\n"))
        forged += builder.flush()
    forged += builder.flush(last=True)
    assert chunks.read_chain(forged).problem == ""  # a whole chain: only the signature tells
    assert verify(forged) == (
        f"chunk {count - 1}: hash mismatch (it differs from signed checkpoint 1: the recording "
        "was rewritten)"
    )
