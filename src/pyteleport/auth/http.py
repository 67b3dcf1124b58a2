"""The auth API (``/v1``) over HTTPS. Endpoints decode, call the authorized core, encode.

The caller is whoever the verified TLS client certificate names: a user who ran ``tsh login``
(roles as stored now) or the built-in Admin identity that ``tctl`` reads from the data directory.
"""

import datetime as dt
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from pyteleport.api import wire
from pyteleport.auth import backup
from pyteleport.auth.authz import AuthorizedAuth
from pyteleport.auth.server import AuthServer
from pyteleport.crypto import tlsca
from pyteleport.errors import AccessDeniedError, BadParameterError
from pyteleport.events.catalog import check_cursor
from pyteleport.model.accessrequest import access_request_to_dict
from pyteleport.model.identity import BUILTIN_ADMIN, Identity
from pyteleport.model.node import node_from_dict, node_to_dict, parse_label_selector
from pyteleport.model.role import role_from_dict, role_to_dict
from pyteleport.model.timefmt import format_time, parse_time
from pyteleport.model.token import provision_token_to_dict
from pyteleport.model.user import user_to_dict
from pyteleport.storage.locks import lock_to_dict
from pyteleport.web.server import peer_certificate

RECORDING_MEDIA_TYPE = "application/octet-stream"  # .rec chunks or .cast text
MAX_RECORDINGS_PAGE = 1000  # recordings in one answer of GET /v1/recordings


def invite_url(web_public_addr: str, token: str) -> str:
    return f"https://{web_public_addr}/web/invite/{token}"


def auth_router(server: AuthServer, web_public_addr: str) -> APIRouter:
    """The ``/v1`` routes, bound to one auth server; mounted on the auth and proxy listeners."""

    async def caller(request: Request) -> AuthorizedAuth:
        der = peer_certificate(request)
        if der is None:
            raise AccessDeniedError(
                "this endpoint needs a client certificate: run tsh login, or tctl on the auth host"
            )
        cert_identity = tlsca.identity_from_cert(der, server.tls_ca_cert(), server.clock.now())
        if cert_identity.builtin:
            if cert_identity.builtin != BUILTIN_ADMIN:
                raise AccessDeniedError(
                    f"built-in role {cert_identity.builtin} may not use the API"
                )
            identity = Identity(username=cert_identity.username, builtin=BUILTIN_ADMIN)
        else:
            identity = await server.identity_for_user(
                cert_identity.username, cert_identity.active_requests, cert_identity.expires
            )
        return AuthorizedAuth(server, identity)

    Caller = Annotated[AuthorizedAuth, Depends(caller)]
    router = APIRouter(prefix="/v1", tags=["auth"])

    def invite(info: Any) -> wire.InviteResponse:
        return wire.InviteResponse(
            user=info.user,
            token=info.token,
            url=invite_url(web_public_addr, info.token),
            expires=format_time(info.expires),
            otp_uri=info.otp_uri,
        )

    @router.get("/status")
    async def status(auth: Caller) -> wire.StatusResponse:
        st = await auth.status()
        return wire.StatusResponse(
            cluster_name=st.cluster_name,
            version=st.version,
            user_ca_fingerprint=st.user_ca_fingerprint,
            host_ca_fingerprint=st.host_ca_fingerprint,
            ca_pin=st.ca_pin,
        )

    @router.post("/users")
    async def create_user(body: wire.CreateUserRequest, auth: Caller) -> wire.InviteResponse:
        info = await auth.create_user(
            body.name, body.roles, body.logins, dt.timedelta(seconds=body.ttl_s)
        )
        return invite(info)

    @router.get("/users")
    async def list_users(auth: Caller) -> list[dict[str, Any]]:
        return [user_to_dict(u) for u in await auth.list_users()]

    @router.get("/users/{name}")
    async def get_user(name: wire.Name, auth: Caller) -> dict[str, Any]:
        return user_to_dict(await auth.get_user(name))

    @router.put("/users/{name}")
    async def update_user(
        name: wire.Name, body: wire.UpdateUserRequest, auth: Caller
    ) -> dict[str, Any]:
        return user_to_dict(await auth.update_user_roles(name, body.roles))

    @router.delete("/users/{name}")
    async def delete_user(name: wire.Name, auth: Caller) -> dict[str, str]:
        await auth.delete_user(name)
        return {"message": f'user "{name}" has been deleted'}

    @router.put("/users/{name}/password")
    async def set_password(
        name: wire.Name, body: wire.SetPasswordRequest, auth: Caller
    ) -> wire.SetPasswordResponse:
        return wire.SetPasswordResponse(otp_uri=await auth.set_password(name, body.password))

    @router.post("/users/{name}/reset")
    async def reset_user(name: wire.Name, auth: Caller) -> wire.InviteResponse:
        return invite(await auth.create_reset_token(name, dt.timedelta(hours=1)))

    @router.get("/roles")
    async def list_roles(auth: Caller) -> list[dict[str, Any]]:
        return [role_to_dict(r) for r in await auth.list_roles()]

    @router.get("/roles/{name}")
    async def get_role(name: wire.Name, auth: Caller) -> dict[str, Any]:
        return role_to_dict(await auth.get_role(name))

    @router.put("/roles")
    async def put_role(body: wire.PutRoleRequest, auth: Caller) -> wire.PutRoleResponse:
        role = role_from_dict(body.resource)
        created = await auth.upsert_role(role, body.overwrite)
        return wire.PutRoleResponse(name=role.name, created=created)

    @router.delete("/roles/{name}")
    async def delete_role(name: wire.Name, auth: Caller) -> dict[str, str]:
        await auth.delete_role(name)
        return {"message": f'role "{name}" has been deleted'}

    @router.put("/nodes")
    async def put_node(body: wire.PutNodeRequest, auth: Caller) -> wire.PutNodeResponse:
        node = node_from_dict(body.resource)
        created = await auth.upsert_node(node, body.overwrite)
        return wire.PutNodeResponse(name=node.name, created=created)

    @router.get("/nodes")
    async def list_nodes(auth: Caller) -> list[dict[str, Any]]:
        return [node_to_dict(n) for n in await auth.list_nodes()]

    @router.get("/reachable-nodes")
    async def list_reachable_nodes(auth: Caller) -> list[dict[str, Any]]:
        return [node_to_dict(n) for n in await auth.list_reachable_nodes()]

    @router.get("/nodes/{name}")
    async def get_node(name: wire.Name, auth: Caller) -> dict[str, Any]:
        return node_to_dict(await auth.get_node(name))

    @router.delete("/nodes/{name}")
    async def delete_node(name: wire.Name, auth: Caller) -> dict[str, str]:
        await auth.delete_node(name)
        return {"message": f'node "{name}" has been deleted'}

    @router.post("/tokens")
    async def create_token(body: wire.CreateTokenRequest, auth: Caller) -> wire.TokenResponse:
        ttl = dt.timedelta(seconds=body.ttl_s) if body.ttl_s else None
        token = await auth.create_join_token(body.roles, ttl)
        return wire.TokenResponse(
            token=token.token, roles=list(token.roles), expires=format_time(token.expires)
        )

    @router.get("/tokens")
    async def list_tokens(auth: Caller) -> list[dict[str, Any]]:
        return [provision_token_to_dict(t) for t in await auth.list_join_tokens()]

    @router.delete("/tokens/{token}")
    async def delete_token(token: wire.Token, auth: Caller) -> dict[str, str]:
        await auth.delete_join_token(token)
        return {"message": "token has been deleted"}

    @router.post("/locks")
    async def create_lock(body: wire.CreateLockRequest, auth: Caller) -> dict[str, Any]:
        ttl = dt.timedelta(seconds=body.ttl_s) if body.ttl_s else None
        lock = await auth.create_lock(body.target_kind, body.target, body.message, ttl)
        return lock_to_dict(lock)

    @router.get("/locks")
    async def list_locks(auth: Caller) -> list[dict[str, Any]]:
        return [lock_to_dict(lock) for lock in await auth.list_locks()]

    @router.delete("/locks/{name}")
    async def delete_lock(name: wire.Name, auth: Caller) -> dict[str, str]:
        await auth.delete_lock(name)
        return {"message": f'lock "{name}" has been deleted'}

    @router.get("/authorities/export")
    async def export(auth: Caller, type: str | None = None) -> wire.ExportResponse:
        return wire.ExportResponse(text=await auth.export_authorities(type))

    @router.post("/certs/host")
    async def sign_host(body: wire.SignHostRequest, auth: Caller) -> wire.SignHostResponse:
        ttl = dt.timedelta(seconds=body.ttl_s) if body.ttl_s else None
        cert = await auth.sign_host_cert(body.public_key.encode(), body.principals, ttl)
        return wire.SignHostResponse(cert=cert.decode())

    @router.post("/certs/user")
    async def sign_user(body: wire.SignUserRequest, auth: Caller) -> wire.SignUserResponse:
        ttl = dt.timedelta(seconds=body.ttl_s) if body.ttl_s else None
        certs = await auth.generate_user_certs(body.username, body.public_key.encode(), ttl)
        return wire.SignUserResponse(
            cert=certs.ssh_cert.decode(),
            tls_cert=certs.tls_cert.decode(),
            valid_before=format_time(certs.valid_before),
        )

    @router.get("/resources")
    async def get_resources(
        auth: Caller, kinds: wire.Name = "all", with_secrets: bool = False
    ) -> list[dict[str, Any]]:
        exported: list[dict[str, Any]] = await auth.export_resources(
            backup.parse_kinds(kinds), with_secrets
        )
        return exported

    @router.post("/resources")
    async def put_resource(body: wire.PutResourceRequest, auth: Caller) -> wire.PutResourceResponse:
        outcome = await auth.create_resource(dict(body.resource), body.force)
        return wire.PutResourceResponse(kind=outcome.kind, name=outcome.name, result=outcome.result)

    @router.post("/certs/renew")
    async def renew_certs(body: wire.RenewCertsRequest, auth: Caller) -> wire.SignUserResponse:
        ttl = dt.timedelta(seconds=body.ttl_s) if body.ttl_s else None
        certs = await auth.renew_certs(body.public_key.encode(), body.request_ids, ttl)
        return wire.SignUserResponse(
            cert=certs.ssh_cert.decode(),
            tls_cert=certs.tls_cert.decode(),
            valid_before=format_time(certs.valid_before),
        )

    @router.post("/access-requests")
    async def create_access_request(body: wire.CreateAccessRequest, auth: Caller) -> dict[str, Any]:
        duration = dt.timedelta(seconds=body.max_duration_s) if body.max_duration_s else None
        request = await auth.create_access_request(
            body.roles, body.reason, body.reviewers, duration
        )
        return access_request_to_dict(request)

    @router.get("/access-requests")
    async def list_access_requests(auth: Caller) -> list[dict[str, Any]]:
        return [access_request_to_dict(r) for r in await auth.list_access_requests()]

    @router.get("/access-requests/{name}")
    async def get_access_request(name: wire.Token, auth: Caller) -> dict[str, Any]:
        return access_request_to_dict(await auth.get_access_request(name))

    @router.post("/access-requests/{name}/reviews")
    async def review_access_request(
        name: wire.Token, body: wire.ReviewAccessRequest, auth: Caller
    ) -> dict[str, Any]:
        request = await auth.review_access_request(name, body.approve, body.reason)
        return access_request_to_dict(request)

    @router.put("/access-requests/{name}/state")
    async def set_access_request_state(
        name: wire.Token, body: wire.SetAccessRequestState, auth: Caller
    ) -> dict[str, Any]:
        approve = body.state == "APPROVED"
        request = await auth.set_access_request_state(name, approve, body.reason)
        return access_request_to_dict(request)

    @router.delete("/access-requests/{name}")
    async def delete_access_request(name: wire.Token, auth: Caller) -> dict[str, str]:
        await auth.delete_access_request(name)
        return {"message": f'access request "{name}" has been deleted'}

    @router.get("/events")
    async def events(
        auth: Caller,
        since: str | None = None,
        until: str | None = None,
        types: Annotated[list[str] | None, Query(alias="type")] = None,
        limit: int = 1000,
        sid: wire.Token = "",
    ) -> wire.EventsResponse:
        now = server.clock.now()
        try:
            start = parse_time(since) if since else now - dt.timedelta(days=1)
            end = parse_time(until) if until else now + dt.timedelta(minutes=1)
        except BadParameterError:
            raise
        found = await auth.search_events(start, end, types or [], max(1, min(limit, 10000)), sid)
        return wire.EventsResponse(events=found)

    @router.get("/recordings")
    async def list_recordings(
        auth: Caller,
        since: str | None = None,
        until: str | None = None,
        limit: int = MAX_RECORDINGS_PAGE,
        node: wire.Name = "",
        labels: wire.Text = "",
        after: wire.Token = "",
    ) -> wire.RecordingsResponse:
        """The newest recordings first, a page at a time: ``next`` is the ``after`` of the
        following page ("" after the last)."""
        page = await auth.list_recordings(
            since=parse_time(since) if since else None,
            until=parse_time(until) if until else None,
            limit=max(1, min(limit, MAX_RECORDINGS_PAGE)),
            node=node,
            labels=parse_label_selector([labels]),
            after=check_cursor(after) if after else "",
        )
        return wire.RecordingsResponse(
            next=page.next,
            recordings=[
                wire.Recording(
                    sid=info.session_id,
                    kind=info.kind,
                    user=info.user,
                    login=info.login,
                    participants=list(info.participants),
                    server_hostname=info.server_hostname,
                    session_start=format_time(info.timestamp),
                    duration_s=info.duration_s,
                    command=info.command,
                    server_labels=dict(info.server_labels),
                    running=auth.recording_running(info.session_id),
                )
                for info in page.recordings
            ],
        )

    @router.post("/recordings/reindex")
    async def reindex_recordings(auth: Caller) -> wire.ReindexResponse:
        done = await auth.reindex_recordings()
        return wire.ReindexResponse(
            added=done.added,
            removed=done.removed,
            unreadable=[wire.UnreadableRecording(name=n, reason=r) for n, r in done.unreadable],
            misnamed=[wire.UnreadableRecording(name=n, reason=r) for n, r in done.misnamed],
        )

    @router.get("/recording-search")
    async def search_recordings(
        auth: Caller,
        q: wire.Text,
        user: wire.Name = "",
        node: wire.Name = "",
        since: str | None = None,
        limit: int = 100,
    ) -> wire.SearchResponse:
        return await _search(auth, q, user, node, since, limit)

    @router.post("/recording-search")
    async def search_recordings_posted(
        request: wire.SearchRequest, auth: Caller
    ) -> wire.SearchResponse:
        # What tsh and tctl send: the text in a body, not a query a URL's limit would cut.
        return await _search(
            auth, request.q, request.user, request.node, request.since, request.limit
        )

    async def _search(
        auth: AuthorizedAuth,
        q: str,
        user: str,
        node: str,
        since: str | None,
        limit: int,
    ) -> wire.SearchResponse:
        if not q.strip():
            raise BadParameterError("give the text to search for")
        start = parse_time(since) if since else None
        results = await auth.search_recordings(q, user, node, start, max(1, min(limit, 1000)))
        return wire.SearchResponse(
            truncated=results.truncated,
            partial=results.partial[:100],
            hits=[
                wire.SearchHit(
                    sid=h.session.session_id,
                    user=h.session.user,
                    login=h.session.login,
                    node=h.session.node,
                    session_start=format_time(h.session.start),
                    offset_ms=h.offset_ms,
                    kind=h.kind,
                    line=h.line,
                )
                for h in results.hits
            ],
        )

    @router.get("/recordings/{sid}")
    async def get_recording(sid: wire.Token, auth: Caller) -> Response:
        # Sent a piece at a time: a long session's recording is never held whole. The first
        # piece is read here, so a missing recording is still a 404, not a cut stream.
        chunks = await auth.recording_chunks(sid)
        first = await anext(chunks, b"")

        async def body() -> AsyncIterator[bytes]:
            if first:
                yield first
            async for chunk in chunks:
                yield chunk

        return StreamingResponse(body(), media_type=RECORDING_MEDIA_TYPE)

    return router
