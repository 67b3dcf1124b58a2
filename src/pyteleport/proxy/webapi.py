"""The proxy's web API: ``/webapi/...`` for tsh and browsers, in Teleport's shapes
(docs/compatibility.md)."""

from __future__ import annotations

import base64
import datetime as dt
import html

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, PlainTextResponse

from pyteleport import TELEPORT_VERSION
from pyteleport.api import wire
from pyteleport.api.access import ProxyAccessPoint
from pyteleport.clock import Clock
from pyteleport.model.node import node_from_dict
from pyteleport.model.timefmt import format_time
from pyteleport.policy.ratelimit import RateLimiter
from pyteleport.web.errors import install_error_handlers
from pyteleport.web.limits import UNAUTHENTICATED_MAX_BODY_BYTES, RequestLimits

MIN_CLIENT_VERSION = "16.0.0"


def _remote(request: Request) -> str:
    return request.client.host if request.client else ""


def webapi_limits(
    clock: Clock,
    *,
    login_limiter: RateLimiter | None = None,
    export_limiter: RateLimiter | None = None,
) -> RequestLimits:
    """What the web port checks before it reads a request: logins, password links, node joins
    and the CA export are rate-limited per source address, and the unauthenticated routes take small
    bodies only. The auth API's routes (``/v1``) take larger ones."""
    login = login_limiter or RateLimiter(rate_per_s=1.0, burst=20, clock=clock)
    export = export_limiter or RateLimiter(rate_per_s=10.0, burst=50, clock=clock)
    return RequestLimits(
        bodies=(("/webapi/", UNAUTHENTICATED_MAX_BODY_BYTES), ("/web/", 0)),
        rates=(
            ("/webapi/ssh/certs", login.check),
            ("/webapi/users/password/token", login.check),
            ("/webapi/nodes/openssh", login.check),
            ("/webapi/auth/export", export.check),
        ),
    )


def webapi_router(
    access: ProxyAccessPoint,
    *,
    ssh_listen_addr: str,
    ssh_public_addr: str,
    public_addr: str,
) -> APIRouter:
    router = APIRouter(tags=["webapi"])

    @router.get("/webapi/ping")
    async def ping() -> wire.PingResponse:
        return wire.PingResponse(
            auth=wire.AuthSettings(type="local", second_factor=access.second_factor),
            proxy=wire.ProxySettings(
                ssh=wire.SSHProxySettings(
                    listen_addr=ssh_listen_addr,
                    public_addr=public_addr,
                    ssh_public_addr=ssh_public_addr,
                )
            ),
            server_version=TELEPORT_VERSION,
            min_client_version=MIN_CLIENT_VERSION,
            cluster_name=access.cluster_name,
        )

    @router.get("/webapi/auth/export", response_class=PlainTextResponse)
    async def export(type: str | None = None) -> str:
        return access.export_authorities(type)

    @router.post("/webapi/ssh/certs")
    async def ssh_certs(
        body: wire.CreateSSHCertRequest, request: Request
    ) -> wire.CreateSSHCertResponse:
        try:
            public_key = base64.b64decode(body.pub_key, validate=True)
        except ValueError:
            public_key = body.pub_key.encode()
        ttl = dt.timedelta(microseconds=body.ttl // 1000) if body.ttl > 0 else None
        certs = await access.authenticate_ssh_user(
            body.user, body.password, body.otp_token, public_key, ttl, _remote(request)
        )
        host_key = access.host_ca_public_key()
        return wire.CreateSSHCertResponse(
            username=certs.username,
            cert=base64.b64encode(certs.ssh_cert).decode(),
            tls_cert=base64.b64encode(certs.tls_cert).decode(),
            host_signers=[
                wire.HostSigner(
                    domain_name=access.cluster_name,
                    checking_keys=[base64.b64encode(host_key).decode()],
                    tls_certs=[base64.b64encode(access.tls_ca_cert()).decode()],
                )
            ],
        )

    @router.get("/webapi/users/password/token/{token}")
    async def get_user_token(token: wire.Token) -> wire.UserTokenInfo:
        info = await access.get_user_token(token)
        return wire.UserTokenInfo(
            user=info.user, expires=format_time(info.expires), otp_uri=info.otp_uri
        )

    @router.put("/webapi/users/password/token")
    async def change_password(
        body: wire.ChangePasswordWithTokenRequest,
    ) -> wire.ChangePasswordWithTokenResponse:
        user = await access.change_password_with_token(
            body.token, body.password, body.second_factor_token
        )
        return wire.ChangePasswordWithTokenResponse(username=user.name)

    @router.post("/webapi/nodes/openssh")
    async def join_openssh(
        body: wire.JoinOpenSSHRequest, request: Request
    ) -> wire.JoinOpenSSHResponse:
        node = node_from_dict(
            {
                "kind": "node",
                "sub_kind": "openssh",
                "version": "v2",
                "metadata": {"name": body.name, "labels": body.labels},
                "spec": {"addr": body.addr, "hostname": body.hostname},
            }
        )
        cert, principals = await access.join_openssh_node(
            body.token,
            body.public_key.encode(),
            node,
            body.principals,
            f"join token from {_remote(request)}",
        )
        user_ca = "".join(
            line.removeprefix("cert-authority ") + "\n"
            for line in access.export_authorities("user").splitlines()
            if line.strip()
        )
        return wire.JoinOpenSSHResponse(
            host_cert=cert.decode(), user_ca=user_ca, principals=principals
        )

    @router.get("/web/invite/{token}", response_class=HTMLResponse)
    async def invite_page(token: wire.Token) -> str:
        return _INVITE_PAGE.replace("{{TOKEN}}", html.escape(token, quote=True)).replace(
            "{{CLUSTER}}", html.escape(access.cluster_name)
        )

    return router


def webapi_app(router: APIRouter, *extra: APIRouter) -> FastAPI:
    """The proxy's web port. The OpenAPI document and its pages are not served: they would show
    the whole admin API to anyone; ``app.openapi()`` still builds it (the fuzz tests use it)."""
    app = FastAPI(
        title="pyteleport proxy web API",
        version=TELEPORT_VERSION,
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)
    app.include_router(router)
    for other in extra:
        app.include_router(other)
    return app


_INVITE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Set your password — {{CLUSTER}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font-family:sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}
label{display:block;margin-top:1rem}input{width:100%;padding:.4rem;font-size:1rem}
button{margin-top:1.2rem;padding:.5rem 1rem;font-size:1rem}#otp{display:none}
.err{color:#b00}.ok{color:#070}code{word-break:break-all}</style></head>
<body><h1>Welcome to {{CLUSTER}}</h1>
<p id="who">Checking your invite…</p>
<form id="f" hidden>
<label>Password <input id="pw" type="password" autocomplete="new-password" minlength="12" required></label>
<label>Confirm password <input id="pw2" type="password" autocomplete="new-password" required></label>
<div id="otp"><p>Add this account to your authenticator app:</p><p><code id="uri"></code></p>
<label>Code from the app <input id="code" inputmode="numeric" autocomplete="one-time-code"></label></div>
<button type="submit">Set password</button></form>
<p id="msg" role="status"></p>
<script>
const token = "{{TOKEN}}";
const msg = document.getElementById("msg"), form = document.getElementById("f");
function fail(t){ msg.className="err"; msg.textContent=t; }
fetch("/webapi/users/password/token/" + encodeURIComponent(token)).then(async r => {
  const b = await r.json();
  if (!r.ok) { document.getElementById("who").textContent = ""; return fail(b.error.message); }
  document.getElementById("who").textContent = "Choose a password for " + b.user + ".";
  if (b.otp_uri) { document.getElementById("otp").style.display = "block";
    document.getElementById("uri").textContent = b.otp_uri; }
  form.hidden = false;
});
form.addEventListener("submit", async e => {
  e.preventDefault();
  const pw = document.getElementById("pw").value;
  if (pw !== document.getElementById("pw2").value) return fail("The passwords do not match.");
  const r = await fetch("/webapi/users/password/token", {method: "PUT",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({token, password: pw,
      second_factor_token: document.getElementById("code").value})});
  const b = await r.json();
  if (!r.ok) return fail(b.error.message);
  form.hidden = true; msg.className = "ok";
  msg.textContent = "Password set for " + b.username + ". Log in with: tsh login --proxy=" +
    location.host + " --user=" + b.username;
});
</script></body></html>
"""
