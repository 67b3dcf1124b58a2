"""Certificate authorities of a cluster: user and host CAs for SSH, the TLS CA."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CAType(enum.Enum):
    USER = "user"
    HOST = "host"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class CertAuthority:
    """One CA. SSH CAs keep an OpenSSH private key and its public line; the TLS CA a PEM pair.

    ``private_key`` is PEM (OpenSSH or PKCS#8) and never leaves the auth service.
    """

    type: CAType
    cluster_name: str
    private_key: bytes
    public_key: bytes  # SSH: authorized_keys line "ssh-ed25519 AAAA..."; TLS: certificate PEM
