"""Invites and password resets in the auth service: one-time tokens that let a user choose a
password (and enrol TOTP), redeemed once; and passwords an administrator sets directly."""

from __future__ import annotations

import datetime as dt
import secrets

from pyteleport.auth.logins import Lockout, PasswordWork
from pyteleport.clock import Clock
from pyteleport.crypto import password as passwords
from pyteleport.crypto import totp
from pyteleport.errors import AccessDeniedError, NotFoundError
from pyteleport.events import codes
from pyteleport.events.audit import AuditLog
from pyteleport.model.duration import format_duration
from pyteleport.model.results import InviteInfo
from pyteleport.model.token import UserToken
from pyteleport.model.user import User
from pyteleport.storage.tokens import TokenStore
from pyteleport.storage.users import UserStore

INVITE_TTL = dt.timedelta(hours=1)


class Invites:
    def __init__(
        self,
        users: UserStore,
        tokens: TokenStore,
        lockout: Lockout,
        password_work: PasswordWork,
        audit: AuditLog,
        clock: Clock,
        cluster_name: str,
        second_factor: str,
    ) -> None:
        self._users = users
        self._tokens = tokens
        self._lockout = lockout
        self._password_work = password_work
        self._audit = audit
        self._clock = clock
        self._cluster_name = cluster_name
        self._second_factor = second_factor

    async def new_token(self, name: str, kind: str, ttl: dt.timedelta) -> InviteInfo:
        """A fresh invite or reset token for ``name``; any earlier one stops working."""
        await self._tokens.delete_user_tokens_for(name)
        token = UserToken(
            token=secrets.token_hex(16),
            user=name,
            kind=kind,
            expires=self._clock.now() + ttl,
            otp_secret=totp.generate_secret() if self._second_factor == "otp" else "",
        )
        await self._tokens.create_user_token(token)
        return self._info(token)

    def _info(self, token: UserToken) -> InviteInfo:
        uri = (
            totp.provisioning_uri(token.otp_secret, token.user, self._cluster_name)
            if token.otp_secret
            else ""
        )
        return InviteInfo(token=token.token, user=token.user, expires=token.expires, otp_uri=uri)

    async def create_reset_token(self, name: str, ttl: dt.timedelta, by: str) -> InviteInfo:
        await self._users.get(name)
        info = await self.new_token(name, "reset", ttl)
        await self._audit.emit(
            codes.RESET_TOKEN_CREATE, {"name": name, "ttl": format_duration(ttl), "user": by}
        )
        return info

    async def get(self, token: str) -> InviteInfo:
        return self._info(await self._tokens.get_user_token(token))

    async def change_password(self, token: str, password: str, otp_code: str) -> User:
        """Redeem an invite or reset token once: set the password (and enrol OTP)."""
        record = await self._tokens.get_user_token(token)
        passwords.check_password_policy(password)
        if record.otp_secret and not totp.verify_code(
            record.otp_secret, otp_code, self._clock.now()
        ):
            raise AccessDeniedError("invalid second factor code: check the authenticator app")
        # Delete first: if two requests race, only the one that deletes the token proceeds.
        try:
            await self._tokens.delete_user_token(token)
        except NotFoundError:
            raise NotFoundError("the invite or reset link is invalid or has expired") from None
        password_hash = await self._password_work.hash(password)
        await self._users.set_password_hash(record.user, password_hash)
        if record.otp_secret:
            await self._users.set_otp_secret(record.user, record.otp_secret)
        user = await self._users.get(record.user)
        await self._lockout.clear(record.user)
        await self._audit.emit(codes.USER_PASSWORD_CHANGE, {"user": record.user})
        return user

    async def set_password(self, name: str, password: str, by: str) -> str:
        """Set a password directly (admin automation). Returns an otpauth URI when OTP is on."""
        await self._users.get(name)
        passwords.check_password_policy(password)
        await self._users.set_password_hash(name, await self._password_work.hash(password))
        uri = ""
        if self._second_factor == "otp":
            secret = totp.generate_secret()
            await self._users.set_otp_secret(name, secret)
            uri = totp.provisioning_uri(secret, name, self._cluster_name)
        await self._lockout.clear(name)
        await self._tokens.delete_user_tokens_for(name)
        await self._audit.emit(codes.USER_PASSWORD_CHANGE, {"user": name, "updated_by": by})
        return uri
