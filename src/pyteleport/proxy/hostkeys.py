"""Host certificates the proxy shows: its own on 3023, and one per target host as typed.

One Ed25519 key per process; certificates are signed by the host CA when first needed and kept
until shortly before they expire, so a burst of connections to one host signs once.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence

import asyncssh

from pyteleport.api.access import ProxySSHAccessPoint
from pyteleport.crypto import sshcert, sshkeys

HOST_CERT_TTL = dt.timedelta(hours=1)
RENEW_BEFORE_S = 300.0
MAX_CACHED = 10_000


class HostKeyCache:
    def __init__(self, access: ProxySSHAccessPoint, ttl: dt.timedelta = HOST_CERT_TTL) -> None:
        self._access = access
        self._ttl = ttl
        self._key = sshkeys.generate_ssh_key("ed25519")
        self._line = sshkeys.public_key_line(self._key)
        self._certs: dict[tuple[str, ...], tuple[float, asyncssh.SSHCertificate]] = {}
        self.signed = 0  # how many certificates were signed: the cache's effect, for tests

    def pair(self, principals: Sequence[str]) -> tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]:
        """The key and a host certificate naming ``principals``, signed at most once per TTL."""
        names = tuple(principals)
        now = time.time()
        cached = self._certs.get(names)
        if cached is not None and cached[0] - RENEW_BEFORE_S > now:
            return self._key, cached[1]
        line = self._access.sign_host_cert(self._line, names, self._ttl)
        cert = sshcert.load_certificate(line)
        self.signed += 1
        if len(self._certs) >= MAX_CACHED:
            self._certs.clear()
        self._certs[names] = (now + self._ttl.total_seconds(), cert)
        return self._key, cert
