"""Subsystem and destination parsing: Teleport's wording for malformed requests."""

from __future__ import annotations

import pytest

from pyteleport.client.sshproxy import Destination, parse_destination, strip_cluster
from pyteleport.errors import BadParameterError
from pyteleport.proxy.outer import parse_proxy_subsystem


@pytest.mark.parametrize(
    "name,expected",
    [
        ("proxy:db1:22", ("db1", 22)),
        ("proxy:db1:2222@c.test", ("db1", 2222)),
        ("proxy:db1", ("db1", 22)),
        ("proxy:[::1]:22", ("::1", 22)),
        ("proxy:10.0.0.5:22@c.test", ("10.0.0.5", 22)),
    ],
)
def test_subsystem_parses(name: str, expected: tuple[str, int]) -> None:
    assert parse_proxy_subsystem(name, "c.test") == expected


@pytest.mark.parametrize("name", ["sftp", "proxy:", "proxy:h:x", "proxy:h:99999", "proxy::22"])
def test_malformed_subsystem_uses_teleports_message(name: str) -> None:
    with pytest.raises(BadParameterError) as info:
        parse_proxy_subsystem(name, "c.test")
    assert info.value.message == (
        f"invalid format for proxy request: \"{name}\", expected 'proxy:host:port@cluster'"
    )


def test_other_cluster_is_named() -> None:
    with pytest.raises(BadParameterError, match='cluster "other" is not found'):
        parse_proxy_subsystem("proxy:h:22@other", "c.test")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("root@db1:2222", Destination("root", "db1", 2222)),
        ("db1", Destination("joe", "db1", 22)),
        ("a@b@db1", Destination("a@b", "db1", 22)),
        ("root@[::1]:2022", Destination("root", "::1", 2022)),
    ],
)
def test_destination(text: str, expected: Destination) -> None:
    assert parse_destination(text, "joe") == expected


def test_cluster_suffix_is_stripped() -> None:
    assert strip_cluster("db1.c.test", "c.test") == "db1"
    assert strip_cluster("db1.other", "c.test") == "db1.other"
