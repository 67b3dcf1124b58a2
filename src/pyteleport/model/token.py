"""Join tokens (a node proves it may join) and user tokens (an invite sets a password once)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from pyteleport.errors import BadParameterError
from pyteleport.model.timefmt import format_time, parse_time

JOIN_ROLES = ("node", "proxy", "auth")


@dataclass(frozen=True, slots=True)
class ProvisionToken:
    token: str
    roles: tuple[str, ...]
    expires: dt.datetime


@dataclass(frozen=True, slots=True)
class UserToken:
    """A one-time token that lets ``user`` choose a password (invite or reset)."""

    token: str
    user: str
    kind: str  # "invite" | "reset"
    expires: dt.datetime
    otp_secret: str = ""  # base32; set when second_factor is otp


def provision_token_to_dict(token: ProvisionToken) -> dict[str, Any]:
    return {
        "kind": "token",
        "version": "v2",
        "metadata": {"name": token.token, "expires": format_time(token.expires)},
        "spec": {"roles": [r.capitalize() for r in token.roles], "join_method": "token"},
    }


def provision_token_from_dict(data: Any) -> ProvisionToken:
    """A join token from its resource form (``tctl create`` of a backup)."""
    try:
        name = str(data["metadata"]["name"])
        roles = tuple(str(r).lower() for r in data["spec"]["roles"])
        expires = parse_time(str(data["metadata"]["expires"]))
    except (KeyError, TypeError) as exc:
        raise BadParameterError(f"malformed token resource: missing {exc}") from exc
    for role in roles:
        if role not in JOIN_ROLES:
            raise BadParameterError(
                f'unknown token type "{role}", expected one of: ' + ",".join(JOIN_ROLES)
            )
    if not name or not name.isprintable() or len(name) > 256:
        raise BadParameterError("a token's metadata.name must be printable text")
    return ProvisionToken(token=name, roles=roles, expires=expires)
