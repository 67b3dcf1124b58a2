"""``tctl recordings verify``: a recording's hash chain checked against the signed checkpoints
the audit log holds for it (docs/recording-format.md). Needs only the host CA's public key."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pyteleport.crypto import checkpoint
from pyteleport.events import chunks
from pyteleport.events.chunks import Verdict


def verify_recording(data: bytes, events: Sequence[dict[str, Any]], host_ca: bytes) -> Verdict:
    """Intact only if the chain links from the first chunk to the final one, every checkpoint
    event of the session carries a good signature, each names a chunk the recording has with
    exactly the signed hash, and the final checkpoint covers the final chunk."""
    if not chunks.looks_like_chunks(data):
        return chunks.verify(data)
    report = chunks.read_chain(data)
    if report.problem and not report.torn_tail:
        return Verdict(False, report.problem)  # changed, missing or foreign chunks
    points: list[checkpoint.Checkpoint] = []
    for event in events:
        point, problem = checkpoint.verify(event, host_ca)
        if point is None:
            return Verdict(False, f"bad or missing signature: {problem}")
        points.append(point)
    points.sort(key=lambda p: p.chunk)
    have = len(report.chunks)
    for number, point in enumerate(points, 1):
        if point.chunk >= have:
            return Verdict(
                False,
                f"truncated after checkpoint {number} at {point.offset_us / 1e6:.1f}s: it signed "
                f"chunk {point.chunk}, the recording has {have} readable chunk(s)"
                + (f" ({report.problem})" if report.problem else ""),
            )
        if report.chunks[point.chunk].hash != point.head:
            return Verdict(
                False,
                f"chunk {point.chunk}: hash mismatch (it differs from signed checkpoint "
                f"{number}: the recording was rewritten)",
            )
    chain = chunks.verify(data)
    if not chain.ok:
        return chain
    final = next((p for p in points if p.final), None)
    if final is None or final.chunk != have - 1:
        signed = points[-1].chunk if points else -1
        return Verdict(
            False,
            "bad or missing signature: no signed checkpoint covers "
            + (f"chunks {signed + 1}-{have - 1}" if signed >= 0 else "the recording")
            + " (the proxy stopped before the session ended, or the audit log lost it)",
        )
    return Verdict(True, f"intact ({have} chunks, {len(points)} signed checkpoint(s))")
