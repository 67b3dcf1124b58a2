"""Users, their password hashes and OTP secrets, under /users/<name>/..."""

from __future__ import annotations

from collections.abc import Callable

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.errors import AlreadyExistsError, CompareFailedError, NotFoundError
from pyteleport.model.user import User, user_from_dict, user_to_dict
from pyteleport.storage.codec import dump, load

PREFIX = "/users/"
CAS_ATTEMPTS = 32


class UserStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def get(self, name: str) -> User:
        try:
            item = await self._backend.get(f"{PREFIX}{name}/params")
        except NotFoundError:
            raise NotFoundError(f'user "{name}" is not found') from None
        return user_from_dict(load(item.value, "user"))

    async def create(self, user: User) -> None:
        try:
            await self._backend.create(
                Item(key=f"{PREFIX}{user.name}/params", value=dump(user_to_dict(user)))
            )
        except AlreadyExistsError:
            raise AlreadyExistsError(f'user "{user.name}" already exists') from None

    async def update(self, user: User) -> None:
        try:
            await self._backend.update(
                Item(key=f"{PREFIX}{user.name}/params", value=dump(user_to_dict(user)))
            )
        except NotFoundError:
            raise NotFoundError(f'user "{user.name}" is not found') from None

    async def change(self, name: str, change: Callable[[User], User]) -> User:
        """Apply ``change`` to the stored user with compare-and-swap, reading again when another
        writer changed it meanwhile: two admins' changes never overwrite each other."""
        key = f"{PREFIX}{name}/params"
        for _ in range(CAS_ATTEMPTS):
            try:
                current = await self._backend.get(key)
            except NotFoundError:
                raise NotFoundError(f'user "{name}" is not found') from None
            updated = change(user_from_dict(load(current.value, "user")))
            try:
                await self._backend.compare_and_swap(
                    current, Item(key=key, value=dump(user_to_dict(updated)))
                )
            except (CompareFailedError, NotFoundError):
                continue
            return updated
        raise CompareFailedError(f'user "{name}" is changing too often: try again')

    async def list(self) -> list[User]:
        items = await self._backend.get_range(PREFIX, prefix_end(PREFIX))
        return [user_from_dict(load(i.value, "user")) for i in items if i.key.endswith("/params")]

    async def delete(self, name: str) -> None:
        await self.get(name)
        prefix = f"{PREFIX}{name}/"
        await self._backend.delete_range(prefix, prefix_end(prefix))

    async def get_password_hash(self, name: str) -> str | None:
        try:
            return (await self._backend.get(f"{PREFIX}{name}/pwd")).value.decode()
        except NotFoundError:
            return None

    async def set_password_hash(self, name: str, password_hash: str) -> None:
        await self._backend.put(Item(key=f"{PREFIX}{name}/pwd", value=password_hash.encode()))

    async def get_otp_secret(self, name: str) -> str | None:
        try:
            return (await self._backend.get(f"{PREFIX}{name}/otp")).value.decode()
        except NotFoundError:
            return None

    async def set_otp_secret(self, name: str, secret: str) -> None:
        await self._backend.put(Item(key=f"{PREFIX}{name}/otp", value=secret.encode()))
        await self._backend.put(Item(key=f"{PREFIX}{name}/otp_used", value=b"0"))

    async def claim_otp_step(self, name: str, step: int) -> bool:
        """Record that the TOTP step was used; False if it (or a later one) already was.

        Compare-and-swap so two logins racing with one code cannot both win (RFC 6238 section 5.2).
        """
        key = f"{PREFIX}{name}/otp_used"
        for _ in range(5):
            try:
                current = await self._backend.get(key)
            except NotFoundError:
                try:
                    await self._backend.create(Item(key=key, value=str(step).encode()))
                    return True
                except AlreadyExistsError:
                    continue
            if int(current.value or b"0") >= step:
                return False
            try:
                await self._backend.compare_and_swap(
                    current, Item(key=key, value=str(step).encode())
                )
                return True
            except Exception:  # lost the race: read again
                continue
        return False
