"""The auth service core. Knows nothing of HTTP or SSH transports: callers pass plain values.

Certificates are issued here and only here; every login, good or bad, is an audit event written
before the answer goes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
from collections.abc import Sequence
from dataclasses import replace

from pyteleport import TELEPORT_VERSION
from pyteleport.api.metrics import NO_METRICS, Metrics
from pyteleport.auth.inventory import NodeInventory
from pyteleport.auth.invites import INVITE_TTL, Invites
from pyteleport.auth.jointokens import JoinTokens
from pyteleport.auth.locks import Locks
from pyteleport.auth.logins import LOCKED_MESSAGE, Lockout, PasswordCheck, PasswordWork
from pyteleport.auth.requests import AccessRequests
from pyteleport.backend import Backend, Item
from pyteleport.clock import Clock, SystemClock
from pyteleport.crypto import sshcert, sshkeys, tlsca
from pyteleport.crypto.checkpoint import SIGNER_EXTENSION
from pyteleport.errors import (
    AccessDeniedError,
    AlreadyExistsError,
    BadParameterError,
    NotFoundError,
    TeleportError,
)
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.events.catalog import CatalogedStore, RecordingCatalog
from pyteleport.events.store import RecordingStore
from pyteleport.events.textindex import RecordingIndex
from pyteleport.model.authority import CAType, CertAuthority
from pyteleport.model.identity import BUILTIN_ADMIN, Identity
from pyteleport.model.lock import Lock
from pyteleport.model.node import Node
from pyteleport.model.presets import PRESETS
from pyteleport.model.results import ClusterStatus, InviteInfo, UserCerts
from pyteleport.model.role import Role, check_name
from pyteleport.model.user import LOGINS_TRAIT, User
from pyteleport.policy.access import ACTIVE_REQUESTS_EXTENSION, RoleSet
from pyteleport.storage.authorities import CLUSTER_NAME_KEY, AuthorityStore
from pyteleport.storage.loginattempts import LoginAttemptStore
from pyteleport.storage.roles import RoleStore
from pyteleport.storage.tokens import TokenStore
from pyteleport.storage.users import UserStore

log = logging.getLogger("pyteleport.auth")
MAX_INVITE_TTL = dt.timedelta(hours=48)
MAX_HOST_CERT_TTL = dt.timedelta(days=3650)
FILL_AT_START_S = 10.0  # the start catalogues the store's older recordings for this long


class AuthServer:
    """Build with :meth:`open`, which creates the cluster's CAs on first start and reuses them."""

    def __init__(
        self,
        backend: Backend,
        cluster_name: str,
        *,
        clock: Clock | None = None,
        second_factor: str = "off",
        audit: AuditLog | None = None,
        recordings: RecordingStore | None = None,
    ) -> None:
        self.backend = backend
        self.cluster_name = cluster_name
        self.clock = clock or SystemClock()
        self.second_factor = second_factor
        self.audit = audit or AuditLog(backend, self.clock)
        self.authorities = AuthorityStore(backend)
        self.users = UserStore(backend)
        self.roles = RoleStore(backend)
        self.tokens = TokenStore(backend)
        self.locks = Locks(backend, self.audit, self.clock)
        self.nodes = NodeInventory(backend, self.audit, self.clock)
        self.join_tokens = JoinTokens(
            self.tokens, self.audit, self.clock, self.nodes, self.sign_host_cert
        )
        self.requests = AccessRequests(backend, self.audit, self.clock)
        self.recording_index = RecordingIndex(backend, self.clock)
        self.lockout = Lockout(LoginAttemptStore(backend), self.clock)
        self.password_work = PasswordWork()
        self.password_check = PasswordCheck(
            self.users, self.lockout, self.password_work, self.clock, second_factor
        )
        self.invites = Invites(
            self.users,
            self.tokens,
            self.lockout,
            self.password_work,
            self.audit,
            self.clock,
            cluster_name,
            second_factor,
        )
        # Where finished session recordings live, catalogued; None: this auth service keeps none.
        self.recordings = (
            CatalogedStore(recordings, RecordingCatalog(backend), self.clock)
            if recordings is not None
            else None
        )
        self._cas: dict[CAType, CertAuthority] = {}
        self.metrics: Metrics = NO_METRICS  # what /metrics counts; the process sets it

    # -- start ----------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        backend: Backend,
        cluster_name: str,
        *,
        clock: Clock | None = None,
        second_factor: str = "off",
        recordings: RecordingStore | None = None,
        audit: AuditLog | None = None,
    ) -> AuthServer:
        server = cls(
            backend,
            cluster_name,
            clock=clock,
            second_factor=second_factor,
            audit=audit,
            recordings=recordings,
        )
        await server._init_cluster()
        if server.recordings is not None:
            try:
                # Not longer than this: a store that does not answer does not hold up the
                # start (the retry catalogues in the background).
                await asyncio.wait_for(
                    server.recordings.catalog.fill(server.recordings.store), FILL_AT_START_S
                )
            except (TeleportError, OSError, TimeoutError) as exc:
                # Recordings stored from now on are listed; the older ones once a retry
                # (every minute, by the process) catalogues them.
                log.warning(
                    "could not list the recordings of %s (they are not listed until they are "
                    "catalogued, tried again every minute): %s",
                    server.recordings.name,
                    exc or "it did not answer in time",
                )
        try:
            await server.recording_index.upgrade()
        except (TeleportError, OSError) as exc:
            # The index is a convenience: the service starts, and tries again next time.
            log.warning(
                "could not move the search index to its new keys (searches miss the sessions "
                "recorded before this version; it is tried again at the next start): %s",
                exc,
            )
        return server

    async def _init_cluster(self) -> None:
        try:
            stored = (await self.backend.get(CLUSTER_NAME_KEY)).value.decode()
        except NotFoundError:
            stored = None
        if stored is not None and stored != self.cluster_name:
            raise BadParameterError(
                f'the data directory holds cluster "{stored}" but the config names '
                f'"{self.cluster_name}": set auth_service.cluster_name to "{stored}" '
                "or use an empty data_dir"
            )
        found: dict[CAType, CertAuthority] = {}
        for ca_type in CAType:
            with contextlib.suppress(NotFoundError):
                found[ca_type] = await self.authorities.get(ca_type)
        if stored is not None and len(found) != len(CAType):
            missing = ",".join(t.value for t in CAType if t not in found)
            raise BadParameterError(
                f"the data directory holds cluster {stored!r} but its {missing} certificate "
                "authority is missing: refusing to create new CAs over an existing cluster; "
                "restore the data_dir from a backup"
            )
        if stored is None:
            if found:
                raise BadParameterError(
                    "the data directory holds certificate authorities but no cluster name: "
                    "refusing to start on an inconsistent data_dir"
                )
            now = self.clock.now()
            for ca_type in (CAType.USER, CAType.HOST):
                key = sshkeys.generate_ssh_key("ed25519")
                found[ca_type] = CertAuthority(
                    type=ca_type,
                    cluster_name=self.cluster_name,
                    private_key=sshkeys.private_key_pem(key),
                    public_key=sshkeys.public_key_line(key),
                )
            pair = tlsca.create_ca(self.cluster_name, now)
            found[CAType.TLS] = CertAuthority(
                type=CAType.TLS,
                cluster_name=self.cluster_name,
                private_key=pair.key_pem,
                public_key=pair.cert_pem,
            )
            for ca in found.values():
                await self.authorities.create(ca)
            # The name goes last: a crash before this point leaves CAs without a name, which the
            # next start refuses rather than silently replacing.
            await self.backend.create(Item(key=CLUSTER_NAME_KEY, value=self.cluster_name.encode()))
        self._cas = found
        for role in PRESETS:
            with contextlib.suppress(AlreadyExistsError):
                await self.roles.create(role)

    # -- certificate authorities ----------------------------------------------------------------

    def ca(self, ca_type: CAType) -> CertAuthority:
        return self._cas[ca_type]

    def host_ca_public_key(self) -> bytes:
        return self._cas[CAType.HOST].public_key

    def user_ca_public_key(self) -> bytes:
        return self._cas[CAType.USER].public_key

    def tls_ca_cert(self) -> bytes:
        return self._cas[CAType.TLS].public_key

    def tls_ca_pair(self) -> tlsca.TLSKeyPair:
        ca = self._cas[CAType.TLS]
        return tlsca.TLSKeyPair(cert_pem=ca.public_key, key_pem=ca.private_key)

    def export_authorities(self, ca_type: str | None) -> str:
        """The text of ``/webapi/auth/export`` and ``tctl auth export`` (exact formats:
        docs/compatibility.md)."""
        user_line = self._cas[CAType.USER].public_key.decode()
        host_line = self._cas[CAType.HOST].public_key.decode()
        name = self.cluster_name
        host = f"@cert-authority {name},*.{name} {host_line} type=host\n"
        user = f"cert-authority {user_line} clustername={name}&type=user\n"
        if ca_type in (None, ""):
            return host + user
        if ca_type == "user":
            return user
        if ca_type == "host":
            return host
        if ca_type in ("tls", "tls-host", "tls-user"):
            return self._cas[CAType.TLS].public_key.decode()
        raise BadParameterError(
            f'unsupported authority type "{ca_type}", expected one of: user,host,tls'
        )

    def status(self) -> ClusterStatus:
        def fingerprint(ca_type: CAType) -> str:
            key = sshkeys.load_public_key(self._cas[ca_type].public_key)
            return str(key.get_fingerprint("sha256"))

        return ClusterStatus(
            cluster_name=self.cluster_name,
            version=TELEPORT_VERSION,
            user_ca_fingerprint=fingerprint(CAType.USER),
            host_ca_fingerprint=fingerprint(CAType.HOST),
            ca_pin=tlsca.ca_pin(self._cas[CAType.TLS].public_key),
        )

    # -- certificates ---------------------------------------------------------------------------

    async def role_set(self, user: User) -> RoleSet:
        roles: list[Role] = []
        for name in user.roles:
            try:
                roles.append(await self.roles.get(name))
            except NotFoundError:
                continue  # a deleted role grants nothing
        return RoleSet(roles=tuple(roles), traits=dict(user.traits))

    async def generate_user_certs(
        self,
        username: str,
        public_key_line: bytes,
        ttl: dt.timedelta | None,
        active_requests: Sequence[str] = (),
        not_after: dt.datetime | None = None,
    ) -> UserCerts:
        """SSH and TLS certificates for ``username`` over one public key; TTL capped by roles.

        With ``active_requests`` (approved access requests of the user) the certificates carry
        the roles those grant as well, and end when the first request ends; ``not_after``
        caps the validity further (a reissue never outlives the login it came from)."""
        user = await self.users.get(username)
        roles = await self.role_set(user)
        public_key = sshkeys.load_public_key(public_key_line)
        now = self.clock.now()
        valid_before = now + roles.cert_ttl(ttl)
        if active_requests:
            granted, ends = await self.requests.granted(username, active_requests)
            roles = await self._with_roles(roles, granted)
            valid_before = min(now + roles.cert_ttl(ttl), ends)
        if not_after is not None:
            valid_before = min(valid_before, not_after)
        principals = roles.ssh_principals()
        extensions = roles.ssh_extensions()
        if active_requests:
            extensions[ACTIVE_REQUESTS_EXTENSION] = json.dumps(
                {"requests": list(active_requests)}, separators=(",", ":")
            )
        ssh_cert = sshcert.sign_certificate(
            sshkeys.load_private_key(self._cas[CAType.USER].private_key),
            sshcert.CertRequest(
                public_key=public_key,
                cert_type=sshcert.USER_CERT,
                key_id=username,
                principals=tuple(principals),
                valid_after=now - dt.timedelta(minutes=1),
                valid_before=valid_before,
                extensions=extensions,
            ),
        )
        tls_cert = tlsca.issue_client_cert(
            self.tls_ca_pair(),
            sshkeys.tls_public_key_pem(public_key),
            username,
            roles.names,
            "",
            valid_before,
            now,
            active_requests,
        )
        identity: dict[str, object] = {
            "user": username,
            "roles": list(roles.names),
            "logins": principals,
        }
        if active_requests:
            identity["access_requests"] = list(active_requests)
        await self.audit.emit(codes.CERT_CREATE, {"identity": identity})
        return UserCerts(
            username=username,
            ssh_cert=ssh_cert,
            tls_cert=tls_cert,
            roles=roles.names,
            logins=tuple(roles.logins()),
            valid_before=valid_before,
        )

    def sign_host_cert(
        self, public_key_line: bytes, principals: Sequence[str], ttl: dt.timedelta | None
    ) -> bytes:
        """A host certificate: empty key ID, the cluster's ``x-teleport-*`` extensions."""
        if not principals:
            raise BadParameterError("at least one host name is required")
        for principal in principals:
            if "*" in principal:
                raise BadParameterError(
                    f'wildcard host name "{principal}" is refused: OpenSSH matches host '
                    "certificate principals literally, so use fully qualified names"
                )
        now = self.clock.now()
        valid_before = None
        valid_after = None
        if ttl is not None:
            if ttl <= dt.timedelta(0) or ttl > MAX_HOST_CERT_TTL:
                raise BadParameterError("--ttl must be positive and at most 3650 days")
            valid_after = now - dt.timedelta(minutes=1)
            valid_before = now + ttl
        return sshcert.sign_certificate(
            sshkeys.load_private_key(self._cas[CAType.HOST].private_key),
            sshcert.CertRequest(
                public_key=sshkeys.load_public_key(public_key_line),
                cert_type=sshcert.HOST_CERT,
                key_id="",
                principals=tuple(principals),
                valid_after=valid_after,
                valid_before=valid_before,
                extensions={
                    "x-teleport-authority": self.cluster_name,
                    "x-teleport-role": "Node",
                },
            ),
        )

    def sign_recording_signer(
        self, public_key_line: bytes, server_id: str, ttl: dt.timedelta
    ) -> bytes:
        """The host certificate of a proxy's checkpoint-signing key: the extension
        ``recording-signer@pyteleport`` marks it, which no other host certificate carries."""
        now = self.clock.now()
        return sshcert.sign_certificate(
            sshkeys.load_private_key(self._cas[CAType.HOST].private_key),
            sshcert.CertRequest(
                public_key=sshkeys.load_public_key(public_key_line),
                cert_type=sshcert.HOST_CERT,
                key_id=f"recording-signer {server_id}",
                principals=(server_id,),
                valid_after=now - dt.timedelta(minutes=1),
                valid_before=now + ttl,
                extensions={
                    "x-teleport-authority": self.cluster_name,
                    "x-teleport-role": "Proxy",
                    SIGNER_EXTENSION: "",
                },
            ),
        )

    def issue_identity(
        self, tls_public_key_pem: bytes, identity: Identity, ttl: dt.timedelta
    ) -> bytes:
        """A TLS client certificate for a system identity (the local admin of tctl)."""
        now = self.clock.now()
        return tlsca.issue_client_cert(
            self.tls_ca_pair(),
            tls_public_key_pem,
            identity.username,
            identity.roles,
            identity.builtin,
            now + ttl,
            now,
        )

    def issue_server_cert(self, hostnames: Sequence[str], ttl: dt.timedelta) -> tlsca.TLSKeyPair:
        return tlsca.issue_server_cert(self.tls_ca_pair(), hostnames, self.clock.now(), ttl)

    # -- logins ---------------------------------------------------------------------------------

    async def authenticate_ssh_user(
        self,
        username: str,
        password: str,
        otp_token: str,
        public_key_line: bytes,
        ttl: dt.timedelta | None,
        remote_addr: str = "",
    ) -> UserCerts:
        """Password (and OTP) login, as ``POST /webapi/ssh/certs``; audited either way."""
        try:
            await self.password_check.verify(username, password, otp_token)
        except AccessDeniedError as exc:
            self.metrics.password_login(False)
            await self.audit.emit(
                codes.USER_LOGIN,
                {
                    "user": username,
                    "method": "local",
                    "success": False,
                    "error": str(exc),
                    "addr.remote": remote_addr,
                },
                success=False,
            )
            raise
        certs = await self.generate_user_certs(username, public_key_line, ttl)
        self.metrics.password_login(True)
        await self.audit.emit(
            codes.USER_LOGIN,
            {"user": username, "method": "local", "success": True, "addr.remote": remote_addr},
        )
        return certs

    # -- users ----------------------------------------------------------------------------------

    async def create_user(
        self,
        name: str,
        roles: Sequence[str],
        logins: Sequence[str],
        created_by: str,
        invite_ttl: dt.timedelta = INVITE_TTL,
    ) -> InviteInfo:
        check_name("user", name)
        if not roles:
            raise BadParameterError("a user needs at least one role: use --roles=access")
        for role in roles:
            await self.roles.get(role)  # NotFoundError names the missing role
        for login in logins:
            if not login or any(c.isspace() for c in login) or "{{" in login:
                raise BadParameterError(f'invalid login "{login}"')
        if invite_ttl <= dt.timedelta(0) or invite_ttl > MAX_INVITE_TTL:
            raise BadParameterError("the invite TTL must be positive and at most 48h")
        user = User(
            name=name,
            roles=tuple(roles),
            traits={LOGINS_TRAIT: tuple(logins)} if logins else {},
            created=self.clock.now(),
            created_by=created_by,
        )
        await self.users.create(user)
        await self.audit.emit(
            codes.USER_CREATE, {"name": name, "roles": list(roles), "user": created_by}
        )
        return await self.invites.new_token(name, "invite", invite_ttl)

    async def create_reset_token(
        self, name: str, ttl: dt.timedelta = INVITE_TTL, by: str = ""
    ) -> InviteInfo:
        return await self.invites.create_reset_token(name, ttl, by)

    async def get_user_token(self, token: str) -> InviteInfo:
        return await self.invites.get(token)

    async def change_password_with_token(self, token: str, password: str, otp_code: str) -> User:
        return await self.invites.change_password(token, password, otp_code)

    async def set_password(self, name: str, password: str, by: str = "") -> str:
        return await self.invites.set_password(name, password, by)

    async def delete_user(self, name: str, deleted_by: str) -> None:
        await self.users.delete(name)
        await self.tokens.delete_user_tokens_for(name)
        await self.audit.emit(codes.USER_DELETE, {"name": name, "user": deleted_by})

    async def update_user_roles(self, name: str, roles: Sequence[str], by: str = "") -> User:
        for role in roles:
            await self.roles.get(role)
        updated = await self.users.change(name, lambda user: replace(user, roles=tuple(roles)))
        await self.audit.emit(codes.USER_UPDATE, {"name": name, "roles": list(roles), "user": by})
        return updated

    # -- roles ----------------------------------------------------------------------------------

    async def upsert_role(self, role: Role, *, overwrite: bool, by: str) -> bool:
        """Create (or with ``overwrite`` replace) a role. True if it was created."""
        created = True
        if overwrite:
            try:
                await self.roles.get(role.name)
                created = False
            except NotFoundError:
                pass
            await self.roles.upsert(role)
        else:
            await self.roles.create(role)
        await self.audit.emit(codes.ROLE_CREATED, {"name": role.name, "user": by})
        return created

    async def delete_role(self, name: str, by: str) -> None:
        users = [u.name for u in await self.users.list() if name in u.roles]
        if users:
            raise BadParameterError(
                f'role "{name}" is in use by users {",".join(users)}: remove it from them first'
            )
        await self.roles.delete(name)
        await self.audit.emit(codes.ROLE_DELETED, {"name": name, "user": by})

    # -- locks ----------------------------------------------------------------------------------

    async def list_locks(self) -> list[Lock]:
        return await self.locks.in_force()

    async def list_nodes(self) -> list[Node]:
        return await self.nodes.list()

    async def join_openssh_node(
        self, token: str, public_key_line: bytes, node: Node, principals: Sequence[str], by: str
    ) -> tuple[bytes, list[str]]:
        return await self.join_tokens.join_openssh_node(
            token, public_key_line, node, principals, by
        )

    async def identity_for_user(
        self,
        username: str,
        active_requests: Sequence[str] = (),
        expires: dt.datetime | None = None,
    ) -> Identity:
        """The live identity of a user: roles as stored now, so removing a role takes effect;
        ``active_requests`` are the access requests its certificate was issued with."""
        user = await self.users.get(username)
        if await self.lockout.is_locked(username):
            raise AccessDeniedError(LOCKED_MESSAGE)
        for lock in await self.locks.in_force():
            if lock.matches(user=username):
                raise AccessDeniedError(lock.describe())
        return Identity(
            username=username,
            roles=user.roles,
            active_requests=tuple(active_requests),
            expires=expires,
        )

    async def user_with_status(self, user: User) -> User:
        """The user with the lockout's view of its failed logins (kept apart from the record)."""
        return user.with_status(await self.lockout.status(user.name))

    async def role_set_for_user(
        self, username: str, active_requests: Sequence[str] = ()
    ) -> RoleSet:
        """The roles of a user as stored now, and those its certificate's access requests
        still grant; a locked or deleted user, or a request that no longer grants its roles
        (denied, expired, deleted), gets AccessDeniedError."""
        try:
            identity = await self.identity_for_user(username, active_requests)
        except NotFoundError:
            raise AccessDeniedError(f'user "{username}" does not exist any more') from None
        return await self.role_set_for(identity)

    async def role_set_for(self, identity: Identity) -> RoleSet:
        if identity.builtin == BUILTIN_ADMIN:
            return RoleSet(roles=(), traits={})
        roles = await self.role_set(await self.users.get(identity.username))
        if identity.active_requests:
            granted, _ = await self.requests.granted(
                identity.username, identity.active_requests, strict=False
            )
            roles = await self._with_roles(roles, granted)
        return roles

    async def _with_roles(self, roles: RoleSet, names: Sequence[str]) -> RoleSet:
        extra = []
        for name in names:
            if name in roles.names:
                continue
            try:
                extra.append(await self.roles.get(name))
            except NotFoundError:
                continue  # a deleted role grants nothing
        return RoleSet(roles=(*roles.roles, *extra), traits=roles.traits)
