"""The ``~/.tsh`` layout (docs/compatibility.md): directories 0700, files 0600,
``TELEPORT_HOME`` honoured.

~/.tsh/current-profile             the proxy host of the active profile
~/.tsh/<proxy>.yaml                web and SSH proxy addresses, user, cluster
~/.tsh/known_hosts                 @cert-authority lines of the host CA
~/.tsh/keys/<proxy>/<user>         private key (OpenSSH)
~/.tsh/keys/<proxy>/<user>.pub     public key
~/.tsh/keys/<proxy>/<user>-cert.pub  SSH certificate
~/.tsh/keys/<proxy>/<user>-x509.pem  TLS certificate
~/.tsh/keys/<proxy>/cas/<cluster>.pem  the cluster's TLS CA
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from pyteleport.errors import BadParameterError, NotFoundError

NOT_LOGGED_IN = "not logged in: run tsh login --proxy=HOST --user=NAME"


def tsh_home() -> Path:
    env = os.environ.get("TELEPORT_HOME")
    return Path(env) if env else Path.home() / ".tsh"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents with mode 0700 (mkdir's mode skips parents)."""
    missing = []
    for parent in [path, *path.parents]:
        if parent.exists():
            break
        missing.append(parent)
    for directory in reversed(missing):
        directory.mkdir(mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_private_file(path: Path, data: bytes) -> None:
    """Write atomically with mode 0600: a crash never leaves a half-written key."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


@dataclass(frozen=True, slots=True)
class Profile:
    web_proxy_addr: str  # host:port of the HTTPS web API
    ssh_proxy_addr: str  # host:port of the SSH proxy
    user: str
    cluster: str
    insecure: bool = False

    @property
    def proxy_host(self) -> str:
        host = self.web_proxy_addr.rsplit(":", 1)[0]
        return host.strip("[]")


class ProfileStore:
    def __init__(self, home: Path | None = None) -> None:
        self.home = home or tsh_home()

    def keys_dir(self, proxy_host: str) -> Path:
        return self.home / "keys" / proxy_host

    def key_path(self, profile: Profile) -> Path:
        return self.keys_dir(profile.proxy_host) / profile.user

    def cert_path(self, profile: Profile) -> Path:
        return self.keys_dir(profile.proxy_host) / f"{profile.user}-cert.pub"

    def tls_cert_path(self, profile: Profile) -> Path:
        return self.keys_dir(profile.proxy_host) / f"{profile.user}-x509.pem"

    def tls_key_path(self, profile: Profile) -> Path:
        return self.keys_dir(profile.proxy_host) / f"{profile.user}-x509-key.pem"

    def tls_ca_path(self, profile: Profile) -> Path:
        return self.keys_dir(profile.proxy_host) / "cas" / f"{profile.cluster}.pem"

    @property
    def known_hosts_path(self) -> Path:
        return self.home / "known_hosts"

    def save(
        self,
        profile: Profile,
        *,
        private_key: bytes,
        public_key: bytes,
        ssh_cert: bytes,
        tls_cert: bytes,
        tls_key: bytes,
        tls_ca: bytes,
        known_hosts: bytes,
    ) -> None:
        ensure_private_dir(self.home)
        write_private_file(self.key_path(profile), private_key)
        write_private_file(self.key_path(profile).with_name(f"{profile.user}.pub"), public_key)
        write_private_file(self.cert_path(profile), ssh_cert)
        write_private_file(self.tls_cert_path(profile), tls_cert)
        write_private_file(self.tls_key_path(profile), tls_key)
        write_private_file(self.tls_ca_path(profile), tls_ca)
        self._merge_known_hosts(known_hosts)
        data = {
            "web_proxy_addr": profile.web_proxy_addr,
            "ssh_proxy_addr": profile.ssh_proxy_addr,
            "user": profile.user,
            "cluster": profile.cluster,
            "insecure": profile.insecure,
        }
        write_private_file(self.home / f"{profile.proxy_host}.yaml", yaml.safe_dump(data).encode())
        write_private_file(self.home / "current-profile", profile.proxy_host.encode() + b"\n")

    def _merge_known_hosts(self, lines: bytes) -> None:
        existing = b""
        with contextlib.suppress(FileNotFoundError):
            existing = self.known_hosts_path.read_bytes()
        have = set(existing.splitlines())
        extra = [line for line in lines.splitlines() if line.strip() and line not in have]
        if extra or not self.known_hosts_path.exists():
            write_private_file(self.known_hosts_path, existing + b"".join(x + b"\n" for x in extra))

    def current(self) -> Profile:
        try:
            host = (self.home / "current-profile").read_text().strip()
        except FileNotFoundError:
            raise NotFoundError(NOT_LOGGED_IN) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise BadParameterError(f"cannot read {self.home / 'current-profile'}: {exc}") from exc
        if not host or "/" in host or host.startswith("."):
            raise NotFoundError(NOT_LOGGED_IN)
        return self.load(host)

    def load(self, proxy_host: str) -> Profile:
        path = self.home / f"{proxy_host}.yaml"
        try:
            data = yaml.safe_load(path.read_text())
        except FileNotFoundError:
            raise NotFoundError(
                f"not logged in to {proxy_host}: run tsh login --proxy={proxy_host} --user=NAME"
            ) from None
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise BadParameterError(
                f"{path} is corrupt: run tsh logout, then tsh login --proxy={proxy_host}"
            ) from exc
        try:
            return Profile(
                web_proxy_addr=str(data["web_proxy_addr"]),
                ssh_proxy_addr=str(data["ssh_proxy_addr"]),
                user=str(data["user"]),
                cluster=str(data["cluster"]),
                insecure=bool(data.get("insecure", False)),
            )
        except (KeyError, TypeError) as exc:
            raise BadParameterError(
                f"{path} is incomplete: run tsh logout, then tsh login --proxy={proxy_host}"
            ) from exc

    def key_files(self, profile: Profile) -> tuple[Path, ...]:
        """Every file ``tsh login`` writes for the profile's user (the CA and known_hosts are
        per proxy and per home)."""
        key = self.key_path(profile)
        return (
            key,
            key.with_name(f"{profile.user}.pub"),
            self.cert_path(profile),
            self.tls_cert_path(profile),
            self.tls_key_path(profile),
        )

    def require_keys(self, profile: Profile, paths: tuple[Path, ...] = ()) -> None:
        """NotFoundError naming the fix when a key file of the profile (or one of ``paths``) is
        gone: a profile half-deleted by hand, or by a logout that was interrupted."""
        for path in paths or self.key_files(profile):
            if not path.is_file():
                raise NotFoundError(
                    f"the profile for {profile.proxy_host} is incomplete ({path.name} is "
                    f"missing): run tsh login --proxy={profile.web_proxy_addr} "
                    f"--user={profile.user}"
                )

    def all_profiles(self) -> list[Profile]:
        out = []
        for path in sorted(self.home.glob("*.yaml")):
            with contextlib.suppress(NotFoundError, BadParameterError):
                out.append(self.load(path.name[: -len(".yaml")]))
        return out

    def broken_profiles(self) -> list[str]:
        """Proxy hosts whose profile file cannot be read (corrupt or cut short), or whose key
        directory has no profile file left."""
        out = []
        for path in sorted(self.home.glob("*.yaml")):
            host = path.name[: -len(".yaml")]
            try:
                self.load(host)
            except (NotFoundError, BadParameterError):
                out.append(host)
        keys = self.home / "keys"
        if keys.is_dir():
            for directory in sorted(keys.iterdir()):
                if not (self.home / f"{directory.name}.yaml").exists():
                    out.append(directory.name)
        return out

    def remove(self, profile: Profile) -> None:
        for path in self.key_files(profile):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.remove_host(profile.proxy_host, only_if_unused=True)

    def remove_host(self, proxy_host: str, *, only_if_unused: bool = False) -> None:
        """Remove the profile file and key directory of ``proxy_host``. With
        ``only_if_unused``, keep them while another user's keys remain there; files that
        ``tsh ssh`` derives (``ssh_known_hosts``) and the cluster's CA are not keys."""
        keys = self.keys_dir(proxy_host)
        derived = {"cas", "ssh_known_hosts"}
        remaining = [p for p in keys.iterdir() if p.name not in derived] if keys.is_dir() else []
        if only_if_unused and remaining:
            return
        shutil.rmtree(keys, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            (self.home / f"{proxy_host}.yaml").unlink()
        current = self.home / "current-profile"
        with contextlib.suppress(FileNotFoundError, OSError, UnicodeDecodeError):
            if current.read_text().strip() == proxy_host:
                current.unlink()
