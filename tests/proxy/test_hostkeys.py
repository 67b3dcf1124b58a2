"""Host certificates for typed hosts: signed by the host CA once per host, for both names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncssh

from pyteleport.crypto import sshcert, sshkeys
from pyteleport.proxy.hostkeys import HostKeyCache


class HostCA:
    """A host CA that counts what it signs (the part of the access point HostKeyCache uses)."""

    def __init__(self) -> None:
        self.key = sshkeys.generate_ssh_key("ed25519")
        self.calls = 0

    def sign_host_cert(
        self, public_key_line: bytes, principals: Sequence[str], ttl: dt.timedelta | None
    ) -> bytes:
        self.calls += 1
        return sshcert.sign_certificate(
            self.key,
            sshcert.CertRequest(
                public_key=sshkeys.load_public_key(public_key_line),
                cert_type=sshcert.HOST_CERT,
                key_id="",
                principals=tuple(principals),
                valid_after=None,
                valid_before=dt.datetime.now(dt.UTC) + (ttl or dt.timedelta(hours=1)),
                extensions={},
            ),
        )


def test_a_burst_to_one_host_signs_once() -> None:
    ca = HostCA()
    cache = HostKeyCache(ca)  # type: ignore[arg-type]
    pairs = [cache.pair(["db1", "db1.c.test"]) for _ in range(100)]
    assert ca.calls == 1 and cache.signed == 1
    assert all(p[1] is pairs[0][1] for p in pairs)
    cache.pair(["db2", "db2.c.test"])
    assert ca.calls == 2


def test_certificate_names_the_host_and_is_from_the_host_ca() -> None:
    ca = HostCA()
    _key, cert = HostKeyCache(ca).pair(["db1", "db1.c.test"])  # type: ignore[arg-type]
    assert isinstance(cert, asyncssh.SSHCertificate)
    assert cert.principals == ["db1", "db1.c.test"]
    assert cert.signing_key == ca.key.convert_to_public()
    cert.validate(sshcert.HOST_CERT, "db1")  # raises on a wrong type, principal or time
