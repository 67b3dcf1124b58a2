"""Who may call each ``/v1`` route: every route of the router, as no one (no client
certificate), as each preset role and as the local admin. The table is checked against the
router itself, so a route added without a line here fails, and so does a route that forgot its
authorization check.

Names in the paths do not exist, so an allowed call answers 404 (or 2xx for a create) and
changes nothing that matters; a refused one answers 403 before it looks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from pyteleport.api.client import client_ssl_context
from pyteleport.auth.http import auth_router
from pyteleport.crypto import sshkeys, tlsca
from pyteleport.model.identity import BUILTIN_ADMIN, Identity
from tests.auth.apiserver import AuthAPI, serve_auth_api

CALLERS = ("nobody", "dev", "auditor", "editor", "admin")
ANYONE = {"dev", "auditor", "editor", "admin"}
ADMINS = {"editor", "admin"}  # the editor preset manages users, roles, tokens, locks, CAs, nodes
USERS = {"dev", "auditor", "editor"}  # people, not the local admin (tctl on the auth host)

# (method, path) -> the callers let through
ALLOWED: dict[tuple[str, str], set[str]] = {
    ("GET", "/v1/status"): ANYONE,
    ("POST", "/v1/users"): ADMINS,
    ("GET", "/v1/users"): ADMINS,
    ("GET", "/v1/users/{name}"): ADMINS,
    ("PUT", "/v1/users/{name}"): ADMINS,
    ("DELETE", "/v1/users/{name}"): ADMINS,
    ("PUT", "/v1/users/{name}/password"): ADMINS,
    ("POST", "/v1/users/{name}/reset"): ADMINS,
    ("GET", "/v1/roles"): ADMINS,
    ("GET", "/v1/roles/{name}"): ADMINS,
    ("PUT", "/v1/roles"): ADMINS,
    ("DELETE", "/v1/roles/{name}"): ADMINS,
    ("POST", "/v1/tokens"): ADMINS,
    ("GET", "/v1/tokens"): ADMINS,
    ("DELETE", "/v1/tokens/{token}"): ADMINS,
    ("POST", "/v1/locks"): ADMINS,
    ("GET", "/v1/locks"): ADMINS,
    ("DELETE", "/v1/locks/{name}"): ADMINS,
    ("PUT", "/v1/nodes"): ADMINS,
    ("GET", "/v1/nodes"): ADMINS,
    ("GET", "/v1/nodes/{name}"): ADMINS,
    ("DELETE", "/v1/nodes/{name}"): ADMINS,
    ("GET", "/v1/reachable-nodes"): ANYONE,  # filtered by each caller's node_labels
    ("GET", "/v1/authorities/export"): ANYONE,
    ("POST", "/v1/certs/host"): ADMINS,
    ("POST", "/v1/certs/user"): ADMINS,  # for oneself; for others, the admin alone
    ("GET", "/v1/resources"): ADMINS,  # every kind's list rule; secrets the admin alone
    ("POST", "/v1/resources"): ADMINS,
    ("POST", "/v1/certs/renew"): USERS,  # one's own, never past the certificate presented
    ("POST", "/v1/access-requests"): USERS,  # for oneself
    ("GET", "/v1/access-requests"): ANYONE,  # filtered: one's own and those one may review
    ("GET", "/v1/access-requests/{name}"): ANYONE,  # likewise
    ("POST", "/v1/access-requests/{name}/reviews"): USERS,  # the reviewer's roles decide
    ("PUT", "/v1/access-requests/{name}/state"): ADMINS,
    ("DELETE", "/v1/access-requests/{name}"): ADMINS,  # and a user's own pending request
    ("GET", "/v1/events"): ANYONE,  # access, auditor and editor all read events
    ("GET", "/v1/recordings"): ANYONE,  # filtered: each sees the sessions they may
    ("GET", "/v1/recording-search"): ANYONE,  # filtered: each finds the sessions they may see
    ("POST", "/v1/recording-search"): ANYONE,  # the same, the text in a body (what tsh sends)
    ("GET", "/v1/recordings/{sid}"): {"auditor", "editor", "admin"},  # dev took no part in it
    ("POST", "/v1/recordings/reindex"): {"admin"},  # a session update rule: none of the presets
}


def body_for(method: str, path: str, caller: str) -> dict[str, Any] | None:
    public = sshkeys.public_key_line(sshkeys.generate_ssh_key("ed25519")).decode()
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/v1/users"): {"name": f"new-{caller}", "roles": ["access"]},
        ("PUT", "/v1/users/{name}"): {"roles": ["access"]},
        ("PUT", "/v1/users/{name}/password"): {"password": "correct-horse-battery"},
        ("PUT", "/v1/roles"): {
            "resource": {"kind": "role", "version": "v7", "metadata": {"name": f"r-{caller}"}}
        },
        ("POST", "/v1/tokens"): {"roles": ["node"]},
        ("POST", "/v1/recording-search"): {"q": "anything"},
        ("POST", "/v1/locks"): {"target_kind": "user", "target": "ghost"},
        ("PUT", "/v1/nodes"): {
            "resource": {
                "kind": "node",
                "sub_kind": "openssh",
                "metadata": {"name": f"n-{caller}"},
                "spec": {"addr": "10.0.0.5:22"},
            }
        },
        ("POST", "/v1/certs/host"): {"public_key": public, "principals": ["h1"]},
        ("POST", "/v1/certs/user"): {"username": caller, "public_key": public},
        ("POST", "/v1/certs/renew"): {"public_key": public},
        ("POST", "/v1/resources"): {
            "resource": {"kind": "role", "version": "v7", "metadata": {"name": f"rr-{caller}"}}
        },
        ("POST", "/v1/access-requests"): {"roles": []},  # past the route, refused for what it asks
        ("POST", "/v1/access-requests/{name}/reviews"): {"approve": True},
        ("PUT", "/v1/access-requests/{name}/state"): {"state": "APPROVED"},
    }
    return bodies.get((method, path))


def concrete(path: str) -> str:
    return path.replace("{name}", "ghost").replace("{token}", "0badc0de").replace("{sid}", "s9")


def router_routes() -> set[tuple[str, str]]:
    router = auth_router(cast(Any, None), "")
    return {(m, r.path) for r in router.routes for m in getattr(r, "methods", ())}


def test_the_table_covers_every_route_of_the_router() -> None:
    assert router_routes() == set(ALLOWED)


def client_for(api: AuthAPI, caller: str, root: Path) -> httpx.AsyncClient:
    ca = api.server.tls_ca_cert()
    if caller == "nobody":
        return httpx.AsyncClient(verify=client_ssl_context(ca_pem=ca))
    if caller == "admin":
        key = tlsca.generate_tls_key()
        identity = Identity(username="admin", builtin=BUILTIN_ADMIN)
        cert = api.server.issue_identity(tlsca.public_key_pem(key), identity, dt.timedelta(hours=1))
        cert_path, key_path = root / "admin.pem", root / "admin-key.pem"
        cert_path.write_bytes(cert)
        key_path.write_bytes(tlsca.private_key_pem(key))
    else:
        cert_path, key_path = api.credentials(caller)
    context = client_ssl_context(ca_pem=ca, cert_file=str(cert_path), key_file=str(key_path))
    return httpx.AsyncClient(verify=context)


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[AuthAPI]:
    async with serve_auth_api(tmp_path / "auth") as api:
        yield api


@pytest.mark.parametrize("caller", CALLERS)
async def test_each_route_lets_through_exactly_whom_its_rule_names(
    api: AuthAPI, tmp_path: Path, caller: str
) -> None:
    wrong = []
    async with client_for(api, caller, tmp_path) as client:
        for (method, path), allowed in sorted(ALLOWED.items()):
            response = await client.request(
                method,
                f"https://{api.addr}{concrete(path)}",
                json=body_for(method, path, caller),
            )
            refused = response.status_code == 403
            if refused == (caller in allowed) or response.status_code >= 500:
                wrong.append((method, path, response.status_code, response.text[:120]))
            if caller == "nobody":
                assert "needs a client certificate" in response.json()["error"]["message"]
    assert wrong == [], f"{caller}: {wrong}"
