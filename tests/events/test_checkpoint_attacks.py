"""What a checkpoint event must not get past ``checkpoint.verify``: a signer field of two
certificates, an expired certificate in an event that does not say when it was written."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from pyteleport.client.verify import verify_recording
from pyteleport.crypto import checkpoint, sshcert, sshkeys
from pyteleport.crypto.checkpoint import SIGNER_EXTENSION, Checkpoint
from pyteleport.events.chunks import ChunkBuilder, Frame, FrameKind
from pyteleport.events.sanitize import clean_value

CA = sshkeys.generate_ssh_key()  # the cluster's host CA: the attacker never has its private key
HOST_CA = bytes(CA.public_data)
PROXY_KEY = sshkeys.generate_ssh_key()


def proxy_cert(valid_before: dt.datetime | None = None) -> bytes:
    """A recording signer's certificate as the auth service issues it."""
    return sshcert.sign_certificate(
        CA,
        sshcert.CertRequest(
            public_key=PROXY_KEY,
            cert_type=sshcert.HOST_CERT,
            key_id="recording-signer proxy1",
            principals=("proxy1",),
            valid_after=None if valid_before is None else valid_before - dt.timedelta(hours=1),
            valid_before=valid_before,
            extensions={SIGNER_EXTENSION: ""},
        ),
    )


def forged_recording(sid: str) -> tuple[bytes, bytes]:
    """A one-chunk recording of invented content, and its chain head (no key needed)."""
    builder = ChunkBuilder(sid)
    meta = {"sid": sid, "user": "joe", "timestamp": 1796199255.71}
    builder.add(Frame(0, FrameKind.META, json.dumps(meta).encode()))
    builder.add(Frame(5, FrameKind.OUTPUT, b"invented\r\n"))
    data = builder.flush(last=True)
    return data, builder.head


def test_a_signer_field_holding_two_certificates_is_refused() -> None:
    """A ``signer`` of

        "x <a genuine proxy certificate, as any checkpoint event in the audit log shows it>\\n
         <a certificate of the attacker's own key, from the attacker's own CA>"

    must not pass the CA and extension checks on the genuine one and the signature check on
    the attacker's key: the signature is checked with the key of the very certificate whose
    CA was checked. (The audit log escapes newlines in the fields it stores, which also stops
    this end to end; verify must not lean on that.)"""
    genuine = proxy_cert().decode()
    attacker_ca, attacker_key = sshkeys.generate_ssh_key(), sshkeys.generate_ssh_key()
    attacker_cert = sshcert.sign_certificate(
        attacker_ca,
        sshcert.CertRequest(
            public_key=attacker_key,
            cert_type=sshcert.HOST_CERT,
            key_id="attacker",
            principals=("attacker",),
        ),
    )
    sid = str(uuid.uuid4())
    data, head = forged_recording(sid)
    signer = f"x {genuine.split()[1]}\n{attacker_cert.decode()}".encode()
    event = checkpoint.sign(attacker_key, signer, Checkpoint(sid, 0, head, 5, True))
    event["time"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")  # as audited
    verdict = verify_recording(data, [event], HOST_CA)
    assert not verdict.ok and "certificate" in verdict.text, verdict.text
    # (What the audit log hands tctl: the newline escaped, and the forgery refused too.)
    assert not verify_recording(data, [clean_value(event)], HOST_CA).ok


def test_an_expired_signer_certificate_is_refused_when_the_event_has_no_time() -> None:
    """A checkpoint made with a retired proxy's key (its certificate expired a year ago) is
    refused when its event says when it was written, and also when it does not: a checkpoint
    whose time is unknown cannot be shown to fall inside its certificate's validity."""
    expired = proxy_cert(valid_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=365))
    sid = str(uuid.uuid4())
    data, head = forged_recording(sid)
    event = checkpoint.sign(PROXY_KEY, expired, Checkpoint(sid, 0, head, 5, True))
    now = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    assert not verify_recording(data, [{**event, "time": now}], HOST_CA).ok  # refused: good
    verdict = verify_recording(data, [event], HOST_CA)  # no "time"
    assert not verdict.ok, verdict.text
