"""Certificate authorities of a cluster: user and host CAs for SSH, the TLS CA."""

from __future__ import annotations

import base64
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pyteleport.errors import BadParameterError


class CAType(enum.Enum):
    USER = "user"
    HOST = "host"
    TLS = "tls"


@dataclass(frozen=True, slots=True)
class CertAuthority:
    """One CA. SSH CAs keep an OpenSSH private key and its public line; the TLS CA a PEM pair.

    ``private_key`` is PEM (OpenSSH or PKCS#8) and never leaves the auth service.
    """

    type: CAType
    cluster_name: str
    private_key: bytes
    public_key: bytes  # SSH: authorized_keys line "ssh-ed25519 AAAA..."; TLS: certificate PEM


# -- Teleport's cert_authority resource (tctl get cert_authority, tctl get all) -----------------
# Our TLS CA signs both server and client certificates, so it goes in the host CA's
# ``active_keys.tls``, where Teleport keeps the host CA's TLS key pair. Byte fields are base64,
# as Teleport writes them.


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _unb64(value: Any, where: str) -> bytes:
    try:
        return base64.b64decode(str(value), validate=True)
    except (ValueError, TypeError) as exc:
        raise BadParameterError(f"{where} is not base64") from exc


def authorities_to_dicts(
    cas: Mapping[CAType, CertAuthority], with_secrets: bool
) -> list[dict[str, Any]]:
    out = []
    for ca_type in (CAType.USER, CAType.HOST):
        ca = cas[ca_type]
        ssh: dict[str, Any] = {"public_key": _b64(ca.public_key)}
        if with_secrets:
            ssh.update(private_key=_b64(ca.private_key), private_key_type="RAW")
        keys: dict[str, Any] = {"ssh": [ssh]}
        if ca_type is CAType.HOST:
            tls = cas[CAType.TLS]
            pair: dict[str, Any] = {"cert": _b64(tls.public_key)}
            if with_secrets:
                pair.update(key=_b64(tls.private_key), key_type="RAW")
            keys["tls"] = [pair]
        out.append(
            {
                "kind": "cert_authority",
                "version": "v2",
                "sub_kind": ca_type.value,
                "metadata": {"name": ca.cluster_name},
                "spec": {
                    "type": ca_type.value,
                    "cluster_name": ca.cluster_name,
                    "active_keys": keys,
                },
            }
        )
    return out


def authorities_from_dicts(docs: Sequence[Mapping[str, Any]]) -> dict[CAType, CertAuthority]:
    """The user, host and TLS CAs from ``cert_authority`` resources that carry their private
    keys (``tctl get all --with-secrets``); BadParameterError naming what is missing."""
    found: dict[CAType, CertAuthority] = {}
    for doc in docs:
        spec = doc.get("spec") or {}
        kind = str(spec.get("type") or doc.get("sub_kind") or "")
        if kind not in ("user", "host"):
            raise BadParameterError(f'cert_authority of type "{kind}" is not supported')
        cluster = str(spec.get("cluster_name") or (doc.get("metadata") or {}).get("name") or "")
        keys = spec.get("active_keys") or {}
        try:
            ssh = keys["ssh"][0]
        except (KeyError, IndexError, TypeError):
            raise BadParameterError(f"the {kind} cert_authority has no SSH key") from None
        where = f"cert_authority {kind}"
        if not ssh.get("private_key"):
            raise BadParameterError(
                f"the {kind} cert_authority has no private key: make the backup with "
                "tctl get all --with-secrets"
            )
        found[CAType(kind)] = CertAuthority(
            type=CAType(kind),
            cluster_name=cluster,
            private_key=_unb64(ssh["private_key"], f"{where} private_key"),
            public_key=_unb64(ssh.get("public_key", ""), f"{where} public_key"),
        )
        if kind == "host":
            tls = (keys.get("tls") or [{}])[0]
            if not tls.get("key") or not tls.get("cert"):
                raise BadParameterError(
                    "the host cert_authority has no TLS key pair: make the backup with "
                    "tctl get all --with-secrets"
                )
            found[CAType.TLS] = CertAuthority(
                type=CAType.TLS,
                cluster_name=cluster,
                private_key=_unb64(tls["key"], f"{where} tls key"),
                public_key=_unb64(tls["cert"], f"{where} tls cert"),
            )
    missing = [t.value for t in (CAType.USER, CAType.HOST) if t not in found]
    if missing:
        raise BadParameterError(f"the backup has no {','.join(missing)} cert_authority")
    if len({ca.cluster_name for ca in found.values()}) != 1:
        raise BadParameterError("the cert_authority resources name different clusters")
    return found
