"""Backup and restore: the cluster's resources as Teleport's YAML (``tctl get all``), created or
replaced from it (``tctl create [-f]``), and a new cluster bootstrapped from a backup with its
certificate authorities (``teleport start --bootstrap FILE`` on an empty data dir), so every
certificate it issued, every sshd that trusts it and every password still work.

Secrets (the CAs' private keys, password hashes and TOTP keys, join tokens, which are secrets
themselves) are in a backup only when asked for with ``--with-secrets``; the authorization
layer lets only the local admin ask.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyteleport.backend import Backend, Item
from pyteleport.errors import AlreadyExistsError, BadParameterError, NotFoundError
from pyteleport.events import codes
from pyteleport.model.authority import CAType, authorities_from_dicts, authorities_to_dicts
from pyteleport.model.node import node_from_dict, node_to_dict
from pyteleport.model.role import role_from_dict, role_to_dict
from pyteleport.model.token import provision_token_from_dict, provision_token_to_dict
from pyteleport.model.user import user_from_dict, user_to_dict
from pyteleport.storage.authorities import CLUSTER_NAME_KEY, AuthorityStore
from pyteleport.storage.locks import lock_from_dict, lock_to_dict

if TYPE_CHECKING:
    from pyteleport.auth.server import AuthServer

# In the order a restore creates them: roles before the users that hold them.
KINDS = ("cert_authority", "role", "user", "token", "lock", "node")
SECRET_KINDS = ("token",)  # resources that are secrets whole
_ALIASES = {
    "cert_authorities": "cert_authority",
    "cas": "cert_authority",
    "ca": "cert_authority",
    "roles": "role",
    "users": "user",
    "tokens": "token",
    "locks": "lock",
    "nodes": "node",
}


def parse_kinds(text: str) -> tuple[str, ...]:
    """``all`` or a comma-separated list such as ``users,roles`` as resource kinds."""
    if text.strip() == "all":
        return KINDS
    kinds = []
    for part in (p.strip() for p in text.split(",")):
        kind = _ALIASES.get(part, part)
        if kind not in KINDS:
            raise BadParameterError(
                f'unsupported resource "{part}", expected all or: ' + ",".join(KINDS)
            )
        kinds.append(kind)
    return tuple(dict.fromkeys(kinds))


async def export_resources(
    server: AuthServer, kinds: Sequence[str], with_secrets: bool
) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for kind in KINDS:
        if kind not in kinds:
            continue
        if kind == "cert_authority":
            cas = {t: server.ca(t) for t in CAType}
            out += authorities_to_dicts(cas, with_secrets)
        elif kind == "role":
            out += [role_to_dict(r) for r in await server.roles.list()]
        elif kind == "user":
            for user in await server.users.list():
                doc = user_to_dict(user, with_status=False)
                if with_secrets:
                    doc["spec"]["local_auth"] = await _local_auth(server, user.name)
                out.append(doc)
        elif kind == "token" and with_secrets:
            now = server.clock.now()
            out += [
                provision_token_to_dict(t)
                for t in await server.tokens.list_join()
                if t.expires > now
            ]
        elif kind == "lock":
            out += [lock_to_dict(lock) for lock in await server.locks.in_force()]
        elif kind == "node":
            out += [node_to_dict(n) for n in await server.nodes.list()]
    return out


async def _local_auth(server: AuthServer, name: str) -> dict[str, str]:
    auth: dict[str, str] = {}
    password_hash = await server.users.get_password_hash(name)
    if password_hash:
        auth["password_hash"] = password_hash
    totp = await server.users.get_otp_secret(name)
    if totp:
        auth["totp_key"] = totp
    return auth


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    name: str
    result: str  # "created", "updated" or "unchanged"


def resource_kind(doc: Mapping[str, Any]) -> str:
    kind = str(doc.get("kind", ""))
    if kind not in KINDS:
        raise BadParameterError(
            f'creating resources of kind "{kind}" is not supported, expected one of: '
            + ",".join(KINDS)
        )
    return kind


def ordered(docs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Resources in the order a restore creates them (roles before users, ...)."""
    return sorted(docs, key=lambda d: KINDS.index(resource_kind(d)))


async def create_resource(
    server: AuthServer, doc: Mapping[str, Any], force: bool, by: str
) -> Outcome:
    """Create one resource (with ``force``, replace it). Certificate authorities are not
    replaced on a running cluster: one that matches is unchanged, another is refused with the
    way to restore a cluster. A resource of the wrong shape is one BadParameterError."""
    kind = resource_kind(doc)
    try:
        return await _create(server, kind, doc, force, by)
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise BadParameterError(f"malformed {kind} resource: {exc!s:.200}") from exc


async def _create(
    server: AuthServer, kind: str, doc: Mapping[str, Any], force: bool, by: str
) -> Outcome:
    if kind == "cert_authority":
        return _check_same_authority(server, doc)
    if kind == "role":
        role = role_from_dict(doc)
        created = await server.upsert_role(role, overwrite=force, by=by)
        return Outcome(kind, role.name, "created" if created else "updated")
    if kind == "user":
        return await _create_user(server, doc, force, by)
    if kind == "token":
        token = provision_token_from_dict(doc)
        existed = False
        with contextlib.suppress(NotFoundError):
            await server.tokens.get_join(token.token)
            existed = True
        if existed and not force:
            raise AlreadyExistsError("token already exists: use tctl create -f to replace it")
        if existed:
            await server.tokens.delete_join(token.token)
        await server.tokens.create_join(token)
        await server.audit.emit(codes.TOKEN_CREATED, {"roles": list(token.roles), "user": by})
        return Outcome(kind, "(secret)", "updated" if existed else "created")
    if kind == "lock":
        lock = lock_from_dict(dict(doc))
        existed = any(x.name == lock.name for x in await server.locks.store.list())
        if existed and not force:
            raise AlreadyExistsError(
                f'lock "{lock.name}" already exists: use tctl create -f to replace it'
            )
        if existed:
            await server.locks.store.delete(lock.name)
        await server.locks.store.create(lock)
        await server.audit.emit(
            codes.LOCK_CREATED,
            {"name": lock.name, "user": by, "target": {lock.target_kind: lock.target}},
        )
        return Outcome(kind, lock.name, "updated" if existed else "created")
    node = node_from_dict(doc)
    created = await server.nodes.upsert(node, force, by)
    return Outcome(kind, node.name, "created" if created else "updated")


async def _create_user(server: AuthServer, doc: Mapping[str, Any], force: bool, by: str) -> Outcome:
    spec = dict(doc.get("spec") or {})
    local_auth = spec.pop("local_auth", None) or {}
    if not isinstance(local_auth, Mapping):
        raise BadParameterError("spec.local_auth must be a mapping")
    user = user_from_dict({**doc, "spec": spec})
    for role in user.roles:
        await server.roles.get(role)  # NotFoundError names the missing role
    try:
        await server.users.create(user)
        result = "created"
    except AlreadyExistsError:
        if not force:
            raise AlreadyExistsError(
                f'user "{user.name}" already exists: use tctl create -f to replace it'
            ) from None
        await server.users.update(user)
        result = "updated"
    if local_auth.get("password_hash"):
        await server.users.set_password_hash(user.name, str(local_auth["password_hash"]))
    if local_auth.get("totp_key"):
        await server.users.set_otp_secret(user.name, str(local_auth["totp_key"]))
    event = codes.USER_CREATE if result == "created" else codes.USER_UPDATE
    await server.audit.emit(event, {"name": user.name, "roles": list(user.roles), "user": by})
    return Outcome("user", user.name, result)


def _check_same_authority(server: AuthServer, doc: Mapping[str, Any]) -> Outcome:
    spec = doc.get("spec") or {}
    kind = str(spec.get("type") or doc.get("sub_kind") or "")
    if kind not in ("user", "host"):
        raise BadParameterError(f'cert_authority of type "{kind}" is not supported')
    current = authorities_to_dicts({t: server.ca(t) for t in CAType}, with_secrets=False)
    mine = next(d for d in current if d["sub_kind"] == kind)
    theirs_keys = spec.get("active_keys") or {}
    same_ssh = [k.get("public_key") for k in theirs_keys.get("ssh") or []] == [
        k["public_key"] for k in mine["spec"]["active_keys"]["ssh"]
    ]
    if same_ssh and str(spec.get("cluster_name", "")) == server.cluster_name:
        return Outcome("cert_authority", kind, "unchanged")
    raise BadParameterError(
        f"the {kind} cert_authority differs from this cluster's: certificate authorities are "
        "not replaced on a running cluster; restore a backup into an empty data_dir with "
        "teleport start --bootstrap FILE"
    )


async def seed_cluster(backend: Backend, cluster_name: str, docs: Sequence[Any]) -> bool:
    """``teleport start --bootstrap``: on a backend that holds no cluster yet, store the
    backup's certificate authorities and the cluster name, so the auth service starts as the
    cluster that was backed up. False (nothing done) if the backend already holds a cluster."""
    try:
        await backend.get(CLUSTER_NAME_KEY)
        return False
    except NotFoundError:
        pass
    try:
        cas = authorities_from_dicts([d for d in docs if d.get("kind") == "cert_authority"])
    except (AttributeError, TypeError, KeyError, IndexError, ValueError) as exc:
        raise BadParameterError(f"malformed cert_authority resource: {exc!s:.200}") from exc
    backed_up = next(iter(cas.values())).cluster_name
    if backed_up != cluster_name:
        raise BadParameterError(
            f'the backup is of cluster "{backed_up}" but the config names "{cluster_name}": '
            f'set auth_service.cluster_name to "{backed_up}"'
        )
    store = AuthorityStore(backend)
    for ca in cas.values():
        await store.create(ca)
    await backend.create(Item(key=CLUSTER_NAME_KEY, value=cluster_name.encode()))
    return True


async def same_authorities(backend: Backend, docs: Sequence[Any]) -> bool:
    """Whether the backend's certificate authorities are the backup's (the same public keys)."""
    try:
        theirs = authorities_from_dicts([d for d in docs if d.get("kind") == "cert_authority"])
    except (BadParameterError, AttributeError, TypeError, KeyError, IndexError, ValueError):
        return False
    store = AuthorityStore(backend)
    for ca_type, ca in theirs.items():
        try:
            mine = await store.get(ca_type)
        except NotFoundError:
            return False
        if mine.public_key != ca.public_key or mine.cluster_name != ca.cluster_name:
            return False
    return True
