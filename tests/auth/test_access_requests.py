"""Access requests in the auth core, on a fake clock: who may ask for what, thresholds of
reviews, the roles and expiry of certificates issued with a request, a request that stops
granting once denied or expired, and an audit event for every step."""

from __future__ import annotations

import datetime as dt

import pytest

from pyteleport.auth.authz import AuthorizedAuth
from pyteleport.auth.server import AuthServer
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.crypto import sshcert, sshkeys, tlsca
from pyteleport.errors import AccessDeniedError, BadParameterError, NotFoundError
from pyteleport.model.identity import BUILTIN_ADMIN, Identity
from pyteleport.model.role import role_from_dict

ROLES = [
    {
        "kind": "role",
        "metadata": {"name": "requester"},
        "spec": {
            "allow": {
                "request": {
                    "roles": ["dba", "db-*"],
                    "thresholds": [{"approve": 2, "deny": 1}],
                    "max_duration": "4h",
                }
            }
        },
    },
    {
        "kind": "role",
        "metadata": {"name": "dba"},
        "spec": {"allow": {"logins": ["postgres"], "node_labels": {"*": "*"}}},
    },
    {
        "kind": "role",
        "metadata": {"name": "db-reader"},
        "spec": {"allow": {"logins": ["reader"], "node_labels": {"*": "*"}}},
    },
    {
        "kind": "role",
        "metadata": {"name": "reviewer"},
        "spec": {"allow": {"review_requests": {"roles": ["dba"]}}},
    },
]


async def make_cluster() -> tuple[AuthServer, FakeClock]:
    clock = FakeClock()
    server = await AuthServer.open(MemoryBackend(clock), "example.com", clock=clock)
    for raw in ROLES:
        await server.upsert_role(role_from_dict(raw), overwrite=False, by="test")
    await server.create_user("joe", ["access", "requester"], ["joe"], "test")
    for reviewer in ("alice", "bob"):
        await server.create_user(reviewer, ["access", "reviewer"], [reviewer], "test")
    return server, clock


def as_user(server: AuthServer, name: str, requests: tuple[str, ...] = ()) -> AuthorizedAuth:
    expires = server.clock.now() + dt.timedelta(hours=12)
    return AuthorizedAuth(
        server, Identity(username=name, active_requests=requests, expires=expires)
    )


def public_key() -> bytes:
    return sshkeys.public_key_line(sshkeys.generate_ssh_key("ed25519"))


async def test_two_approvals_grant_the_roles_until_the_request_ends() -> None:
    server, clock = await make_cluster()
    joe = as_user(server, "joe")
    request = await joe.create_access_request(["dba"], "incident 42", ["alice"], None)
    assert (request.state, request.approve_threshold, request.reason) == (
        "PENDING",
        2,
        "incident 42",
    )
    assert request.expires == clock.now() + dt.timedelta(hours=4)  # the role's max_duration
    with pytest.raises(AccessDeniedError, match="is still PENDING"):
        await joe.renew_certs(public_key(), [request.name], None)
    with pytest.raises(AccessDeniedError, match="cannot review your own"):
        await joe.review_access_request(request.name, True, "")
    after_one = await as_user(server, "alice").review_access_request(request.name, True, "ok")
    assert after_one.state == "PENDING"
    with pytest.raises(BadParameterError, match="already reviewed"):
        await as_user(server, "alice").review_access_request(request.name, True, "")
    approved = await as_user(server, "bob").review_access_request(request.name, True, "fine")
    assert approved.state == "APPROVED" and approved.resolve_reason == "fine"

    certs = await joe.renew_certs(public_key(), [request.name], None)
    cert = sshcert.parse_certificate(certs.ssh_cert)
    assert set(cert.principals) == {"joe", "postgres"}
    assert '"requests":["' + request.name + '"]' in cert.extensions["teleport-active-requests"]
    assert certs.valid_before == request.expires
    tls = tlsca.identity_from_cert(
        _der(certs.tls_cert), server.tls_ca_cert(), clock.now() + dt.timedelta(minutes=1)
    )
    assert tls.active_requests == (request.name,) and "dba" in tls.roles

    roles = await server.role_set_for_user("joe", [request.name])
    assert "postgres" in roles.logins()
    clock.advance(dt.timedelta(hours=4, seconds=1))
    roles = await server.role_set_for_user("joe", [request.name])
    assert "postgres" not in roles.logins() and "joe" in roles.logins()
    with pytest.raises(AccessDeniedError, match="is not found: it expired or was deleted"):
        await joe.renew_certs(public_key(), [request.name], None)

    events = [
        e["event"]
        for e in await server.audit.search(clock.now() - dt.timedelta(days=1), clock.now())
    ]
    assert events.count("access_request.create") == 1
    assert events.count("access_request.review") == 2


async def test_a_denied_request_grants_nothing_even_to_a_certificate_issued_with_it() -> None:
    server, _ = await make_cluster()
    joe = as_user(server, "joe")
    request = await joe.create_access_request(["dba"], "", [], dt.timedelta(hours=1))
    admin = AuthorizedAuth(server, Identity(username="admin", builtin=BUILTIN_ADMIN))
    await admin.set_access_request_state(request.name, True, "go")
    certs = await joe.renew_certs(public_key(), [request.name], None)
    assert "postgres" in sshcert.parse_certificate(certs.ssh_cert).principals
    await admin.delete_access_request(request.name)
    roles = await server.role_set_for_user("joe", [request.name])
    assert "postgres" not in roles.logins()

    second = await joe.create_access_request(["dba"], "", [], None)
    denied = await as_user(server, "alice").review_access_request(second.name, False, "no")
    assert denied.state == "DENIED"
    with pytest.raises(AccessDeniedError, match=f"request {second.name} has been set to DENIED"):
        await joe.renew_certs(public_key(), [second.name], None)
    with pytest.raises(BadParameterError, match="already been set to DENIED"):
        await admin.set_access_request_state(second.name, True, "")


async def test_what_may_be_requested_and_reviewed() -> None:
    server, _ = await make_cluster()
    joe = as_user(server, "joe")
    with pytest.raises(AccessDeniedError, match='request role "editor"'):
        await joe.create_access_request(["editor"], "", [], None)
    # A role that does not exist is refused the same way: no probing of role names ...
    with pytest.raises(AccessDeniedError, match='request role "no-such-role"'):
        await joe.create_access_request(["no-such-role"], "", [], None)
    # ... and named as missing only to one who may request it (db-* is allowed).
    with pytest.raises(NotFoundError, match='role "db-nothing" is not found'):
        await joe.create_access_request(["db-nothing"], "", [], None)
    with pytest.raises(BadParameterError, match="already hold"):
        await joe.create_access_request(["access"], "", [], None)
    with pytest.raises(BadParameterError, match="longer than your roles allow"):
        await joe.create_access_request(["dba"], "", [], dt.timedelta(hours=5))
    # a glob in allow.request.roles; the reviewer role covers dba only
    reader = await joe.create_access_request(["db-reader"], "", [], None)
    with pytest.raises(AccessDeniedError, match='review requests for role "db-reader"'):
        await as_user(server, "alice").review_access_request(reader.name, True, "")
    # visibility: the requester and the reviewers of its roles
    assert [r.name for r in await as_user(server, "alice").list_access_requests()] == []
    assert [r.name for r in await joe.list_access_requests()] == [reader.name]
    with pytest.raises(AccessDeniedError):
        await as_user(server, "alice").set_access_request_state(reader.name, True, "")


def _der(pem: bytes) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)


async def test_an_approver_cannot_approve_their_own_request_and_a_locked_user_is_refused() -> None:
    server, _ = await make_cluster()
    approver = role_from_dict(
        {
            "kind": "role",
            "metadata": {"name": "approver"},
            "spec": {"allow": {"rules": [{"resources": ["access_request"], "verbs": ["*"]}]}},
        }
    )
    await server.upsert_role(approver, overwrite=False, by="test")
    await server.update_user_roles("joe", ["access", "requester", "approver"])
    joe = as_user(server, "joe")
    request = await joe.create_access_request(["dba"], "", [], None)
    with pytest.raises(AccessDeniedError, match="cannot review your own"):
        await joe.set_access_request_state(request.name, True, "")
    await server.locks.create("user", "joe", "left", None, by="test")
    with pytest.raises(AccessDeniedError, match='lock targeting User:"joe" is in force'):
        await server.identity_for_user("joe")


async def test_a_resource_of_the_wrong_shape_is_one_clear_error() -> None:
    from pyteleport.auth.backup import create_resource

    server, _ = await make_cluster()
    for doc, message in (
        ({"kind": "cert_authority", "spec": ["not", "a", "mapping"]}, "malformed cert_authority"),
        ({"kind": "user", "metadata": {"name": "eve"}, "spec": "nope"}, "malformed user"),
        ({"kind": "lock", "metadata": {"name": "l"}, "spec": {"target": "x"}}, "one user, login"),
    ):
        with pytest.raises(BadParameterError, match=message):
            await create_resource(server, doc, force=False, by="test")


async def test_a_second_request_adds_to_the_first_in_the_certificate() -> None:
    server, _ = await make_cluster()
    admin = AuthorizedAuth(server, Identity(username="admin", builtin=BUILTIN_ADMIN))
    joe = as_user(server, "joe")
    first = await joe.create_access_request(["dba"], "", [], None)
    await admin.set_access_request_state(first.name, True, "")
    second = await joe.create_access_request(["db-reader"], "", [], None)
    await admin.set_access_request_state(second.name, True, "")
    # joe's certificate already carries the first request; logging in with the second keeps it
    certs = await as_user(server, "joe", (first.name,)).renew_certs(
        public_key(), [second.name], None
    )
    cert = sshcert.parse_certificate(certs.ssh_cert)
    assert set(cert.principals) == {"joe", "postgres", "reader"}
    assert first.name in cert.extensions["teleport-active-requests"]
