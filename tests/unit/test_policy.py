"""Role decisions: deny beats allow, templates expand, TTLs are capped."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from pyteleport.errors import AccessDeniedError
from pyteleport.model.presets import ACCESS, AUDITOR, EDITOR
from pyteleport.model.role import Role, RoleConditions, RoleOptions, Rule
from pyteleport.policy.access import NO_LOGIN_PREFIX, RoleSet


def roles(*rs: Role, logins: tuple[str, ...] = ()) -> RoleSet:
    return RoleSet(roles=rs, traits={"logins": logins})


def test_internal_logins_expand_from_traits() -> None:
    rs = roles(ACCESS, logins=("alice", "root"))
    assert rs.logins() == ["alice", "root"]


def test_deny_beats_allow() -> None:
    deny_root = Role(name="no-root", deny=RoleConditions(logins=("root",)))
    rs = roles(ACCESS, deny_root, logins=("alice", "root"))
    assert rs.logins() == ["alice"]
    with pytest.raises(AccessDeniedError):
        rs.check_login("root")
    rs.check_login("alice")


def test_no_logins_gets_a_placeholder_principal_never_an_empty_list() -> None:
    principals = roles(EDITOR).ssh_principals()
    assert len(principals) == 1 and principals[0].startswith(NO_LOGIN_PREFIX)


def test_ttl_is_capped_by_the_smallest_max_session_ttl() -> None:
    short = Role(name="short", options=RoleOptions(max_session_ttl=dt.timedelta(hours=2)))
    rs = roles(ACCESS, short)
    assert rs.cert_ttl(None) == dt.timedelta(hours=2)
    assert rs.cert_ttl(dt.timedelta(minutes=30)) == dt.timedelta(minutes=30)
    assert roles(ACCESS).cert_ttl(dt.timedelta(hours=100)) == dt.timedelta(hours=30)
    assert roles(ACCESS).cert_ttl(None) == dt.timedelta(hours=12)


def test_extensions_follow_role_options() -> None:
    ext = roles(ACCESS).ssh_extensions()
    assert "permit-agent-forwarding" in ext and "permit-port-forwarding" in ext
    assert json.loads(ext["teleport-roles"]) == {"version": "v1", "roles": ["access"]}
    ext = roles(AUDITOR).ssh_extensions()
    assert "permit-agent-forwarding" not in ext and "permit-pty" in ext


def test_rules_deny_beats_allow_and_nothing_is_allowed_by_default() -> None:
    roles(EDITOR).check_rule("user", "create")
    with pytest.raises(AccessDeniedError):
        roles(ACCESS).check_rule("user", "create")
    no_users = Role(name="x", deny=RoleConditions(rules=(Rule(("user",), ("*",)),)))
    with pytest.raises(AccessDeniedError):
        roles(EDITOR, no_users).check_rule("user", "list")
    with pytest.raises(AccessDeniedError):
        roles().check_rule("role", "read")
