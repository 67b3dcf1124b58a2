"""Values the auth service hands back: issued certificates, cluster status, invites."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UserCerts:
    username: str
    ssh_cert: bytes  # authorized_keys-style certificate line
    tls_cert: bytes  # PEM
    roles: tuple[str, ...]
    logins: tuple[str, ...]
    valid_before: dt.datetime


@dataclass(frozen=True, slots=True)
class ClusterStatus:
    cluster_name: str
    version: str
    user_ca_fingerprint: str
    host_ca_fingerprint: str
    ca_pin: str


@dataclass(frozen=True, slots=True)
class InviteInfo:
    token: str
    user: str
    expires: dt.datetime
    otp_uri: str  # empty unless second_factor is otp
