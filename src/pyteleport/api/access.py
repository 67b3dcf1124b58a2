"""What each consumer reads of the auth service. The proxy depends on these protocols, never on
the auth package: in the all-in-one process the auth server itself is passed in."""

from __future__ import annotations

import datetime as dt
from typing import Protocol

from pyteleport.model.results import InviteInfo, UserCerts
from pyteleport.model.user import User


class ProxyAccessPoint(Protocol):
    cluster_name: str
    second_factor: str

    def export_authorities(self, ca_type: str | None) -> str: ...

    def host_ca_public_key(self) -> bytes: ...

    def tls_ca_cert(self) -> bytes: ...

    async def authenticate_ssh_user(
        self,
        username: str,
        password: str,
        otp_token: str,
        public_key_line: bytes,
        ttl: dt.timedelta | None,
        remote_addr: str = "",
    ) -> UserCerts: ...

    async def get_user_token(self, token: str) -> InviteInfo: ...

    async def change_password_with_token(
        self, token: str, password: str, otp_code: str
    ) -> User: ...
