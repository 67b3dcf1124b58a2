"""Roles: which OS logins, nodes and resources a user may reach. Deny beats allow."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pyteleport.errors import BadParameterError
from pyteleport.model.duration import format_duration, parse_duration

DEFAULT_MAX_SESSION_TTL = dt.timedelta(hours=30)
RECORD_MODES = ("best_effort", "strict")
VERBS = ("list", "create", "read", "update", "delete", "*")
RESOURCES = (
    "user",
    "role",
    "token",
    "cluster_auth_preference",
    "cluster_networking_config",
    "session_recording_config",
    "session",
    "event",
    "cert_authority",
    "lock",
    "node",
    "access_request",
    "*",
)
_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._@-]{0,127}$")


def check_name(kind: str, name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise BadParameterError(
            f'invalid {kind} name "{name}": use letters, digits and . _ @ - (at most 128)'
        )
    return name


@dataclass(frozen=True, slots=True)
class Rule:
    resources: tuple[str, ...]
    verbs: tuple[str, ...]

    def matches(self, resource: str, verb: str) -> bool:
        return ("*" in self.resources or resource in self.resources) and (
            "*" in self.verbs or verb in self.verbs
        )


MAX_REQUEST_DURATION = dt.timedelta(days=7)


@dataclass(frozen=True, slots=True)
class RequestThreshold:
    """How many reviews approve (or deny) a request: Teleport's ``thresholds`` entry."""

    approve: int = 1
    deny: int = 1


@dataclass(frozen=True, slots=True)
class RequestConditions:
    """``spec.allow.request`` / ``spec.deny.request``: the roles a user may ask for (globs such
    as ``dev-*``), the approvals that grant them, and the longest a grant may last."""

    roles: tuple[str, ...] = ()
    thresholds: tuple[RequestThreshold, ...] = ()
    max_duration: dt.timedelta | None = None


@dataclass(frozen=True, slots=True)
class RoleConditions:
    logins: tuple[str, ...] = ()
    node_labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    rules: tuple[Rule, ...] = ()
    request: RequestConditions = RequestConditions()
    review_requests: tuple[str, ...] = ()  # roles whose requests this role may review


@dataclass(frozen=True, slots=True)
class RoleOptions:
    max_session_ttl: dt.timedelta = DEFAULT_MAX_SESSION_TTL
    forward_agent: bool = False
    port_forwarding: bool = False
    x11_forwarding: bool = False
    record_session_ssh: str = "best_effort"
    disconnect_expired_cert: bool = False
    client_idle_timeout: dt.timedelta | None = None
    ssh_file_copy: bool = True  # sftp and scp; any role that says false turns it off
    request_access: str = "optional"  # "reason": an access request must give one


@dataclass(frozen=True, slots=True)
class Role:
    name: str
    options: RoleOptions = RoleOptions()
    allow: RoleConditions = RoleConditions()
    deny: RoleConditions = RoleConditions()
    description: str = ""


# -- codec: Teleport's YAML/JSON resource shape ------------------------------------------------


def _str_list(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadParameterError(f"{where} must be a list of strings")
    return tuple(value)


def _bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("yes", "true", "on", "no", "false", "off"):
        return value.lower() in ("yes", "true", "on")
    raise BadParameterError(f"{where} must be true or false")


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadParameterError(f"{where} must be a mapping")
    return value


def _check_keys(data: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in data:
        if key not in allowed:
            raise BadParameterError(f"unknown field {where}.{key}")


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
        raise BadParameterError(f"{where} must be a whole number from 0 to 100")
    return value


def _request_from_dict(data: Any, where: str) -> RequestConditions:
    raw = _mapping(data, where)
    _check_keys(raw, ("roles", "thresholds", "max_duration", "suggested_reviewers"), where)
    thresholds = []
    listed = raw.get("thresholds") or []
    if not isinstance(listed, list):
        raise BadParameterError(f"{where}.thresholds must be a list")
    for i, item in enumerate(listed):
        entry = _mapping(item, f"{where}.thresholds[{i}]")
        _check_keys(entry, ("name", "approve", "deny", "filter"), f"{where}.thresholds[{i}]")
        if entry.get("filter"):
            raise BadParameterError(f"{where}.thresholds[{i}].filter is not supported")
        thresholds.append(
            RequestThreshold(
                approve=_count(entry.get("approve", 1), f"{where}.thresholds[{i}].approve"),
                deny=_count(entry.get("deny", 1), f"{where}.thresholds[{i}].deny"),
            )
        )
    max_duration = None
    if raw.get("max_duration") not in (None, "", "0", 0):
        max_duration = parse_duration(str(raw["max_duration"]))
        if not dt.timedelta(0) < max_duration <= MAX_REQUEST_DURATION:
            raise BadParameterError(f"{where}.max_duration must be positive and at most 7d")
    return RequestConditions(
        roles=_str_list(raw.get("roles"), f"{where}.roles"),
        thresholds=tuple(thresholds),
        max_duration=max_duration,
    )


def _request_to_dict(request: RequestConditions) -> dict[str, Any]:
    out: dict[str, Any] = {"roles": list(request.roles)}
    if request.thresholds:
        out["thresholds"] = [{"approve": t.approve, "deny": t.deny} for t in request.thresholds]
    if request.max_duration is not None:
        out["max_duration"] = format_duration(request.max_duration)
    return out


def _conditions_from_dict(data: Any, where: str) -> RoleConditions:
    raw = _mapping(data, where)
    _check_keys(raw, ("logins", "node_labels", "rules", "request", "review_requests"), where)
    labels: dict[str, tuple[str, ...]] = {}
    for key, value in _mapping(raw.get("node_labels"), f"{where}.node_labels").items():
        labels[str(key)] = _str_list(value, f"{where}.node_labels.{key}")
    rules = []
    rules_raw = raw.get("rules") or []
    if not isinstance(rules_raw, list):
        raise BadParameterError(f"{where}.rules must be a list")
    for i, rule in enumerate(rules_raw):
        rule_map = _mapping(rule, f"{where}.rules[{i}]")
        _check_keys(rule_map, ("resources", "verbs"), f"{where}.rules[{i}]")
        resources = _str_list(rule_map.get("resources"), f"{where}.rules[{i}].resources")
        verbs = _str_list(rule_map.get("verbs"), f"{where}.rules[{i}].verbs")
        for verb in verbs:
            if verb not in VERBS:
                raise BadParameterError(
                    f'{where}.rules[{i}].verbs: unknown verb "{verb}", expected one of: '
                    + ",".join(VERBS)
                )
        rules.append(Rule(resources=resources, verbs=verbs))
    review = _mapping(raw.get("review_requests"), f"{where}.review_requests")
    _check_keys(review, ("roles",), f"{where}.review_requests")
    return RoleConditions(
        logins=_str_list(raw.get("logins"), f"{where}.logins"),
        node_labels=labels,
        rules=tuple(rules),
        request=_request_from_dict(raw.get("request"), f"{where}.request"),
        review_requests=_str_list(review.get("roles"), f"{where}.review_requests.roles"),
    )


def _conditions_to_dict(cond: RoleConditions) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if cond.logins:
        out["logins"] = list(cond.logins)
    if cond.node_labels:
        out["node_labels"] = {k: list(v) for k, v in cond.node_labels.items()}
    if cond.rules:
        out["rules"] = [
            {"resources": list(r.resources), "verbs": list(r.verbs)} for r in cond.rules
        ]
    if cond.request.roles:
        out["request"] = _request_to_dict(cond.request)
    if cond.review_requests:
        out["review_requests"] = {"roles": list(cond.review_requests)}
    return out


_OPTION_KEYS = (
    "max_session_ttl",
    "forward_agent",
    "port_forwarding",
    "permit_x11_forwarding",
    "x11_forwarding",  # what this project wrote before it used Teleport's name; read only
    "record_session",
    "disconnect_expired_cert",
    "client_idle_timeout",
    "ssh_file_copy",
    "request_access",
)
REQUEST_ACCESS_MODES = ("optional", "reason")


def _options_from_dict(data: Any) -> RoleOptions:
    raw = _mapping(data, "spec.options")
    _check_keys(raw, _OPTION_KEYS, "spec.options")
    kwargs: dict[str, Any] = {}
    if "max_session_ttl" in raw:
        ttl = parse_duration(str(raw["max_session_ttl"]))
        if ttl <= dt.timedelta(0):
            raise BadParameterError("spec.options.max_session_ttl must be positive")
        kwargs["max_session_ttl"] = ttl
    for key in (
        "forward_agent",
        "port_forwarding",
        "disconnect_expired_cert",
        "ssh_file_copy",
    ):
        if key in raw:
            kwargs[key] = _bool(raw[key], f"spec.options.{key}")
    for key in ("x11_forwarding", "permit_x11_forwarding"):
        if key in raw:
            kwargs["x11_forwarding"] = _bool(raw[key], f"spec.options.{key}")
    if raw.get("client_idle_timeout") not in (None, "", "0", 0):
        kwargs["client_idle_timeout"] = parse_duration(str(raw["client_idle_timeout"]))
    record = _mapping(raw.get("record_session"), "spec.options.record_session")
    _check_keys(record, ("ssh", "default", "desktop"), "spec.options.record_session")
    mode = record.get("ssh", record.get("default", "best_effort"))
    if mode not in RECORD_MODES:
        raise BadParameterError(
            f'spec.options.record_session.ssh: unknown mode "{mode}", expected best_effort or strict'
        )
    kwargs["record_session_ssh"] = mode
    if "request_access" in raw:
        access = str(raw["request_access"])
        if access not in REQUEST_ACCESS_MODES:
            raise BadParameterError(
                f'spec.options.request_access: "{access}" is not supported, expected one of: '
                + ",".join(REQUEST_ACCESS_MODES)
            )
        kwargs["request_access"] = access
    return RoleOptions(**kwargs)


def _options_to_dict(opts: RoleOptions) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_session_ttl": format_duration(opts.max_session_ttl),
        "forward_agent": opts.forward_agent,
        "port_forwarding": opts.port_forwarding,
        "permit_x11_forwarding": opts.x11_forwarding,
        "record_session": {"ssh": opts.record_session_ssh},
        "disconnect_expired_cert": opts.disconnect_expired_cert,
        "ssh_file_copy": opts.ssh_file_copy,
    }
    if opts.client_idle_timeout is not None:
        out["client_idle_timeout"] = format_duration(opts.client_idle_timeout)
    if opts.request_access != "optional":
        out["request_access"] = opts.request_access
    return out


def role_from_dict(data: Any) -> Role:
    """A role from its resource form; every bad field is refused with a message naming it."""
    raw = _mapping(data, "role")
    _check_keys(raw, ("kind", "version", "metadata", "spec"), "role")
    if raw.get("kind", "role") != "role":
        raise BadParameterError(f'expected kind "role", got "{raw.get("kind")}"')
    version = raw.get("version", "v7")
    if version not in ("v5", "v6", "v7"):
        raise BadParameterError(f'role version "{version}" is not supported, use v7')
    meta = _mapping(raw.get("metadata"), "metadata")
    _check_keys(meta, ("name", "description", "labels", "revision", "id"), "metadata")
    if "name" not in meta:
        raise BadParameterError("metadata.name is required")
    spec = _mapping(raw.get("spec"), "spec")
    _check_keys(spec, ("options", "allow", "deny"), "spec")
    return Role(
        name=check_name("role", meta["name"]),
        description=str(meta.get("description", "")),
        options=_options_from_dict(spec.get("options")),
        allow=_conditions_from_dict(spec.get("allow"), "spec.allow"),
        deny=_conditions_from_dict(spec.get("deny"), "spec.deny"),
    )


def role_to_dict(role: Role) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": role.name}
    if role.description:
        metadata["description"] = role.description
    return {
        "kind": "role",
        "version": "v7",
        "metadata": metadata,
        "spec": {
            "options": _options_to_dict(role.options),
            "allow": _conditions_to_dict(role.allow),
            "deny": _conditions_to_dict(role.deny),
        },
    }
