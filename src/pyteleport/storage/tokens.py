"""Join tokens (/tokens/) and user tokens for invites and resets (/usertokens/), with expiry."""

from __future__ import annotations

import contextlib

from pyteleport.backend import Backend, Item, prefix_end
from pyteleport.errors import NotFoundError
from pyteleport.model.timefmt import format_time, parse_time
from pyteleport.model.token import ProvisionToken, UserToken
from pyteleport.storage.codec import dump, load

JOIN_PREFIX = "/tokens/"
USER_PREFIX = "/usertokens/"


class TokenStore:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    async def create_join(self, token: ProvisionToken) -> None:
        value = dump({"roles": list(token.roles), "expires": format_time(token.expires)})
        await self._backend.create(
            Item(key=JOIN_PREFIX + token.token, value=value, expires=token.expires)
        )

    async def get_join(self, token: str) -> ProvisionToken:
        try:
            item = await self._backend.get(JOIN_PREFIX + token)
        except NotFoundError:
            raise NotFoundError("token is not found or has expired") from None
        data = load(item.value, "token")
        return ProvisionToken(
            token=token, roles=tuple(data["roles"]), expires=parse_time(data["expires"])
        )

    async def list_join(self) -> list[ProvisionToken]:
        items = await self._backend.get_range(JOIN_PREFIX, prefix_end(JOIN_PREFIX))
        out = []
        for item in items:
            data = load(item.value, "token")
            out.append(
                ProvisionToken(
                    token=item.key[len(JOIN_PREFIX) :],
                    roles=tuple(data["roles"]),
                    expires=parse_time(data["expires"]),
                )
            )
        return out

    async def delete_join(self, token: str) -> None:
        try:
            await self._backend.delete(JOIN_PREFIX + token)
        except NotFoundError:
            raise NotFoundError("token is not found or has expired") from None

    async def create_user_token(self, token: UserToken) -> None:
        value = dump(
            {
                "user": token.user,
                "kind": token.kind,
                "expires": format_time(token.expires),
                "otp_secret": token.otp_secret,
            }
        )
        await self._backend.create(
            Item(key=USER_PREFIX + token.token, value=value, expires=token.expires)
        )

    async def get_user_token(self, token: str) -> UserToken:
        try:
            item = await self._backend.get(USER_PREFIX + token)
        except NotFoundError:
            raise NotFoundError("the invite or reset link is invalid or has expired") from None
        data = load(item.value, "user token")
        return UserToken(
            token=token,
            user=data["user"],
            kind=data["kind"],
            expires=parse_time(data["expires"]),
            otp_secret=data.get("otp_secret", ""),
        )

    async def delete_user_token(self, token: str) -> None:
        await self._backend.delete(USER_PREFIX + token)

    async def delete_user_tokens_for(self, user: str) -> None:
        items = await self._backend.get_range(USER_PREFIX, prefix_end(USER_PREFIX))
        for item in items:
            if load(item.value, "user token").get("user") == user:
                with contextlib.suppress(NotFoundError):
                    await self._backend.delete(item.key)
