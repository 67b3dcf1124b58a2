"""HTTPS clients of the proxy's web API (tsh) and of the auth API (tctl), over httpx.

Errors come back as the same kinds the server raised (``error_for_status``); transport failures
become one-line ConnectionProblemError or AccessDeniedError messages that say what to do.
"""

from __future__ import annotations

import base64
import os
import ssl
from collections.abc import Mapping
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from pyteleport.api import wire
from pyteleport.errors import (
    AccessDeniedError,
    ConnectionProblemError,
    TeleportError,
    error_for_status,
)

T = TypeVar("T", bound=BaseModel)
TIMEOUT_S = 30.0
REINDEX_TIMEOUT_S = 3600.0


def client_ssl_context(
    *,
    insecure: bool = False,
    ca_pem: bytes | None = None,
    cert_file: str | None = None,
    key_file: str | None = None,
) -> ssl.SSLContext:
    """Verify the server against the system roots (``SSL_CERT_FILE`` honoured) and ``ca_pem``
    (the cluster's own CA) if given; ``insecure`` skips verification entirely."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        cafile = os.environ.get("SSL_CERT_FILE") or None
        context = ssl.create_default_context(cafile=cafile)
        if ca_pem:
            context.load_verify_locations(cadata=ca_pem.decode())
    if cert_file and key_file:
        context.load_cert_chain(cert_file, key_file)
    return context


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    message = ""
    try:
        body = response.json()
        message = str(body["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = response.text.strip().splitlines()[0] if response.text.strip() else ""
    raise error_for_status(response.status_code, message or f"HTTP {response.status_code}")


class _Base:
    def __init__(
        self, base_url: str, context: ssl.SSLContext, what: str, relogin_hint: str = ""
    ) -> None:
        self._what = what
        self._relogin_hint = relogin_hint
        self._base_url = base_url
        self._http = httpx.AsyncClient(base_url=base_url, verify=context, timeout=TIMEOUT_S)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        body: BaseModel | None = None,
        params: Mapping[str, Any] | None = None,
        timeout_s: float = TIMEOUT_S,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method,
                path,
                json=body.model_dump() if body is not None else None,
                params=params,
                timeout=timeout_s,
            )
        except httpx.ConnectError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY" in str(exc):
                raise AccessDeniedError(
                    f"the {self._what} at {self._base_url} presented a certificate that is not "
                    f"trusted ({getattr(cause, 'verify_message', 'unknown authority')}): "
                    "use --insecure only if you trust this server"
                ) from exc
            reason = str(exc) or "refused"
            if isinstance(cause, ssl.SSLError) and self._relogin_hint:
                raise AccessDeniedError(
                    f"the {self._what} at {self._base_url} refused the TLS handshake "
                    f"({cause.reason or cause}): {self._relogin_hint}"
                ) from exc
            raise ConnectionProblemError(
                f"cannot connect to the {self._what} at {self._base_url}: {reason}: is it running?"
            ) from exc
        except httpx.TimeoutException as exc:
            raise ConnectionProblemError(
                f"the {self._what} at {self._base_url} did not answer in {timeout_s:.0f}s"
            ) from exc
        except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
            # With TLS 1.3 a server checks the client certificate after the handshake, and
            # one it does not accept ends the connection before any answer.
            hint = (
                f": it may not accept this certificate (another cluster's, or expired): "
                f"{self._relogin_hint}"
                if self._relogin_hint
                else ""
            )
            raise ConnectionProblemError(
                f"the {self._what} at {self._base_url} closed the connection without an "
                f"answer{hint}"
            ) from exc
        except httpx.HTTPError as exc:
            raise ConnectionProblemError(
                f"request to the {self._what} at {self._base_url} failed: {exc}"
            ) from exc
        _raise_for(response)
        return response

    async def _get(self, path: str, model: type[T], params: Mapping[str, Any] | None = None) -> T:
        response = await self._request("GET", path, params=params)
        return _parse(response, model)

    async def _send(self, method: str, path: str, body: BaseModel, model: type[T]) -> T:
        response = await self._request(method, path, body=body)
        return _parse(response, model)


def _parse(response: httpx.Response, model: type[T]) -> T:
    try:
        return model.model_validate(response.json())
    except ValueError as exc:
        raise TeleportError(f"unexpected answer from the server: {exc}") from exc


class WebClient(_Base):
    """The proxy's ``/webapi``: what tsh needs before it holds any certificate."""

    def __init__(self, web_addr: str, context: ssl.SSLContext) -> None:
        super().__init__(f"https://{web_addr}", context, "proxy")

    async def ping(self) -> wire.PingResponse:
        return await self._get("/webapi/ping", wire.PingResponse)

    async def export_authorities(self, ca_type: str | None) -> str:
        params = {"type": ca_type} if ca_type else None
        response = await self._request("GET", "/webapi/auth/export", params=params)
        return response.text

    async def create_ssh_cert(
        self, user: str, password: str, otp_token: str, public_key_line: bytes, ttl_ns: int
    ) -> wire.CreateSSHCertResponse:
        request = wire.CreateSSHCertRequest(
            user=user,
            password=password,
            otp_token=otp_token,
            pub_key=base64.b64encode(public_key_line).decode(),
            ttl=ttl_ns,
        )
        return await self._send("POST", "/webapi/ssh/certs", request, wire.CreateSSHCertResponse)

    async def get_user_token(self, token: str) -> wire.UserTokenInfo:
        return await self._get(f"/webapi/users/password/token/{token}", wire.UserTokenInfo)

    async def change_password_with_token(
        self, token: str, password: str, otp_code: str
    ) -> wire.ChangePasswordWithTokenResponse:
        request = wire.ChangePasswordWithTokenRequest(
            token=token, password=password, second_factor_token=otp_code
        )
        return await self._send(
            "PUT", "/webapi/users/password/token", request, wire.ChangePasswordWithTokenResponse
        )

    async def join_openssh(self, request: wire.JoinOpenSSHRequest) -> wire.JoinOpenSSHResponse:
        return await self._send("POST", "/webapi/nodes/openssh", request, wire.JoinOpenSSHResponse)


class AuthClient(_Base):
    """The auth API (``/v1``) with a client certificate: tctl, locally or through the proxy."""

    def __init__(self, addr: str, context: ssl.SSLContext, relogin_hint: str = "") -> None:
        super().__init__(f"https://{addr}", context, "auth service", relogin_hint)
        self.addr = addr  # host:port dialled: the auth service, or the proxy when remote

    async def status(self) -> wire.StatusResponse:
        return await self._get("/v1/status", wire.StatusResponse)

    async def create_user(self, request: wire.CreateUserRequest) -> wire.InviteResponse:
        return await self._send("POST", "/v1/users", request, wire.InviteResponse)

    async def list_users(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/users")
        return list(response.json())

    async def get_user(self, name: str) -> dict[str, Any]:
        response = await self._request("GET", f"/v1/users/{name}")
        return dict(response.json())

    async def delete_user(self, name: str) -> None:
        await self._request("DELETE", f"/v1/users/{name}")

    async def update_user(self, name: str, roles: list[str]) -> dict[str, Any]:
        response = await self._request(
            "PUT", f"/v1/users/{name}", body=wire.UpdateUserRequest(roles=roles)
        )
        return dict(response.json())

    async def set_password(self, name: str, password: str) -> wire.SetPasswordResponse:
        return await self._send(
            "PUT",
            f"/v1/users/{name}/password",
            wire.SetPasswordRequest(password=password),
            wire.SetPasswordResponse,
        )

    async def reset_user(self, name: str) -> wire.InviteResponse:
        response = await self._request("POST", f"/v1/users/{name}/reset")
        return _parse(response, wire.InviteResponse)

    async def list_roles(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/roles")
        return list(response.json())

    async def get_role(self, name: str) -> dict[str, Any]:
        response = await self._request("GET", f"/v1/roles/{name}")
        return dict(response.json())

    async def put_role(self, resource: dict[str, object], overwrite: bool) -> wire.PutRoleResponse:
        return await self._send(
            "PUT",
            "/v1/roles",
            wire.PutRoleRequest(resource=resource, overwrite=overwrite),
            wire.PutRoleResponse,
        )

    async def delete_role(self, name: str) -> None:
        await self._request("DELETE", f"/v1/roles/{name}")

    async def put_node(self, resource: dict[str, object], overwrite: bool) -> wire.PutNodeResponse:
        return await self._send(
            "PUT",
            "/v1/nodes",
            wire.PutNodeRequest(resource=resource, overwrite=overwrite),
            wire.PutNodeResponse,
        )

    async def list_nodes(self, reachable: bool = False) -> list[dict[str, Any]]:
        """Every node (``tctl``), or only those the caller's roles reach (``tsh ls``)."""
        path = "/v1/reachable-nodes" if reachable else "/v1/nodes"
        response = await self._request("GET", path)
        return list(response.json())

    async def get_node(self, name: str) -> dict[str, Any]:
        response = await self._request("GET", f"/v1/nodes/{name}")
        return dict(response.json())

    async def delete_node(self, name: str) -> None:
        await self._request("DELETE", f"/v1/nodes/{name}")

    async def create_token(self, roles: list[str], ttl_s: int) -> wire.TokenResponse:
        return await self._send(
            "POST",
            "/v1/tokens",
            wire.CreateTokenRequest(roles=roles, ttl_s=ttl_s),
            wire.TokenResponse,
        )

    async def list_tokens(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/tokens")
        return list(response.json())

    async def delete_token(self, token: str) -> None:
        await self._request("DELETE", f"/v1/tokens/{token}")

    async def create_lock(self, request: wire.CreateLockRequest) -> dict[str, Any]:
        response = await self._request("POST", "/v1/locks", body=request)
        return dict(response.json())

    async def list_locks(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/locks")
        return list(response.json())

    async def delete_lock(self, name: str) -> None:
        await self._request("DELETE", f"/v1/locks/{name}")

    async def export_authorities(self, ca_type: str | None) -> str:
        params = {"type": ca_type} if ca_type else None
        return (await self._get("/v1/authorities/export", wire.ExportResponse, params)).text

    async def sign_host(self, request: wire.SignHostRequest) -> wire.SignHostResponse:
        return await self._send("POST", "/v1/certs/host", request, wire.SignHostResponse)

    async def sign_user(self, request: wire.SignUserRequest) -> wire.SignUserResponse:
        return await self._send("POST", "/v1/certs/user", request, wire.SignUserResponse)

    async def get_resources(self, kinds: str, with_secrets: bool) -> list[dict[str, Any]]:
        params = {"kinds": kinds, "with_secrets": "true" if with_secrets else "false"}
        response = await self._request("GET", "/v1/resources", params=params)
        return list(response.json())

    async def put_resource(self, request: wire.PutResourceRequest) -> wire.PutResourceResponse:
        return await self._send("POST", "/v1/resources", request, wire.PutResourceResponse)

    async def renew_certs(self, request: wire.RenewCertsRequest) -> wire.SignUserResponse:
        return await self._send("POST", "/v1/certs/renew", request, wire.SignUserResponse)

    async def create_access_request(self, request: wire.CreateAccessRequest) -> dict[str, Any]:
        response = await self._request("POST", "/v1/access-requests", body=request)
        return dict(response.json())

    async def list_access_requests(self) -> list[dict[str, Any]]:
        response = await self._request("GET", "/v1/access-requests")
        return list(response.json())

    async def get_access_request(self, name: str) -> dict[str, Any]:
        response = await self._request("GET", f"/v1/access-requests/{quote(name, safe='')}")
        return dict(response.json())

    async def review_access_request(
        self, name: str, request: wire.ReviewAccessRequest
    ) -> dict[str, Any]:
        path = f"/v1/access-requests/{quote(name, safe='')}/reviews"
        return dict((await self._request("POST", path, body=request)).json())

    async def set_access_request_state(
        self, name: str, request: wire.SetAccessRequestState
    ) -> dict[str, Any]:
        path = f"/v1/access-requests/{quote(name, safe='')}/state"
        return dict((await self._request("PUT", path, body=request)).json())

    async def delete_access_request(self, name: str) -> None:
        await self._request("DELETE", f"/v1/access-requests/{quote(name, safe='')}")

    async def search_events(self, params: Mapping[str, Any]) -> wire.EventsResponse:
        return await self._get("/v1/events", wire.EventsResponse, params)

    async def list_recordings(
        self, params: Mapping[str, Any] | None = None
    ) -> wire.RecordingsResponse:
        """A page of recordings, newest first (``since``, ``until``, ``limit``, ``node``,
        ``labels``, ``after``: the previous page's ``next``)."""
        return await self._get("/v1/recordings", wire.RecordingsResponse, params)

    async def reindex_recordings(self) -> wire.ReindexResponse:
        # The whole store is listed: minutes for a large bucket.
        response = await self._request(
            "POST", "/v1/recordings/reindex", timeout_s=REINDEX_TIMEOUT_S
        )
        return _parse(response, wire.ReindexResponse)

    async def search_recordings(self, params: Mapping[str, Any]) -> wire.SearchResponse:
        # Not validated here: the server refuses what is wrong in words a user reads.
        request = wire.SearchRequest.model_construct(**params)
        return await self._send("POST", "/v1/recording-search", request, wire.SearchResponse)

    async def get_recording(self, session_id: str) -> bytes:
        """The recording file of a session as stored (chunked, or asciicast if older)."""
        response = await self._request("GET", f"/v1/recordings/{quote(session_id, safe='')}")
        return response.content
