"""Signed checkpoints make tampering, truncation and forgery visible to
``tctl recordings verify``, with only the host CA's public key."""

from __future__ import annotations

import uuid
from typing import Any

from pyteleport.client.verify import verify_recording
from pyteleport.crypto import checkpoint, sshcert, sshkeys
from pyteleport.crypto.checkpoint import SIGNER_EXTENSION, Checkpoint
from pyteleport.events.chunks import VERSION, ChunkBuilder, Follows, Frame, FrameKind, read_header

SID = str(uuid.uuid4())
CA = sshkeys.generate_ssh_key()
HOST_CA = bytes(CA.public_data)
KEY = sshkeys.generate_ssh_key()


def signer_cert(extensions: dict[str, str] | None = None, ca: Any = CA) -> bytes:
    return sshcert.sign_certificate(
        ca,
        sshcert.CertRequest(
            public_key=KEY,
            cert_type=sshcert.HOST_CERT,
            key_id="recording-signer proxy1",
            principals=("proxy1",),
            valid_after=None,
            valid_before=None,
            extensions={SIGNER_EXTENSION: ""} if extensions is None else extensions,
        ),
    )


CERT = signer_cert()


def audited(fields: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's fields as the audit log returns them: with the time it was written."""
    return {**fields, "time": "2026-12-02T10:00:00.000Z"}


def session(
    texts: list[bytes], every: int = 2, cert: bytes = CERT
) -> tuple[bytes, list[int], list[dict[str, Any]]]:
    """A recording of one chunk per text, a checkpoint every ``every`` chunks and at the end."""
    builder = ChunkBuilder(SID, max_bytes=1 << 20)
    parts: list[bytes] = []
    events: list[dict[str, Any]] = []
    for n, text in enumerate(texts):
        builder.add(Frame(n * 1_000_000, FrameKind.OUTPUT, text))
        last = n == len(texts) - 1
        parts.append(builder.flush(last=last))
        if last or (n + 1) % every == 0:
            point = Checkpoint(SID, n, builder.head, builder.head_offset_us, last)
            events.append(audited(checkpoint.sign(KEY, cert, point)))
    starts = [sum(len(p) for p in parts[:i]) for i in range(len(parts))]
    return b"".join(parts), starts, events


TEXTS = [f"line {n}\r\n".encode() for n in range(6)]


def test_an_untouched_recording_with_its_checkpoints_is_intact() -> None:
    data, _, events = session(TEXTS)
    verdict = verify_recording(data, events, HOST_CA)
    assert verdict.ok and verdict.text == "intact (6 chunks, 3 signed checkpoint(s))"


def test_a_flipped_byte_is_named() -> None:
    data, starts, events = session(TEXTS)
    damaged = bytearray(data)
    damaged[starts[3] + read_header(data, starts[3], Follows(VERSION, SID)).header_len + 1] ^= 0x01
    verdict = verify_recording(bytes(damaged), events, HOST_CA)
    assert not verdict.ok and verdict.text.startswith("chunk 3 (at byte ")
    assert verdict.text.endswith("hash mismatch")


def test_a_deleted_middle_chunk_is_named() -> None:
    data, starts, events = session(TEXTS)
    verdict = verify_recording(data[: starts[2]] + data[starts[3] :], events, HOST_CA)
    assert not verdict.ok and "missing chunk" in verdict.text


def test_truncation_after_a_checkpoint_is_caught_even_without_the_tail() -> None:
    data, starts, events = session(TEXTS)
    verdict = verify_recording(data[: starts[4]], events, HOST_CA)  # chunks 4 and 5 gone
    assert verdict.text.startswith("truncated after checkpoint 3 at 5.0s: it signed chunk 5")
    # the recording's own chain is fine: only the signed checkpoints tell
    unfinished = verify_recording(data[: starts[4]], events[:2], HOST_CA)
    assert unfinished.text.startswith("truncated after chunk 3 at 3.0s: the chain is intact")


def test_chunks_after_the_last_checkpoint_of_an_unfinished_recording_are_named() -> None:
    # A proxy that stopped mid-session: its last chunks were not signed yet, within the minute
    # a running proxy leaves unsigned.
    data, starts, events = session(TEXTS)
    verdict = verify_recording(data[: starts[5]], events[:2], HOST_CA)  # chunk 4 unsigned
    assert not verdict.ok
    assert verdict.text == (
        "truncated after chunk 4 at 4.0s: the chain is intact but the session's final chunk is "
        "missing; no signed checkpoint covers chunk 4 (what a proxy that stopped mid-session "
        "had not signed yet)"
    )


def test_a_rechained_forgery_made_without_the_key_is_caught() -> None:
    _, _, events = session(TEXTS)
    forged, _, _ = session([b"nothing to see\r\n"] * 6)  # a valid chain, new content
    verdict = verify_recording(forged, events, HOST_CA)
    assert verdict.text.startswith("chunk 1: hash mismatch (it differs from signed checkpoint 1")
    # ... and checkpoints signed with a key the CA did not certify are refused
    rogue_ca = sshkeys.generate_ssh_key()
    _, _, rogue = session([b"nothing to see\r\n"] * 6, cert=signer_cert(ca=rogue_ca))
    verdict = verify_recording(forged, rogue, HOST_CA)
    assert verdict.text == (
        "bad or missing signature: a checkpoint signed by a key the cluster's host CA did not "
        "certify"
    )


def test_no_checkpoint_at_all_is_a_missing_signature() -> None:
    data, _, _ = session(TEXTS)
    verdict = verify_recording(data, [], HOST_CA)
    assert verdict.text.startswith("bad or missing signature: no signed checkpoint covers the")


def test_an_ordinary_host_certificate_may_not_sign_and_a_bad_signature_is_named() -> None:
    data, _, events = session(TEXTS, cert=signer_cert(extensions={}))
    verdict = verify_recording(data, events, HOST_CA)
    assert verdict.text.endswith("signed by a host key that may not sign recordings")
    data, _, events = session(TEXTS)
    events[0] = {**events[0], "hash": "00" * 32}
    assert verify_recording(data, events, HOST_CA).text == (
        "bad or missing signature: bad signature"
    )
