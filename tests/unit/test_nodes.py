"""Node resources and node_labels: Teleport's shape in and out, Teleport's matching, deny first."""

from __future__ import annotations

from typing import Any

import pytest

from pyteleport.errors import AccessDeniedError, BadParameterError
from pyteleport.model.node import (
    Node,
    node_from_dict,
    node_to_dict,
    parse_label_selector,
    split_addr,
)
from pyteleport.model.presets import ACCESS, EDITOR
from pyteleport.model.role import Role, RoleConditions
from pyteleport.policy.access import RoleSet

DB1: dict[str, Any] = {
    "kind": "node",
    "sub_kind": "openssh",
    "version": "v2",
    "metadata": {"name": "db1", "labels": {"env": "prod", "team": "db"}},
    "spec": {"addr": "10.0.0.5:22", "hostname": "db1.example.com"},
}


def roles(*rs: Role, logins: tuple[str, ...] = ("root",)) -> RoleSet:
    return RoleSet(roles=rs, traits={"logins": logins})


def labelled(name: str, allow: dict[str, tuple[str, ...]], deny: Any = None) -> Role:
    return Role(
        name=name,
        allow=RoleConditions(logins=("root",), node_labels=allow),
        deny=RoleConditions(node_labels=deny or {}),
    )


def test_a_node_round_trips_in_teleports_shape() -> None:
    node = node_from_dict(DB1)
    assert (node.name, node.addr, node.hostname) == ("db1", "10.0.0.5:22", "db1.example.com")
    assert dict(node.labels) == {"env": "prod", "team": "db"}
    assert node_from_dict(node_to_dict(node)) == node
    assert node.names() == {"db1", "db1.example.com", "10.0.0.5"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "role"}, 'expected kind "node"'),
        ({"sub_kind": "teleport"}, "sub_kind: openssh"),
        ({"spec": {}}, "spec.addr is required"),
        ({"spec": {"addr": "10.0.0.5:0"}}, "invalid port"),
        ({"spec": {"addr": "10.0.0.5:99999"}}, "invalid port"),
        ({"spec": {"addr": "bad host:22"}}, "invalid host"),
        ({"spec": {"addr": "h:22", "port": 1}}, "unknown field spec.port"),
        ({"metadata": {"name": "db1", "labels": {"env": ["a"]}}}, "must be a string"),
        ({"metadata": {"name": "db1", "labels": {"e nv": "a"}}}, "invalid label name"),
        ({"metadata": {"name": "db1", "labels": {"env": "a\nb"}}}, "printable text"),
        ({"metadata": {"name": "../x"}}, "invalid node name"),
    ],
)
def test_a_bad_node_is_refused_with_the_field_named(change: dict[str, Any], message: str) -> None:
    with pytest.raises(BadParameterError, match=message):
        node_from_dict({**DB1, **change})


@pytest.mark.parametrize(
    ("addr", "expected"),
    [
        ("h", ("h", 22)),
        ("h:2222", ("h", 2222)),
        ("[::1]:2222", ("::1", 2222)),
        ("::1", ("::1", 22)),
        ("10.0.0.5:22", ("10.0.0.5", 22)),
    ],
)
def test_addresses_split_as_ssh_writes_them(addr: str, expected: tuple[str, int]) -> None:
    assert split_addr(addr) == expected


def test_label_selectors_parse_from_arguments() -> None:
    assert parse_label_selector(("env=prod", "team=db,os=linux")) == {
        "env": "prod",
        "team": "db",
        "os": "linux",
    }
    with pytest.raises(BadParameterError, match="expected key=value"):
        parse_label_selector(("env",))


def test_node_labels_match_exact_values_globs_and_the_wildcard() -> None:
    prod = {"env": "prod", "team": "db"}
    assert roles(labelled("p", {"env": ("prod",)})).node_allowed(prod)
    assert roles(labelled("g", {"team": ("d*",)})).node_allowed(prod)
    assert not roles(labelled("d", {"env": ("dev",)})).node_allowed(prod)
    # every key of one selector must match
    assert not roles(labelled("both", {"env": ("prod",), "os": ("linux",)})).node_allowed(prod)
    # '*': '*' reaches every node, labelled or not; nothing else reaches an unlabelled one
    assert roles(ACCESS).node_allowed({}) and roles(ACCESS).node_allowed(prod)
    assert not roles(labelled("p", {"env": ("prod",)})).node_allowed({})
    # no node_labels at all: no node
    assert not roles(EDITOR).node_allowed(prod)


def test_a_deny_on_node_labels_beats_any_allow() -> None:
    rs = roles(ACCESS, labelled("no-prod", {}, deny={"env": ("prod",)}))
    assert rs.node_allowed({"env": "dev"})
    assert not rs.node_allowed({"env": "prod"})
    with pytest.raises(AccessDeniedError) as info:
        rs.check_node("db1", {"env": "prod"}, "root")
    assert info.value.message == (
        'access denied to login "root" on node "db1": no role allows it '
        "(roles access,no-prod, spec.allow.node_labels)"
    )


def test_check_node_checks_the_login_too_when_it_is_known() -> None:
    rs = roles(labelled("dev", {"env": ("dev",)}))
    rs.check_node("web1", {"env": "dev"}, "root")
    rs.check_node("web1", {"env": "dev"})  # a pipe: the login is inside the user's own SSH
    with pytest.raises(AccessDeniedError, match='login "alice"'):
        rs.check_node("web1", {"env": "dev"}, "alice")


def test_node_names_include_its_address_host() -> None:
    node = Node(name="n1", addr="127.0.0.1:2200")
    assert node.names() == {"n1", "127.0.0.1"} and node.port == 2200
