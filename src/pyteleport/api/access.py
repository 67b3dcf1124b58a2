"""What each consumer reads of the auth service. The proxy depends on these protocols, never on
the auth package: in the all-in-one process the auth server itself is passed in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from pyteleport.model.lock import Lock
from pyteleport.model.node import Node
from pyteleport.model.results import InviteInfo, UserCerts
from pyteleport.model.user import User
from pyteleport.policy.access import RoleSet


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

    async def join_openssh_node(
        self, token: str, public_key_line: bytes, node: Node, principals: Sequence[str], by: str
    ) -> tuple[bytes, list[str]]: ...


class AuditEmitter(Protocol):
    async def emit(
        self, event: str, fields: Mapping[str, Any], *, success: bool = True
    ) -> None: ...


class ProxySSHAccessPoint(Protocol):
    """What the SSH side of the proxy reads of the auth service: CA keys, host certificates
    signed on the fly, a user's roles as stored now, and the audit log."""

    cluster_name: str

    @property
    def audit(self) -> AuditEmitter: ...

    def user_ca_public_key(self) -> bytes: ...

    def host_ca_public_key(self) -> bytes: ...

    def sign_host_cert(
        self, public_key_line: bytes, principals: Sequence[str], ttl: dt.timedelta | None
    ) -> bytes: ...

    def sign_recording_signer(
        self, public_key_line: bytes, server_id: str, ttl: dt.timedelta
    ) -> bytes: ...

    async def role_set_for_user(
        self, username: str, active_requests: Sequence[str] = ()
    ) -> RoleSet: ...

    async def list_locks(self) -> list[Lock]: ...

    async def list_nodes(self) -> list[Node]: ...
