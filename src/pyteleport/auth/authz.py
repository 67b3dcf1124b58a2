"""The one authorization wrapper: every remote call to the auth service passes through here.

An :class:`AuthorizedAuth` is the auth server as seen by one identity. Each method checks the
identity's role rules (deny beats allow) before it calls the core; the built-in Admin identity of
the local ``tctl`` may do everything.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pyteleport.auth import backup
from pyteleport.auth.requests import still_granting
from pyteleport.auth.server import AuthServer
from pyteleport.errors import AccessDeniedError, NotFoundError
from pyteleport.events.catalog import CatalogedStore, CatalogPage, Reconciled
from pyteleport.events.store import RecordingInfo
from pyteleport.events.textindex import IndexedSession, SearchResults
from pyteleport.model.accessrequest import PENDING, AccessRequest
from pyteleport.model.identity import Identity
from pyteleport.model.lock import Lock
from pyteleport.model.node import Node
from pyteleport.model.results import ClusterStatus, InviteInfo, UserCerts
from pyteleport.model.role import Role
from pyteleport.model.token import ProvisionToken
from pyteleport.model.user import User
from pyteleport.policy.requests import check_reviewer


class AuthorizedAuth:
    def __init__(self, server: AuthServer, identity: Identity) -> None:
        self._server = server
        self.identity = identity

    async def _check(self, resource: str, verb: str) -> None:
        if self.identity.is_admin:
            return
        if self.identity.builtin:
            raise AccessDeniedError(
                f'access denied to perform action "{verb}" on "{resource}" for '
                f"{self.identity.builtin}"
            )
        roles = await self._server.role_set_for(self.identity)
        roles.check_rule(resource, verb)

    @property
    def actor(self) -> str:
        return self.identity.username

    async def status(self) -> ClusterStatus:
        # Any authenticated identity may see the cluster's status (as tctl status shows it).
        return self._server.status()

    async def export_authorities(self, ca_type: str | None) -> str:
        return self._server.export_authorities(ca_type)

    # users
    async def create_user(
        self, name: str, roles: Sequence[str], logins: Sequence[str], ttl: dt.timedelta
    ) -> InviteInfo:
        await self._check("user", "create")
        return await self._server.create_user(name, roles, logins, self.actor, ttl)

    async def list_users(self) -> list[User]:
        await self._check("user", "list")
        return [await self._server.user_with_status(u) for u in await self._server.users.list()]

    async def get_user(self, name: str) -> User:
        await self._check("user", "read")
        return await self._server.user_with_status(await self._server.users.get(name))

    async def delete_user(self, name: str) -> None:
        await self._check("user", "delete")
        await self._server.delete_user(name, self.actor)

    async def set_password(self, name: str, password: str) -> str:
        await self._check("user", "update")
        return await self._server.set_password(name, password, self.actor)

    async def create_reset_token(self, name: str, ttl: dt.timedelta) -> InviteInfo:
        await self._check("user", "update")
        return await self._server.create_reset_token(name, ttl, self.actor)

    async def update_user_roles(self, name: str, roles: Sequence[str]) -> User:
        await self._check("user", "update")
        return await self._server.update_user_roles(name, roles, self.actor)

    # roles
    async def list_roles(self) -> list[Role]:
        await self._check("role", "list")
        return await self._server.roles.list()

    async def get_role(self, name: str) -> Role:
        await self._check("role", "read")
        return await self._server.roles.get(name)

    async def upsert_role(self, role: Role, overwrite: bool) -> bool:
        await self._check("role", "create")
        if overwrite:
            await self._check("role", "update")
        return await self._server.upsert_role(role, overwrite=overwrite, by=self.actor)

    async def delete_role(self, name: str) -> None:
        await self._check("role", "delete")
        await self._server.delete_role(name, self.actor)

    # join tokens
    async def create_join_token(
        self, roles: Sequence[str], ttl: dt.timedelta | None
    ) -> ProvisionToken:
        await self._check("token", "create")
        return await self._server.join_tokens.create(roles, ttl, self.actor)

    # locks
    async def create_lock(
        self, target_kind: str, target: str, message: str, ttl: dt.timedelta | None
    ) -> Lock:
        await self._check("lock", "create")
        return await self._server.locks.create(target_kind, target, message, ttl, self.actor)

    async def list_locks(self) -> list[Lock]:
        await self._check("lock", "list")
        return await self._server.list_locks()

    async def delete_lock(self, name: str) -> None:
        await self._check("lock", "delete")
        await self._server.locks.delete(name, self.actor)

    # nodes
    async def upsert_node(self, node: Node, overwrite: bool) -> bool:
        await self._check("node", "create")
        if overwrite:
            await self._check("node", "update")
        return await self._server.nodes.upsert(node, overwrite, self.actor)

    async def list_nodes(self) -> list[Node]:
        await self._check("node", "list")
        return await self._server.nodes.list()

    async def list_reachable_nodes(self) -> list[Node]:
        """``tsh ls``: any user may list the nodes its roles' node_labels let it reach."""
        nodes = await self._server.nodes.list()
        if self.identity.is_admin:
            return nodes
        if self.identity.builtin:
            raise AccessDeniedError(
                f'access denied to perform action "list" on "node" for {self.identity.builtin}'
            )
        roles = await self._server.role_set_for(self.identity)
        return [n for n in nodes if roles.node_allowed(n.labels)]

    async def get_node(self, name: str) -> Node:
        await self._check("node", "read")
        return await self._server.nodes.get(name)

    async def delete_node(self, name: str) -> None:
        await self._check("node", "delete")
        await self._server.nodes.delete(name, self.actor)

    async def list_join_tokens(self) -> list[ProvisionToken]:
        await self._check("token", "list")
        return await self._server.tokens.list_join()

    async def delete_join_token(self, token: str) -> None:
        await self._check("token", "delete")
        await self._server.join_tokens.delete(token, self.actor)

    # certificates
    async def sign_host_cert(
        self, public_key: bytes, principals: Sequence[str], ttl: dt.timedelta | None
    ) -> bytes:
        await self._check("cert_authority", "create")
        return self._server.sign_host_cert(public_key, principals, ttl)

    async def generate_user_certs(
        self, username: str, public_key: bytes, ttl: dt.timedelta | None
    ) -> UserCerts:
        # Signing user certificates is an admin act (tctl auth sign --user), even for oneself:
        # a user renewing their own certificate could otherwise outlive their login forever.
        await self._check("cert_authority", "create")
        await self._check("user", "read")
        self._check_impersonation(username)
        return await self._server.generate_user_certs(username, public_key, ttl)

    async def renew_certs(
        self, public_key: bytes, request_ids: Sequence[str], ttl: dt.timedelta | None
    ) -> UserCerts:
        """``tsh login --request-id``: the caller's own certificates again, with the roles its
        approved access requests grant. They end no later than the certificate the caller
        presented, so renewing never extends a login."""
        if self.identity.builtin or self.identity.expires is None:
            raise AccessDeniedError("only a user logged in with tsh login can renew certificates")
        # The requests the presented certificate already carries stay, while they grant.
        server = self._server
        kept = await still_granting(
            server.requests, self.actor, self.identity.active_requests, server.clock.now()
        )
        names = list(dict.fromkeys([*kept, *request_ids]))
        return await server.generate_user_certs(
            self.actor, public_key, ttl, names, not_after=self.identity.expires
        )

    # backup and restore
    async def export_resources(self, kinds: Sequence[str], with_secrets: bool) -> list[Any]:
        """``tctl get all``: each kind needs its list rule; secrets only the local admin."""
        if with_secrets and not self.identity.is_admin:
            raise AccessDeniedError(
                "only the local admin may read secrets (--with-secrets): run tctl on the auth "
                "host with -c teleport.yaml"
            )
        for kind in kinds:
            await self._check(kind, "list")
        return await backup.export_resources(self._server, kinds, with_secrets)

    async def create_resource(self, doc: dict[str, Any], force: bool) -> backup.Outcome:
        """``tctl create``: the kind's create rule (and update with ``force``); a user with
        password hashes or TOTP keys, and a join token, only from the local admin."""
        kind = backup.resource_kind(doc)
        await self._check(kind, "create")
        if force:
            await self._check(kind, "update")
        spec = doc.get("spec")
        secret = kind in backup.SECRET_KINDS or (
            kind == "user" and isinstance(spec, dict) and bool(spec.get("local_auth"))
        )
        if secret and not self.identity.is_admin:
            raise AccessDeniedError(
                f"only the local admin may create a {kind} with secrets: run tctl on the auth "
                "host with -c teleport.yaml"
            )
        return await backup.create_resource(self._server, doc, force, self.actor)

    # access requests
    async def create_access_request(
        self,
        roles: Sequence[str],
        reason: str,
        reviewers: Sequence[str],
        max_duration: dt.timedelta | None,
    ) -> AccessRequest:
        if self.identity.builtin:
            raise AccessDeniedError("access requests are made by users: log in with tsh login")
        server = self._server
        requester = await server.role_set(await server.users.get(self.actor))
        known = [r.name for r in await server.roles.list()]
        return await server.requests.create(
            self.actor, requester, roles, reason, reviewers, max_duration, known
        )

    async def _may_see_request(self, request: AccessRequest) -> bool:
        """Its requester, whoever may review it, and holders of an access_request rule."""
        if self.identity.is_admin or request.user == self.actor:
            return True
        if self.identity.builtin:
            return False
        roles = await self._server.role_set_for(self.identity)
        try:
            roles.check_rule("access_request", "read")
            return True
        except AccessDeniedError:
            pass
        try:
            check_reviewer(roles, self.actor, request.user, request.roles)
        except AccessDeniedError:
            return False
        return True

    async def list_access_requests(self) -> list[AccessRequest]:
        found = await self._server.requests.list()
        return [r for r in found if await self._may_see_request(r)]

    async def get_access_request(self, name: str) -> AccessRequest:
        request = await self._server.requests.get(name)
        if not await self._may_see_request(request):
            raise NotFoundError(f'access request "{name}" is not found')
        return request

    async def review_access_request(self, name: str, approve: bool, reason: str) -> AccessRequest:
        """``tsh request review``: counted against the request's thresholds."""
        if self.identity.builtin:
            raise AccessDeniedError(
                "the local admin approves or denies at once: tctl requests approve|deny"
            )
        roles = await self._server.role_set_for(self.identity)
        return await self._server.requests.review(name, self.actor, roles, approve, reason)

    async def set_access_request_state(
        self, name: str, approve: bool, reason: str
    ) -> AccessRequest:
        """``tctl requests approve|deny``: an administrator decides at once, but never on a
        request of their own (only the local admin may)."""
        await self._check("access_request", "update")
        if not self.identity.is_admin:
            request = await self._server.requests.get(name)
            if request.user == self.actor:
                raise AccessDeniedError("you cannot review your own access request")
        return await self._server.requests.set_state(name, approve, reason, self.actor)

    async def delete_access_request(self, name: str) -> None:
        """An access_request rule deletes any request; a user its own while it is PENDING.
        Without the rule, a request that is not there is refused like one of another user's,
        so the answer tells nothing of other users' requests."""
        try:
            await self._check("access_request", "delete")
        except AccessDeniedError:
            try:
                request = await self._server.requests.store.get(name)
            except NotFoundError:
                raise AccessDeniedError(
                    'access denied to perform action "delete" on "access_request"'
                ) from None
            if not (request.user == self.actor and request.state == PENDING):
                raise
        await self._server.requests.delete(name, self.actor)

    def _check_impersonation(self, username: str) -> None:
        # A certificate for another user is impersonation: Teleport requires an impersonate
        # rule naming that user's roles. Our roles have no impersonate rules, so only the local
        # admin may do it; an editor could otherwise mint certificates with anyone's logins.
        if self.identity.is_admin or username == self.identity.username:
            return
        raise AccessDeniedError(
            f'user "{self.identity.username}" may not sign certificates for user "{username}": '
            "only the local admin (tctl -c on the auth host) can sign certificates for "
            "other users"
        )

    # audit
    async def search_events(
        self,
        since: dt.datetime,
        until: dt.datetime,
        types: Sequence[str],
        limit: int,
        session_id: str = "",
    ) -> list[dict[str, Any]]:
        await self._check("event", "list")
        return await self._server.audit.search(since, until, types, limit, session_id)

    # session recordings
    def _recordings(self) -> CatalogedStore:
        if self._server.recordings is None:
            raise NotFoundError("this auth service keeps no session recordings")
        return self._server.recordings

    # Holders of a "session" rule see every recording. Anyone else sees the sessions they took
    # part in, as Teleport's access preset allows with its rule
    # ``where: contains(session.participants, user.metadata.name)``.
    async def _may(self, verb: str) -> bool:
        try:
            await self._check("session", verb)
        except AccessDeniedError:
            return False
        return True

    async def list_recordings(
        self,
        *,
        since: dt.datetime | None = None,
        until: dt.datetime | None = None,
        limit: int = 1000,
        node: str = "",
        labels: Mapping[str, str] | None = None,
        after: str = "",
    ) -> CatalogPage:
        """The newest ``limit`` recordings this caller may see that started in ``[since,
        until)``, on ``node`` (its name as recorded) and on a node with every one of
        ``labels``, after the cursor ``after``."""
        store = self._recordings()
        everyone = await self._may("list")
        wanted = dict(labels or {})

        def want(info: RecordingInfo) -> bool:
            return (not node or info.server_hostname == node) and all(
                info.server_labels.get(k) == v for k, v in wanted.items()
            )

        return await store.catalog.list(
            since=since,
            until=until,
            limit=limit,
            want=want,
            after=after,
            participant="" if everyone else self.identity.username,
        )

    async def reindex_recordings(self) -> Reconciled:
        """The catalog made to list what the store holds: the session ids catalogued anew (or
        again), those whose entry went, and what in the store is no readable recording."""
        await self._check("session", "update")
        store = self._recordings()
        return await store.catalog.reconcile(store.store)

    async def search_recordings(
        self, text: str, user: str, node: str, since: dt.datetime | None, limit: int
    ) -> SearchResults:
        """Lines of recorded sessions holding ``text``, in the sessions this caller may see
        (the rule of :meth:`list_recordings`)."""
        everyone = await self._may("list")
        me = self.identity.username

        def visible(session: IndexedSession) -> bool:
            return everyone or me in session.participants

        return await self._server.recording_index.search(
            text, user=user, node=node, since=since, visible=visible, limit=limit
        )

    def recording_running(self, session_id: str) -> bool:
        """Whether a listed session is running here now: said by the proxy that holds it, not
        by its recording (which whoever can write to the store could change)."""
        return self._recordings().running(session_id)

    async def read_recording(self, session_id: str) -> bytes:
        await self.check_recording_read(session_id)
        return await self._recordings().read(session_id)

    async def recording_chunks(self, session_id: str) -> AsyncIterator[bytes]:
        """The recording a piece at a time, once its reading is allowed."""
        await self.check_recording_read(session_id)
        return self._recordings().chunks(session_id)

    async def check_recording_read(self, session_id: str) -> None:
        """A session rule reads any recording; anyone else those they took part in, which
        the recording's own header says (one recording read, not the whole store)."""
        if await self._may("read"):
            return
        try:
            info = await self._recordings().info(session_id)
        except NotFoundError:
            info = None
        if info is None or self.identity.username not in info.participants:
            raise AccessDeniedError('access denied to perform action "read" on "session"')
