"""Signed checkpoints of a recording's hash chain (docs/recording-format.md).

The proxy signs ``(session, chunk number, chain head, time offset, final)`` with its own key,
which a host certificate from the cluster's host CA vouches for. That certificate carries the
extension ``SIGNER_EXTENSION``, which only the auth service's ``sign_recording_signer`` puts
in, so the host certificate of an ordinary sshd (``tctl auth sign``, ``teleport join
openssh``) cannot sign checkpoints. Checking one needs only the host CA's public key.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import asyncssh

from pyteleport.crypto import sshcert
from pyteleport.errors import BadParameterError
from pyteleport.model.timefmt import parse_time

SIGNER_EXTENSION = "recording-signer@pyteleport"
_PURPOSE = b"pyteleport recording checkpoint v1\x00"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    session_id: str
    chunk: int  # the sequence number of the chunk whose hash is ``head``
    head: bytes
    offset_us: int  # the time of the last frame in that chunk
    final: bool  # the session ended with this chunk

    def payload(self) -> bytes:
        doc = {
            "sid": self.session_id,
            "chunk": self.chunk,
            "head": self.head.hex(),
            "offset_us": self.offset_us,
            "final": self.final,
        }
        return _PURPOSE + json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def sign(key: asyncssh.SSHKey, cert_line: bytes, checkpoint: Checkpoint) -> dict[str, Any]:
    """The fields of a ``session.checkpoint`` audit event for ``checkpoint``."""
    signature = key.sign(checkpoint.payload(), key.sig_algorithms[0])
    return {
        "sid": checkpoint.session_id,
        "chunk": checkpoint.chunk,
        "hash": checkpoint.head.hex(),
        "offset_ms": checkpoint.offset_us // 1000,
        "offset_us": checkpoint.offset_us,
        "final": checkpoint.final,
        "signer": cert_line.decode().strip(),
        "signature": base64.b64encode(signature).decode(),
    }


def verify(fields: dict[str, Any], host_ca: bytes) -> tuple[Checkpoint | None, str]:
    """The checkpoint an event holds and "" if its signature is good: made by a key whose
    certificate the host CA (``host_ca``, its public key blob) signed with the signer extension,
    valid when the event was written. Else (None, why)."""
    try:
        checkpoint = Checkpoint(
            session_id=str(fields["sid"]),
            chunk=int(fields["chunk"]),
            head=bytes.fromhex(str(fields["hash"])),
            offset_us=int(fields["offset_us"]),
            final=bool(fields["final"]),
        )
        signature = base64.b64decode(str(fields["signature"]), validate=True)
        signer = str(fields["signer"]).encode()
    except (KeyError, TypeError, ValueError, binascii.Error):
        return None, "a malformed checkpoint event"
    # One certificate, read once: the same bytes give the CA, the extension, the validity and
    # the key that checks the signature (two parsers reading a text of several certificates
    # could each take another).
    words = signer.split()
    if len(words) < 2 or signer.count(b"\n") or not signer.isascii():
        return None, "a checkpoint signed by no valid certificate"
    line = words[0] + b" " + words[1]
    try:
        cert = sshcert.load_certificate(line)
        info = sshcert.parse_certificate(line)
    except (ValueError, asyncssh.KeyImportError):
        return None, "a checkpoint signed by no valid certificate"
    if info.algorithm != words[0].decode():
        return None, "a checkpoint signed by no valid certificate"
    if info.signature_key != host_ca:
        return None, "a checkpoint signed by a key the cluster's host CA did not certify"
    if SIGNER_EXTENSION not in info.extensions:
        return None, "a checkpoint signed by a host key that may not sign recordings"
    seconds = _event_time(fields)
    if seconds is None:
        return None, "a checkpoint event with no time (its certificate's validity is unknown)"
    if not info.valid_after <= seconds < info.valid_before:
        return None, "a checkpoint signed with a certificate that was not valid then"
    if not cert.key.verify(checkpoint.payload(), signature):
        return None, "bad signature"
    return checkpoint, ""


def _event_time(fields: dict[str, Any]) -> int | None:
    value = fields.get("time")
    if not value:
        return None
    try:
        return int(parse_time(str(value)).timestamp())
    except BadParameterError:
        return None
