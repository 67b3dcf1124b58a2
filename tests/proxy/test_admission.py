"""Where a typed name leads and who may go there: the inventory, locks by node identity, and
the pipe port rule."""

from __future__ import annotations

import pytest

from pyteleport.errors import AccessDeniedError
from pyteleport.model.lock import Lock
from pyteleport.model.node import Node
from pyteleport.model.presets import ACCESS
from pyteleport.model.role import Role, RoleConditions
from pyteleport.policy.access import RoleSet
from pyteleport.proxy.admission import Admission

DEV = Node(name="dev1", addr="127.0.0.1:2201", hostname="dev1.example", labels={"env": "dev"})
PROD = Node(name="prod1", addr="127.0.0.1:2202", labels={"env": "prod"})
EVERYONE = RoleSet(roles=(ACCESS,), traits={"logins": ("root",)})
DEV_ONLY = RoleSet(
    roles=(
        Role(
            name="dev",
            allow=RoleConditions(logins=("root",), node_labels={"env": ("dev",)}),
        ),
    ),
    traits={},
)


def admission() -> Admission:
    async def nodes() -> list[Node]:
        return [DEV, PROD]

    return Admission(nodes)


def node_lock(target: str) -> Lock:
    return Lock(name="l1", target_kind="node", target=target)


@pytest.mark.parametrize(
    ("typed", "port", "expected"),
    [
        ("dev1", 22, "dev1"),  # by name: the typed port does not matter
        ("DEV1", 3022, "dev1"),
        ("dev1.example", 22, "dev1"),  # by hostname
        ("127.0.0.1", 2202, "prod1"),  # by address and port
        ("localhost", 2202, "prod1"),  # another name of the same address
        ("127.0.0.1", 2299, None),  # another port: not registered
        ("db9", 22, None),
    ],
)
async def test_a_typed_name_resolves_to_the_registered_node(
    typed: str, port: int, expected: str | None
) -> None:
    dest = await admission().destination(typed, port)
    assert (dest.node.name if dest.node else None) == expected
    if dest.node is not None:
        assert (dest.host, dest.port) == (dest.node.host, dest.node.port)
    else:
        assert (dest.host, dest.port, dest.labels) == (typed, port, {})


async def test_roles_decide_by_the_labels_of_the_node_however_it_is_typed() -> None:
    adm = admission()
    await adm.admit("alice", DEV_ONLY, await adm.destination("dev1", 22), [], "root")
    for typed, port in (("prod1", 22), ("127.0.0.1", 2202), ("localhost", 2202)):
        with pytest.raises(AccessDeniedError) as info:
            await adm.admit("alice", DEV_ONLY, await adm.destination(typed, port), [], "root")
        assert info.value.message.startswith('access denied to login "root" on node "prod1"')
    with pytest.raises(AccessDeniedError, match=r'node "10\.9\.9\.9": no role allows it'):
        await adm.admit("alice", DEV_ONLY, await adm.destination("10.9.9.9", 22), [], "root")
    # '*': '*' reaches an unregistered address
    await adm.admit("alice", EVERYONE, await adm.destination("10.9.9.9", 22), [], "root")


@pytest.mark.parametrize("typed", ["dev1", "dev1.example", "127.0.0.1", "localhost"])
async def test_a_lock_on_a_node_holds_whatever_name_the_user_types(typed: str) -> None:
    adm = admission()
    dest = await adm.destination(typed, 2201)
    with pytest.raises(AccessDeniedError, match='lock targeting Node:"dev1" is in force'):
        await adm.admit("alice", EVERYONE, dest, [node_lock("dev1")], "root")


async def test_a_lock_on_one_node_leaves_the_other_node_at_the_same_address() -> None:
    adm = admission()
    await adm.admit(
        "alice", EVERYONE, await adm.destination("prod1", 22), [node_lock("dev1")], "root"
    )


async def test_a_lock_on_an_address_or_a_name_holds_for_every_name_of_it() -> None:
    adm = admission()
    for target, typed in (("127.0.0.1", "localhost"), ("localhost", "127.0.0.1")):
        dest = await adm.destination(typed, 2299)  # unregistered
        with pytest.raises(AccessDeniedError, match=f'Node:"{target}"'):
            await adm.admit("alice", EVERYONE, dest, [node_lock(target)], "root")


async def test_a_lock_on_a_principal_of_the_target_certificate_holds() -> None:
    adm = admission()
    dest = (await adm.destination("10.9.9.9", 22)).with_principals(["web.example", "10.9.9.9"])
    lock = node_lock("WEB.example")
    await adm.resolve_locks([lock])
    assert adm.lock_for([lock], "alice", "root", dest) == lock


async def test_user_and_login_locks_apply_too() -> None:
    adm = admission()
    dest = await adm.destination("dev1", 22)
    user_lock = Lock(name="u", target_kind="user", target="alice")
    login_lock = Lock(name="l", target_kind="login", target="root")
    assert adm.lock_for([user_lock], "alice", "", dest) == user_lock
    assert adm.lock_for([login_lock], "alice", "root", dest) == login_lock
    assert adm.lock_for([login_lock], "alice", "", dest) is None


async def test_a_pipe_goes_to_registered_nodes_or_to_port_22_only() -> None:
    adm = admission()
    await adm.admit("alice", EVERYONE, await adm.destination("prod1", 22), [], pipe=True)
    await adm.admit("alice", EVERYONE, await adm.destination("10.9.9.9", 22), [], pipe=True)
    with pytest.raises(AccessDeniedError) as info:
        await adm.admit("alice", EVERYONE, await adm.destination("10.9.9.9", 6379), [], pipe=True)
    assert "pipes only to registered nodes or to port 22" in info.value.message
    assert 'spec.addr "10.9.9.9:6379"' in info.value.message
