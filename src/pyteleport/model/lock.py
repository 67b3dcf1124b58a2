"""Locks: stop a user, a login or a node from being used, at once and for live sessions too."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyteleport.errors import BadParameterError

LOCK_TARGETS = ("user", "login", "node")


@dataclass(frozen=True, slots=True)
class Lock:
    name: str
    target_kind: str  # "user", "login" or "node"
    target: str
    message: str = ""
    expires: dt.datetime | None = None  # None: until removed
    created_by: str = ""
    created: dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.target_kind not in LOCK_TARGETS:
            raise BadParameterError(
                f'unknown lock target "{self.target_kind}", expected one of: user,login,node'
            )
        if not self.target:
            raise BadParameterError(f"a lock needs a {self.target_kind} to lock")

    def matches(self, user: str = "", login: str = "", node: str = "") -> bool:
        value = {"user": user, "login": login, "node": node}[self.target_kind]
        return bool(value) and value == self.target

    def in_force(self, now: dt.datetime) -> bool:
        return self.expires is None or self.expires > now

    def describe(self) -> str:
        """Teleport's wording, shown to the user whose session the lock refuses or ends."""
        kind = {"user": "User", "login": "Login", "node": "Node"}[self.target_kind]
        text = f'lock targeting {kind}:"{self.target}" is in force'
        return f"{text}: {self.message}" if self.message else text
