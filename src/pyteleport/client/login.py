"""``tsh login``: ask the proxy for certificates with a password (and OTP), keep them in the
profile and the agent. Prompting is the caller's: this module takes callables."""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import asyncssh

from pyteleport.api.client import WebClient, client_ssl_context
from pyteleport.client import agent as agents
from pyteleport.client.profile import Profile, ProfileStore
from pyteleport.crypto import sshcert, sshkeys, tlsca
from pyteleport.errors import AccessDeniedError, BadParameterError

T = TypeVar("T")

DEFAULT_WEB_PORT = 3080
DEFAULT_SSH_PORT = 3023


def split_host_port(value: str, default_port: int) -> tuple[str, int]:
    text = value.strip()
    if not text:
        raise BadParameterError("--proxy is required: tsh login --proxy=HOST[:PORT]")
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise BadParameterError(f'invalid address "{value}": missing host')
    try:
        port = int(port_text) if port_text else default_port
    except ValueError:
        raise BadParameterError(f'invalid address "{value}": bad port') from None
    if not 0 < port < 65536:
        raise BadParameterError(f'invalid address "{value}": port out of range')
    return host, port


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def ssh_proxy_addr(web_host: str, ping_listen_addr: str, ssh_public_addr: str) -> str:
    """As Teleport's tsh: ``ssh_public_addr`` if set, else the web host with ``listen_addr``'s
    port."""
    if ssh_public_addr:
        host, port = split_host_port(ssh_public_addr.split(",")[0], DEFAULT_SSH_PORT)
        return join_host_port(host, port)
    _, port = split_host_port(ping_listen_addr or f":{DEFAULT_SSH_PORT}", DEFAULT_SSH_PORT)
    return join_host_port(web_host, port)


@dataclass(frozen=True, slots=True)
class LoginResult:
    profile: Profile
    roles: tuple[str, ...]
    logins: tuple[str, ...]
    valid_before: dt.datetime
    extensions: tuple[str, ...]
    agent_warning: str
    agent_used: bool


async def login(
    *,
    proxy: str,
    user: str,
    ttl: dt.timedelta | None,
    insecure: bool,
    use_agent: bool,
    ask_password: Callable[[], Awaitable[str]],
    ask_otp: Callable[[], Awaitable[str]],
    store: ProfileStore | None = None,
) -> LoginResult:
    store = store or ProfileStore()
    host, port = split_host_port(proxy, DEFAULT_WEB_PORT)
    web_addr = join_host_port(host, port)
    client = WebClient(web_addr, client_ssl_context(insecure=insecure))
    try:
        ping = await client.ping()
        password = await ask_password()
        otp = await ask_otp() if ping.auth.second_factor == "otp" else ""
        key = sshkeys.generate_ssh_key("ed25519")
        public_line = sshkeys.public_key_line(key)
        ttl_ns = int(ttl.total_seconds() * 1e9) if ttl else 0
        answer = await client.create_ssh_cert(user, password, otp, public_line, ttl_ns)
    finally:
        await client.aclose()
    ssh_cert = base64.b64decode(answer.cert)
    tls_cert = base64.b64decode(answer.tls_cert)
    known_hosts = b""
    tls_ca = b""
    for signer in answer.host_signers:
        for checking_key in signer.checking_keys:
            line = base64.b64decode(checking_key).decode().strip()
            name = signer.domain_name
            known_hosts += f"@cert-authority {name},*.{name} {line} type=host\n".encode()
        for ca in signer.tls_certs:
            tls_ca += base64.b64decode(ca)
    profile = Profile(
        web_proxy_addr=web_addr,
        ssh_proxy_addr=ssh_proxy_addr(
            host, ping.proxy.ssh.listen_addr, ping.proxy.ssh.ssh_public_addr
        ),
        user=answer.username,
        cluster=ping.cluster_name,
        insecure=insecure,
    )
    return await install_login(
        store, profile, key, ssh_cert, tls_cert, tls_ca, known_hosts, use_agent
    )


async def install_login(
    store: ProfileStore,
    profile: Profile,
    key: asyncssh.SSHKey,
    ssh_cert: bytes,
    tls_cert: bytes,
    tls_ca: bytes,
    known_hosts: bytes,
    use_agent: bool,
) -> LoginResult:
    """Keep a new key and its certificates in the profile and (``use_agent``) the agent: what
    ``tsh login`` does once the cluster has signed them."""
    cert = sshcert.parse_certificate(ssh_cert)
    store.save(
        profile,
        private_key=sshkeys.private_key_pem(key),
        public_key=sshkeys.public_key_line(key) + b"\n",
        ssh_cert=ssh_cert.strip() + b"\n",
        tls_cert=tls_cert,
        tls_key=sshkeys.tls_private_key_pem(key),
        tls_ca=tls_ca,
        known_hosts=known_hosts,
    )
    valid_before = _cert_time(cert.valid_before)
    warning = ""
    agent_used = False
    socket_path = agents.agent_socket()
    if use_agent and socket_path:
        lifetime = int((valid_before - dt.datetime.now(dt.UTC)).total_seconds())
        try:
            result = await agents.add_login(
                socket_path, profile.user, sshkeys.private_key_pem(key), ssh_cert, lifetime
            )
            warning, agent_used = result.warning, result.added
        except Exception as exc:  # the login itself succeeded; the agent is a convenience
            warning = str(exc)
    elif use_agent:
        warning = "no ssh-agent (SSH_AUTH_SOCK is not set): the key was saved to the profile only"
    return LoginResult(
        profile=profile,
        roles=_cert_roles(cert),
        logins=tuple(p for p in cert.principals if not p.startswith("-teleport-")),
        valid_before=valid_before,
        extensions=tuple(sorted(cert.extensions)),
        agent_warning=warning,
        agent_used=agent_used,
    )


def _cert_roles(cert: sshcert.CertInfo) -> tuple[str, ...]:
    raw = cert.extensions.get("teleport-roles")
    if not raw:
        return ()
    try:
        return tuple(json.loads(raw)["roles"])
    except (ValueError, KeyError, TypeError):
        return ()


@dataclass(frozen=True, slots=True)
class Status:
    profile: Profile
    roles: tuple[str, ...]
    logins: tuple[str, ...]
    valid_before: dt.datetime
    extensions: tuple[str, ...]


def read_status(store: ProfileStore | None = None, proxy_host: str = "") -> Status:
    """The current profile (or ``proxy_host``'s) and its certificate, expired or not;
    NotFoundError or BadParameterError, each naming the fix, when the profile is missing or
    half-deleted."""
    store = store or ProfileStore()
    profile = store.load(proxy_host) if proxy_host else store.current()
    store.require_keys(profile)
    cert = _read_certificate(store.cert_path(profile), profile, sshcert.parse_certificate)
    return Status(
        profile=profile,
        roles=_cert_roles(cert),
        logins=tuple(p for p in cert.principals if not p.startswith("-teleport-")),
        valid_before=_cert_time(cert.valid_before),
        extensions=tuple(sorted(cert.extensions)),
    )


def _cert_time(seconds: int) -> dt.datetime:
    """A certificate's valid_before as a time; "forever" (2^64-1) is past what datetime holds."""
    return dt.datetime.fromtimestamp(min(seconds, 253402300799), dt.UTC)  # 9999-12-31


def require_login(
    store: ProfileStore | None = None, proxy_host: str = "", now: dt.datetime | None = None
) -> Status:
    """Like ``read_status``, and AccessDeniedError when the certificate has expired: what every
    command that talks to the cluster with the profile checks first."""
    status = read_status(store, proxy_host)
    _require_unexpired(status.profile, status.valid_before, now or dt.datetime.now(dt.UTC))
    return status


def require_tls_login(store: ProfileStore, now: dt.datetime | None = None) -> Profile:
    """The current profile when its TLS certificate (what the auth API takes) is there and has
    not expired; otherwise the one-line error that names ``tsh login``."""
    profile = store.current()
    path = store.tls_cert_path(profile)
    store.require_keys(profile, (path, store.tls_key_path(profile)))
    not_after = _read_certificate(path, profile, tlsca.cert_not_after)
    _require_unexpired(profile, not_after, now or dt.datetime.now(dt.UTC))
    return profile


def _read_certificate(path: Path, profile: Profile, parse: Callable[[bytes], T]) -> T:
    try:
        return parse(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise BadParameterError(
            f"cannot read the certificate {path}: run tsh login --proxy={profile.web_proxy_addr} "
            f"--user={profile.user}"
        ) from exc


def _require_unexpired(profile: Profile, valid_before: dt.datetime, now: dt.datetime) -> None:
    if valid_before <= now:
        when = valid_before.strftime("%Y-%m-%d %H:%M:%S UTC")
        raise AccessDeniedError(
            f"the certificate of {profile.user} for {profile.proxy_host} expired at {when}: "
            f"run tsh login --proxy={profile.web_proxy_addr} --user={profile.user}"
        )


async def logout(store: ProfileStore | None = None, use_agent: bool = True) -> list[Profile]:
    store = store or ProfileStore()
    profiles = store.all_profiles()
    for profile in profiles:
        store.remove(profile)
    # A profile file that no longer reads names no user: its whole key directory goes, as does
    # a key directory whose profile file was deleted.
    broken = store.broken_profiles()
    for host in broken:
        store.remove_host(host)
    socket_path = agents.agent_socket()
    if use_agent and socket_path:
        with contextlib.suppress(Exception):
            await agents.remove_logins(socket_path)
    if broken and not profiles:
        return [Profile(web_proxy_addr=h, ssh_proxy_addr="", user="", cluster="") for h in broken]
    return profiles
