"""Local users: name, roles and traits (``logins`` feeds ``{{internal.logins}}``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from pyteleport.errors import BadParameterError
from pyteleport.model.role import check_name
from pyteleport.model.timefmt import format_time, parse_time

LOGINS_TRAIT = "logins"


@dataclass(frozen=True, slots=True)
class LoginStatus:
    """Failed-login bookkeeping behind the lockout."""

    failed_attempts: tuple[dt.datetime, ...] = ()
    locked_until: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class User:
    name: str
    roles: tuple[str, ...] = ()
    traits: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    created: dt.datetime | None = None
    created_by: str = ""
    status: LoginStatus = LoginStatus()

    @property
    def logins(self) -> tuple[str, ...]:
        return tuple(self.traits.get(LOGINS_TRAIT, ()))

    def with_status(self, status: LoginStatus) -> User:
        return replace(self, status=status)


def user_to_dict(user: User, *, with_status: bool = True) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "roles": list(user.roles),
        "traits": {k: list(v) for k, v in user.traits.items()},
    }
    if user.created is not None:
        spec["created_by"] = {"time": format_time(user.created), "user": {"name": user.created_by}}
    if with_status:
        status = user.status
        spec["status"] = {
            "is_locked": status.locked_until is not None,
            "locked_time": format_time(status.locked_until) if status.locked_until else None,
            "failed_attempts": [format_time(t) for t in status.failed_attempts],
        }
    return {"kind": "user", "version": "v2", "metadata": {"name": user.name}, "spec": spec}


def user_from_dict(data: Any) -> User:
    if not isinstance(data, dict) or data.get("kind", "user") != "user":
        raise BadParameterError('expected a resource of kind "user"')
    meta = data.get("metadata") or {}
    spec = data.get("spec") or {}
    if not isinstance(meta, dict) or not isinstance(spec, dict):
        raise BadParameterError("user metadata and spec must be mappings")
    name = check_name("user", meta.get("name", ""))
    roles = spec.get("roles") or []
    traits_raw = spec.get("traits") or {}
    if not isinstance(roles, list) or not isinstance(traits_raw, dict):
        raise BadParameterError("spec.roles must be a list and spec.traits a mapping")
    traits = {str(k): tuple(str(x) for x in (v or [])) for k, v in traits_raw.items()}
    created_by = spec.get("created_by") or {}
    created = parse_time(created_by["time"]) if created_by.get("time") else None
    creator = str((created_by.get("user") or {}).get("name", ""))
    status_raw = spec.get("status") or {}
    status = LoginStatus(
        failed_attempts=tuple(parse_time(t) for t in status_raw.get("failed_attempts") or []),
        locked_until=parse_time(status_raw["locked_time"])
        if status_raw.get("locked_time")
        else None,
    )
    return User(
        name=name,
        roles=tuple(str(r) for r in roles),
        traits=traits,
        created=created,
        created_by=creator,
        status=status,
    )
