"""Failed logins per user name, under /loginattempts/<name>: the lockout's bookkeeping.

Kept apart from the user record, and for any name tried (known or not), so that:

- concurrent logins update it with compare-and-swap, and no failure is lost to a race (twelve
  wrong passwords at once lock the user, as twelve in a row do);
- nothing about it writes the user record, so a login never undoes a concurrent role change;
- an unknown name is answered, and locked out, exactly as a real one is: a stranger cannot
  learn which names exist from the answer or from its timing.

Each record expires with the backend's TTL once its window has passed, so names tried by a
stranger do not pile up.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable

from pyteleport.backend import Backend, Item
from pyteleport.errors import AlreadyExistsError, CompareFailedError, NotFoundError
from pyteleport.model.timefmt import format_time, parse_time
from pyteleport.model.user import LoginStatus
from pyteleport.storage.codec import dump, load

PREFIX = "/loginattempts/"
CAS_ATTEMPTS = 32


class LoginAttemptStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def get(self, name: str) -> LoginStatus:
        try:
            item = await self._backend.get(PREFIX + name)
        except NotFoundError:
            return LoginStatus()
        return _decode(item)

    async def change(
        self,
        name: str,
        change: Callable[[LoginStatus], LoginStatus],
        expires: Callable[[LoginStatus], dt.datetime],
    ) -> LoginStatus:
        """Apply ``change`` to the stored status with compare-and-swap, retrying when another
        login changed it meanwhile; the record expires at ``expires(new)``."""
        key = PREFIX + name
        for _ in range(CAS_ATTEMPTS):
            try:
                current: Item | None = await self._backend.get(key)
            except NotFoundError:
                current = None
            new = change(_decode(current) if current is not None else LoginStatus())
            item = Item(key=key, value=_encode(new), expires=expires(new))
            try:
                if current is None:
                    await self._backend.create(item)
                else:
                    await self._backend.compare_and_swap(current, item)
            except (AlreadyExistsError, CompareFailedError, NotFoundError):
                continue  # another login got there first: read it again
            return new
        raise CompareFailedError(f"too many concurrent logins for {name!r}: try again")

    async def clear(self, name: str) -> None:
        with contextlib.suppress(NotFoundError):
            await self._backend.delete(PREFIX + name)


def _encode(status: LoginStatus) -> bytes:
    return dump(
        {
            "failed_attempts": [format_time(t) for t in status.failed_attempts],
            "locked_until": format_time(status.locked_until) if status.locked_until else None,
        }
    )


def _decode(item: Item) -> LoginStatus:
    data = load(item.value, "login attempts")
    locked = data.get("locked_until")
    return LoginStatus(
        failed_attempts=tuple(parse_time(t) for t in data.get("failed_attempts", ())),
        locked_until=parse_time(locked) if locked else None,
    )
