"""Who is calling: a user with roles, or a built-in system role such as the local admin."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

BUILTIN_ADMIN = "Admin"
BUILTIN_PROXY = "Proxy"
BUILTIN_NODE = "Node"


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    roles: tuple[str, ...] = ()
    builtin: str = ""  # "" for a user; else one of the BUILTIN_* roles
    active_requests: tuple[str, ...] = ()  # approved access requests its certificate carries
    expires: dt.datetime | None = None  # when the certificate it came with expires

    @property
    def is_admin(self) -> bool:
        return self.builtin == BUILTIN_ADMIN
