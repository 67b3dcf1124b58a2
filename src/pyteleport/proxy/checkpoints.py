"""The proxy's signer of recording checkpoints: one Ed25519 key per process, with a host
certificate from the cluster's host CA that marks it as a recording signer, renewed before it
expires (crypto/checkpoint.py says what is signed and how it is checked)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from typing import Any

from pyteleport.crypto import checkpoint, sshkeys

SIGNER_CERT_TTL = dt.timedelta(hours=1)
RENEW_BEFORE_S = 300.0

# (public key line, server id, ttl) -> certificate line: the auth service's sign_recording_signer
SignCert = Callable[[bytes, str, dt.timedelta], bytes]


class CheckpointSigner:
    def __init__(self, sign_cert: SignCert, server_id: str) -> None:
        self._sign_cert = sign_cert
        self._server_id = server_id
        self._key = sshkeys.generate_ssh_key("ed25519")
        self._line = sshkeys.public_key_line(self._key)
        self._cert = b""
        self._cert_until = 0.0

    def sign(self, point: checkpoint.Checkpoint) -> dict[str, Any]:
        now = time.time()
        if self._cert_until - RENEW_BEFORE_S <= now:
            self._cert = self._sign_cert(self._line, self._server_id, SIGNER_CERT_TTL)
            self._cert_until = now + SIGNER_CERT_TTL.total_seconds()
        return checkpoint.sign(self._key, self._cert, point)
