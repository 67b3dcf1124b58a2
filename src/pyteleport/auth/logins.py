"""Password checks and the lockout, as the auth core uses them.

``PasswordWork`` runs argon2 in worker threads, at most ``max_parallel`` at once: a hash costs
tens of milliseconds of CPU, and the auth core shares its event loop with the proxy, so a burst
of logins run inline would stall every relayed session. Logins queue for the workers instead.

``Lockout`` decides from the failed logins of a name (``LoginAttemptStore``): 5 failures within
30 minutes lock it for 20. It treats every name alike, whether a user by that name exists or
not, so the answers, and the work behind them, are the same for both.
"""

from __future__ import annotations

import asyncio
import datetime as dt

from pyteleport.clock import Clock
from pyteleport.crypto import password as passwords
from pyteleport.crypto import totp
from pyteleport.errors import AccessDeniedError, BadParameterError, NotFoundError
from pyteleport.model.user import LoginStatus
from pyteleport.storage.loginattempts import LoginAttemptStore
from pyteleport.storage.users import UserStore

LOCKED_MESSAGE = "too many incorrect attempts, please try again later"
MAX_LOGIN_ATTEMPTS = 5
ATTEMPT_WINDOW = dt.timedelta(minutes=30)
LOCK_DURATION = dt.timedelta(minutes=20)


class PasswordWork:
    def __init__(self, max_parallel: int = 2) -> None:
        self._slots = asyncio.Semaphore(max_parallel)

    async def verify(self, password_hash: str, password: str) -> bool:
        async with self._slots:
            return await asyncio.to_thread(passwords.verify_password, password_hash, password)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(passwords.hash_password, password)


class Lockout:
    def __init__(self, store: LoginAttemptStore, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def status(self, name: str) -> LoginStatus:
        return await self._store.get(name)

    async def is_locked(self, name: str) -> bool:
        locked_until = (await self._store.get(name)).locked_until
        return locked_until is not None and locked_until > self._clock.now()

    async def failed(self, name: str) -> bool:
        """Count a failed login; True if the name is now locked."""
        now = self._clock.now()

        def count(status: LoginStatus) -> LoginStatus:
            if status.locked_until is not None and status.locked_until > now:
                return status
            recent = (*(t for t in status.failed_attempts if now - t < ATTEMPT_WINDOW), now)
            if len(recent) >= MAX_LOGIN_ATTEMPTS:
                return LoginStatus(failed_attempts=(), locked_until=now + LOCK_DURATION)
            return LoginStatus(failed_attempts=recent)

        def expires(status: LoginStatus) -> dt.datetime:
            return status.locked_until or now + ATTEMPT_WINDOW

        status = await self._store.change(name, count, expires)
        return status.locked_until is not None

    async def clear(self, name: str) -> None:
        await self._store.clear(name)


class PasswordCheck:
    """A password (and TOTP code) login's check: the same reads, the same hash check and the
    same write for a name with no user as for a real one, so neither the answer nor its timing
    tells which names exist."""

    def __init__(
        self,
        users: UserStore,
        lockout: Lockout,
        work: PasswordWork,
        clock: Clock,
        second_factor: str,
    ) -> None:
        self._users = users
        self._lockout = lockout
        self._work = work
        self._clock = clock
        self._second_factor = second_factor

    def _bad_credentials(self) -> AccessDeniedError:
        if self._second_factor == "otp":
            return AccessDeniedError("invalid username, password or second factor")
        return AccessDeniedError("invalid username or password")

    async def verify(self, username: str, password: str, otp_token: str) -> None:
        """Return if the credentials are right; else AccessDeniedError in Teleport's words."""
        users = self._users
        locked = await self._lockout.is_locked(username)
        try:
            await users.get(username)
            known = True
        except (NotFoundError, BadParameterError):
            known = False
        try:
            stored = await users.get_password_hash(username)  # a miss for an unknown name
        except BadParameterError:
            stored = None
        ok = await self._work.verify(stored or passwords.DUMMY_HASH, password)
        ok = ok and stored is not None and known and not locked
        if ok and self._second_factor == "otp":
            now = self._clock.now()
            secret = await users.get_otp_secret(username)
            ok = (
                secret is not None
                and totp.verify_code(secret, otp_token, now)
                and await users.claim_otp_step(username, self._otp_step(secret, otp_token))
            )
        if ok:
            await self._lockout.clear(username)
            return
        if locked:
            raise AccessDeniedError(LOCKED_MESSAGE)
        if await self._lockout.failed(username):
            raise AccessDeniedError(LOCKED_MESSAGE)
        raise self._bad_credentials()

    def _otp_step(self, secret: str, code: str) -> int:
        now = self._clock.now()
        for k in (-1, 0, 1):
            when = now + dt.timedelta(seconds=totp.STEP_S * k)
            if totp.code_at(secret, when) == code.strip():
                return int(when.timestamp()) // totp.STEP_S
        return 0
