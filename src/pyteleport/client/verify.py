"""``tctl recordings verify``: a recording's hash chain checked against the signed checkpoints
the audit log holds for it (docs/recording-format.md). Needs only the host CA's public key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyteleport.crypto import checkpoint
from pyteleport.events import chunks
from pyteleport.events.chunks import Verdict
from pyteleport.events.recorder import CHECKPOINT_INTERVAL_S


def verify_recording(
    data: bytes,
    events: Sequence[dict[str, Any]],
    host_ca: bytes,
    running: bool = False,
    ended: bool = False,
    session_id: str | None = None,
) -> Verdict:
    """Intact only if the chain links from the first chunk to the final one, every checkpoint
    event of the session carries a good signature, each names a chunk the recording has with
    exactly the signed hash, and the final checkpoint covers the final chunk. The recording is
    read a chunk at a time: what it inflates to is never held.

    ``session_id``: the session the recording is stored as; a recording of another session
    put in its place is named as such (its first chunk belongs to that one).

    ``running``: the cluster's proxy holds the session now (running, or ``ended`` and its
    recording being stored whole), so a chain intact so far, with no more unsigned than a
    running proxy leaves, is no finding yet."""
    points: list[checkpoint.Checkpoint] = []
    for event in events:
        point, problem = checkpoint.verify(event, host_ca)
        if point is None:
            return Verdict(False, f"bad or missing signature: {problem}")
        points.append(point)
    points.sort(key=lambda p: p.chunk)
    if not chunks.looks_like_chunks(data):
        verdict = chunks.verify(data)
        if points and verdict.text.startswith("not verifiable"):
            # An asciicast file where the proxy signed a chunked recording: put in its place.
            return Verdict(
                False,
                f"replaced: the store holds an asciicast file, but the audit log holds "
                f"{len(points)} signed checkpoint(s) of this session's chunked recording",
            )
        return verdict
    signed = {p.chunk for p in points}
    hashes: dict[int, bytes] = {}
    last_signed = points[-1].chunk if points else -1
    walk = chunks.ChainWalk(data, session_id)
    for number, chunk in enumerate(walk):
        if number in signed:
            hashes[number] = chunk.hash
    if walk.problem and not walk.torn_tail:
        return Verdict(False, walk.problem)  # changed, missing or foreign chunks
    have = walk.count
    if running:
        # The proxy signs a chunk as it closes and sends it with the next part (or with the
        # whole recording once the session has ended): a checkpoint of a chunk the store does
        # not have yet, signed within seconds of the last one it has, is checked next time.
        last_us = walk.last_offset_us or 0
        ahead = [p for p in points if p.chunk >= have]
        if ahead and all(p.offset_us - last_us <= _UNSIGNED_SLACK_S * 1e6 for p in ahead):
            points = [p for p in points if p.chunk < have]
            last_signed = points[-1].chunk if points else -1
    for number, point in enumerate(points, 1):
        if point.chunk >= have:
            return Verdict(
                False,
                f"truncated after checkpoint {number} at {point.offset_us / 1e6:.1f}s: it signed "
                f"chunk {point.chunk}, the recording has {have} readable chunk(s)"
                + (f" ({walk.problem})" if walk.problem else ""),
            )
        if hashes[point.chunk] != point.head:
            return Verdict(
                False,
                f"chunk {point.chunk}: hash mismatch (it differs from signed checkpoint "
                f"{number}: the recording was rewritten)",
            )
    # What no checkpoint vouches for.
    if last_signed < 0:
        unsigned = "the recording"
    elif last_signed + 1 == have - 1:
        unsigned = f"chunk {have - 1}"
    else:
        unsigned = f"chunks {last_signed + 1}-{have - 1}"
    chain = chunks.chain_verdict(walk)
    if not chain.ok:
        unfinished = chain.text.startswith("truncated after chunk")
        if unfinished and running and _within_unsigned_bound(points, walk):
            so_far = f"intact so far ({have} chunks, {len(points)} signed checkpoint(s))"
            if ended:
                return Verdict(
                    True,
                    f"storing: {so_far}; the session has ended and the proxy is storing its "
                    "recording: verify it again in a moment",
                )
            return Verdict(
                True,
                f"running: {so_far}; the session is still running: verify it again once it "
                "has ended",
            )
        if last_signed < have - 1 and unfinished:
            return Verdict(False, f"{chain.text}; {_unsigned_tail(points, walk, unsigned)}")
        return chain
    final = next((p for p in points if p.final), None)
    if final is None or final.chunk != have - 1:
        return Verdict(
            False,
            f"bad or missing signature: no signed checkpoint covers {unsigned}"
            " (the proxy stopped before the session ended, or the audit log lost it)",
        )
    return Verdict(True, f"intact ({have} chunks, {len(points)} signed checkpoint(s))")


# A running proxy signs the chain head when a chunk closes at least this long after its last
# checkpoint (CHECKPOINT_INTERVAL_S), a chunk closes within a second of its first frame, and a
# busy event loop may be late by a few seconds more.
_UNSIGNED_SLACK_S = 10.0


def _within_unsigned_bound(points: Sequence[checkpoint.Checkpoint], walk: chunks.ChainWalk) -> bool:
    """Whether the chunks after the last checkpoint span no more than a running proxy leaves
    unsigned."""
    since_s = points[-1].offset_us / 1e6 if points else 0.0
    end_s = (walk.last_offset_us or 0) / 1e6
    return end_s - since_s <= CHECKPOINT_INTERVAL_S + _UNSIGNED_SLACK_S


def _unsigned_tail(
    points: Sequence[checkpoint.Checkpoint], walk: chunks.ChainWalk, unsigned: str
) -> str:
    """What to say of the chunks after the last checkpoint of a recording with no final chunk:
    the last minute of a proxy that stopped mid-session, or more than a running proxy leaves
    unsigned (chunks added to the recording, or checkpoints the audit log lost)."""
    since_s = points[-1].offset_us / 1e6 if points else 0.0
    end_s = (walk.last_offset_us or 0) / 1e6
    if _within_unsigned_bound(points, walk):
        return (
            f"no signed checkpoint covers {unsigned} (what a proxy that stopped mid-session "
            "had not signed yet)"
        )
    return (
        f"no signed checkpoint covers {unsigned}, which reach {end_s - since_s:.1f}s past "
        f"the last one: more than a running proxy leaves unsigned "
        f"({CHECKPOINT_INTERVAL_S:g}s), so they were added to the recording, or the audit log "
        "lost checkpoints"
    )
