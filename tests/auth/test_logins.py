"""Password logins in the auth core: an unknown name is answered, locked out and worked on
exactly as a real one; concurrent failures all count; a login never writes the user record; and
argon2 runs off the event loop, a bounded number at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
from collections.abc import Sequence

import pytest

from pyteleport.auth import logins
from pyteleport.auth.server import LOCKED_MESSAGE, AuthServer
from pyteleport.backend import Item
from pyteleport.backend.memory import MemoryBackend
from pyteleport.clock import FakeClock
from pyteleport.crypto import password as passwords
from pyteleport.errors import AccessDeniedError
from pyteleport.model.user import User

PASSWORD = "correct-horse-battery"


class RecordingBackend(MemoryBackend):
    """Notes each operation (kind and key prefix) so two logins' work can be compared."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock)
        self.ops: list[str] = []

    def _note(self, op: str, key: str) -> None:
        self.ops.append(f"{op} {key.split('/')[1]}")

    async def get(self, key: str) -> Item:
        self._note("get", key)
        return await super().get(key)

    async def create(self, item: Item) -> Item:
        self._note("create", item.key)
        return await super().create(item)

    async def compare_and_swap(self, expected: Item, replace_with: Item) -> Item:
        self._note("cas", expected.key)
        return await super().compare_and_swap(expected, replace_with)

    async def update(self, item: Item) -> Item:
        self._note("update", item.key)
        return await super().update(item)

    async def put(self, item: Item) -> Item:
        self._note("put", item.key)
        return await super().put(item)

    async def create_many(self, items: Sequence[Item]) -> list[Item]:
        return await super().create_many(items)  # the audit log: not part of the comparison


async def server_with_joe() -> tuple[AuthServer, RecordingBackend, FakeClock]:
    clock = FakeClock()
    backend = RecordingBackend(clock)
    server = await AuthServer.open(backend, "example.test", clock=clock)
    await server.users.create(User(name="joe", roles=("access",)))
    await server.set_password("joe", PASSWORD)
    return server, backend, clock


async def answers(server: AuthServer, name: str, tries: int) -> list[str]:
    out = []
    for _ in range(tries):
        try:
            await server.password_check.verify(name, "wrong-password!", "")
            out.append("ok")
        except AccessDeniedError as exc:
            out.append(str(exc))
    return out


async def test_an_unknown_name_gets_the_same_answers_as_a_real_one_lockout_included() -> None:
    server, _, _ = await server_with_joe()
    real = await answers(server, "joe", 7)
    unknown = await answers(server, "ghost", 7)
    assert real == unknown
    assert real == ["invalid username or password"] * 4 + [LOCKED_MESSAGE] * 3


async def test_an_unknown_name_costs_the_same_work_as_a_real_one() -> None:
    server, backend, _ = await server_with_joe()
    verified: list[str] = []
    real_verify = passwords.verify_password

    def counting(password_hash: str, password: str) -> bool:
        verified.append("verify")
        return real_verify(password_hash, password)

    passwords.verify_password = counting  # type: ignore[assignment]
    try:
        backend.ops.clear()
        await answers(server, "joe", 1)
        real_ops, real_verified = list(backend.ops), list(verified)
        backend.ops.clear()
        verified.clear()
        await answers(server, "ghost", 1)
    finally:
        passwords.verify_password = real_verify  # type: ignore[assignment]
    assert backend.ops == real_ops, (backend.ops, real_ops)
    assert verified == real_verified == ["verify"]


async def test_twelve_wrong_passwords_at_once_lock_the_user() -> None:
    server, _, _ = await server_with_joe()
    results = await asyncio.gather(
        *(server.password_check.verify("joe", "wrong-password!", "") for _ in range(12)),
        return_exceptions=True,
    )
    assert all(isinstance(r, AccessDeniedError) for r in results)
    assert await server.lockout.is_locked("joe")
    with pytest.raises(AccessDeniedError, match="too many incorrect attempts"):
        await server.password_check.verify("joe", PASSWORD, "")  # even the right one, while locked


async def test_the_lock_expires_and_a_good_login_clears_the_count() -> None:
    server, _, clock = await server_with_joe()
    await answers(server, "joe", 5)
    clock.advance(logins.LOCK_DURATION + dt.timedelta(seconds=1))
    await server.password_check.verify("joe", PASSWORD, "")
    assert (await server.lockout.status("joe")).failed_attempts == ()


async def test_a_login_never_writes_the_user_record() -> None:
    server, backend, _ = await server_with_joe()
    backend.ops.clear()
    await answers(server, "joe", 6)
    assert not [op for op in backend.ops if op.split()[0] != "get" and op.endswith(" users")]
    user = (await server.users.list())[0]
    shown = await server.user_with_status(user)
    assert shown.status.locked_until is not None  # tctl get users still shows the lock


async def test_argon2_runs_off_the_event_loop_two_at_a_time() -> None:
    server, _, _ = await server_with_joe()
    loop_thread = threading.get_ident()
    threads: set[int] = set()
    running = 0
    most = 0
    lock = threading.Lock()
    real_verify = passwords.verify_password

    def watched(password_hash: str, password: str) -> bool:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
            threads.add(threading.get_ident())
        try:
            return real_verify(password_hash, password)
        finally:
            with lock:
                running -= 1

    passwords.verify_password = watched  # type: ignore[assignment]
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    tick_task = asyncio.create_task(ticker())
    try:
        await asyncio.gather(
            *(server.password_check.verify(f"user{i}", "wrong-password!", "") for i in range(8)),
            return_exceptions=True,
        )
    finally:
        tick_task.cancel()
        passwords.verify_password = real_verify  # type: ignore[assignment]
    assert loop_thread not in threads
    assert most == 2
    assert ticks > 8  # the loop kept turning while the hashes ran
