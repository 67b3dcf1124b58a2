"""Who is calling: a user with roles, or a built-in system role such as the local admin."""

from __future__ import annotations

from dataclasses import dataclass

BUILTIN_ADMIN = "Admin"
BUILTIN_PROXY = "Proxy"
BUILTIN_NODE = "Node"


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    roles: tuple[str, ...] = ()
    builtin: str = ""  # "" for a user; else one of the BUILTIN_* roles

    @property
    def is_admin(self) -> bool:
        return self.builtin == BUILTIN_ADMIN
