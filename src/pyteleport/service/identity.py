"""The local admin identity that ``teleport start`` leaves in the data directory for ``tctl``.

<data_dir>/keys/            0700
    admin.key admin.crt     TLS client identity with the built-in Admin role (0600)
    cluster-ca.crt          the cluster's TLS CA, to verify the auth listener (0600)
    auth.addr               host:port where the auth API listens
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pyteleport.errors import NotFoundError


@dataclass(frozen=True, slots=True)
class AdminIdentityPaths:
    directory: Path

    @property
    def key(self) -> Path:
        return self.directory / "admin.key"

    @property
    def cert(self) -> Path:
        return self.directory / "admin.crt"

    @property
    def ca(self) -> Path:
        return self.directory / "cluster-ca.crt"

    @property
    def auth_addr(self) -> Path:
        return self.directory / "auth.addr"

    def require(self) -> None:
        for path in (self.key, self.cert, self.ca, self.auth_addr):
            if not path.exists():
                raise NotFoundError(
                    f"no admin identity at {self.directory}: is teleport running on this host "
                    "with this config? Start it with 'teleport start -c FILE', or run tctl "
                    "elsewhere after 'tsh login' as a user with the editor role"
                )


def admin_identity_paths(data_dir: str | os.PathLike[str]) -> AdminIdentityPaths:
    return AdminIdentityPaths(Path(data_dir) / "keys")
