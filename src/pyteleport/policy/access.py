"""What a set of roles allows. Deny beats allow; nothing is allowed by default."""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from pyteleport.errors import AccessDeniedError, BadParameterError
from pyteleport.model.role import Role

DEFAULT_CERT_TTL = dt.timedelta(hours=12)
MAX_CERT_TTL = dt.timedelta(hours=30)
# OpenSSH reads an empty principal list as "any login", so a user without logins gets a placeholder.
NO_LOGIN_PREFIX = "-teleport-nologin-"
# The access requests a user certificate was issued with: {"requests": ["<id>", ...]}.
ACTIVE_REQUESTS_EXTENSION = "teleport-active-requests"

_TEMPLATE = re.compile(r"^\{\{\s*internal\.([a-z_]+)\s*\}\}$")


def expand_logins(values: Iterable[str], traits: Mapping[str, Sequence[str]]) -> list[str]:
    """Expand ``{{internal.logins}}`` (and other internal traits) into the user's trait values."""
    out: list[str] = []
    for value in values:
        match = _TEMPLATE.match(value)
        if match:
            out.extend(traits.get(match.group(1), ()))
        elif "{{" in value:
            continue  # an unknown template expands to nothing, as in Teleport
        else:
            out.append(value)
    return out


@dataclass(frozen=True, slots=True)
class RoleSet:
    roles: tuple[Role, ...]
    traits: Mapping[str, Sequence[str]]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.roles)

    def _expanded(self, allow: bool) -> set[str]:
        out: set[str] = set()
        for role in self.roles:
            cond = role.allow if allow else role.deny
            out.update(expand_logins(cond.logins, self.traits))
        return out

    def logins(self) -> list[str]:
        """Allowed OS logins, sorted, with denied ones removed."""
        denied = self._expanded(allow=False)
        allowed = self._expanded(allow=True)
        return sorted(
            login
            for login in allowed
            if login not in denied and "*" not in denied and _valid_login(login)
        )

    def check_login(self, login: str) -> None:
        """Raise AccessDeniedError unless ``login`` is allowed by some role and denied by none."""
        if login not in self.logins():
            raise AccessDeniedError(
                f'access denied to login "{login}": not allowed by roles {",".join(self.names)}'
            )

    def check_node(self, node: str, labels: Mapping[str, str], login: str = "") -> None:
        """Raise AccessDeniedError unless some role's ``node_labels`` match ``labels`` (and allow
        ``login``, when known) and no role's ``deny.node_labels`` does. A host that is not
        registered has no labels, so only ``'*': '*'`` reaches it."""
        if self.node_allowed(labels):
            if login:
                self.check_login(login)
            return
        who = f'login "{login}" on node "{node}"' if login else f'node "{node}"'
        raise AccessDeniedError(
            f"access denied to {who}: no role allows it (roles {','.join(self.names) or 'none'}, "
            "spec.allow.node_labels)"
        )

    def node_allowed(self, labels: Mapping[str, str]) -> bool:
        """Deny beats allow: a node some deny selector matches is refused whatever allows it."""
        if any(_labels_match(r.deny.node_labels, labels) for r in self.roles):
            return False
        return any(_labels_match(r.allow.node_labels, labels) for r in self.roles)

    def max_session_ttl(self) -> dt.timedelta:
        if not self.roles:
            return DEFAULT_CERT_TTL
        return min(min(r.options.max_session_ttl for r in self.roles), MAX_CERT_TTL)

    def cert_ttl(self, requested: dt.timedelta | None) -> dt.timedelta:
        """The requested TTL (default 12h), capped by every role's max_session_ttl."""
        ttl = requested if requested and requested > dt.timedelta(0) else DEFAULT_CERT_TTL
        return min(ttl, self.max_session_ttl())

    def can_forward_agent(self) -> bool:
        return any(r.options.forward_agent for r in self.roles)

    def can_port_forward(self) -> bool:
        return any(r.options.port_forwarding for r in self.roles)

    def can_x11_forward(self) -> bool:
        return any(r.options.x11_forwarding for r in self.roles)

    def can_copy_files(self) -> bool:
        """sftp and scp: allowed unless a role turns ``ssh_file_copy`` off (deny wins)."""
        return all(r.options.ssh_file_copy for r in self.roles)

    def strict_recording(self) -> bool:
        return any(r.options.record_session_ssh == "strict" for r in self.roles)

    def check_rule(self, resource: str, verb: str) -> None:
        """Raise AccessDeniedError unless some role allows ``verb`` on ``resource`` and none denies."""
        for role in self.roles:
            if any(rule.matches(resource, verb) for rule in role.deny.rules):
                raise AccessDeniedError(f'access denied to perform action "{verb}" on "{resource}"')
        for role in self.roles:
            if any(rule.matches(resource, verb) for rule in role.allow.rules):
                return
        raise AccessDeniedError(f'access denied to perform action "{verb}" on "{resource}"')

    def ssh_principals(self) -> list[str]:
        logins = self.logins()
        return logins if logins else [NO_LOGIN_PREFIX + str(uuid.uuid4())]

    def ssh_extensions(self) -> dict[str, str]:
        ext = {"permit-pty": ""}
        if self.can_forward_agent():
            ext["permit-agent-forwarding"] = ""
        if self.can_port_forward():
            ext["permit-port-forwarding"] = ""
        if self.can_x11_forward():
            ext["permit-X11-forwarding"] = ""
        ext["teleport-roles"] = json.dumps(
            {"version": "v1", "roles": list(self.names)}, separators=(",", ":")
        )
        return ext


def _labels_match(selector: Mapping[str, Sequence[str]], labels: Mapping[str, str]) -> bool:
    """Teleport's matching: every key of the selector must match (an exact value, a glob such as
    ``db-*``, or ``*``); ``'*': '*'`` matches every node, labelled or not; an empty selector
    matches nothing."""
    if not selector:
        return False
    for key, values in selector.items():
        if key == "*":
            if "*" in values:
                continue
            return False
        if key not in labels or not any(fnmatch.fnmatchcase(labels[key], v) for v in values):
            return False
    return True


def _valid_login(login: str) -> bool:
    return bool(login) and "{{" not in login and not any(c.isspace() for c in login)


def roles_from_extension(value: str) -> list[str]:
    """Parse the ``teleport-roles`` certificate extension."""
    try:
        data = json.loads(value)
        roles = data["roles"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadParameterError("malformed teleport-roles certificate extension") from exc
    if not isinstance(roles, list):
        raise BadParameterError("malformed teleport-roles certificate extension")
    return [str(r) for r in roles]


def requests_from_extension(value: str) -> tuple[str, ...]:
    """Parse the ``teleport-active-requests`` certificate extension ("" when absent)."""
    if not value:
        return ()
    try:
        names = json.loads(value)["requests"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BadParameterError("malformed teleport-active-requests certificate extension") from exc
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise BadParameterError("malformed teleport-active-requests certificate extension")
    return tuple(names)
